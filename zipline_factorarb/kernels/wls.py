r"""Cross-sectional weighted least squares residuals (pure numpy).

Each day the cross-section of stock returns ``R`` is regressed on a matrix of
factor ``loadings`` Omega (intercept, sector dummies, style factors) with the
diagonal matrix of ``weights`` ``Z = diag(z_i)``, ``z_i = 1 / sigma_i**2``
(weighted regression mean reversion; residual returns after removing
systematic factors as in Avellaneda & Lee 2010)::

    factor_returns      f      = (Omega' Z Omega)^-1 Omega' Z R
    residuals           eps    = R - Omega f
    weighted_residuals  R~     = Z eps

The weighted residuals are orthogonal to every factor column,
``sum_i R~_i Omega_iA = 0`` for every factor ``A``, so a portfolio sized
proportionally to ``-R~`` is neutral to all factors in ``Omega``; with an
intercept column they also sum to zero.

Everything here is a pure function of its arguments: numpy arrays in, numpy
arrays (or a small named tuple) out, float64 throughout, no I/O, no pandas,
no global state. One session of the whole recipe (weights, styles,
components, sector dummies, then the regression) is
:func:`zipline_factorarb.kernels.wls_window.wls_window`, which the pipeline
factor calls.

Vocabulary (``docs/glossary.md``): loadings are ``(N, K)``, assets by
factors (``(T, N, K)`` by day); ``ridge`` here is the absolute penalty
:math:`\lambda`, and :func:`scale_free_ridge` turns the factor's scale-free
``ridge`` into it.

References
----------
.. [1] Avellaneda, M. and Lee, J.-H. (2010). Statistical arbitrage in the US
   equities market. Quantitative Finance, 10(7), 761-782.
.. [2] Hoerl, A. E. and Kennard, R. W. (1970). Ridge regression: biased
   estimation for nonorthogonal problems. Technometrics, 12(1), 55-67.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..checks import check_array, check_int, check_number
from .risk import ewma_weights

__all__ = [
    "STYLE_NAMES",
    "SectorLoadings",
    "StyleFactors",
    "WLSResult",
    "characteristic_return",
    "inverse_variance_weights",
    "neutralize_weights",
    "scale_free_ridge",
    "sector_loadings",
    "standardize_styles",
    "style_factors",
    "wls_residuals",
]

# Bytes of the two per-block buffers (design and weighted design, days x
# (K + 1) x N): big enough for efficient stacked BLAS calls, small enough to
# stay in cache and keep peak memory independent of T.
_BLOCK_BYTES = 8 * 2**20

STYLE_NAMES = ("beta", "size", "momentum", "reversal", "volatility")
"""Names of the style columns that :func:`style_factors` can compute."""


class WLSResult(NamedTuple):
    """Result of :func:`wls_residuals`.

    Shapes are given for the batched form; with ``returns`` of shape ``(N,)``
    the leading ``T`` axis is dropped.

    Attributes
    ----------
    factor_returns : ndarray, shape (T, K)
        ``f``, the estimated return of each factor; NaN on days that are not
        ``valid``.
    residuals : ndarray, shape (T, N)
        ``eps = R - Omega f``; NaN for assets left out of that day's
        regression and on days that are not ``valid``.
    weighted_residuals : ndarray, shape (T, N)
        ``R~ = Z eps``, the trading signal (short positive, buy negative).
    condition_number : ndarray, shape (T,)
        2-norm condition number of the solved matrix ``Omega' Z Omega``
        (plus the ridge penalty) after symmetric diagonal scaling to unit
        diagonal. The scaling makes it independent of the units of each
        loadings column and of the overall level of the weights. ``inf`` on
        days whose system is singular by construction (fewer usable assets
        than factors, a factor column that is zero over the usable assets, a
        non-positive eigenvalue).
    n_assets : ndarray of int64, shape (T,)
        Number of assets that entered each day's regression.
    valid : ndarray of bool, shape (T,)
        True where the day was solved: at least ``K`` usable assets and a
        finite ``condition_number`` not above ``max_condition``.
    """

    factor_returns: np.ndarray
    residuals: np.ndarray
    weighted_residuals: np.ndarray
    condition_number: np.ndarray
    n_assets: np.ndarray
    valid: np.ndarray


class SectorLoadings(NamedTuple):
    """Result of :func:`sector_loadings`.

    ``loadings (N, K)``, ``labels (K,)`` and ``reference``, the code of the
    reference sector (the one without a dummy column; NaN without the
    intercept or when no asset qualifies).
    """

    loadings: np.ndarray
    labels: tuple
    reference: float = np.nan


class StyleFactors(NamedTuple):
    """Result of :func:`style_factors`: raw ``styles (N, S)`` and their ``names (S,)``."""

    styles: np.ndarray
    names: tuple


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _shift_by_first_finite(x, finite):
    """Subtract each column's first finite value (along axis -2).

    Moments are unchanged, but a constant column becomes exactly zero, so
    that its variance is exactly 0 instead of rounding noise.
    """
    first = np.argmax(finite, axis=-2)
    if x.ndim == 2:
        reference = x[first, np.arange(x.shape[1])]
    else:
        reference = np.take_along_axis(x, first[..., None, :], axis=-2)
    reference = np.where(np.isfinite(reference), reference, 0.0)
    return x - reference


def _names(what, names):
    """``names`` (one name or a sequence of them) as a tuple; TypeError naming ``what``."""
    if isinstance(names, str):
        return (names,)
    try:
        return tuple(names)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of names; got {names!r}") from None


def _known_styles(styles, given=(), hint=""):
    """``styles`` as a tuple of distinct names of :data:`STYLE_NAMES` (or of ``given``)."""
    names = _names("styles", styles)
    unknown = [s for s in names if s not in STYLE_NAMES and s not in given]
    if unknown:
        raise ValueError(f"unknown style name(s) {unknown}; choose from {STYLE_NAMES}{hint}")
    if len(set(names)) != len(names):
        raise ValueError(f"styles must not repeat a name; got {names}")
    return names


def _log_positive(values):
    """``log`` of the positive values, NaN for the others (missing ones included)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)


