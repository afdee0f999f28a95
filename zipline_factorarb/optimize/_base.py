"""Shared machinery of objectives, constraints and costs (internal).

Every objective, constraint or cost is a :class:`Term`: it checks its inputs when
created (data errors kept for the solve: :class:`KeepsInputErrors`), prepares them on
the optimisation universe as a :class:`TermData`, builds its cvxpy expression once per
problem structure and evaluates itself on numpy weights. The hooks are documented on
:class:`~.constraints.Constraint`; ``docs/optimize.md`` ("Writing a constraint") shows
a complete new constraint.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from .errors import InvalidInput, NonFiniteInput, UnknownAssets

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


def describe_value(v):
    """A number, or the size of a Series by asset, for a term's repr."""
    return fmt(v) if isinstance(v, float) else f"{len(v)} assets"


def asset_list(assets):
    """Normalise one asset or an iterable of assets to a list."""
    if isinstance(assets, (pd.Index, pd.Series)):
        return list(assets.index if isinstance(assets, pd.Series) else assets)
    if isinstance(assets, (list, tuple, set, frozenset, np.ndarray)):
        return list(assets)
    return [assets]


def by_label(values, labels, default):
    """``values`` (a number, or a Series by label) as an array on ``labels``:
    ``default`` where the Series has no entry or NaN, and everywhere for None."""
    if values is None:
        return np.full(len(labels), default, dtype=float)
    if isinstance(values, float):
        return np.full(len(labels), values)
    out = values.reindex(labels).to_numpy(dtype=float)
    return np.where(np.isnan(out), default, out)


def label_codes(labels, extra=()):
    """``(groups, codes)``: the distinct values of ``labels`` and ``extra`` in sorted
    order (by ``repr`` when they do not compare), and each label's position in it."""
    names = set(labels) | set(extra)
    try:
        groups = sorted(names)
    except TypeError:
        groups = sorted(names, key=repr)
    position = {g: i for i, g in enumerate(groups)}
    return groups, np.array([position[g] for g in labels], dtype=np.int64)


def check_factors(names, factors, field, source="the risk model"):
    """``ValueError`` naming the entries of ``names`` that are not among ``factors``,
    those of ``source``."""
    extra = pd.Index(names).difference(factors)
    if len(extra):
        raise ValueError(f"{field} names unknown factors {short_list(extra)}: {source} does "
                         f"not have them (its factors: {short_list(factors, 8)})")


def short_list(items, limit=5):
    items = list(items)
    head = ", ".join(repr(x) for x in items[:limit])
    more = len(items) - limit
    return f"[{head}{f', ... ({more} more)' if more > 0 else ''}]"


class Context:
    """Universe, current weights and per-solve memo of aligned arrays (internal).

    ``origins`` maps an asset to the input that brought it into the universe (for
    messages).
    """

    def __init__(self, universe, current, origins=None):
        self.universe = universe
        self.n = len(universe)
        self.current = current
        self.origins = origins or {}
        self._memo = {}

    def _cached(self, key, owner, compute):
        """``compute()``, once per ``key`` and solve (``owner``, whose ``id`` is in the
        key, is kept with the value so that the id stays its own)."""
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = (owner, compute())
        return hit[1]

    def indexer(self, index):
        """Positions of the universe's assets in ``index`` (-1 where absent)."""
        return self._cached(("indexer", id(index)), index,
                            lambda: index.get_indexer(self.universe))

    def align(self, series, fill=0.0):
        """``series`` as a numpy vector on the universe, ``fill`` where it has no entry
        (zeros for a ``series`` of None: no benchmark)."""
        if series is None:
            return np.zeros(self.n)

        def compute():
            pos = self.indexer(series.index)
            vals = series.to_numpy(dtype=float)
            return np.where(pos >= 0, vals[np.maximum(pos, 0)] if len(vals) else fill, fill)
        return self._cached(("align", id(series), fill), series, compute)

    def missing_from(self, index, field, what, hint):
        """Raise :class:`UnknownAssets` when assets of the universe are not in ``index``.

        The message names the assets and the inputs that brought them in.
        """
        pos = self.indexer(index)
        if not (pos < 0).any():
            return
        missing = [self.universe[i] for i in np.flatnonzero(pos < 0)]
        by_origin = {}
        for asset in missing:
            by_origin.setdefault(self.origins.get(asset, "the universe"), []).append(asset)
        sources = "; ".join(f"{short_list(v)} from {k}" for k, v in by_origin.items())
        raise UnknownAssets(
            f"{field} has no {what} for {len(missing)} assets of the optimisation universe: "
            f"{short_list(missing)} ({sources}). {hint}", field, missing)

    def risk(self, risk_model, field="the risk model"):
        """The risk model's arrays on the universe (see ``RiskModel._arrays``)."""

        def compute():
            self.missing_from(
                risk_model.loadings.index, field, "loadings",
                "Estimate the risk model on a universe that includes them, or remove them "
                "from the alphas, benchmark and current portfolio (close them before "
                "optimising)")
            return risk_model._arrays(self.universe)
        return self._cached(("risk", id(risk_model)), risk_model, compute)


