"""Proofs for the Avellaneda-Lee s-score kernel (``zipline_factorarb.kernels.ou``).

The vectorised kernel is checked against a direct per-asset statsmodels fit
of the paper's appendix (OLS of returns on factor returns with an intercept,
cumulated residuals, OLS of X_k on X_{k-1} with an intercept) on real sector
ETF returns and on generated data, to 1e-10; plus NaN handling, the b-outside-
(0, 1) rule and the mean-reversion-speed cut.
"""

import numpy as np
import pytest
import statsmodels.api as sm

from zipline_factorarb.kernels.ou import sscore

SECTORS = ["XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY"]


def reference_sscore(R, F, periods_per_year=252, max_days=30.0):
    """Avellaneda-Lee appendix, one asset at a time, with statsmodels OLS."""
    W, N = R.shape
    out = {k: np.full(N, np.nan) for k in ("s", "kappa", "m", "sigma_eq", "days", "b")}
    out["valid"] = np.zeros(N, dtype=bool)
    for i in range(N):
        F_i = F if F.ndim == 2 else F[:, i, :]
        if np.isnan(R[:, i]).any() or np.isnan(F_i).any():
            continue
        ols = sm.OLS(R[:, i], sm.add_constant(F_i, has_constant="add")).fit()
        X = np.cumsum(ols.resid)
        ar = sm.OLS(X[1:], sm.add_constant(X[:-1], has_constant="add")).fit()
        a, b = ar.params
        out["b"][i] = b
        if not 0.0 < b < 1.0:
            continue
        kappa = -np.log(b) * periods_per_year
        m = a / (1.0 - b)
        sigma_eq = np.sqrt(np.var(ar.resid) / (1.0 - b**2))
        out["kappa"][i] = kappa
        out["m"][i] = m
        out["sigma_eq"][i] = sigma_eq
        out["s"][i] = (X[-1] - m) / sigma_eq
        out["days"][i] = periods_per_year / kappa
        out["valid"][i] = max_days is None or out["days"][i] < max_days
    return out


def check(res, ref, rtol=1e-10):
    for name, ref_name in [
        ("s_score", "s"),
        ("kappa", "kappa"),
        ("m", "m"),
        ("sigma_eq", "sigma_eq"),
        ("mean_reversion_days", "days"),
    ]:
        got, want = getattr(res, name), ref[ref_name]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        ok = ~np.isnan(want)
        # m is a level of the cumulative residual, ~1e-2; s and kappa are O(1-100)
        atol = rtol * np.max(np.abs(want[ok]), initial=0.0) * 1e-2
        np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_array_equal(res.valid, ref["valid"])


@pytest.fixture(scope="module")
def etf_returns(shared_data_dir):
    pd = pytest.importorskip("pandas")
    path = shared_data_dir / "spdr_sector_etfs_daily.csv.gz"
    if not path.exists():
        pytest.skip(f"{path.name} not found in the shared data folder")
    prices = pd.read_csv(path, parse_dates=["date"])
    prices = prices[prices["symbol"].isin(SECTORS + ["SPY"])]
    wide = prices.pivot(index="date", columns="symbol", values="adj_close")
    wide = wide.loc["2005-01-01":, SECTORS + ["SPY"]]
    return wide.pct_change().iloc[1:]  # simple returns, as in the paper


def test_matches_statsmodels_on_real_etfs_vs_spy(etf_returns):
    R_all = etf_returns[SECTORS].to_numpy()
    F_all = etf_returns[["SPY"]].to_numpy()
    n_valid = n_slow = 0
    for end in range(60, len(R_all), 97):  # ~50 windows over 20 years
        R, F = R_all[end - 60 : end], F_all[end - 60 : end]
        res = sscore(R, F)
        ref = reference_sscore(R, F)
        check(res, ref)
        n_valid += res.valid.sum()
        n_slow += (np.isfinite(res.s_score) & ~res.valid).sum()
    # the real windows exercise both outcomes of the 30-day cut
    assert n_valid > 50 and n_slow >= 1


