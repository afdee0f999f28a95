"""Shared machinery of objectives and constraints (internal).

Every objective or constraint is a small object that

* validates its inputs when it is created (pandas in, errors that name the asset),
* declares the assets it adds to the optimisation universe (``_assets``),
* turns its inputs into numpy arrays aligned on the universe (``_prepare``): the public
  entries of that dict become DPP parameters of the compiled problem, entries whose name
  starts with ``_`` are private data for diagnostics,
* builds its cvxpy expression from those parameters once per problem structure
  (``_build``), and
* evaluates itself on a plain numpy weight vector (``_violation`` for constraints,
  ``_value`` for objectives), which is how solutions are checked and how infeasibility is
  explained.
"""

from __future__ import annotations

import numbers
import sys

import numpy as np
import pandas as pd

from .errors import NonFiniteInput

#: finite stand-in for an infinite bound inside a parameter (cvxpy parameters must be
#: finite); a weight this large is far outside any meaningful portfolio.
BIG_BOUND = 1e4


def fmt(x):
    """Short, readable number for messages."""
    if x is None:
        return "None"
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    return f"{x:.6g}"


def current_session():
    """The session of the zipline algorithm running in this thread, or None.

    Read only when zipline is already imported (no import cost, no side effect).
    """
    module = sys.modules.get("zipline.utils.algo_instance")
    algo = None if module is None else module.get_algo_instance()
    if algo is None:
        return None
    try:
        return pd.Timestamp(algo.get_datetime()).tz_localize(None).normalize()
    except Exception:  # noqa: BLE001 - a date for a message only
        return None


def _day_text(date):
    if date is None:
        return ""
    try:
        return f" on {pd.Timestamp(date).date().isoformat()}"
    except (TypeError, ValueError):
        return f" on {date}"


#: why an input is empty or all missing, in most backtests
EMPTY_REASON = (
    "This usually means the pipeline had no values for the day: a backtest that starts "
    "before the factors' trailing windows are full (every value is NaN, or no asset "
    "passes a screen such as signal.notnull()). Start the backtest later (after "
    "window_length sessions of data) or shorten window_length, or skip the day when the "
    "pipeline output is empty"
)


_NO_ASSET = object()


def empty_input_error(field, what="is empty", date=None, first=_NO_ASSET, note=None,
                      detail=None):
    """``ValueError`` for an input without usable values, saying why that happens.

    Parameters
    ----------
    field : str
        The input, e.g. ``"MaximizeAlpha.alphas"``.
    what : str
        What is wrong with it (``"is empty"``, ``"has only NaN values"``).
    date : date-like, optional
        The day concerned; default: the running algorithm's session, if any.
    first : object, optional
        For an input whose values are all NaN: its first label. The error is then a
        :class:`NonFiniteInput` (a ``ValueError``), as for a single NaN.
    note : str, optional
        Said in parentheses after the date.
    detail : str, optional
        A last sentence (e.g. the factor's window length).
    """
    if date is None:
        date = current_session()
    message = f"{field} {what}{_day_text(date)}"
    if note:
        message += f" ({note})"
    message += f". {EMPTY_REASON}."
    if detail:
        message += f" {detail}"
    if first is _NO_ASSET:
        return ValueError(message)
    err = NonFiniteInput(field, first, np.nan)
    err.args = (message,)
    return err


def _object_dtype(values):
    if isinstance(values, pd.DataFrame):
        return any(dt == object for dt in values.dtypes)
    return values.dtype == object


