"""``pipeline.signals.expected_alphas``: Grinold's rule per horizon, and its argument checks."""

import numpy as np
import pandas as pd
import pytest

from zipline_factorarb.pipeline.signals import PREFIX, expected_alphas


def _day():
    frame = pd.DataFrame({PREFIX + "volatility": [0.01, 0.02, np.nan]}, index=list("abc"))
    scores = pd.Series([1.5, -0.5, 2.0], index=list("abc"))
    return frame, scores


@pytest.mark.parametrize("horizon", [1, 5, 21.0])
def test_expected_alphas_is_ic_times_volatility_over_the_horizon_times_score(horizon):
    frame, scores = _day()
    got = expected_alphas(frame, scores, 0.05, horizon)
    # closed form IC * sigma * sqrt(h) * z; the asset without a volatility is dropped
    expected = pd.Series([0.05 * 0.01 * np.sqrt(horizon) * 1.5,
                          0.05 * 0.02 * np.sqrt(horizon) * -0.5], index=list("ab"))
    pd.testing.assert_series_equal(got, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("horizon, error, message", [
    ("5", TypeError, "horizon must be a number; got '5'"),
    (True, TypeError, "horizon must be a number; got True"),
    (0.5, ValueError, "horizon must be >= 1; got 0.5"),
    (float("nan"), ValueError, "horizon must be finite"),
])
def test_expected_alphas_horizon_follows_the_checks_policy(horizon, error, message):
    frame, scores = _day()
    with pytest.raises(error, match=message):
        expected_alphas(frame, scores, 0.05, horizon)
