"""Alphalens-style evaluation of a pipeline factor over a bundle and dates.

The factor is computed by zipline's pipeline engine on the bundle (as in a
backtest); forward returns come from the bundle's adjusted closes.

Timing. The pipeline value of session D is computed from data up to the
close of D - 1 (its *own close*) and is known before D's open.

- Horizon ``h`` (``ic``, ``ic_summary``): the return from the close of D to
  the close of D + h.
- Lag ``k`` (``ic_lag``, ``ic_by_lag``): the one-session return ending
  ``k`` sessions after the factor's own close, i.e. from the close of
  D - 2 + k to the close of D - 1 + k. Lag 0 is the last return the factor
  saw; lag 1 is session D's; lag 2 (close D to close D + 1) equals the
  1-day horizon.

A daily zipline backtest orders in ``handle_data`` (or a scheduled
function) at D's single bar, stamped at D's close; the blotter fills the
order at the next bar, with D + 1's close as the price (every slippage
model's ``process_order`` reads ``data.current(asset, "close")`` of the bar
it runs in). The position is bought at the close of D + 1, so the first
return it earns is D + 1 to D + 2: lag :data:`FIRST_EARNED_LAG` (3).
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


#: Default lags of ``ic_by_lag``.
LAGS = (0, 1, 2, 3, 4, 5)

#: The first lag a daily zipline backtest earns: the pipeline value of D
#: (own close D - 1) is ordered on D and filled at the close of D + 1.
FIRST_EARNED_LAG = 3


def lag_window(k):
    """The return of lag ``k`` in terms of the pipeline session D."""
    def close(offset):
        return "D" if offset == 0 else f"D{offset:+d}"
    return f"close {close(k - 2)} -> close {close(k - 1)}"


def lag_role(k):
    """What a daily zipline backtest makes of lag ``k``."""
    if k <= 0:
        return "seen by the factor"
    if k < FIRST_EARNED_LAG:
        return "before the fill (not earned)"
    if k == FIRST_EARNED_LAG:
        return "first earned (fill at close D+1)"
    return "earned if still held"


@dataclass
class FactorEvaluation:
    tables: dict
    figures: dict


def evaluate(factor_values, prices_returns, sectors=None, horizons=(1, 5, 21), quantiles=5,
             lags=LAGS, nw_lags=None):
    """Evaluate a (dates x assets) factor frame against daily asset returns.

    Parameters
    ----------
    factor_values : DataFrame
        Factor value per pipeline session D (rows) and asset (columns); the
        value of D saw data up to the close of the session before D.
    prices_returns : DataFrame
        Daily total returns on every session of the calendar (row s: close
        of the previous session to close of s), same columns, from the
        session before the first factor date (for lag 0) to at least
        max(horizons, lags) sessions after the last one.
    sectors : Series, optional
        Asset -> sector label, for the IC by sector.
    lags : sequence of int
        Lags of ``ic_by_lag`` (see the module docstring); lag ``k`` of D
        is the return from the close of D - 2 + k to the close of D - 1 + k.
    nw_lags : int, optional
        Newey-West lags for ``nw_t_stat``; default ``floor(4 (n/100)^(2/9))``.
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
    if lags is not None and len(lags):
        tables["ic_lag"], tables["ic_by_lag"] = _ic_by_lag(f, dates, rets, lags, nw_lags)
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


def _ic_by_lag(f, dates, rets, lags, nw_lags=None):
    """Daily rank IC by lag and its summary (see :func:`evaluate`)."""
    lags = [int(k) for k in lags]
    pos = rets.index.get_indexer(dates)
    # own close of D = the session before D in the returns' calendar
    own = np.where(pos >= 0, pos - 1, np.iinfo(np.int64).min // 4)
    daily = ev.lag_ic(f, rets.to_numpy(dtype=float), own, lags)
    daily = pd.DataFrame(daily, index=dates, columns=[f"lag_{k}" for k in lags])
    stats = ev.ic_statistics(daily.to_numpy(), max_lag=nw_lags)
    summary = pd.DataFrame({
        "return": [lag_window(k) for k in lags],
        "mean_ic": stats["mean_ic"], "t_stat": stats["t_stat"], "nw_t_stat": stats["nw_t_stat"],
        "nw_lags": stats["nw_lags"], "ic_std": stats["ic_std"], "hit_rate": stats["hit_rate"],
        "days": stats["days"], "zipline_daily": [lag_role(k) for k in lags],
    }, index=pd.Index(lags, name="lag"))
    return daily, summary


def format_ic_by_lag(table):
    """The ``ic_by_lag`` table as printed by ``factorarb evaluate-factor``."""
    shown = table[["return", "mean_ic", "t_stat", "nw_t_stat", "days", "zipline_daily"]].copy()
    shown["mean_ic"] = shown["mean_ic"].map(lambda v: f"{v:+.4f}" if np.isfinite(v) else "nan")
    for col in ("t_stat", "nw_t_stat"):
        shown[col] = shown[col].map(lambda v: f"{v:+.2f}" if np.isfinite(v) else "nan")
    note = (
        "lag k: rank IC of the pipeline value of session D (computed from closes up to D-1)\n"
        "with the return from close D-2+k to close D-1+k; lag 0 is the last return the factor saw.\n"
        "A daily zipline backtest orders on D and is filled at the close of D+1, so it first earns\n"
        f"lag {FIRST_EARNED_LAG}. nw_t_stat: Newey-West (Bartlett) t-statistic of the mean IC.")
    return shown.to_string() + "\n" + note


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
        if "ic_by_lag" in tables and len(tables["ic_by_lag"]):
            lag = tables["ic_by_lag"]
            title = "Mean rank IC by lag (±2 Newey-West s.e.)"
            if (lag.index > 0).any():
                # lag 0 (the return the factor saw) would dwarf the others: named in the title
                if 0 in lag.index:
                    title += f"; lag 0 (seen by the factor): {lag.loc[0, 'mean_ic']:+.3f}"
                lag = lag[lag.index > 0]
            fig, ax = plt.subplots(figsize=(8, 4))
            se = (lag["mean_ic"] / lag["nw_t_stat"]).abs()
            colors = ["tab:gray" if k < FIRST_EARNED_LAG else "tab:blue" for k in lag.index]
            ax.bar([str(k) for k in lag.index], lag["mean_ic"], yerr=2 * se, color=colors, capsize=3)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xlabel(f"lag (blue: earned by a daily zipline backtest, from lag {FIRST_EARNED_LAG})")
            ax.set_title(title, fontsize=10)
            figs["ic_by_lag"] = fig
    return figs


def evaluate_factor(name, bundle, start, end, horizons=(1, 5, 21), quantiles=5, params=None,
                    universe=None, environ=None, lags=LAGS, nw_lags=None):
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
    from zipline.utils.calendar_utils import get_calendar

    reach = max(max(horizons), max(lags, default=0))
    last = values.index[-1] + pd.Timedelta(days=int(reach * 1.6) + 5)
    # from a few sessions before the first factor date: lag 0 ends at the close before it
    first = max(values.index[0] - pd.Timedelta(days=10),
                pd.Timestamp(get_calendar("XNYS").first_session).tz_localize(None))
    rets = adjusted_returns(bundle, list(values.columns), first, last, environ=environ)
    rets.index = pd.DatetimeIndex(rets.index).normalize()
    return evaluate(values, rets, sectors=sectors, horizons=horizons, quantiles=quantiles,
                    lags=lags, nw_lags=nw_lags)


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
