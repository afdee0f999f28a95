"""Proofs for the weighted least squares residual kernel and its helpers.

References: statsmodels ``WLS`` day by day (real S&P 500 data and generated
cases), the ridge closed form by augmented least squares, pandas for the
volatility weights and style columns.
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zipline_factorarb.kernels import wls as wls_module
from zipline_factorarb.kernels.wls import (
    STYLE_NAMES,
    WLSResult,
    inverse_variance_weights,
    sector_loadings,
    standardize_styles,
    style_factors,
    wls_residuals,
)

HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


# ---------------------------------------------------------------------------
# independent references
# ---------------------------------------------------------------------------


def usable_assets(returns, loadings, weights):
    """Assets that must enter the regression of one day."""
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(returns)
            & np.isfinite(weights)
            & (weights > 0)
            & np.isfinite(loadings).all(axis=1)
        )


def scaled_condition(loadings, weights):
    """cond of Omega'Z Omega scaled to unit diagonal, from the design matrix."""
    design = np.sqrt(weights)[:, None] * loadings
    norms = np.linalg.norm(design, axis=0)
    if loadings.shape[0] < loadings.shape[1] or np.any(norms == 0):
        return np.inf
    return np.linalg.cond(design / norms) ** 2


def statsmodels_day(returns, loadings, weights):
    """statsmodels WLS on the usable assets; residuals NaN for the others."""
    use = usable_assets(returns, loadings, weights)
    fit = sm.WLS(returns[use], loadings[use], weights=weights[use]).fit()
    residuals = np.full(returns.shape, np.nan)
    residuals[use] = fit.resid
    return fit.params, residuals, use


def assert_matches_statsmodels(result, t, returns, loadings, weights, rtol=1e-10):
    params, residuals, use = statsmodels_day(returns, loadings, weights)
    f = result.factor_returns[t]
    scale_f = max(np.abs(params).max(), 1e-300)
    np.testing.assert_allclose(f, params, rtol=rtol, atol=1e-12 * scale_f)
    scale_r = max(np.abs(returns[use]).max(), 1e-300)
    np.testing.assert_allclose(
        result.residuals[t][use], residuals[use], rtol=rtol, atol=1e-12 * scale_r
    )
    assert np.isnan(result.residuals[t][~use]).all()
    assert np.isnan(result.weighted_residuals[t][~use]).all()
    np.testing.assert_array_equal(
        result.weighted_residuals[t][use], weights[use] * result.residuals[t][use]
    )
    assert result.n_assets[t] == use.sum()


def assert_neutral(weighted_residuals, loadings, tol=1e-10, floor=0.0):
    """sum_i R~_i Omega_iA ~ 0 relative to sum_i |R~_i Omega_iA|, every A.

    ``floor`` adds an absolute allowance for near-perfect fits (N close to
    K), where the residuals themselves are rounding noise.
    """
    use = np.isfinite(weighted_residuals)
    products = weighted_residuals[use, None] * loadings[use]
    exposure = np.abs(products.sum(axis=0))
    size = np.abs(products).sum(axis=0)
    assert np.all(exposure <= tol * size + floor + 1e-300), (exposure, size)


# ---------------------------------------------------------------------------
# real data: 505 S&P 500 stocks, GICS sectors, statsmodels day by day
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sp500(shared_data_dir):
    prices = pd.read_csv(
        shared_data_dir / "sp500_stocks_daily_2013_2018.csv.gz",
        parse_dates=["date"],
        usecols=["date", "symbol", "close", "volume"],
    )
    close = prices.pivot(index="date", columns="symbol", values="close")
    volume = prices.pivot(index="date", columns="symbol", values="volume")
    returns = close.pct_change(fill_method=None)
    # The data README lists single-day glitches and one unadjusted split;
    # mask implausible moves instead of trading them.
    returns = returns.mask(returns.abs() > 0.4)
    sectors = pd.read_csv(shared_data_dir / "sp500_stocks_gics_sectors_2018.csv")
    sector_names = sectors.set_index("symbol")["gics_sector"].reindex(close.columns)
    names = sorted(sector_names.dropna().unique())
    codes = sector_names.map({s: i for i, s in enumerate(names)}).fillna(-1)
    return {
        "returns": returns.to_numpy(),
        "dollar_volume": (close * volume).to_numpy(),
        "sector_codes": codes.to_numpy().astype(np.int64),
        "n_sectors": len(names),
    }


@pytest.mark.shared_data
def test_real_data_matches_statsmodels_and_is_neutral(sp500):
    returns = sp500["returns"]
    codes = sp500["sector_codes"]
    assert returns.shape[1] == 505 and sp500["n_sectors"] == 11
    window = 63
    days = np.linspace(window + 1, returns.shape[0] - 1, 50).astype(int)

    R, Omega, Z, labels = [], [], [], None
    for t in days:
        trailing = returns[t - window : t]
        z = inverse_variance_weights(trailing, halflife=20)
        raw = style_factors(
            trailing,
            dollar_volume=sp500["dollar_volume"][t - window : t],
            styles=("beta", "size", "volatility"),
        )
        styles = standardize_styles(raw.styles)
        use = np.isfinite(returns[t]) & np.isfinite(z) & np.isfinite(styles).all(axis=1)
        sectors = sector_loadings(codes, mask=use)
        day_labels = sectors.labels + raw.names
        assert labels is None or day_labels == labels
        labels = day_labels
        R.append(returns[t])
        Omega.append(np.hstack([sectors.loadings, styles]))
        Z.append(z)
    R, Omega, Z = np.array(R), np.array(Omega), np.array(Z)
    # intercept + 10 sector dummies (largest sector is the reference) + 3 styles
    assert Omega.shape == (50, 505, 14)
    assert labels[0] == "intercept" and len(labels) == 14

    result = wls_residuals(R, Omega, Z)
    assert isinstance(result, WLSResult)
    assert result.valid.all()
    assert (result.n_assets > 450).all()
    assert np.all(result.condition_number < 1e4)
    for t in range(len(days)):
        assert_matches_statsmodels(result, t, R[t], Omega[t], Z[t])
        assert_neutral(result.weighted_residuals[t], Omega[t])
        # the intercept makes the weighted residuals sum to zero
        signal = result.weighted_residuals[t]
        assert abs(np.nansum(signal)) <= 1e-10 * np.nansum(np.abs(signal))


# ---------------------------------------------------------------------------
# generated cases (hypothesis)
# ---------------------------------------------------------------------------


