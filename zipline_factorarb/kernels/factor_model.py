"""Time-series factor models: OLS, ridge, lasso and elastic-net loadings, one estimator.

Pure numpy, no pandas and no zipline. Every path that estimates a factor risk model
(:class:`~zipline_factorarb.pipeline.FactorRiskModel`,
:meth:`~zipline_factorarb.optimize.RiskModel.from_returns` and, through them, the
algorithms and the report) calls :func:`fit_factor_model`.

Each asset's returns are regressed on the factor returns of the same rows,
``r_it = c_i + b_i' x_t + e_it``, with

``"ols"``
    least squares (no penalty);
``"ridge"``
    ``min ||y - c - X b||^2 + lambda ||b||^2`` (scikit-learn's ``Ridge(alpha=lambda)``);
``"lasso"``
    ``min ||y - c - X b||^2 / (2 T) + lambda ||b||_1`` (scikit-learn's ``Lasso``);
``"elasticnet"``
    ``min ||y - c - X b||^2 / (2 T) + lambda (rho ||b||_1 + (1 - rho) ||b||^2 / 2)``
    (scikit-learn's ``ElasticNet(alpha=lambda, l1_ratio=rho)``).

The intercept ``c`` is never penalised. Factors are not standardised (as in
scikit-learn): the penalty acts on the loadings in the units of the returns.

Penalty choice
--------------
``lam`` given: that penalty for every asset. ``lam=None``: chosen **per asset** by
walk-forward cross-validation: the rows are split as scikit-learn's
``TimeSeriesSplit(n_splits=cv)`` splits them (each validation fold is a block of
consecutive rows, and its training set is every row *before* it, never after), every
candidate penalty is fitted on each training set and scored by its mean squared error
on the fold; the penalty with the smallest mean of the folds' mean squared errors wins
(the first in grid order on a tie) and the loadings are then refitted on all rows.
This is ``RidgeCV(alphas, cv=TimeSeriesSplit(cv), scoring="neg_mean_squared_error")``
and ``LassoCV(alphas=..., cv=TimeSeriesSplit(cv))`` fitted on each asset, computed for
all assets at once (ridge: one SVD per training window, ``_ridge_solve``; lasso and
elastic net: a warm-started path, ``_enet_path``). Generalised (leave-one-out)
cross-validation is deliberately not used: it trains on rows after the one it
validates. Default grids: :func:`ridge_grid` and :func:`lasso_grid` (as ``LassoCV``).

Specific variances use the effective degrees of freedom of each fit: ``p`` for OLS,
``sum_k s_k^2 / (s_k^2 + lambda)`` (plus the intercept) for ridge, the number of
non-zero loadings (plus the intercept) for lasso and elastic net (Zou, Hastie and
Tibshirani, 2007). The factor covariance is
:func:`~zipline_factorarb.kernels.risk.factor_covariance` (exponentially weighted,
Ledoit-Wolf shrunk).

Collinearity: :func:`collinearity` and :func:`collinearity_message` (condition number
and variance inflation of the factors, against :data:`MAX_CONDITION` and :data:`MAX_VIF`).

Pipeline windows: :func:`estimate_factor_model` and :func:`factor_moments` are the
window math of :class:`~zipline_factorarb.pipeline.FactorRiskModel`, on the factors
with enough data in the window (:func:`usable_factor_rows`).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from ..checks import check_array, check_choice, check_int, check_number, check_numbers
from . import risk as kr

__all__ = [
    "METHODS",
    "MAX_CONDITION",
    "MAX_VIF",
    "FactorModelFit",
    "CollinearFactorsWarning",
    "fit_factor_model",
    "walk_forward_folds",
    "ridge_grid",
    "lasso_grid",
    "collinearity",
    "collinearity_message",
    "warn_collinear_once",
    "check_penalty",
    "FactorModelEstimate",
    "cross_section_mean",
    "stack_factor_returns",
    "usable_factor_rows",
    "factor_moments",
    "estimate_factor_model",
]

#: loading estimators understood by :func:`fit_factor_model`
METHODS = ("ols", "ridge", "lasso", "elasticnet")
#: condition number of the factors' correlation matrix above which they are reported
#: as nearly collinear (Belsley, Kuh and Welsch: 30 marks strong dependence)
MAX_CONDITION = 30.0
#: variance inflation factor above which a factor is reported as nearly collinear with
#: the others (the common rule of thumb: 10, i.e. R^2 > 0.9 on the other factors)
MAX_VIF = 10.0


class CollinearFactorsWarning(UserWarning):
    """Factor returns are nearly collinear: unpenalised loadings are unstable."""


class FactorModelFit(NamedTuple):
    """Output of :func:`fit_factor_model`.

    Attributes
    ----------
    loadings : ndarray, shape (n, k)
        One row per asset, one column per factor; NaN rows for assets with too few
        observations.
    intercepts : ndarray, shape (n,)
        The regression constants (zeros without a constant; NaN where the loadings are).
    specific_variance : ndarray, shape (n,)
        Residual variance per period with the effective degrees-of-freedom correction.
    factor_covariance : ndarray, shape (k, k) or None
        None when not asked for.
    lambdas : ndarray, shape (n,)
        The penalty used for each asset (0 for OLS; NaN where not estimated).
    residuals : ndarray, shape (T, n)
        NaN where the return or a factor return is missing.
    n_observations : ndarray of int, shape (n,)
    degrees_of_freedom : ndarray, shape (n,)
        Effective number of parameters of each fit (intercept included).
    diagnostics : dict
        ``method``, ``condition_number``, ``vif`` (k,), ``lambda_grid`` (the grid
        searched: (g,) common or (g, n) per asset; None without search),
        ``cv_mse`` (g, n: mean validation MSE of each penalty; None without search),
        ``folds`` (the number of walk-forward folds; 0 without search).
    """

    loadings: np.ndarray
    intercepts: np.ndarray
    specific_variance: np.ndarray
    factor_covariance: np.ndarray | None
    lambdas: np.ndarray
    residuals: np.ndarray
    n_observations: np.ndarray
    degrees_of_freedom: np.ndarray
    diagnostics: dict


# ----------------------------------------------------------------------------- diagnostics
def collinearity(factor_returns):
    """Condition number of the factors' correlation matrix and their variance inflation.

    Parameters
    ----------
    factor_returns : array_like, shape (T, k)
        Rows with a non-finite value are dropped.

    Returns
    -------
    condition_number : float
        ``largest / smallest`` eigenvalue of the correlation matrix, square-rooted (the
        condition number of the standardised factor matrix); ``inf`` when a factor is
        constant or a combination of others; 1 for a single factor.
    vif : ndarray, shape (k,)
        ``diag(C^-1)`` for the correlation matrix ``C``: ``1 / (1 - R_j^2)`` of factor
        ``j`` regressed on the others; ``inf`` for an exact dependence or a constant.
    """
    X = check_array("factor_returns", factor_returns, ("T", "K"))
    X = X[np.isfinite(X).all(axis=1)]
    k = X.shape[1]
    if X.shape[0] < 2 or k == 0:
        return np.nan, np.full(k, np.nan)
    sd = X.std(axis=0)
    if (sd <= 1e-300).any():
        return np.inf, np.where(sd <= 1e-300, np.inf, np.nan)
    C = np.corrcoef(X, rowvar=False).reshape(k, k)
    lam = np.linalg.eigvalsh(C)
    cond = np.inf if lam[0] <= lam[-1] * 1e-14 else float(np.sqrt(lam[-1] / lam[0]))
    try:
        vif = np.diag(np.linalg.inv(C)).copy() if np.isfinite(cond) else np.full(k, np.inf)
    except np.linalg.LinAlgError:
        vif = np.full(k, np.inf)
    return cond, vif


def collinearity_message(factor_returns, names=None, max_condition=MAX_CONDITION,
                         max_vif=MAX_VIF, measured=None):
    """A sentence naming nearly collinear factors, or None when they are not.

    Parameters
    ----------
    factor_returns : array_like, shape (T, k)
    names : sequence of str, optional
        Factor names (default ``factor_0``, ...).
    max_condition, max_vif : float
        Thresholds (:data:`MAX_CONDITION`, :data:`MAX_VIF`).
    measured : tuple, optional
        ``(condition_number, vif)`` of these factor returns when already computed
        (:func:`collinearity`), so that it is not computed again.

    Returns
    -------
    str or None
    """
    X = np.asarray(factor_returns, dtype=float)
    k = X.shape[1] if X.ndim == 2 else 0
    if k < 2:
        return None
    names = [f"factor_{j}" for j in range(k)] if names is None else [str(n) for n in names]
    cond, vif = collinearity(X) if measured is None else measured
    if not (np.isfinite(cond) or np.isinf(cond)):
        return None
    flagged = [j for j in range(k) if not vif[j] <= max_vif]
    if cond <= max_condition and not flagged:
        return None
    order = sorted(flagged, key=lambda j: -vif[j])
    listed = (", ".join(f"{names[j]} (VIF {vif[j]:.3g})" for j in order)
              or "none above the VIF limit")
    return (f"factor returns are nearly collinear: condition number {cond:.3g} (limit "
            f"{max_condition:g}); factors with variance inflation above {max_vif:g}: {listed}. "
            "Unpenalised loadings on them (OLS, Kalman betas) are unstable, with large "
            "offsetting betas; a ridge or lasso penalty tames them "
            "(FactorRiskModel(method='ridge' or 'lasso')), or drop or orthogonalise factors")


def warn_collinear_once(owner, factor_returns, names, measured=None):
    """Warn (:class:`CollinearFactorsWarning`) at most once per ``owner`` (e.g. a
    pipeline term) when its factor returns are nearly collinear, naming the factors
    (:func:`collinearity_message`; ``measured`` as there). Rows with a non-finite value
    are ignored."""
    if getattr(owner, "_collinearity_warned", False):
        return
    X = np.asarray(factor_returns, dtype=float)
    X = X[np.isfinite(X).all(axis=1)]
    if X.shape[0] < 3:
        return
    message = collinearity_message(X, names, measured=measured)
    if message is not None:
        object.__setattr__(owner, "_collinearity_warned", True)
        warnings.warn(f"{type(owner).__name__}: {message}", CollinearFactorsWarning,
                      stacklevel=3)


# ----------------------------------------------------------------------------- folds and grids
def walk_forward_folds(n_rows, n_splits=5):
    """Walk-forward (expanding-window) folds, as scikit-learn's ``TimeSeriesSplit``.

    Fold ``f`` validates on a block of ``n_rows // (n_splits + 1)`` consecutive rows and
    trains on every row before it; the last fold ends at the last row.

    Returns
    -------
    list of (train_stop, test_start, test_stop)
        Train rows ``[0, train_stop)``, test rows ``[test_start, test_stop)``.
    """
    n_rows, n_splits = int(n_rows), int(n_splits)
    if n_splits < 2:
        raise ValueError(f"cv must be an integer of at least 2 folds, got {n_splits}")
    size = n_rows // (n_splits + 1)
    if size < 1:
        raise ValueError(f"{n_rows} rows are too few for {n_splits} walk-forward folds")
    starts = range(n_rows - n_splits * size, n_rows, size)
    return [(s, s, s + size) for s in starts]


def _center(X, Y, fit_intercept):
    if not fit_intercept:
        return X, Y, np.zeros(X.shape[1]), np.zeros(Y.shape[1])
    xm = X.mean(axis=0)
    ym = Y.mean(axis=0)
    return X - xm, Y - ym, xm, ym


def ridge_grid(factor_returns, grid_size=16, fit_intercept=True):
    """Default ridge penalties: ``1e-4`` to ``10`` times the mean diagonal of ``X'X``."""
    X = np.asarray(factor_returns, dtype=float)
    X = X[np.isfinite(X).all(axis=1)]
    Xc = X - X.mean(axis=0) if fit_intercept else X
    scale = float(np.mean(np.sum(Xc * Xc, axis=0)))
    if not scale > 0:
        raise ValueError("the factor returns have no variance: no ridge penalty scale")
    return np.geomspace(1e-4, 10.0, int(grid_size)) * scale


