"""Adjusted daily returns of bundle assets, read the way zipline reads them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .periods import naive_sessions


def adjusted_returns(bundle, symbols, start, end, environ=None):
    """Daily total returns (splits and dividends applied) for ``symbols``.

    Reads the bundle's latest ingestion through zipline's ``DataPortal`` so
    the numbers are those an algorithm sees; the index holds the sessions,
    tz-naive at midnight. Unknown symbols raise ``LookupError`` naming them.
    """
    from zipline.data import bundles
    from zipline.data.data_portal import DataPortal
    from zipline.utils.calendar_utils import get_calendar

    from ..data.register import load_user_extensions

    load_user_extensions(environ=environ)
    data = bundles.load(bundle, environ=environ)
    try:
        finder = data.asset_finder
        assets, unknown = [], []
        for s in symbols:
            try:
                assets.append(finder.lookup_symbol(s, as_of_date=None))
            except Exception:
                unknown.append(s)
        if unknown:
            raise LookupError(f"symbol(s) {unknown} not found in bundle {bundle!r}")
        calendar = get_calendar(bundles.bundles[bundle].calendar_name)
        start = pd.Timestamp(start).tz_localize(None).normalize()
        end = pd.Timestamp(end).tz_localize(None).normalize()
        sessions = calendar.sessions_in_range(start, end)
        first = data.equity_daily_bar_reader.first_trading_day
        portal = DataPortal(finder, calendar, first, equity_daily_reader=data.equity_daily_bar_reader,
                            adjustment_reader=data.adjustment_reader)
        # one extra bar before the first session, for its return
        closes = portal.get_history_window(assets, sessions[-1], len(sessions) + 1, "1d", "close",
                                           "daily")
        closes.columns = [a.symbol for a in assets]
        rets = closes.pct_change(fill_method=None).iloc[1:]
        rets.index = naive_sessions(rets.index).normalize()
        return rets.replace([np.inf, -np.inf], np.nan)
    finally:
        data.close()


def sectors_of(bundle, symbols, environ=None):
    """GICS sector code of each symbol (-1 unknown) from the bundle's asset db."""
    from zipline.data import bundles

    from ..pipeline.classifiers import _encode_sector, supplementary_codes

    data = bundles.load(bundle, environ=environ)
    try:
        finder = data.asset_finder
        codes = supplementary_codes(finder, "sector", _encode_sector)
        out = {}
        for s in symbols:
            try:
                sid = finder.lookup_symbol(s, as_of_date=None).sid
                out[s] = int(codes[sid]) if sid < len(codes) else -1
            except Exception:
                out[s] = -1
        return pd.Series(out, dtype=np.int64)
    finally:
        data.close()