@st.composite
def regression_cases(draw, max_days=4, max_assets=30, max_factors=5):
    seed = draw(st.integers(0, 2**32 - 1))
    T = draw(st.integers(1, max_days))
    K = draw(st.integers(1, max_factors))
    N = draw(st.integers(1, max_assets))
    intercept = draw(st.booleans())
    shared_loadings = draw(st.booleans())
    shared_weights = draw(st.booleans())
    nan_rate = draw(st.sampled_from([0.0, 0.05, 0.2]))
    rng = np.random.default_rng(seed)

    loadings = rng.standard_normal((N, K) if shared_loadings else (T, N, K))
    loadings *= rng.uniform(0.1, 10.0, K)  # columns in different units
    if intercept:
        loadings[..., 0] = 1.0
    sigma = rng.uniform(0.005, 0.05, N if shared_weights else (T, N))
    weights = 1.0 / sigma**2
    returns = rng.standard_normal((T, N)) * 0.02

    if nan_rate:
        returns[rng.random((T, N)) < nan_rate] = np.nan
        weights[rng.random(weights.shape) < nan_rate] = np.nan
        weights[rng.random(weights.shape) < nan_rate / 2] = 0.0
        weights[rng.random(weights.shape) < nan_rate / 2] = -1.0
        loadings[rng.random(loadings.shape) < nan_rate / 2] = np.nan
    return returns, loadings, weights


def day_inputs(returns, loadings, weights, t):
    Xt = loadings if loadings.ndim == 2 else loadings[t]
    wt = weights if weights.ndim == 1 else weights[t]
    return returns[t], Xt, wt


@HYPOTHESIS
@given(regression_cases())
def test_generated_cases_match_statsmodels(case):
    returns, loadings, weights = case
    result = wls_residuals(returns, loadings, weights)
    T, N = returns.shape
    K = loadings.shape[-1]
    assert result.factor_returns.shape == (T, K)
    assert result.residuals.shape == result.weighted_residuals.shape == (T, N)
    assert result.condition_number.shape == result.valid.shape == (T,)
    for t in range(T):
        Rt, Xt, wt = day_inputs(returns, loadings, weights, t)
        use = usable_assets(Rt, Xt, wt)
        # excluded assets never get a residual
        assert np.isnan(result.residuals[t][~use]).all()
        assert result.n_assets[t] == use.sum()
        if use.sum() < K:
            # too few assets: NaN and reported, not raised
            assert not result.valid[t]
            assert result.condition_number[t] == np.inf
            assert np.isnan(result.factor_returns[t]).all()
            assert np.isnan(result.residuals[t]).all()
            continue
        cond = scaled_condition(Xt[use], wt[use])
        if cond < 1e8:
            assert result.valid[t]
            np.testing.assert_allclose(result.condition_number[t], cond, rtol=1e-6)
        if not result.valid[t]:
            assert np.isnan(result.factor_returns[t]).all()
            assert np.isnan(result.weighted_residuals[t]).all()
            continue
        assert result.condition_number[t] <= 1e10
        if cond < 1e4:
            assert_matches_statsmodels(result, t, Rt, Xt, wt)
            # floor: machine precision of the weighted returns' own exposure
            floor = 1e-13 * np.abs(wt[use] * Rt[use] @ np.abs(Xt[use])).max()
            assert_neutral(result.weighted_residuals[t], Xt, floor=floor)


@HYPOTHESIS
@given(regression_cases(max_days=1))
def test_single_day_form_equals_batched_form(case):
    returns, loadings, weights = case
    loadings = loadings if loadings.ndim == 2 else loadings[0]
    weights = weights if weights.ndim == 1 else weights[0]
    single = wls_residuals(returns[0], loadings, weights)
    batched = wls_residuals(returns, loadings, weights[None, :])
    assert single.factor_returns.shape == (loadings.shape[1],)
    assert single.residuals.shape == (returns.shape[1],)
    assert np.ndim(single.condition_number) == 0
    for one, many in zip(single, batched):
        np.testing.assert_array_equal(one, many[0])


@HYPOTHESIS
@given(regression_cases(max_days=3), st.integers(0, 2), st.sampled_from(["zero", "copy", "few"]))
def test_singular_day_is_reported_and_isolated(case, bad_day, kind):
    returns, loadings, weights = case
    T, N = returns.shape
    K = loadings.shape[-1]
    bad_day = bad_day % T
    loadings = np.array(np.broadcast_to(loadings, (T, N, K))) if loadings.ndim == 2 else loadings
    baseline = wls_residuals(returns, loadings, weights)

    broken = loadings.copy()
    broken_returns = returns.copy()
    if kind == "zero":  # e.g. a sector with no member that day
        broken[bad_day, :, K - 1] = 0.0
    elif kind == "copy":  # perfectly collinear columns
        if K < 2:
            broken[bad_day, :, 0] = 0.0
        else:
            broken[bad_day, :, K - 1] = 2.0 * broken[bad_day, :, 0]
    else:  # fewer usable assets than factors
        keep = np.arange(N) < K - 1
        broken_returns[bad_day, ~keep] = np.nan
    result = wls_residuals(broken_returns, broken, weights)

    assert not result.valid[bad_day]
    assert result.condition_number[bad_day] > 1e10
    assert np.isnan(result.factor_returns[bad_day]).all()
    assert np.isnan(result.residuals[bad_day]).all()
    assert np.isnan(result.weighted_residuals[bad_day]).all()
    others = np.arange(T) != bad_day
    np.testing.assert_array_equal(result.valid[others], baseline.valid[others])
    for new, old in zip(result[:3], baseline[:3]):
        np.testing.assert_allclose(new[others], old[others], rtol=1e-13, atol=1e-300)


