"""Proofs for the Kalman-filter kernel (``zipline_factorarb.kernels.kalman``).

The kernel is checked against

* a plain per-asset, per-step numpy loop written here from the model's
  equations (independent of the kernel's vectorised layouts), on real sector
  ETF returns and on hypothesis-generated data, to 1e-10;
* statsmodels' state-space Kalman filter (an established implementation) on
  real series, to 1e-8;

plus the NaN semantics, shape bucketing (compilation counter), the scoping of
JAX's float64 mode, continuation from a final state, and ``kalman_last``.
"""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import reference_filter  # the seed's equations, one asset and step at a time

from zipline_factorarb.kernels.kalman import (
    compilation_count,
    kalman_filter,
    kalman_last,
    kalman_update,
)

SECTORS = ["XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY"]
DELTA = 1e-5  # state_noise used on the real data
V_E = 1e-5  # obs_noise (daily residual variance of a sector ETF is ~1e-5)


def assert_same(actual, expected, rtol=1e-10, what="", scale=None):
    """NaN in the same places, and |a - b| <= rtol * max(|b|, scale / 100).

    ``scale`` (default: the largest |b|) is the magnitude of the quantity, so
    values much smaller than typical are held to an absolute tolerance of
    ``rtol * scale / 100`` instead of a relative one.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, what
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=what)
    finite = ~np.isnan(expected)
    if not finite.any():
        return
    if scale is None:
        scale = np.max(np.abs(expected[finite]))
    err = np.abs(actual[finite] - expected[finite])
    bound = rtol * np.maximum(np.abs(expected[finite]), 1e-2 * scale)
    bad = err > bound
    assert not bad.any(), (
        f"{what}: {bad.sum()} values off, max error {err.max():.3e} "
        f"(relative tolerance {rtol:g})"
    )


def check_against_reference(res, ref, rtol=1e-10, p_scale=0.0):
    innov, qvar, betas, beta_T, P_T = ref
    assert_same(res.innovations, innov, rtol, "innovations")
    assert_same(res.innovation_variance, qvar, rtol, "innovation_variance")
    assert_same(res.betas, betas, rtol, "betas")
    assert_same(res.beta, beta_T, rtol, "final beta")
    assert_same(res.P, P_T, rtol, "final P", scale=max(p_scale, np.abs(P_T).max()))


# --------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def etf_log_returns(shared_data_dir):
    pd = pytest.importorskip("pandas")
    path = shared_data_dir / "spdr_sector_etfs_daily.csv.gz"
    if not path.exists():
        pytest.skip(f"{path.name} not found in the shared data folder")
    prices = pd.read_csv(path, parse_dates=["date"])
    prices = prices[prices["symbol"].isin(SECTORS + ["SPY"])]
    wide = prices.pivot(index="date", columns="symbol", values="adj_close")
    wide = wide.loc["2012-01-01":, SECTORS + ["SPY"]]
    rets = np.log(wide).diff().iloc[1:]
    assert not rets.isna().any().any()
    return rets


def _spy_factors(rets):
    """Shared factors: SPY's return and a constant (a time-varying alpha)."""
    spy = rets["SPY"].to_numpy()
    return np.column_stack([spy, np.ones_like(spy)])


def test_matches_loop_on_real_etfs_spy_factors(etf_log_returns):
    r = etf_log_returns[SECTORS].to_numpy().copy()
    f = _spy_factors(etf_log_returns)
    assert r.shape[0] > 3000
    # some missing returns: XLF has a gap, XLE starts late (general path),
    # the other seven are complete (shared-covariance path)
    r[1000:1003, SECTORS.index("XLF")] = np.nan
    r[:50, SECTORS.index("XLE")] = np.nan
    res = kalman_filter(r, f, DELTA, V_E)
    ref = reference_filter(r, f, DELTA, V_E)
    check_against_reference(res, ref)
    # the betas really move (a constant-beta bug would not pass the above,
    # but make sure the data exercise the adaptation)
    spy_beta = res.betas[:, :, 0]
    assert np.nanstd(spy_beta[500:], axis=0).min() > 0.01


def test_matches_loop_on_real_etfs_pca_factors(etf_log_returns):
    pca = pytest.importorskip("zipline_factorarb.kernels.pca")
    R = etf_log_returns[SECTORS + ["SPY"]].to_numpy()
    train = R[:756]  # fit the loadings on three years, as the research does
    fit = pca.pca_factors(train, 3)
    scores = (R - fit.mean) @ fit.loadings  # (T, 3) factor scores
    r = etf_log_returns[SECTORS].to_numpy()
    res = kalman_filter(r, scores, DELTA, V_E)
    check_against_reference(res, reference_filter(r, scores, DELTA, V_E))
    # kalman_last on a 252-day window of PCA scores of that window
    window = R[-252:]
    scores_w = pca.pca_factors(window, 3).scores
    last = kalman_last(window[:, :9], scores_w, DELTA, V_E)
    ref = reference_filter(window[:, :9], scores_w, DELTA, V_E)
    assert_same(last.innovations, ref[0][-1], what="last innovations")
    assert_same(last.betas, ref[2][-1], what="last betas")


