"""Factor-evaluation kernels against scipy and plain loops."""

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


def test_quantiles_turnover_and_autocorrelation():
    f = np.array([[1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10],
                  [10.0, 9, 8, 7, 6, 5, 4, 3, 2, 1]])
    labels = ev.quantile_labels(f, 5)
    np.testing.assert_array_equal(labels[0], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    np.testing.assert_array_equal(labels[1], labels[0][::-1])
    r = np.tile(np.arange(10.0), (2, 1))
    means = ev.quantile_mean_returns(labels, r, 5)
    np.testing.assert_allclose(means[0], [0.5, 2.5, 4.5, 6.5, 8.5])
    turnover = ev.quantile_turnover(labels, 4)
    assert np.isnan(turnover[0]) and turnover[1] == 1.0
    ac = ev.rank_autocorrelation(f)
    assert ac[1] == pytest.approx(-1.0)
    nan_row = np.array([[np.nan, 1.0, 2.0]])
    assert ev.quantile_labels(nan_row, 2)[0, 0] == -1