def test_shared_loadings_path_equals_daily_path():
    rng = np.random.default_rng(7)
    T, N, K = 40, 60, 6  # enough days for the large-product path
    loadings = rng.standard_normal((N, K))
    loadings[:, 0] = 1.0
    loadings[3] = np.nan
    returns = rng.standard_normal((T, N)) * 0.02
    returns[rng.random((T, N)) < 0.1] = np.nan
    weights = rng.uniform(100, 5000, (T, N))
    weights[rng.random((T, N)) < 0.05] = 0.0
    weights[5, :] = np.nan  # a day with no usable asset
    shared = wls_residuals(returns, loadings, weights)
    daily = wls_residuals(returns, np.broadcast_to(loadings, (T, N, K)).copy(), weights)
    assert not shared.valid[5] and shared.n_assets[5] == 0
    np.testing.assert_array_equal(shared.valid, daily.valid)
    np.testing.assert_array_equal(shared.n_assets, daily.n_assets)
    for a, b in zip(shared[:4], daily[:4]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    for t in np.flatnonzero(shared.valid):
        assert_matches_statsmodels(shared, t, returns[t], loadings, weights[t])


def test_huge_finite_loadings_count_as_usable_in_both_paths():
    # A row sum overflows to inf although every loading is finite: the asset
    # still counts as usable (same rule as isfinite on each loading), and the
    # overflowing day is reported as ill-posed rather than silently refit.
    rng = np.random.default_rng(6)
    T, N = 20, 10
    X = np.column_stack([np.ones(N), rng.standard_normal(N)])
    X[4] = [1e308, 1e308]
    R = rng.standard_normal((T, N))
    w = np.ones(N)
    for loadings in (X, np.broadcast_to(X, (T, N, 2)).copy()):
        result = wls_residuals(R, loadings, w)
        assert (result.n_assets == N).all()
        assert not result.valid.any() and np.isinf(result.condition_number).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("T", [1, 5, 24])
def test_shared_loadings_equal_the_broadcast_loadings(seed, T):
    # 2-D loadings are used for every day: the same answer as the (T, N, K)
    # array that repeats them, NaN rows (unknown sector) included.
    rng = np.random.default_rng(seed)
    N = 60
    codes = rng.integers(0, 4, N)
    codes[7] = -1  # unknown sector: NaN row in the fixed loadings
    fixed = sector_loadings(codes).loadings  # intercept + 3 dummies
    returns = rng.standard_normal((T, N)) * 0.02
    returns[rng.random((T, N)) < 0.05] = np.nan
    weights = rng.uniform(100, 5000, (T, N))
    weights[rng.random((T, N)) < 0.05] = 0.0
    if T > 2:
        returns[2, 3:] = np.nan  # a day with too few assets
    fixed_before = fixed.copy()
    everything = np.broadcast_to(fixed, (T, N, 4)).copy()
    for ridge in (0.0, 50.0):
        for w in (weights, weights[0]):
            shared = wls_residuals(returns, fixed, w, ridge)
            whole = wls_residuals(returns, everything, w, ridge)
            np.testing.assert_array_equal(shared.valid, whole.valid)
            np.testing.assert_array_equal(shared.n_assets, whole.n_assets)
            for x, y in zip(shared[:4], whole[:4]):
                scale = np.max(np.abs(y[np.isfinite(y)]), initial=0.0)
                np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-13 * scale)
    np.testing.assert_array_equal(fixed, fixed_before)  # input left untouched
    if T > 2:
        assert not shared.valid[2]


def test_nan_asset_fit_equals_fit_on_the_remaining_assets():
    rng = np.random.default_rng(3)
    N, K = 50, 4
    X = np.column_stack([np.ones(N), rng.standard_normal((N, K - 1))])
    w = rng.uniform(1, 10, N)
    R = rng.standard_normal(N)
    R[[1, 7]] = np.nan
    w[11] = np.nan
    w[12] = 0.0
    X[20, 2] = np.nan
    full = wls_residuals(R, X, w)
    keep = np.ones(N, dtype=bool)
    keep[[1, 7, 11, 12, 20]] = False
    subset = wls_residuals(R[keep], X[keep], w[keep])
    np.testing.assert_allclose(full.factor_returns, subset.factor_returns, rtol=1e-12)
    np.testing.assert_allclose(full.residuals[keep], subset.residuals, rtol=1e-10, atol=1e-14)
    assert np.isnan(full.residuals[~keep]).all()
    assert full.n_assets == keep.sum()
    # an excluded asset's own return has no influence at all
    R2 = R.copy()
    R2[12] = 1e6
    np.testing.assert_array_equal(wls_residuals(R2, X, w).factor_returns, full.factor_returns)


def test_batched_solve_failure_falls_back_day_by_day(monkeypatch):
    rng = np.random.default_rng(5)
    T, N, K = 4, 30, 3
    X = rng.standard_normal((T, N, K))
    w = rng.uniform(1, 2, (T, N))
    R = rng.standard_normal((T, N))
    expected = wls_residuals(R, X, w)
    real_solve = np.linalg.solve
    per_day_calls = []

    def solve_failing_on_stacks_and_day_two(a, b):
        if np.ndim(a) == 3:
            raise np.linalg.LinAlgError("Singular matrix")
        per_day_calls.append(len(per_day_calls))
        if len(per_day_calls) == 3:
            raise np.linalg.LinAlgError("Singular matrix")
        return real_solve(a, b)

    monkeypatch.setattr(np.linalg, "solve", solve_failing_on_stacks_and_day_two)
    result = wls_residuals(R, X, w)
    assert len(per_day_calls) == T
    np.testing.assert_array_equal(result.valid, [True, True, False, True])
    assert np.isnan(result.factor_returns[2]).all() and np.isnan(result.residuals[2]).all()
    assert np.isfinite(result.condition_number[2])  # the system itself was fine
    keep = [0, 1, 3]
    for a, b in zip(result[:4], expected[:4]):
        np.testing.assert_allclose(a[keep], b[keep], rtol=1e-12)


def test_orthogonality_formula_on_a_small_example():
    R = np.array([0.01, 0.02, -0.01, 0.00, 0.03])
    Omega = np.array(
        [[1.0, 0.0, 0.3], [1.0, 0.0, -1.2], [1.0, 1.0, 0.5], [1.0, 1.0, 0.1], [1.0, 0.0, 2.0]]
    )
    z = np.array([1.0, 2.0, 1.0, 2.0, 0.5])
    result = wls_residuals(R, Omega, z)
    Z = np.diag(z)
    f = np.linalg.solve(Omega.T @ Z @ Omega, Omega.T @ Z @ R)
    np.testing.assert_allclose(result.factor_returns, f, rtol=1e-13)
    np.testing.assert_allclose(result.residuals, R - Omega @ f, atol=1e-16)
    np.testing.assert_allclose(result.weighted_residuals, Z @ (R - Omega @ f), atol=1e-16)
    np.testing.assert_allclose(Omega.T @ result.weighted_residuals, 0.0, atol=1e-16)
    assert result.valid and result.n_assets == 5


def test_max_condition_flags_ill_posed_days():
    rng = np.random.default_rng(11)
    N = 40
    x = rng.standard_normal(N)
    X = np.column_stack([np.ones(N), x, x + 1e-4 * rng.standard_normal(N)])
    R = rng.standard_normal((1, N))
    w = np.ones(N)
    loose = wls_residuals(R, X, w)
    assert loose.valid[0] and 1e6 < loose.condition_number[0] < 1e10
    strict = wls_residuals(R, X, w, max_condition=1e6)
    assert not strict.valid[0]
    assert strict.condition_number[0] == loose.condition_number[0]
    assert np.isnan(strict.residuals).all()


