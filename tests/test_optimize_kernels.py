"""Risk-model kernels (zipline_factorarb.kernels.risk) and the RiskModel adapter."""

import numpy as np
import pandas as pd
import pytest

from zipline_factorarb.kernels import risk as kr
from zipline_factorarb.optimize import NonFiniteInput, RiskModel, make_benchmark_weights


def _factor_data(T=120, n=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 0.01, (T, k)) @ np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])[:k, :k]
    B = rng.normal(1.0, 0.5, (k, n))
    alpha = rng.normal(0, 0.001, n)
    R = alpha + X @ B + rng.normal(0, 0.02, (T, n))
    return R, X


# --------------------------------------------------------------------------- Ledoit-Wolf
@pytest.mark.parametrize("shape", [(60, 6), (15, 10), (200, 3)])
def test_ledoit_wolf_matches_sklearn(shape):
    sk = pytest.importorskip("sklearn.covariance")
    rng = np.random.default_rng(shape[0])
    X = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1])) * 0.01 + 0.003
    ref = sk.LedoitWolf().fit(X)
    cov, shrink = kr.ledoit_wolf(X)
    assert 0 < shrink < 1
    assert shrink == pytest.approx(ref.shrinkage_, rel=1e-10, abs=1e-14)
    np.testing.assert_allclose(cov, ref.covariance_, rtol=1e-10, atol=1e-16)
    # the public factor_covariance default is the same estimator
    np.testing.assert_allclose(kr.factor_covariance(X), ref.covariance_, rtol=1e-10, atol=1e-16)


def test_weighted_ledoit_wolf_matches_brute_force_formula():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 4)) * np.array([0.01, 0.02, 0.005, 0.01])
    halflife = 10.0
    w = 0.5 ** (np.arange(39, -1, -1) / halflife)
    w /= w.sum()
    m = w @ X
    Xc = X - m
    S = sum(wt * np.outer(x, x) for wt, x in zip(w, Xc))
    p = 4
    mu = np.trace(S) / p
    delta = np.sum((S - mu * np.eye(p)) ** 2) / p
    beta = sum(wt ** 2 * np.sum((np.outer(x, x) - S) ** 2) for wt, x in zip(w, Xc)) / p
    d = min(beta, delta) / delta
    cov, shrink = kr.ledoit_wolf(X, halflife=halflife)
    assert shrink == pytest.approx(d, rel=1e-12)
    np.testing.assert_allclose(cov, (1 - d) * S + d * mu * np.eye(p), rtol=1e-12)


def test_ewma_covariance_matches_pandas():
    rng = np.random.default_rng(4)
    df = pd.DataFrame(rng.normal(size=(50, 3)) * 0.01, columns=list("abc"))
    ref = df.ewm(halflife=7.0).cov(bias=True).loc[49].to_numpy()
    np.testing.assert_allclose(kr.weighted_covariance(df.to_numpy(), halflife=7.0), ref, rtol=1e-10)
    # unweighted, bias-corrected is np.cov
    np.testing.assert_allclose(kr.factor_covariance(df.to_numpy(), shrinkage=None),
                               np.cov(df.to_numpy().T), rtol=1e-12)
    w = kr.ewma_weights(5, halflife=1.0)
    np.testing.assert_allclose(w, np.array([1, 2, 4, 8, 16]) / 31.0)


