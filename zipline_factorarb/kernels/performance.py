"""Performance, drawdown and diversification statistics on plain arrays.

Conventions follow empyrical (and so pyfolio): simple daily returns,
annualisation by 252 sessions, sample standard deviation (ddof=1),
drawdowns measured on the compounded wealth curve. NaN returns are treated
as zero (no position) where a path is compounded, and ignored in moments.
"""

from __future__ import annotations

import numpy as np

PERIODS_PER_YEAR = 252


def _clean(returns):
    r = np.asarray(returns, dtype=float)
    return r[~np.isnan(r)]


def total_return(returns):
    """Compounded return of the period: prod(1 + r) - 1."""
    r = _clean(returns)
    return float(np.prod(1.0 + r) - 1.0) if r.size else np.nan


def annual_return(returns, periods_per_year=PERIODS_PER_YEAR):
    """Compound annual growth rate."""
    r = _clean(returns)
    if not r.size:
        return np.nan
    growth = np.prod(1.0 + r)
    return float(growth ** (periods_per_year / r.size) - 1.0)


def annual_volatility(returns, periods_per_year=PERIODS_PER_YEAR):
    """Sample standard deviation x sqrt(periods per year)."""
    r = _clean(returns)
    return float(np.std(r, ddof=1) * np.sqrt(periods_per_year)) if r.size > 1 else np.nan


def sharpe_ratio(returns, periods_per_year=PERIODS_PER_YEAR):
    """mean / std x sqrt(periods per year) (no risk-free rate)."""
    r = _clean(returns)
    if r.size < 2:
        return np.nan
    sd = np.std(r, ddof=1)
    return float(np.mean(r) / sd * np.sqrt(periods_per_year)) if sd > 0 else np.nan


def wealth(returns):
    """Compounded wealth curve starting from 1 before the first return."""
    r = np.nan_to_num(np.asarray(returns, dtype=float))
    return np.cumprod(1.0 + r)


def drawdown(returns):
    """Drawdown path: wealth / running peak - 1 (the peak includes the start, 1)."""
    w = wealth(returns)
    peak = np.maximum.accumulate(np.concatenate([[1.0], w]))[1:]
    return w / peak - 1.0


def max_drawdown(returns):
    """Most negative drawdown (a number <= 0)."""
    r = np.asarray(returns, dtype=float)
    return float(drawdown(r).min()) if r.size else np.nan


def active_returns(returns, benchmark_returns):
    """Strategy minus benchmark, day by day."""
    return np.asarray(returns, dtype=float) - np.asarray(benchmark_returns, dtype=float)


def tracking_error(returns, benchmark_returns, periods_per_year=PERIODS_PER_YEAR):
    """Annualised standard deviation of active returns."""
    return annual_volatility(active_returns(returns, benchmark_returns), periods_per_year)


def information_ratio(returns, benchmark_returns, periods_per_year=PERIODS_PER_YEAR):
    """Annualised mean active return over tracking error."""
    return sharpe_ratio(active_returns(returns, benchmark_returns), periods_per_year)


def days_to_recover(returns, start):
    """Sessions from ``start`` until wealth regains the pre-crisis peak.

    ``returns`` is the whole backtest and ``start`` the position of a crisis
    window's first session in it. The level to regain is the running peak of
    wealth just before ``start``. Returns 0 when the curve never falls below
    it afterwards, NaN when it has not recovered by the end of the data.
    """
    w = np.concatenate([[1.0], wealth(returns)])  # w[k] = wealth after k returns
    peak = w[: start + 1].max()
    after = w[start + 1:]
    if after.size == 0 or after.min() >= peak:
        return 0
    below = np.flatnonzero(after < peak)[0]
    back = np.flatnonzero(after[below:] >= peak)
    return int(below + back[0] + 1) if back.size else np.nan


def herfindahl(weights):
    """Herfindahl-Hirschman concentration of |weights| normalised to sum 1."""
    w = np.abs(np.asarray(weights, dtype=float))
    s = w.sum()
    return float(np.sum((w / s) ** 2)) if s > 0 else np.nan


def effective_number_of_bets(contributions):
    """exp(entropy) of the normalised |contributions| (Meucci 2009).

    With risk contributions this is the effective number of independent
    bets; with weights, the effective number of holdings. Between 1 and the
    number of non-zero entries.
    """
    c = np.abs(np.asarray(contributions, dtype=float))
    s = c.sum()
    if s <= 0:
        return np.nan
    p = c[c > 0] / s
    return float(np.exp(-np.sum(p * np.log(p))))


def euler_risk_contributions(weights, covariance):
    """Per-asset contributions to the variance w' S w: w_i (S w)_i.

    They sum to the total variance exactly (Euler's theorem for the
    homogeneous function w' S w). Works for active weights (w - b) too.
    """
    w = np.asarray(weights, dtype=float)
    s = np.asarray(covariance, dtype=float)
    return w * (s @ w)


def group_contributions(contributions, groups, labels):
    """Sum contributions by group label; returns an array aligned to ``labels``."""
    contributions = np.asarray(contributions, dtype=float)
    groups = np.asarray(groups)
    return np.array([contributions[groups == g].sum() for g in labels])
