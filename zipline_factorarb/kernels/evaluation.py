"""The IC by lag and statistics of daily IC series (NaN-aware numpy).

The factor evaluation's tables (rank IC by horizon, returns by quantile,
turnover, autocorrelation) come from alphalens-reloaded (see
:mod:`zipline_factorarb.analysis.factor_eval`). What alphalens does not give
is here: the rank IC of a factor with the one-session return ``k`` sessions
after its own close (:func:`lag_ic`; alphalens' forward returns start at the
factor's date), the Newey-West standard error of a mean IC and the summary of
IC series. ``lag_ic`` ranks every row at once (scipy's ``rankdata``): the
same numbers through alphalens' per-date ``spearmanr`` are many times slower
(``benchmarks/bench_ic_by_lag.py`` measures both).
"""

from __future__ import annotations

import warnings

import numpy as np


def rank_ic(factor, forward_returns, min_assets=5):
    """Spearman correlation across assets, one per row (NaN if too few pairs).

    ``factor`` and ``forward_returns`` are (T, N); ties get average ranks.
    """
    from scipy.stats import rankdata

    f = np.asarray(factor, dtype=float)
    r = np.asarray(forward_returns, dtype=float)
    both = ~np.isnan(f) & ~np.isnan(r)
    n = both.sum(axis=1, keepdims=True)
    ranks = [rankdata(np.where(both, v, np.nan), axis=1, nan_policy="omit") for v in (f, r)]
    with np.errstate(invalid="ignore", divide="ignore"):
        a, b = (np.where(both, x - np.nansum(x, axis=1, keepdims=True) / n, 0.0) for x in ranks)
        ic = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.where(n[:, 0] >= min_assets, ic, np.nan)


def lag_ic(factor, returns, own_row, lags, min_assets=5, groups=None):
    """Rank IC of each factor row with the one-session return ``lag`` sessions on.

    Parameters
    ----------
    factor : (T, N) array
        Factor values; row ``t`` was computed from data up to some close,
        its *own close*.
    returns : (S, N) array
        One-session returns on a session calendar: row ``s`` is the return
        from the close of session ``s - 1`` to the close of session ``s``.
    own_row : (T,) int array
        Row of ``returns`` that ends at factor row ``t``'s own close.
    lags : sequence of int
        Lag 0 pairs factor row ``t`` with ``returns[own_row[t]]`` (the
        return ending at its own close, which the factor saw), lag ``k``
        with ``returns[own_row[t] + k]`` (the ``k``-th session after it).
    groups : (N,) array, optional
        Group label of each asset: each row's returns are first demeaned
        within each group over the assets that have a factor value
        (alphalens' ``group_adjust``).

    Returns
    -------
    (T, len(lags)) array of Spearman correlations across assets; NaN where
    ``own_row[t] + k`` is outside ``0 .. S-1`` or fewer than ``min_assets``
    assets have both values.
    """
    f = np.asarray(factor, dtype=float)
    r = np.asarray(returns, dtype=float)
    own = np.asarray(own_row, dtype=np.int64)
    if f.ndim != 2 or r.ndim != 2 or f.shape[1] != r.shape[1]:
        raise ValueError(f"factor (T, N) and returns (S, N) must share N; got {f.shape}, {r.shape}")
    if own.shape != (f.shape[0],):
        raise ValueError(f"own_row must have one entry per factor row; got {own.shape}")
    lags = [int(k) for k in lags]
    out = np.full((f.shape[0], len(lags)), np.nan)
    for j, k in enumerate(lags):
        rows = own + k
        ok = (rows >= 0) & (rows < r.shape[0])
        if not ok.any():
            continue
        aligned = np.full(f.shape, np.nan)
        aligned[ok] = r[rows[ok]]
        if groups is not None:
            aligned[np.isnan(f)] = np.nan
            for g in np.unique(groups):
                cols = np.asarray(groups) == g
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
                    aligned[:, cols] -= np.nanmean(aligned[:, cols], axis=1, keepdims=True)
        out[:, j] = rank_ic(f, aligned, min_assets=min_assets)
    return out


def newey_west_bandwidth(n):
    """Newey-West (1994) rule of thumb: floor(4 (n / 100) ** (2 / 9))."""
    return int(np.floor(4.0 * (max(int(n), 0) / 100.0) ** (2.0 / 9.0)))


def newey_west_se(x, max_lag=None):
    """Standard error of the mean of ``x`` (NaN dropped) with Bartlett weights.

    Long-run variance ``g0 + 2 sum_{j=1..L} (1 - j / (L + 1)) g_j`` with the
    autocovariances ``g_j = sum_t (x_t - m)(x_{t-j} - m) / n``; the standard
    error is ``sqrt(lrv / n)`` (statsmodels' HAC without small-sample
    correction). ``max_lag`` ``L`` defaults to :func:`newey_west_bandwidth`.
    NaN entries are dropped first, so the remaining values are treated as
    consecutive.
    """
    v = np.asarray(x, dtype=float)
    v = v[~np.isnan(v)]
    n = v.size
    if n < 2:
        return np.nan
    lag = newey_west_bandwidth(n) if max_lag is None else int(max_lag)
    lag = min(max(lag, 0), n - 1)
    d = v - v.mean()
    lrv = d @ d / n
    for j in range(1, lag + 1):
        lrv += 2.0 * (1.0 - j / (lag + 1.0)) * (d[j:] @ d[:-j]) / n
    return np.sqrt(lrv / n) if lrv > 0 else np.nan


def ic_statistics(ic, max_lag=None):
    """Per column of a (T, K) IC array: mean, std, t, Newey-West t, hit rate, days.

    ``t_stat`` is ``mean / std * sqrt(days)`` (sample std, days = non-NaN
    rows), ``nw_t_stat`` is ``mean / newey_west_se`` with ``nw_lags`` lags.
    Returns a dict of (K,) arrays.
    """
    a = np.asarray(ic, dtype=float)
    a = a.reshape(len(a), -1)  # a (T,) series as one column
    k = a.shape[1]
    out = {name: np.full(k, np.nan) for name in
           ("mean_ic", "ic_std", "t_stat", "nw_t_stat", "hit_rate")}
    out["days"] = np.zeros(k, dtype=np.int64)
    out["nw_lags"] = np.zeros(k, dtype=np.int64)
    for j in range(k):
        col = a[:, j][~np.isnan(a[:, j])]
        n = col.size
        out["days"][j] = n
        if n == 0:
            continue
        out["mean_ic"][j] = col.mean()
        out["hit_rate"][j] = (col > 0).mean()
        lag = newey_west_bandwidth(n) if max_lag is None else int(max_lag)
        out["nw_lags"][j] = min(max(lag, 0), max(n - 1, 0))
        if n < 2:
            continue
        sd = col.std(ddof=1)
        out["ic_std"][j] = sd
        if sd > 0:
            out["t_stat"][j] = col.mean() / sd * np.sqrt(n)
        se = newey_west_se(col, lag)
        if np.isfinite(se) and se > 0:
            out["nw_t_stat"][j] = col.mean() / se
    return out
