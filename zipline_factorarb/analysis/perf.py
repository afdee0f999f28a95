"""Read the perf frame that ``zipline run -o`` writes and pull series out of it.

Any algorithm's pickle works: ours, which record risk diagnostics with the
prefixes below, or a user's, for which the analysis falls back to what the
positions alone tell.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..records import GROSS_EXPOSURE, NET_EXPOSURE

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



#: A benchmark daily return whose magnitude is typically above this is read as
#: a percentage (1.5 meaning 1.5%): the median |daily return| of an equity index
#: is about 0.5%, and 5% would be a crash every other day.
PERCENT_MEDIAN_ABS = 0.05

#: The name ``--benchmark`` takes for a zero-return (cash) benchmark.
CASH = "cash"


class PerfFileError(ValueError):
    """The file is not a usable zipline perf frame."""


class ReturnsError(PerfFileError):
    """Strategy returns that cannot be used: non-finite values or duplicated sessions."""


class BenchmarkReturnsError(PerfFileError):
    """Benchmark returns that cannot be used: missing sessions, non-numeric or
    non-finite values, duplicated dates, or values that look like percentages."""


def _dates(index, n=5):
    shown = ", ".join(str(pd.Timestamp(d).date()) for d in index[:n])
    return shown + (f" and {len(index) - n} more" if len(index) > n else "")


def check_returns(returns, where, what="returns"):
    """Refuse non-finite values and duplicated sessions, naming the dates.

    ``returns`` is a Series with a session index; raises :class:`ReturnsError`.
    """
    index = pd.DatetimeIndex(returns.index)
    dup = index[index.duplicated(keep="first")]
    if len(dup):
        raise ReturnsError(f"{where}: duplicated session(s) {_dates(dup.unique())} in the {what}: "
                           "each session must appear once (a perf frame concatenated from "
                           "overlapping runs?)")
    values = pd.to_numeric(returns, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        kinds = sorted({"NaN" if np.isnan(v) else ("+inf" if v > 0 else "-inf")
                        for v in values[bad]})
        raise ReturnsError(f"{where}: {int(bad.sum())} non-finite {what} ({', '.join(kinds)}) on "
                           f"{_dates(index[bad])}: the report does not drop or fill them; "
                           "fix the backtest or cut the range")


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
        """The recorded columns named ``<prefix><name>``, as numbers, renamed ``<name>``."""
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
    check_returns(perf["returns"], name, "strategy returns")
    returns = perf["returns"].astype(float).rename("strategy")
    recorded = perf[[c for c in perf.columns if c not in ZIPLINE_COLUMNS]]
    backtest = Backtest(perf=perf, returns=returns, benchmark_returns=None,
                        weights=weights_from_positions(perf), recorded=recorded, source=name)
    if benchmark_returns is not None:
        return with_benchmark(backtest, benchmark_returns)
    if "benchmark_period_return" in perf.columns:
        bench = benchmark_returns_of(perf)
        # the first session has no benchmark return in zipline (NaN after shift): 0
        check_returns(bench.iloc[1:], name, "benchmark returns (benchmark_period_return)")
        if bench.abs().sum() > 0:
            backtest.benchmark_returns = align_benchmark(bench.fillna(0.0), returns.index, name)
    return backtest


def with_benchmark(backtest, benchmark_returns):
    """``backtest`` with other benchmark returns, without reading its perf frame again.

    ``benchmark_returns``: a Series of daily returns (aligned and checked by
    :func:`align_benchmark`) or ``"cash"`` (zero returns).
    """
    if isinstance(benchmark_returns, str):
        if benchmark_returns.lower() != CASH:
            raise PerfFileError(f"benchmark {benchmark_returns!r}: use a Series of returns or "
                                f"{CASH!r}")
        benchmark_returns = pd.Series(0.0, index=backtest.returns.index, name=CASH)
    return replace(backtest, benchmark_returns=align_benchmark(
        benchmark_returns, backtest.returns.index, backtest.source))


def book_exposure(backtest):
    """Median net and gross exposure (fractions of the portfolio value) over the
    sessions that hold positions: from the recorded ``net_exposure`` and
    ``gross_exposure`` (:func:`zipline_factorarb.algo.book_exposures`) when the
    algorithm recorded them, else from the positions. ``(nan, nan)`` when the
    book never holds anything.
    """
    rec = backtest.recorded
    if NET_EXPOSURE in rec.columns and GROSS_EXPOSURE in rec.columns:
        net = pd.to_numeric(rec[NET_EXPOSURE], errors="coerce")
        gross = pd.to_numeric(rec[GROSS_EXPOSURE], errors="coerce")
    else:
        net = backtest.weights.sum(axis=1)
        gross = backtest.weights.abs().sum(axis=1)
    held = gross > 1e-6
    if not held.any():
        return np.nan, np.nan
    return float(net[held].median()), float(gross[held].median())


#: A book whose median |net exposure| is below this fraction of its median
#: gross exposure is dollar-neutral: the report compares it with cash.
DOLLAR_NEUTRAL_RATIO = 0.1


def is_dollar_neutral(backtest):
    """Whether the book is dollar-neutral (see :data:`DOLLAR_NEUTRAL_RATIO`)."""
    net, gross = book_exposure(backtest)
    return bool(gross > 0 and abs(net) < DOLLAR_NEUTRAL_RATIO * gross)


def align_benchmark(benchmark_returns, sessions, where):
    """Benchmark returns on the backtest's ``sessions``, refusing gaps.

    Every session but the first must have a finite return (the first session's
    return is not part of the backtest's compounding in zipline, and a missing
    one there is taken as 0). Raises :class:`BenchmarkReturnsError` naming the
    sessions that are missing.
    """
    bench = benchmark_returns.copy()
    bench.index = _utc_sessions(bench.index)
    dup = bench.index[bench.index.duplicated()]
    if len(dup):
        raise BenchmarkReturnsError(f"{where}: duplicated benchmark date(s) {_dates(dup.unique())}")
    bench = pd.to_numeric(bench, errors="coerce").astype(float).reindex(sessions)
    if bench.isna().all():
        raise BenchmarkReturnsError(f"{where}: the benchmark returns do not overlap the "
                                    f"backtest's sessions ({_dates(sessions[:1])} .. "
                                    f"{_dates(sessions[-1:])})")
    missing = bench.index[1:][~np.isfinite(bench.iloc[1:].to_numpy())]
    if len(missing):
        raise BenchmarkReturnsError(
            f"{where}: the benchmark returns miss {len(missing)} of the backtest's "
            f"{len(sessions)} sessions ({_dates(missing)}); give returns for every session "
            "(a partial benchmark is not filled with zeros)")
    return bench.fillna(0.0).rename("benchmark")


def read_benchmark_file(path):
    """Daily benchmark returns from a CSV ``date,return`` (or a one-column file).

    Values must be plain finite numbers given as fractions (0.012 for 1.2%);
    dates must parse and appear once. Raises :class:`BenchmarkReturnsError`
    naming the file, line and value at fault; values that look like
    percentages (median |return| above :data:`PERCENT_MEDIAN_ABS`, or a return
    of -100% or less) are refused with a hint to divide by 100.
    """
    path = Path(path)
    if not path.exists():
        raise PerfFileError(f"{path}: benchmark returns file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise BenchmarkReturnsError(f"{path}: not a CSV file of date,return ({exc})") from None
    cols = {c.lower(): c for c in frame.columns}
    if "date" not in cols or len(frame.columns) < 2:
        raise PerfFileError(f"{path}: need columns date,return; found {list(frame.columns)}")
    value_col = cols.get("return") or [c for c in frame.columns if c != cols["date"]][0]
    if frame.empty:
        raise BenchmarkReturnsError(f"{path}: no rows")
    dates = pd.to_datetime(frame[cols["date"]], errors="coerce", format="mixed")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise PerfFileError(f"{path}: line {i + 2}: unparsable date {frame[cols['date']].iloc[i]!r}")
    text = frame[value_col].str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    for i in np.flatnonzero(~np.isfinite(values)):
        raw = text.iloc[i]
        hint = ""
        if raw.endswith("%"):
            hint = "; give fractions without a % sign (0.012 for 1.2%)"
        elif "," in raw:
            hint = "; no thousands or decimal commas"
        kind = "an empty value" if raw == "" else (
            f"a non-finite value {raw!r}" if raw.lower().lstrip("+-") in ("nan", "inf", "infinity")
            else f"a value that is not a number {raw!r}")
        raise BenchmarkReturnsError(f"{path}: line {i + 2} ({dates.iloc[i].date()}): {kind} in "
                                    f"column {value_col!r}{hint}")
    dup = dates[dates.duplicated()]
    if len(dup):
        i = int(np.flatnonzero(dates.duplicated().to_numpy())[0])
        raise BenchmarkReturnsError(f"{path}: line {i + 2}: date {dates.iloc[i].date()} appears "
                                    "more than once")
    median_abs = float(np.median(np.abs(values)))
    if median_abs > PERCENT_MEDIAN_ABS or (values <= -1.0).any():
        worst = int(np.argmin(values)) if (values <= -1.0).any() else int(np.argmax(np.abs(values)))
        raise BenchmarkReturnsError(
            f"{path}: the returns look like percentages (median |return| {median_abs:.3g}; "
            f"line {worst + 2}: {values[worst]:.6g}): give daily returns as fractions "
            "(0.012 for 1.2%), i.e. divide the column by 100")
    return pd.Series(values, index=pd.DatetimeIndex(dates), name=path.name)