# --------------------------------------------------------------------------- regression
def test_regression_loadings_match_per_asset_lstsq_with_missing_values():
    R, X = _factor_data()
    R[5:9, 2] = np.nan  # one asset with gaps
    R[:30, 5] = np.nan  # one asset that starts late
    X[60, 1] = np.nan  # one date without factor data drops for everyone
    res = kr.regression_loadings(R, X)
    for i in range(R.shape[1]):
        ok = np.isfinite(R[:, i]) & np.isfinite(X).all(axis=1)
        A = np.hstack([np.ones((ok.sum(), 1)), X[ok]])
        coef = np.linalg.lstsq(A, R[ok, i], rcond=None)[0]
        np.testing.assert_allclose(res.loadings[i], coef, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(res.residuals[ok, i], R[ok, i] - A @ coef, atol=1e-12)
        assert np.isnan(res.residuals[~ok, i]).all()
        assert res.n_observations[i] == ok.sum()


def test_regression_needs_enough_observations():
    R, X = _factor_data(T=30, n=3)
    R[:27, 1] = np.nan  # 3 rows left, 4 parameters
    res = kr.regression_loadings(R, X)
    assert np.isnan(res.loadings[1]).all()
    assert np.isfinite(res.loadings[[0, 2]]).all()


def test_specific_variance_unbiased_and_weighted():
    rng = np.random.default_rng(5)
    E = rng.normal(size=(30, 4))
    E[3, 1] = np.nan
    out = kr.specific_variance(E, n_parameters=3)
    for i in range(4):
        e = E[np.isfinite(E[:, i]), i]
        assert out[i] == pytest.approx(np.sum(e ** 2) / (len(e) - 3), rel=1e-12)
    w = kr.ewma_weights(30, 5.0)
    ew = kr.specific_variance(E[:, [0]], halflife=5.0, n_parameters=2)
    assert ew[0] == pytest.approx(np.sum(w * E[:, 0] ** 2) / (1 - 2 * np.sum(w * w)), rel=1e-12)


# --------------------------------------------------------------------------- risk
def test_factor_root_handles_singular_constant_factor():
    cov = np.zeros((3, 3))
    cov[1:, 1:] = [[4e-4, 1e-4], [1e-4, 2e-4]]
    R = kr.factor_root(cov)
    np.testing.assert_allclose(R.T @ R, cov, atol=1e-18)
    with pytest.raises(ValueError, match="positive semi-definite"):
        kr.factor_root(np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_risk_contributions_euler_sum_and_values():
    rng = np.random.default_rng(6)
    m, n = 4, 25
    B = rng.normal(size=(n, m))
    A = rng.normal(size=(m, m)) * 0.02
    S = A @ A.T
    E = rng.uniform(1e-4, 5e-4, n)
    a = rng.normal(0, 0.02, n)
    rc = kr.risk_contributions(a, B, S, E)
    Sigma = B @ S @ B.T + np.diag(E)  # dense covariance, built independently
    total = a @ Sigma @ a
    assert rc.total == pytest.approx(total, rel=1e-12)
    assert rc.factor.sum() + rc.specific == pytest.approx(total, rel=1e-10)
    assert rc.asset.sum() == pytest.approx(total, rel=1e-10)
    np.testing.assert_allclose(rc.asset, a * (Sigma @ a), rtol=1e-10, atol=1e-18)
    # Euler: contributions are a_i * dV/da_i / 2, checked by central differences
    h = 1e-6
    grad = np.array([(a + h * e) @ Sigma @ (a + h * e) - (a - h * e) @ Sigma @ (a - h * e)
                     for e in np.eye(n)]) / (2 * h)
    np.testing.assert_allclose(rc.asset, a * grad / 2, rtol=1e-5, atol=1e-14)
    assert kr.tracking_error(a, B, S, E, 252) == pytest.approx(np.sqrt(252 * total), rel=1e-12)


def test_sector_mapping_columns_are_cap_weights():
    codes = np.array([0, 1, 0, 2, 1])
    caps = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    W, xb = kr.sector_mapping(codes, caps)
    np.testing.assert_allclose(W.sum(axis=0), 1.0)
    np.testing.assert_allclose(W[:, 0], [0.25, 0, 0.75, 0, 0])
    np.testing.assert_allclose(xb, [4 / 16, 8 / 16, 4 / 16])
    np.testing.assert_allclose(W @ xb, caps / caps.sum())


# --------------------------------------------------------------------------- adapter
def test_risk_model_from_returns_matches_independent_estimates():
    sk = pytest.importorskip("sklearn.covariance")
    R, X = _factor_data(T=150, n=6, k=3, seed=7)
    R[10, 3] = np.nan
    dates = pd.bdate_range("2020-01-01", periods=150)
    assets = [f"S{i}" for i in range(6)]
    rets = pd.DataFrame(R, index=dates, columns=assets)
    facs = pd.DataFrame(X, index=dates, columns=["mkt", "smb", "hml"])
    model = RiskModel.from_returns(rets, facs)
    assert list(model.factors) == ["const", "mkt", "smb", "hml"]
    cov = model.factor_covariance.to_numpy()
    assert np.all(cov[0] == 0) and np.all(cov[:, 0] == 0)
    np.testing.assert_allclose(cov[1:, 1:], sk.LedoitWolf().fit(X).covariance_, rtol=1e-10)
    for i, a in enumerate(assets):
        ok = np.isfinite(R[:, i])
        A = np.hstack([np.ones((ok.sum(), 1)), X[ok]])
        coef, *_ = np.linalg.lstsq(A, R[ok, i], rcond=None)
        np.testing.assert_allclose(model.loadings.loc[a].to_numpy(), coef, rtol=1e-9)
        resid = R[ok, i] - A @ coef
        assert model.specific_variance[a] == pytest.approx(resid @ resid / (ok.sum() - 4), rel=1e-10)


def test_risk_model_with_given_loadings_uses_their_residuals():
    R, X = _factor_data(T=80, n=4, k=2, seed=8)
    dates = pd.bdate_range("2021-01-01", periods=80)
    rets = pd.DataFrame(R, index=dates, columns=list("abcd"))
    facs = pd.DataFrame(X, index=dates, columns=["f1", "f2"])
    given = pd.DataFrame({"f1": [1.0, 0.5, 0.0, 2.0], "f2": [0.0, 1.0, 1.0, -1.0]}, index=list("abcd"))
    model = RiskModel.from_returns(rets, facs, loadings=given, shrinkage=None)
    resid = R - X @ given.to_numpy().T
    np.testing.assert_allclose(model.specific_variance.to_numpy(), np.mean(resid ** 2, axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.factor_covariance.to_numpy(), np.cov(X.T), rtol=1e-12)


def test_risk_model_rejects_bad_inputs_naming_asset_and_field():
    L = pd.DataFrame({"f1": [1.0, np.nan], "f2": [0.0, 1.0]}, index=["A", "B"])
    # data problems are kept and raised when the model is used (so on_failure can hold)
    with pytest.raises(NonFiniteInput) as info:
        RiskModel(L, np.eye(2), pd.Series([0.1, 0.1], index=["A", "B"])).covariance()
    assert info.value.asset == "B" and "f1" in info.value.field and isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="no entry for 1 assets"):
        RiskModel(L.fillna(0), np.eye(2), pd.Series([0.1], index=["A"])).covariance()
    with pytest.raises(ValueError, match="negative for 'B'"):
        RiskModel(L.fillna(0), np.eye(2), pd.Series([0.1, -0.1], index=["A", "B"])).covariance()


def test_risk_model_tracking_error_and_contributions():
    rng = np.random.default_rng(9)
    n = 10
    assets = list("ABCDEFGHIJ")
    F = rng.normal(size=(3, n))
    S = np.diag([0.0, 4e-4, 1e-4])
    E = rng.uniform(1e-4, 3e-4, n)
    model = RiskModel(pd.DataFrame(F.T, index=assets, columns=["const", "x", "y"]), S,
                      pd.Series(E, index=assets))
    w = pd.Series(rng.dirichlet(np.ones(n)), index=assets)
    b = pd.Series(1.0 / n, index=assets)
    a = (w - b).to_numpy()
    Sigma = F.T @ S @ F + np.diag(E)
    assert model.tracking_error(w, b, 12) == pytest.approx(np.sqrt(12 * a @ Sigma @ a), rel=1e-12)
    dec = model.risk_contributions(w, b, periods_per_year=12)
    assert dec.by_factor.sum() == pytest.approx(dec.total, rel=1e-10)
    assert dec.total == pytest.approx(model.tracking_error(w, b, 12) ** 2, rel=1e-10)
    assert dec.by_factor["const"] == 0.0
    assert dec.by_factor["specific"] == pytest.approx(12 * np.sum(E * a * a), rel=1e-12)
    np.testing.assert_allclose(model.covariance().to_numpy(), Sigma, rtol=1e-12, atol=1e-18)
    with pytest.raises(ValueError, match="no loadings for 1 assets"):
        model.tracking_error(pd.Series({"ZZZ": 1.0}), b)


def test_make_benchmark_weights_sources():
    caps = pd.Series({"a": 1.0, "b": 3.0})
    out = make_benchmark_weights(caps)
    assert out.attrs["source"] == "market_cap"
    np.testing.assert_allclose(out.to_numpy(), [0.25, 0.75])
    out = make_benchmark_weights(shares_outstanding=pd.Series({"a": 10.0, "b": 10.0}),
                                 prices=pd.Series({"a": 1.0, "b": 4.0}))
    np.testing.assert_allclose(out.to_numpy(), [0.2, 0.8])
    with pytest.warns(UserWarning, match="market_cap is missing"):
        out = make_benchmark_weights(pd.Series({"a": 1.0, "b": np.nan}),
                                     dollar_volume=pd.Series({"a": 2.0, "b": 6.0}))
    assert out.attrs["source"] == "dollar_volume"
    np.testing.assert_allclose(out.to_numpy(), [0.25, 0.75])
    out = make_benchmark_weights(assets=["x", "y", "z", "w"])
    assert out.attrs["source"] == "equal" and np.allclose(out, 0.25)


# --------------------------------------------------------------------------- style analysis
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_style_weights_match_a_second_solver(seed):
    """The NNLS style analysis against the same least squares on the simplex written
    directly in cvxpy and solved by Clarabel (a different algorithm)."""
    import cvxpy as cp

    from zipline_factorarb.kernels.style import style_weights

    rng = np.random.default_rng(seed)
    T, n = 250, 6
    X = rng.normal(0.0004, 0.012, (T, n)) + rng.normal(0, 0.01, (T, 1))
    mix = rng.dirichlet(np.ones(n) * 0.7)
    y = X @ mix + rng.normal(0, 0.004, T)
    X[5, 2] = np.nan  # a missing return: the row is left out of both
    got = style_weights(X, y)
    ok = np.isfinite(X).all(axis=1)
    w = cp.Variable(n)
    cp.Problem(cp.Minimize(cp.sum_squares(X[ok] @ w - y[ok])),
               [w >= 0, cp.sum(w) == 1]).solve(solver=cp.CLARABEL)
    assert got.sum() == pytest.approx(1.0, abs=1e-12) and got.min() >= 0
    np.testing.assert_allclose(got, w.value, atol=1e-5)

    def sse(v):
        return float(np.sum((X[ok] @ v - y[ok]) ** 2))

    assert sse(got) == pytest.approx(sse(np.clip(w.value, 0, None)), rel=1e-6)
    with pytest.raises(ValueError, match="no columns"):
        style_weights(np.zeros((5, 0)), np.zeros(5))
