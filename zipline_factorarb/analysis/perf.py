"""Read the perf frame that ``zipline run -o`` writes and pull series out of it.

Any algorithm's pickle works: ours, which record risk diagnostics with the
prefixes below, or a user's, for which the analysis falls back to what the
positions alone tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("returns", "portfolio_value", "positions", "transactions")

#: zipline's own perf columns; anything else in the frame was ``record()``-ed.
ZIPLINE_COLUMNS = frozenset("""
period_open period_close short_value ending_value long_exposure shorts_count ending_exposure
starting_cash ending_cash long_value portfolio_value starting_exposure starting_value
gross_leverage orders net_leverage returns transactions pnl capital_used positions
longs_count short_exposure period_label sortino sharpe alpha beta max_drawdown trading_days
excess_return algorithm_period_return max_leverage algo_volatility benchmark_period_return
benchmark_volatility treasury_period_return treasury_return benchmark_return
""".split())

#: Prefixes of recorded variables that the analysis understands.
FACTOR_EXPOSURE = "factor_exposure_"
SECTOR_WEIGHT = "sector_weight_"
BENCHMARK_SECTOR_WEIGHT = "benchmark_sector_weight_"
RISK_CONTRIBUTION = "risk_contribution_"
EX_ANTE_TEV = "ex_ante_tev"


class PerfFileError(ValueError):
    """The file is not a usable zipline perf frame."""


@dataclass
class Backtest:
    """The parts of a perf frame the analysis uses (tz-aware UTC session index)."""

    perf: pd.DataFrame
    returns: pd.Series
    benchmark_returns: pd.Series | None
    weights: pd.DataFrame  # sessions x symbols, end-of-day value / portfolio value
    recorded: pd.DataFrame
    source: str

    def recorded_with(self, prefix):
        cols = [c for c in self.recorded.columns if str(c).startswith(prefix)]
        frame = self.recorded[cols].apply(pd.to_numeric, errors="coerce")
        return frame.rename(columns=lambda c: str(c)[len(prefix):])


def _utc_sessions(index):
    index = pd.DatetimeIndex(index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.normalize()


def weights_from_positions(perf):
    """End-of-day weights by symbol from zipline's ``positions`` column."""
    rows = {}
    for day, positions, value in zip(perf.index, perf["positions"], perf["portfolio_value"]):
        row = {}
        for p in positions or []:
            asset = p["sid"]
            key = getattr(asset, "symbol", None) or str(asset)
            row[key] = row.get(key, 0.0) + p["amount"] * p["last_sale_price"] / value
        rows[day] = row
    frame = pd.DataFrame.from_dict(rows, orient="index").reindex(perf.index).fillna(0.0)
    return frame.sort_index(axis=1)


def benchmark_returns_of(perf):
    """Daily benchmark returns from zipline's cumulative ``benchmark_period_return``
    (None when the frame has no such column)."""
    if "benchmark_period_return" not in perf:
        return None
    cum = 1.0 + perf["benchmark_period_return"].astype(float)
    return cum / cum.shift(1, fill_value=1.0) - 1.0


def load_backtest(source, benchmark_returns=None):
    """Load a perf pickle (path) or frame into a :class:`Backtest`.

    Raises :class:`PerfFileError` naming the file and what is wrong when it is
    not a zipline perf frame or holds no sessions.
    """
    name = str(source) if not isinstance(source, pd.DataFrame) else "<DataFrame>"
    if isinstance(source, pd.DataFrame):
        perf = source
    else:
        path = Path(source)
        if not path.exists():
            raise PerfFileError(f"{path}: file not found")
        try:
            perf = pd.read_pickle(path)
        except Exception as exc:
            raise PerfFileError(f"{path}: not a pickle written by `zipline run -o` ({exc})") from None
    if not isinstance(perf, pd.DataFrame):
        raise PerfFileError(f"{name}: holds a {type(perf).__name__}, not zipline's perf DataFrame")
    missing = [c for c in REQUIRED_COLUMNS if c not in perf.columns]
    if missing:
        raise PerfFileError(f"{name}: not a zipline perf frame: missing column(s) {missing}")
    if perf.empty:
        raise PerfFileError(f"{name}: the backtest has no sessions")
    perf = perf.copy()
    perf.index = _utc_sessions(perf.index)
    returns = perf["returns"].astype(float).rename("strategy")
    if benchmark_returns is None and "benchmark_period_return" in perf.columns:
        bench = benchmark_returns_of(perf)
        benchmark_returns = bench if bench.abs().sum() > 0 else None
    if benchmark_returns is not None:
        benchmark_returns = benchmark_returns.copy()
        benchmark_returns.index = _utc_sessions(benchmark_returns.index)
        benchmark_returns = benchmark_returns.reindex(returns.index).astype(float).rename("benchmark")
        if benchmark_returns.isna().all():
            raise PerfFileError(f"{name}: the benchmark returns do not overlap the backtest's sessions")
        benchmark_returns = benchmark_returns.fillna(0.0)
    recorded = perf[[c for c in perf.columns if c not in ZIPLINE_COLUMNS]]
    return Backtest(perf=perf, returns=returns, benchmark_returns=benchmark_returns,
                    weights=weights_from_positions(perf), recorded=recorded, source=name)


def read_benchmark_file(path):
    """Daily benchmark returns from a CSV ``date,return`` (or a one-column file)."""
    path = Path(path)
    if not path.exists():
        raise PerfFileError(f"{path}: benchmark returns file not found")
    frame = pd.read_csv(path)
    cols = {c.lower(): c for c in frame.columns}
    if "date" not in cols or len(frame.columns) < 2:
        raise PerfFileError(f"{path}: need columns date,return; found {list(frame.columns)}")
    value_col = cols.get("return") or [c for c in frame.columns if c != cols["date"]][0]
    dates = pd.to_datetime(frame[cols["date"]], errors="coerce")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise PerfFileError(f"{path}: line {i + 2}: unparsable date {frame[cols['date']].iloc[i]!r}")
    return pd.Series(pd.to_numeric(frame[value_col], errors="coerce").to_numpy(), index=dates)
