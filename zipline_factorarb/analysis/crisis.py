"""Crisis and summary tables: how the strategy behaved inside each window."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..kernels import performance as pk
from .periods import window_rows


#: Fewer sessions than this and the whole-backtest annualised statistics
#: (annual return and volatility, Sharpe, Sortino, tracking error, information
#: ratio, alpha) are not computed: a quarter of a year is the least that the
#: report annualises.
MIN_SESSIONS_ANNUALISED = 63

#: The summary's statistics of a return series, each the function of that name in
#: :mod:`~zipline_factorarb.kernels.performance`.
STATISTICS = ("total_return", "annual_return", "annual_volatility", "sharpe_ratio",
              "sortino_ratio", "max_drawdown", "tail_ratio")

#: The summary's annualised columns (NaN below :data:`MIN_SESSIONS_ANNUALISED`).
ANNUALISED = ("annual_return", "annual_volatility", "sharpe_ratio", "sortino_ratio",
              "tracking_error", "information_ratio", "alpha")


def crisis_table(returns, benchmark_returns, periods):
    """One row per window overlapping the backtest.

    Columns: ``crisis`` (False for a window that ``periods`` flags as a
    regime, see :class:`~.periods.Periods`), first/last session inside the
    window, sessions, strategy and
    benchmark (compounded) return, active return (difference of the two),
    annualised volatility, max drawdown inside the window, tracking error and
    information ratio of daily active returns, worst day, and days to recover:
    sessions from the window's first day until wealth regains its peak from
    before the window (0 if it never fell below, NaN if not by the end).
    """
    r = returns.to_numpy(dtype=float)
    b = benchmark_returns.astype(float).to_numpy() if benchmark_returns is not None else None
    rows = []
    for row, pos in window_rows(periods, returns.index):
        rw = r[pos]
        row.update({
            "return": pk.total_return(rw),
            "volatility": pk.annual_volatility(rw),
            "max_drawdown": pk.max_drawdown(rw),
            "worst_day": float(np.nanmin(rw)),
            "days_to_recover": pk.days_to_recover(r, int(pos[0])),
        })
        if b is not None:
            bw = b[pos]
            row.update({
                "benchmark_return": pk.total_return(bw),
                "active_return": row["return"] - pk.total_return(bw),
                "benchmark_max_drawdown": pk.max_drawdown(bw),
                "tracking_error": pk.tracking_error(rw, bw),
                "information_ratio": pk.information_ratio(rw, bw),
            })
        rows.append(row)
    columns = ["period", "crisis", "start", "end", "sessions", "return", "benchmark_return",
               "active_return",
               "volatility", "max_drawdown", "benchmark_max_drawdown", "tracking_error",
               "information_ratio", "worst_day", "days_to_recover"]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=[c for c in columns if c in frame.columns or frame.empty])


def summary_table(returns, benchmark_returns, weights=None):
    """The research notebook's summary: returns, risk, Sharpe, IR, TE, holdings.

    Rows ``strategy`` and (when given) ``benchmark``; statistics from
    empyrical (see :mod:`~zipline_factorarb.kernels.performance`), annualised
    with 252 sessions. With fewer than :data:`MIN_SESSIONS_ANNUALISED`
    sessions the :data:`ANNUALISED` columns are NaN (not computed) and
    ``frame.attrs["short"]`` says so. Average holdings count the names with a
    non-zero end-of-day weight, over sessions that hold anything. Alpha and
    beta are against the benchmark (NaN against cash, which does not vary).
    """
    r = returns.to_numpy(dtype=float)
    rows = {"strategy": {name: getattr(pk, name)(r) for name in STATISTICS}}
    if weights is not None and len(weights.columns):
        held = (weights.abs() > 1e-8).sum(axis=1)
        rows["strategy"]["average_holdings"] = float(held[held > 0].mean()) if (held > 0).any() else 0.0
    if benchmark_returns is not None:
        b = benchmark_returns.to_numpy(dtype=float)
        alpha, beta = pk.alpha_beta(r, b)
        rows["strategy"].update({
            "tracking_error": pk.tracking_error(r, b),
            "information_ratio": pk.information_ratio(r, b),
            "alpha": alpha, "beta": beta,
        })
        rows["benchmark"] = {
            **{name: getattr(pk, name)(b) for name in STATISTICS},
            "tracking_error": 0.0, "information_ratio": np.nan,
            "alpha": 0.0 if np.std(b) > 0 else np.nan, "beta": 1.0 if np.std(b) > 0 else np.nan,
        }
    frame = pd.DataFrame(rows).T
    frame.attrs["short"] = len(r) < MIN_SESSIONS_ANNUALISED
    if frame.attrs["short"]:
        frame.loc[:, [c for c in ANNUALISED if c in frame.columns]] = np.nan
    return frame
