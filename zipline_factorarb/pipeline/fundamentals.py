"""Point-in-time fundamentals in Pipeline: ``Fundamentals.market_cap`` and co.

A CSV bundle ingested with fundamentals (see
:mod:`zipline_factorarb.data.fundamentals`) stores them as
``fundamentals.parquet`` in its ingestion folder, beside the asset db. The
terms here read that file for the ingestion being run, found through the
asset db of the running algorithm, so they work under plain ``zipline run``
without a custom pipeline loader, as :class:`~.classifiers.Sector` does.
Outside an algorithm, :func:`~.research.run_pipeline` provides the asset db,
or pass ``bundle=NAME`` to read that bundle's latest ingestion.

Timing: a value dated D is first seen by the pipeline of the first session
after D (the pipeline of session T sees the data up to the close of the
session before T, as ``EquityPricing.close.latest`` does), so a value dated D
never leaks into the pipeline of D. It is then carried forward until the next
value of the same column, for at most ``max_age`` calendar days after D when
a limit is set (older values give NaN).

Values are stored as given, not adjusted for splits: a ratio or a market cap
is split-invariant, a per-share count is not.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from zipline.pipeline import CustomFactor
from zipline.pipeline.data import EquityPricing
from zipline.utils.numpy_utils import float64_dtype

from ..data.fundamentals import FUNDAMENTALS_FILE, RESERVED_NAMES
from .classifiers import _asset_finder

_LOCK = threading.Lock()
_TABLES = {}
_NS_PER_DAY = 86_400 * 10**9
# sid * _SID_STRIDE + day number is one sortable key per (sid, date)
_SID_STRIDE = np.int64(1) << np.int64(32)


def ingestion_folder(finder):
    """The ingestion folder of an asset finder (the folder of its asset db)."""
    database = finder.engine.url.database
    if not database:
        raise RuntimeError("the asset db is not a file; no ingestion folder to read")
    return Path(database).parent


class FundamentalsTable:
    """The stored fundamentals of one ingestion, ready for point-in-time lookups."""

    def __init__(self, path):
        self.path = Path(path)
        frame = pd.read_parquet(self.path) if self.path.exists() else None
        self.columns = () if frame is None else tuple(
            c for c in frame.columns if c not in ("sid", "date"))
        self._frame = frame
        self._keys = {}

    def _column(self, field):
        if field not in self._keys:
            if field not in self.columns:
                where = self.path.parent
                if not self.columns:
                    raise KeyError(
                        f"the ingestion {where} has no fundamentals; ingest the bundle with a "
                        "fundamentals/ folder (or fundamentals=/fundamental_columns= in "
                        "register_csv_bundle)")
                raise KeyError(f"no fundamental column {field!r} in the ingestion {where}; "
                               f"it has {list(self.columns)}")
            sub = self._frame[["sid", "date", field]].dropna(subset=[field])
            days = sub["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
            keys = sub["sid"].to_numpy(np.int64) * _SID_STRIDE + days
            order = np.argsort(keys, kind="stable")
            self._keys[field] = (keys[order], days[order], sub[field].to_numpy(float)[order])
        return self._keys[field]

    def as_of(self, field, day, sids, max_age=None):
        """Values of ``field`` the pipeline of session ``day`` sees, for ``sids``.

        The latest value dated strictly before ``day``; NaN when there is none
        or, with ``max_age``, when it is more than ``max_age`` days older than
        ``day``.
        """
        keys, days, values = self._column(field)
        sids = np.asarray(sids, dtype=np.int64)
        day = _day_number(day)
        pos = np.searchsorted(keys, sids * _SID_STRIDE + day, side="left") - 1
        out = np.full(len(sids), np.nan)
        if not len(keys):
            return out
        safe = np.clip(pos, 0, None)
        ok = (pos >= 0) & (keys[safe] // _SID_STRIDE == sids)
        if max_age is not None:
            ok &= (day - days[safe]) <= max_age
        out[ok] = values[safe[ok]]
        return out


def _day_number(day):
    ts = pd.Timestamp(day)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return np.int64(ts.normalize().value // _NS_PER_DAY)


def fundamentals_table(finder):
    """The :class:`FundamentalsTable` of an asset finder's ingestion (cached)."""
    path = ingestion_folder(finder) / FUNDAMENTALS_FILE
    key = str(path)
    with _LOCK:
        table = _TABLES.get(key)
    if table is None:
        table = FundamentalsTable(path)
        with _LOCK:
            _TABLES[key] = table
    return table


class Fundamental(CustomFactor):
    """One stored fundamental column as a pipeline factor (point in time).

    Prefer the namespace: ``Fundamentals.market_cap`` or
    ``Fundamentals(max_age=120).book_to_market``.

    Parameters
    ----------
    field : str
        The stored column.
    bundle : str, optional
        Read this bundle's latest ingestion instead of the running
        algorithm's (for research engines of your own).
    max_age : int, optional
        Carry a value forward for at most this many calendar days after its
        date (default: until the next value).
    """

    inputs = (EquityPricing.close,)
    window_length = 1
    dtype = float64_dtype
    window_safe = True  # values are point-in-time and need no adjustment
    params = {"field": None, "bundle": None, "max_age": None}

    def __new__(cls, field, bundle=None, max_age=None, **kwargs):
        if not isinstance(field, str) or not field.isidentifier():
            raise ValueError(f"field must be a column name, got {field!r}")
        if max_age is not None:
            if isinstance(max_age, bool) or not isinstance(max_age, (int, np.integer)) \
                    or max_age < 0:
                raise ValueError(f"max_age must be a non-negative number of days or None, "
                                 f"got {max_age!r}")
            max_age = int(max_age)
        return super().__new__(cls, field=field, bundle=bundle, max_age=max_age, **kwargs)

    def compute(self, today, assets, out, close, field, bundle, max_age):
        table = fundamentals_table(_asset_finder(bundle))
        out[:] = table.as_of(field, today, assets, max_age)

    def __repr__(self):
        p = self.params
        extra = f", max_age={p['max_age']}" if p["max_age"] is not None else ""
        return f"Fundamentals.{p['field']}{extra}"

    def graph_repr(self):
        return f"Fundamental({self.params['field']})"


