"""Factor risk-model kernels: estimation, tracking error and risk decomposition.

Pure numpy functions, no pandas and no zipline. Notation follows the research:

* ``loadings`` B, shape ``(n, m)``: one row per asset, one column per factor (the
  glossary's (N, K)); when the model has a constant its column comes first (the
  regression intercepts, i.e. the assets' alphas);
* ``factor_covariance`` Sigma_f, shape ``(m, m)`` (zero row and column for the constant);
* ``specific_variance`` E, shape ``(n,)``, the diagonal of the idiosyncratic covariance;
* ``benchmark_weights`` b and active weights ``a = w - b``.

The asset covariance is ``Sigma = B Sigma_f B' + diag(E)`` and the (per-period) active
variance is ``a' Sigma a = f' Sigma_f f + ||sqrt(E) a||^2`` with ``f = B' a`` the active
factor exposure. Annualised tracking error is ``sqrt(periods_per_year * a' Sigma a)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..checks import check_array, check_number

__all__ = [
    "RegressionResult",
    "RiskContributions",
    "regression_loadings",
    "ewma_weights",
    "weighted_covariance",
    "ledoit_wolf",
    "factor_covariance",
    "check_shrinkage",
    "factor_residuals",
    "specific_variance",
    "factor_root",
    "active_variance",
    "tracking_error",
    "risk_contributions",
    "risk_budget_weights",
    "cap_weights",
    "sector_mapping",
]


class RegressionResult(NamedTuple):
    """Output of :func:`regression_loadings`.

    Attributes
    ----------
    loadings : ndarray, shape (n, p)
        Regression coefficients, one row per asset; the first column is the intercept
        when the regression has a constant. NaN for assets with too few observations.
    residuals : ndarray, shape (T, n)
        ``returns - X @ loadings.T``; NaN where the return (or the factor row) is missing.
    n_observations : ndarray of int, shape (n,)
        Rows used for each asset.
    """

    loadings: np.ndarray
    residuals: np.ndarray
    n_observations: np.ndarray


class RiskContributions(NamedTuple):
    """Euler decomposition of a (per-period) variance, from :func:`risk_contributions`.

    Attributes
    ----------
    factor : ndarray, shape (m,)
        ``f_j (Sigma_f f)_j`` for each factor, ``f = B' a``.
    specific : float
        ``sum_i E_i a_i^2``.
    asset : ndarray, shape (n,)
        ``a_i (Sigma a)_i`` for each asset.
    total : float
        ``a' Sigma a``; equals ``factor.sum() + specific`` and ``asset.sum()``.
    """

    factor: np.ndarray
    specific: float
    asset: np.ndarray
    total: float


def regression_loadings(asset_returns, factor_returns, add_constant=True, min_observations=None):
    """Time-series regression of every asset's returns on the factor returns.

    Solves ``r_i = alpha_i + F_i' x_t + eps_it`` for all assets at once: assets with a
    complete history share a single least-squares solve (one ``lstsq`` with a matrix
    right-hand side); assets with missing returns are solved together through their
    masked normal equations.

    Parameters
    ----------
    asset_returns : array_like, shape (T, n)
        Asset returns; NaN marks a missing observation.
    factor_returns : array_like, shape (T, k)
        Factor returns on the same rows. A row with any non-finite factor return is
        dropped for every asset.
    add_constant : bool, default True
        Prepend an intercept column, so ``loadings[:, 0]`` holds the intercepts.
    min_observations : int, optional
        Assets with fewer usable rows get NaN loadings. Defaults to the number of
        regression parameters plus one.

    Returns
    -------
    RegressionResult
    """
    R = check_array("asset_returns", asset_returns, ("T", "N"))
    X = check_array("factor_returns", factor_returns, ("T", "K"))
    T, n = R.shape
    if X.shape[0] != T:
        raise ValueError(
            f"asset_returns has {T} rows but factor_returns has {X.shape[0]}: align them "
            "on the same dates first"
        )
    row_ok = np.isfinite(X).all(axis=1)
    if add_constant:
        X = np.hstack([np.ones((T, 1)), X])
    p = X.shape[1]
    if min_observations is None:
        min_observations = p + 1
    Xz = np.where(row_ok[:, None], X, 0.0)
    valid = np.isfinite(R) & row_ok[:, None]
    n_obs = valid.sum(axis=0)
    loadings = np.full((p, n), np.nan)

    complete = valid[row_ok].all(axis=0) & (n_obs >= min_observations)
    if complete.any():
        coef, *_ = np.linalg.lstsq(Xz[row_ok], R[row_ok][:, complete], rcond=None)
        loadings[:, complete] = coef
    partial = ~complete & (n_obs >= min_observations)
    if partial.any():
        M = valid[:, partial].astype(float)
        Y = np.where(valid[:, partial], R[:, partial], 0.0)
        xtx = np.einsum("tp,tq,ti->ipq", Xz, Xz, M)
        xty = np.einsum("tp,ti->ip", Xz, Y)
        loadings[:, partial] = np.einsum("ipq,iq->pi", np.linalg.pinv(xtx), xty)

    residuals = R - Xz @ np.where(np.isfinite(loadings), loadings, 0.0)
    residuals[~valid] = np.nan
    residuals[:, ~np.isfinite(loadings).all(axis=0)] = np.nan
    return RegressionResult(loadings.T, residuals, n_obs)


def ewma_weights(n_observations, halflife=None):
    """Observation weights that sum to one, the most recent row (last) weighing most.

    ``w_t`` is proportional to ``0.5 ** ((T - 1 - t) / halflife)`` (the weights of
    ``pandas.DataFrame.ewm(halflife=...)``); equal weights when ``halflife`` is None.

    Parameters
    ----------
    n_observations : int
    halflife : float, optional
        In rows; must be positive.

    Returns
    -------
    ndarray, shape (n_observations,)
    """
    T = int(n_observations)
    if T <= 0:
        raise ValueError("need at least one observation")
    if halflife is None:
        return np.full(T, 1.0 / T)
    check_number("halflife", halflife, 0, low_open=True)
    w = 0.5 ** (np.arange(T - 1, -1, -1, dtype=float) / float(halflife))
    return w / w.sum()


def _rows_and_weights(X, weights, halflife):
    X = check_array("returns", X, ("T", "K"))
    T = X.shape[0]
    if weights is None:
        weights = ewma_weights(T, halflife)
    else:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (T,):
            raise ValueError(f"weights must have shape ({T},), got {weights.shape}")
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("weights must be finite and non-negative")
    keep = np.isfinite(X).all(axis=1)
    X, weights = X[keep], weights[keep]
    if X.shape[0] < 2:
        raise ValueError("need at least two rows without missing values")
    total = weights.sum()
    if total <= 0:
        raise ValueError("weights of the usable rows sum to zero")
    return X, weights / total


def _scatter(X, weights, halflife, assume_centered):
    """Rows kept, (centred) rows ``Xc``, normalised weights ``w`` and ``sum_t w_t x_t x_t'``."""
    X, w = _rows_and_weights(X, weights, halflife)
    Xc = X if assume_centered else X - w @ X
    S = (Xc * w[:, None]).T @ Xc
    return Xc, w, 0.5 * (S + S.T)


