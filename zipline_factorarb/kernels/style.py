"""Returns-based style analysis (Sharpe 1992): pure numpy / scipy."""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

__all__ = ["style_weights"]

#: weight of the budget row relative to the largest absolute return
_BUDGET_WEIGHT = 1e3


def style_weights(asset_returns, target_returns):
    """Non-negative weights summing to one whose portfolio best tracks the target.

    Solves ``min ||X w - y||^2`` subject to ``w >= 0`` and ``sum(w) = 1`` (Sharpe's
    returns-based style analysis) with scipy's NNLS: the budget enters as an extra row
    ``scale * 1' w = scale`` weighted ``scale = 1000 * max|X|``, and the weights are
    then rescaled to sum to exactly one.

    Parameters
    ----------
    asset_returns : array_like, shape (T, n)
        Returns of the n style assets (e.g. sector funds); rows with a non-finite
        value in either input are left out.
    target_returns : array_like, shape (T,)
        Returns of the portfolio analysed (e.g. the market fund).

    Returns
    -------
    numpy.ndarray, shape (n,)
        The weights; equal weights when no row is usable or the fit is all zero.
    """
    X = np.asarray(asset_returns, dtype=float)
    y = np.asarray(target_returns, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"asset_returns must be (T, n) and target_returns (T,), got "
                         f"{X.shape} and {y.shape}")
    if X.shape[1] == 0:
        raise ValueError("asset_returns has no columns (no style asset)")
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    X, y = X[ok], y[ok]
    scale = _BUDGET_WEIGHT * max(np.abs(X).max(initial=0.0), 1e-6)
    A = np.vstack([X, np.full((1, X.shape[1]), scale)])
    rhs = np.append(y, scale)
    w, _ = nnls(A, rhs)
    total = w.sum()
    return w / total if total > 0 else np.full(X.shape[1], 1.0 / X.shape[1])