def test_matches_statsmodels_real_two_factors(etf_returns):
    """Shared factors SPY and XLK for the other sectors (K = 2)."""
    cols = [s for s in SECTORS if s != "XLK"]
    R = etf_returns[cols].to_numpy()[-60:]
    F = etf_returns[["SPY", "XLK"]].to_numpy()[-60:]
    check(sscore(R, F), reference_sscore(R, F))


def test_matches_statsmodels_per_asset_factors_generated():
    rng = np.random.default_rng(0)
    W, N, K = 60, 25, 2
    F = rng.normal(0, 0.01, size=(W, N, K))
    beta = rng.normal(1, 0.3, size=(N, K))
    # residuals whose cumulative sum is an OU process of varying speed
    b_true = rng.uniform(0.3, 0.99, size=N)
    X = np.zeros((W, N))
    for k in range(1, W):
        X[k] = b_true * X[k - 1] + rng.normal(0, 0.01, size=N)
    X[:, :3] = _slow_hump(W, 3, rng)  # three slowly reverting names
    eps = np.diff(X, axis=0, prepend=0.0)
    R = np.einsum("wnk,nk->wn", F, beta) + 0.0003 + eps
    res = sscore(R, F)
    ref = reference_sscore(R, F)
    check(res, ref)
    assert res.valid.sum() >= 5 and not res.valid[:3].any()
    # shared factors broadcast per asset give the shared-factor answer
    Fs = F[:, 0, :]
    check(sscore(R, np.repeat(Fs[:, None, :], N, axis=1)), reference_sscore(R, Fs))


def _slow_hump(W, n, rng):
    """Cumulative residuals that drift away and back over the whole window:
    an AR(1) fit gives b close to 1, i.e. mean reversion slower than 30 days."""
    k = np.arange(1, W + 1)
    return 0.05 * np.sin(np.pi * k / W)[:, None] + rng.normal(0, 0.002, size=(W, n))


def test_nan_handling():
    rng = np.random.default_rng(1)
    W, N = 60, 6
    F = rng.normal(0, 0.01, size=(W, 1))
    R = 0.8 * F + rng.normal(0, 0.01, size=(W, N))
    clean = sscore(R, F)
    R2 = R.copy()
    R2[17, 2] = np.nan
    res = sscore(R2, F)
    assert np.isnan(res.s_score[2]) and not res.valid[2]
    assert np.isnan([res.kappa[2], res.m[2], res.sigma_eq[2], res.mean_reversion_days[2]]).all()
    others = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(res.s_score[others], clean.s_score[others])
    np.testing.assert_array_equal(res.valid[others], clean.valid[others])
    # per-asset factors: a NaN factor only affects its own asset
    Fp = np.repeat(F[:, None, :], N, axis=1)
    Fp[3, 4, 0] = np.nan
    res_p = sscore(R, Fp)
    assert np.isnan(res_p.s_score[4]) and not res_p.valid[4]
    np.testing.assert_allclose(res_p.s_score[:4], clean.s_score[:4], rtol=1e-10)
    # shared factors: a NaN factor row invalidates every asset
    F2 = F.copy()
    F2[5, 0] = np.nan
    res_s = sscore(R, F2)
    assert np.isnan(res_s.s_score).all() and not res_s.valid.any()


def test_b_outside_unit_interval_is_invalid():
    rng = np.random.default_rng(2)
    W = 60
    F = rng.normal(0, 0.01, size=(W, 1))
    # asset 0: alternating residuals -> cumulative residual flips sign -> b < 0
    alt = 0.01 * np.where(np.arange(W) % 2 == 0, 1.0, -1.0)
    alt[0] = 0.005
    R = np.column_stack([0.5 * F[:, 0] + alt, 0.5 * F[:, 0] + rng.normal(0, 0.01, W)])
    res = sscore(R, F)
    ref = reference_sscore(R, F)
    assert ref["b"][0] < 0  # statsmodels agrees the AR(1) is not mean-reverting
    assert np.isnan(res.s_score[0]) and not res.valid[0] and np.isnan(res.kappa[0])
    assert np.isfinite(res.s_score[1])
    check(res, ref)