def test_condition_number_ignores_units_of_loadings_and_weights():
    rng = np.random.default_rng(2)
    N = 30
    X = np.column_stack([np.ones(N), rng.standard_normal((N, 2))])
    R = rng.standard_normal(N)
    w = rng.uniform(1, 3, N)
    base = wls_residuals(R, X, w)
    rescaled = wls_residuals(R, X * np.array([1.0, 1e6, 1e-3]), w * 1e4)
    np.testing.assert_allclose(rescaled.condition_number, base.condition_number, rtol=1e-9)
    np.testing.assert_allclose(rescaled.residuals, base.residuals, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(
        rescaled.factor_returns * np.array([1.0, 1e6, 1e-3]), base.factor_returns, rtol=1e-9
    )


# ---------------------------------------------------------------------------
# ridge
# ---------------------------------------------------------------------------


def ridge_by_augmented_least_squares(R, X, w, ridge, penalised):
    """argmin sum z (R - X f)^2 + ridge * sum_{A penalised} f_A^2 via lstsq."""
    use = usable_assets(R, X, w)
    sw = np.sqrt(w[use])
    prior = np.sqrt(ridge) * np.diag(penalised.astype(float))
    A = np.vstack([sw[:, None] * X[use], prior])
    y = np.concatenate([sw * R[use], np.zeros(X.shape[1])])
    return np.linalg.lstsq(A, y, rcond=None)[0]


@HYPOTHESIS
@given(
    regression_cases(max_days=3),
    st.sampled_from([1e-3, 1.0, 1e3, 1e6]),
    st.booleans(),
)
def test_ridge_matches_augmented_least_squares(case, ridge, explicit_mask):
    returns, loadings, weights = case
    T, N = returns.shape
    K = loadings.shape[-1]
    if explicit_mask:
        mask = np.arange(K) % 2 == 1
        result = wls_residuals(returns, loadings, weights, ridge, ridge_mask=mask)
    else:
        result = wls_residuals(returns, loadings, weights, ridge)
        rows = loadings.reshape(-1, K)
        finite = rows[np.isfinite(rows).all(axis=1)]
        mask = np.ones(K, dtype=bool)
        if len(finite):  # the intercept: constant, non-zero over finite rows
            mask = ~((finite == finite[0]).all(axis=0) & (finite[0] != 0))
    for t in range(T):
        Rt, Xt, wt = day_inputs(returns, loadings, weights, t)
        use = usable_assets(Rt, Xt, wt)
        if not result.valid[t] or result.condition_number[t] > 1e4:
            continue
        assert use.sum() >= K
        f = ridge_by_augmented_least_squares(Rt, Xt, wt, ridge, mask)
        np.testing.assert_allclose(
            result.factor_returns[t], f, rtol=1e-9, atol=1e-12 * np.abs(f).max()
        )
        # orthogonality is replaced by Omega' R~ = ridge * f on penalised columns
        exposure = np.nansum(result.weighted_residuals[t][:, None] * np.where(use[:, None], Xt, 0), 0)
        size = np.nansum(np.abs(result.weighted_residuals[t][:, None] * np.where(use[:, None], Xt, 0)), 0)
        expected = ridge * mask * result.factor_returns[t]
        floor = 1e-13 * np.abs(wt[use] * Rt[use] @ np.abs(Xt[use])).max()
        assert np.all(np.abs(exposure - expected) <= 1e-9 * (size + np.abs(expected)) + floor)


def test_ridge_leaves_the_intercept_unpenalised_by_default():
    rng = np.random.default_rng(4)
    N = 80
    X = np.column_stack([np.ones(N), rng.standard_normal((N, 3))])
    R = 0.05 + 0.01 * rng.standard_normal(N)  # a large common (intercept) move
    w = rng.uniform(100, 1000, N)
    ridge = 0.5 * np.trace((X * w[:, None]).T @ X) / 4
    result = wls_residuals(R, X, w, ridge)
    expected = ridge_by_augmented_least_squares(R, X, w, ridge, np.array([False, True, True, True]))
    everything = ridge_by_augmented_least_squares(R, X, w, ridge, np.ones(4, dtype=bool))
    np.testing.assert_allclose(result.factor_returns, expected, rtol=1e-10)
    assert abs(everything[0] - expected[0]) > 1e-3  # the choice matters here
    # still exactly neutral to the unpenalised intercept: signal sums to zero
    assert abs(result.weighted_residuals.sum()) <= 1e-10 * np.abs(result.weighted_residuals).sum()
    # and shrinks the penalised factor returns toward zero
    plain = wls_residuals(R, X, w)
    assert np.linalg.norm(result.factor_returns[1:]) < 0.9 * np.linalg.norm(plain.factor_returns[1:])


def test_ridge_zero_is_plain_wls_and_ridge_solves_an_absent_sector_day():
    rng = np.random.default_rng(8)
    T, N = 3, 40
    codes = rng.integers(0, 4, N)
    X = sector_loadings(codes, reference="first").loadings  # intercept + 3 dummies
    X = np.broadcast_to(X, (T, N, 4)).copy()
    R = rng.standard_normal((T, N)) * 0.02
    w = rng.uniform(100, 1000, (T, N))
    plain = wls_residuals(R, X, w)
    for a, b in zip(plain, wls_residuals(R, X, w, 0.0)):
        np.testing.assert_array_equal(a, b)

    w[1, codes == 3] = np.nan  # sector 3 has no usable member on day 1
    broken = wls_residuals(R, X, w)
    assert not broken.valid[1] and broken.condition_number[1] == np.inf
    ridged = wls_residuals(R, X, w, 1e-2)
    assert ridged.valid.all()
    assert ridged.factor_returns[1, 3] == 0.0
    f = ridge_by_augmented_least_squares(R[1], X[1, :, :3], w[1], 1e-2, np.array([False, True, True]))
    np.testing.assert_allclose(ridged.factor_returns[1, :3], f, rtol=1e-10)


# ---------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "returns_shape, loadings_shape, weights_shape, match",
    [
        ((2, 3, 4), (3, 2), (3,), r"returns must have shape \(N,\) or \(T, N\); got shape \(2, 3, 4\)"),
        ((5, 10), (9, 3), (10,), r"loadings .* N = 10 .* got shape \(9, 3\)"),
        ((5, 10), (4, 10, 3), (10,), r"loadings .* got shape \(4, 10, 3\)"),
        ((10,), (1, 10, 3), (10,), r"loadings must have shape \(N, K\) = \(10, K\)"),
        ((5, 10), (10,), (10,), r"loadings must have shape .* got shape \(10,\)"),
        ((5, 10), (10, 0), (10,), r"loadings must have at least one factor"),
        ((5, 10), (10, 3), (9,), r"weights .* N = 10 .* got shape \(9,\)"),
        ((5, 10), (10, 3), (4, 10), r"weights must have shape .* \(5, 10\) .* got shape \(4, 10\)"),
        ((10,), (10, 3), (1, 10), r"weights must have shape \(N,\) = \(10,\)"),
    ],
)
def test_shape_errors_name_the_parameter(returns_shape, loadings_shape, weights_shape, match):
    with pytest.raises(ValueError, match=match):
        wls_residuals(np.zeros(returns_shape), np.zeros(loadings_shape), np.ones(weights_shape))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"ridge": -1.0}, ValueError, "ridge must be >= 0"),
        ({"ridge": np.nan}, ValueError, "ridge must be finite"),
        ({"ridge": "a"}, TypeError, "ridge must be a number"),
        ({"ridge": 1.0, "ridge_mask": np.ones(2, bool)}, ValueError,
         r"ridge_mask .* \(K,\) = \(3,\)"),
        ({"ridge": 1.0, "ridge_mask": np.ones(3)}, ValueError,
         r"ridge_mask must be a boolean array"),
        ({"max_condition": 0.5}, ValueError, "max_condition must be > 1"),
    ],
)
def test_parameter_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        wls_residuals(np.zeros(10), np.ones((10, 3)), np.ones(10), **kwargs)


