"""Alphalens-style evaluation of a pipeline factor over a bundle and dates.

The factor is computed by zipline's pipeline engine on the bundle (as in a
backtest); forward returns come from the bundle's adjusted closes. The
factor value of session d is known before d's open; its forward return over
h sessions is measured from the close of d to the close of d + h, so no
part of it is available when the factor is computed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..kernels import evaluation as ev
from .risk import sector_label


def _momentum(**params):
    from zipline.pipeline.factors import Returns

    lookback, skip = int(params.get("lookback", 252)), int(params.get("skip", 21))
    return (Returns(window_length=lookback) + 1.0) / (Returns(window_length=skip) + 1.0) - 1.0


def _output(term_name, output, **params):
    import zipline_factorarb

    cls = getattr(zipline_factorarb, term_name)
    term = cls(**params)
    return getattr(term, output) if output else term


#: Built-in factors by name: callables(**params) -> pipeline Factor.
FACTORS = {
    "momentum": _momentum,
    "wls_residual": lambda **p: _output("WLSResidual", "weighted_residual", **p),
    "kalman_innovation": lambda **p: _output("KalmanInnovation", "standardized_innovation", **p),
    "sscore": lambda **p: _output("SScore", "s_score", **p),
}


def resolve_factor(name, **params):
    """A factor by registry name or as ``package.module:callable``."""
    if name in FACTORS:
        maker = FACTORS[name]
    elif ":" in name:
        module, attr = name.split(":", 1)
        try:
            maker = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import factor {name!r}: {exc}") from None
    else:
        raise ValueError(f"unknown factor {name!r}; use one of {sorted(FACTORS)} or "
                         "'package.module:callable' returning a pipeline Factor")
    try:
        return maker(**params)
    except (AttributeError, ImportError) as exc:
        raise ValueError(f"factor {name!r} is not available: {exc}") from None


@dataclass
class FactorEvaluation:
    tables: dict
    figures: dict


def evaluate(factor_values, prices_returns, sectors=None, horizons=(1, 5, 21), quantiles=5):
    """Evaluate a (dates x assets) factor frame against daily asset returns.

    Parameters
    ----------
    factor_values : DataFrame
        Factor value per session (rows) and asset (columns).
    prices_returns : DataFrame
        Daily total returns, same columns, covering the sessions after the
        last factor date by at least max(horizons).
    sectors : Series, optional
        Asset -> sector label, for the IC by sector.
    """
    dates = factor_values.index
    assets = factor_values.columns
    rets = prices_returns.reindex(columns=assets)
    growth = np.log1p(rets.fillna(0.0)).cumsum()
    f = factor_values.to_numpy(dtype=float)
    tables = {}
    ic = {}
    fwd = {}
    for h in horizons:
        # forward return from the close of d to the close of d + h
        start = growth.reindex(dates)
        end = growth.shift(-h).reindex(dates)
        forward = np.expm1(end - start)
        forward[rets.shift(-h).reindex(dates).isna()] = np.nan
        fwd[h] = forward.to_numpy(dtype=float)
        ic[f"{h}D"] = ev.rank_ic(f, fwd[h])
    ic = pd.DataFrame(ic, index=dates)
    tables["ic"] = ic
    tables["ic_summary"] = pd.DataFrame({
        "mean_ic": ic.mean(), "ic_std": ic.std(), "ic_ir": ic.mean() / ic.std(),
        "t_stat": ic.mean() / ic.std() * np.sqrt(ic.count()), "hit_rate": (ic > 0).sum() / ic.count(),
        "days": ic.count(),
    })
    labels = ev.quantile_labels(f, quantiles)
    tables["quantile_returns"] = pd.DataFrame(
        {f"{h}D": np.nanmean(ev.quantile_mean_returns(labels, fwd[h], quantiles), axis=0)
         for h in horizons}, index=pd.Index(range(1, quantiles + 1), name="quantile"))
    tables["quantile_turnover"] = pd.DataFrame({
        "top": ev.quantile_turnover(labels, quantiles - 1),
        "bottom": ev.quantile_turnover(labels, 0)}, index=dates)
    tables["rank_autocorrelation"] = pd.DataFrame(
        {"lag_1": ev.rank_autocorrelation(f, 1)}, index=dates)
    if sectors is not None:
        groups = sectors.reindex(assets).to_numpy()
        rows = {}
        for label in pd.unique(groups[pd.notna(groups)]):
            cols = groups == label
            if cols.sum() < 3:
                continue
            rows[label] = {f"{h}D": np.nanmean(ev.rank_ic(f[:, cols], fwd[h][:, cols], min_assets=3))
                           for h in horizons}
        tables["ic_by_sector"] = pd.DataFrame(rows).T
    return FactorEvaluation(tables=tables, figures=_figures(tables))


def _figures(tables):
    from .tearsheet import headless

    figs = {}
    with headless() as plt:
        ic = tables["ic"]
        fig, ax = plt.subplots(figsize=(11, 4))
        for col in ic.columns:
            ax.plot(ic.index, ic[col].rolling(63, min_periods=10).mean(), label=f"{col} (63-day mean)")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title("Rank information coefficient")
        ax.legend()
        figs["ic"] = fig
        fig, ax = plt.subplots(figsize=(8, 4))
        tables["quantile_returns"].plot.bar(ax=ax)
        ax.set_title("Mean forward return by factor quantile")
        figs["quantile_returns"] = fig
        if "ic_by_sector" in tables and len(tables["ic_by_sector"]):
            fig, ax = plt.subplots(figsize=(8, 5))
            tables["ic_by_sector"].plot.barh(ax=ax)
            ax.set_title("Mean rank IC by sector")
            figs["ic_by_sector"] = fig
        fig, ax = plt.subplots(figsize=(11, 3.5))
        tables["quantile_turnover"].rolling(21, min_periods=5).mean().plot(ax=ax)
        ax.set_title("Quantile turnover (21-day mean)")
        figs["quantile_turnover"] = fig
    return figs


def evaluate_factor(name, bundle, start, end, horizons=(1, 5, 21), quantiles=5, params=None,
                    universe=None, environ=None):
    """Run factor ``name`` on ``bundle`` over ``start``..``end`` and evaluate it."""
    from zipline.pipeline import Pipeline

    from ..pipeline.classifiers import IsTradable, Sector
    from ..pipeline.research import run_pipeline
    from .bundle_data import adjusted_returns

    factor = resolve_factor(name, **(params or {}))
    screen = universe if universe is not None else IsTradable()
    out = run_pipeline(Pipeline({"factor": factor, "sector": Sector()}, screen=screen),
                       start, end, bundle=bundle, environ=environ)
    if out.empty:
        raise ValueError(f"factor {name!r} produced no values on {bundle} between {start} and {end}")
    values = out["factor"].unstack()
    values.columns = [a.symbol for a in values.columns]
    values.index = pd.DatetimeIndex(values.index).tz_localize(None) if getattr(
        values.index, "tz", None) else pd.DatetimeIndex(values.index)
    sectors = out["sector"].groupby(level=1).last()
    sectors.index = [a.symbol for a in sectors.index]
    sectors = sectors.map(sector_label)
    last = values.index[-1] + pd.Timedelta(days=int(max(horizons) * 1.6) + 5)
    rets = adjusted_returns(bundle, list(values.columns), values.index[0], last, environ=environ)
    rets.index = pd.DatetimeIndex(rets.index).normalize()
    return evaluate(values, rets, sectors=sectors, horizons=horizons, quantiles=quantiles)


def write_evaluation(evaluation, out_dir):
    """Write the tables as CSV and the figures as PNG; return the paths."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in evaluation.tables.items():
        path = out / f"{name}.csv"
        frame.to_csv(path)
        written.append(path)
    for name, fig in evaluation.figures.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