def test_mean_reversion_speed_cut():
    rng = np.random.default_rng(4)
    W, N = 60, 40
    F = rng.normal(0, 0.01, size=(W, 1))
    b_true = np.linspace(0.2, 0.9, N)
    X = np.zeros((W, N))
    for k in range(1, W):
        X[k] = b_true * X[k - 1] + rng.normal(0, 0.01, size=N)
    X[:, ::4] = _slow_hump(W, X[:, ::4].shape[1], rng)
    R = F @ np.ones((1, N)) + np.diff(X, axis=0, prepend=0.0)
    res = sscore(R, F)
    check(res, reference_sscore(R, F))
    fitted = np.isfinite(res.s_score)
    fast = res.kappa > 252.0 / 30.0
    np.testing.assert_array_equal(res.valid, fitted & fast)
    assert (fitted & ~fast).any() and (fitted & fast).any()
    # slow names keep their (finite) score but are not valid
    assert np.isfinite(res.s_score[fitted & ~fast]).all()
    # a looser cut admits them; None disables it
    res60 = sscore(R, F, max_mean_reversion_days=60.0)
    check(res60, reference_sscore(R, F, max_days=60.0))
    assert res60.valid.sum() > res.valid.sum()
    np.testing.assert_array_equal(sscore(R, F, max_mean_reversion_days=None).valid, fitted)
    # mean-reversion time is 1/kappa in periods
    np.testing.assert_allclose(res.mean_reversion_days[fitted], 252.0 / res.kappa[fitted])


def test_center_m_and_xw_zero():
    rng = np.random.default_rng(5)
    W, N = 60, 10
    F = rng.normal(0, 0.01, size=(W, 2))
    R = F @ rng.normal(1, 0.2, size=(2, N)) + rng.normal(0, 0.01, size=(W, N))
    plain = sscore(R, F)
    ok = np.isfinite(plain.s_score)
    # X_W = 0 with an intercept: the standard score is -m / sigma_eq
    np.testing.assert_allclose(plain.s_score[ok], -plain.m[ok] / plain.sigma_eq[ok], rtol=1e-9)
    centred = sscore(R, F, center_m=True)
    m_bar = plain.m[plain.valid].mean()
    np.testing.assert_allclose(
        centred.s_score[ok], -(plain.m[ok] - m_bar) / plain.sigma_eq[ok], rtol=1e-9
    )
    np.testing.assert_array_equal(centred.m, plain.m)


def test_argument_validation():
    with pytest.raises(ValueError, match="too short"):
        sscore(np.zeros((4, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="factor_returns_window"):
        sscore(np.zeros((60, 2)), np.zeros((59, 1)))
    with pytest.raises(ValueError, match="per-asset"):
        sscore(np.zeros((60, 2)), np.zeros((60, 3, 1)))


def test_window_function_fits_the_window_pca_and_leaves_gaps_invalid():
    # one session of the SScore term, without an engine
    from zipline_factorarb.kernels.ou import sscore_window
    from zipline_factorarb.kernels.pca import pca_factors

    rng = np.random.default_rng(5)
    f = rng.normal(0, 0.01, (60, 2))
    r = f @ rng.normal(1, 0.3, (2, 12)) + rng.normal(0, 0.01, (60, 12))
    r[:5, 3] = np.nan
    res = sscore_window(r, None, k=2)
    ref = sscore(r, pca_factors(r, 2).scores)
    np.testing.assert_array_equal(res.valid, ref.valid)
    np.testing.assert_allclose(res.s_score, ref.s_score, rtol=1e-12)
    assert not res.valid[3] and np.isnan(res.s_score[3])