class TermData(Mapping):
    """What a term prepared for one solve, aligned on the optimisation universe.

    Parameters
    ----------
    parameters : dict
        ``{name: number or array}``: each becomes a cvxpy ``Parameter`` of that shape
        when the problem is compiled (``nonneg`` when the name is in the term's
        ``_nonneg``) and is re-assigned on every later solve with the same structure.
        ``_build`` reads them from its ``p`` argument; shapes are part of the cache key.
    constants : dict
        ``{name: anything}``: data the term uses in ``_violation``, ``_bounds``,
        ``_risk`` and messages, never compiled.
    universe : pandas.Index, optional
        Set by the engine (for :func:`asset_label`).

    ``data[name]`` reads a parameter, else a constant; both share one namespace.
    """

    __slots__ = ("parameters", "constants", "universe")

    def __init__(self, parameters=None, constants=None, universe=None):
        self.parameters = dict(parameters or {})
        self.constants = dict(constants or {})
        clash = self.parameters.keys() & self.constants.keys()
        if clash:
            raise ValueError(f"names used both as parameter and constant: {sorted(clash)}")
        self.universe = universe

    def __getitem__(self, name):
        if name in self.parameters:
            return self.parameters[name]
        return self.constants[name]

    def __iter__(self):
        yield from self.parameters
        yield from self.constants

    def __len__(self):
        return len(self.parameters) + len(self.constants)

    def __repr__(self):
        return (f"TermData(parameters={sorted(self.parameters)}, "
                f"constants={sorted(self.constants)})")


@dataclass(frozen=True)
class Bounds:
    """What a constraint bounds, for the engine's unboundedness test.

    A linear objective (``MaximizeAlpha``, ``MaximizeFactorTilt``) needs constraints
    that keep the weights finite; the engine combines every constraint's ``Bounds``
    and refuses an unbounded problem before solving. The default bounds nothing.

    Attributes
    ----------
    bounded : bool
        The constraint alone keeps every weight finite (gross exposure, turnover, a
        tracking error with positive specific variances).
    lower, upper : float or numpy array, optional
        Per-asset bounds on the weights (+-inf where there is none).
    net_lower, net_upper : float
        Bounds of the net exposure ``sum(w)``.
    rows : tuple of (A, lower_finite, upper_finite)
        Bounds on a linear map ``A w`` (e.g. group or factor exposures): the matrix and,
        per row, whether its lower / upper bound is finite.
    note : str
        Said in the unboundedness error (e.g. why a tracking error bounds nothing here).
    """

    bounded: bool = False
    lower: object = None
    upper: object = None
    net_lower: float = -np.inf
    net_upper: float = np.inf
    rows: tuple = ()
    note: str = ""


class RiskTerm(NamedTuple):
    """The quadratic risk a term constrains or penalises (the risk hook, ``Term._risk``).

    Per period: ``||G (w - b)||^2 + ||s * (w - b)||^2`` (``G = R F`` with ``R' R`` the
    factor covariance, ``s`` the specific volatilities).
    """

    G: np.ndarray
    s: np.ndarray
    b: np.ndarray
    #: periods per year of the model (None: the run's ``periods_per_year``)
    periods_per_year: float | None = None
    #: name of the annualised bound on the risk's square root (e.g. ``"max_tev"``), or
    #: None when the term only penalises risk
    bound_name: str | None = None

    def variance(self, w):
        """Per-period ``||G (w - b)||^2 + ||s * (w - b)||^2`` of the numpy weights ``w``."""
        a = w - self.b
        return float(np.sum((self.G @ a) ** 2) + np.sum((self.s * a) ** 2))