def _statsmodels_filter(r_i, f, delta, v_e, beta0, P0):
    """statsmodels Kalman filter of the same model for one asset."""
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    T, K = f.shape
    # statsmodels' initial state is the *predicted* state of the first step:
    # alpha_1 ~ N(beta0, P0 + delta I) for our beta_0|0 ~ N(beta0, P0)
    mod = MLEModel(
        r_i,
        k_states=K,
        initialization="known",
        initial_state=beta0,
        initial_state_cov=P0 + delta * np.eye(K),
    )
    mod["design"] = f.T[None, :, :]  # time-varying Z_t = f_t'
    mod["obs_cov"] = np.array([[v_e]])
    mod["transition"] = np.eye(K)
    mod["selection"] = np.eye(K)
    mod["state_cov"] = delta * np.eye(K)
    return mod.ssm.filter()


def test_matches_statsmodels_state_space_on_real_etfs(etf_log_returns):
    r = etf_log_returns[SECTORS].to_numpy().copy()
    f = _spy_factors(etf_log_returns)
    r[2000:2005, 0] = np.nan  # a gap in XLB: statsmodels treats it as missing
    beta0 = np.tile([1.0, 0.0], (len(SECTORS), 1))
    res = kalman_filter(r, f, DELTA, V_E, beta0=beta0, p0=0.5)
    for i in range(len(SECTORS)):
        sm = _statsmodels_filter(r[:, i], f, DELTA, V_E, beta0[i], 0.5 * np.eye(2))
        e_sm = sm.forecasts_error[0]
        q_sm = sm.forecasts_error_cov[0, 0]
        np.testing.assert_array_equal(np.isnan(res.innovations[:, i]), np.isnan(e_sm))
        obs = ~np.isnan(e_sm)
        np.testing.assert_allclose(res.innovations[obs, i], e_sm[obs], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(
            res.innovation_variance[obs, i], q_sm[obs], rtol=1e-8, atol=0
        )
        np.testing.assert_allclose(
            res.betas[:, i, :], sm.filtered_state.T, rtol=1e-8, atol=1e-10
        )
    # the gap: NaN innovation, NaN variance (statsmodels reports the predicted Q)
    assert np.isnan(res.innovations[2000:2005, 0]).all()
    assert np.isnan(res.innovation_variance[2000:2005, 0]).all()


def test_kalman_last_equals_last_row_of_filter_real(etf_log_returns):
    r = etf_log_returns[SECTORS].to_numpy()[-252:].copy()
    f = _spy_factors(etf_log_returns)[-252:]
    r[10:20, 3] = np.nan  # one asset on the general path
    full = kalman_filter(r, f, DELTA, V_E, p0=2.0)
    last = kalman_last(r, f, DELTA, V_E, p0=2.0)
    assert_same(last.innovations, full.innovations[-1], 1e-12, "innovations")
    assert_same(last.innovation_variance, full.innovation_variance[-1], 1e-12, "Q")
    assert_same(last.betas, full.betas[-1], 1e-12, "betas")
    assert_same(
        last.standardized_innovations,
        full.innovations[-1] / np.sqrt(full.innovation_variance[-1]),
        1e-12,
        "standardized",
    )
    ref = reference_filter(r, f, DELTA, V_E, p0=2.0)
    assert_same(last.innovations, ref[0][-1], what="innovations vs loop")


# --------------------------------------------------------------------------
# generated data
# --------------------------------------------------------------------------


def _generate(seed, T, N, K, per_asset, nan_frac, scale):
    rng = np.random.default_rng(seed)
    shape = (T, N, K) if per_asset else (T, K)
    f = rng.normal(0.0, scale, size=shape)
    true_beta = rng.normal(1.0, 0.5, size=(N, K))
    fb = np.einsum("tnk,nk->tn", f, true_beta) if per_asset else f @ true_beta.T
    r = fb + rng.normal(0.0, 0.3 * scale, size=(T, N))
    r[rng.random((T, N)) < nan_frac] = np.nan
    if rng.random() < 0.3:  # a missing factor value
        idx = (rng.integers(T),) + ((rng.integers(N),) if per_asset else ()) + (
            rng.integers(K),
        )
        f[idx] = np.nan
    return r, f, rng


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    T=st.integers(1, 30),
    N=st.integers(1, 12),
    K=st.integers(1, 3),
    per_asset=st.booleans(),
    nan_frac=st.sampled_from([0.0, 0.0, 0.1, 0.4]),
    scale=st.sampled_from([1e-3, 1e-2, 1.0]),
    delta=st.floats(1e-7, 1e-1),
    ve_ratio=st.floats(1e-2, 10.0),
    p0=st.floats(1e-2, 10.0),
    with_beta0=st.booleans(),
)
def test_matches_loop_on_generated_data(
    seed, T, N, K, per_asset, nan_frac, scale, delta, ve_ratio, p0, with_beta0
):
    # obs_noise relative to the factor variance keeps f'P0 f / v_e below ~3e3.
    # (With v_e << f'Pf the covariance update P^- - K f'P^- cancels in any
    # implementation, and two correct ones then differ by ~cond * 1e-16 of
    # |P^-|, which a 1e-10 comparison could flag. For the same reason P is
    # compared on the scale of the covariance it was computed from, p0.)
    v_e = ve_ratio * scale**2
    r, f, rng = _generate(seed, T, N, K, per_asset, nan_frac, scale)
    beta0 = rng.normal(size=(N, K)) if with_beta0 else None
    res = kalman_filter(r, f, delta, v_e, beta0=beta0, p0=p0)
    ref = reference_filter(r, f, delta, v_e, beta0=beta0, p0=p0)
    check_against_reference(res, ref, p_scale=p0)
    # the one-step update, iterated, is the same filter
    beta = np.zeros((N, K)) if beta0 is None else beta0
    P = np.broadcast_to(p0 * np.eye(K), (N, K, K))
    scales = [np.nanmax(np.abs(a), initial=0.0) for a in ref]
    for t in range(T):
        beta, P, e, Q = kalman_update(beta, P, r[t], f[t], delta, v_e)
        assert_same(e, ref[0][t], what="kalman_update innovations", scale=scales[0])
        assert_same(Q, ref[1][t], what="kalman_update Q", scale=scales[1])
        assert_same(beta, ref[2][t], what="kalman_update beta", scale=scales[2])
    assert_same(P, ref[4], what="kalman_update P", scale=max(p0, np.abs(ref[4]).max()))


