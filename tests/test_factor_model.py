"""The factor-model estimator (kernels.factor_model) against scikit-learn and statsmodels.

Real data: daily close-to-close returns of 40 S&P 500 stocks (assets) on SPY plus the nine
original SPDR sector ETFs (factors, from adjusted closes), 2014-2016; split days
(moves beyond 35%) are missing returns, from ../shared/data. Generated data:
hypothesis. Tolerances are stated per test.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import ElasticNet, Lasso, LassoCV, Ridge, RidgeCV
from sklearn.model_selection import TimeSeriesSplit

from zipline_factorarb.kernels import factor_model as fm
from zipline_factorarb.kernels import risk as kr
from zipline_factorarb.optimize import FactorModel, RiskModel

ETFS = ["SPY", "XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY"]


@pytest.fixture(scope="module")
def real(shared_data_dir):
    etf = pd.read_csv(shared_data_dir / "spdr_sector_etfs_daily.csv.gz", parse_dates=["date"])
    etf = etf[etf.symbol.isin(ETFS)].pivot(index="date", columns="symbol", values="adj_close")
    stocks = pd.read_csv(shared_data_dir / "sp500_stocks_daily_2013_2018.csv.gz",
                         parse_dates=["date"], usecols=["date", "symbol", "close"])
    names = sorted(stocks.symbol.unique())[::12][:40]
    px = stocks[stocks.symbol.isin(names)].pivot(index="date", columns="symbol",
                                                 values="close")
    window = slice("2014-01-01", "2016-12-31")
    X = etf[ETFS].pct_change(fill_method=None).loc[window].dropna()
    R = px.pct_change(fill_method=None).loc[window].reindex(X.index)
    R = R.mask(R.abs() > 0.35)  # the stock file's closes are not split-adjusted
    R = R.loc[:, R.notna().mean() > 0.99]
    return R, X


def _complete(R):
    return R.loc[:, R.notna().all()]


@pytest.mark.shared_data
def test_ols_matches_statsmodels_on_real_data(real):
    import statsmodels.api as sm

    R, X = real
    fit = fm.fit_factor_model(R.to_numpy(), X.to_numpy(), "ols")
    for j in range(0, R.shape[1], 7):
        y = R.iloc[:, j]
        ok = y.notna()
        ref = sm.OLS(y[ok], sm.add_constant(X[ok])).fit()
        np.testing.assert_allclose(fit.intercepts[j], ref.params.iloc[0], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(fit.loadings[j], ref.params.iloc[1:], rtol=1e-7, atol=1e-10)
        # specific variance: residual variance with p = 11 parameters (statsmodels' scale)
        np.testing.assert_allclose(fit.specific_variance[j], ref.scale, rtol=1e-8)


@pytest.mark.shared_data
def test_ols_keeps_the_numbers_of_the_regression_kernel(real):
    R, X = real
    fit = fm.fit_factor_model(R.to_numpy(), X.to_numpy(), "ols", halflife=63)
    reg = kr.regression_loadings(R.to_numpy(), X.to_numpy())
    np.testing.assert_array_equal(fit.loadings, reg.loadings[:, 1:])
    np.testing.assert_array_equal(fit.intercepts, reg.loadings[:, 0])
    np.testing.assert_array_equal(
        fit.specific_variance, kr.specific_variance(reg.residuals, halflife=63, n_parameters=11))
    np.testing.assert_array_equal(fit.factor_covariance,
                                  kr.factor_covariance(X.to_numpy(), halflife=63))


@pytest.mark.shared_data
@pytest.mark.parametrize("lam", [1e-5, 1e-3, 0.1])
def test_ridge_matches_sklearn_on_real_data(real, lam):
    R, X = real
    R = _complete(R)
    fit = fm.fit_factor_model(R.to_numpy(), X.to_numpy(), "ridge", lam)
    ref = Ridge(alpha=lam).fit(X.to_numpy(), R.to_numpy())
    np.testing.assert_allclose(fit.loadings, ref.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(fit.intercepts, ref.intercept_, rtol=1e-8, atol=1e-12)


@pytest.mark.shared_data
def test_ridge_cv_matches_sklearn_ridgecv_with_time_series_folds(real):
    R, X = real
    R = _complete(R).iloc[:, :12]
    grid = fm.ridge_grid(X.to_numpy(), grid_size=12)
    fit = fm.fit_factor_model(R.to_numpy(), X.to_numpy(), "ridge", grid=grid, cv=5)
    for j in range(R.shape[1]):
        ref = RidgeCV(alphas=grid, cv=TimeSeriesSplit(5),
                      scoring="neg_mean_squared_error").fit(X.to_numpy(), R.iloc[:, j].to_numpy())
        assert fit.lambdas[j] == pytest.approx(ref.alpha_, rel=1e-12)
        np.testing.assert_allclose(fit.loadings[j], ref.coef_, rtol=1e-7, atol=1e-10)


@pytest.mark.shared_data
def test_lasso_and_elastic_net_match_sklearn_on_real_data(real):
    R, X = real
    R = _complete(R).iloc[:, :10]
    lam = 2e-5
    fit = fm.fit_factor_model(R.to_numpy(), X.to_numpy(), "lasso", lam, tol=1e-12,
                              max_iter=200_000)
    enet = fm.fit_factor_model(R.to_numpy(), X.to_numpy(), "elasticnet", lam, l1_ratio=0.4,
                               tol=1e-12, max_iter=200_000)
    for j in range(R.shape[1]):
        y = R.iloc[:, j].to_numpy()
        ref = Lasso(alpha=lam, tol=1e-14, max_iter=1_000_000).fit(X.to_numpy(), y)
        np.testing.assert_allclose(fit.loadings[j], ref.coef_, atol=1e-7)
        np.testing.assert_allclose(fit.intercepts[j], ref.intercept_, atol=1e-9)
        ref = ElasticNet(alpha=lam, l1_ratio=0.4, tol=1e-14,
                         max_iter=1_000_000).fit(X.to_numpy(), y)
        np.testing.assert_allclose(enet.loadings[j], ref.coef_, atol=1e-7)
    # the lasso sets loadings exactly to zero
    assert (fit.loadings == 0).sum() > 0


@pytest.mark.shared_data
def test_lasso_cv_matches_sklearn_lassocv_with_time_series_folds(real):
    R, X = real
    R = _complete(R).iloc[:, :6]
    grid = np.geomspace(1e-3, 1e-6, 12)
    fit = fm.fit_factor_model(R.to_numpy(), X.to_numpy(), "lasso", grid=grid, cv=4, tol=1e-12,
                              max_iter=200_000)
    for j in range(R.shape[1]):
        ref = LassoCV(alphas=grid, cv=TimeSeriesSplit(4), tol=1e-14,
                      max_iter=1_000_000).fit(X.to_numpy(), R.iloc[:, j].to_numpy())
        assert fit.lambdas[j] == pytest.approx(ref.alpha_, rel=1e-12)
        np.testing.assert_allclose(fit.diagnostics["cv_mse"][:, j], ref.mse_path_.mean(axis=1),
                                   rtol=1e-6)
        np.testing.assert_allclose(fit.loadings[j], ref.coef_, atol=1e-7)


def test_folds_are_sklearns_time_series_split_and_never_look_ahead():
    for T, k in [(100, 5), (252, 5), (61, 3)]:
        ours = fm.walk_forward_folds(T, k)
        ref = list(TimeSeriesSplit(k).split(np.zeros(T)))
        assert len(ours) == len(ref)
        for (stop, t0, t1), (tr, te) in zip(ours, ref):
            assert list(range(stop)) == list(tr) and list(range(t0, t1)) == list(te)
            assert stop <= t0  # training rows all precede the validation block


@pytest.mark.shared_data
def test_collinear_etfs_are_tamed_by_ridge_and_lasso(real):
    """SPY with the nine sector ETFs: OLS gives a wild SPY beta; penalties shrink it."""
    R, X = real
    R = _complete(R)
    split = int(len(X) * 0.7)
    Rtr, Rte, Xtr, Xte = R.iloc[:split], R.iloc[split:], X.iloc[:split], X.iloc[split:]
    cond, vif = fm.collinearity(Xtr.to_numpy())
    assert vif[0] > fm.MAX_VIF  # SPY is nearly a combination of its sectors
    msg = fm.collinearity_message(Xtr.to_numpy(), ETFS)
    assert msg is not None and "SPY" in msg
    fits = {m: fm.fit_factor_model(Rtr.to_numpy(), Xtr.to_numpy(), m)
            for m in ("ols", "ridge", "lasso")}
    spread = {m: float(np.std(f.loadings[:, 0])) for m, f in fits.items()}
    oos = {}
    for m, f in fits.items():
        pred = Xte.to_numpy() @ f.loadings.T + f.intercepts
        oos[m] = float(np.mean((Rte.to_numpy() - pred) ** 2))
    # penalised SPY betas are less dispersed across stocks than OLS's
    assert spread["ridge"] < spread["ols"] and spread["lasso"] < spread["ols"], spread
    # and fit out of sample no worse (cross-validation may pick a tiny penalty: 0.5% slack)
    assert oos["ridge"] <= oos["ols"] * 1.005 and oos["lasso"] <= oos["ols"] * 1.005, oos
    # with SPY alone, the market beta is near one; with the sectors, OLS's is not
    spy_only = fm.fit_factor_model(Rtr.to_numpy(), Xtr[["SPY"]].to_numpy())
    assert 0.6 < np.median(spy_only.loadings[:, 0]) < 1.4


@pytest.mark.shared_data
def test_factor_model_estimator_and_risk_model(real):
    R, X = real
    est = FactorModel(method="ridge").fit(R, X)
    assert list(est.loadings_.columns) == ETFS and list(est.loadings_.index) == list(R.columns)
    assert (est.lambda_ > 0).all()
    assert est.diagnostics_["vif"]["SPY"] > fm.MAX_VIF
    model = est.risk_model()
    direct = RiskModel.from_returns(R, X, method="ridge")
    np.testing.assert_allclose(model.loadings.to_numpy(), direct.loadings.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(model.specific_variance, direct.specific_variance, rtol=1e-12)
    assert list(model.factors) == ["const", *ETFS]
    from sklearn.base import clone

    assert clone(est).get_params()["method"] == "ridge"
    pred = est.predict(X)
    assert pred.shape == R.shape


def test_bad_arguments_are_named():
    R = np.zeros((50, 3))
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="method"):
        fm.fit_factor_model(R, X, "pca")
    with pytest.raises(ValueError, match="rows"):
        fm.fit_factor_model(R[:40], X, "ols")
    with pytest.raises(ValueError, match="lam"):
        fm.fit_factor_model(R, X, "ridge", -1.0)
    with pytest.raises(ValueError, match="cv"):
        fm.fit_factor_model(R, X, "ridge", cv=1)
    with pytest.raises(ValueError, match="too few"):
        fm.fit_factor_model(R[:8], X[:8], "lasso", cv=5)


@settings(max_examples=30, deadline=None)
@given(T=st.integers(40, 120), n=st.integers(1, 6), k=st.integers(1, 4),
       lam=st.floats(1e-6, 10.0), seed=st.integers(0, 2**31 - 1),
       const=st.booleans())
def test_ridge_equals_sklearn_on_generated_data(T, n, k, lam, seed, const):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, k))
    Y = X @ rng.normal(size=(k, n)) + rng.normal(size=(T, n))
    fit = fm.fit_factor_model(Y, X, "ridge", lam, add_constant=const)
    ref = Ridge(alpha=lam, fit_intercept=const).fit(X, Y)
    np.testing.assert_allclose(fit.loadings, ref.coef_.reshape(n, k), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fit.intercepts, np.broadcast_to(ref.intercept_, (n,)), atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(40, 100), k=st.integers(1, 4), frac=st.floats(0.01, 0.9),
       seed=st.integers(0, 2**31 - 1))
def test_lasso_equals_sklearn_on_generated_data(T, k, frac, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, k))
    Y = X @ rng.normal(size=(k, 2)) + rng.normal(size=(T, 2))
    lam = frac * np.abs((X - X.mean(0)).T @ (Y - Y.mean(0))).max() / T
    fit = fm.fit_factor_model(Y, X, "lasso", lam, tol=1e-13, max_iter=100_000)
    for j in range(2):
        ref = Lasso(alpha=lam, tol=1e-14, max_iter=1_000_000).fit(X, Y[:, j])
        np.testing.assert_allclose(fit.loadings[j], ref.coef_, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(30, 80), n=st.integers(2, 5), seed=st.integers(0, 2**31 - 1),
       method=st.sampled_from(["ridge", "lasso"]))
def test_missing_returns_fit_each_asset_on_its_own_rows(T, n, seed, method):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, 2))
    Y = X @ rng.normal(size=(2, n)) + rng.normal(size=(T, n))
    Y[rng.random((T, n)) < 0.15] = np.nan
    lam = 0.05
    fit = fm.fit_factor_model(Y, X, method, lam, tol=1e-13, max_iter=100_000, min_observations=5)
    for j in range(n):
        ok = np.isfinite(Y[:, j])
        if ok.sum() < 5:
            assert np.isnan(fit.loadings[j]).all()
            continue
        Ref = Ridge if method == "ridge" else Lasso
        kw = {} if method == "ridge" else {"tol": 1e-14, "max_iter": 1_000_000}
        ref = Ref(alpha=lam, **kw).fit(X[ok], Y[ok, j])
        np.testing.assert_allclose(fit.loadings[j], ref.coef_, atol=1e-7)
        assert fit.n_observations[j] == ok.sum()


def test_collinearity_warning_names_the_factors_once():
    rng = np.random.default_rng(3)
    a = rng.normal(size=200)
    X = np.column_stack([a, a + 0.01 * rng.normal(size=200), rng.normal(size=200)])
    cond, vif = fm.collinearity(X)
    assert cond > fm.MAX_CONDITION and vif[0] > fm.MAX_VIF and vif[2] < 2
    msg = fm.collinearity_message(X, ["SPY", "XLK", "XLE"])
    assert "SPY" in msg and "XLK" in msg and "XLE" not in msg.split("above")[1]
    assert fm.collinearity_message(rng.normal(size=(200, 3)), ["a", "b", "c"]) is None

    class Owner:
        pass

    owner = Owner()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            fm.warn_collinear_once(owner, X, ["SPY", "XLK", "XLE"])
    assert len([w for w in caught if issubclass(w.category, fm.CollinearFactorsWarning)]) == 1


# ----------------------------------------------------------------------------- in a pipeline
FACTOR_ETFS = ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ridge", "lasso"])
def test_penalised_factor_risk_model_equals_sklearn_cv_per_stock(sample_root, method):
    """FactorRiskModel(method=..., lam=None) on the sample bundle: the loadings of each
    stock are scikit-learn's RidgeCV / LassoCV with TimeSeriesSplit on the same window
    (returns read independently from the bundle's closes)."""
    from zipline.pipeline import Pipeline

    from conftest import bundle_closes, zipline_environ
    from zipline_factorarb.pipeline.classifiers import IsStock
    from zipline_factorarb.pipeline.research import run_pipeline
    from zipline_factorarb.pipeline.risk import FactorRiskModel

    day = pd.Timestamp("2019-06-03")
    closes, finder = bundle_closes("factorarb-sample", sample_root, day, 253)
    assets = finder.retrieve_all(finder.sids)
    returns = closes.pct_change(fill_method=None).iloc[1:]
    symbol = {a.symbol: a for a in assets}
    market = returns["SP500"].to_numpy()
    X = np.column_stack([market] + [returns[s].to_numpy() - market for s in FACTOR_ETFS])
    grid = tuple(fm.ridge_grid(X, grid_size=10)) if method == "ridge" \
        else tuple(np.geomspace(1e-3, 1e-7, 10))
    risk = FactorRiskModel(factor_assets=[symbol[s] for s in FACTOR_ETFS], market=symbol["SP500"],
                           window_length=252, mask=IsStock(), method=method, cv=4, grid=grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fm.CollinearFactorsWarning)
        out = run_pipeline(Pipeline(risk.pipeline_columns(), screen=IsStock()), day, day,
                           bundle="factorarb-sample",
                           environ=zipline_environ(sample_root)).xs(day)
    for asset in out.index:
        y = returns[asset.symbol].to_numpy()
        if method == "ridge":
            ref = RidgeCV(alphas=grid, cv=TimeSeriesSplit(4),
                          scoring="neg_mean_squared_error").fit(X, y)
            atol = 1e-8
        else:
            ref = LassoCV(alphas=grid, cv=TimeSeriesSplit(4), tol=1e-12,
                          max_iter=1_000_000).fit(X, y)
            atol = 1e-8  # exact support solves: scikit-learn (tol=1e-12) is the looser one
        got = [out.loc[asset, f"risk:loading_{n}"] for n in risk.factors]
        np.testing.assert_allclose(got, ref.coef_, atol=atol)
        np.testing.assert_allclose(out.loc[asset, "risk:alpha"], ref.intercept_, atol=atol)


@pytest.fixture(scope="module")
def etf_root(shared_data_dir, tmp_path_factory):
    """A zipline root with the real SPDR sector ETFs and SPY ingested (factorarb-csv)."""
    from conftest import ingest, write_shared_csv_dirs

    base = tmp_path_factory.mktemp("etfs_only")
    etfs, _ = write_shared_csv_dirs(shared_data_dir, base / "src")
    root = base / "zipline"
    root.mkdir()
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=etfs)
    return root, etfs


