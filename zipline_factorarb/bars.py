"""Whole-book reads of zipline's current bar: prices and tradability at once.

zipline's ``data.current(assets, "price")`` and ``data.can_trade(assets)`` loop
over the assets in Python (``DataPortal.get_spot_value`` per asset, about 0.2 ms
each), which made them most of a rebalance's time at a few hundred names. In
daily mode with a bcolz daily bar reader (every bundle ingested by
``zipline ingest``), this module reads the current session's closes of all the
assets with one indexed read of the bar table and evaluates zipline's
tradability rules (alive, not auto-closed, not restricted, has a price) on
arrays. It returns exactly what the per-asset calls return: assets the fast
path cannot settle (no close on the session, so zipline would search back for a
forward-filled price; non-equities; minute mode; another reader) are answered
by zipline's own calls, and tests compare the two on real bundles.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

__all__ = ["BarSnapshot", "bar_snapshot", "bar_returns", "portfolio_weights"]


NAT = np.iinfo(np.int64).min
_UNSEEN = NAT + 1


def _ns(value):
    return NAT if value is None or pd.isnull(value) else pd.Timestamp(value).value


def _asset_dates(asset):
    return (_ns(asset.start_date), _ns(asset.end_date), _ns(asset.auto_close_date))


class _ReaderIndex:
    """Dense per-sid row arrays of a ``BcolzDailyBarReader`` (built once per reader)."""

    def __init__(self, reader):
        attrs = reader._table.attrs
        first = {int(k): int(v) for k, v in attrs["first_row"].items()}
        last = {int(k): int(v) for k, v in attrs["last_row"].items()}
        offset = {int(k): int(v) for k, v in attrs["calendar_offset"].items()}
        size = max(first, default=-1) + 1
        self.first = np.full(size, -1, dtype=np.int64)
        self.last = np.full(size, -1, dtype=np.int64)
        self.offset = np.zeros(size, dtype=np.int64)
        for sid, row in first.items():
            self.first[sid] = row
            self.last[sid] = last[sid]
            self.offset[sid] = offset[sid]
        self.sessions = reader.sessions
        self.close = reader._table["close"]
        # per-sid start, end and auto-close dates (ns; NaT-like minimum when absent),
        # filled the first time an asset is seen
        self._dates = np.full((size, 3), _UNSEEN, dtype=np.int64)
        self._ratios = None

    def ratios(self, portal, session_ns):
        """``{sid: ratio}`` of the price adjustments (splits, mergers, dividends)
        effective on the session: zipline multiplies earlier prices by them."""
        if self._ratios is None:
            self._ratios = {}
            reader = getattr(portal, "_adjustment_reader", None)
            if reader is not None:
                for table in ("splits", "mergers", "dividends"):
                    df = reader.get_df_from_table(table, convert_dates=True)
                    for day, sid, ratio in zip(pd.to_datetime(df["effective_date"]).array.asi8,
                                               df["sid"], df["ratio"]):
                        by_sid = self._ratios.setdefault(int(day), {})
                        by_sid[int(sid)] = by_sid.get(int(sid), 1.0) * float(ratio)
        return self._ratios.get(session_ns, {})

    def lifetimes(self, sids, assets):
        """``(start, end, auto_close)`` as int64 ns arrays; auto_close is NAT where none."""
        known = (sids >= 0) & (sids < len(self._dates))
        out = np.full((len(sids), 3), NAT, dtype=np.int64)
        rows = np.flatnonzero(known)
        cached = self._dates[sids[rows]]
        for k in np.flatnonzero(cached[:, 0] == _UNSEEN):
            a = assets[rows[k]]
            cached[k] = self._dates[int(a.sid)] = _asset_dates(a)
        out[rows] = cached
        for i in np.flatnonzero(~known):  # sids beyond the table: read each time
            out[i] = _asset_dates(assets[i])
        return out[:, 0], out[:, 1], out[:, 2]

    def rows(self, sids, session):
        """Bar-table rows of ``sids`` on ``session`` (-1 where the table has none)."""
        day = self.sessions.get_indexer([session])[0]
        out = np.full(len(sids), -1, dtype=np.int64)
        if day < 0:
            return out
        known = (sids >= 0) & (sids < len(self.first))
        s = sids[known]
        ix = self.first[s] + (day - self.offset[s])
        ok = (self.first[s] >= 0) & (ix >= self.first[s]) & (ix <= self.last[s])
        out[np.flatnonzero(known)[ok]] = ix[ok]
        return out


_INDEXES = {}


def _bcolz_reader(algo):
    """The equity daily bcolz reader behind ``algo``'s data portal, or None."""
    if getattr(algo, "data_frequency", None) != "daily":
        return None
    portal = algo.data_portal
    if getattr(portal, "_augmented_sources_map", None):
        return None  # fetcher data can override prices
    try:
        reader = portal._get_pricing_reader("daily")
    except Exception:  # noqa: BLE001 - any other portal: use zipline's calls
        return None
    readers = getattr(reader, "_readers", None)
    if readers is not None:  # AssetDispatchSessionBarReader
        from zipline.assets import Equity

        reader = readers.get(Equity)
    if reader is None or not hasattr(reader, "_table") or not hasattr(reader, "sid_day_index"):
        return None
    return reader