def _shrunk(S, intensity):
    """``(1 - d) S + d mu I`` with ``mu = trace(S) / p``: shrinkage towards a scaled identity."""
    p = S.shape[0]
    return (1.0 - intensity) * S + intensity * (np.trace(S) / p) * np.eye(p)


def weighted_covariance(X, weights=None, halflife=None, bias=True, assume_centered=False):
    """Weighted covariance ``sum_t w_t (x_t - m)(x_t - m)'`` of the rows of ``X``.

    Parameters
    ----------
    X : array_like, shape (T, p)
        Rows with any non-finite value are dropped (their weight too).
    weights : array_like, shape (T,), optional
        Non-negative row weights (normalised here). Default: :func:`ewma_weights`.
    halflife : float, optional
        Used when ``weights`` is None.
    bias : bool, default True
        When False, divide by ``1 - sum(w^2)`` (``np.cov(ddof=1)`` for equal weights).
    assume_centered : bool, default False
        Use a zero mean instead of the weighted mean.

    Returns
    -------
    ndarray, shape (p, p)
    """
    _, w, S = _scatter(X, weights, halflife, assume_centered)
    return S if bias else S / (1.0 - np.sum(w * w))


def ledoit_wolf(X, weights=None, halflife=None, assume_centered=False):
    """Ledoit-Wolf shrinkage of the (weighted) covariance towards a scaled identity.

    The shrunk estimate is ``(1 - d) S + d mu I`` with ``mu = trace(S) / p`` and the
    intensity ``d = min(beta, delta) / delta`` of Ledoit & Wolf (2004), "A
    well-conditioned estimator for large-dimensional covariance matrices":
    ``delta = ||S - mu I||_F^2 / p`` and ``beta = sum_t w_t^2 ||x_t x_t' - S||_F^2 / p``.
    With equal weights this is exactly ``sklearn.covariance.LedoitWolf``; with
    exponential weights the sampling variance ``beta`` uses ``sum_t w_t^2`` in place of
    ``1 / T``.

    Parameters
    ----------
    X : array_like, shape (T, p)
    weights, halflife, assume_centered
        As in :func:`weighted_covariance`.

    Returns
    -------
    covariance : ndarray, shape (p, p)
    shrinkage : float
        The intensity ``d`` in ``[0, 1]``.
    """
    Xc, w, S = _scatter(X, weights, halflife, assume_centered)
    p = S.shape[0]
    delta = np.sum((S - np.trace(S) / p * np.eye(p)) ** 2) / p
    w2 = w * w
    sq = np.einsum("ti,ti->t", Xc, Xc)
    quad = np.einsum("ti,ij,tj->t", Xc, S, Xc)
    beta = (np.sum(w2 * sq * sq) - 2.0 * np.sum(w2 * quad) + w2.sum() * np.sum(S * S)) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if delta <= 0 else float(beta / delta)
    return _shrunk(S, shrinkage), shrinkage


