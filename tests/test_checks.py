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


def test_numbers_one_or_one_per_item():
    from zipline_factorarb.checks import check_numbers

    np.testing.assert_array_equal(check_numbers("lam", 0.5, 3, low=0), [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(check_numbers("lam", [1, 2], 2, low=0), [1.0, 2.0])
    assert check_numbers("lam", np.int64(2), 1).dtype == float
    for value, error, message in [
            ("a", TypeError, "lam must be a number or 2 numbers; got 'a'"),
            ([True, False], TypeError, "lam must be a number or 2 numbers"),
            ([1.0, None], TypeError, "lam must be a number or 2 numbers"),
            ([1.0, 2.0, 3.0], ValueError, r"lam must be a number or 2 numbers; got shape \(3,\)"),
            ([1.0, np.inf], ValueError, "lam must be finite"),
            ([1.0, -1.0], ValueError, "lam must be >= 0; got"),
            (3.0, ValueError, "lam must be >= 0 and <= 2; got 3.0")]:
        with pytest.raises(error, match=message):
            check_numbers("lam", value, 2, low=0, high=2 if value == 3.0 else None)


def test_array_shapes_by_name_size_and_leading_axes():
    from zipline_factorarb.checks import check_array

    x = check_array("loadings", [[1, 2], [3, 4], [5, 6]], ("N", "K"), dims={"N": 3})
    assert x.dtype == np.float64 and x.shape == (3, 2)
    assert check_array("w", np.ones((4, 5, 3)), ("N", "S"), (..., "N", "S")).shape == (4, 5, 3)
    assert check_array("w", np.ones(7)).shape == (7,)  # no shapes: any shape
    for value, shapes, kwargs, message in [
            (np.ones((9, 3)), [("N", "K"), ("T", "N", "K")],
             {"dims": {"T": 5, "N": 10}, "context": "returns of shape (5, 10)"},
             r"loadings must have shape \(N, K\) = \(10, K\) or \(T, N, K\) = \(5, 10, K\) "
             r"for returns of shape \(5, 10\); got shape \(9, 3\)$"),
            (np.ones((2, 3, 4)), [("N",), ("T", "N")], {},
             r"loadings must have shape \(N,\) or \(T, N\); got shape \(2, 3, 4\)$"),
            (np.ones(99), [(100,)], {}, r"loadings must have shape \(100,\); got shape \(99,\)$"),
            (np.ones(3), [(..., "N", "S")], {"dims": {"N": 3}},
             r"must have shape \(\.\.\., N, S\) = \(\.\.\., 3, S\); got shape \(3,\)$"),
            (["a", 1.0], [], {}, "loadings must be an array of real numbers")]:
        with pytest.raises(ValueError, match=message):
            check_array("loadings", value, *shapes, **kwargs)