def _book(assets, algo):
    """``(index, algo, reader)``: the distinct assets, the algorithm (default: the
    running one) and its bcolz reader (None where the block read does not apply)."""
    index = pd.Index(list(dict.fromkeys(assets)), dtype=object)
    if algo is None:
        from zipline.utils.algo_instance import get_algo_instance

        algo = get_algo_instance()
    reader = None if algo is None or len(index) == 0 else _bcolz_reader(algo)
    return index, algo, reader


def _session_and_sids(algo, index):
    """The current session (naive), and which assets are equities with their sids (-1 else)."""
    from zipline.assets import Equity

    session = pd.Timestamp(algo.trading_calendar.minute_to_session(algo.get_datetime()))
    is_equity = np.fromiter((type(a) is Equity for a in index), dtype=bool, count=len(index))
    sids = np.fromiter((int(a.sid) if e else -1 for a, e in zip(index, is_equity)),
                       dtype=np.int64, count=len(index))
    return session.tz_localize(None) if session.tzinfo else session, is_equity, sids


def _index_of(reader):
    hit = _INDEXES.get(id(reader))
    if hit is None or hit[0] is not reader:
        hit = (reader, _ReaderIndex(reader))
        _INDEXES.clear()  # one live bundle at a time; do not keep old readers alive
        _INDEXES[id(reader)] = hit
    return hit[1]


class BarSnapshot:
    """Prices and tradability of a set of assets on the current bar.

    Attributes
    ----------
    assets : pandas.Index
    prices : pandas.Series
        ``data.current(asset, "price")`` of each asset (NaN where zipline has none).
    tradable : pandas.Series of bool
        ``data.can_trade(asset)`` of each asset.
    fast : int
        How many assets the vectorised path answered (the rest went through zipline).
    """

    __slots__ = ("assets", "prices", "tradable", "fast")

    def __init__(self, assets, prices, tradable, fast):
        self.assets = assets
        self.prices = prices
        self.tradable = tradable
        self.fast = fast

    def __repr__(self):
        return (f"BarSnapshot({len(self.assets)} assets, {int(self.tradable.sum())} tradable, "
                f"{self.fast} read in one block)")


def bar_snapshot(data, assets, algo=None):
    """Current prices and tradability of ``assets``, read for the whole book at once.

    Parameters
    ----------
    data : zipline BarData
        The ``data`` of ``handle_data`` (used for the assets the block read cannot
        settle, and as the whole answer outside daily bcolz mode).
    assets : iterable of Asset
    algo : TradingAlgorithm, optional
        Default: the running algorithm.

    Returns
    -------
    BarSnapshot
    """
    index, algo, reader = _book(assets, algo)
    n = len(index)
    if n == 0:
        empty = pd.Series([], index=index, dtype=float)
        return BarSnapshot(index, empty, empty.astype(bool), 0)
    if reader is None:
        return _slow(data, index, np.ones(n, dtype=bool), np.full(n, np.nan), np.zeros(n, bool))
    session, is_equity, sids = _session_and_sids(algo, index)
    idx = _index_of(reader)
    starts, ends, autos = idx.lifetimes(sids, index)
    day = session.value
    alive = is_equity & (starts != NAT) & (starts <= day) & (ends >= day)
    auto_ok = (autos == NAT) | (day <= autos)
    rows = idx.rows(sids, session)
    raw = np.zeros(n, dtype=np.float64)
    have = rows >= 0
    if have.any():
        raw[have] = idx.close[rows[have]]
    prices = np.where(raw > 0, raw * 0.001, np.nan)
    prices[~alive & is_equity] = np.nan  # zipline: no price outside the asset's life
    # settled by the block read: equities with a close today, or not alive (NaN)
    settled = is_equity & ((raw > 0) | ~alive)
    restricted = algo.restrictions.is_restricted(index, session)
    restricted = np.asarray(restricted, dtype=bool) if not np.isscalar(restricted) \
        else np.full(n, bool(restricted))
    tradable = alive & auto_ok & ~restricted & np.isfinite(prices)
    if settled.all():
        return BarSnapshot(index, pd.Series(prices, index=index),
                           pd.Series(tradable, index=index), n)
    return _slow(data, index, ~settled, prices, tradable)


def _slow(data, index, todo, prices, tradable):
    """zipline's own per-asset answers for the assets flagged in ``todo``."""
    prices = np.array(prices, dtype=float)
    tradable = np.array(tradable, dtype=bool)
    if todo.any():
        rest = list(index[todo])
        prices[todo] = np.asarray(pd.Series(data.current(rest, "price")), dtype=float)
        tradable[todo] = np.asarray(pd.Series(data.can_trade(rest)), dtype=bool)
    return BarSnapshot(index, pd.Series(prices, index=index), pd.Series(tradable, index=index),
                       int((~todo).sum()))