def test_empty_cross_section_and_all_nan_day_do_not_raise():
    result = wls_residuals(np.full((2, 5), np.nan), np.ones((5, 1)), np.ones(5))
    assert not result.valid.any()
    assert (result.n_assets == 0).all()
    assert np.isinf(result.condition_number).all()
    zero_days = wls_residuals(np.zeros((0, 5)), np.ones((5, 2)), np.ones(5))
    assert zero_days.factor_returns.shape == (0, 2) and zero_days.residuals.shape == (0, 5)


# ---------------------------------------------------------------------------
# inverse_variance_weights
# ---------------------------------------------------------------------------


def returns_window_with_gaps(seed, W=60, N=40):
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.005, 0.05, N)
    window = rng.standard_normal((W, N)) * sigma
    window[rng.random((W, N)) < 0.1] = np.nan
    window[: W - 5, 0] = np.nan  # too short a history
    window[:, 1] = 0.0  # stale price: no volatility estimate
    return window


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lookback", [20, 60])
def test_lookback_weights_match_pandas(seed, lookback):
    window = returns_window_with_gaps(seed)
    min_periods = 10
    z = inverse_variance_weights(window, lookback=lookback, min_periods=min_periods)
    frame = pd.DataFrame(window).iloc[-lookback:]
    sigma = frame.std().where(frame.count() >= min_periods)
    raw = 1.0 / sigma**2
    raw = raw.where(np.isfinite(raw))
    expected = np.minimum(raw, raw.quantile(0.95))
    np.testing.assert_allclose(z, expected.to_numpy(), rtol=1e-12)
    assert np.isnan(z[0]) and np.isnan(z[1])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("halflife", [5.0, 20.0])
def test_ewm_weights_match_pandas(seed, halflife):
    window = returns_window_with_gaps(seed)
    z = inverse_variance_weights(window, halflife=halflife, min_periods=10, cap_quantile=None)
    sigma = pd.DataFrame(window).ewm(halflife=halflife, min_periods=10).std().iloc[-1]
    expected = (1.0 / sigma**2).where(sigma > 0)
    np.testing.assert_allclose(z, expected.to_numpy(), rtol=1e-10)
    capped = inverse_variance_weights(window, halflife=halflife, min_periods=10, cap_quantile=0.8)
    np.testing.assert_allclose(capped, np.minimum(expected, expected.quantile(0.8)), rtol=1e-10)


def test_weight_cap_property():
    rng = np.random.default_rng(9)
    N = 200
    window = rng.standard_normal((60, N)) * rng.uniform(0.002, 0.05, N)
    raw = inverse_variance_weights(window, lookback=60, cap_quantile=None)
    np.testing.assert_allclose(raw, 1.0 / window.var(axis=0, ddof=1), rtol=1e-12)
    capped = inverse_variance_weights(window, lookback=60, cap_quantile=0.95)
    cap = np.quantile(raw, 0.95)
    assert capped.max() == pytest.approx(cap, rel=1e-14)
    below = raw <= cap
    np.testing.assert_array_equal(capped[below], raw[below])
    assert np.all(capped[~below] == capped.max())
    assert (~below).sum() == 10  # linear interpolation at 0.95 * 199 = 189.05
    # the ordering of the weights is kept (ties only at the cap)
    assert np.all(np.diff(capped[np.argsort(raw)]) >= 0)


def test_batched_weights_equal_per_window():
    rng = np.random.default_rng(12)
    windows = rng.standard_normal((5, 30, 25)) * 0.02
    windows[rng.random(windows.shape) < 0.1] = np.nan
    windows[2] = np.nan  # a day with no data at all
    for kwargs in ({"lookback": 20}, {"halflife": 10}):
        batched = inverse_variance_weights(windows, **kwargs)
        assert batched.shape == (5, 25)
        for t in range(5):
            np.testing.assert_array_equal(batched[t], inverse_variance_weights(windows[t], **kwargs))
    assert np.isnan(batched[2]).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of lookback and halflife"),
        ({"lookback": 10, "halflife": 5}, "exactly one of lookback and halflife"),
        ({"lookback": 100}, r"lookback \(100\) exceeds the number of rows W = 30"),
        ({"lookback": 1}, "lookback must be >= 2"),
        ({"halflife": -1}, "halflife must be > 0"),
        ({"lookback": 10, "cap_quantile": 1.5}, r"cap_quantile must be > 0 and <= 1"),
        ({"lookback": 10, "min_periods": 1}, "min_periods must be >= 2"),
    ],
)
def test_weight_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        inverse_variance_weights(np.zeros((30, 4)), **kwargs)


# ---------------------------------------------------------------------------
# sector_loadings
# ---------------------------------------------------------------------------


def test_sector_loadings_structure_and_full_rank():
    codes = np.array([3, 3, 5, 7, 7, 7, -1, 5, 9, 3, 7])
    sectors = sector_loadings(codes)
    # sector 7 has the most members and is the reference
    assert sectors.labels == ("intercept", "sector_3", "sector_5", "sector_9")
    X = sectors.loadings
    assert X.shape == (11, 4) and X.dtype == np.float64
    assert np.isnan(X[6]).all()
    known = codes >= 0
    np.testing.assert_array_equal(X[known, 0], 1.0)
    np.testing.assert_array_equal(X[known, 1], codes[known] == 3)
    np.testing.assert_array_equal(X[codes == 7, 1:], 0.0)
    assert np.linalg.matrix_rank(X[known]) == 4

    # intercept=False: one dummy per present sector, rows sum to one
    dummies = sector_loadings(codes, intercept=False)
    assert dummies.labels == ("sector_3", "sector_5", "sector_7", "sector_9")
    np.testing.assert_array_equal(dummies.loadings[known].sum(axis=1), 1.0)
    assert np.linalg.matrix_rank(dummies.loadings[known]) == 4

    first = sector_loadings(codes, reference="first")
    assert first.labels == ("intercept", "sector_5", "sector_7", "sector_9")
    given = sector_loadings(codes, reference=9)
    assert given.labels == ("intercept", "sector_3", "sector_5", "sector_7")
    absent = sector_loadings(codes, reference=4)  # not present: falls back to largest
    assert absent.labels == sectors.labels


