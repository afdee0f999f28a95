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
all assets at once: ridge through one SVD of each training window's factor matrix
(shared by every asset and every penalty), lasso and elastic net along the penalty
path, warm-started and vectorised over assets: exact solves on the support and signs at
hand, accepted when the optimality conditions hold, with coordinate descent on the
factors' Gram matrix for the rest. Generalised (leave-one-out) cross-validation is
deliberately not used: it trains on rows after the one it validates.

Default grids: ridge, ``grid_size`` penalties from ``1e-4`` to ``10`` times the mean
diagonal of the centred ``X'X`` (common to all assets); lasso and elastic net, per
asset as ``LassoCV`` does: ``grid_size`` penalties from ``lambda_max = max_j |x_j' y|
/ (T rho)`` (the smallest penalty that zeroes every loading) down to ``1e-3`` times it.

Specific variances use the effective degrees of freedom of each fit: ``p`` for OLS,
``sum_k s_k^2 / (s_k^2 + lambda)`` (plus the intercept) for ridge, the number of
non-zero loadings (plus the intercept) for lasso and elastic net (Zou, Hastie and
Tibshirani, 2007). The factor covariance is
:func:`~zipline_factorarb.kernels.risk.factor_covariance` (exponentially weighted,
Ledoit-Wolf shrunk).

