"""Performance attribution through crises: factor, sector and specific parts.

The arithmetic is that of empyrical's ``perf_attrib`` (the common return is
the exposures times the factor returns, the specific return is the rest),
applied to the portfolio-level exposures the algorithms record, since
``perf_attrib`` wants per-asset loadings that a perf frame does not hold.
Each session's active return ``r - b`` is split into

- a factor part per factor: the recorded active exposure ``factor_exposure_<f>``
  (``F (w - b)``, see :func:`zipline_factorarb.optimize.risk_records`) times the
  factor's return that session;
- a sector part: the active sector weights (``sector_weight_<s>`` minus
  ``benchmark_sector_weight_<s>``, or the weights from the positions) times
  each sector's return in excess of the benchmark (Brinson's allocation
  effect); left out when the factors are themselves sectors;
- a specific part: the active return minus the two others.

Exposures and weights recorded at a rebalance are those of the target, which
zipline fills at the next session's close: they earn returns from the
session after that, so they are applied ``lag=2`` sessions later (the value
recorded at the close of session D multiplies the returns of D+2).

A window's parts are the daily parts linked with Carino's coefficients
(:func:`~zipline_factorarb.kernels.performance.linked_parts`), so that they
add up to the window's compounded active return ``R - B`` exactly.

Factor returns are recorded ``factor_return_<f>`` values where an algorithm
records them, otherwise read from the bundle: ``market`` is the first of
``market_symbols`` in the bundle, a factor named by a symbol is that asset's
return in excess of the market (the risk model's default
``excess_of_market=True``). Sector returns are the equal-weighted mean
returns of the bundle's stocks in each GICS sector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..kernels import performance as pk
from ..records import FACTOR_EXPOSURE
from .bundle_data import adjusted_returns, sectors_of
from .periods import naive_sessions as _naive
from .periods import window_rows

#: Recorded factor returns (optional; read before the bundle).
FACTOR_RETURN = "factor_return_"
MARKET = "market"
SPECIFIC = "specific"
SECTOR = "sector"
DEFAULT_LAG = 2


@dataclass
class Attribution:
    daily: pd.DataFrame  # sessions x (factor columns, "sector", "specific"): rows sum to active
    windows: pd.DataFrame  # one row per window: active_return, factor, sector, specific, by factor
    factors: list
    notes: list = field(default_factory=list)


def _on(frame, index):
    """``frame`` on the tz-naive sessions ``index``."""
    return frame.set_axis(_naive(frame.index)).reindex(index)


def _held(frame, index, lag):
    """Recorded values carried forward, aligned to ``index`` and shifted by ``lag`` sessions."""
    return _on(frame, index).ffill().shift(lag).fillna(0.0)


def daily_attribution(returns, benchmark_returns, exposures, factor_returns,
                      sector_weights=None, sector_returns=None, lag=DEFAULT_LAG):
    """Split each session's active return into factor, sector and specific parts.

    Parameters
    ----------
    returns, benchmark_returns : Series
        Daily strategy and benchmark returns on the same sessions.
    exposures : DataFrame
        Recorded active factor exposures (sessions x factors).
    factor_returns : DataFrame
        Daily returns of the factors (columns: factor names); factors missing
        from it contribute nothing (their part stays in the specific part).
    sector_weights : DataFrame, optional
        Active sector weights (sessions x sectors).
    sector_returns : DataFrame, optional
        Daily sector returns (columns: sector names).
    lag : int
        Sessions between a recorded value and the first return it earns.

    Returns
    -------
    DataFrame
        Columns: one per factor found in both inputs, ``sector``, ``specific``;
        each row sums to ``returns - benchmark_returns``.
    """
    index = _naive(returns.index)
    r = returns.to_numpy(dtype=float)
    b = benchmark_returns.to_numpy(dtype=float)
    active = r - b
    factors = [f for f in exposures.columns if f in factor_returns.columns]
    parts = {}
    if factors:
        e = _held(exposures[factors], index, lag).to_numpy()
        f = _on(factor_returns[factors], index).fillna(0.0).to_numpy()
        for k, name in enumerate(factors):
            parts[name] = e[:, k] * f[:, k]
    sector = np.zeros(len(index))
    if sector_weights is not None and sector_returns is not None and len(sector_weights.columns):
        sectors = [s for s in sector_weights.columns if s in sector_returns.columns]
        if sectors:
            a = _held(sector_weights[sectors], index, lag).to_numpy()
            s = _on(sector_returns[sectors], index).to_numpy()
            excess = np.nan_to_num(s - b[:, None])
            sector = (a * excess).sum(axis=1)
    parts[SECTOR] = sector
    common = np.sum([parts[name] for name in factors], axis=0) if factors else 0.0
    parts[SPECIFIC] = active - common - sector
    return pd.DataFrame(parts, index=returns.index)


def window_attribution(daily, returns, benchmark_returns, periods):
    """Each window's active return and its linked parts (one row per window).

    Columns: ``period``, ``crisis``, ``start``, ``end``, ``sessions``,
    ``active_return`` (compounded strategy minus compounded benchmark return),
    ``factor`` (sum of the factor parts), ``sector``, ``specific``, then one
    column per factor. ``factor + sector + specific == active_return``.
    """
    r = returns.to_numpy(dtype=float)
    b = benchmark_returns.to_numpy(dtype=float)
    factors = [c for c in daily.columns if c not in (SECTOR, SPECIFIC)]
    values = daily.to_numpy(dtype=float)
    rows = []
    for row, pos in window_rows(periods, returns.index):
        linked = dict(zip(daily.columns, pk.linked_parts(values[pos], r[pos], b[pos])))
        row.update({
            "active_return": pk.total_return(r[pos]) - pk.total_return(b[pos]),
            "factor": float(sum(linked[f] for f in factors)),
            "sector": linked[SECTOR], "specific": linked[SPECIFIC],
            **{f"factor_{f}": linked[f] for f in factors},
        })
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------ bundle inputs
def factor_returns_from_bundle(bundle, names, start, end, market_symbols=("SP500", "SPY"),
                               environ=None):
    """Daily returns of the factors ``names`` from the bundle, and notes on those left out."""
    notes = []
    market = None
    for symbol in market_symbols:
        try:
            market = adjusted_returns(bundle, [symbol], start, end, environ)[symbol]
            break
        except LookupError:
            continue
    if market is None:
        return pd.DataFrame(), [f"attribution: no market symbol ({', '.join(market_symbols)}) in "
                                f"bundle {bundle!r}: no factor part"]
    out = {}
    for name in names:
        if name == MARKET:
            out[name] = market
        elif name.startswith("sector_"):
            notes.append(f"attribution: factor {name!r} is a sector factor, not read from the "
                         "bundle: its part stays in the specific part")
        else:
            try:
                out[name] = adjusted_returns(bundle, [name], start, end, environ)[name] - market
            except LookupError:
                notes.append(f"attribution: factor {name!r} is not a symbol of bundle {bundle!r}: "
                             "its part stays in the specific part")
    return pd.DataFrame(out), notes


def sector_returns_from_bundle(bundle, start, end, environ=None):
    """Equal-weighted mean daily return of the bundle's stocks in each GICS sector."""
    from zipline.data import bundles

    from .risk import sector_label

    data = bundles.load(bundle, environ=environ)
    try:
        symbols = [a.symbol for a in data.asset_finder.retrieve_all(data.asset_finder.sids)]
    finally:
        data.close()
    sectors = sectors_of(bundle, symbols, environ=environ)
    stocks = [s for s in symbols if sectors.get(s, -1) != -1]
    if not stocks:
        return pd.DataFrame()
    rets = adjusted_returns(bundle, stocks, start, end, environ)
    labels = [sector_label(sectors[s]) for s in rets.columns]
    return rets.T.groupby(labels).mean().T