def _lenient(values, frame=False):
    """A best-effort float copy of ``values`` for a term whose data check failed (the
    term cannot be solved; this only keeps its other attributes meaningful)."""
    try:
        if frame:
            out = pd.DataFrame(values).astype(float)
        else:
            out = pd.Series(values, dtype=float)
        return out[~out.index.duplicated()]
    except (TypeError, ValueError):
        return pd.DataFrame(dtype=float) if frame else pd.Series(dtype=float)


class KeepsInputErrors:
    """Data errors kept when an object is created and raised when it is used (internal).

    A ``TypeError`` raises at once; a ``ValueError`` (NaN, an empty input, duplicated
    assets) is kept as an :class:`~.errors.InvalidInput` so that
    ``order_optimal_portfolio(..., on_failure="hold")`` can hold on it.
    """

    #: the first data problem found when the object was created (raised when used)
    _input_error = None

    def _defer(self, error, field=None):
        """Keep ``error`` (the first one) as an InvalidInput, raised when used."""
        if self._input_error is None:
            if not isinstance(error, InvalidInput):
                wrapped = InvalidInput(str(error), field)
                wrapped.__cause__ = error
                error = wrapped
            self._input_error = error

    def _checked(self, check, fallback=lambda: None, field=None):
        """``check()``; a ``ValueError`` it raises is kept (:meth:`_defer`) and
        ``fallback()`` returned instead. A ``TypeError`` raises at once."""
        try:
            return check()
        except TypeError:
            raise
        except ValueError as exc:
            self._defer(exc, field)
            return fallback()

    def _raise_input_error(self):
        """Raise the kept data error, if any."""
        if self._input_error is not None:
            raise self._input_error


class Term(KeepsInputErrors):
    """Base class of objectives, constraints and costs (see the module docstring)."""

    #: names of the parameters that are created ``nonneg=True``
    _nonneg = frozenset()

    def _data(self, values, field, frame=False, **kwargs):
        """Check an input with :func:`as_series` (or :func:`as_frame` with ``frame``).

        A ``TypeError`` raises now; a ``ValueError`` (NaN, empty, duplicated assets) is
        kept (:meth:`_defer`) and raised when the term is solved, and a lenient copy of
        the input is returned meanwhile.
        """
        return self._checked(
            lambda: as_frame(values, field) if frame else as_series(values, field, **kwargs),
            lambda: _lenient(values, frame))

    def _optional_benchmark(self, values):
        """Optional ``benchmark_weights`` checked with :meth:`_data` (None stays None)."""
        if values is None:
            return None
        return self._data(values, f"{type(self).__name__}.benchmark_weights")

    def _assets(self):
        """Assets this term adds to the optimisation universe (an Index), or None."""
        return None

    def _prepare(self, ctx):  # pragma: no cover - abstract
        """The term's :class:`TermData` on ``ctx.universe``."""
        raise NotImplementedError

    def _structure(self, data):
        """Hashable flags that change the compiled problem (shapes are added for you)."""
        return ()

    def _build(self, w, p, data):  # pragma: no cover - abstract
        raise NotImplementedError

    def _benchmark(self):
        """Benchmark weights (Series) this term refers to, or None; default: its
        ``benchmark_weights`` attribute."""
        return getattr(self, "benchmark_weights", None)

    def _risk_reference(self):
        """``(risk_model, benchmark_weights or None, periods_per_year or None)`` for the
        risk report, or None; default: from the term's ``risk_model``,
        :meth:`_benchmark` and ``periods_per_year`` (None when it has no risk model)."""
        model = getattr(self, "risk_model", None)
        if model is None:
            return None
        return model, self._benchmark(), getattr(self, "periods_per_year", None)

    def _risk(self, data):
        """The :class:`RiskTerm` this term constrains or penalises, or None."""
        return None

    def _key(self, data):
        shapes = tuple((name, np.shape(value)) for name, value in data.parameters.items())
        return (type(self).__name__, shapes, self._structure(data))

    def __repr__(self):
        return self._describe()

    def _describe(self):
        return f"{type(self).__name__}()"


def asset_label(data, i):
    """Name of position ``i`` for messages (the engine stores the universe in data)."""
    universe = getattr(data, "universe", None)
    return repr(universe[i]) if universe is not None else f"position {i}"


def finite_or_big(x):
    """Replace infinite bounds by +-BIG_BOUND (arrays or scalars)."""
    return np.clip(np.asarray(x, dtype=float), -BIG_BOUND, BIG_BOUND)
