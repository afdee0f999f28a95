"""Signal preparation kernels against plain pandas/scipy computations."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from zipline_factorarb.kernels.signals import (
    blend_scores, expected_returns_from_scores, standardize_scores)


def _reference(values, groups, winsor):
    s = pd.Series(values, dtype=float)
    s[~np.isfinite(s)] = np.nan
    if groups is not None:
        g = pd.Series(groups)
        known = s.notna() & (g >= 0)
        s[known] = s[known] - s[known].groupby(g[known]).transform("mean")
    ok = s.notna()
    z = pd.Series(np.nan, index=s.index)
    if ok.sum() < 2:
        return z.to_numpy()

    def flat(v):  # the kernel's documented rule: rounding-level spread is none
        return v.std(ddof=0) <= 1e-10 * max(v.abs().max(), 1e-300)

    if flat(s[ok]):
        z[ok] = 0.0
        return z.to_numpy()
    z[ok] = stats.zscore(s[ok].to_numpy())
    if winsor is not None:
        clipped = z[ok].clip(-winsor, winsor)
        z[ok] = 0.0 if flat(clipped) else stats.zscore(clipped.to_numpy())
    return z.to_numpy()


finite = st.floats(-1e3, 1e3, allow_nan=False)


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")
@settings(max_examples=200, deadline=None)
@given(arrays(float, st.integers(1, 40), elements=finite | st.just(np.nan)),
       st.integers(0, 4), st.sampled_from([None, 1.5, 3.0]), st.integers(0, 10**6))
def test_standardize_scores_matches_pandas(values, n_groups, winsor, seed):
    rng = np.random.default_rng(seed)
    groups = None if n_groups == 0 else rng.integers(-1, n_groups, size=values.shape[0])
    got = standardize_scores(values, groups, winsor)
    want = _reference(values, groups, winsor)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_scores_are_sector_neutral_and_unit():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200) + np.repeat([5.0, -3.0, 0.0, 10.0], 50)
    g = np.repeat([0, 1, 2, 3], 50)
    z = standardize_scores(x, g, winsor=None)
    assert np.abs(pd.Series(z).groupby(g).mean()).max() < 1e-12
    assert z.std() == pytest.approx(1.0) and z.mean() == pytest.approx(0.0, abs=1e-12)
    z3 = standardize_scores(np.append(x, 1e6), np.append(g, 0), winsor=3.0)
    assert z3.std() == pytest.approx(1.0)  # the outlier is clipped, then re-standardised
    with pytest.raises(ValueError, match="winsor"):
        standardize_scores(x, winsor=0)


def test_blend_uses_the_signals_each_asset_has():
    a = np.array([1.0, -1.0, np.nan, 0.5])
    b = np.array([-1.0, 1.0, 2.0, np.nan])
    out = blend_scores(np.vstack([a, b]), [3.0, 1.0])
    raw = np.array([(3 * 1 - 1) / 4, (-3 + 1) / 4, 2.0, 0.5])
    np.testing.assert_allclose(out, stats.zscore(raw))
    assert np.isnan(blend_scores(np.array([[np.nan, 1.0, 2.0]]))[0])
    with pytest.raises(ValueError, match="weights"):
        blend_scores(np.vstack([a, b]), [1.0, -1.0])


def test_grinold_rule():
    out = expected_returns_from_scores(np.array([1.0, -2.0]), np.array([0.02, 0.01]), 0.05)
    np.testing.assert_allclose(out, [0.001, -0.001])
    with pytest.raises(ValueError, match="shape"):
        expected_returns_from_scores(np.ones(2), np.ones(3), 0.1)
