"""Performance, drawdown and diversification statistics on plain arrays.

The return statistics (total and annual return, volatility, Sharpe and
Sortino ratios, maximum drawdown, tail ratio, alpha and beta) are those of
empyrical-reloaded, the library pyfolio uses: this module only fixes the
conventions (simple daily returns, 252 sessions a year, no risk-free rate,
sample standard deviation) and the NaN handling (NaN returns are dropped
before a statistic; an empty or one-value series gives NaN), so that every
table of the project reads the same numbers. The path functions (wealth,
drawdown, days to recover) and the diversification measures are plain numpy.
"""

from __future__ import annotations

import numpy as np

PERIODS_PER_YEAR = 252


def _empyrical(name, r, enough, **kwargs):
    """empyrical's statistic ``name`` of the clean returns ``r``; NaN unless ``enough``."""
    if not enough:
        return np.nan
    import empyrical  # imported on first use: it pulls in pandas and scipy

    return float(getattr(empyrical, name)(r, **kwargs))


def _clean(returns):
    r = np.asarray(returns, dtype=float)
    return r[~np.isnan(r)]


def total_return(returns):
    """Compounded return of the period: prod(1 + r) - 1 (empyrical ``cum_returns_final``)."""
    r = _clean(returns)
    return _empyrical("cum_returns_final", r, r.size > 0)


def annual_return(returns, periods_per_year=PERIODS_PER_YEAR):
    """Compound annual growth rate (empyrical ``annual_return``)."""
    r = _clean(returns)
    return _empyrical("annual_return", r, r.size > 0, annualization=periods_per_year)


def annual_volatility(returns, periods_per_year=PERIODS_PER_YEAR):
    """Sample standard deviation x sqrt(periods per year) (empyrical ``annual_volatility``)."""
    r = _clean(returns)
    return _empyrical("annual_volatility", r, r.size >= 2, annualization=periods_per_year)


def sharpe_ratio(returns, periods_per_year=PERIODS_PER_YEAR):
    """mean / std x sqrt(periods per year), no risk-free rate (empyrical ``sharpe_ratio``)."""
    r = _clean(returns)
    enough = r.size >= 2 and np.std(r, ddof=1) > 0
    return _empyrical("sharpe_ratio", r, enough, annualization=periods_per_year)


def sortino_ratio(returns, periods_per_year=PERIODS_PER_YEAR):
    """Annualised mean over downside deviation (empyrical ``sortino_ratio``, target 0)."""
    r = _clean(returns)
    enough = r.size >= 2 and (r < 0).any()
    return _empyrical("sortino_ratio", r, enough, annualization=periods_per_year)


def tail_ratio(returns):
    """95th percentile over |5th percentile| of daily returns (empyrical ``tail_ratio``)."""
    r = _clean(returns)
    # e.g. a cash benchmark: no left tail to compare with
    return _empyrical("tail_ratio", r, r.size >= 2 and np.percentile(r, 5) != 0)


def alpha_beta(returns, benchmark_returns, periods_per_year=PERIODS_PER_YEAR):
    """Annualised alpha and beta against the benchmark (empyrical ``alpha_beta``).

    NaN, NaN when the benchmark does not vary (e.g. a cash benchmark).
    """
    r = np.asarray(returns, dtype=float)
    b = np.asarray(benchmark_returns, dtype=float)
    keep = ~(np.isnan(r) | np.isnan(b))
    r, b = r[keep], b[keep]
    if r.size < 2 or not np.std(b) > 0:
        return np.nan, np.nan
    import empyrical

    alpha, beta = empyrical.alpha_beta_aligned(r, b, annualization=periods_per_year)
    return float(alpha), float(beta)


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
    """Most negative drawdown, a number <= 0 (empyrical ``max_drawdown``)."""
    r = _clean(returns)
    return _empyrical("max_drawdown", r, r.size > 0)


def active_returns(returns, benchmark_returns):
    """Strategy minus benchmark, day by day."""
    return np.asarray(returns, dtype=float) - np.asarray(benchmark_returns, dtype=float)


def tracking_error(returns, benchmark_returns, periods_per_year=PERIODS_PER_YEAR):
    """Annualised standard deviation of active returns (empyrical's volatility of them)."""
    return annual_volatility(active_returns(returns, benchmark_returns), periods_per_year)


def information_ratio(returns, benchmark_returns, periods_per_year=PERIODS_PER_YEAR):
    """Annualised mean active return over tracking error (empyrical's Sharpe ratio of them;
    ``excess_sharpe`` x sqrt(periods per year))."""
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


def group_contributions(contributions, groups, labels):
    """Sum contributions by group label; returns an array aligned to ``labels``."""
    contributions = np.asarray(contributions, dtype=float)
    groups = np.asarray(groups)
    return np.array([contributions[groups == g].sum() for g in labels])


def carino_weights(returns, benchmark_returns):
    """Carino's linking coefficients ``k_t / k`` for an active return over a window.

    With ``R`` and ``B`` the compounded strategy and benchmark returns of the
    window and ``k = (ln(1+R) - ln(1+B)) / (R - B)`` (``1 / (1+R)`` when equal),
    ``k_t`` the same of each day's ``r_t, b_t``: ``sum_t (k_t / k) (r_t - b_t)``
    equals ``R - B`` exactly, so daily parts that sum to the day's active
    return, weighted by these coefficients, sum to the window's active return
    (Carino 1999, "Combining attribution effects over time").
    """
    r = np.asarray(returns, dtype=float)
    b = np.asarray(benchmark_returns, dtype=float)

    def k(x, y):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        diff = x - y
        same = np.abs(diff) < 1e-14
        safe = np.where(same, 1.0, diff)
        return np.where(same, 1.0 / (1.0 + x), (np.log1p(x) - np.log1p(y)) / safe)

    total_r = np.prod(1.0 + r) - 1.0
    total_b = np.prod(1.0 + b) - 1.0
    return k(r, b) / k(total_r, total_b)


def linked_parts(parts, returns, benchmark_returns):
    """Daily attribution parts (T x P) linked over the window into P numbers.

    ``parts`` rows must sum to the daily active returns ``r - b``; the result
    then sums to the window's compounded active return ``R - B``
    (:func:`carino_weights`).
    """
    weights = carino_weights(returns, benchmark_returns)
    return weights @ np.asarray(parts, dtype=float)