def test_kalman_last_matches_loop_and_filter_per_asset_factors():
    r, f, _ = _generate(7, 63, 20, 3, True, 0.05, 1e-2)
    last = kalman_last(r, f, 1e-4, 1e-4, p0=0.7)
    full = kalman_filter(r, f, 1e-4, 1e-4, p0=0.7)
    ref = reference_filter(r, f, 1e-4, 1e-4, p0=0.7)
    assert_same(last.innovations, ref[0][-1], what="innovations")
    assert_same(last.innovation_variance, ref[1][-1], what="Q")
    assert_same(last.betas, ref[2][-1], what="betas")
    assert_same(last.innovations, full.innovations[-1], 1e-12, "vs filter")
    assert np.isnan(last.innovations).any() and np.isfinite(last.innovations).any()


def test_seed_style_single_asset_update():
    """kalman_update on one asset from beta0 = 0, P0 = I, as in the research."""
    rng = np.random.default_rng(3)
    f = rng.normal(0, 0.02, size=(200, 3))
    r = f @ np.array([0.5, -1.0, 2.0]) + rng.normal(0, 0.005, size=200)
    beta, P = np.zeros(3), np.eye(3)
    innov = []
    for t in range(200):
        beta, P, e, Q = kalman_update(beta, P, r[t], f[t], 1e-6, 2.5e-5)
        innov.append(e)
    assert beta.shape == (3,) and P.shape == (3, 3) and np.ndim(e) == 0
    res = kalman_filter(r[:, None], f, 1e-6, 2.5e-5)
    assert_same(np.array(innov), res.innovations[:, 0], what="innovations")
    assert_same(beta, res.beta[0], what="beta")
    np.testing.assert_allclose(beta, [0.5, -1.0, 2.0], atol=0.1)  # it learns


# --------------------------------------------------------------------------
# missing data
# --------------------------------------------------------------------------


