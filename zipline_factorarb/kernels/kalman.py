r"""Kalman filter for time-varying factor betas (random-walk coefficient regression).

Model
-----
For each asset the factor exposures follow a random walk and the return is a
noisy linear function of the factor returns (a time-varying-parameter
regression in state-space form; Kalman 1960, Durbin & Koopman, *Time Series
Analysis by State Space Methods*, 2nd ed. 2012, ch. 4):

.. math::

    \beta_t = \beta_{t-1} + w_t, \qquad w_t \sim N(0, \delta I_K)

    r_t = f_t^\top \beta_t + v_t, \qquad v_t \sim N(0, v_e)

with ``state_noise`` :math:`\delta` and ``obs_noise`` :math:`v_e`. The filter
recursion, per asset and time step, is

.. math::

    P^- = P + \delta I,\quad e_t = r_t - f_t^\top\beta,\quad
    Q_t = f_t^\top P^- f_t + v_e,\quad K_t = P^- f_t / Q_t,

    \beta \leftarrow \beta + K_t e_t,\quad P \leftarrow P^- - K_t f_t^\top P^-.

The innovation :math:`e_t` (``innovations``) is the part of the return the
adaptive factor model did not predict and is the trading signal of the
dynamic factor-arbitrage research; :math:`Q_t` is ``innovation_variance``.
``betas`` are the filtered exposures :math:`\hat\beta_{t|t}` (after the update
at ``t``). :math:`f_t^\top P^-` is computed as :math:`(P^- f_t)^\top`, which is
the same thing because :math:`P^-` is symmetric.

Missing data
------------
If an asset's return, or any of its factor returns, is NaN at step ``t``, that
asset's update is skipped: the prediction is carried (:math:`\beta`
unchanged, :math:`P = P^-`) and both the innovation and the innovation
variance are reported as NaN for that step (NaN marks "no observation", so the
two outputs are NaN in exactly the same places). This is the standard
treatment of a missing observation in a Kalman filter.

Implementation
--------------
:func:`kalman_filter` and :func:`kalman_last` run the recursion as a
``jax.jit``-compiled ``lax.scan`` over time with all assets advancing together
in the scan carry. Two compiled paths compute the same recursion:

* **general** -- one covariance per asset, stored asset-last (``beta`` as
  ``(K, N)``, ``P`` as ``(K, K, N)``) so that every ``K x K`` operation is an
  element-wise operation over a contiguous vector of assets. Handles
  per-asset factors and any pattern of missing data; a skipped update is a
  zero Kalman gain.
* **shared** -- with factors shared by all assets, :math:`P_t`, :math:`Q_t`
  and :math:`K_t` depend only on :math:`f_t`, :math:`\delta`, :math:`v_e`
  and :math:`P_0`, not on the returns. All assets that are observed at every
  step (and start from the same :math:`P_0`) therefore share one ``(K, K)``
  covariance, and only the betas are carried per asset: ``N`` times less
  work. Assets with a missing return in the data go through the general path.

Shapes are bucketed: the asset axis is padded (with NaN returns on the
general path, zero returns on the shared path; padded assets are discarded)
to :func:`~zipline_factorarb.kernels._jax.bucket_size` ``(N, 64)`` (64, 128,
..., 512, 576, ...), and the time axis is padded to ``bucket_size(T, 32)``
with inactive steps that leave the state untouched. A backtest whose universe
changes size from day to day, or a filter run in chunks of varying length,
therefore reuses one compiled program per bucket.
:func:`compilation_count` reports how many programs have been traced.

Double precision, scoped
------------------------
The recursion runs in float64 inside :func:`~zipline_factorarb.kernels._jax.x64_scope`
(conversion, tracing, compilation, execution and the copy back to numpy), a
thread-local override that leaves JAX's process-wide ``jax_enable_x64``
unchanged; the module docstring of :mod:`zipline_factorarb.kernels._jax`
says why. Importing this module does not import JAX at all.

One step, written once: every recursion here (both compiled paths and
:func:`kalman_update`) is :func:`_predict_gain` (the covariance half) then
:func:`_update_beta` (the mean half), in the asset-last layout, on numpy or
``jax.numpy`` arrays; :func:`kalman_filter` and :func:`kalman_last` run the
same two programs through one dispatch (:func:`_filter`).

:func:`kalman_update`, the one-step recursion, is plain array code: on numpy
inputs it computes in numpy float64; on JAX inputs it uses ``jax.numpy`` in
the caller's dtype and precision setting (it can be used inside the caller's
own ``jax.jit``). :func:`kalman_innovation_window` is one session of the
pipeline factor (PCA or given factor returns, then :func:`kalman_last`).

Vocabulary (``docs/glossary.md``): ``factor_returns`` are arrays of factor
returns, ``(T, K)`` shared or ``(T, N, K)`` per asset; betas and loadings
are ``(N, K)``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from zipline_factorarb.checks import check_array, check_number
from zipline_factorarb.kernels._jax import aligned_full, bucket_size, import_jax, x64_scope
from zipline_factorarb.kernels.pca import DEFAULT_COMPONENTS, pca_factor_returns

__all__ = [
    "CarriedFilter",
    "DEFAULT_COMPONENTS",
    "KalmanLastResult",
    "KalmanWindowResult",
    "KalmanResult",
    "KalmanStep",
    "compilation_count",
    "kalman_filter",
    "kalman_innovation_window",
    "kalman_last",
    "kalman_update",
]

#: padded asset-axis sizes are multiples of at least this many assets
ASSET_BUCKET = 64
#: padded time-axis sizes (``kalman_filter``) are multiples of at least this
TIME_BUCKET = 32

# Diagnostic counter of traced (hence compiled) programs. It is incremented by
# a Python side effect inside the traced function, which runs only when
# ``jax.jit`` misses its cache. It does not influence any result.
_TRACES = {"count": 0}


class KalmanResult(NamedTuple):
    """Output of :func:`kalman_filter` (numpy float64 arrays).

    Attributes
    ----------
    innovations : ndarray, shape (T, N)
        :math:`e_t = r_t - f_t^\\top \\hat\\beta_{t|t-1}`; NaN where the update was
        skipped (missing return or factor).
    innovation_variance : ndarray, shape (T, N)
        :math:`Q_t = f_t^\\top P_{t|t-1} f_t + v_e`; NaN where ``innovations`` is.
    betas : ndarray, shape (T, N, K)
        Filtered betas :math:`\\hat\\beta_{t|t}` after the update at ``t``.
    beta : ndarray, shape (N, K)
        Final filtered state mean (equals ``betas[-1]``); pass as ``beta0`` to
        continue the filter on the next block of data.
    P : ndarray, shape (N, K, K)
        Final filtered state covariance :math:`P_{T|T}`; pass as ``p0`` to
        continue the filter.
    """

    innovations: np.ndarray
    innovation_variance: np.ndarray
    betas: np.ndarray
    beta: np.ndarray
    P: np.ndarray


class KalmanLastResult(NamedTuple):
    """Output of :func:`kalman_last`: the last step of a window (numpy float64).

    ``innovations`` (N,), ``innovation_variance`` (N,) and ``betas`` (N, K)
    are the last rows of the same fields of :class:`KalmanResult`;
    ``standardized_innovations`` (N,) is :math:`e_T / \\sqrt{Q_T}`.
    """

    innovations: np.ndarray
    innovation_variance: np.ndarray
    standardized_innovations: np.ndarray
    betas: np.ndarray


class KalmanStep(NamedTuple):
    """Output of :func:`kalman_update` (one step of the recursion).

    Attributes
    ----------
    beta : array, shape (N, K) or (K,)
        Updated state mean :math:`\\hat\\beta_{t|t}`.
    P : array, shape (N, K, K) or (K, K)
        Updated state covariance :math:`P_{t|t}` (:math:`P_{t|t-1}` where the
        update was skipped).
    innovations : array, shape (N,) or ()
        :math:`e_t`, NaN where the update was skipped.
    innovation_variance : array, shape (N,) or ()
        :math:`Q_t`, NaN where the update was skipped.
    """

    beta: object
    P: object
    innovations: object
    innovation_variance: object


def compilation_count():
    """Number of Kalman programs traced (and so compiled) in this process (an int).

    Counts every ``jax.jit`` cache miss of :func:`kalman_filter` and
    :func:`kalman_last` (one per bucketed shape, factor layout and path), to
    check that a backtest whose universe changes size does not recompile
    every day.
    """
    return _TRACES["count"]


# --------------------------------------------------------------------------
# parameter checks
# --------------------------------------------------------------------------


def _noises(state_noise, obs_noise):
    """``(delta, v_e)`` checked: ``state_noise >= 0``, ``obs_noise > 0``, both finite."""
    return (check_number("state_noise", state_noise, 0),
            check_number("obs_noise", obs_noise, 0, low_open=True))


def check_returns_and_factor_returns(returns, factor_returns,
                                     names=("returns", "factor_returns"), rows="T"):
    """Returns ``(rows, N)`` and factor returns ``(rows, K)`` or ``(rows, N, K)`` as float64.

    The shape check of every kernel that regresses returns on factor returns
    (shared, or one set per asset); ``names`` are the arguments' names and
    ``rows`` the name of the time axis, as the caller's errors say them.
    """
    r_name, f_name = names
    r = check_array(r_name, returns, (rows, "N"))
    T, N = r.shape
    f = np.asarray(factor_returns, dtype=np.float64)
    if f.ndim == 3 and f.shape[:2] != (T, N):
        raise ValueError(f"per-asset {f_name} must have shape ({rows}, N, K) = ({T}, {N}, K), "
                         f"got {f.shape}")
    f = check_array(f_name, f, (rows, "K"), (rows, "N", "K"), dims={rows: T, "N": N})
    if f.shape[-1] < 1:
        raise ValueError(f"{f_name} must have at least one column (K >= 1)")
    return r, f


def _pad(r, f, Tp, Np, fill):
    """Pad returns to (Tp, Np) with ``fill``; factors asset-last.

    Shared factors (T, K) are returned as (Tp, K) for the shared path
    (``fill=0``) and as (Tp, K, 1) for the general path (``fill=NaN``);
    per-asset factors (T, N, K) become (Tp, K, Np) (padding 0). The arrays
    are fresh 64-byte-aligned buffers, which JAX's CPU client uses without a
    further copy.
    """
    T, N = r.shape
    K = f.shape[-1]
    rp = aligned_full((Tp, Np))
    rp[:T, :N] = r
    rp[:T, N:] = fill
    rp[T:] = fill
    if f.ndim == 2:
        fp = aligned_full((Tp, K), 0.0)
        fp[:T] = f
        if not np.isfinite(fill):
            fp = fp[:, :, None]
    else:
        fp = aligned_full((Tp, K, Np), 0.0)
        fp[:T, :, :N] = f.transpose(0, 2, 1)
    return rp, fp


# --------------------------------------------------------------------------
# the one Kalman step (numpy or jax.numpy; asset axis last)
# --------------------------------------------------------------------------


def _predict_gain(xp, P, f, ok, state_noise, obs_noise):
    r"""Covariance half of one step: :math:`P^-`, :math:`Q_t`, the gain, the new :math:`P`.

    Layout: asset axis last. ``P`` is ``(K, K, ...)`` and ``f`` ``(K, ...)``
    (``...`` is ``(N,)`` for one covariance per asset, ``(1,)`` for factors
    shared by assets with their own covariance, or ``()`` for one covariance
    shared by a group); ``ok`` (0/1, shaped ``...``) zeroes the gain where
    the update is skipped. Every recursion of this module (and
    :func:`kalman_update`) goes through this function and
    :func:`_update_beta`.

    Returns ``(P_new, gain, Q)``.
    """
    K = P.shape[0]
    eye = xp.eye(K, dtype=P.dtype).reshape((K, K) + (1,) * (P.ndim - 2))
    P_pred = P + state_noise * eye
    Pf = xp.sum(P_pred * f[None], axis=1)  # P^- f_t, (K, ...)
    Q = xp.sum(f * Pf, axis=0) + obs_noise
    gain = Pf * (ok / Q)  # Kalman gain, zero where the update is skipped
    return P_pred - gain[:, None] * Pf[None], gain, Q


def _update_beta(xp, beta, r, f, gain):
    r"""Mean half of one step: :math:`e_t = r_t - f_t^\top\beta`, :math:`\beta + K_t e_t`.

    ``beta`` ``(K, N)``; ``r`` ``(N,)``; ``f`` and ``gain`` ``(K, N)`` or
    ``(K, 1)``. Returns ``(beta_new, e)``.
    """
    e = r - xp.sum(f * beta, axis=0)
    return beta + gain * e, e


# --------------------------------------------------------------------------
# compiled core
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _programs():
    """Build the two jitted programs on first use (so that JAX is imported lazily).

    ``"general"`` keeps one covariance per asset, ``P`` of shape ``(K, K, N)``
    (any factor layout, any pattern of missing data); ``"shared"`` runs the
    ``K x K`` covariance recursion once for a group of assets observed
    whenever the factors are, from a common ``P0`` (see the module
    docstring), then applies its gains to the betas of all of them. Both
    take the static flag ``every``: True returns the betas of every step
    (:func:`kalman_filter`), False only the final state (:func:`kalman_last`).
    """
    jax, jnp, lax = import_jax()

    def general(returns, factors, active, beta0, P0, state_noise, obs_noise, every):
        _TRACES["count"] += 1  # Python side effect: runs only when tracing
        finite_f = jnp.isfinite(factors)
        ok = jnp.isfinite(returns) & jnp.all(finite_f, axis=1) & (active > 0)[:, None]

        def body(carry, x):
            beta, P = carry  # (K, N), (K, K, N)
            r_t, f_t, ok_t, d_t = x  # (N,), (K, 1|N), (N,) 0/1, ()
            P, gain, Q = _predict_gain(jnp, P, f_t, ok_t, d_t, obs_noise)
            beta, e = _update_beta(jnp, beta, r_t, f_t, gain)
            return (beta, P), (e, Q, beta.T if every else None)

        xs = (jnp.where(ok, returns, 0.0), jnp.where(finite_f, factors, 0.0),
              ok.astype(returns.dtype), state_noise * active)
        (beta, P), (e, Q, betas) = lax.scan(body, (beta0, P0), xs)
        return jnp.where(ok, e, jnp.nan), jnp.where(ok, Q, jnp.nan), betas, beta.T, P

    def shared(returns, factors, active, beta0, P0, state_noise, obs_noise, every):
        _TRACES["count"] += 1
        # returns of a shared group are finite (padding columns are 0)
        finite_f = jnp.isfinite(factors)
        ok = jnp.all(finite_f, axis=1) & (active > 0)  # (T,)
        f0 = jnp.where(finite_f, factors, 0.0)

        def covariance(P, x):
            f_t, ok_t, d_t = x
            P, gain, Q = _predict_gain(jnp, P, f_t, ok_t, d_t, obs_noise)
            return P, (gain, Q)

        P, (gains, Q) = lax.scan(covariance, P0, (f0, ok.astype(returns.dtype),
                                                  state_noise * active))

        def body(beta, x):
            r_t, f_t, gain_t = x  # (N,), (K,), (K,)
            beta, e = _update_beta(jnp, beta, r_t, f_t[:, None], gain_t[:, None])
            return beta, (e, beta.T if every else None)

        beta, (e, betas) = lax.scan(body, beta0, (returns, f0, gains))
        return jnp.where(ok[:, None], e, jnp.nan), jnp.where(ok, Q, jnp.nan), betas, beta.T, P

    return {"general": jax.jit(general, static_argnames="every"),
            "shared": jax.jit(shared, static_argnames="every")}


def _shared_assets(r, f, P0):
    """Mask of the assets that can run on the shared-covariance path.

    With shared factors ``(T, K)``, assets whose returns are all finite and
    that start from the same ``P0`` have the same ``P_t`` and gain at every
    step: both depend only on the factors, the noises and ``P0`` (a NaN factor
    row skips the update for all of them alike). The other assets (a missing
    return, per-asset factors, or a different initial covariance) run on the
    general path.
    """
    N = r.shape[1]
    if f.ndim != 2:
        return np.zeros(N, dtype=bool)
    shared = np.isfinite(r).all(axis=0)
    if shared.any():
        Ps = P0[shared]
        if not (Ps == Ps[0]).all():
            return np.zeros(N, dtype=bool)
    return shared


def _filter(r, f, delta, ve, b0, P0, every):
    """The recursion over checked, non-empty inputs, each asset on its path.

    The one dispatch of :func:`kalman_filter` and :func:`kalman_last`. When
    any asset is shared (:func:`_shared_assets`), the shared program runs on
    *all* assets (the others' returns zero-filled), so that its output is
    already in asset order; the general program then overwrites the assets
    it owns. ``betas`` is None unless ``every``. Runs inside
    :func:`x64_scope`.
    """
    T, N = r.shape
    K = f.shape[-1]
    Tp = bucket_size(T, TIME_BUCKET)
    active = np.zeros(Tp)
    active[:T] = 1.0
    programs, noises = _programs(), (np.float64(delta), np.float64(ve))
    out = KalmanResult(np.empty((T, N)), np.empty((T, N)),
                       np.empty((T, N, K)) if every else None, np.empty((N, K)),
                       np.empty((N, K, K)))
    shared = _shared_assets(r, f, P0)
    with x64_scope():
        if shared.any():
            r_sh = r if shared.all() else np.where(shared, r, 0.0)
            rp, fp = _pad(r_sh, f, Tp, bucket_size(N, ASSET_BUCKET), 0.0)
            b0p = np.zeros((K, rp.shape[1]))
            b0p[:, :N] = b0.T
            e, Q, betas, beta, P = _numpy(programs["shared"](
                rp, fp, active, b0p, P0[np.argmax(shared)], *noises, every=every))
            out.innovations[:] = e[:T, :N]
            out.innovation_variance[:] = Q[:T, None]
            if every:
                out.betas[:] = betas[:T, :N]
            out.beta[:] = beta[:N]
            out.P[:] = P
        if not shared.all():
            idx = np.flatnonzero(~shared)
            n = idx.size
            rp, fp = _pad(r[:, idx], f if f.ndim == 2 else f[:, idx], Tp,
                          bucket_size(n, ASSET_BUCKET), np.nan)
            b0p = np.zeros((K, rp.shape[1]))
            b0p[:, :n] = b0[idx].T
            P0p = np.broadcast_to(np.eye(K)[:, :, None], (K, K, rp.shape[1])).copy()
            P0p[:, :, :n] = P0[idx].transpose(1, 2, 0)
            e, Q, betas, beta, P = _numpy(programs["general"](rp, fp, active, b0p, P0p,
                                                              *noises, every=every))
            out.innovations[:, idx] = e[:T, :n]
            out.innovation_variance[:, idx] = Q[:T, :n]
            if every:
                out.betas[:, idx] = betas[:T, :n]
            out.beta[idx] = beta[:n]
            out.P[idx] = P.transpose(2, 0, 1)[:n]
    return out


def _numpy(arrays):
    """A program's outputs as numpy arrays (None kept)."""
    return [None if a is None else np.asarray(a) for a in arrays]


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def kalman_filter(returns, factor_returns, state_noise, obs_noise, beta0=None, p0=1.0):
    r"""Filter time-varying factor betas for many assets (Kalman filter).

    Runs the random-walk-beta Kalman filter of the module docstring for every
    asset over the whole history, in float64, as compiled JAX scans (the
    shared-covariance path for fully observed assets under shared factors,
    the general path for the others).

    Parameters
    ----------
    returns : array_like, shape (T, N)
        Asset returns :math:`r_t` (log or simple, as the factors). NaN marks a
        missing return: that asset's update is skipped at that step.
    factor_returns : array_like, shape (T, K) or (T, N, K)
        Factor returns :math:`f_t`, shared by all assets (``(T, K)``, e.g. PCA
        factor scores or ETF returns) or one set per asset (``(T, N, K)``, e.g.
        each stock's own sector ETF). A NaN factor skips the update like a NaN
        return.
    state_noise : float
        :math:`\delta \ge 0`, variance of the random-walk step of each beta.
    obs_noise : float
        :math:`v_e > 0`, variance of the observation noise.
    beta0 : array_like, shape (N, K), optional
        Initial state mean :math:`\hat\beta_{0|0}`; zeros by default.
    p0 : float or array_like, shape (N, K, K)
        Initial state covariance: ``p0 * I`` for a scalar, or one matrix per
        asset (e.g. ``result.P`` of a previous call, to continue the filter).

    Returns
    -------
    KalmanResult
        ``innovations`` (T, N), ``innovation_variance`` (T, N), ``betas``
        (T, N, K), and the final state ``beta`` (N, K), ``P`` (N, K, K).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(0, 0.01, size=(250, 1))
    >>> r = f @ np.array([[0.8, 1.2]]) + rng.normal(0, 0.002, size=(250, 2))
    >>> res = kalman_filter(r, f, state_noise=1e-5, obs_noise=4e-6)
    >>> res.innovations.shape, res.betas.shape
    ((250, 2), (250, 2, 1))
    >>> np.round(res.beta[:, 0], 1)
    array([0.8, 1.2])
    """
    delta, ve = _noises(state_noise, obs_noise)
    r, f = check_returns_and_factor_returns(returns, factor_returns)
    T, N = r.shape
    K = f.shape[-1]

    if beta0 is None:
        b0 = np.zeros((N, K))
    else:
        b0 = np.array(beta0, dtype=np.float64)
        if b0.shape != (N, K):
            raise ValueError(f"beta0 must have shape (N, K) = ({N}, {K}), got {b0.shape}")
    p0_arr = np.asarray(p0, dtype=np.float64)
    if p0_arr.ndim == 0:
        p0v = check_number("p0", float(p0_arr), 0, low_open=True)
        P0 = np.broadcast_to(p0v * np.eye(K), (N, K, K)).copy()
    elif p0_arr.shape == (N, K, K):
        P0 = p0_arr.copy()
    else:
        raise ValueError(f"p0 must be a scalar or have shape (N, K, K) = ({N}, {K}, {K})")
    if not (np.all(np.isfinite(b0)) and np.all(np.isfinite(P0))):
        raise ValueError("beta0 and p0 must be finite")

    if T == 0 or N == 0:
        return KalmanResult(
            np.empty((T, N)), np.empty((T, N)), np.empty((T, N, K)), b0, P0
        )

    return _filter(r, f, delta, ve, b0, P0, every=True)


def kalman_last(returns_window, factor_returns_window, state_noise, obs_noise, p0=1.0):
    r"""Last-step innovation of a Kalman filter run over a window from the prior.

    Runs the filter of :func:`kalman_filter` over the window starting from
    :math:`\hat\beta_0 = 0`, :math:`P_0 = p_0 I` and reports the last step
    only. A pipeline factor calls it once per session with its look-back
    window; the result is a pure function of the window.

    Parameters
    ----------
    returns_window : array_like, shape (W, N)
        Asset returns over the window (NaN = missing, update skipped).
    factor_returns_window : array_like, shape (W, K) or (W, N, K)
        Factor returns over the window, shared or per asset (e.g. the
        ``scores`` of a PCA of the window's returns).
    state_noise : float
        :math:`\delta \ge 0`.
    obs_noise : float
        :math:`v_e > 0`.
    p0 : float
        Prior variance of each beta (:math:`P_0 = p_0 I`).

    Returns
    -------
    KalmanLastResult
        ``innovations`` (N,), ``innovation_variance`` (N,),
        ``standardized_innovations`` :math:`e_W/\sqrt{Q_W}` (N,) and ``betas``
        (N, K), all at the window's last step. Equal to the last rows of
        :func:`kalman_filter` on the same window.
    """
    delta, ve = _noises(state_noise, obs_noise)
    p0v = check_number("p0", p0, 0, low_open=True)
    r, f = check_returns_and_factor_returns(returns_window, factor_returns_window)
    W, N = r.shape
    K = f.shape[-1]
    if W == 0:
        raise ValueError("kalman_last needs a window of at least one row")
    if N == 0:
        empty = np.empty(0)
        return KalmanLastResult(empty, empty.copy(), empty.copy(), np.empty((0, K)))

    P0 = np.broadcast_to(p0v * np.eye(K), (N, K, K))
    res = _filter(r, f, delta, ve, np.zeros((N, K)), P0, every=False)
    e, Q = res.innovations[-1], res.innovation_variance[-1]
    return KalmanLastResult(e, Q, e / np.sqrt(Q), res.beta)


class KalmanWindowResult(NamedTuple):
    """Output of :func:`kalman_innovation_window`, arrays of shape (N,) / (N, K).

    The fields of :class:`KalmanLastResult` (NaN for the assets with fewer than
    ``min_observations`` updates), and ``n_observations`` (N,): the steps of
    the window where the asset's return and every factor return were observed.
    """

    innovations: np.ndarray
    standardized_innovations: np.ndarray
    innovation_variance: np.ndarray
    betas: np.ndarray
    n_observations: np.ndarray


def kalman_innovation_window(returns, factor_returns=None, k=DEFAULT_COMPONENTS,
                             state_noise=1e-5, obs_noise=1e-4, p0=1.0, min_observations=1):
    r"""Last-step Kalman innovation of every asset over one returns window.

    What :class:`KalmanInnovation` computes for one session: the factor
    returns are the given ones or, when ``factor_returns`` is None, the
    scores of the top ``k`` principal components of ``returns``
    (:func:`~zipline_factorarb.kernels.pca.pca_factor_returns`); the
    random-walk-beta filter (:func:`kalman_last`) then runs over
    the window from :math:`\beta_0 = 0, P_0 = p_0 I`.

    Parameters
    ----------
    returns : array_like, shape (W, N)
        Asset returns, oldest first; NaN = missing (that step is skipped).
    factor_returns : array_like, shape (W, K), optional
        Factor returns (e.g. ETF returns). NaN rows skip the step for all
        assets. None: PCA of ``returns`` with ``k`` components.
    k : int
        Number of principal components when ``factor_returns`` is None.
    state_noise, obs_noise, p0 : float
        :math:`\delta`, :math:`v_e` and :math:`p_0` of the filter.
    min_observations : int
        Assets with fewer observed steps in the window get NaN outputs.

    Returns
    -------
    KalmanWindowResult
    """
    r = np.asarray(returns, dtype=np.float64)
    if factor_returns is None:
        f = pca_factor_returns(r, int(k))
    else:
        f = np.asarray(factor_returns, dtype=np.float64)
    W, N = r.shape
    K = f.shape[1]
    observed = np.isfinite(r) & np.isfinite(f).all(axis=1)[:, None]
    n_obs = observed.sum(axis=0).astype(np.float64)
    if N == 0:
        empty = np.empty(0)
        return KalmanWindowResult(empty, empty, empty, np.empty((0, K)), empty)
    e, Q, z, betas = kalman_last(r, f, state_noise, obs_noise, p0)
    short = n_obs < min_observations
    if short.any():
        e, z, Q, betas = e.copy(), z.copy(), Q.copy(), betas.copy()
        e[short] = z[short] = Q[short] = np.nan
        betas[short] = np.nan
    return KalmanWindowResult(e, z, Q, betas, n_obs)


def _namespace(*arrays):
    """``jax.numpy`` if any argument is a JAX array (or tracer), else numpy."""
    import sys

    jax = sys.modules.get("jax")
    if jax is not None and any(isinstance(a, jax.Array) for a in arrays):
        import jax.numpy as jnp

        return jnp
    return np


def kalman_update(beta, P, r_t, f_t, state_noise, obs_noise):
    r"""One step of the random-walk-beta Kalman filter, for one or many assets.

    Pure function implementing the recursion of the module docstring:
    predict (:math:`P^- = P + \delta I`), then update with the return
    :math:`r_t`. Use it to run the filter step by step in research code
    (e.g. from :math:`\beta_0 = 0, P_0 = I` over a full history).

    Parameters
    ----------
    beta : array_like, shape (N, K) or (K,)
        State mean :math:`\hat\beta_{t-1|t-1}` (``(K,)`` for a single asset).
    P : array_like, shape (N, K, K) or (K, K)
        State covariance :math:`P_{t-1|t-1}`.
    r_t : array_like, shape (N,) or scalar
        Returns at ``t``; NaN skips the update (predict only).
    f_t : array_like, shape (K,) or (N, K)
        Factor returns at ``t``, shared or per asset; NaN skips the update.
    state_noise : float
        :math:`\delta`.
    obs_noise : float
        :math:`v_e`.

    Returns
    -------
    KalmanStep
        ``beta``, ``P``, ``innovations`` (:math:`e_t`) and
        ``innovation_variance`` (:math:`Q_t`), shaped like the inputs; the last
        two are NaN where the update was skipped.

    Notes
    -----
    numpy inputs are computed in float64 with numpy. If any input is a JAX
    array, ``jax.numpy`` is used in the inputs' dtype, so the function can be
    traced inside the caller's ``jax.jit`` / ``lax.scan``.
    """
    xp = _namespace(beta, P, r_t, f_t, state_noise, obs_noise)
    if xp is np:
        _noises(state_noise, obs_noise)
        beta = np.asarray(beta, dtype=np.float64)
        P = np.asarray(P, dtype=np.float64)
        r = np.asarray(r_t, dtype=np.float64)
        f = np.asarray(f_t, dtype=np.float64)
    else:
        beta, P, r, f = (xp.asarray(a) for a in (beta, P, r_t, f_t))
    single = beta.ndim == 1
    if single:
        beta = beta[None, :]
        P = P[None, :, :]
        r = xp.reshape(r, (1,))
    if beta.ndim != 2 or P.shape != beta.shape + beta.shape[-1:]:
        raise ValueError(
            f"beta must be (N, K) or (K,) and P (N, K, K) or (K, K); got {beta.shape}, {P.shape}"
        )
    N, K = beta.shape
    if f.ndim == 1:
        f = xp.broadcast_to(f[None, :], (N, K))
    if f.shape != (N, K) or r.shape != (N,):
        raise ValueError(f"r_t must be (N,) and f_t (K,) or (N, K); got {r.shape}, {f.shape}")

    finite_f = xp.isfinite(f)
    ok = xp.isfinite(r) & xp.all(finite_f, axis=1)
    f0 = xp.where(finite_f, f, 0.0).T  # asset axis last, as every recursion here
    r0 = xp.where(ok, r, 0.0)
    P_new, gain, Q = _predict_gain(xp, xp.transpose(P, (1, 2, 0)), f0, ok, state_noise,
                                   obs_noise)
    beta_new, e = _update_beta(xp, beta.T, r0, f0, gain)
    beta_new, P_new = beta_new.T, xp.transpose(P_new, (2, 0, 1))
    e_out = xp.where(ok, e, xp.nan)
    Q_out = xp.where(ok, Q, xp.nan)
    if single:
        return KalmanStep(beta_new[0], P_new[0], e_out[0], Q_out[0])
    return KalmanStep(beta_new, P_new, e_out, Q_out)


class CarriedFilter:
    r"""The Kalman filter's state carried from session to session.

    Starts from :math:`\beta_0 = 0, P_0 = p_0 I` and takes one
    :func:`~zipline_factorarb.kernels.kalman.kalman_update` per new daily
    return, in date order (a date already taken is skipped), so after the
    returns of days 1..t its innovations are those of the full-history filter
    (:func:`~zipline_factorarb.kernels.kalman.kalman_filter`) at day t,
    whatever the chunks the returns arrive in.

    The kernel object for a strategy that keeps one filter across sessions
    (``filter_state="carried"`` of ``algorithms/kalman_residual_momentum.py``);
    the pipeline term :class:`~zipline_factorarb.pipeline.KalmanInnovation`
    instead reruns the filter over each trailing window, so it carries no
    state. ``k`` is the number of factor columns.
    """

    def __init__(self, n_assets, k, p0, state_noise, obs_noise):
        self.beta = np.zeros((n_assets, k))
        self.P = np.broadcast_to(p0 * np.eye(k), (n_assets, k, k)).copy()
        self.state_noise, self.obs_noise = state_noise, obs_noise
        self.last = None
        self.innovations = np.full(n_assets, np.nan)
        self.innovation_variance = np.full(n_assets, np.nan)

    def advance(self, dates, returns, factor_returns):
        """Update with the rows dated after the last one taken; returns how many."""
        taken = 0
        for day, r, f in zip(dates, returns, factor_returns):
            if self.last is not None and day <= self.last:
                continue
            step = kalman_update(self.beta, self.P, r, f, self.state_noise, self.obs_noise)
            self.beta, self.P = step.beta, step.P
            self.innovations, self.innovation_variance = step.innovations, \
                step.innovation_variance
            self.last = day
            taken += 1
        return taken