def lasso_grid(factor_returns, asset_returns, grid_size=20, l1_ratio=1.0, eps=1e-3,
               fit_intercept=True):
    """Default lasso penalties per asset, as ``LassoCV``: ``lambda_max`` down to ``eps`` x it.

    ``lambda_max = max_j |x_j' y| / (T rho)`` is the smallest penalty that zeroes every
    loading. Needs complete rows (no NaN). Returns an array of shape (grid_size, n),
    decreasing.
    """
    X = np.asarray(factor_returns, dtype=float)
    Y = np.asarray(asset_returns, dtype=float)
    Xc, Yc, _, _ = _center(X, Y, fit_intercept)
    lam_max = np.abs(Xc.T @ Yc).max(axis=0) / (X.shape[0] * float(l1_ratio))
    lam_max = np.where(lam_max > 0, lam_max, np.finfo(float).eps)
    return np.geomspace(1.0, float(eps), int(grid_size))[:, None] * lam_max[None, :]


# ----------------------------------------------------------------------------- solvers
def _ridge_solve(X, Y, lams, fit_intercept):
    """Ridge coefficients for every penalty in ``lams`` (g,) and every column of Y.

    Returns coef (g, k, n), intercept (g, n), dof (g,) (without the intercept).
    """
    Xc, Yc, xm, ym = _center(X, Y, fit_intercept)
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    UtY = U.T @ Yc
    d = s[None, :] / (s[None, :] ** 2 + lams[:, None])  # (g, r)
    coef = np.einsum("rk,gr,rn->gkn", Vt, d, UtY)
    intercept = ym[None, :] - np.einsum("k,gkn->gn", xm, coef)
    dof = np.sum(s[None, :] ** 2 / (s[None, :] ** 2 + lams[:, None]), axis=1)
    return coef, intercept, dof


