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


def as_series(values, field, allow_scalar=False, finite=True):
    """Validate a Series indexed by asset (or factor / group) and return it as floats.

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
    if not values.index.is_unique:
        dup = values.index[values.index.duplicated()][0]
        raise ValueError(f"{field} has a duplicated index entry {dup!r}; aggregate or drop it")
    try:
        out = values.astype(float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{field} must hold numbers: {exc}") from None
    if finite:
        check_finite(out.to_numpy(), out.index, field)
    return out


def check_finite(values, labels, field, hint=None):
    """Raise :class:`NonFiniteInput` naming the first non-finite entry."""
    arr = np.asarray(values, dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise NonFiniteInput(field, labels[i], arr.ravel()[i], hint)


def as_frame(values, field):
    """Validate a DataFrame indexed by asset with finite numbers."""
    if not isinstance(values, pd.DataFrame):
        raise TypeError(
            f"{field} must be a pandas DataFrame indexed by asset, got {type(values).__name__}"
        )
    if not values.index.is_unique:
        dup = values.index[values.index.duplicated()][0]
        raise ValueError(f"{field} has a duplicated asset {dup!r}; drop it")
    if not values.columns.is_unique:
        raise ValueError(f"{field} has duplicated columns")
    out = values.astype(float)
    arr = out.to_numpy()
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
