r"""Portfolio rules, accounting and null books of the Kalman residual study.

Pure numpy functions for the vectorised walk-forward of
:mod:`zipline_factorarb.research.kalman_study`, which reproduces the public
study "Dynamic Factor Arbitrage: Isolating Residual Momentum in Sector
ETFs" from what its code does. Arrays are ``(T, N)``: one row per session,
one column per asset; NaN marks a missing score or return.

Rules: :func:`percentile_ranks`, :func:`percentile_rule_weights` (the
study's: long rank > ``upper``, short rank < ``lower``; with ten names and
``lower=0.1`` the short side is never filled), :func:`count_rule_weights`.
Accounting: :func:`lag_positions` (weights of row ``t`` held over the return
of row ``t + lag``; the study's ``lag=1``), :func:`study_pnl` (the original
backtester's log-return P&L and linear costs), :func:`simple_pnl` (the newer
one's). Null model: :func:`random_single_asset_books` and
:func:`single_asset_book_pnl`, books holding one asset at a time with a
holding period matched to a strategy's (:func:`switch_probability`).
"""

from __future__ import annotations

import numpy as np

from ..checks import check_array
from .kalman import CarriedFilter  # noqa: F401  (defined with the Kalman recursion)

__all__ = [
    "CarriedFilter",
    "count_rule_weights",
    "lag_positions",
    "percentile_ranks",
    "percentile_rule_weights",
    "project_out_constraints",
    "random_single_asset_books",
    "rolling_pca_residuals",
    "simple_pnl",
    "single_asset_book_pnl",
    "study_pnl",
    "switch_probability",
]


def _matrix(name, x):
    return check_array(name, x, ("T", "N"))


def _positions_and_returns(positions, log_returns):
    w, r = _matrix("positions", positions), _matrix("log_returns", log_returns)
    if w.shape != r.shape:
        raise ValueError(f"positions {w.shape} and log_returns {r.shape} differ in shape")
    return w, r


def percentile_ranks(scores):
    """Cross-sectional percentile ranks of each row (ties averaged, NaN kept).

    Parameters
    ----------
    scores : array_like, shape (T, N)

    Returns
    -------
    ndarray, shape (T, N)
        ``rank / n`` with ``n`` the row's number of finite scores and ranks
        from 1 (smallest) to ``n``; NaN where the score is NaN.
    """
    from scipy.stats import rankdata

    s = _matrix("scores", scores)
    finite = np.isfinite(s)
    ranks = rankdata(np.where(finite, s, np.inf), method="average", axis=1)
    counts = finite.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ranks / counts
    return np.where(finite, out, np.nan)


def _normalise(longs, shorts):
    positions = longs.astype(np.float64) - shorts.astype(np.float64)
    held = np.abs(positions).sum(axis=1, keepdims=True)
    return positions / np.where(held == 0, 1.0, held)


def percentile_rule_weights(scores, upper=0.9, lower=0.1, mean_reversion=False):
    """The study's rule: long rank > ``upper``, short rank < ``lower`` (strict).

    ``mean_reversion`` swaps the sides (long rank < ``lower``, short rank >
    ``upper``). Every name held gets ``1 / (names held that row)``, so the
    gross exposure is 1 on rows with a position and 0 otherwise.
    """
    if not 0.0 <= lower <= upper <= 1.0:
        raise ValueError(f"need 0 <= lower <= upper <= 1, got lower={lower}, upper={upper}")
    ranks = percentile_ranks(scores)
    with np.errstate(invalid="ignore"):
        high, low = ranks > upper, ranks < lower
    longs, shorts = (low, high) if mean_reversion else (high, low)
    return _normalise(longs, shorts)


def count_rule_weights(scores, n_long=1, n_short=1, mean_reversion=False):
    """Long the ``n_long`` highest scores, short the ``n_short`` lowest.

    Ties are broken by column order (the stable sort of the row). A row with
    fewer finite scores than ``n_long + n_short`` is left flat.
    ``mean_reversion`` swaps the sides. Weights as
    :func:`percentile_rule_weights`: ``1 / (names held)`` each.
    """
    if n_long < 0 or n_short < 0 or n_long + n_short == 0:
        raise ValueError(f"n_long and n_short must be >= 0, not both 0; got {n_long}, {n_short}")
    s = _matrix("scores", scores)
    finite = np.isfinite(s)
    order = np.argsort(np.where(finite, s, np.inf), axis=1, kind="stable")
    counts = finite.sum(axis=1)
    longs = np.zeros(s.shape, dtype=bool)
    shorts = np.zeros(s.shape, dtype=bool)
    rows = np.arange(s.shape[0])
    ok = counts >= n_long + n_short
    if not ok.any():
        return np.zeros(s.shape)
    for j in range(n_short):
        shorts[rows[ok], order[ok, j]] = True
    for j in range(n_long):
        longs[rows[ok], order[rows[ok], counts[ok] - 1 - j]] = True
    if mean_reversion:
        longs, shorts = shorts, longs
    return _normalise(longs, shorts)


def lag_positions(weights, lag=1):
    """Weights decided on row ``t`` held over the return of row ``t + lag``.

    The first ``lag`` rows are flat. ``lag=1`` is the study's timing (trade
    at the close of the signal's day); zipline's daily simulation fills an
    order at the next session's close, which is ``lag=2`` for a signal that
    uses the close of the day the order is placed.
    """
    w = _matrix("weights", weights)
    if int(lag) != lag or lag < 0:
        raise ValueError(f"lag must be a non-negative integer, got {lag!r}")
    lag = int(lag)
    out = np.zeros_like(w)
    if lag < len(w):
        out[lag:] = w[: len(w) - lag]
    return np.nan_to_num(out)