def _cv_score(X, Y, folds, fit):
    """Mean over the ``folds`` of the validation MSE of every penalty, shape (g, n).

    ``fit(X_train, Y_train)`` returns the coefficients (g, k, n) and intercepts (g, n)
    of every penalty.
    """
    score = 0.0
    for stop, t0, t1 in folds:
        coef, icpt = fit(X[:stop], Y[:stop])
        pred = np.einsum("tk,gkn->gtn", X[t0:t1], coef) + icpt[:, None, :]
        score = score + np.mean((Y[t0:t1][None] - pred) ** 2, axis=1)
    return score / len(folds)


def _polish(G, C, l1, l2, B, eye, rounds=8):
    """Exact elastic-net solutions on supports started from ``B`` (k, m), in place.

    For each asset, solve ``(G_SS + l2 I) b_S = c_S - l1 sign_S`` on the support ``S``
    with signs ``sign_S``; accept when the optimality conditions hold (signs kept,
    ``|c_j - (G b)_j| <= l1`` off the support: then it is the unique optimum);
    otherwise drop the coordinates whose sign flipped, add those that violate the
    bound (with the sign of their gradient) and solve again, ``rounds`` times at most
    (a feature-sign search without line search; what it does not settle is left to
    coordinate descent). Accepted columns of ``B`` are overwritten. Returns the
    accepted mask (m,).
    """
    m = B.shape[1]
    S = (B != 0).T  # (m, k)
    sg = np.sign(B).T
    exact = np.zeros(m, dtype=bool)
    todo = np.arange(m)
    for _ in range(int(rounds)):
        St, sgt, Ct, l1t, l2t = S[todo], sg[todo], C[:, todo].T, l1[todo], l2[todo]
        both = St[:, :, None] & St[:, None, :]
        M = np.where(both, G[None] + l2t[:, None, None] * eye, 0.0) + (~St)[:, :, None] * eye
        rhs = np.where(St, Ct - l1t[:, None] * sgt, 0.0)
        try:
            Bp = np.linalg.solve(M, rhs[..., None])[..., 0]  # (t, k)
        except np.linalg.LinAlgError:
            break
        grad = Ct - Bp @ G  # l1 sign(b) + l2 b on the support
        slack = 1e-9 * np.maximum(l1t, np.abs(Ct).max(axis=1)) + 1e-300
        kept = ~St | (np.sign(Bp) == sgt)
        bounded = St | (np.abs(grad) <= l1t[:, None] + slack[:, None])
        ok = kept.all(axis=1) & bounded.all(axis=1) & np.isfinite(Bp).all(axis=1)
        B[:, todo[ok]] = Bp[ok].T
        exact[todo[ok]] = True
        if ok.all():
            break
        bad = ~ok
        newS = (St & kept) | ~bounded
        newsg = np.where(St & kept, sgt, np.where(~bounded, np.sign(grad), 0.0))
        changed = (newS != St).any(axis=1) | (newsg != sgt).any(axis=1)
        go = bad & changed
        if not go.any():
            break
        S[todo[go]] = newS[go]
        sg[todo[go]] = newsg[go]
        todo = todo[go]
    return exact


