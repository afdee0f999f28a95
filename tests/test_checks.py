"""The one argument-check policy: TypeError for a wrong type, ValueError for a wrong value."""

import numpy as np
import pytest

from zipline_factorarb.checks import (
    check_asset,
    check_bool,
    check_choice,
    check_classifier,
    check_filter,
    check_int,
    check_number,
)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: check_int("window_length", 25.0, 2), TypeError,
         "window_length must be an integer; got 25.0"),
        (lambda: check_int("window_length", True, 2), TypeError, "must be an integer"),
        (lambda: check_int("window_length", "5", 2), TypeError, "must be an integer"),
        (lambda: check_int("window_length", 1, 2), ValueError, "window_length must be >= 2; got 1"),
        (lambda: check_int("n", 9, 1, 5), ValueError, "n must be between 1 and 5; got 9"),
        (lambda: check_int("n", 9, None, 5), ValueError, "n must be <= 5; got 9"),
        (lambda: check_number("ridge", "a", 0), TypeError, "ridge must be a number; got 'a'"),
        (lambda: check_number("ridge", None, 0), TypeError, "ridge must be a number"),
        (lambda: check_number("ridge", False, 0), TypeError, "ridge must be a number"),
        (lambda: check_number("ridge", np.nan, 0), ValueError, "ridge must be finite; got nan"),
        (lambda: check_number("ridge", -1, 0), ValueError, "ridge must be >= 0; got -1"),
        (lambda: check_number("obs_noise", 0.0, 0, low_open=True), ValueError,
         "obs_noise must be > 0"),
        (lambda: check_number("q", 1.5, 0, 1, low_open=True), ValueError,
         "q must be > 0 and <= 1; got 1.5"),
        (lambda: check_bool("center_m", 1), TypeError, "center_m must be True or False; got 1"),
        (lambda: check_choice("signals", "ica", ("wls", "kalman")), ValueError,
         r"signals must be one of \('wls', 'kalman'\); got 'ica'"),
        (lambda: check_choice("signals", 3, ("wls", "kalman")), TypeError,
         "signals must be one of"),
        (lambda: check_filter("mask", "stocks"), TypeError, "mask must be a zipline Filter"),
        (lambda: check_asset("market", "SPY"), TypeError, "market must be a zipline Asset"),
        (lambda: check_classifier("sector", "GICS"), TypeError,
         "sector must be a pipeline Classifier"),
    ],
)
def test_wrong_types_and_wrong_values_fail_by_the_policy(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert not (error is TypeError and isinstance(info.value, ValueError))


def test_good_values_come_back_as_plain_python_values():
    assert check_int("n", np.int64(3), 1) == 3 and type(check_int("n", np.int64(3))) is int
    assert type(check_number("x", np.float32(0.5), 0)) is float
    assert check_number("x", None, allow_none=True) is None
    assert check_bool("b", np.bool_(True)) is True
    assert check_choice("s", "wls", ("wls",)) == "wls"
    assert check_asset("market", None) is None
    assert check_classifier("sector", None) is None


def test_mask_none_and_not_specified_mean_every_asset_in_every_term():
    from zipline.pipeline.sentinels import NotSpecified

    from zipline_factorarb.pipeline import (
        DailyReturns,
        IsStock,
        KalmanInnovation,
        PCAResidual,
        SScore,
        StyleLoading,
        WLSResidual,
    )

    assert check_filter("mask", None) is NotSpecified
    assert check_filter("mask", NotSpecified) is NotSpecified
    stocks = IsStock()
    assert check_filter("mask", stocks) is stocks
    for make in (WLSResidual, KalmanInnovation, SScore, PCAResidual,
                 lambda **kw: StyleLoading("beta", **kw),
                 lambda **kw: DailyReturns(log=True, **kw)):
        assert make(mask=None) is make()
        assert make(mask=stocks) is not make()
        with pytest.raises(TypeError, match="mask must be a zipline Filter"):
            make(mask=True)