def _sample_variance(window, finite, count):
    """Variance (``ddof=1``) of each column over its ``count`` finite rows (axis -2)."""
    dev = _shift_by_first_finite(window, finite)  # a new array: centred and squared in place
    with np.errstate(invalid="ignore", divide="ignore"):
        dev -= (np.add.reduce(dev, axis=-2, where=finite, initial=0.0) / count)[..., None, :]
        np.multiply(dev, dev, out=dev)
        return np.add.reduce(dev, axis=-2, where=finite, initial=0.0) / (count - 1)


# ---------------------------------------------------------------------------
# the regression
# ---------------------------------------------------------------------------


def wls_residuals(
    returns,
    loadings,
    weights,
    ridge=0.0,
    *,
    ridge_mask=None,
    max_condition=1e10,
):
    r"""Cross-sectional weighted least squares of returns on factor loadings.

    For each day ``t`` (volatility-weighted cross-sectional regression;
    residual returns as in Avellaneda & Lee 2010)::

        f_t   = (Omega_t' Z_t Omega_t + ridge * P)^-1 Omega_t' Z_t R_t
        eps_t = R_t - Omega_t f_t
        R~_t  = Z_t eps_t

    with ``Z_t = diag(weights_t)`` and ``P`` the diagonal penalty selector
    (zero when ``ridge == 0``). All days are solved together, in blocks of
    stacked systems that stay in cache, without a Python loop over days or
    an explicit inverse; peak memory does not grow with ``T`` beyond the
    outputs. The pipeline factor solves one day per call.

    Parameters
    ----------
    returns : array_like, shape (N,) or (T, N)
        Cross-sections of asset returns ``R``.
    loadings : array_like, shape (N, K) or (T, N, K)
        Factor loadings ``Omega``. A 2-D array is used for every day.
    weights : array_like, shape (N,) or (T, N)
        Regression weights ``z_i`` (typically ``1 / sigma_i**2``, see
        :func:`inverse_variance_weights`). A 1-D array is used for every day.
    ridge : float, default 0.0
        Absolute ridge penalty ``lambda`` on the factor returns (Hoerl &
        Kennard 1970), added to the diagonal of ``Omega' Z Omega`` for the
        penalised columns; it is in the units of ``sum_i z_i Omega_iA**2``
        (:func:`scale_free_ridge` turns the factor's scale-free ``ridge``
        into this). With ``ridge > 0`` the orthogonality is no longer exact:
        the weighted residuals satisfy ``sum_i R~_i Omega_iA = ridge * f_A``
        for every penalised column ``A`` (and stay exactly orthogonal to the
        unpenalised ones, e.g. the intercept).
    ridge_mask : array_like of bool, shape (K,), optional
        Which factor columns the ridge penalises. Default: every column
        except those that are constant and non-zero over all finite loadings
        rows (all days), i.e. the intercept is not penalised, so the
        residuals keep summing to zero (with weights) and the market level is
        not shrunk. A column of zeros is penalised, which makes a day with an
        absent sector solvable (its factor return is then 0).
    max_condition : float, default 1e10
        Days whose ``condition_number`` exceeds this are treated as
        ill-posed: NaN results and ``valid = False``.

    Returns
    -------
    WLSResult
        ``factor_returns``, ``residuals``, ``weighted_residuals``,
        ``condition_number``, ``n_assets``, ``valid``; the ``T`` axis is
        dropped when ``returns`` is 1-D.

    Raises
    ------
    ValueError
        On inconsistent shapes, a negative or non-finite ``ridge``, a bad
        ``ridge_mask`` or ``max_condition``. Data problems never raise.
    TypeError
        ``ridge`` or ``max_condition`` is not a number.

    Notes
    -----
    Missing data. An asset whose return, weight or any loading is NaN (or
    infinite), or whose weight is ``<= 0``, is left out of that day's
    regression (zero weight) and gets NaN ``residuals`` and
    ``weighted_residuals``.

    Ill-posed days. A day with fewer usable assets than factors, a factor
    column that is all zero over the usable assets (e.g. a sector with no
    usable member), collinear columns or a condition number above
    ``max_condition`` gets NaN ``factor_returns``, ``residuals`` and
    ``weighted_residuals`` and ``valid = False``; it does not raise and does
    not affect other days (the identity is solved in its place).

    Numerics. The normal equations are scaled to unit diagonal before the
    solve, so the accuracy depends on the scaled ``condition_number`` (see
    :class:`WLSResult`), not on the units of the loadings or weights.
    Residuals are computed as ``R - Omega f``.

    Examples
    --------
    >>> import numpy as np
    >>> R = np.array([0.01, 0.02, -0.01, 0.00])
    >>> Omega = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    >>> Z = np.array([1.0, 2.0, 1.0, 2.0])
    >>> res = wls_residuals(R, Omega, Z)
    >>> np.allclose(Omega.T @ res.weighted_residuals, 0.0)
    True
    """
    returns = check_array("returns", returns, ("N",), ("T", "N"))
    single_day = returns.ndim == 1
    R = returns[None, :] if single_day else returns
    T, N = R.shape
    if single_day:
        loadings_shapes, weights_shapes, days = [("N", "K")], [("N",)], ""
    else:
        loadings_shapes, weights_shapes = [("N", "K"), ("T", "N", "K")], [("N",), ("T", "N")]
        days = f" and T = {T} days"
    shape = {"dims": {"T": T, "N": N},
             "context": f"returns of shape {returns.shape} with N = {N} assets{days}"}
    loadings = check_array("loadings", loadings, *loadings_shapes, **shape)
    weights = check_array("weights", weights, *weights_shapes, **shape)
    K = loadings.shape[-1]
    if K < 1:
        raise ValueError(
            f"loadings must have at least one factor column; got shape "
            f"{loadings.shape}"
        )

    ridge = check_number("ridge", ridge, 0)
    max_condition = check_number("max_condition", max_condition, 1, low_open=True)

    penalty = None
    if ridge_mask is not None:
        ridge_mask = _bool_array("ridge_mask", ridge_mask, "K", K)
    if ridge > 0:
        if ridge_mask is None:
            ridge_mask = _default_ridge_mask(loadings)
        penalty = ridge * ridge_mask.astype(np.float64)

    # Overflow or NaN inside a day's products is reported through `valid`.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if loadings.ndim == 2:  # a broadcast view: the same loadings every day
            rowfinite = np.isfinite(loadings).all(axis=1)
            if not rowfinite.all():  # such assets are left out: a zero weight row
                loadings = np.where(rowfinite[:, None], loadings, 0.0)
                weights = np.where(rowfinite, weights, np.nan)
            loadings = np.broadcast_to(loadings, (T, N, K))
        out = _wls_blocks(R, loadings, weights, penalty, max_condition)

    if single_day:
        out = WLSResult(*(a[0] for a in out))
    return out


