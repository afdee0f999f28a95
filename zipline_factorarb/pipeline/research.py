"""Run a pipeline outside an algorithm, on an ingested bundle (research)."""

from __future__ import annotations

import pandas as pd


def bundle_domain(bundle, asset_finder, environ=None):
    """The pipeline domain of a bundle: its calendar and its assets' country.

    zipline's built-in domain of the bundle's calendar (``US_EQUITIES`` for
    XNYS, ``GB_EQUITIES`` for XLON...) when the asset db's country is that
    domain's, else an ``EquityCalendarDomain`` of the asset db's country and
    the calendar (any exchange_calendars calendar).
    """
    from zipline.data.bundles import bundles
    from zipline.pipeline.domain import BUILT_IN_DOMAINS, EquityCalendarDomain

    from ..data.register import canonical_calendar_name

    calendar = canonical_calendar_name(bundles[bundle].calendar_name)
    countries = sorted({e.country_code for e in asset_finder.exchange_info.values()})
    for domain in BUILT_IN_DOMAINS:
        if domain.calendar_name == calendar and countries in ([], [domain.country_code]):
            return domain
    if len(countries) != 1:
        raise ValueError(
            f"bundle {bundle!r} has exchanges of {len(countries)} countries {countries}; "
            "give the pipeline a domain of its own: Pipeline(..., domain=EquityCalendarDomain("
            "COUNTRY, CALENDAR))")
    return EquityCalendarDomain(countries[0], calendar)


def run_pipeline(pipeline, start, end, bundle="factorarb-sample", chunksize=None, environ=None,
                 extensions=()):
    """Run ``pipeline`` over ``start``..``end`` on a bundle's latest ingestion.

    The pipeline is computed by zipline's own ``SimplePipelineEngine`` with the
    bundle's daily bars and adjustments, exactly as ``zipline run`` would,
    and the running bundle's asset db is what :class:`Sector`,
    :class:`AssetType` and ``Fundamentals`` read. The bundle may be
    registered in ``$ZIPLINE_ROOT/extension.py`` or in ``extensions`` (files
    or modules, as ``zipline -e``), which are loaded first. The domain follows
    the bundle's calendar (see :func:`bundle_domain`) unless the pipeline
    sets one. Returns zipline's (date, asset) indexed frame.

    Examples
    --------
    >>> from zipline.pipeline import Pipeline
    >>> from zipline_factorarb.pipeline.classifiers import Sector
    >>> run_pipeline(Pipeline({"sector": Sector()}), "2020-03-02", "2020-03-06")  # doctest: +SKIP
    """
    from zipline.data import bundles
    from zipline.pipeline.data import EquityPricing
    from zipline.pipeline.engine import SimplePipelineEngine
    from zipline.pipeline.loaders import USEquityPricingLoader

    from ..data.register import load_user_extensions
    from .classifiers import bound_asset_finder

    load_user_extensions(extensions, environ=environ)
    data = bundles.load(bundle, environ=environ) if environ is not None else bundles.load(bundle)
    loader = USEquityPricingLoader.without_fx(data.equity_daily_bar_reader, data.adjustment_reader)

    def get_loader(column):
        if column.unspecialize() in EquityPricing.columns:
            return loader
        raise ValueError(f"no loader for {column}: only EquityPricing columns are available")

    try:
        domain = bundle_domain(bundle, data.asset_finder)
        engine = SimplePipelineEngine(get_loader, data.asset_finder, default_domain=domain)
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        with bound_asset_finder(data.asset_finder):
            if chunksize:
                return engine.run_chunked_pipeline(pipeline, start, end, chunksize=chunksize)
            return engine.run_pipeline(pipeline, start, end)
    finally:
        data.close()