def _enet_path(X, Y, lams, l1_ratio, fit_intercept, tol, max_iter, B0=None):
    """Elastic-net loadings for every penalty row of ``lams`` (g, n), warm-started.

    Minimises ``||y - c - X b||^2 / (2 T) + lam (rho |b|_1 + (1 - rho) |b|^2 / 2)`` for
    all columns of ``Y`` at once through the Gram matrix ``G = X'X / T``. Each round
    first solves exactly on the support and signs at hand (:func:`_polish`: batched
    k x k solves with a few support corrections), which settles most assets at once
    when warm-started from the previous penalty; the others get two coordinate-descent
    sweeps, until their largest change of a loading is at most ``tol`` times their
    largest loading or ``max_iter`` rounds. Returns coef (g, k, n) and intercept (g, n).
    """
    T, k = X.shape
    n = Y.shape[1]
    Xc, Yc, xm, ym = _center(X, Y, fit_intercept)
    G = Xc.T @ Xc / T
    C = Xc.T @ Yc / T
    diag = np.diag(G).copy()
    eye = np.eye(k, dtype=bool)
    B = np.zeros((k, n)) if B0 is None else B0.copy()
    out = np.empty((lams.shape[0], k, n))
    for g in range(lams.shape[0]):
        lam = lams[g]
        l1 = lam * l1_ratio
        l2 = lam * (1.0 - l1_ratio)
        denom = diag[:, None] + l2[None, :]
        denom = np.where(denom > 0, denom, np.inf)
        act = np.arange(n)  # assets not solved yet
        for _ in range(int(max_iter)):
            Ba, Ca, l1a, l2a = B[:, act], C[:, act], l1[act], l2[act]
            # exact solves on the support and signs at hand (warm: the previous penalty's)
            exact = _polish(G, Ca, l1a, l2a, Ba, eye)
            B[:, act] = Ba
            act = act[~exact]
            if not len(act):
                break
            Ba, Ca, l1a, da = B[:, act], C[:, act], l1[act], denom[:, act]
            start = Ba.copy()
            for _sweep in range(2):
                for j in range(k):
                    rho = Ca[j] - G[j] @ Ba + diag[j] * Ba[j]
                    Ba[j] = np.sign(rho) * np.maximum(np.abs(rho) - l1a, 0.0) / da[j]
            B[:, act] = Ba
            moving = np.abs(Ba - start).max(axis=0) > tol * np.maximum(
                np.abs(Ba).max(axis=0), 1e-300)
            act = act[moving]
            if not len(act):
                break
        out[g] = B
    intercept = ym[None, :] - np.einsum("k,gkn->gn", xm, out)
    return out, intercept