def factor_covariance(factor_returns, halflife=None, shrinkage="ledoit_wolf"):
    """Factor covariance from a history of factor returns.

    Parameters
    ----------
    factor_returns : array_like, shape (T, k)
    halflife : float, optional
        Exponential weighting in rows (None: equal weights).
    shrinkage : {"ledoit_wolf"} or float or None, default "ledoit_wolf"
        ``"ledoit_wolf"``: :func:`ledoit_wolf`; a number ``d`` in ``[0, 1]``: that fixed
        intensity towards ``mu I`` applied to the weighted (biased) covariance; None:
        the bias-corrected weighted covariance (``np.cov`` for equal weights).

    Returns
    -------
    ndarray, shape (k, k)
    """
    shrinkage = check_shrinkage(shrinkage)
    if shrinkage is None:
        return weighted_covariance(factor_returns, halflife=halflife, bias=False)
    if shrinkage == "ledoit_wolf":
        return ledoit_wolf(factor_returns, halflife=halflife)[0]
    return _shrunk(weighted_covariance(factor_returns, halflife=halflife, bias=True), shrinkage)


def check_shrinkage(shrinkage):
    """``shrinkage`` of :func:`factor_covariance` checked: None, ``"ledoit_wolf"`` or a
    number in [0, 1] (returned as a float); ValueError for another string or number."""
    if shrinkage is None or shrinkage == "ledoit_wolf":
        return shrinkage
    if isinstance(shrinkage, str):
        raise ValueError(f"shrinkage must be 'ledoit_wolf', a number in [0, 1] or None, "
                         f"got {shrinkage!r}")
    return check_number("shrinkage", shrinkage, 0, 1)