def test_sector_loadings_only_present_sectors_get_columns():
    codes = np.array([0, 0, 1, 1, 2, 2, 2])
    mask = np.array([True, True, False, False, True, True, True])  # sector 1 all missing
    sectors = sector_loadings(codes, mask=mask)
    assert sectors.labels == ("intercept", "sector_0")
    assert np.isnan(sectors.loadings[2:4]).all()
    assert np.linalg.matrix_rank(sectors.loadings[mask]) == 2
    nan_codes = sector_loadings(np.array([0.0, np.nan, 1.0, 1.0]))
    assert nan_codes.labels == ("intercept", "sector_0")
    assert np.isnan(nan_codes.loadings[1]).all()
    with pytest.raises(ValueError, match="sector_codes must have shape"):
        sector_loadings(np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="reference must be"):
        sector_loadings(codes, reference="biggest")


def test_residuals_do_not_depend_on_the_sector_parametrisation():
    rng = np.random.default_rng(13)
    N = 120
    codes = rng.integers(0, 6, N)
    codes[:4] = -1
    R = rng.standard_normal(N) * 0.02 + 0.01 * codes
    w = rng.uniform(100, 2000, N)
    results = [
        wls_residuals(R, sector_loadings(codes, **kwargs).loadings, w)
        for kwargs in ({}, {"reference": "first"}, {"reference": 4}, {"intercept": False})
    ]
    for other in results[1:]:
        np.testing.assert_allclose(other.residuals, results[0].residuals, rtol=1e-10, atol=1e-15)
    # with sectors only, each sector's weighted residuals sum to zero
    signal = results[0].weighted_residuals
    for s in range(6):
        members = codes == s
        assert abs(signal[members].sum()) <= 1e-10 * np.abs(signal[members]).sum()


# ---------------------------------------------------------------------------
# standardize_styles
# ---------------------------------------------------------------------------


def test_standardize_styles_mean_zero_std_one_and_winsorised():
    rng = np.random.default_rng(14)
    raw = rng.standard_normal((300, 3)) * [1.0, 50.0, 0.01] + [0.0, 100.0, -3.0]
    raw[0, 0] = 40.0  # large outliers
    raw[1, 0] = -25.0
    raw[5:9, 1] = np.nan
    z = standardize_styles(raw)
    finite = np.isfinite(z)
    np.testing.assert_array_equal(finite, np.isfinite(raw))
    for s in range(3):
        col = z[finite[:, s], s]
        assert abs(col.mean()) < 1e-14
        assert col.std() == pytest.approx(1.0, rel=1e-13)
        assert np.abs(col).max() <= 3.0 + 1e-8
    # independent rendering of the documented rule: standardise, then clip
    # and re-standardise until nothing is beyond 3 standard deviations
    x = raw[:, 0]
    expected = (x - x.mean()) / x.std()
    rounds = 0
    while np.abs(expected).max() > 3.0 + 1e-8:
        clipped = np.clip(expected, -3.0, 3.0)
        expected = (clipped - clipped.mean()) / clipped.std()
        rounds += 1
    assert rounds > 2  # one pass would leave the outlier near 7 sigma
    np.testing.assert_allclose(z[:, 0], expected, rtol=1e-12, atol=1e-15)
    assert z[0, 0] == pytest.approx(3.0, abs=1e-6)
    unclipped = standardize_styles(raw, winsor=None)
    assert unclipped[0, 0] > 10
    # standardising is monotone within a column
    order = np.argsort(raw[:, 2])
    assert np.all(np.diff(z[order, 2]) >= 0)
    with pytest.raises(ValueError, match="winsor must be a number > 1"):
        standardize_styles(raw, winsor=0.5)


def test_standardize_styles_weighted_mean_and_degenerate_columns():
    rng = np.random.default_rng(15)
    raw = rng.standard_normal((100, 2))
    raw[:, 1] = 4.2  # constant: no information
    cap = rng.lognormal(size=100)
    z = standardize_styles(raw, weights=cap, winsor=None)
    assert abs(np.sum(cap * z[:, 0]) / cap.sum()) < 1e-14
    assert np.sqrt(np.mean(z[:, 0] ** 2)) == pytest.approx(1.0, rel=1e-13)
    assert np.isnan(z[:, 1]).all()
    batched = standardize_styles(np.stack([raw, raw * 2 + 1]), weights=np.stack([cap, cap]), winsor=None)
    np.testing.assert_allclose(batched[0], z, rtol=1e-13)
    np.testing.assert_allclose(batched[1], z, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match=r"weights must have shape \(100,\)"):
        standardize_styles(raw, weights=np.ones(99))


# ---------------------------------------------------------------------------
# style_factors
# ---------------------------------------------------------------------------


def test_style_factors_match_direct_computations():
    rng = np.random.default_rng(16)
    W, N = 260, 30
    market = rng.standard_normal(W) * 0.01
    beta_true = rng.uniform(0.5, 1.5, N)
    returns = beta_true * market[:, None] + rng.standard_normal((W, N)) * 0.01
    prices = 100.0 * np.vstack([np.ones(N), np.cumprod(1.0 + returns, axis=0)])  # (W + 1, N)
    dollar_volume = rng.uniform(1e6, 1e8, (W, N))
    cap = rng.uniform(1e9, 1e11, N)

    out = style_factors(returns, market_returns=market, dollar_volume=dollar_volume)
    assert out.names == STYLE_NAMES
    got = dict(zip(out.names, out.styles.T))
    frame = pd.DataFrame(returns[-252:])
    m = pd.Series(market[-252:])
    np.testing.assert_allclose(got["beta"], frame.apply(lambda c: c.cov(m) / m.var()), rtol=1e-10)
    np.testing.assert_allclose(got["size"], np.log(dollar_volume.mean(axis=0)), rtol=1e-12)
    t = W  # index of the last price
    np.testing.assert_allclose(got["momentum"], prices[t - 21] / prices[t - 252] - 1, rtol=1e-10)
    np.testing.assert_allclose(got["reversal"], prices[t] / prices[t - 21] - 1, rtol=1e-10)
    np.testing.assert_allclose(got["volatility"], pd.DataFrame(returns[-63:]).std(), rtol=1e-12)

    with_cap = style_factors(returns, market_cap=cap, styles=["size", "beta"])
    assert with_cap.names == ("size", "beta")
    np.testing.assert_allclose(with_cap.styles[:, 0], np.log(cap), rtol=1e-14)
    equal_weighted = pd.Series(returns[-252:].mean(axis=1))
    np.testing.assert_allclose(
        with_cap.styles[:, 1],
        frame.apply(lambda c: c.cov(equal_weighted) / equal_weighted.var()),
        rtol=1e-10,
    )