class FundamentalsNamespace:
    """``Fundamentals.<column>``: the stored fundamentals as pipeline factors.

    Any column name gives a :class:`Fundamental` term; the names a bundle has
    are discovered from its ingestion (:meth:`columns`, :meth:`has`), and a
    name the ingestion lacks fails when the pipeline runs, listing those it
    has. Call the namespace to configure it::

        Fundamentals.market_cap                       # carried until the next value
        Fundamentals(max_age=100).book_to_market      # at most 100 days old
        Fundamentals(bundle="my-stocks").market_cap   # a research engine of your own
        Fundamentals.column("market_cap")             # the same as the attribute
    """

    def __init__(self, bundle=None, max_age=None):
        self._bundle = bundle
        self._max_age = max_age

    def __call__(self, bundle=None, max_age=None):
        return FundamentalsNamespace(bundle=bundle, max_age=max_age)

    def column(self, name):
        """The term of column ``name``."""
        return Fundamental(name, bundle=self._bundle, max_age=self._max_age)

    def __getattr__(self, name):
        if name.startswith("_") or name in RESERVED_NAMES:
            raise AttributeError(name)
        return self.column(name)

    def columns(self, bundle=None):
        """Names of the stored columns of the running algorithm's ingestion
        (or of ``bundle``'s latest one); ``()`` without fundamentals."""
        return fundamentals_table(_asset_finder(bundle or self._bundle)).columns

    def has(self, name, bundle=None):
        """Whether the ingestion stores column ``name``."""
        return name in self.columns(bundle)

    def __dir__(self):
        try:
            names = list(self.columns())
        except Exception:  # no algorithm running and no bundle: nothing to discover
            names = []
        return sorted(set(names) | {"column", "columns", "has"})

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in (("bundle", self._bundle),
                                                     ("max_age", self._max_age)) if v is not None)
        return f"Fundamentals({args})"


#: The fundamentals namespace: ``Fundamentals.market_cap``, ``Fundamentals(max_age=90)``.
Fundamentals = FundamentalsNamespace()


#: Pipeline column of the market caps added by :func:`market_cap_columns`.
MARKET_CAP_COLUMN = "fundamentals:market_cap"


def market_cap_columns(name=MARKET_CAP_COLUMN, max_age=None):
    """``{name: Fundamentals.market_cap}`` when the running bundle stores market
    caps, else ``{}``: add it to an algorithm's pipeline columns, then build the
    benchmark with :func:`size_benchmark_weights`."""
    if Fundamentals.has("market_cap"):
        return {name: Fundamentals(max_age=max_age).market_cap}
    return {}


def size_benchmark_weights(assets, out, dollar_volume=None, volume=None, weighting="auto",
                           column=MARKET_CAP_COLUMN):
    """Benchmark weights by size: market caps when the bundle has them, else the proxy.

    Parameters
    ----------
    assets : sequence
        The benchmark's universe.
    out : DataFrame
        A pipeline output; its ``column`` (see :func:`market_cap_columns`)
        holds the market caps when the bundle stores them.
    dollar_volume, volume : Series, optional
        For the proxy (:func:`~zipline_factorarb.optimize.proxy_benchmark_weights`).
    weighting : {"auto", "market_cap", "dollar_volume", "equal"}
        ``"auto"``: market-cap weights (``b = cap / sum(cap)``, the research's
        benchmark) when ``out`` has the column, else the proxy's ``"auto"``;
        ``"market_cap"`` requires the column.

    Returns
    -------
    Series
        Weights summing to one; ``attrs["source"]`` says which rule applied
        (``"market_cap"``, ``"dollar_volume"`` or ``"equal"``). With
        ``"auto"``, a market cap missing for any asset makes the whole
        benchmark the proxy's, with a warning (never a mix of the two);
        ``"market_cap"`` raises instead.
    """
    from ..optimize.risk_model import make_benchmark_weights, proxy_benchmark_weights

    index = pd.Index(assets)
    if weighting == "market_cap" and column not in out:
        raise ValueError(f"weighting='market_cap' but the pipeline has no {column!r} column: "
                         "the bundle stores no market caps")
    if weighting in ("auto", "market_cap") and column in out:
        caps = out[column].reindex(index).to_numpy(dtype=float)
        ok = np.isfinite(caps) & (caps > 0)
        if ok.all():
            return make_benchmark_weights(pd.Series(caps, index=index), assets=index)
        message = (f"market cap missing or not positive for {int((~ok).sum())} of {len(index)} "
                   f"assets (e.g. {index[~ok][0]!r})")
        if weighting == "market_cap":
            raise ValueError(message)
        warnings.warn(f"{message}; the benchmark uses the proxy weights instead", stacklevel=2)
        weighting = "auto"
    return proxy_benchmark_weights(index, dollar_volume, volume, weighting)