def check_penalty(method, cv=5, grid=None, l1_ratio=0.5):
    """Check ``method``, ``cv``, ``grid`` and ``l1_ratio`` of :func:`fit_factor_model`.

    The policy of :mod:`zipline_factorarb.checks` (TypeError for a wrong type,
    ValueError for a wrong value); ``l1_ratio`` is checked for ``"elasticnet"`` only,
    the method that reads it. Returns ``grid`` as a tuple of floats (or None).
    """
    check_choice("method", method, METHODS)
    check_int("cv", cv, low=2)
    if method == "elasticnet":
        check_number("l1_ratio", l1_ratio, 0, 1, low_open=True)
    if grid is not None:
        grid = tuple(float(g) for g in np.asarray(grid, dtype=float).reshape(-1))
        if not grid or not all(np.isfinite(g) and g >= 0 for g in grid):
            raise ValueError(f"grid must be a non-empty list of finite non-negative penalties, "
                             f"got {grid!r}")
    return grid


def _fit_block(X, Y, method, lam, grid, cv, l1_ratio, fit_intercept, tol, max_iter):
    """Fit complete columns Y (T, m) on X (T, k). Returns coef (k, m), intercept (m,),
    lambdas (m,), dof (m,) (without intercept), grid used, cv score."""
    m = Y.shape[1]
    score, used_grid = None, None
    if method == "ridge":
        if lam is None:
            used_grid = ridge_grid(X, fit_intercept=fit_intercept) if grid is None else grid
            score = _cv_score(X, Y, walk_forward_folds(X.shape[0], cv),
                              lambda Xt, Yt: _ridge_solve(Xt, Yt, used_grid, fit_intercept)[:2])
            lam = used_grid[np.argmin(score, axis=0)]
        # group assets by penalty: one SVD, one einsum per distinct value
        ulam, inv = np.unique(lam, return_inverse=True)
        coef_g, icpt_g, dof_g = _ridge_solve(X, Y, ulam, fit_intercept)
        coef = coef_g[inv, :, np.arange(m)].T
        icpt = icpt_g[inv, np.arange(m)]
        dof = dof_g[inv]
        return coef, icpt, lam, dof, used_grid, score
    # lasso / elastic net
    if lam is None:
        if grid is None:
            used_grid = lasso_grid(X, Y, l1_ratio=l1_ratio, fit_intercept=fit_intercept)
        else:
            used_grid = np.sort(np.asarray(grid, dtype=float))[::-1][:, None] * np.ones((1, m))
        score = _cv_score(X, Y, walk_forward_folds(X.shape[0], cv),
                          lambda Xt, Yt: _enet_path(Xt, Yt, used_grid, l1_ratio, fit_intercept,
                                                    tol, max_iter))
        best = np.argmin(score, axis=0)
        lam = used_grid[best, np.arange(m)]
    coef, icpt = _enet_path(X, Y, lam[None, :], l1_ratio, fit_intercept, tol, max_iter)
    coef, icpt = coef[0], icpt[0]
    dof = (np.abs(coef) > 0).sum(axis=0).astype(float)
    return coef, icpt, lam, dof, used_grid, score