Collinearity
------------
:func:`collinearity` gives the condition number of the factors' correlation matrix and
each factor's variance inflation factor (VIF); :func:`collinearity_message` says, naming
the factors, when the condition number exceeds :data:`MAX_CONDITION` (30, Belsley,
Kuh and Welsch's rule for strong dependence) or a VIF exceeds :data:`MAX_VIF` (10, the
common rule): the OLS loadings are then unstable, and a ridge or lasso penalty tames
them.
"""

from __future__ import annotations

import numbers
import warnings
from typing import NamedTuple

import numpy as np

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
    X = np.asarray(factor_returns, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"factor_returns must be a 2-d array, got shape {X.shape}")
    X = X[np.isfinite(X).all(axis=1)]
    k = X.shape[1]
    if X.shape[0] < 2 or k == 0:
        return np.nan, np.full(k, np.nan)
    sd = X.std(axis=0)
    if (sd <= 1e-300).any():
        vif = np.where(sd <= 1e-300, np.inf, np.nan)
        return np.inf, vif
    C = np.corrcoef(X, rowvar=False).reshape(k, k)
    lam = np.linalg.eigvalsh(C)
    if lam[0] <= lam[-1] * 1e-14:
        cond = np.inf
    else:
        cond = float(np.sqrt(lam[-1] / lam[0]))
    try:
        vif = np.diag(np.linalg.inv(C)).copy() if np.isfinite(cond) else np.full(k, np.inf)
    except np.linalg.LinAlgError:
        vif = np.full(k, np.inf)
    return cond, vif


def collinearity_message(factor_returns, names=None, max_condition=MAX_CONDITION,
                         max_vif=MAX_VIF):
    """A sentence naming nearly collinear factors, or None when they are not.

    Parameters
    ----------
    factor_returns : array_like, shape (T, k)
    names : sequence of str, optional
        Factor names (default ``factor_0``, ...).
    max_condition, max_vif : float
        Thresholds (:data:`MAX_CONDITION`, :data:`MAX_VIF`).

    Returns
    -------
    str or None
    """
    X = np.asarray(factor_returns, dtype=float)
    k = X.shape[1] if X.ndim == 2 else 0
    if k < 2:
        return None
    names = [f"factor_{j}" for j in range(k)] if names is None else [str(n) for n in names]
    cond, vif = collinearity(X)
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


def warn_collinear_once(owner, factor_returns, names):
    """Warn (:class:`CollinearFactorsWarning`) at most once per ``owner`` (e.g. a
    pipeline term) when its factor returns are nearly collinear, naming the factors
    (:func:`collinearity_message`). Rows with a non-finite value are ignored."""
    if getattr(owner, "_collinearity_warned", False):
        return
    X = np.asarray(factor_returns, dtype=float)
    X = X[np.isfinite(X).all(axis=1)]
    if X.shape[0] < 3:
        return
    message = collinearity_message(X, names)
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

    Needs complete rows (no NaN). Returns an array of shape (grid_size, n), decreasing.
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


def _ridge_cv(X, Y, lams, folds, fit_intercept):
    """Mean over folds of the validation MSE, shape (g, n)."""
    score = np.zeros((len(lams), Y.shape[1]))
    for stop, t0, t1 in folds:
        Xt, Yt = X[:stop], Y[:stop]
        Xc, Yc, xm, ym = _center(Xt, Yt, fit_intercept)
        U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
        UtY = U.T @ Yc
        d = s[None, :] / (s[None, :] ** 2 + lams[:, None])
        Z = (X[t0:t1] - xm) @ Vt.T  # (tv, r)
        pred = np.einsum("tr,gr,rn->gtn", Z, d, UtY) + ym
        score += np.mean((Y[t0:t1][None] - pred) ** 2, axis=1)
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


def _enet_cv(X, Y, lams, folds, l1_ratio, fit_intercept, tol, max_iter):
    score = np.zeros(lams.shape)
    for stop, t0, t1 in folds:
        coef, icpt = _enet_path(X[:stop], Y[:stop], lams, l1_ratio, fit_intercept, tol, max_iter)
        pred = np.einsum("tk,gkn->gtn", X[t0:t1], coef) + icpt[:, None, :]
        score += np.mean((Y[t0:t1][None] - pred) ** 2, axis=1)
    return score / len(folds)


def _check_lam(lam, n):
    if lam is None:
        return None
    arr = np.asarray(lam, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"lam must be a number or one penalty per asset ({n}), got shape "
                         f"{arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"lam must be finite and non-negative, got {lam!r}")
    return arr


def _fit_block(X, Y, method, lam, grid, cv, l1_ratio, fit_intercept, tol, max_iter):
    """Fit complete columns Y (T, m) on X (T, k). Returns coef (k, m), intercept (m,),
    lambdas (m,), dof (m,) (without intercept), grid used, cv score."""
    m = Y.shape[1]
    score, used_grid = None, None
    if method == "ridge":
        if lam is None:
            used_grid = ridge_grid(X, fit_intercept=fit_intercept) if grid is None else grid
            score = _ridge_cv(X, Y, used_grid, walk_forward_folds(X.shape[0], cv), fit_intercept)
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
        score = _enet_cv(X, Y, used_grid, walk_forward_folds(X.shape[0], cv), l1_ratio,
                         fit_intercept, tol, max_iter)
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
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    R = np.asarray(asset_returns, dtype=float)
    X = np.asarray(factor_returns, dtype=float)
    if R.ndim != 2 or X.ndim != 2:
        raise ValueError(f"asset_returns and factor_returns must be 2-d, got shapes {R.shape} "
                         f"and {X.shape}")
    T, n = R.shape
    k = X.shape[1]
    if X.shape[0] != T:
        raise ValueError(f"asset_returns has {T} rows but factor_returns has {X.shape[0]}: "
                         "align them on the same dates first")
    if k == 0:
        raise ValueError("factor_returns has no columns: give at least one factor")
    if not isinstance(cv, numbers.Integral) or cv < 2:
        raise ValueError(f"cv must be an integer of at least 2, got {cv!r}")
    if method == "lasso":
        rho = 1.0
    else:
        rho = float(l1_ratio)
        if method == "elasticnet" and not 0.0 < rho <= 1.0:
            raise ValueError(f"l1_ratio must lie in (0, 1], got {l1_ratio!r}")
    lam = _check_lam(lam, n) if method != "ols" else None
    if grid is not None:
        grid = np.asarray(grid, dtype=float).reshape(-1)
        if grid.size == 0 or not np.isfinite(grid).all() or (grid < 0).any():
            raise ValueError("grid must be a non-empty list of finite non-negative penalties")

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
        icpt = B[0].copy() if add_constant else np.where(np.isfinite(B).all(axis=0), 0.0, np.nan)
        loadings = (B[1:] if add_constant else B).T.copy()
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
        fitted = np.isfinite(loadings).all(axis=1)
        res = Rr - Xr @ np.where(np.isfinite(loadings), loadings, 0.0).T - np.nan_to_num(icpt)
        res[~valid] = np.nan
        res[:, ~fitted] = np.nan
        residuals[row_ok] = res
        n_obs = np.zeros(n, dtype=int) + n_obs
    spec = kr.specific_variance(residuals, halflife=halflife, n_parameters=dof,
                                floor=specific_variance_floor)
    fcov = None
    if covariance:
        fcov = kr.factor_covariance(X[row_ok], halflife=halflife, shrinkage=shrinkage)
    return FactorModelFit(loadings, icpt, spec, fcov, lambdas, residuals, n_obs, dof, diagnostics)