def test_style_factors_missing_data_and_selection():
    rng = np.random.default_rng(17)
    returns = rng.standard_normal((100, 6)) * 0.01
    returns[:, 0] = np.nan
    returns[::2, 1] = np.nan  # exactly half the rows
    returns[::3, 2] = np.nan
    out = style_factors(returns)
    assert out.names == ("beta", "reversal", "volatility")  # no size data, window < 252
    assert np.isnan(out.styles[0]).all()
    assert np.isfinite(out.styles[2]).all()
    kept = returns[-63:, 2]
    np.testing.assert_allclose(out.styles[2, 2], np.nanstd(kept, ddof=1), rtol=1e-12)
    reversal = np.prod(1 + np.nan_to_num(returns[-21:, 2])) - 1
    np.testing.assert_allclose(out.styles[2, 1], reversal, rtol=1e-12)
    strict = style_factors(returns, styles=("volatility",), min_coverage=0.9)
    assert np.isnan(strict.styles[1:3, 0]).all() and np.isfinite(strict.styles[3:, 0]).all()

    with pytest.raises(ValueError, match="unknown style"):
        style_factors(returns, styles=("value",))
    with pytest.raises(ValueError, match="'size' needs market_cap or dollar_volume"):
        style_factors(returns, styles=("size",))
    with pytest.raises(ValueError, match="'momentum' needs at least momentum_window = 252"):
        style_factors(returns, styles=("momentum",))
    with pytest.raises(ValueError, match=r"market_returns must have shape \(W,\) = \(100,\)"):
        style_factors(returns, market_returns=np.zeros(99))


def test_kernels_module_is_pure_numpy():
    # numpy and the standard library only; relative imports only of sibling
    # kernels and the package's checks module (itself numpy only)
    import ast
    import inspect
    import subprocess
    import sys

    from zipline_factorarb.kernels import wls_window as window_module

    for module in (wls_module, window_module):
        tree = ast.parse(inspect.getsource(module))
        imported, relative = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level:
                relative.add((node.level, node.module))
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert imported <= {"numpy", "typing", "__future__", "dataclasses", "warnings"}
        assert all(level == 1 or (level, name) == (2, "checks") for level, name in relative)
    code = ("import sys, zipline_factorarb.kernels.wls_window; "
            "print(sorted(m for m in ('zipline', 'pandas', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_batched_days_equal_one_day_at_a_time():
    # (T, N, K) loadings whose intercept and sector columns repeat every day
    # and whose style columns change: the batched answer is that of solving
    # each day alone (the pipeline factor's form).
    rng = np.random.default_rng(21)
    T, N = 40, 80
    codes = rng.integers(0, 5, N)
    sectors = sector_loadings(codes).loadings  # intercept + 4 dummies
    styles = rng.standard_normal((T, N, 2))
    X = np.concatenate([styles[:, :, :1], np.broadcast_to(sectors, (T, N, 5)),
                        styles[:, :, 1:]], axis=2)
    R = rng.standard_normal((T, N)) * 0.02
    R[rng.random((T, N)) < 0.05] = np.nan
    w = rng.uniform(100, 5000, (T, N))

    def plain(loadings, **kwargs):
        days = [wls_residuals(R[t], loadings[t], w[t], **kwargs) for t in range(T)]
        return WLSResult(*(np.array([d[i] for d in days]) for i in range(6)))

    for ridge in (0.0, 30.0):
        expected = plain(X, ridge=ridge)
        result = wls_residuals(R, X, w, ridge)
        for a, b in zip(result, expected):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    X2 = X.copy()
    X2[7, 3, 2] = np.nan  # one asset's loading missing on one day only
    result = wls_residuals(R, X2, w)
    np.testing.assert_allclose(result.residuals, plain(X2).residuals, rtol=1e-10, atol=1e-13)
    assert np.isnan(result.residuals[7, 3])


# ---------------------------------------------------------------------------
# neutralize_weights: the nearest factor-neutral book
# ---------------------------------------------------------------------------


def _kkt_nearest_neutral(w0, X):
    """min ||w - w0||^2 s.t. X' w = 0 from its KKT system (independent of lstsq)."""
    n = len(w0)
    q, r = np.linalg.qr(X)
    keep = np.abs(np.diag(r)) > 1e-10 * np.abs(np.diag(r)).max()
    A = q[:, keep]  # orthonormal basis of the column space: same constraint set
    k = A.shape[1]
    kkt = np.block([[np.eye(n), A], [A.T, np.zeros((k, k))]])
    rhs = np.concatenate([w0, np.zeros(k)])
    return np.linalg.solve(kkt, rhs)[:n]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(10, 60), st.integers(1, 6), st.integers(0, 2**32 - 1),
       st.booleans())
def test_neutralize_weights_is_the_constrained_least_squares(n, k, seed, collinear):
    from zipline_factorarb.kernels.wls import neutralize_weights

    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=n)
    X = rng.normal(size=(n, k))
    if collinear and k > 1:
        X[:, -1] = X[:, 0] - 2 * X[:, 1 % k]  # rank-deficient loadings are fine
    w = neutralize_weights(w0, X)
    scale = np.abs(w0).sum()
    assert np.abs(X.T @ w).max() <= 1e-10 * scale * np.abs(X).max()
    np.testing.assert_allclose(w, _kkt_nearest_neutral(w0, X), rtol=1e-9, atol=1e-12 * scale)
    # a projection: neutralising again changes nothing
    np.testing.assert_allclose(neutralize_weights(w, X), w, rtol=1e-9, atol=1e-12 * scale)


def test_neutralize_weights_sector_book_and_errors():
    from zipline_factorarb.kernels.wls import neutralize_weights

    # intercept + two sector dummies: each sector nets to zero, the closed
    # form is "subtract each sector's mean weight"
    w0 = np.array([0.3, 0.1, -0.2, 0.25, -0.05, -0.4])
    sector = np.array([0, 0, 0, 1, 1, 1])
    X = np.column_stack([np.ones(6), sector == 0, sector == 1]).astype(float)
    expected = w0 - np.array([w0[sector == s].mean() for s in sector])
    np.testing.assert_allclose(neutralize_weights(w0, X), expected, atol=1e-15)
    # one name per factor: no neutral book exists
    assert not neutralize_weights(w0[:3], np.eye(3)).any()
    with pytest.raises(ValueError, match="shape"):
        neutralize_weights(w0, X[:5])
    with pytest.raises(ValueError, match="finite"):
        neutralize_weights(np.r_[w0[:5], np.nan], X)