def fit_factor_model(asset_returns, factor_returns, method="ols", lam=None, *, cv=5,
                     grid=None, l1_ratio=0.5, add_constant=True, min_observations=None,
                     halflife=None, shrinkage="ledoit_wolf", specific_variance_floor=0.0,
                     covariance=True, tol=1e-6, max_iter=1000):
    """Estimate a factor model from a window of asset and factor returns.

    Parameters
    ----------
    asset_returns : array_like, shape (T, n)
        NaN marks a missing return; an asset is fitted on its own observed rows.
    factor_returns : array_like, shape (T, k)
        A row with any non-finite factor return is dropped for every asset.
    method : {"ols", "ridge", "lasso", "elasticnet"}, default "ols"
        See the module docstring for the penalised objectives. ``"ols"`` keeps the
        numbers of :func:`~zipline_factorarb.kernels.risk.regression_loadings`.
    lam : float or array_like of shape (n,), optional
        The penalty (``alpha`` in scikit-learn), for every asset or per asset.
        None (penalised methods): chosen per asset by walk-forward cross-validation.
    cv : int, default 5
        Walk-forward folds (:func:`walk_forward_folds`) when ``lam`` is None. Each fold
        needs two rows: too few complete rows is an error; an asset with missing
        returns whose own rows are too few gets NaN.
    grid : array_like, optional
        Candidate penalties (one grid for all assets); default :func:`ridge_grid` /
        :func:`lasso_grid`.
    l1_ratio : float, default 0.5
        Elastic-net mixing ``rho`` in ``(0, 1]`` (``"lasso"`` is ``rho = 1``).
    add_constant : bool, default True
        Fit an unpenalised intercept.
    min_observations : int, optional
        Assets with fewer usable rows get NaN (default: parameters + 1).
    halflife : float, optional
        Exponential weighting (rows) of the specific variances and factor covariance.
    shrinkage : {"ledoit_wolf"} or float or None, default "ledoit_wolf"
        See :func:`~zipline_factorarb.kernels.risk.factor_covariance`.
    specific_variance_floor : float, default 0.0
    covariance : bool, default True
        Also estimate the factor covariance (False: ``factor_covariance`` is None, for
        callers that estimate it elsewhere).
    tol, max_iter
        Lasso / elastic net: an asset is done when an exact solve on a support
        satisfies the optimality conditions (its loadings are then the optimum), or
        when its largest change of a loading in two coordinate-descent sweeps is at
        most ``tol`` times its largest loading, or after ``max_iter`` rounds.

    Returns
    -------
    FactorModelFit
    """
    grid = check_penalty(method, cv, grid, l1_ratio)
    R = check_array("asset_returns", asset_returns, ("T", "N"))
    X = check_array("factor_returns", factor_returns, ("T", "K"))
    T, n = R.shape
    k = X.shape[1]
    if X.shape[0] != T:
        raise ValueError(f"asset_returns has {T} rows but factor_returns has {X.shape[0]}: "
                         "align them on the same dates first")
    if k == 0:
        raise ValueError("factor_returns has no columns: give at least one factor")
    rho = 1.0 if method == "lasso" else float(l1_ratio)
    lam = None if method == "ols" or lam is None else check_numbers("lam", lam, n, low=0)
    grid = None if grid is None else np.asarray(grid)

    row_ok = np.isfinite(X).all(axis=1)
    cond, vif = collinearity(X[row_ok]) if row_ok.sum() >= 2 else (np.nan, np.full(k, np.nan))
    diagnostics = {"method": method, "condition_number": cond, "vif": vif,
                   "lambda_grid": None, "cv_mse": None, "folds": 0}
    p = k + (1 if add_constant else 0)
    if min_observations is None:
        min_observations = p + 1

    if method == "ols":
        reg = kr.regression_loadings(R, X, add_constant=add_constant,
                                     min_observations=min_observations)
        B = reg.loadings
        icpt = B[:, 0].copy() if add_constant else np.where(np.isfinite(B).all(axis=1), 0.0, np.nan)
        loadings = (B[:, 1:] if add_constant else B).copy()
        residuals = reg.residuals
        n_obs = reg.n_observations
        lambdas = np.where(np.isfinite(loadings).all(axis=1), 0.0, np.nan)
        dof = np.full(n, float(p))
    else:
        Xr, Rr = X[row_ok], R[row_ok]
        valid = np.isfinite(Rr)
        n_obs = valid.sum(axis=0)
        loadings = np.full((n, k), np.nan)
        icpt = np.full(n, np.nan)
        lambdas = np.full(n, np.nan)
        dof = np.full(n, np.nan)
        enough = n_obs >= min_observations
        complete = valid.all(axis=0) & enough
        blocks = []
        if complete.any():
            blocks.append((np.flatnonzero(complete), np.ones(Xr.shape[0], dtype=bool)))
        for i in np.flatnonzero(enough & ~complete):
            blocks.append((np.array([i]), valid[:, i]))
        for b, (cols, rows) in enumerate(blocks):
            Xb, Yb = Xr[rows], Rr[rows][:, cols]
            if lam is None and Xb.shape[0] // (cv + 1) < 2:
                if b > 0 or not complete.any():  # an asset with missing rows: left NaN
                    continue
                raise ValueError(f"{Xb.shape[0]} rows are too few for {cv}-fold walk-forward "
                                 "cross-validation; give lam or more rows")
            coef, ic, lb, df, used_grid, score = _fit_block(
                Xb, Yb, method, None if lam is None else lam[cols], grid, cv, rho,
                add_constant, tol, max_iter)
            loadings[cols] = coef.T
            icpt[cols] = ic if add_constant else 0.0
            lambdas[cols] = lb
            dof[cols] = df + (1.0 if add_constant else 0.0)
            if score is not None and len(cols) > 1:
                diagnostics["lambda_grid"] = used_grid
                diagnostics["cv_mse"] = score
                diagnostics["folds"] = cv
        residuals = np.full((T, n), np.nan)
        residuals[row_ok] = kr.factor_residuals(Rr, Xr, loadings, icpt)
        n_obs = np.zeros(n, dtype=int) + n_obs
    spec = kr.specific_variance(residuals, halflife=halflife, n_parameters=dof,
                                floor=specific_variance_floor)
    fcov = None
    if covariance:
        fcov = kr.factor_covariance(X[row_ok], halflife=halflife, shrinkage=shrinkage)
    return FactorModelFit(loadings, icpt, spec, fcov, lambdas, residuals, n_obs, dof, diagnostics)


