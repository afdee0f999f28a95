"""Crisis and summary tables: how the strategy behaved inside each window."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..kernels import performance as pk


def _naive(index):
    index = pd.DatetimeIndex(index)
    return index.tz_convert(None) if index.tz is not None else index


def crisis_table(returns, benchmark_returns, periods):
    """One row per crisis window overlapping the backtest.

    Columns: first/last session inside the window, sessions, strategy and
    benchmark (compounded) return, active return (difference of the two),
    annualised volatility, max drawdown inside the window, tracking error and
    information ratio of daily active returns, worst day, and days to recover:
    sessions from the window's first day until wealth regains its peak from
    before the window (0 if it never fell below, NaN if not by the end).
    """
    r = returns.astype(float)
    days = _naive(r.index)
    b = benchmark_returns.astype(float).to_numpy() if benchmark_returns is not None else None
    rows = []
    for name, (start, end) in periods.items():
        inside = (days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))
        if not inside.any():
            continue
        pos = np.flatnonzero(inside)
        rw = r.to_numpy()[pos]
        row = {
            "period": name, "start": days[pos[0]].date(), "end": days[pos[-1]].date(),
            "sessions": len(pos),
            "return": pk.total_return(rw),
            "volatility": pk.annual_volatility(rw),
            "max_drawdown": pk.max_drawdown(rw),
            "worst_day": float(np.nanmin(rw)),
            "days_to_recover": pk.days_to_recover(r.to_numpy(), int(pos[0])),
        }
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
    columns = ["period", "start", "end", "sessions", "return", "benchmark_return", "active_return",
               "volatility", "max_drawdown", "benchmark_max_drawdown", "tracking_error",
               "information_ratio", "worst_day", "days_to_recover"]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=[c for c in columns if c in frame.columns or frame.empty])


def summary_table(returns, benchmark_returns, weights=None):
    """The research notebook's summary: Sharpe, IR, TE, average holdings.

    Rows ``strategy`` and (when given) ``benchmark``; annualised with 252
    sessions. Average holdings count the names with a non-zero end-of-day
    weight, over sessions that hold anything.
    """
    r = returns.to_numpy(dtype=float)
    rows = {"strategy": {
        "annual_return": pk.annual_return(r),
        "total_return": pk.total_return(r),
        "annual_volatility": pk.annual_volatility(r),
        "sharpe_ratio": pk.sharpe_ratio(r),
        "max_drawdown": pk.max_drawdown(r),
    }}
    if weights is not None and len(weights.columns):
        held = (weights.abs() > 1e-8).sum(axis=1)
        rows["strategy"]["average_holdings"] = float(held[held > 0].mean()) if (held > 0).any() else 0.0
    if benchmark_returns is not None:
        b = benchmark_returns.to_numpy(dtype=float)
        rows["strategy"]["tracking_error"] = pk.tracking_error(r, b)
        rows["strategy"]["information_ratio"] = pk.information_ratio(r, b)
        rows["benchmark"] = {
            "annual_return": pk.annual_return(b), "total_return": pk.total_return(b),
            "annual_volatility": pk.annual_volatility(b), "sharpe_ratio": pk.sharpe_ratio(b),
            "max_drawdown": pk.max_drawdown(b), "tracking_error": 0.0, "information_ratio": np.nan,
        }
    return pd.DataFrame(rows).T
