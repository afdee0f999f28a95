"""Cross-sectional signal preparation: comparable scores and expected returns.

Pure numpy. A raw residual signal (a WLS weighted residual, a Kalman innovation,
an s-score) is made comparable across names before it becomes an alpha: demeaned
within its group (sector), z-scored, winsorised, z-scored again; several signals
are blended as the mean of their scores. An optimiser that subtracts costs needs
expected returns rather than scores: Grinold's rule ``alpha = IC * sigma * z``
turns a unit score into a return of the right size for the asset's volatility.
"""

from __future__ import annotations

import numpy as np

__all__ = ["standardize_scores", "blend_scores", "expected_returns_from_scores"]


def _zscore(x, valid):
    out = np.full(x.shape, np.nan)
    v = x[valid]
    if v.size < 2:
        return out
    sd = v.std()
    # a spread at rounding level (1e-10 of the values' size) is no spread
    if not sd > 1e-10 * max(np.abs(v).max(), 1e-300):
        out[valid] = 0.0
        return out
    out[valid] = (v - v.mean()) / sd
    return out


def standardize_scores(values, groups=None, winsor=3.0):
    """Group-demeaned, winsorised z-scores of one cross-section.

    Parameters
    ----------
    values : array (N,)
        Raw signal; NaN (or inf) = no signal for that asset.
    groups : array (N,), optional
        Integer group codes (e.g. sectors); the signal is demeaned within each group
        first. Codes < 0 (unknown sector) form no group and are demeaned with the
        whole cross-section.
    winsor : float or None, default 3.0
        Scores beyond ``+-winsor`` are clipped, then the scores are z-scored again
        (so their cross-sectional standard deviation is one).

    Returns
    -------
    array (N,)
        Mean zero, standard deviation one over the assets with a signal (zero
        everywhere when the signal does not vary: a spread below 1e-10 of the
        values' size counts as none), NaN elsewhere.
    """
    x = np.asarray(values, dtype=float).copy()
    valid = np.isfinite(x)
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != x.shape:
            raise ValueError(f"groups has shape {g.shape}, values {x.shape}")
        known = valid & (g >= 0)
        if known.any():
            codes, inverse = np.unique(g[known], return_inverse=True)
            sums = np.bincount(inverse, weights=x[known], minlength=len(codes))
            counts = np.bincount(inverse, minlength=len(codes))
            x[known] -= (sums / counts)[inverse]
    z = _zscore(x, valid)
    if winsor is not None:
        if not winsor > 0:
            raise ValueError(f"winsor must be positive or None, got {winsor!r}")
        z = _zscore(np.clip(z, -winsor, winsor), valid)
    return z


def blend_scores(scores, weights=None):
    """Weighted mean of several standardised scores, re-standardised.

    Parameters
    ----------
    scores : array (S, N)
        One row per signal (each as from :func:`standardize_scores`).
    weights : array (S,), optional
        Default: equal. An asset's blend uses the signals it has (weights
        renormalised over them); an asset with none is NaN.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    w = np.ones(s.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (s.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"weights must be {s.shape[0]} non-negative numbers, not all zero; "
                         f"got {weights!r}")
    have = np.isfinite(s)
    num = np.where(have, s, 0.0).T @ w
    den = have.T.astype(float) @ w
    blend = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return _zscore(blend, np.isfinite(blend))


def expected_returns_from_scores(scores, volatility, information_coefficient):
    """Grinold's ``alpha = IC * sigma * z``: per-period expected returns.

    Parameters
    ----------
    scores : array (N,)
        Standardised scores (unit cross-sectional standard deviation).
    volatility : array (N,)
        Per-period return volatility of each asset.
    information_coefficient : float
        Correlation between the score and the next period's return.
    """
    z = np.asarray(scores, dtype=float)
    sigma = np.asarray(volatility, dtype=float)
    if z.shape != sigma.shape:
        raise ValueError(f"scores {z.shape} and volatility {sigma.shape} differ in shape")
    return float(information_coefficient) * sigma * z