# ----------------------------------------------------------------------------- pipeline windows
class FactorModelEstimate(NamedTuple):
    """Output of :func:`estimate_factor_model` (arrays, no labels).

    Attributes
    ----------
    alpha : ndarray, shape (N,)
        Regression intercepts (NaN without a constant or with too few rows).
    loadings : ndarray, shape (N, K)
        Loadings on every factor; 0 on an unusable factor, NaN for assets with too
        few observations.
    specific_variance : ndarray, shape (N,)
    n_observations : ndarray, shape (N,)
        Rows used for each asset.
    usable : ndarray of bool, shape (K,)
        Factors with enough data in the window to enter the regression.
    collinearity : tuple or None
        ``(condition_number, vif)`` of the usable factors on the rows used
        (:func:`collinearity`); None when no regression was run.
    """

    alpha: np.ndarray
    loadings: np.ndarray
    specific_variance: np.ndarray
    n_observations: np.ndarray
    usable: np.ndarray
    collinearity: tuple | None = None


def cross_section_mean(returns, labels=None, code=None):
    """Equal-weighted mean of the finite ``returns`` (N,) of one day, or of one sector's.

    ``labels`` (N,) holds each asset's sector code; with ``code``, only the assets of
    that label are averaged. NaN when no asset qualifies.
    """
    r = np.asarray(returns, dtype=float).reshape(-1)
    keep = np.isfinite(r)
    if code is not None:
        keep &= np.asarray(labels).reshape(-1) == code
    return float(r[keep].mean()) if keep.any() else np.nan