def factor_residuals(asset_returns, factor_returns, loadings, intercepts=None):
    """Residuals ``r_t - c - B x_t`` (T, N) of given loadings.

    ``asset_returns`` (T, N), ``factor_returns`` (T, K), loadings ``B`` (N, K) and
    ``intercepts`` ``c`` (N,) (none: zero). NaN where a return is missing, and on
    every row of an asset whose loadings or intercept are not finite.
    """
    R = np.asarray(asset_returns, dtype=float)
    B = np.asarray(loadings, dtype=float)
    c = np.zeros(len(B)) if intercepts is None else np.asarray(intercepts, dtype=float)
    res = R - np.asarray(factor_returns, dtype=float) @ np.nan_to_num(B).T - np.nan_to_num(c)
    res[~np.isfinite(R)] = np.nan
    res[:, ~(np.isfinite(B).all(axis=1) & np.isfinite(c))] = np.nan
    return res


def specific_variance(residuals, halflife=None, n_parameters=0, floor=0.0):
    """Per-asset variance of regression residuals.

    ``E_i = (sum_t w_t e_it^2) / (1 - p sum_t w_t^2)`` over the asset's observed rows with
    weights renormalised per asset: for equal weights this is the unbiased
    ``sum e^2 / (T_i - p)``; with exponential weights ``1 / sum w^2`` plays the part of
    the effective number of observations. Residuals are not demeaned (a regression with
    a constant already gives them mean zero).

    Parameters
    ----------
    residuals : array_like, shape (T, n)
        NaN marks a missing residual.
    halflife : float, optional
        Exponential weighting in rows (None: equal weights).
    n_parameters : int or array_like of shape (n,), default 0
        Regression parameters estimated per asset (degrees-of-freedom correction); an
        array gives each asset its own (effective) number, as for penalised fits.
    floor : float, default 0.0
        Lower bound applied to the result.

    Returns
    -------
    ndarray, shape (n,)
        NaN for assets with no more usable rows than ``n_parameters``.
    """
    Eps = check_array("residuals", residuals, ("T", "N"))
    T = Eps.shape[0]
    base = ewma_weights(T, halflife)
    valid = np.isfinite(Eps)
    W = np.where(valid, base[:, None], 0.0)
    totals = W.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        W = W / totals
        second = np.sum(W * np.where(valid, Eps, 0.0) ** 2, axis=0)
        correction = 1.0 - n_parameters * np.sum(W * W, axis=0)
        out = second / correction
    out[(totals <= 0) | (correction <= 0) | (valid.sum(axis=0) <= n_parameters)] = np.nan
    return np.where(np.isfinite(out), np.maximum(out, floor), np.nan)


def factor_root(factor_covariance, tol=1e-10):
    """A square root ``R`` with ``R' R = factor_covariance`` (symmetric eigen-root).

    Works for singular positive semi-definite matrices (such as a zero row and column
    for the constant), where a Cholesky factor does not exist.

    Parameters
    ----------
    factor_covariance : array_like, shape (m, m)
    tol : float, default 1e-10
        Eigenvalues below ``-tol * max(1, largest eigenvalue)`` are an error; smaller
        negative ones are rounding and are clipped to zero.

    Returns
    -------
    ndarray, shape (m, m)
    """
    S = check_array("factor_covariance", factor_covariance, ("K", "K"))
    if S.shape[0] != S.shape[1]:
        raise ValueError(f"factor_covariance must be square, got shape {S.shape}")
    if S.shape[0] == 0:
        return np.zeros((0, 0))
    S = 0.5 * (S + S.T)
    lam, V = np.linalg.eigh(S)
    if lam[0] < -tol * max(1.0, abs(lam[-1])):
        raise ValueError(
            f"factor_covariance is not positive semi-definite (smallest eigenvalue {lam[0]:.3g});"
            " estimate it with shrinkage or clip its eigenvalues"
        )
    return np.sqrt(np.clip(lam, 0.0, None))[:, None] * V.T


def active_variance(active_weights, loadings, factor_covariance, specific_variance):
    """Per-period variance ``f' Sigma_f f + sum E a^2`` of the active weights ``a``.

    Parameters
    ----------
    active_weights : array_like, shape (n,)
    loadings : array_like, shape (n, m)
    factor_covariance : array_like, shape (m, m)
    specific_variance : array_like, shape (n,)

    Returns
    -------
    float
    """
    a = np.asarray(active_weights, dtype=float)
    f = a @ np.asarray(loadings, dtype=float)
    E = np.asarray(specific_variance, dtype=float)
    return float(f @ np.asarray(factor_covariance, dtype=float) @ f + np.sum(E * a * a))


