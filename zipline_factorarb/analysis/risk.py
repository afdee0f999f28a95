"""Risk and diversification through time, and their behaviour around crises.

Two sources, used together when both are there:

- what the algorithm recorded (``record()``): ex-ante tracking error
  (``ex_ante_tev``), factor exposures (``factor_exposure_<name>``), sector
  weights (``sector_weight_<name>``, ``benchmark_sector_weight_<name>``) and
  shares of active risk (``risk_contribution_<name>``);
- the end-of-day positions of any perf frame, with the bundle's adjusted
  returns: every fifth session, the sample covariance of daily returns over a
  trailing window gives each asset's Euler contribution w_i (S w)_i to the
  (active) variance w' S w, grouped by GICS sector. With a benchmark asset,
  the weights are active weights w - b, b being 1 on the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.sectors import GICS_SECTORS
from ..kernels import performance as pk
from ..kernels import risk as kr
from ..records import (BENCHMARK_SECTOR_WEIGHT, EX_ANTE_TEV, FACTOR_EXPOSURE, N_HOLDINGS,
                       RISK_CONTRIBUTION, SECTOR_WEIGHT)

BENCHMARK_GROUP = "Benchmark"
UNKNOWN_GROUP = "Unknown"


@dataclass
class RiskReport:
    diversification: pd.DataFrame  # date x (n_holdings, hhi, effective_holdings[, effective_bets])
    sector_weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    benchmark_sector_weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    risk_shares: pd.DataFrame = field(default_factory=pd.DataFrame)  # date x group, rows sum to 1
    # estimated by sector from the positions when risk_shares holds recorded factor shares
    sector_risk_shares: pd.DataFrame = field(default_factory=pd.DataFrame)
    ex_ante_tev: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    factor_exposures: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list = field(default_factory=list)


def _every(index, step=5):
    """Every ``step``-th session and the last one."""
    picked = index[::step]
    return picked if picked[-1] == index[-1] else picked.append(index[-1:])


def diversification(weights):
    """Holdings, HHI and effective number of holdings per session."""
    w = weights.to_numpy(dtype=float)
    held = (np.abs(w) > 1e-8).sum(axis=1)
    return pd.DataFrame({
        N_HOLDINGS: held,
        "hhi": [pk.herfindahl(row) for row in w],  # NaN for an empty book
        "effective_holdings": [pk.effective_number_of_bets(row) for row in w],
    }, index=weights.index)


def sector_label(code):
    return GICS_SECTORS.get(int(code), UNKNOWN_GROUP)


def estimated_risk(weights, asset_returns, sectors, benchmark_symbol=None, window=126, dates=None):
    """Euler risk shares by sector and effective bets from positions.

    Parameters
    ----------
    weights : DataFrame
        Sessions x symbols end-of-day weights (tz-naive index).
    asset_returns : DataFrame
        Daily returns of the same symbols (and the benchmark) from the bundle.
    sectors : Series
        Symbol -> GICS code.
    benchmark_symbol : str, optional
        When given and present in ``asset_returns``, risk is active risk.
    Returns
    -------
    shares : DataFrame (date x group), rows summing to 1
    total : DataFrame (date x [variance, tev, effective_bets])
    """
    dates = _every(weights.index) if dates is None else dates
    share_rows, totals = {}, {}
    for day in dates:
        w = weights.loc[day]
        active = w[w.abs() > 1e-8].copy()
        if benchmark_symbol is not None and benchmark_symbol in asset_returns.columns:
            active[benchmark_symbol] = active.get(benchmark_symbol, 0.0) - 1.0
        symbols = list(active.index)
        if not symbols:
            continue
        hist = asset_returns.loc[:day, symbols].iloc[-window:]
        if len(hist) < 20:
            continue
        cov = np.cov(hist.fillna(0.0).to_numpy(), rowvar=False, ddof=1).reshape(len(symbols), len(symbols))
        contrib = kr.risk_contributions(active.to_numpy(), covariance=cov).asset
        total = float(contrib.sum())
        groups = [BENCHMARK_GROUP if s == benchmark_symbol else sector_label(sectors.get(s, -1))
                  for s in symbols]
        labels = sorted(set(groups))
        share_rows[day] = dict(zip(labels, pk.group_contributions(contrib, groups, labels) / total))
        totals[day] = {"variance": total, "tev": np.sqrt(max(total, 0.0) * 252),
                       "effective_bets": pk.effective_number_of_bets(contrib)}
    return (pd.DataFrame.from_dict(share_rows, orient="index").fillna(0.0),
            pd.DataFrame.from_dict(totals, orient="index"))


def risk_through_time(backtest, bundle=None, benchmark_symbol=None, window=126, environ=None):
    """Build a :class:`RiskReport` from a backtest (and its bundle, if given)."""
    weights = backtest.weights.copy()
    weights.index = weights.index.tz_convert(None)
    report = RiskReport(diversification=diversification(weights))
    tev = backtest.recorded.get(EX_ANTE_TEV)
    if tev is not None:
        report.ex_ante_tev = pd.to_numeric(tev, errors="coerce").rename(None)
        report.ex_ante_tev.index = report.ex_ante_tev.index.tz_convert(None)
    for attr, prefix in (("factor_exposures", FACTOR_EXPOSURE), ("sector_weights", SECTOR_WEIGHT),
                         ("benchmark_sector_weights", BENCHMARK_SECTOR_WEIGHT),
                         ("risk_shares", RISK_CONTRIBUTION)):
        frame = backtest.recorded_with(prefix)
        if len(frame.columns):
            frame.index = frame.index.tz_convert(None)
            setattr(report, attr, frame)
    if len(report.risk_shares.columns):
        # effective number of bets from the recorded (factor and specific) shares
        recorded_bets = report.risk_shares.apply(
            lambda row: pk.effective_number_of_bets(row.fillna(0.0).to_numpy()), axis=1)
        report.diversification["effective_bets"] = recorded_bets.reindex(
            report.diversification.index)
    if not len(report.risk_shares.columns) and bundle is None:
        report.notes.append("risk shares need either recorded risk_contribution_* values or "
                            "--bundle to estimate them from the positions")
    if bundle is not None and len(weights.columns):
        from .bundle_data import adjusted_returns, sectors_of

        symbols = list(weights.columns)
        if benchmark_symbol and benchmark_symbol not in symbols:
            symbols.append(benchmark_symbol)
        start = weights.index[0] - pd.Timedelta(days=int(window * 1.6))
        rets = adjusted_returns(bundle, symbols, start, weights.index[-1], environ=environ)
        sectors = sectors_of(bundle, symbols, environ=environ)
        if not len(report.sector_weights.columns):
            labels = weights.columns.map(lambda s: sector_label(sectors.get(s, -1)))
            report.sector_weights = weights.T.groupby(labels).sum().T
        shares, totals = estimated_risk(weights, rets, sectors, benchmark_symbol, window)
        recorded_shares = len(report.risk_shares.columns) > 0
        if recorded_shares:
            report.sector_risk_shares = shares  # by sector, beside the recorded factors
        else:
            report.risk_shares = shares
        if report.ex_ante_tev.empty and len(totals):
            report.ex_ante_tev = totals["tev"]
        if len(totals) and not recorded_shares:
            eb = totals["effective_bets"].reindex(report.diversification.index)
            report.diversification["effective_bets"] = eb
    return report


def around_crises(frame, periods, pad=63, sessions=None):
    """Mean of each column before, during and after each crisis window.

    ``pad`` sessions before the window's start and after its end, counted on
    ``sessions`` (the backtest's daily index; default: ``frame``'s own index,
    right when ``frame`` has a row every session, while risk estimated every
    fifth session needs the daily index to keep 63 sessions from becoming
    315); windows that do not overlap ``frame`` are skipped. Returns a long
    table with columns period, phase, and one per column of ``frame``.
    """
    if frame is None or frame.empty:
        return pd.DataFrame()
    frame = frame.dropna(how="all")
    index = frame.index
    days = index if sessions is None else pd.DatetimeIndex(sessions)
    rows = []
    for name, (start, end) in periods.items():
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        inside = (index >= start) & (index <= end)
        if not inside.any():
            continue
        first = int(days.searchsorted(start, side="left"))
        last = int(days.searchsorted(end, side="right")) - 1
        before_from = days[max(first - pad, 0)]
        after_to = days[min(last + pad, len(days) - 1)]
        phases = {
            "before": frame[(index >= before_from) & (index < start)],
            "during": frame[inside],
            "after": frame[(index > end) & (index <= after_to)],
        }
        for phase, part in phases.items():
            if len(part):
                rows.append({"period": name, "phase": phase, **part.mean().to_dict()})
    return pd.DataFrame(rows)
