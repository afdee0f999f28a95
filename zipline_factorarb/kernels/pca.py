"""Statistical factors from principal components of a returns window.

The principal components of the sample covariance of a trailing window of
returns give data-driven factor loadings (Avellaneda & Lee 2010; Connor &
Korajczyk 1988). They serve as ``Omega`` for the PCA variant of the
weighted regression (:func:`zipline_factorarb.kernels.wls.wls_residuals`) and
as the factor returns of the 'pca' source of the Kalman kernel.

Pure numpy (and scipy's LAPACK wrapper for a partial eigen-decomposition):
arrays in, a small named tuple out, no I/O, no global state.

References
----------
.. [1] Avellaneda, M. and Lee, J.-H. (2010). Statistical arbitrage in the US
   equities market. Quantitative Finance, 10(7), 761-782.
.. [2] Connor, G. and Korajczyk, R. A. (1988). Risk and return in an
   equilibrium APT. Journal of Financial Economics, 21(2), 255-289.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..checks import check_array, check_int

__all__ = ["PCAResult", "correlation_pca_loadings", "pca_factor_returns", "pca_factors",
           "pca_loadings", "pca_residual_window", "pca_residuals", "DEFAULT_COMPONENTS"]

#: default number of principal components of the terms' 'pca' factor source
DEFAULT_COMPONENTS = 3


class PCAResult(NamedTuple):
    """Result of :func:`pca_factors`.

    Attributes
    ----------
    loadings : ndarray, shape (N, k)
        Orthonormal eigenvectors of the sample covariance (columns), largest
        eigenvalue first, sign-normalised so that each column sums to a
        positive number (if the sum is zero: its first largest-magnitude
        entry is positive). NaN rows for assets left out of the fit.
    scores : ndarray, shape (T, k)
        Factor returns of the components: ``(R - mean) @ loadings`` over
        the assets in the fit.
    explained_variance : ndarray, shape (k,)
        Eigenvalues of the sample covariance (variance of each score).
    explained_variance_ratio : ndarray, shape (k,)
        ``explained_variance`` divided by the total variance of the assets
        in the fit.
    mean : ndarray, shape (N,)
        Per-asset mean that was subtracted (zeros when ``demean=False``);
        NaN for assets left out of the fit.
    """

    loadings: np.ndarray
    scores: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray


def pca_factors(returns, k, demean=True):
    r"""Top-``k`` principal components of a ``(T, N)`` returns window.

    Computes the eigen-decomposition of the sample covariance
    ``C = X' X / (T - 1)`` with ``X = R - mean`` (``demean=True``), or of
    the second-moment matrix ``R' R / T`` (``demean=False``), through the
    singular value decomposition of ``X`` (which avoids forming ``C``):
    ``X = U S V'``, ``loadings = V[:, :k]``, ``explained_variance =
    S[:k]**2 / (T - 1)``. This matches
    :class:`sklearn.decomposition.PCA` up to the sign of each component.

    Parameters
    ----------
    returns : array_like, shape (T, N)
        Returns window, one row per day and one column per asset. An asset
        with any non-finite value in the window is left out of the fit and
        gets NaN ``loadings`` and ``mean``.
    k : int
        Number of components, ``1 <= k <= min(T, N)``.
    demean : bool, default True
        Subtract each asset's mean over the window first.

    Returns
    -------
    PCAResult
        ``loadings (N, k)``, ``scores (T, k)``, ``explained_variance (k,)``,
        ``explained_variance_ratio (k,)``, ``mean (N,)``.

    Notes
    -----
    Sign normalisation is deterministic: each loadings column is flipped so
    that its sum is positive (the first component, the "market" mode, then
    has mostly positive loadings); a column whose sum is zero (to ``1e-12``
    of its absolute sum) gets its largest-magnitude entry positive instead
    (the first such asset where magnitudes tie to ``1e-9``).

    Components that the data cannot identify (``k`` larger than the rank
    available: ``min(T - 1, n_assets)`` with ``demean``, ``min(T,
    n_assets)`` without) are returned as NaN columns. Avellaneda & Lee
    (2010) apply PCA to the correlation matrix: pass returns divided by
    their standard deviation to reproduce that (:func:`correlation_pca_loadings`).
    """
    R = check_array("returns", returns, ("T", "N"))
    T, N = R.shape
    k = check_int("k", k)
    if not 1 <= k <= min(T, N):
        raise ValueError(
            f"k must satisfy 1 <= k <= min(T, N) = {min(T, N)} for returns of "
            f"shape {R.shape}; got k={k}"
        )

    complete = np.isfinite(R).all(axis=0)
    Rc = R[:, complete]
    n_complete = Rc.shape[1]
    loadings = np.full((N, k), np.nan)
    scores = np.full((T, k), np.nan)
    explained_variance = np.full(k, np.nan)
    explained_variance_ratio = np.full(k, np.nan)
    mean = np.full(N, np.nan)

    dof = T - 1 if demean else T
    available = min(dof, n_complete, k)
    centre = Rc.mean(axis=0) if demean else np.zeros(n_complete)
    mean[complete] = centre
    if available < 1:
        return PCAResult(loadings, scores, explained_variance, explained_variance_ratio, mean)

    X = Rc - centre
    singular_values, components = _top_components(X, available)

    sums = components.sum(axis=0)
    magnitude = np.abs(components).sum(axis=0)
    # first asset whose |loading| is the largest (ties to 1e-9 relative)
    size = np.abs(components)
    first_largest = np.argmax(size >= (1 - 1e-9) * size.max(axis=0), axis=0)
    largest = components[first_largest, np.arange(available)]
    tiny = np.abs(sums) <= 1e-12 * magnitude
    signs = np.where(tiny, np.sign(largest), np.sign(sums))
    signs[signs == 0] = 1.0
    components *= signs

    variance = singular_values[:available] ** 2 / dof
    total = (X * X).sum() / dof
    loadings[complete, :available] = components
    scores[:, :available] = X @ components
    explained_variance[:available] = variance
    if total > 0:
        explained_variance_ratio[:available] = variance / total
    return PCAResult(loadings, scores, explained_variance, explained_variance_ratio, mean)


def _top_components(X, k):
    """Top-``k`` singular values and right singular vectors of ``X`` (T, n).

    For a wide window (n > T, e.g. 252 days x 500 assets) the top
    eigenvectors U of the small Gram matrix X X' (T x T) give V = X' U / s,
    several times faster than a full SVD. Used only when the k-th singular
    value is well separated from zero (s_k^2 >= 1e-6 s_1^2), where squaring
    costs no meaningful accuracy; otherwise the full SVD.
    """
    T, n = X.shape
    if n > T and k < T:
        from scipy.linalg import eigh

        values, vectors = eigh(X @ X.T, subset_by_index=[T - k, T - 1])
        values, vectors = values[::-1], vectors[:, ::-1]
        if values[-1] >= 1e-6 * values[0] > 0:
            s = np.sqrt(values)
            return s, (X.T @ vectors) / s
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    return s, vt[:k].T.copy()


def pca_loadings(returns, k, demean=True):
    """Only the ``loadings (N, k)`` of :func:`pca_factors` (same arguments)."""
    return pca_factors(returns, k, demean=demean).loadings


def correlation_pca_loadings(window, k, candidates=None):
    """Top-``k`` PCA loadings ``(N, k)`` of the correlation matrix of ``window``.

    Each column of the ``(T, N)`` window is divided by its sample standard
    deviation before :func:`pca_loadings`, as Avellaneda & Lee (2010) fit
    the components on standardised returns. Columns outside ``candidates``
    (a boolean ``(N,)`` mask), with a missing value or without variance are
    left out of the fit (NaN rows); with ``k`` or fewer columns (or rows)
    left, every row is NaN.
    """
    P, N = window.shape
    x = window if candidates is None else np.where(candidates[None, :], window, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.std(x, axis=0, ddof=1)
        x = x / np.where(std > 0, std, np.nan)
    complete = np.isfinite(x).all(axis=0)
    if complete.sum() <= k or P <= k:
        return np.full((N, k), np.nan)
    return pca_loadings(x, k)


def pca_residuals(returns, loadings, mean):
    r"""Scores and residuals of returns against PCA loadings and a mean.

    The one residual of a returns row against principal components: with
    ``W`` the loadings and :math:`\mu` the mean of a fit (the
    ``loadings``/``mean`` of :func:`pca_factors`, possibly fitted on another
    window),

    .. math::

        F_t = (R_t - \mu) W, \qquad \varepsilon_t = R_t - (F_t W^\top + \mu),

    the scores summing over the assets with finite loadings (the assets of
    the fit); assets outside the fit get NaN residuals.

    Parameters
    ----------
    returns : array_like, shape (T, N)
    loadings : array_like, shape (N, k)
    mean : array_like, shape (N,)

    Returns
    -------
    scores : ndarray, shape (T, k)
        NaN on a row with a missing return among the assets of the fit.
    residuals : ndarray, shape (T, N)
    """
    R = np.asarray(returns, dtype=np.float64)
    W = np.asarray(loadings, dtype=np.float64)
    mu = np.asarray(mean, dtype=np.float64)
    if R.ndim != 2 or W.ndim != 2 or R.shape[1] != W.shape[0] or mu.shape != (W.shape[0],):
        raise ValueError(
            f"shapes do not match: returns {R.shape}, loadings {W.shape}, mean {mu.shape}"
        )
    fitted_assets = np.isfinite(W).all(axis=1)
    if fitted_assets.all():
        scores = (R - mu) @ W
    else:
        scores = (R[:, fitted_assets] - mu[fitted_assets]) @ W[fitted_assets]
    return scores, R - (scores @ W.T + mu)


def pca_factor_returns(returns, k):
    """Factor returns ``(W, k)`` of the top ``k`` principal components of a window.

    The ``scores`` ``(R - mean) @ loadings`` of :func:`pca_factors` fitted
    on the window's cross-section (assets with a missing return in the
    window are left out of the fit). When fewer than ``k`` components can be
    fitted (too few complete assets, or fewer than two rows) the missing
    columns are NaN.
    """
    W, N = returns.shape
    if N < k or W < 2:
        return np.full((W, k), np.nan)
    return pca_factors(returns, k).scores


def pca_residual_window(returns, k=DEFAULT_COMPONENTS):
    r"""Residual of the last day of a returns window against its own PCA.

    Fits :func:`pca_factors` on the ``(W, N)`` window (assets with a missing
    return in it are left out of the fit) and returns
    :math:`\varepsilon_T = R_T - (F_T W^\top + \mu)` for its last row
    (:func:`pca_residuals`).

    Returns
    -------
    ndarray, shape (N,)
        The last day's residuals; NaN for assets left out of the fit, and
        for every asset when fewer than ``k`` components can be fitted
        (fewer than ``k`` complete assets, or ``W <= k``).
    """
    r = np.asarray(returns, dtype=np.float64)
    W, N = r.shape
    k = int(k)
    if N < k or W <= k:
        return np.full(N, np.nan)
    fit = pca_factors(r, k)
    if not np.isfinite(fit.explained_variance).all():
        return np.full(N, np.nan)
    return pca_residuals(r[-1:], fit.loadings, fit.mean)[1][0]