def stack_factor_returns(factors, has_market=True, excess_of_market=True, n_characteristics=0):
    """Factor returns as a (T, K) matrix, one column per window of ``factors``, in order.

    Parameters
    ----------
    factors : sequence of ndarray, each shape (T,) or (T, 1)
        The market first (with ``has_market``), then the factor-asset and sector
        returns, then ``n_characteristics`` characteristic factor returns.
    excess_of_market : bool, default True
        Subtract the market return from the factor-asset and sector returns
        (long-short style and sector-relative factors); needs the market. The
        characteristic returns are long-short already and never taken in excess.
    """
    columns = [np.asarray(x, dtype=float).reshape(-1) for x in factors]
    if not columns:
        raise ValueError("no factor returns given")
    first, split = int(bool(has_market)), len(columns) - n_characteristics
    if excess_of_market and split > first:
        if not has_market:
            raise ValueError("excess_of_market needs the market's returns")
        columns[first:split] = [x - columns[0] for x in columns[first:split]]
    return np.column_stack(columns)


def usable_factor_rows(factor_returns, min_factor_coverage=0.9):
    """Factors with enough data in the window, and the rows where all of them are finite.

    A factor with finite returns on fewer than ``min_factor_coverage`` of the rows (a
    fund listed inside the window, a sector without assets) is left out, so that it
    does not cost every asset the rows it lacks.

    Returns
    -------
    usable : ndarray of bool, shape (K,)
    rows : ndarray of bool, shape (T,)
    """
    X = np.asarray(factor_returns, dtype=float)
    T = X.shape[0]
    finite = np.isfinite(X)
    usable = finite.sum(axis=0) >= min_factor_coverage * T
    rows = finite[:, usable].all(axis=1) if usable.any() else np.zeros(T, dtype=bool)
    return usable, rows


def factor_moments(factor_returns, halflife=None, shrinkage="ledoit_wolf",
                   min_factor_coverage=0.9):
    """Mean (K,) and covariance (K, K) of the factor returns (T, K) of a window.

    Computed on the rows of :func:`usable_factor_rows`; an unusable factor gets mean 0
    and a zero row and column. The covariance is
    :func:`~zipline_factorarb.kernels.risk.factor_covariance` (Ledoit-Wolf shrunk by
    default), the mean the plain average; both NaN when fewer than two rows are usable.
    """
    X = np.asarray(factor_returns, dtype=float)
    m = X.shape[1]
    usable, rows = usable_factor_rows(X, min_factor_coverage)
    if rows.sum() < 2:
        return np.full(m, np.nan), np.full((m, m), np.nan)
    mean = np.zeros(m)
    cov = np.zeros((m, m))
    Xu = X[rows][:, usable]
    mean[usable] = Xu.mean(axis=0)
    cov[np.ix_(usable, usable)] = kr.factor_covariance(Xu, halflife=halflife, shrinkage=shrinkage)
    return mean, cov


def estimate_factor_model(asset_returns, factor_returns, add_constant=True, min_observations=None,
                          halflife=None, min_factor_coverage=0.9, specific_variance_floor=0.0,
                          method="ols", lam=None, cv=5, grid=None, l1_ratio=0.5):
    """:func:`fit_factor_model` of a pipeline window, on its usable factors only.

    The regressions of ``asset_returns`` (T, N) on the factors of ``factor_returns``
    (T, K) that :func:`usable_factor_rows` keeps (``min_factor_coverage``), on the
    rows where they are all finite; the other parameters are those of
    :func:`fit_factor_model`. No factor covariance is estimated
    (:func:`factor_moments` gives it).

    Returns
    -------
    FactorModelEstimate
    """
    R = np.asarray(asset_returns, dtype=float)
    X = np.asarray(factor_returns, dtype=float)
    n, m = R.shape[1], X.shape[1]
    usable, rows = usable_factor_rows(X, min_factor_coverage)
    n_params = int(usable.sum()) + (1 if add_constant else 0)
    if n_params == 0 or rows.sum() < n_params + 1:
        return FactorModelEstimate(np.full(n, np.nan), np.full((n, m), np.nan),
                                   np.full(n, np.nan), np.zeros(n), usable)
    fit = fit_factor_model(R[rows], X[rows][:, usable], method, lam, cv=cv, grid=grid,
                           l1_ratio=l1_ratio, add_constant=add_constant,
                           min_observations=min_observations, halflife=halflife,
                           specific_variance_floor=specific_variance_floor, covariance=False)
    ok = np.isfinite(fit.loadings).all(axis=1)
    alpha = np.where(ok, fit.intercepts, np.nan) if add_constant else np.full(n, np.nan)
    loadings = np.zeros((n, m))
    loadings[:, usable] = np.where(np.isfinite(fit.loadings), fit.loadings, 0.0)
    loadings[~ok] = np.nan
    return FactorModelEstimate(alpha, loadings, fit.specific_variance,
                               fit.n_observations.astype(float), usable,
                               (fit.diagnostics["condition_number"], fit.diagnostics["vif"]))