def scale_free_ridge(ridge, loadings, weights):
    r"""The absolute ridge penalty of a scale-free ``ridge``.

    ``lambda = ridge * trace(Omega' Z Omega) / K`` over the rows whose
    loadings and weight are finite, so that ``ridge`` is a fraction of the
    average diagonal of the normal matrix and does not depend on the units
    of the loadings or the level of the weights (what
    :class:`~zipline_factorarb.pipeline.wls.WLSResidual` calls ``ridge``;
    :func:`wls_residuals` takes the absolute ``lambda``).

    Parameters
    ----------
    ridge : float
        Scale-free ridge, ``>= 0``.
    loadings : array_like, shape (N, K)
    weights : array_like, shape (N,)

    Returns
    -------
    float
        ``lambda`` (0 when ``ridge`` is 0 or no row is finite).
    """
    X = np.asarray(loadings, dtype=np.float64)
    z = np.asarray(weights, dtype=np.float64)
    rows = np.isfinite(z) & np.isfinite(X).all(axis=1)
    if not ridge > 0 or not rows.any():
        return 0.0
    return float(ridge * (z[rows, None] * X[rows] ** 2).sum(axis=0).mean())


def _bool_array(name, value, dim, size):
    """``value`` as a boolean array of shape ``(size,)``; ValueError naming ``name``."""
    value = np.asarray(value)
    if value.shape != (size,) or value.dtype != np.bool_:
        raise ValueError(f"{name} must be a boolean array of shape ({dim},) = ({size},); "
                         f"got dtype {value.dtype} and shape {value.shape}")
    return value


def _default_ridge_mask(loadings):
    """Penalise every column except constant non-zero ones (the intercept)."""
    K = loadings.shape[-1]
    flat = loadings.reshape(-1, K)
    rows = np.isfinite(flat).all(axis=1)
    if not rows.any():
        return np.ones(K, dtype=bool)
    finite = flat[rows]
    first = finite[0]
    constant = np.all(finite == first, axis=0) & (first != 0)
    return ~constant


def _usable(R, w):
    """Finite return and finite positive weight."""
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(R)
        usable &= w > 0  # False for NaN
        usable &= w < np.inf
        return usable