def test_nan_return_is_predict_only():
    r, f, _ = _generate(11, 12, 4, 2, False, 0.0, 1e-2)
    d, v = 1e-3, 1e-4
    r[5, 1] = np.nan
    res = kalman_filter(r, f, d, v)
    # NaN innovation and variance at the gap, for that asset only
    assert np.isnan(res.innovations[5, 1]) and np.isnan(res.innovation_variance[5, 1])
    assert np.isfinite(res.innovations[5, [0, 2, 3]]).all()
    # beta carried unchanged through the gap
    np.testing.assert_array_equal(res.betas[5, 1], res.betas[4, 1])
    # covariance only predicted: P_5 = P_4 + delta I (seen through continuation)
    upto4 = kalman_filter(r[:5], f[:5], d, v)
    upto5 = kalman_filter(r[:6], f[:6], d, v)
    np.testing.assert_allclose(upto5.P[1], upto4.P[1] + d * np.eye(2), rtol=1e-14)
    # the other assets did update
    assert not np.allclose(upto5.P[0], upto4.P[0] + d * np.eye(2))
    # the step after the gap uses the two-step-predicted covariance
    ref = reference_filter(r, f, d, v)
    assert_same(res.innovation_variance, ref[1], what="Q after gap")
    P_pred = upto5.P[1] + d * np.eye(2)
    np.testing.assert_allclose(
        res.innovation_variance[6, 1], f[6] @ P_pred @ f[6] + v, rtol=1e-12
    )


def test_nan_factor_skips_update():
    r, f, _ = _generate(12, 10, 3, 2, True, 0.0, 1e-2)
    f[4, 2, 1] = np.nan  # per-asset factor missing for asset 2 only
    res = kalman_filter(r, f, 1e-3, 1e-4)
    assert np.isnan(res.innovations[4, 2]) and np.isnan(res.innovation_variance[4, 2])
    assert np.isfinite(res.innovations[4, :2]).all()
    np.testing.assert_array_equal(res.betas[4, 2], res.betas[3, 2])
    check_against_reference(res, reference_filter(r, f, 1e-3, 1e-4))
    # a shared factor row with a NaN skips every asset's update at that step
    r2, f2, _ = _generate(13, 10, 3, 2, False, 0.0, 1e-2)
    f2[6, 0] = np.nan
    res2 = kalman_filter(r2, f2, 1e-3, 1e-4)
    assert np.isnan(res2.innovations[6]).all()
    np.testing.assert_array_equal(res2.betas[6], res2.betas[5])
    check_against_reference(res2, reference_filter(r2, f2, 1e-3, 1e-4))


def test_continuation_from_final_state():
    r, f, _ = _generate(21, 90, 7, 3, False, 0.0, 1e-2)
    r[:30, 2] = np.nan  # asset 2 has a different P: the continuation runs general
    whole = kalman_filter(r, f, 1e-4, 1e-4)
    first = kalman_filter(r[:40], f[:40], 1e-4, 1e-4)
    second = kalman_filter(r[40:], f[40:], 1e-4, 1e-4, beta0=first.beta, p0=first.P)
    assert_same(second.innovations, whole.innovations[40:], 1e-12, "innovations")
    assert_same(second.betas, whole.betas[40:], 1e-12, "betas")
    assert_same(second.P, whole.P, 1e-12, "P")


# --------------------------------------------------------------------------
# compilation, bucketing, precision scoping
# --------------------------------------------------------------------------


def test_bucketed_shapes_share_one_compilation():
    rng = np.random.default_rng(5)
    K = 4  # a factor count used nowhere else in the tests: fresh programs
    f = rng.normal(0, 0.01, size=(150, K))
    r37 = rng.normal(0, 0.01, size=(150, 37))
    r45 = rng.normal(0, 0.01, size=(150, 45))

    c0 = compilation_count()
    res37 = kalman_filter(r37, f, 1e-4, 1e-4)
    c1 = compilation_count()
    res45 = kalman_filter(r45, f, 1e-4, 1e-4)
    c2 = compilation_count()
    kalman_filter(r45[:140], f[:140], 1e-4, 1e-4)  # T=140 pads like T=150
    c3 = compilation_count()
    assert c1 - c0 == 1  # the counter sees the compilation
    assert c2 == c1  # N=45 reuses N=37's program
    assert c3 == c2  # so does a shorter history in the same time bucket
    assert res37.innovations.shape == (150, 37) and res45.betas.shape == (150, 45, K)

    # the same with missing data (both the shared and the general path)
    r37[:10, :3] = np.nan
    r45[:10, :5] = np.nan
    c4 = compilation_count()
    kalman_last(r37[-100:], f[-100:], 1e-4, 1e-4)
    kalman_last(r37[:100], f[:100], 1e-4, 1e-4)
    c5 = compilation_count()
    kalman_last(r45[:100], f[:100], 1e-4, 1e-4)
    c6 = compilation_count()
    assert c5 - c4 == 2  # shared path (complete window) + general path
    assert c6 == c5


