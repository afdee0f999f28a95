"""One time-series regression and one PCA residual serve every kernel that needs them.

``kernels.ou._residuals`` (shared factors) goes through
``kernels.risk.regression_loadings`` and ``kernels.study.rolling_pca_residuals``
through ``kernels.pca.pca_residuals``. The references below are the earlier,
independent implementations (a QR projection; the explicit ``x W W' + mu``
loop), kept here so the merge is checked against the outputs it replaced.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zipline_factorarb.kernels import ou
from zipline_factorarb.kernels.pca import pca_factors
from zipline_factorarb.kernels.study import rolling_pca_residuals


def _qr_residuals(R, F):
    """OLS residuals of each column of R on [1, F] by a reduced QR (the former kernel)."""
    W, N = R.shape
    X = np.column_stack([np.ones(W), F])
    Qm, Rm = np.linalg.qr(X)
    eps = R - Qm @ (Qm.T @ R)
    d = np.abs(np.diag(Rm))
    return eps, np.full(N, d.min() > d.max() * W * np.finfo(float).eps)


def _loop_rolling_pca_residuals(R, window, k):
    out = np.full_like(R, np.nan)
    for t in range(window, len(R)):
        fit = pca_factors(R[t - window:t], k)
        W, mu = fit.loadings, fit.mean
        x = R[t] - mu
        out[t] = R[t] - (x @ W @ W.T + mu)
    return out


@given(seed=st.integers(0, 2**32 - 1), W=st.integers(20, 120), N=st.integers(1, 30),
       K=st.integers(1, 5))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_shared_factor_residuals_equal_the_qr_projection(seed, W, N, K):
    rng = np.random.default_rng(seed)
    F = rng.normal(0.0, 0.01, (W, K))
    R = F @ rng.normal(0.0, 1.0, (K, N)) + rng.normal(0.0, 0.02, (W, N)) + 1e-4
    eps, full_rank = ou._residuals(R, F)
    ref_eps, ref_rank = _qr_residuals(R, F)
    np.testing.assert_allclose(eps, ref_eps, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(full_rank, ref_rank)
    assert full_rank.all()


def test_shared_factor_rank_flag_on_collinear_factors():
    rng = np.random.default_rng(3)
    f = rng.normal(0.0, 0.01, (60, 1))
    F = np.hstack([f, 2.0 * f])  # collinear columns
    R = rng.normal(0.0, 0.02, (60, 4))
    eps, full_rank = ou._residuals(R, F)
    assert not full_rank.any()
    assert _qr_residuals(R, F)[1].any() == full_rank.any()
    # the projection residuals stay exact: orthogonal to [1, f]
    X = np.column_stack([np.ones(60), f])
    np.testing.assert_allclose(X.T @ eps, 0.0, atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), window=st.integers(10, 40), N=st.integers(4, 15),
       k=st.integers(1, 3))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rolling_pca_residuals_equal_the_explicit_loop(seed, window, N, k):
    rng = np.random.default_rng(seed)
    R = rng.normal(0.0, 0.01, (window + 25, N)) + rng.normal(0.0, 0.01, (window + 25, 1))
    got = rolling_pca_residuals(R, window, k)
    ref = _loop_rolling_pca_residuals(R, window, k)
    assert np.isnan(got[:window]).all()
    np.testing.assert_allclose(got[window:], ref[window:], rtol=0, atol=1e-10)


def test_carried_filter_lives_with_the_kalman_recursion():
    """``CarriedFilter`` is defined in ``kernels.kalman``; ``kernels.study`` and the
    ``kernels`` namespace give the same class. Fed in chunks, with a missing return, its
    innovations equal the full-history filter's at every chunk end."""
    from zipline_factorarb import kernels
    from zipline_factorarb.kernels import kalman, study

    assert study.CarriedFilter is kalman.CarriedFilter is kernels.CarriedFilter
    assert kalman.CarriedFilter.__module__ == "zipline_factorarb.kernels.kalman"
    rng = np.random.default_rng(7)
    f = rng.normal(0, 0.01, (90, 2))
    r = f @ rng.normal(1, 0.3, (2, 4)) + rng.normal(0, 0.002, (90, 4))
    r[30, 1] = np.nan
    full = kalman.kalman_filter(r, f, 1e-4, 1e-4, p0=0.5)
    state = kalman.CarriedFilter(4, 2, 0.5, 1e-4, 1e-4)
    for lo, hi in [(0, 31), (20, 60), (60, 90)]:
        state.advance(np.arange(lo, hi), r[lo:hi], f[lo:hi])
        np.testing.assert_allclose(state.innovations, full.innovations[hi - 1], atol=1e-12,
                                   equal_nan=True)
        np.testing.assert_allclose(state.beta, full.betas[hi - 1], atol=1e-12)
