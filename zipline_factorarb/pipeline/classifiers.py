"""Pipeline classifiers for the metadata written at ingest: sector, asset type.

The bundles store each asset's GICS sector code and asset type in the asset
db's ``equity_supplementary_mappings`` table. These classifiers read that
table through the running algorithm's asset finder, so they work under plain
``zipline run`` without a custom pipeline loader. Outside an algorithm (a
research ``SimplePipelineEngine``), pass ``bundle=NAME`` to read that
bundle's most recent ingestion instead.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
from zipline.pipeline import CustomClassifier
from zipline.pipeline.data import EquityPricing
from zipline.utils.numpy_utils import int64_dtype

from ..data.sectors import (
    ASSET_TYPE_CODES,
    GICS_SECTORS,
    UNKNOWN_ASSET_TYPE,
    UNKNOWN_SECTOR,
)

_CACHE = {}
_LOCK = threading.Lock()
_BOUND = threading.local()
_BUNDLE_FINDERS = {}


@contextmanager
def bound_asset_finder(finder):
    """Within this block, classifiers read ``finder`` (used by research runs)."""
    previous = getattr(_BOUND, "finder", None)
    _BOUND.finder = finder
    try:
        yield finder
    finally:
        _BOUND.finder = previous


def _asset_finder(bundle):
    if bundle is not None:
        from zipline.data.bundles import load

        with _LOCK:
            if bundle not in _BUNDLE_FINDERS:
                _BUNDLE_FINDERS[bundle] = load(bundle).asset_finder
            return _BUNDLE_FINDERS[bundle]
    bound = getattr(_BOUND, "finder", None)
    if bound is not None:
        return bound
    from zipline.utils.algo_instance import get_algo_instance

    algo = get_algo_instance()
    if algo is None:
        raise RuntimeError(
            "this classifier reads the asset db of the running algorithm; outside "
            "an algorithm use zipline_factorarb.pipeline.research.run_pipeline or pass "
            "the bundle, e.g. Sector(bundle='factorarb-sample')"
        )
    return algo.asset_finder


def supplementary_codes(finder, field, encode):
    """Array ``codes[sid]`` of ``encode(value)`` for one supplementary field.

    Cached per asset db (ingestion) and field; sids without the field get
    ``encode(None)``.
    """
    key = (str(finder.engine.url), field)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    table = finder.equity_supplementary_mappings
    with finder.engine.connect() as conn:
        rows = conn.execute(
            table.select().with_only_columns(table.c.sid, table.c.value)
            .where(table.c.field == field)
        ).fetchall()
    max_sid = max([r[0] for r in rows] + [max(finder.sids, default=-1), -1])
    codes = np.full(max_sid + 1, encode(None), dtype=np.int64)
    for sid, value in rows:
        codes[sid] = encode(value)
    with _LOCK:
        _CACHE[key] = codes
    return codes


def _lookup(codes, assets, missing):
    assets = np.asarray(assets, dtype=np.int64)
    out = np.full(assets.shape, missing, dtype=np.int64)
    inside = (assets >= 0) & (assets < len(codes))
    out[inside] = codes[assets[inside]]
    return out


def _encode_sector(value):
    if value is None:
        return UNKNOWN_SECTOR
    try:
        return int(value)
    except (TypeError, ValueError):
        return UNKNOWN_SECTOR


def _encode_asset_type(value):
    if value is None:
        return UNKNOWN_ASSET_TYPE
    return ASSET_TYPE_CODES.get(str(value).lower(), UNKNOWN_ASSET_TYPE)


class _MetadataClassifier(CustomClassifier):
    inputs = (EquityPricing.close,)
    window_length = 1
    dtype = int64_dtype
    missing_value = -1
    params = {"bundle": None}
    window_safe = True
    _field = None
    _encode = None

    def compute(self, today, assets, out, close, bundle):
        codes = supplementary_codes(_asset_finder(bundle), self._field, type(self)._encode)
        out[:] = _lookup(codes, assets, self.missing_value)


class Sector(_MetadataClassifier):
    """GICS sector of each asset as its two-digit code (-1 when unknown).

    Codes and names are in :attr:`SECTOR_NAMES`; constants such as
    ``Sector.ENERGY`` (10) and ``Sector.INFORMATION_TECHNOLOGY`` (45) read
    better in filters: ``Sector().eq(Sector.ENERGY)``. Works as ``groupby``
    in ``demean``, ``zscore`` and ``rank``.

    Parameters
    ----------
    bundle : str, optional
        Read this bundle's latest ingestion instead of the running
        algorithm's asset db (for research pipelines outside ``zipline run``).
    """

    _field = "sector"
    _encode = staticmethod(_encode_sector)
    SECTOR_NAMES = dict(GICS_SECTORS)
    UNKNOWN = UNKNOWN_SECTOR

    @classmethod
    def name_of(cls, code):
        """Sector name for a code (``'Unknown'`` for -1)."""
        return cls.SECTOR_NAMES.get(int(code), "Unknown")


for _code, _name in GICS_SECTORS.items():
    setattr(Sector, _name.upper().replace(" ", "_"), _code)


class AssetType(_MetadataClassifier):
    """Asset type code: ``STOCK`` (0), ``ETF`` (1), ``INDEX`` (2), -1 unknown.

    Lets a strategy trade stocks and use ETFs only as factors, or the
    reverse; an ``INDEX`` (such as the sample's S&P 500) is a benchmark and
    must not be traded. See also :func:`IsStock`, :func:`IsETF`,
    :func:`IsIndex`, :func:`IsTradable`.
    """

    _field = "asset_type"
    _encode = staticmethod(_encode_asset_type)
    STOCK = ASSET_TYPE_CODES["stock"]
    ETF = ASSET_TYPE_CODES["etf"]
    INDEX = ASSET_TYPE_CODES["index"]
    UNKNOWN = UNKNOWN_ASSET_TYPE
    TYPE_NAMES = {code: name for name, code in ASSET_TYPE_CODES.items()}


def IsStock(bundle=None):
    """Filter: the asset is a stock."""
    return AssetType(bundle=bundle).eq(AssetType.STOCK)


def IsETF(bundle=None):
    """Filter: the asset is an ETF."""
    return AssetType(bundle=bundle).eq(AssetType.ETF)


def IsIndex(bundle=None):
    """Filter: the asset is an index (a benchmark; not tradable)."""
    return AssetType(bundle=bundle).eq(AssetType.INDEX)


def IsTradable(bundle=None):
    """Filter: a stock or an ETF (anything but an index)."""
    return AssetType(bundle=bundle).element_of([AssetType.STOCK, AssetType.ETF])