def test_float64_is_scoped_to_the_kernel():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    before = jax.config.jax_enable_x64
    user_fn = jax.jit(lambda x: x * 2.0)
    r, f, _ = _generate(31, 20, 5, 2, False, 0.1, 1e-2)
    res = kalman_filter(r, f, 1e-4, 1e-4)
    last = kalman_last(r, f, 1e-4, 1e-4)
    assert jax.config.jax_enable_x64 == before
    assert res.innovations.dtype == np.float64 and last.betas.dtype == np.float64
    if not before:
        assert jnp.zeros(1).dtype == jnp.float32
        assert user_fn(np.ones(2)).dtype == jnp.float32
    # computed in float64 (float32 would miss 1e-12 by orders of magnitude)
    assert_same(res.innovations, reference_filter(r, f, 1e-4, 1e-4)[0], 1e-12)


def test_import_has_no_side_effects():
    code = (
        "import sys\n"
        "import zipline_factorarb.kernels.kalman, zipline_factorarb.kernels.ou\n"
        "assert 'jax' not in sys.modules, 'jax imported at import time'\n"
        "from zipline_factorarb.kernels.kalman import kalman_last\n"
        "import numpy as np, jax\n"
        "kalman_last(np.zeros((5, 3)), np.ones((5, 1)), 1e-4, 1e-4)\n"
        "assert not jax.config.jax_enable_x64\n"
        "import jax.numpy as jnp\n"
        "assert jnp.zeros(1).dtype == jnp.float32\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_kalman_update_traces_under_jax():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    r, f, _ = _generate(41, 6, 5, 2, False, 0.2, 1e-2)
    beta, P = np.zeros((5, 2)), np.broadcast_to(np.eye(2), (5, 2, 2))
    np_out = kalman_update(beta, P, r[0], f[0], 1e-3, 1e-4)
    with jax.enable_x64(True):
        step = jax.jit(kalman_update)
        jx_out = step(jnp.asarray(beta), jnp.asarray(P), jnp.asarray(r[0]), jnp.asarray(f[0]),
                      1e-3, 1e-4)
        jx_out = [np.asarray(a) for a in jx_out]
    for a, b in zip(jx_out, np_out):
        assert_same(a, b, 1e-13)


def test_argument_validation():
    r = np.zeros((5, 2))
    f = np.ones((5, 1))
    with pytest.raises(ValueError, match="obs_noise"):
        kalman_filter(r, f, 1e-4, 0.0)
    with pytest.raises(ValueError, match="state_noise"):
        kalman_last(r, f, -1.0, 1e-4)
    with pytest.raises(ValueError, match="factor_returns"):
        kalman_filter(r, np.ones((4, 1)), 1e-4, 1e-4)
    with pytest.raises(ValueError, match="beta0"):
        kalman_filter(r, f, 1e-4, 1e-4, beta0=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="p0"):
        kalman_filter(r, f, 1e-4, 1e-4, p0=np.ones((2, 2, 2)))


def test_window_function_matches_kernel_and_masks_short_histories():
    # one session of the KalmanInnovation term, without an engine
    from zipline_factorarb.kernels.kalman import kalman_innovation_window
    from zipline_factorarb.kernels.pca import pca_factors

    delta, v_e = 1e-5, 1e-4  # the term's defaults

    rng = np.random.default_rng(3)
    f = rng.normal(0, 0.01, (120, 2))
    r = f @ rng.normal(1, 0.3, (2, 30)) + rng.normal(0, 0.005, (120, 30))
    r[:100, 4] = np.nan  # listed late: 20 observations
    res = kalman_innovation_window(r, f, state_noise=delta, obs_noise=v_e, min_observations=30)
    ref = kalman_last(r, f, delta, v_e, 1.0)
    keep = np.arange(30) != 4
    np.testing.assert_array_equal(res.innovations[keep], ref.innovations[keep])
    np.testing.assert_array_equal(res.betas[keep], ref.betas[keep])
    assert np.isnan(res.innovations[4]) and np.isnan(res.betas[4]).all()
    assert res.n_observations[4] == 20 and res.n_observations[0] == 120

    pca = kalman_innovation_window(r, None, k=2, state_noise=delta, obs_noise=v_e)
    ref = kalman_last(r, pca_factors(r, 2).scores, delta, v_e, 1.0)
    np.testing.assert_allclose(pca.standardized_innovations, ref.standardized_innovations,
                               rtol=1e-12, atol=1e-14)
    # fewer complete assets than components: NaN, not an error mid-backtest
    few = kalman_innovation_window(r[:, :2], None, k=3)
    assert np.isnan(few.innovations).all()
