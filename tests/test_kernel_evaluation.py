"""IC-by-lag and IC-statistics kernels against scipy, statsmodels and plain loops."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from zipline_factorarb.kernels import evaluation as ev


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(6, 40), st.integers(0, 2**31 - 1), st.booleans())
def test_rank_ic_is_spearman(t, n, seed, ties):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(t, n))
    if ties:
        f = np.round(f, 1)
    r = 0.3 * f + rng.normal(size=(t, n))
    f[rng.random((t, n)) < 0.1] = np.nan
    ic = ev.rank_ic(f, r, min_assets=3)
    for i in range(t):
        ok = ~np.isnan(f[i])
        if ok.sum() < 3 or np.unique(f[i, ok]).size < 2:
            continue
        expected = spearmanr(f[i, ok], r[i, ok]).statistic
        assert ic[i] == pytest.approx(expected, abs=1e-12)


def _spearman_or_nan(a, b, min_assets):
    ok = ~np.isnan(a) & ~np.isnan(b)
    if ok.sum() < min_assets or np.unique(a[ok]).size < 2 or np.unique(b[ok]).size < 2:
        return np.nan
    return spearmanr(a[ok], b[ok]).statistic


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(5, 30), st.integers(0, 6), st.integers(0, 2**31 - 1),
       st.lists(st.integers(0, 6), min_size=1, max_size=4), st.booleans())
def test_lag_ic_is_spearman_at_each_lag(t, n, extra, seed, lags, ties):
    """A plain loop: factor row t against returns row own[t] + k, scipy's Spearman."""
    rng = np.random.default_rng(seed)
    s = t + extra
    f = rng.normal(size=(t, n))
    if ties:
        f = np.round(f, 1)
    r = rng.normal(size=(s, n))
    f[rng.random((t, n)) < 0.1] = np.nan
    r[rng.random((s, n)) < 0.1] = np.nan
    own = rng.integers(-2, s + 1, size=t)  # some rows fall outside the returns at some lags
    got = ev.lag_ic(f, r, own, lags, min_assets=3)
    assert got.shape == (t, len(lags))
    for i in range(t):
        for j, k in enumerate(lags):
            row = own[i] + k
            if not 0 <= row < s:
                assert np.isnan(got[i, j])
                continue
            expected = _spearman_or_nan(f[i], r[row], 3)
            if np.isnan(expected):  # too few pairs, or one side constant
                assert np.isnan(got[i, j])
            else:
                assert got[i, j] == pytest.approx(expected, abs=1e-12)


def test_lag_ic_finds_the_lag_of_a_planted_signal():
    """Returns two sessions after the own close are the factor: IC 1 at lag 2 only."""
    rng = np.random.default_rng(0)
    t, n = 50, 40
    r = rng.normal(size=(t + 10, n))
    own = np.arange(t) + 3
    f = r[own + 2] * 2.0 + 1.0
    got = ev.lag_ic(f, r, own, [0, 1, 2, 3])
    np.testing.assert_allclose(got[:, 2], 1.0)
    assert np.abs(got[:, [0, 1, 3]].mean(axis=0)).max() < 0.1
    with pytest.raises(ValueError, match="share N"):
        ev.lag_ic(f, r[:, :-1], own, [0])
    with pytest.raises(ValueError, match="own_row"):
        ev.lag_ic(f, r, own[:-1], [0])


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 300), st.integers(0, 12), st.integers(0, 2**31 - 1))
def test_newey_west_matches_statsmodels_hac(n, max_lag, seed):
    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    e = rng.normal(size=n + 1)
    x = 0.1 + e[1:] + 0.6 * e[:-1]  # MA(1): autocorrelated
    lag = min(max_lag, n - 1)
    fit = sm.OLS(x, np.ones(n)).fit(cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False})
    assert ev.newey_west_se(x, lag) == pytest.approx(fit.bse[0], rel=1e-10)
    # plain loop
    d = x - x.mean()
    lrv = sum(d[t] * d[t] for t in range(n)) / n
    for j in range(1, lag + 1):
        lrv += 2 * (1 - j / (lag + 1)) * sum(d[t] * d[t - j] for t in range(j, n)) / n
    assert ev.newey_west_se(x, lag) == pytest.approx(np.sqrt(lrv / n), rel=1e-10)


def test_ic_statistics():
    rng = np.random.default_rng(3)
    ic = rng.normal(0.02, 0.1, size=(400, 2))
    ic[::7, 1] = np.nan
    stats = ev.ic_statistics(ic)
    col = ic[:, 1][~np.isnan(ic[:, 1])]
    assert stats["days"].tolist() == [400, col.size]
    assert stats["mean_ic"][1] == pytest.approx(col.mean())
    assert stats["t_stat"][1] == pytest.approx(col.mean() / col.std(ddof=1) * np.sqrt(col.size))
    assert stats["nw_lags"][0] == ev.newey_west_bandwidth(400) == 5
    assert stats["nw_t_stat"][1] == pytest.approx(col.mean() / ev.newey_west_se(col, 5))
    assert stats["hit_rate"][0] == pytest.approx((ic[:, 0] > 0).mean())
    # with no lags the Newey-West error is the plain one up to ddof
    s0 = ev.ic_statistics(ic[:, 0], max_lag=0)
    assert s0["nw_t_stat"][0] == pytest.approx(s0["t_stat"][0] * np.sqrt(400 / 399))
    empty = ev.ic_statistics(np.full((5, 1), np.nan))
    assert empty["days"][0] == 0 and np.isnan(empty["mean_ic"][0])