def tracking_error(active_weights, loadings, factor_covariance, specific_variance,
                   periods_per_year=252):
    """Annualised ex-ante tracking error ``sqrt(periods_per_year * a' Sigma a)``.

    Parameters
    ----------
    active_weights, loadings, factor_covariance, specific_variance
        As in :func:`active_variance`; the risk model is per period.
    periods_per_year : float, default 252
        Periods of the risk model in a year (252 daily, 12 monthly, 1 already annual).

    Returns
    -------
    float
    """
    var = active_variance(active_weights, loadings, factor_covariance, specific_variance)
    return float(np.sqrt(max(var, 0.0) * periods_per_year))


def risk_contributions(active_weights, loadings=None, factor_covariance=None,
                       specific_variance=None, *, covariance=None):
    """Euler decomposition of a variance by factor, specific risk and asset.

    The one risk-contribution function of the package: the optimiser's reports, the
    risk model, the risk-budgeting objective and the crisis report's risk tables all
    call it. The variance ``V(a) = a' Sigma a`` is homogeneous of degree two, so
    ``sum_i a_i dV/da_i = 2 V``: the contributions ``a_i (Sigma a)_i`` add up to ``V``;
    grouped through the factor model they are ``f_j (Sigma_f f)_j`` per factor plus
    ``sum_i E_i a_i^2`` of specific risk. Pass active weights ``w - b`` for the
    contributions to the tracking variance, the weights for total variance.

    Parameters
    ----------
    active_weights : array_like, shape (n,)
    loadings, factor_covariance, specific_variance
        The factor model, as in :func:`active_variance`.
    covariance : array_like, shape (n, n), optional
        A full asset covariance instead of the factor model: the result then has no
        factor contributions (an empty ``factor``) and ``specific`` 0.

    Returns
    -------
    RiskContributions
    """
    a = np.asarray(active_weights, dtype=float)
    if covariance is not None:
        if loadings is not None or factor_covariance is not None or specific_variance is not None:
            raise TypeError("give either covariance or the factor model (loadings, "
                            "factor_covariance, specific_variance), not both")
        S = np.asarray(covariance, dtype=float)
        if S.shape != (a.shape[0], a.shape[0]):
            raise ValueError(f"covariance must be {a.shape[0]} x {a.shape[0]} to match the "
                             f"weights, got shape {S.shape}")
        asset = a * (S @ a)
        return RiskContributions(np.zeros(0), 0.0, asset, float(asset.sum()))
    if loadings is None or factor_covariance is None or specific_variance is None:
        raise TypeError("risk_contributions needs loadings, factor_covariance and "
                        "specific_variance, or covariance=")
    B = np.asarray(loadings, dtype=float)
    S = np.asarray(factor_covariance, dtype=float)
    E = np.asarray(specific_variance, dtype=float)
    f = a @ B
    Sf = S @ f
    factor = f * Sf
    specific = float(np.sum(E * a * a))
    asset = a * (B @ Sf + E * a)
    return RiskContributions(factor, specific, asset, float(factor.sum() + specific))


