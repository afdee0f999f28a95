"""Argument checks shared by the package: one policy, one wording.

Every public function and pipeline term checks its arguments with these
helpers, so that a bad argument fails the same way everywhere:

* a value of the wrong *type* raises :class:`TypeError`
  (``window_length must be an integer; got 25.0``);
* a value of the right type outside its allowed range or set raises
  :class:`ValueError` (``window_length must be >= 2; got 1``);
* the message starts with the parameter's name and ends with the value
  received.

``bool`` is not accepted where a number is expected (``True`` is not a
window length), and numbers must be finite unless said otherwise. The
helpers return the value converted to a plain Python ``int``/``float``/
``bool``, so callers can store them as hashable pipeline parameters.

Only numpy is imported at module level; the zipline checks
(:func:`check_filter`, :func:`check_asset`, :func:`check_classifier`) import
zipline when called.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "check_array",
    "check_asset",
    "check_bool",
    "check_choice",
    "check_classifier",
    "check_filter",
    "check_instance",
    "check_int",
    "check_number",
    "check_numbers",
]


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def _bounds(low, high, low_open, high_open):
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def check_int(name, value, low=None, high=None):
    """``value`` as an ``int`` in ``[low, high]`` (either bound optional).

    TypeError for a non-integer (``bool`` and floats such as ``25.0``
    included), ValueError outside the bounds.
    """
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            bound = f"between {low} and {high}"
        else:
            bound = f">= {low}" if high is None else f"<= {high}"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return value


def check_number(name, value, low=None, high=None, *, low_open=False, high_open=False,
                 allow_none=False, allow_inf=False):
    """``value`` as a finite ``float`` within the bounds (None passes with ``allow_none``).

    ``low_open``/``high_open`` exclude the bound itself (``> low``/``< high``).
    ``allow_inf`` lets ``+inf``/``-inf`` through unchecked (an absent bound).
    TypeError for anything but a real number (``bool``, strings and None
    without ``allow_none`` included), ValueError for NaN, infinities (unless
    ``allow_inf``) and values outside the bounds.
    """
    if value is None and allow_none:
        return None
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if allow_inf and math.isinf(value):
        return value
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    bad = low is not None and (value <= low if low_open else value < low)
    bad |= high is not None and (value >= high if high_open else value > high)
    if bad:
        raise ValueError(
            f"{name} must be {_bounds(low, high, low_open, high_open)}; got {value:g}")
    return value


def check_bool(name, value):
    """``value`` as a ``bool``; only ``True``/``False`` (numpy's included) pass.

    TypeError for anything else (``1``, ``"yes"``, None).
    """
    if not _is_bool(value):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_choice(name, value, choices):
    """``value`` if it is one of ``choices``.

    TypeError when ``value`` is not of the choices' type (a number where a
    name is expected), ValueError when it is not among them.
    """
    kinds = {type(c) for c in choices}
    if not isinstance(value, tuple(kinds)):
        raise TypeError(f"{name} must be one of {tuple(choices)}; got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {value!r}")
    return value


def check_instance(name, value, kind, allow_none=False):
    """``value`` if it is an instance of ``kind`` (a class or tuple of classes).

    None passes with ``allow_none``; TypeError for anything else, naming the
    expected and the received type.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        raise TypeError(f"{name} must be a {expected}; got {type(value).__name__}")
    return value


def check_array(name, value, *shapes, dims=None, context=None):
    """``value`` as a float64 array whose shape is one of ``shapes``.

    A shape is a tuple of sizes and dimension names, e.g. ``("N", "K")``: an
    int must match exactly, a name must match its size in ``dims`` (any
    size when it has none), and a leading ``...`` matches any leading axes.
    No ``shapes``: any shape. ValueError for values that are not real numbers,
    or for a shape that matches none, naming the shapes expected (with the
    sizes of ``dims``, e.g. ``(N, K) = (10, K)``), ``context`` if given, and
    the shape received.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers: {exc}") from None
    dims = dims or {}
    for spec in shapes:
        if _shape_matches(array.shape, spec, dims):
            return array
    if not shapes:
        return array
    expected = " or ".join(_shape_text(s, dims) for s in shapes)
    where = f" for {context}" if context else ""
    raise ValueError(f"{name} must have shape {expected}{where}; got shape {array.shape}")


def _shape_matches(shape, spec, dims):
    if spec[:1] == (...,):
        spec = spec[1:]
        shape = shape[max(len(shape) - len(spec), 0):]
    if len(shape) != len(spec):
        return False
    for size, want in zip(shape, spec):
        if size != (dims.get(want, size) if isinstance(want, str) else want):
            return False
    return True


def _shape_text(spec, dims):
    def text(sizes):
        inner = ", ".join("..." if s is ... else str(s) for s in sizes)
        return f"({inner},)" if len(sizes) == 1 else f"({inner})"

    sized = tuple(dims.get(s, s) if isinstance(s, str) else s for s in spec)
    return text(spec) if sized == spec else f"{text(spec)} = {text(sized)}"


def check_filter(name, value):
    """A pipeline mask: a zipline ``Filter``; None means "not given".

    Returns zipline's ``NotSpecified`` for None or ``NotSpecified`` (the
    term then computes every asset that exists), the filter otherwise, so
    ``mask=None`` behaves the same in every term of the package. TypeError
    for anything else.
    """
    from zipline.pipeline.filters import Filter
    from zipline.pipeline.sentinels import NotSpecified

    if value is None or value is NotSpecified:
        return NotSpecified
    if not isinstance(value, Filter):
        raise TypeError(f"{name} must be a zipline Filter or None; got {value!r}")
    return value


def check_asset(name, value, allow_none=True):
    """A zipline ``Asset`` (or None with ``allow_none``); TypeError for anything else.

    A symbol string is not an asset: look it up first (``symbol('SPY')``).
    """
    from zipline.assets import Asset

    if value is None and allow_none:
        return None
    if not isinstance(value, Asset):
        raise TypeError(
            f"{name} must be a zipline Asset (e.g. symbol('SPY'))"
            f"{' or None' if allow_none else ''}; got {value!r}")
    return value


def check_classifier(name, value, allow_none=True, integer=True):
    """A zipline ``Classifier`` (integer-valued with ``integer``), or None.

    TypeError for anything else, or a classifier of another dtype.
    """
    from zipline.pipeline.classifiers import Classifier

    if value is None and allow_none:
        return None
    if not isinstance(value, Classifier):
        raise TypeError(f"{name} must be a pipeline Classifier or None; got {value!r}")
    if integer and value.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer classifier; got dtype {value.dtype}")
    return value


def check_numbers(name, value, size, low=None, high=None):
    """``value``, one number or ``size`` of them, as a float array of shape ``(size,)``.

    A single number is repeated ``size`` times (a penalty for every asset, say).
    TypeError for anything but real numbers (``bool`` included), ValueError for
    another length, NaN, infinities and values outside ``[low, high]``.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a number or {size} numbers; got {value!r}")
    arr = np.full(size, arr, dtype=float) if arr.ndim == 0 else arr.astype(float)
    if arr.shape != (size,):
        raise ValueError(f"{name} must be a number or {size} numbers; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; got {value!r}")
    if (low is not None and (arr < low).any()) or (high is not None and (arr > high).any()):
        raise ValueError(f"{name} must be {_bounds(low, high, False, False)}; got {value!r}")
    return arr