# ---------------------------------------------------------------------------
# one session of the WLSResidual recipe (kernels.wls_window), no engine
# ---------------------------------------------------------------------------


def test_window_function_neutrality_and_ridge():
    from zipline_factorarb.kernels.wls_window import factor_neutrality, wls_window

    rng = np.random.default_rng(3)
    W, N = 80, 60
    returns = rng.standard_normal((W, N)) * rng.uniform(0.005, 0.03, N)
    returns[rng.random((W, N)) < 0.02] = np.nan
    codes = rng.integers(0, 5, N) * 5 + 10
    codes[:2] = -1
    plain = wls_window(returns, codes, styles=("reversal", "volatility"))
    assert plain.valid and plain.labels[0] == "intercept" and plain.labels[-1] == "volatility"
    exposures, relative = factor_neutrality(plain.weighted_residuals, plain.loadings)
    assert np.all(relative < 1e-13) and plain.neutrality < 1e-13
    assert np.isnan(plain.weighted_residuals[:2]).all()
    # sector returns: one value per sector, the members' fitted sector level
    for code in np.unique(codes[codes >= 0]):
        members = plain.sector_returns[codes == code]
        assert np.isfinite(members).all() and np.unique(members).size == 1
    ridged = wls_window(returns, codes, styles=("reversal", "volatility"), ridge=0.5)
    assert ridged.neutrality > 1e-6
    # the intercept is not penalised: weighted residuals still sum to zero
    assert abs(np.nansum(ridged.weighted_residuals)) < 1e-9 * np.nansum(
        np.abs(ridged.weighted_residuals))
    with pytest.raises(ValueError, match="need at least 64"):
        wls_window(returns[:10], codes, styles=("volatility",))
    with pytest.raises(ValueError, match="sector_codes are needed"):
        wls_window(returns, sector=True)
    too_few = wls_window(returns[:, 2:5], np.array([10, 15, 20]), styles=("volatility",))
    assert not too_few.valid and np.isnan(too_few.weighted_residuals).all()
    assert np.isnan(too_few.neutrality)


def test_window_result_gives_sector_codes_and_the_reference_sector():
    from zipline_factorarb.kernels.wls_window import wls_window

    rng = np.random.default_rng(5)
    W, N = 62, 30
    returns = rng.standard_normal((W, N)) * 0.01
    codes = np.array([10] * 12 + [20] * 8 + [45] * 7 + [-1] * 3)
    returns[-1, 0] = np.nan  # not in the regression
    result = wls_window(returns, codes)
    assert result.labels == ("intercept", "sector_20", "sector_45")
    assert result.reference_sector == 10.0  # the largest sector
    expected = np.where(np.arange(N) == 0, np.nan, np.where(codes >= 0, codes, np.nan))
    np.testing.assert_array_equal(result.sector_codes, expected)
    no_intercept = wls_window(returns, codes, intercept=False)
    assert np.isnan(no_intercept.reference_sector)
    assert no_intercept.labels == ("sector_10", "sector_20", "sector_45")
    without = wls_window(returns, sector=False)
    assert without.sector_codes is None and np.isnan(without.reference_sector)


def test_scale_free_ridge_is_a_fraction_of_the_mean_normal_diagonal():
    from zipline_factorarb.kernels.wls import scale_free_ridge

    rng = np.random.default_rng(8)
    N, K = 40, 4
    X = rng.standard_normal((N, K)) * [1.0, 10.0, 0.1, 3.0]
    z = rng.uniform(50, 500, N)
    X[3] = np.nan  # left out
    z[5] = np.nan  # left out
    use = np.isfinite(X).all(axis=1) & np.isfinite(z)
    gram = X[use].T @ np.diag(z[use]) @ X[use]
    assert np.isclose(scale_free_ridge(0.3, X, z), 0.3 * np.trace(gram) / K, rtol=1e-12)
    assert scale_free_ridge(0.0, X, z) == 0.0
    # scale-free: the same fraction whatever the units of loadings and weights
    lam = scale_free_ridge(0.3, X, z)
    assert np.isclose(scale_free_ridge(0.3, X * 7.0, z * 0.01), lam * 49 * 0.01, rtol=1e-12)


def test_sector_returns_and_reference_without_parsing_labels():
    # the kernel reads each sector's return off the loadings block; the
    # reference here parses the labels, as the adapter once did
    from zipline_factorarb.kernels.wls_window import raw_styles, wls_window

    rng = np.random.default_rng(13)
    W, N = 70, 45
    returns = rng.standard_normal((W, N)) * 0.01
    codes = rng.choice([10, 15, 20, 45], N, p=[0.4, 0.3, 0.2, 0.1])
    codes[:3] = -1
    returns[-1, 5] = np.nan  # its sector's value is still given to it
    for intercept in (True, False):
        res = wls_window(returns, codes, intercept=intercept, styles=("volatility",))
        f = dict(zip(res.labels, res.factor_returns))
        base = f.get("intercept", 0.0)
        for code in (10, 15, 20, 45):
            expected = base + f.get(f"sector_{code}", 0.0)
            np.testing.assert_allclose(res.sector_returns[codes == code], expected,
                                       rtol=1e-12, atol=1e-15)
        assert np.isnan(res.sector_returns[:3]).all()
        dummies = {int(label[len("sector_"):]) for label in res.labels
                   if label.startswith("sector_")}
        if intercept:
            assert dummies == {15, 20, 45} and res.reference_sector == 10.0
        else:
            assert dummies == {10, 15, 20, 45} and np.isnan(res.reference_sector)
    # raw styles are the style kernel's columns, NaN outside the mask
    from zipline_factorarb.kernels.wls_window import WLSSettings

    settings = WLSSettings(styles=("reversal", "volatility"), sector=False)
    mask = np.arange(N) % 4 != 0
    raw = raw_styles(returns[:-1], settings, mask=mask)
    ref = style_factors(returns[:-1], styles=("reversal", "volatility")).styles
    np.testing.assert_array_equal(raw[mask], ref[mask])
    assert np.isnan(raw[~mask]).all()


def test_settings_take_the_deprecated_pca_components_and_reject_unknown_options():
    from zipline_factorarb.kernels.wls_window import WLSSettings

    with pytest.warns(DeprecationWarning, match="use components"):
        old = WLSSettings.from_options({"pca_components": 3, "sector": False})
    assert old == WLSSettings(components=3, sector=False) and old.pca_components == 3
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['k'\]"):
        WLSSettings.from_options({"k": 3})
    with pytest.raises(TypeError, match="components must be an integer"):
        WLSSettings(components=2.0)
    with pytest.raises(ValueError, match="components must be >= 0"):
        WLSSettings(components=-1)