def _price_of(asset, positions, orders, prices):
    if prices is not None and asset in prices.index and np.isfinite(prices[asset]):
        return float(prices[asset])
    pos = positions.get(asset) if positions is not None else None
    if pos is not None and getattr(pos, "last_sale_price", 0):
        return float(pos.last_sale_price)
    for o in orders:
        for attr in ("limit", "stop"):
            px = getattr(o, attr, None)
            if px:
                return float(px)
    return None


def portfolio_weights(portfolio, open_orders=None, prices=None):
    """Current weights ``amount * price * multiplier / portfolio_value`` by asset.

    The one definition of a zipline book's weights (the optimiser's current weights,
    the exposures the algorithms record).

    Parameters
    ----------
    portfolio : zipline.protocol.Portfolio
        Or any object with ``portfolio_value`` and ``positions`` (mapping asset ->
        object with ``amount`` and ``last_sale_price``).
    open_orders : dict, optional
        ``{asset: [order, ...]}`` as from ``zipline.api.get_open_orders()``; the
        unfilled part ``amount - filled`` of each is added to the position.
    prices : pandas.Series, optional
        Prices of assets with open orders but no position (e.g.
        ``data.current(assets, "price")``); otherwise the position's last sale price,
        then the order's limit or stop price. An open order that cannot be priced is
        left out, with a logged warning.

    Returns
    -------
    pandas.Series
        Non-zero weights by asset.

    Raises
    ------
    ValueError
        If the portfolio value is not positive (weights of it mean nothing).
    """
    pv = float(portfolio.portfolio_value)
    if not np.isfinite(pv) or pv <= 0:
        raise ValueError(f"portfolio value must be positive to compute weights, got {pv}")
    positions = portfolio.positions
    values = {}
    for asset, pos in positions.items():
        mult = float(getattr(asset, "price_multiplier", 1.0) or 1.0)
        values[asset] = float(pos.amount) * float(pos.last_sale_price) * mult
    for asset, orders in (open_orders or {}).items():
        outstanding = sum(float(o.amount) - float(getattr(o, "filled", 0)) for o in orders)
        if outstanding == 0:
            continue
        px = _price_of(asset, positions, orders, prices)
        if px is None:
            logging.getLogger(__name__).warning(
                "open order for %r cannot be priced; left out of the current weights "
                "(pass data= to order_optimal_portfolio)", asset)
            continue
        mult = float(getattr(asset, "price_multiplier", 1.0) or 1.0)
        values[asset] = values.get(asset, 0.0) + outstanding * px * mult
    out = pd.Series(values, dtype=float) / pv
    return out[out != 0]


def bar_returns(data, assets, algo=None):
    """Each asset's total return over the current session, for the whole book at once.

    ``close / round(previous close * ratio, 3) - 1``, with ``ratio`` the product of
    the split, merger and dividend adjustments effective on the session (zipline's
    history rounds adjusted prices to 3 decimals): what
    ``data.history(assets, "price", 2, "1d")`` gives as ``last / first - 1``.
    Assets the block read cannot settle (no close on either session, a session
    outside the asset's life, minute mode, another reader) are answered by that
    ``data.history`` call; NaN where zipline has no return either.

    Returns
    -------
    pandas.Series
        Returns by asset.
    """
    index, algo, reader = _book(assets, algo)
    n = len(index)
    out = np.full(n, np.nan)
    todo = np.ones(n, dtype=bool)
    if reader is not None:
        idx = _index_of(reader)
        session, _, sids = _session_and_sids(algo, index)
        rows = idx.rows(sids, session)
        known = sids >= 0
        first = np.where(known, idx.first[np.clip(sids, 0, len(idx.first) - 1)], -1)
        ok = (rows > first) & (first >= 0)  # a row today and one before it
        today = np.zeros(n)
        before = np.zeros(n)
        if ok.any():
            today[ok] = idx.close[rows[ok]]
            before[ok] = idx.close[rows[ok] - 1]
        ok &= (today > 0) & (before > 0)
        ratios = idx.ratios(algo.data_portal, session.value)
        ratio = np.array([ratios.get(int(s), 1.0) for s in sids]) if ratios else np.ones(n)
        # as zipline's history window: prices * 0.001, adjusted, rounded to 3 decimals
        now = np.round(today[ok] * 0.001, 3)
        then = np.round(before[ok] * 0.001 * ratio[ok], 3)
        out[ok] = now / then - 1.0
        todo = ~ok
    if todo.any():
        rest = list(index[todo])
        prices = data.history(rest, "price", 2, "1d")
        out[todo] = (prices.iloc[-1] / prices.iloc[0] - 1.0).reindex(rest).to_numpy(dtype=float)
    return pd.Series(out, index=index)