def as_series(values, field, allow_scalar=False, finite=True):
    """Validate a Series indexed by asset (or factor / group) and return it as floats.

    An empty Series of object dtype (what ``pipeline_output`` gives for a day without
    rows) and, with ``finite``, a Series whose values are all NaN raise errors that say
    why that usually happens (:func:`empty_input_error`); an empty float Series (no
    entries on purpose, e.g. no current positions) is accepted.

    Parameters
    ----------
    values : pandas.Series, dict or scalar
    field : str
        Name used in error messages (``"MaximizeAlpha.alphas"``).
    allow_scalar : bool
        Return scalars unchanged (as float) instead of raising.
    finite : bool
        Raise :class:`NonFiniteInput` for NaN or infinite entries.
    """
    if allow_scalar and isinstance(values, numbers.Real) and not isinstance(values, bool):
        return float(values)
    if isinstance(values, dict):
        values = pd.Series(values, dtype=float)
    if isinstance(values, pd.DataFrame) and values.shape[1] == 1:
        values = values.iloc[:, 0]
    if not isinstance(values, pd.Series):
        raise TypeError(
            f"{field} must be a pandas Series indexed by asset"
            + (" or a number" if allow_scalar else "")
            + f", got {type(values).__name__}"
        )
    if values.empty and _object_dtype(values):
        raise empty_input_error(
            field, "is empty", note="an object-dtype Series without rows, what "
            "pipeline_output returns for a day without rows; pass pd.Series(dtype=float) "
            "to mean 'no entries'")
    if not values.index.is_unique:
        dup = values.index[values.index.duplicated()][0]
        raise ValueError(f"{field} has a duplicated index entry {dup!r}; aggregate or drop it")
    try:
        out = values.astype(float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{field} must hold numbers: {exc}") from None
    if finite:
        arr = out.to_numpy()
        if arr.size and np.isnan(arr).all():
            raise empty_input_error(field, f"has only NaN values ({arr.size} entries)",
                                    first=out.index[0])
        check_finite(arr, out.index, field)
    return out


def check_finite(values, labels, field, hint=None):
    """Raise :class:`NonFiniteInput` naming the first non-finite entry."""
    arr = np.asarray(values, dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise NonFiniteInput(field, labels[i], arr.ravel()[i], hint)


def as_frame(values, field):
    """Validate a DataFrame indexed by asset with finite numbers.

    A frame without rows, or whose values are all NaN, raises a ``ValueError`` that
    says why that usually happens (:func:`empty_input_error`).
    """
    if not isinstance(values, pd.DataFrame):
        raise TypeError(
            f"{field} must be a pandas DataFrame indexed by asset, got {type(values).__name__}"
        )
    if values.shape[0] == 0:
        raise empty_input_error(field, f"has no rows (columns {list(values.columns)})")
    if not values.index.is_unique:
        dup = values.index[values.index.duplicated()][0]
        raise ValueError(f"{field} has a duplicated asset {dup!r}; drop it")
    if not values.columns.is_unique:
        raise ValueError(f"{field} has duplicated columns")
    try:
        out = values.astype(float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{field} must hold numbers: {exc}") from None
    arr = out.to_numpy(dtype=float)
    if arr.size and np.isnan(arr).all():
        raise empty_input_error(
            field, f"has only NaN values ({arr.shape[0]} rows x {arr.shape[1]} columns)",
            first=out.index[0])
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise NonFiniteInput(f"{field}[{out.columns[j]!r}]", out.index[i], arr[i, j])
    return out


def asset_list(assets):
    """Normalise one asset or an iterable of assets to a list."""
    if isinstance(assets, (pd.Index, pd.Series)):
        return list(assets.index if isinstance(assets, pd.Series) else assets)
    if isinstance(assets, (list, tuple, set, frozenset, np.ndarray)):
        return list(assets)
    return [assets]


def short_list(items, limit=5):
    items = list(items)
    head = ", ".join(repr(x) for x in items[:limit])
    more = len(items) - limit
    return f"[{head}{f', ... ({more} more)' if more > 0 else ''}]"


class Context:
    """Universe, current weights and per-solve memo of aligned arrays (internal)."""

    def __init__(self, universe, current):
        self.universe = universe
        self.n = len(universe)
        self.current = current
        self._memo = {}

    def indexer(self, index):
        key = ("indexer", id(index))
        hit = self._memo.get(key)
        if hit is None:
            hit = (index, index.get_indexer(self.universe))
            self._memo[key] = hit
        return hit[1]

    def align(self, series, fill=0.0):
        """``series`` as a numpy vector on the universe, ``fill`` where it has no entry."""
        key = ("align", id(series), fill)
        hit = self._memo.get(key)
        if hit is None:
            pos = self.indexer(series.index)
            vals = series.to_numpy(dtype=float)
            out = np.where(pos >= 0, vals[np.maximum(pos, 0)] if len(vals) else fill, fill)
            hit = (series, out)
            self._memo[key] = hit
        return hit[1]

    def risk(self, risk_model):
        """The risk model's arrays on the universe (see ``RiskModel._arrays``)."""
        key = ("risk", id(risk_model))
        hit = self._memo.get(key)
        if hit is None:
            hit = (risk_model, risk_model._arrays(self.universe))
            self._memo[key] = hit
        return hit[1]


class Term:
    """Base class of objectives and constraints."""

    #: names of the parameters that are created ``nonneg=True``
    _nonneg = frozenset()

    def _assets(self):
        """Assets this term adds to the optimisation universe (an Index), or None."""
        return None

    def _prepare(self, ctx):  # pragma: no cover - abstract
        raise NotImplementedError

    def _structure(self, data):
        """Hashable flags that change the compiled problem (shapes are added for you)."""
        return ()

    def _build(self, w, p, data):  # pragma: no cover - abstract
        raise NotImplementedError

    def _benchmark(self):
        """Benchmark weights (Series) this term refers to, or None."""
        return None

    def _risk_reference(self):
        """``(risk_model, benchmark_weights or None, periods_per_year or None)`` or None."""
        return None

    def _key(self, data):
        shapes = tuple(
            (name, np.shape(value)) for name, value in data.items() if not name.startswith("_")
        )
        return (type(self).__name__, shapes, self._structure(data))

    def __repr__(self):
        return self._describe()

    def _describe(self):
        return f"{type(self).__name__}()"


def asset_label(data, i):
    """Name of position ``i`` for messages (the runner stores the universe in data)."""
    universe = data.get("_universe")
    return repr(universe[i]) if universe is not None else f"position {i}"


def finite_or_big(x):
    """Replace infinite bounds by +-BIG_BOUND (arrays or scalars)."""
    return np.clip(np.asarray(x, dtype=float), -BIG_BOUND, BIG_BOUND)