@pytest.mark.slow
@pytest.mark.shared_data
def test_collinear_etf_factors_warn_once_in_both_pipeline_terms(etf_root):
    """SPY plus the nine sector ETFs as factors: FactorRiskModel and KalmanInnovation
    each warn once, naming SPY, over a pipeline of several sessions."""
    from zipline.pipeline import Pipeline

    from conftest import zipline_environ
    from zipline_factorarb.pipeline.kalman import KalmanInnovation
    from zipline_factorarb.pipeline.research import run_pipeline
    from zipline_factorarb.pipeline.risk import FactorRiskModel

    root, etfs = etf_root
    env = zipline_environ(root, FACTORARB_CSV_DIR=etfs)
    start, end = pd.Timestamp("2015-03-02"), pd.Timestamp("2015-03-13")
    from zipline.data import bundles

    data = bundles.load("factorarb-csv", environ=env)
    try:
        finder = data.asset_finder
        symbol = {a.symbol: a for a in finder.retrieve_all(finder.sids)}
    finally:
        data.close()
    sectors = [symbol[s] for s in ETFS[1:]]
    risk = FactorRiskModel(factor_assets=sectors, market=symbol["SPY"], excess_of_market=False,
                           window_length=252)
    kalman = KalmanInnovation(factors=[symbol[s] for s in ETFS], window_length=126)
    columns = {"spy_beta": risk.loading_market, "kalman_spy_beta": kalman.beta_0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = run_pipeline(Pipeline(columns), start, end, bundle="factorarb-csv", environ=env)
    assert out.index.get_level_values(0).nunique() == 10  # ten sessions, one warning each
    ours = [str(w.message) for w in caught if issubclass(w.category, fm.CollinearFactorsWarning)]
    assert len(ours) == 2, ours
    by_term = {m.split(":")[0]: m for m in ours}
    assert set(by_term) == {"FactorRiskModel", "KalmanInnovation"}
    assert "market (VIF" in by_term["FactorRiskModel"]  # SPY is the market factor there
    assert "SPY (VIF" in by_term["KalmanInnovation"]


# ----------------------------------------------------------------------------- pipeline windows
@pytest.mark.shared_data
def test_pipeline_window_kernels_match_statsmodels_on_real_data(real):
    """The window math of FactorRiskModel without an engine: SPY and the sector ETFs in
    excess of SPY, one ETF missing on 20% of the rows (so left out), against statsmodels
    OLS per stock on its own rows (rtol 1e-8) and numpy moments."""
    import statsmodels.api as sm

    R, X = real
    R, X = R.to_numpy()[-252:], X.to_numpy()[-252:]
    etfs = X.copy()
    etfs[:60, 4] = np.nan  # listed inside the window: below the 0.9 coverage
    F = fm.stack_factor_returns([etfs[:, 0], *etfs[:, 1:].T], has_market=True)
    np.testing.assert_array_equal(F[:, 1:], etfs[:, 1:] - etfs[:, :1])
    est = fm.estimate_factor_model(R, F, min_factor_coverage=0.9)
    usable = np.arange(10) != 4
    np.testing.assert_array_equal(est.usable, usable)
    assert est.loadings.shape == (R.shape[1], 10) and (est.loadings[:, 4] == 0).all()
    for i in range(R.shape[1]):
        rows = np.isfinite(R[:, i])
        ols = sm.OLS(R[rows, i], sm.add_constant(F[rows][:, usable])).fit()
        np.testing.assert_allclose(est.loadings[i, usable], ols.params[1:], rtol=1e-8,
                                   atol=1e-12)
        np.testing.assert_allclose(est.alpha[i], ols.params[0], rtol=1e-8, atol=1e-14)
        np.testing.assert_allclose(est.specific_variance[i], ols.mse_resid, rtol=1e-8)
        assert est.n_observations[i] == rows.sum()
    mean, cov = fm.factor_moments(F, shrinkage=None)
    np.testing.assert_allclose(mean[usable], F[:, usable].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov[np.ix_(usable, usable)], np.cov(F[:, usable], rowvar=False),
                               rtol=1e-10)
    assert mean[4] == 0 and (cov[4] == 0).all() and (cov[:, 4] == 0).all()


@settings(max_examples=30, deadline=None)
@given(T=st.integers(10, 60), n=st.integers(1, 8), seed=st.integers(0, 2**31 - 1),
       has_market=st.booleans(), n_characteristics=st.integers(0, 2))
def test_stacked_factors_means_and_residuals_equal_a_plain_loop(T, n, seed, has_market,
                                                               n_characteristics):
    rng = np.random.default_rng(seed)
    windows = [rng.normal(size=(T, 1)) for _ in range(int(has_market) + 2 + n_characteristics)]
    X = fm.stack_factor_returns(windows, has_market, has_market, n_characteristics)
    for j, w in enumerate(windows):
        excess = has_market and 0 < j < len(windows) - n_characteristics
        np.testing.assert_array_equal(X[:, j], w[:, 0] - windows[0][:, 0] if excess else w[:, 0])
    returns = rng.normal(size=n)
    returns[rng.random(n) < 0.3] = np.nan
    labels = rng.integers(0, 3, n)
    for code in (None, 0, 1, 2):
        keep = [i for i in range(n) if np.isfinite(returns[i]) and code in (None, labels[i])]
        want = sum(returns[i] for i in keep) / len(keep) if keep else np.nan
        np.testing.assert_allclose(fm.cross_section_mean(returns, labels, code), want,
                                   rtol=1e-12)
    B, c = rng.normal(size=(n, 2)), rng.normal(size=n)
    B[0, 1] = np.nan
    R = rng.normal(size=(T, n))
    R[0, -1] = np.nan
    res = kr.factor_residuals(R, X[:, :2], B, c)
    for t in range(T):
        for i in range(n):
            want = R[t, i] - c[i] - B[i, 0] * X[t, 0] - B[i, 1] * X[t, 1]
            np.testing.assert_allclose(res[t, i], want if i else np.nan, rtol=1e-12,
                                       atol=1e-12)
    with pytest.raises(ValueError, match="needs the market"):
        fm.stack_factor_returns(windows[:2], has_market=False, excess_of_market=True)
