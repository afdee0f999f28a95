"""Run a pipeline outside an algorithm, on an ingested bundle (research)."""

from __future__ import annotations

import pandas as pd


def run_pipeline(pipeline, start, end, bundle="factorarb-sample", chunksize=None, environ=None):
    """Run ``pipeline`` over ``start``..``end`` on a bundle's latest ingestion.

    The pipeline is computed by zipline's own ``SimplePipelineEngine`` with the
    bundle's daily bars and adjustments, exactly as ``zipline run`` would,
    and the running bundle's asset db is what :class:`Sector` and
    :class:`AssetType` read. Returns zipline's (date, asset) indexed frame.

    Examples
    --------
    >>> from zipline.pipeline import Pipeline
    >>> from zipline_factorarb.pipeline.classifiers import Sector
    >>> run_pipeline(Pipeline({"sector": Sector()}), "2020-03-02", "2020-03-06")  # doctest: +SKIP
    """
    from zipline.data import bundles
    from zipline.pipeline.data import EquityPricing
    from zipline.pipeline.domain import US_EQUITIES
    from zipline.pipeline.engine import SimplePipelineEngine
    from zipline.pipeline.loaders import USEquityPricingLoader

    from ..data.register import register_bundles
    from .classifiers import bound_asset_finder

    register_bundles()
    data = bundles.load(bundle, environ=environ) if environ is not None else bundles.load(bundle)
    loader = USEquityPricingLoader.without_fx(data.equity_daily_bar_reader, data.adjustment_reader)

    def get_loader(column):
        if column.unspecialize() in EquityPricing.columns:
            return loader
        raise ValueError(f"no loader for {column}: only EquityPricing columns are available")

    engine = SimplePipelineEngine(get_loader, data.asset_finder, default_domain=US_EQUITIES)
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    try:
        with bound_asset_finder(data.asset_finder):
            if chunksize:
                return engine.run_chunked_pipeline(pipeline, start, end, chunksize=chunksize)
            return engine.run_pipeline(pipeline, start, end)
    finally:
        data.close()