def _wls_blocks(R, X, w, penalty, max_condition):
    """Normal equations, solve and residuals in blocks of days.

    ``X`` is the ``(T, N, K)`` loadings (possibly a broadcast view). Each
    block of days goes through every step while its data are in cache, so
    the loadings are read from memory once and no temporary of the size of
    the inputs is made:

    1. the design ``A = [Omega | R]'`` is copied transposed, ``(days, K + 1,
       N)``, into a reused buffer (zero return for assets left out), and
       ``A Z`` beside it;
    2. the augmented normal matrices ``[Omega | R]' Z [Omega | R]`` of the
       block: one stacked product ``(A Z) A'``;
    3. the block's systems are scaled and solved (:func:`_scaled_systems`,
       :func:`_solve_scaled`);
    4. ``eps = R - Omega f`` from one stacked product ``[-f', 1] A``.

    The condition numbers of all days come from one stacked
    :func:`numpy.linalg.eigvalsh` at the end; the results of days found too
    ill-conditioned are then set to NaN. A day whose normal matrix has a
    non-finite diagonal has a non-finite loading somewhere (or overflows);
    only such days get the exact per-row finiteness check, which leaves the
    assets with a non-finite loading out.
    """
    T, N = R.shape
    K = X.shape[2]
    w = np.broadcast_to(w, (T, N))

    factor_returns = np.empty((T, K))
    scaled = np.empty((T, K, K))
    well_posed = np.empty(T, dtype=bool)
    solved = np.empty(T, dtype=bool)
    residuals = np.empty((T, N))
    weighted = np.empty((T, N))
    n_assets = np.empty(T, dtype=np.int64)
    block = max(1, min(T, _BLOCK_BYTES // (16 * (K + 1) * max(N, 1))))
    design = np.empty((block, K + 1, N))
    weighted_design = np.empty((block, K + 1, N))
    normal = np.empty((block, K + 1, K + 1))
    coefficients = np.empty((block, 1, K + 1))
    coefficients[:, 0, K] = 1.0
    for start in range(0, T, block):
        stop = min(start + block, T)
        b = stop - start
        Rb, wb = R[start:stop], w[start:stop]
        ub = _usable(Rb, wb)  # updated below on days with bad loadings
        wz = np.where(ub, wb, 0.0)
        A = design[:b]
        A[:, :K] = X[start:stop].transpose(0, 2, 1)
        np.copyto(A[:, K], Rb)
        A[:, K][~ub] = 0.0
        AZ = np.multiply(A, wz[:, None, :], out=weighted_design[:b])
        G = np.matmul(AZ, A.transpose(0, 2, 1), out=normal[:b])
        bad = ~np.isfinite(np.diagonal(G, axis1=1, axis2=2)[:, :K].sum(axis=1))
        if bad.any():
            days = np.flatnonzero(bad)
            _exclude_nonfinite_rows(A, AZ, wz, X, ub, start, days)
            G[days] = np.matmul(AZ[days], A[days].transpose(0, 2, 1))
        n = n_assets[start:stop]
        n[:] = ub.sum(axis=1)
        corr, scaled_rhs, scale, ok = _scaled_systems(G[:, :K, :K], G[:, :K, K], n, penalty)
        f, solved[start:stop] = _solve_scaled(corr, scaled_rhs, scale, ok)
        scaled[start:stop] = corr
        well_posed[start:stop] = ok
        factor_returns[start:stop] = f
        C = coefficients[:b]
        np.negative(f, out=C[:, 0, :K])
        eps = residuals[start:stop]
        np.matmul(C, A, out=eps[:, None, :])  # R - Omega f (NaN where not solved)
        eps[~ub] = np.nan
        np.multiply(wb, eps, out=weighted[start:stop])  # NaN wherever eps is NaN
    # Condition numbers of all days in one stacked call; days found too
    # ill-conditioned lose the results computed for them.
    cond, valid = _condition_numbers(scaled, well_posed, max_condition)
    valid &= solved
    if not valid.all():
        factor_returns[~valid] = np.nan
        residuals[~valid] = np.nan
        weighted[~valid] = np.nan
    return WLSResult(factor_returns, residuals, weighted, cond, n_assets, valid)


def _exclude_nonfinite_rows(A, AZ, wz, X, usable, start, days):
    """Leave out assets whose loadings are not all finite.

    ``days`` are positions in the block whose normal matrix has a
    non-finite diagonal: a non-finite loading (possibly of an asset already
    left out, ``0 * nan``) or an overflow. Finite loadings are kept, so an
    overflow still yields a non-finite normal matrix (an ill-posed day).
    ``usable`` and ``wz`` (the block's) are updated in place.
    """
    finite = np.isfinite(X[start + days]).all(axis=-1)
    keep = usable[days] & finite
    usable[days] = keep
    wz[days] = np.where(keep, wz[days], 0.0)
    A[days] = np.where(keep[:, None, :], A[days], 0.0)
    AZ[days] = np.where(keep[:, None, :], AZ[days], 0.0)


def _scaled_systems(gram, rhs, n_assets, penalty):
    """``corr = D^-1/2 G D^-1/2`` (unit diagonal), ``D^-1/2 rhs``, ``D^1/2``, ``ok``.

    ``ok`` is False for days that are singular by construction (fewer
    assets than factors, a zero or non-finite diagonal, non-finite
    entries); their ``corr`` is the identity.
    """
    T, K = rhs.shape
    if penalty is not None:
        gram = gram + np.diag(penalty)[None, :, :]
    diag = np.diagonal(gram, axis1=1, axis2=2)
    with np.errstate(invalid="ignore"):
        ok = (
            (n_assets >= K)
            & np.all(diag > 0, axis=1)
            & np.isfinite(gram).all(axis=(1, 2))
            & np.isfinite(rhs).all(axis=1)
        )
    scale = np.sqrt(np.where(ok[:, None], diag, 1.0))
    with np.errstate(all="ignore"):
        corr = gram / scale[:, :, None]
        corr /= scale[:, None, :]
        scaled_rhs = rhs / scale
    if not ok.all():
        corr[~ok] = np.eye(K)
        scaled_rhs[~ok] = 0.0
    return corr, scaled_rhs, scale, ok


def _solve_scaled(corr, scaled_rhs, scale, ok):
    """Stacked solve of the scaled systems: ``f`` (NaN where not solved), ``solved``."""
    solution, solved = _stacked(_solve, corr, scaled_rhs)
    solved &= ok
    f = solution / scale
    f[~solved] = np.nan
    return f, solved


def _condition_numbers(corr, ok, max_condition):
    """Condition number of each scaled system (eigvalsh) and whether it is valid."""
    eigenvalues = _stacked(np.linalg.eigvalsh, corr)[0]
    lowest = eigenvalues[:, 0]
    highest = eigenvalues[:, -1]
    positive = ok & (lowest > 0) & np.isfinite(lowest)
    cond = np.full(len(ok), np.inf)
    cond[positive] = highest[positive] / lowest[positive]
    valid = positive & (cond <= max_condition)
    return cond, valid


def _solve(matrix, rhs):
    return np.linalg.solve(matrix, rhs[..., None])[..., 0]


def _stacked(func, *stacks):
    """``func`` of the stacked days ``(T, K)``; should LAPACK fail, day by day.

    Returns the result and which days succeeded (NaN rows where one failed:
    a singular system, a non-converging eigensolver).
    """
    try:
        return func(*stacks), np.ones(len(stacks[0]), dtype=bool)
    except np.linalg.LinAlgError:
        out = np.full(stacks[-1].shape[:2], np.nan)
        done = np.zeros(len(out), dtype=bool)
        for t in range(len(out)):
            try:
                out[t] = func(*(x[t] for x in stacks))
                done[t] = True
            except np.linalg.LinAlgError:
                pass
        return out, done


# ---------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------


def inverse_variance_weights(
    returns_window,
    lookback=None,
    halflife=None,
    cap_quantile=0.95,
    min_periods=None,
):
    r"""Regression weights ``z_i = 1 / sigma_i**2`` from a trailing window.

    The volatility ``sigma_i`` is either the sample standard deviation
    (``ddof=1``) of the last ``lookback`` rows, or the exponentially weighted
    standard deviation with the given ``halflife`` over all rows (the
    bias-corrected estimator of ``pandas.DataFrame.ewm(halflife=...).std()``
    with ``adjust=True``, ``ignore_na=False``: the weight of a row is
    ``(1 - alpha)**age`` with ``alpha = 1 - exp(-ln 2 / halflife)`` and
    ``age`` counted in rows from the last one, missing rows included).
    The weights are then capped at the cross-sectional ``cap_quantile``
    quantile of ``z`` (linear interpolation, as :func:`numpy.nanquantile`),
    so that very quiet stocks cannot dominate the regression (capping at
    the 95th percentile is the usual safeguard).

    Parameters
    ----------
    returns_window : array_like, shape (W, N) or (..., W, N)
        Trailing returns, oldest row first. Leading axes are independent
        windows (e.g. one per day), so the batched form ``(T, W, N)`` gives
        ``(T, N)``; the pipeline adapter can also call it once per day.
    lookback : int, optional
        Number of trailing rows for a plain standard deviation.
    halflife : float, optional
        Half-life in rows of the exponential weighting. Exactly one of
        ``lookback`` and ``halflife`` must be given.
    cap_quantile : float or None, default 0.95
        Quantile in ``(0, 1]`` of the cross-section of ``z`` at which
        weights are capped; ``None`` for no cap.
    min_periods : int, optional
        Minimum number of finite returns for an asset to get a weight
        (at least 2). Default: half the rows used (``lookback`` or ``W``),
        at least 2.

    Returns
    -------
    ndarray, shape (N,) or (..., N)
        Weights ``z_i``; NaN for assets with fewer than ``min_periods``
        finite returns or zero volatility (constant prices).
    """
    x = check_array("returns_window", returns_window, ("W", "N"), (..., "W", "N"))
    W = x.shape[-2]
    if (lookback is None) == (halflife is None):
        raise ValueError(
            "exactly one of lookback and halflife must be given; got "
            f"lookback={lookback!r}, halflife={halflife!r}"
        )
    if lookback is not None:
        lookback = check_int("lookback", lookback, 2)
        if lookback > W:
            raise ValueError(
                f"lookback ({lookback}) exceeds the number of rows W = {W} of "
                f"returns_window with shape {x.shape}"
            )
        n_rows = lookback
    else:
        halflife = check_number("halflife", halflife, 0, low_open=True)
        n_rows = W
    if min_periods is None:
        min_periods = max(2, n_rows // 2)
    else:
        min_periods = check_int("min_periods", min_periods, 2)
    cap_quantile = check_number("cap_quantile", cap_quantile, 0, 1, low_open=True,
                                allow_none=True)

    if lookback is not None:
        window = x[..., W - lookback :, :]
        finite = np.isfinite(window)
        count = finite.sum(axis=-2)
        variance = _sample_variance(window, finite, count)
    else:
        finite = np.isfinite(x)
        x = _shift_by_first_finite(x, finite)
        count = finite.sum(axis=-2)
        row_weight = ewma_weights(W, halflife)[:, None]
        v = np.where(finite, row_weight, 0.0)
        values = np.where(finite, x, 0.0)
        s1 = v.sum(axis=-2)
        s2 = (v * v).sum(axis=-2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (v * values).sum(axis=-2) / s1
            dev = np.where(finite, x - mean[..., None, :], 0.0)
            biased = (v * dev * dev).sum(axis=-2) / s1
            variance = biased * (s1 * s1) / (s1 * s1 - s2)

    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where((count >= min_periods) & (variance > 0), 1.0 / variance, np.nan)
    z = np.where(np.isfinite(z), z, np.nan)
    if cap_quantile is not None:
        if z.ndim == 1:  # one cross-section: the quantile of its finite values
            finite_z = z[np.isfinite(z)]
            if finite_z.size:
                z = np.minimum(z, np.quantile(finite_z, cap_quantile))
            return z
        has_any = np.isfinite(z).any(axis=-1, keepdims=True)
        filled = np.where(has_any, z, 0.0)  # avoid all-NaN slice warnings
        cap = np.nanquantile(filled, cap_quantile, axis=-1, keepdims=True)
        z = np.minimum(z, np.where(has_any, cap, np.nan))
    return z


# ---------------------------------------------------------------------------
# loadings
# ---------------------------------------------------------------------------


def sector_loadings(sector_codes, intercept=True, reference="largest", mask=None):
    """Intercept and sector dummy loadings without perfect collinearity.

    With ``intercept=True`` the columns are ``[1, d_s1, d_s2, ...]``: one
    dummy per sector present that day except a reference sector, whose
    stocks load on the intercept only. The intercept is then the return of
    the reference sector and each dummy's factor return the spread of its
    sector over the reference. The residuals do not depend on which sector
    is the reference (the column space is the same). With
    ``intercept=False`` every present sector gets a dummy and no column is
    dropped (the dummies sum to one, so do not add another intercept).

    Only sectors with at least one member that day get a column: a sector
    with no member would give an all-zero column and a singular regression.

    Parameters
    ----------
    sector_codes : array_like of int, shape (N,)
        Sector code of each asset; negative codes (zipline's missing value
        ``-1``) or NaN mean unknown. Such assets get a NaN row, which
        :func:`wls_residuals` leaves out of the regression.
    intercept : bool, default True
        Whether to include the intercept column and drop a reference sector.
    reference : {"largest", "first"} or int, default "largest"
        Reference sector (only with ``intercept=True``): the one with the
        most members that day (ties: the lowest code), which usually gives
        the best-conditioned regression; the lowest code present; or a given
        code (if absent that day, the largest sector is used).
    mask : array_like of bool, shape (N,), optional
        Assets to consider; others are treated as missing. Pass the assets
        with usable returns and weights so that a sector whose members are
        all missing that day gets no (all-zero) column.

    Returns
    -------
    SectorLoadings
        ``loadings`` (N, K) float64 and ``labels``, a tuple of K strings:
        ``"intercept"`` then ``"sector_<code>"`` in increasing code order.
    """
    codes = np.asarray(sector_codes)
    if codes.ndim != 1:
        raise ValueError(f"sector_codes must have shape (N,); got shape {codes.shape}")
    N = codes.shape[0]
    if codes.dtype.kind == "f":
        known = np.isfinite(codes)
        if not np.all(codes[known] == np.round(codes[known])):
            raise ValueError("sector_codes must hold integer codes (or NaN for unknown)")
        codes = np.where(known, codes, -1).astype(np.int64)
    elif codes.dtype.kind in "iu":
        codes = codes.astype(np.int64)
    else:
        raise ValueError(f"sector_codes must be integer codes; got dtype {codes.dtype}")
    code = isinstance(reference, (int, np.integer)) and not isinstance(reference, bool)
    if not (code or (isinstance(reference, str) and reference in ("largest", "first"))):
        raise ValueError(
            f"reference must be 'largest', 'first' or a sector code; got {reference!r}"
        )
    known = codes >= 0
    if mask is not None:
        known &= _bool_array("mask", mask, "N", N)
    present, counts = np.unique(codes[known], return_counts=True)

    if intercept and present.size:
        if code and reference in present:
            ref = reference
        elif reference == "first":
            ref = present[0]
        else:  # the largest; argmax: the first (lowest code) on ties
            ref = present[np.argmax(counts)]
        dummies = present[present != ref]
        reference = float(ref)
    else:
        dummies = present
        reference = np.nan

    columns = [np.ones(N)] if intercept else []
    columns += [(codes == s).astype(np.float64) for s in dummies]
    loadings = np.column_stack(columns) if columns else np.empty((N, 0))
    loadings[~known] = np.nan
    labels = (("intercept",) if intercept else ()) + tuple(f"sector_{int(s)}" for s in dummies)
    return SectorLoadings(loadings, labels, reference)


def _beta(rows, market_returns, need, finite=None):
    """Slope of each column of ``rows`` on the market, on pairwise-finite rows.

    With ``F`` the 0/1 matrix of pairwise-finite rows and ``m`` the market
    centred on its own mean (a scalar shift, which leaves covariances
    unchanged and keeps the sums below free of cancellation), per column
    ``i``: ``n = sum F``, ``cov = m'(F r) - (m'F)(1'F r) / n`` and
    ``var = (m**2)'F - (m'F)**2 / n``. The window is not copied: columns
    without a missing pair (usually nearly all) use plain sums and one
    vector-matrix product, and only the others are masked.
    """
    B = rows.shape[0]
    if finite is None:
        finite = np.isfinite(rows)
    if market_returns is None:  # equal-weighted cross-sectional mean
        with np.errstate(invalid="ignore", divide="ignore"):
            m = (np.add.reduce(rows, axis=1, where=finite, initial=0.0)
                 / np.count_nonzero(finite, axis=1))
    else:
        m = np.array(market_returns[market_returns.shape[0] - B :], dtype=np.float64)
    market_finite = np.isfinite(m)
    pairs = finite if market_finite.all() else finite & market_finite[:, None]
    m = np.where(market_finite, m, 0.0)
    if market_finite.any():
        m[market_finite] -= m[market_finite].mean()
    incomplete = np.flatnonzero(~pairs.all(axis=0))
    N = rows.shape[1]
    # complete columns: every row pairs
    n = np.full(N, market_finite.sum())
    sum_m = np.full(N, m.sum())
    sum_mm = np.full(N, (m * m).sum())
    if incomplete.size > N // 4:  # missing values everywhere: one masked copy
        values = np.where(pairs, rows, 0.0)
        sum_r = values.sum(axis=0)
        cross = m @ values
    else:
        cross = m @ rows  # NaN in the incomplete columns, redone below
        sum_r = rows.sum(axis=0, where=market_finite[:, None]) if not market_finite.all() \
            else rows.sum(axis=0)
    if incomplete.size:
        p = pairs[:, incomplete]
        values = np.where(p, rows[:, incomplete], 0.0)
        n[incomplete] = p.sum(axis=0)
        sum_m[incomplete] = m @ p
        sum_mm[incomplete] = (m * m) @ p
        sum_r[incomplete] = values.sum(axis=0)
        cross[incomplete] = m @ values
    with np.errstate(invalid="ignore", divide="ignore"):
        var_m = sum_mm - sum_m * sum_m / n
        beta = (cross - sum_m * sum_r / n) / var_m
    ok = (n >= need(B, 2)) & (var_m > 0)
    return np.where(ok, beta, np.nan)


def standardize_styles(raw_styles, weights=None, winsor=3.0):
    """Cross-sectional z-scores of style exposures, winsorised.

    Each column is centred on its (optionally weighted) cross-sectional
    mean and divided by the equal-weighted root mean square deviation from
    that mean (``ddof=0``), the usual risk-model convention (e.g.
    capitalisation-weighted mean, equal-weighted standard deviation).
    Values beyond ``+-winsor`` are then clipped and the column centred and
    scaled again, repeatedly until no value exceeds ``+-winsor`` (to
    ``1e-8``; at most 50 rounds, which converge geometrically). The result
    has (weighted) mean 0 and standard deviation 1 exactly and stays within
    ``+-winsor``: one pass would not do, since an outlier inflates the first
    standard deviation and lands far beyond ``winsor`` after re-scaling.

    Parameters
    ----------
    raw_styles : array_like, shape (N, S) or (..., N, S)
        Raw style exposures, one column per style; leading axes (days) are
        independent.
    weights : array_like, shape (N,) or (..., N), optional
        Weights of the cross-sectional mean (e.g. market capitalisation);
        non-finite or non-positive weights count as zero. Default: equal.
    winsor : float or None, default 3.0
        Clip at this many standard deviations (must exceed 1); ``None`` for
        no clipping.

    Returns
    -------
    ndarray, same shape as ``raw_styles``
        Standardised exposures; NaN where the input is NaN, and an all-NaN
        column where fewer than two values are finite or all are equal.
    """
    x = check_array("raw_styles", raw_styles, ("N", "S"), (..., "N", "S"))
    if weights is not None:
        weights = check_array("weights", weights, x.shape[:-1],
                              context=f"raw_styles of shape {x.shape}")
        with np.errstate(invalid="ignore"):
            weights = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
        weights = weights[..., None]
    if winsor is not None:
        try:
            winsor = float(winsor)
        except (TypeError, ValueError):
            raise ValueError(f"winsor must be a number > 1 or None; got {winsor!r}") from None
        if not winsor > 1:
            raise ValueError(f"winsor must be a number > 1 or None; got {winsor!r}")

    # One row per (leading index, style) column: (C, N), assets contiguous;
    # missing values are held as zeros beside a 0/1 mask, so that every
    # round is a handful of dense operations on the columns still active.
    shape = x.shape
    N = shape[-2]
    columns = np.moveaxis(x, -1, -2).reshape(-1, N)
    finite = np.isfinite(columns)
    mask = finite.astype(np.float64)
    count = finite.sum(axis=1)
    if weights is not None:
        weights = np.broadcast_to(np.moveaxis(weights, -1, -2), shape[:-2] + (shape[-1], N))
        weights = np.where(finite, weights.reshape(-1, N), 0.0)
        weight_sums = weights.sum(axis=1)

    def _standardise(values, rows):
        """Standardised ``values`` (zeros where missing) and which rows are defined."""
        n = count[rows]
        m = mask[rows]
        if weights is None:
            mean = values.sum(axis=1) / n
        else:
            mean = np.einsum("ij,ij->i", weights[rows], values) / weight_sums[rows]
        dev = values - mean[:, None]
        dev *= m
        scale = np.sqrt(np.einsum("ij,ij->i", dev, dev) / n)
        good = (n >= 2) & (scale > 0) & np.isfinite(scale)
        dev /= np.where(good, scale, 1.0)[:, None]
        return dev, good

    everything = np.arange(columns.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        shifted = _shift_by_first_finite(columns.T, finite.T).T
        z, good = _standardise(np.where(finite, shifted, 0.0), everything)
        if winsor is not None:
            # Columns are independent: only those still beyond the bound go
            # through another round (a column within it would not change).
            # Rounds keep the equal-weighted scale; only the mean is weighted.
            active = everything[good]
            bound = winsor + 1e-8
            for _ in range(50):
                active = active[(np.abs(z[active]) > bound).any(axis=1)]
                if not active.size:
                    break
                # clipped zeros stay zeros; a clipped column keeps a positive scale
                z[active] = _standardise(np.clip(z[active], -winsor, winsor), active)[0]
    z[~(finite & good[:, None])] = np.nan
    return np.moveaxis(z.reshape(shape[:-2] + (shape[-1], N)), -2, -1)


def style_factors(
    returns_window,
    market_returns=None,
    dollar_volume=None,
    market_cap=None,
    *,
    styles=None,
    beta_window=252,
    momentum_window=252,
    momentum_skip=21,
    reversal_window=21,
    volatility_window=63,
    min_coverage=0.5,
):
    """Raw style exposures from a trailing window of returns.

    Columns (by name, see :data:`STYLE_NAMES`):

    ``beta``
        Slope of each asset's returns on ``market_returns`` (default: the
        cross-sectional equal-weighted mean return of each row) over the last
        ``beta_window`` rows, ``cov(r_i, m) / var(m)`` on the rows where
        both are finite.
    ``size``
        ``log(market_cap)`` if given, else the log of the average daily
        ``dollar_volume`` over the window.
    ``momentum``
        12-1 momentum: the cumulative return from ``t - momentum_window`` to
        ``t - momentum_skip``, i.e. ``P[t - 21] / P[t - 252] - 1`` with the
        defaults, the product of ``1 + r`` over rows
        ``[W - momentum_window, W - momentum_skip)``. Needs
        ``W >= momentum_window``.
    ``reversal``
        Short-term reversal: the cumulative return over the last
        ``reversal_window`` rows.
    ``volatility``
        Standard deviation (``ddof=1``) of the last ``volatility_window``
        rows.

    Windows longer than the data use all ``W`` rows (except momentum). Each
    value is NaN where fewer than ``min_coverage`` of its rows (at least 2
    for beta and volatility) are finite; missing returns count as zero in the
    cumulative returns. Feed the result to :func:`standardize_styles` before
    using it as loadings.

    Parameters
    ----------
    returns_window : array_like, shape (W, N)
        Daily simple returns, oldest row first; the last row is day ``t``.
    market_returns : array_like, shape (W,), optional
        Market returns aligned with the rows.
    dollar_volume : array_like, shape (W, N) or (N,), optional
        Daily dollar volume (price x shares) or its average per asset.
    market_cap : array_like, shape (N,), optional
        Market capitalisation; takes precedence over ``dollar_volume``.
    styles : sequence of str, optional
        Subset and order of the columns. Default: every style the inputs
        allow (``size`` needs ``market_cap`` or ``dollar_volume``,
        ``momentum`` needs ``W >= momentum_window``). Asking for a style the
        inputs cannot give raises ``ValueError``.
    beta_window, momentum_window, momentum_skip, reversal_window, volatility_window : int
        Window lengths in rows.
    min_coverage : float, default 0.5
        Fraction in ``(0, 1]`` of finite rows a value needs.

    Returns
    -------
    StyleFactors
        ``styles`` (N, S) float64 and ``names`` (tuple of S str).
    """
    r = check_array("returns_window", returns_window, ("W", "N"))
    W, N = r.shape
    beta_window = check_int("beta_window", beta_window, 2)
    momentum_window = check_int("momentum_window", momentum_window, 2)
    momentum_skip = check_int("momentum_skip", momentum_skip, 0)
    reversal_window = check_int("reversal_window", reversal_window, 1)
    volatility_window = check_int("volatility_window", volatility_window, 2)
    if momentum_skip >= momentum_window:
        raise ValueError(
            f"momentum_skip ({momentum_skip}) must be smaller than momentum_window "
            f"({momentum_window})"
        )
    try:
        min_coverage = float(min_coverage)
    except (TypeError, ValueError):
        raise ValueError(f"min_coverage must be in (0, 1]; got {min_coverage!r}") from None
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1]; got {min_coverage!r}")

    shape = {"dims": {"W": W, "N": N}, "context": f"returns_window of shape {r.shape}"}
    if market_returns is not None:
        market_returns = check_array("market_returns", market_returns, ("W",), **shape)
    if market_cap is not None:
        market_cap = check_array("market_cap", market_cap, ("N",), **shape)
    if dollar_volume is not None:
        dollar_volume = check_array("dollar_volume", dollar_volume, ("W", "N"), ("N",), **shape)

    has_size = market_cap is not None or dollar_volume is not None
    has_momentum = W >= momentum_window
    if styles is None:
        names = tuple(
            s
            for s in STYLE_NAMES
            if (s != "size" or has_size) and (s != "momentum" or has_momentum)
        )
    else:
        names = _known_styles(styles)
        if "size" in names and not has_size:
            raise ValueError("style 'size' needs market_cap or dollar_volume")
        if "momentum" in names and not has_momentum:
            raise ValueError(
                f"style 'momentum' needs at least momentum_window = {momentum_window} "
                f"rows; returns_window has W = {W}"
            )

    def _need(n_rows, minimum=1):
        return max(minimum, int(np.ceil(min_coverage * n_rows)))

    finite_rows = np.isfinite(r)  # shared by the styles below
    incomplete = np.flatnonzero(~finite_rows.all(axis=0))  # usually few columns

    def _counts(first, last):
        """Finite rows per column in ``[first, last)``, counted where needed."""
        count = np.full(N, last - first)
        count[incomplete] = finite_rows[first:last, incomplete].sum(axis=0)
        return count

    def _cumulative(first, last):
        rows = r[first:last]
        growth = rows + 1.0
        if incomplete.size:  # a missing return counts as zero
            np.copyto(growth, 1.0, where=~finite_rows[first:last])
        total = growth.prod(axis=0) - 1.0
        return np.where(_counts(first, last) >= _need(last - first), total, np.nan)

    columns = []
    for name in names:
        if name == "beta":
            first = W - min(beta_window, W)
            columns.append(_beta(r[first:], market_returns, _need, finite_rows[first:]))
        elif name == "size":
            if market_cap is not None:
                base = market_cap
            elif dollar_volume.ndim == 2:
                finite = np.isfinite(dollar_volume)
                with np.errstate(invalid="ignore", divide="ignore"):
                    base = np.where(finite, dollar_volume, 0.0).sum(axis=0) / finite.sum(axis=0)
                base = np.where(finite.sum(axis=0) >= _need(W), base, np.nan)
            else:
                base = dollar_volume
            columns.append(_log_positive(base))
        elif name == "momentum":
            columns.append(_cumulative(W - momentum_window, W - momentum_skip))
        elif name == "reversal":
            columns.append(_cumulative(W - min(reversal_window, W), W))
        else:  # volatility
            first = W - min(volatility_window, W)
            n = _counts(first, W)
            with np.errstate(invalid="ignore"):
                vol = np.sqrt(_sample_variance(r[first:], finite_rows[first:], n))
            columns.append(np.where(n >= _need(W - first, 2), vol, np.nan))
    values = np.column_stack(columns) if columns else np.empty((N, 0))
    return StyleFactors(values, names)


def neutralize_weights(weights, loadings):
    r"""The book nearest to ``weights`` with zero exposure to every factor.

    Solves :math:`\min_w \lVert w - w_0 \rVert_2` subject to
    :math:`\Omega' w = 0`: the orthogonal projection
    :math:`w = w_0 - \Omega\, \Omega^{+} w_0` onto the null space of the
    loadings (least squares, so collinear or all-zero columns are harmless).
    With an intercept column the result is dollar neutral; with sector
    dummies every sector nets to zero. A decile book of the weighted
    residuals is only nearly neutral (only the whole cross-section of
    :math:`\tilde R` is orthogonal to the factors); this makes it exactly so,
    on the same names. A name's weight can shrink to zero or change sign
    when neutrality needs it.

    Parameters
    ----------
    weights : array_like, shape (N,)
        The book to neutralise (finite).
    loadings : array_like, shape (N, K)
        Exposures of those names to the factors (finite).

    Returns
    -------
    ndarray, shape (N,)
        The neutral book. Its gross exposure is not restored (rescaling keeps
        it neutral); all zeros when the names cannot form a neutral book
        (``N <= rank(loadings)``).
    """
    w0 = np.asarray(weights, dtype=np.float64)
    X = np.asarray(loadings, dtype=np.float64)
    if w0.ndim != 1 or X.ndim != 2 or X.shape[0] != w0.shape[0]:
        raise ValueError(
            f"weights must have shape (N,) and loadings (N, K); got {w0.shape} and {X.shape}")
    if not (np.isfinite(w0).all() and np.isfinite(X).all()):
        raise ValueError("weights and loadings must be finite")
    if X.shape[1] == 0 or w0.size == 0:
        return w0.copy()
    coef, *_ = np.linalg.lstsq(X, w0, rcond=None)
    w = w0 - X @ coef
    # what is left is numerically zero when the names span no neutral book
    scale = np.abs(w0).sum()
    w[np.abs(w) <= 1e-12 * max(scale, 1e-300)] = 0.0
    return w


def characteristic_return(returns, exposures, winsor=3.0):
    r"""One day's return of a characteristic factor (factor-mimicking portfolio).

    The slope of the cross-sectional regression, with an intercept, of the
    day's returns on the standardised characteristic:

    .. math::

        f = \frac{\sum_i x_i (r_i - \bar r)}{\sum_i x_i^2},

    with :math:`x` = :func:`standardize_styles` of ``exposures`` over the
    assets where both the return and the exposure are finite (mean 0,
    standard deviation 1, winsorised at ``winsor``). It is the return of the
    zero-cost portfolio :math:`w_i = x_i / \sum_j x_j^2`, whose exposure to
    the standardised characteristic is one (Fama-MacBeth's one-factor
    slope). The exposures must be known before the returns (e.g. the
    previous session's market cap) for the factor return to be tradable.

    Parameters
    ----------
    returns : array_like, shape (N,)
        The day's returns.
    exposures : array_like, shape (N,)
        The raw characteristic (e.g. log market cap, book-to-market).
    winsor : float or None, default 3.0

    Returns
    -------
    float
        NaN when fewer than two assets qualify or the exposures are all equal.
    """
    r = check_array("returns", returns).reshape(-1)
    x = check_array("exposures", exposures).reshape(-1)
    if r.shape != x.shape:
        raise ValueError(f"returns and exposures must have the same shape (N,); got "
                         f"{r.shape} and {x.shape}")
    use = np.isfinite(r) & np.isfinite(x)
    if use.sum() < 2:
        return np.nan
    z = standardize_styles(x[use][:, None], winsor=winsor)[:, 0]
    if not np.isfinite(z).all():
        return np.nan
    r = r[use]
    return float(z @ (r - r.mean()) / (z @ z))