def study_pnl(positions, log_returns, cost=2e-4):
    """The study's original accounting: log-return P&L and linear costs.

    Parameters
    ----------
    positions : array_like, shape (T, N)
        Weights held over each row's return (after :func:`lag_positions`).
    log_returns : array_like, shape (T, N)
        :math:`\\ln(p_t / p_{t-1})`; NaN counts as 0.
    cost : float
        Cost per unit of ``sum_i |w_t - w_{t-1}|`` (2 bp: ``2e-4``). The
        first row is charged nothing (its change is undefined in the study's
        ``diff``).

    Returns
    -------
    net, gross, turnover : ndarray, shape (T,)
        ``gross = sum_i w_i r_i``, ``turnover = sum_i |dw_i|`` and
        ``net = gross - cost * turnover`` (log returns).
    """
    w, r = _positions_and_returns(positions, log_returns)
    gross = (np.nan_to_num(w) * np.nan_to_num(r)).sum(axis=1)
    turnover = np.zeros(len(w))
    turnover[1:] = np.abs(np.diff(np.nan_to_num(w), axis=0)).sum(axis=1)
    return gross - cost * turnover, gross, turnover


def simple_pnl(positions, log_returns, cost=2e-4):
    """The study's newer accounting: simple returns, one-way turnover.

    ``gross = sum_i w_i (exp(r_i) - 1)``, ``turnover = 0.5 * sum_i |dw_i|``
    (first row 0), ``net = gross - cost * turnover`` floored at -0.999999;
    both returned as log returns ``log1p(.)``, with the turnover.
    """
    w, r = _positions_and_returns(positions, log_returns)
    w = np.nan_to_num(w)
    gross = (w * np.expm1(np.nan_to_num(r))).sum(axis=1)
    turnover = np.zeros(len(w))
    turnover[1:] = 0.5 * np.abs(np.diff(w, axis=0)).sum(axis=1)
    net = np.maximum(gross - cost * turnover, -0.999999)
    return np.log1p(net), np.log1p(np.maximum(gross, -0.999999)), turnover


def project_out_constraints(w, betas):
    """Remove from ``w`` its component along ``1`` and ``betas`` (least squares).

    The closest weights that are dollar neutral (``1'w = 0``) and beta neutral
    (``beta'w = 0``): :func:`~zipline_factorarb.kernels.wls.neutralize_weights`
    with the loadings ``[1, betas]``.
    """
    from .wls import neutralize_weights

    w = np.asarray(w, dtype=np.float64)
    return neutralize_weights(w, np.column_stack([np.ones(len(w)), np.asarray(betas, float)]))


def rolling_pca_residuals(returns, window=60, k=3):
    """Residual of each day against the PCA of the ``window`` days before it.

    Row ``t >= window``: fit the top ``k`` principal components (and mean)
    on rows ``t - window .. t - 1`` and return ``r_t - ((r_t - mu) W W' +
    mu)``; the first ``window`` rows are NaN. The study's "rolling PCA".
    """
    from zipline_factorarb.kernels.pca import pca_factors, pca_residuals

    R = _matrix("returns", returns)
    out = np.full_like(R, np.nan)
    for t in range(window, len(R)):
        fit = pca_factors(R[t - window:t], k)
        out[t] = pca_residuals(R[t:t + 1], fit.loadings, fit.mean)[1][0]
    return out


def switch_probability(positions):
    """Fraction of consecutive rows whose held book changes (rows with a position)."""
    w = np.nan_to_num(_matrix("positions", positions))
    live = np.abs(w).sum(axis=1) > 0
    both = live[1:] & live[:-1]
    if not both.any():
        return 0.0
    changed = np.abs(np.diff(w, axis=0)).sum(axis=1) > 1e-12
    return float(changed[both].mean())


def random_single_asset_books(n_days, n_assets, switch_prob, n_books, rng):
    """Random books that hold one asset at a time.

    Each book starts in a uniformly drawn asset; every following day it
    switches, with probability ``switch_prob``, to one of the *other*
    ``n_assets - 1`` assets, uniformly (so the expected holding period is
    ``1 / switch_prob`` days).

    Returns
    -------
    ndarray of int, shape (n_books, n_days)
        The asset held each day.
    """
    if n_assets < 2:
        raise ValueError(f"need at least two assets, got {n_assets}")
    if not 0.0 <= switch_prob <= 1.0:
        raise ValueError(f"switch_prob must be in [0, 1], got {switch_prob}")
    held = np.empty((n_books, n_days), dtype=np.int64)
    held[:, 0] = rng.integers(n_assets, size=n_books)
    switch = rng.random((n_books, n_days)) < switch_prob
    step = rng.integers(1, n_assets, size=(n_books, n_days))
    for t in range(1, n_days):
        held[:, t] = np.where(switch[:, t], (held[:, t - 1] + step[:, t]) % n_assets,
                              held[:, t - 1])
    return held


def single_asset_book_pnl(held, log_returns, cost=2e-4):
    """Log P&L of 100%-long single-asset books under the study's accounting.

    ``held[b, t]`` is the asset book ``b`` holds over row ``t``'s return;
    a switch costs ``2 * cost`` (sell one, buy another), the first row
    nothing (as :func:`study_pnl`).
    """
    r = np.nan_to_num(_matrix("log_returns", log_returns))
    held = np.asarray(held)
    if held.ndim != 2 or held.shape[1] != len(r):
        raise ValueError(f"held {held.shape} must be (n_books, {len(r)})")
    pnl = r[np.arange(len(r))[None, :], held]
    switches = np.zeros(held.shape)
    switches[:, 1:] = held[:, 1:] != held[:, :-1]
    return pnl - 2.0 * cost * switches