def attribution_of(backtest, periods, bundle=None, sector_weights=None, lag=DEFAULT_LAG,
                   market_symbols=("SP500", "SPY"), environ=None):
    """:class:`Attribution` of a backtest, or ``None`` with the reason in ``notes``.

    Needs recorded ``factor_exposure_*`` values, a benchmark (cash counts) and
    factor returns (recorded ``factor_return_*`` or ``bundle``).
    """
    notes = []
    exposures = backtest.recorded_with(FACTOR_EXPOSURE)
    if not len(exposures.columns):
        return None, ["attribution: the algorithm recorded no factor_exposure_* values"]
    if backtest.benchmark_returns is None:
        return None, ["attribution: no benchmark returns (use --benchmark or --benchmark cash)"]
    names = list(exposures.columns)
    index = _naive(backtest.returns.index)
    factor_returns = backtest.recorded_with(FACTOR_RETURN)
    missing = [n for n in names if n not in factor_returns.columns]
    sector_returns = None
    if bundle is not None:
        start, end = index[0], index[-1]
        if missing:
            read, more = factor_returns_from_bundle(bundle, missing, start, end, market_symbols,
                                                    environ)
            notes.extend(more)
            if len(read.columns):
                factor_returns.index = _naive(factor_returns.index)
                factor_returns = pd.concat([factor_returns, read.reindex(index)], axis=1)
        if any(n.startswith("sector_") for n in names):
            notes.append("attribution: the risk model's factors include sectors: no separate "
                         "sector part")
        elif sector_weights is not None and len(sector_weights.columns):
            sector_returns = sector_returns_from_bundle(bundle, start, end, environ)
    elif missing:
        notes.append("attribution: factor returns come from --bundle (or recorded "
                     f"factor_return_* values); without them {missing} stay in the specific part")
    if not len(factor_returns.columns) and sector_returns is None:
        return None, notes + ["attribution: no factor or sector returns: nothing to attribute"]
    daily = daily_attribution(backtest.returns, backtest.benchmark_returns, exposures,
                              factor_returns, sector_weights, sector_returns, lag=lag)
    windows = window_attribution(daily, backtest.returns, backtest.benchmark_returns, periods)
    factors = [c for c in daily.columns if c not in (SECTOR, SPECIFIC)]
    return Attribution(daily=daily, windows=windows, factors=factors, notes=notes), notes