def risk_budget_weights(covariance, budgets, tol=1e-12, max_iter=100):
    """Positive weights summing to one whose variance contributions equal ``budgets``.

    Damped Newton's method on the strictly convex log-barrier function
    ``0.5 x' S x - sum_i b_i log x_i`` (Spinu 2013), whose minimiser satisfies
    ``x_i (S x)_i = b_i``; ``w = x / sum(x)`` then has risk shares
    ``w_i (S w)_i / w' S w = b_i / sum(b)``. For a small covariance (the factors'); the
    optimiser's :class:`~zipline_factorarb.optimize.RiskBudgeting` solves the asset
    problem with a conic solver.

    Parameters
    ----------
    covariance : array_like, shape (k, k)
        Positive definite.
    budgets : array_like, shape (k,)
        Positive.
    tol : float, default 1e-12
        Stop when every ``|x_i (S x)_i - b_i|`` is at most ``tol`` (budgets normalised to
        sum to one).
    max_iter : int, default 100

    Returns
    -------
    ndarray, shape (k,)
    """
    S = check_array("covariance", covariance, ("K", "K"))
    b = np.asarray(budgets, dtype=float).reshape(-1)
    if S.shape != (b.size, b.size):
        raise ValueError(f"covariance must be {b.size} x {b.size} to match the budgets, got "
                         f"shape {S.shape}")
    if not (np.isfinite(b).all() and (b > 0).all()):
        raise ValueError("budgets must be finite and positive")
    b = b / b.sum()
    if not np.all(np.linalg.eigvalsh(0.5 * (S + S.T)) > 0):
        raise ValueError("covariance must be positive definite for risk budgeting")

    def value(x):
        return 0.5 * x @ S @ x - b @ np.log(x)

    x = b / np.sqrt(np.diag(S))
    x = x / np.sqrt(x @ S @ x)
    for _ in range(int(max_iter)):
        Sx = S @ x
        if np.max(np.abs(x * Sx - b)) <= tol:
            break
        g = Sx - b / x
        d = np.linalg.solve(S + np.diag(b / (x * x)), g)
        step, f0 = 1.0, value(x)
        while True:
            trial = x - step * d
            if (trial > 0).all() and value(trial) <= f0 - 1e-4 * step * (g @ d):
                break
            step *= 0.5
            if step < 1e-12:
                trial = x
                break
        if trial is x:
            break
        x = trial
    return x / x.sum()


def cap_weights(values):
    """Weights proportional to positive finite ``values`` (market caps, dollar volume).

    Parameters
    ----------
    values : array_like, shape (n,)

    Returns
    -------
    ndarray, shape (n,)

    Raises
    ------
    ValueError
        If a value is non-finite or negative, or all are zero.
    """
    v = np.asarray(values, dtype=float)
    bad = ~np.isfinite(v) | (v < 0)
    if bad.any():
        raise ValueError(
            f"weights need finite non-negative values; entry {int(np.argmax(bad))} is {v[bad][0]!r}"
        )
    total = v.sum()
    if total <= 0:
        raise ValueError("all values are zero: cannot form weights")
    return v / total


def sector_mapping(codes, market_caps, n_sectors=None):
    """Within-sector cap-weight matrix ``W`` and sector benchmark weights.

    ``W = diag(c) M diag(c' M)^-1`` for the 0/1 membership matrix ``M``: column ``s``
    holds the cap weights of the assets of sector ``s`` inside that sector (it sums to
    one), so sector weights ``x`` map to asset weights ``W x``. The sector benchmark is
    ``w_b = M' c / sum(c)`` and ``W w_b`` is the asset cap-weighted benchmark.

    Parameters
    ----------
    codes : array_like of int, shape (n,)
        Sector index of each asset, in ``[0, n_sectors)``.
    market_caps : array_like, shape (n,)
        Positive market caps (or another size proxy).
    n_sectors : int, optional
        Defaults to ``max(codes) + 1``.

    Returns
    -------
    mapping : ndarray, shape (n, n_sectors)
    sector_benchmark : ndarray, shape (n_sectors,)
    """
    codes = np.asarray(codes)
    if codes.ndim != 1 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError("codes must be a 1-d integer array")
    c = cap_weights(market_caps)
    n = codes.shape[0]
    if c.shape[0] != n:
        raise ValueError("codes and market_caps must have the same length")
    k = int(codes.max()) + 1 if n_sectors is None else int(n_sectors)
    if (codes < 0).any() or (codes >= k).any():
        raise ValueError(f"codes must lie in [0, {k})")
    sizes = np.bincount(codes, weights=c, minlength=k)
    if (sizes <= 0).any():
        empty = np.flatnonzero(sizes <= 0).tolist()
        raise ValueError(f"sectors {empty} have no assets with positive size")
    W = np.zeros((n, k))
    W[np.arange(n), codes] = c / sizes[codes]
    return W, sizes / sizes.sum()
