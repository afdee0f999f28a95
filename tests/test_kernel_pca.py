"""Proofs for the principal-component factor kernel, against scikit-learn."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA

from zipline_factorarb.kernels.pca import PCAResult, pca_factors, pca_loadings
from zipline_factorarb.kernels.wls import wls_residuals

HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


def factor_returns_window(seed, T=120, N=40, n_factors=3):
    """Returns with a few strong common factors (well separated eigenvalues)."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((T, n_factors)) * np.array([0.02, 0.01, 0.006])[:n_factors]
    exposures = rng.standard_normal((N, n_factors)) + np.array([1.0, 0.0, 0.0])[:n_factors]
    return factors @ exposures.T + 0.003 * rng.standard_normal((T, N)) + 0.0005


def align_signs(reference, candidate):
    """Flip candidate's columns onto reference's (PCA is unique up to sign)."""
    signs = np.sign(np.sum(reference * candidate, axis=0))
    return candidate * signs


def assert_matches_sklearn(result, returns, k):
    sk = PCA(n_components=k, svd_solver="full").fit(returns)
    loadings = sk.components_.T
    np.testing.assert_allclose(result.loadings, align_signs(result.loadings, loadings), atol=1e-10)
    # up to sign, and the signs agree between loadings and scores
    signs = np.sign(np.sum(result.loadings * loadings, axis=0))
    np.testing.assert_allclose(result.scores, sk.transform(returns) * signs, atol=1e-10)
    np.testing.assert_allclose(result.explained_variance, sk.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(
        result.explained_variance_ratio, sk.explained_variance_ratio_, rtol=1e-10
    )
    np.testing.assert_allclose(result.mean, sk.mean_, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_sklearn_pca(seed, k):
    returns = factor_returns_window(seed)
    result = pca_factors(returns, k)
    assert isinstance(result, PCAResult)
    assert result.loadings.shape == (40, k)
    assert result.scores.shape == (120, k)
    assert result.explained_variance.shape == result.explained_variance_ratio.shape == (k,)
    assert result.mean.shape == (40,)
    assert_matches_sklearn(result, returns, k)
    # orthonormal loadings, decreasing variances, scores = centred returns @ loadings
    np.testing.assert_allclose(result.loadings.T @ result.loadings, np.eye(k), atol=1e-12)
    assert np.all(np.diff(result.explained_variance) <= 0)
    np.testing.assert_allclose(
        result.scores, (returns - returns.mean(axis=0)) @ result.loadings, atol=1e-14
    )
    np.testing.assert_allclose(result.scores.var(axis=0, ddof=1), result.explained_variance, rtol=1e-10)


@HYPOTHESIS
@given(
    st.integers(0, 2**32 - 1),
    st.integers(3, 40),
    st.integers(2, 30),
    st.integers(1, 6),
)
def test_generated_windows_match_sklearn(seed, T, N, k):
    k = min(k, T - 1, N)
    rng = np.random.default_rng(seed)
    returns = rng.standard_normal((T, N)) * rng.uniform(0.005, 0.05, N)
    result = pca_factors(returns, k)
    # only compare components whose eigenvalue is separated from the next
    # one (otherwise the eigenvector is not unique and neither is sklearn's)
    sk = PCA(n_components=min(T, N), svd_solver="full").fit(returns)
    ev = sk.explained_variance_
    gaps = np.abs(np.diff(ev))[:k] if k < len(ev) else np.append(np.abs(np.diff(ev)), np.inf)[:k]
    separated = gaps > 1e-6 * ev[0]
    np.testing.assert_allclose(result.explained_variance, ev[:k], rtol=1e-9, atol=1e-14 * ev[0])
    ours = result.loadings[:, separated]
    theirs = sk.components_[:k].T[:, separated]
    np.testing.assert_allclose(ours, align_signs(ours, theirs), atol=1e-6)
    # sign normalisation: every column sums to a positive number
    sums = result.loadings.sum(axis=0)
    assert np.all((sums > 0) | (np.abs(sums) <= 1e-12 * np.abs(result.loadings).sum(axis=0)))


def test_sign_normalisation_is_deterministic():
    returns = factor_returns_window(4)
    result = pca_factors(returns, 3)
    assert np.all(result.loadings.sum(axis=0) > 0)
    # negating the returns gives the same loadings and negated scores
    flipped = pca_factors(-returns, 3)
    np.testing.assert_allclose(flipped.loadings, result.loadings, atol=1e-12)
    np.testing.assert_allclose(flipped.scores, -result.scores, atol=1e-14)
    # a column summing to zero: its largest-magnitude entry is made positive
    T = 50
    t = np.arange(T)
    spread = np.column_stack([np.sin(t), -np.sin(t)])  # loadings (1, -1)/sqrt(2)
    result = pca_factors(spread, 1)
    assert abs(result.loadings.sum()) < 1e-12
    np.testing.assert_allclose(np.abs(result.loadings[:, 0]), [2**-0.5, 2**-0.5], rtol=1e-12)
    # equal magnitudes: the first largest entry (asset 0) is the positive one
    for data in (spread, -spread, spread[:, ::-1], -spread[:, ::-1]):
        assert pca_factors(data, 1).loadings[0, 0] > 0


def test_assets_with_missing_values_are_left_out():
    returns = factor_returns_window(5, N=30)
    returns[10, 3] = np.nan
    returns[:, 17] = np.nan
    returns[0, 22] = np.inf
    left_out = np.zeros(30, dtype=bool)
    left_out[[3, 17, 22]] = True
    result = pca_factors(returns, 2)
    assert np.isnan(result.loadings[left_out]).all()
    assert np.isnan(result.mean[left_out]).all()
    assert np.isfinite(result.scores).all()
    complete = pca_factors(returns[:, ~left_out], 2)
    np.testing.assert_allclose(result.loadings[~left_out], complete.loadings, atol=1e-14)
    np.testing.assert_array_equal(result.scores, complete.scores)
    assert_matches_sklearn(complete, returns[:, ~left_out], 2)


def test_without_demeaning_uses_the_second_moment_matrix():
    returns = factor_returns_window(6, T=80, N=20)
    result = pca_factors(returns, 3, demean=False)
    moment = returns.T @ returns / 80
    values, vectors = np.linalg.eigh(moment)
    order = np.argsort(values)[::-1][:3]
    np.testing.assert_allclose(result.explained_variance, values[order], rtol=1e-10)
    np.testing.assert_allclose(
        result.loadings, align_signs(result.loadings, vectors[:, order]), atol=1e-10
    )
    np.testing.assert_array_equal(result.mean, 0.0)
    np.testing.assert_allclose(result.scores, returns @ result.loadings, atol=1e-14)
    np.testing.assert_allclose(
        result.explained_variance_ratio, values[order] / np.trace(moment), rtol=1e-10
    )


def test_unidentified_components_are_nan():
    rng = np.random.default_rng(7)
    returns = rng.standard_normal((4, 10))
    result = pca_factors(returns, 4)  # a centred 4-row window has rank 3
    assert np.isfinite(result.loadings[:, :3]).all()
    assert np.isnan(result.loadings[:, 3]).all()
    assert np.isnan(result.explained_variance[3])
    returns[:, 2:] = np.nan  # only two complete assets left
    narrow = pca_factors(returns, 3)
    assert np.isfinite(narrow.loadings[:2, :2]).all()
    assert np.isnan(narrow.loadings[:, 2]).all() and np.isnan(narrow.loadings[2:]).all()
    nothing = pca_factors(np.full((5, 3), np.nan), 2)
    assert np.isnan(nothing.loadings).all() and np.isnan(nothing.scores).all()


def test_parameter_errors():
    with pytest.raises(ValueError, match=r"returns must have shape \(T, N\); got shape \(5,\)"):
        pca_factors(np.zeros(5), 1)
    with pytest.raises(ValueError, match=r"k must satisfy 1 <= k <= min\(T, N\) = 3"):
        pca_factors(np.zeros((10, 3)), 4)
    with pytest.raises(ValueError, match="k must satisfy"):
        pca_factors(np.zeros((10, 3)), 0)
    with pytest.raises(TypeError, match="k must be an integer"):
        pca_factors(np.zeros((10, 3)), 1.5)


def test_pca_loadings_as_omega_give_neutral_residuals():
    """The PCA variant of the weighted regression: Omega = PCA loadings."""
    returns = factor_returns_window(8, T=61, N=40)
    window, today = returns[:-1], returns[-1]
    loadings = pca_loadings(window, 3)
    np.testing.assert_array_equal(loadings, pca_factors(window, 3).loadings)
    weights = 1.0 / window.var(axis=0, ddof=1)
    result = wls_residuals(today, loadings, weights)
    assert result.valid
    exposure = loadings.T @ result.weighted_residuals
    size = np.abs(loadings).T @ np.abs(result.weighted_residuals)
    assert np.all(np.abs(exposure) <= 1e-10 * size)
    # the first component is the market mode, signed to load mostly positively
    assert np.mean(loadings[:, 0] > 0) > 0.75


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_window_gram_path_matches_sklearn(seed):
    """252 days x 500 assets takes the Gram-matrix path; same answer as a full SVD."""
    returns = factor_returns_window(seed, T=252, N=500)
    result = pca_factors(returns, 3)
    assert_matches_sklearn(result, returns, 3)
    # pure noise (no dominant factors) still agrees
    noise = np.random.default_rng(seed).standard_normal((60, 200)) * 0.01
    assert_matches_sklearn(pca_factors(noise, 3), noise, 3)


def test_correlation_pca_is_sklearn_pca_of_standardised_returns():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from zipline_factorarb.kernels.pca import correlation_pca_loadings

    rng = np.random.default_rng(17)
    T, N, k = 120, 30, 3
    R = rng.standard_normal((T, k)) @ rng.standard_normal((k, N)) * 0.01
    R += rng.standard_normal((T, N)) * rng.uniform(0.002, 0.03, N)
    R[7, 4] = np.nan  # incomplete: left out
    candidates = np.ones(N, dtype=bool)
    candidates[9] = False  # not a candidate: left out
    got = correlation_pca_loadings(R, k, candidates)
    fitted = np.isfinite(R).all(axis=0) & candidates
    # ddof=1 scaling, as the kernel; sklearn's scaler uses ddof=0, which only
    # rescales every column alike and leaves the eigenvectors unchanged
    x = StandardScaler().fit_transform(R[:, fitted])
    ref = PCA(n_components=k, svd_solver="full").fit(x).components_.T
    assert np.isnan(got[~fitted]).all() and np.isfinite(got[fitted]).all()
    for j in range(k):
        sign = np.sign(got[fitted, j] @ ref[:, j])
        np.testing.assert_allclose(got[fitted, j], sign * ref[:, j], rtol=1e-8, atol=1e-10)
    assert np.isnan(correlation_pca_loadings(R[:, :3], k)).all()  # too few columns


def test_pca_residuals_are_the_projection_off_the_loadings():
    from zipline_factorarb.kernels.pca import pca_residual_window, pca_residuals

    rng = np.random.default_rng(4)
    T, N, k = 60, 12, 2
    R = rng.standard_normal((T, N)) * 0.01
    fit = pca_factors(R[:-1], k)
    scores, eps = pca_residuals(R, fit.loadings, fit.mean)
    W, mu = fit.loadings, fit.mean
    np.testing.assert_allclose(eps, (R - mu) @ (np.eye(N) - W @ W.T), atol=1e-15)
    np.testing.assert_allclose(scores, (R - mu) @ W, atol=1e-15)
    # an asset outside the fit: NaN residual, the others unchanged
    R2 = R.copy()
    R2[3, 5] = np.nan
    fit2 = pca_factors(R2, k)
    _, eps2 = pca_residuals(R2[-1:], fit2.loadings, fit2.mean)
    assert np.isnan(eps2[0, 5]) and np.isfinite(np.delete(eps2[0], 5)).all()
    np.testing.assert_array_equal(pca_residual_window(R2, k), eps2[0])
    with pytest.raises(ValueError, match="shapes do not match"):
        pca_residuals(R, fit.loadings[:5], fit.mean)


def test_daily_returns_is_the_one_definition():
    import pandas as pd

    from zipline_factorarb.kernels.returns import daily_returns

    rng = np.random.default_rng(2)
    prices = pd.DataFrame(np.exp(np.cumsum(rng.normal(0, 0.01, (50, 4)), axis=0)) * 30)
    prices.iloc[10, 2] = np.nan
    simple = daily_returns(prices.to_numpy(), log=False)
    logr = daily_returns(prices.to_numpy(), log=True)
    np.testing.assert_allclose(simple, prices.pct_change(fill_method=None).iloc[1:],
                               rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(logr, np.log(prices).diff().iloc[1:], rtol=1e-10, atol=1e-15)
    assert np.isnan(simple[9:11, 2]).all() and np.isnan(logr[9:11, 2]).all()
    for bad in (None, 1, "yes"):
        with pytest.raises(TypeError, match="log must be True or False"):
            daily_returns(prices.to_numpy(), log=bad)
