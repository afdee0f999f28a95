"""Validate a :class:`~.sources.PriceData` and shape it for zipline's writers.

All checks run before anything is written, so a bad file never leaves a
half-written ingestion behind. Each failure raises
:class:`~.errors.BundleDataError` naming the file, line, symbol and date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd

from ..checks import check_choice
from .errors import BundleDataError
from .sectors import ASSET_TYPES, UNKNOWN_SECTOR, asset_type_code, sector_code

#: zipline stores prices as uint32 of price x 1000.
MAX_PRICE = np.iinfo(np.uint32).max / 1000.0
MAX_VOLUME = float(np.iinfo(np.uint32).max)
#: The smallest price zipline can store (one thousandth).
MIN_PRICE = 0.001
#: A price whose rounding to thousandths changes it by more than this
#: fraction is refused (0.0456 would be stored as 0.046, 0.9% off).
PRICE_ROUNDING_TOLERANCE = 1e-3
#: One-day changes of adj_close / close smaller than this are float noise of
#: the source (Yahoo's adjusted closes carry ~1e-6), not a dividend.
ADJ_RATIO_TOLERANCE = 1e-5
#: A one-day fall of adj_close / close below this ratio is taken as a split
#: (e.g. 0.5 for 2-for-1) rather than a dividend.
SPLIT_RATIO_THRESHOLD = 0.75
#: Plausible split ratios (new shares per old share, either way round).
SPLIT_RATIO_BOUNDS = (1 / 50, 50.0)
#: A split ratio (new:old shares, the larger number first) must lie this
#: close (relative) to a simple ratio p:q with q one of
#: :data:`SPLIT_DENOMINATORS` (2:1, 3:2, 5:4, 4:3, 21:20, 10:1...): given
#: ratios within :data:`SPLIT_GIVEN_TOLERANCE`, ratios derived from
#: adj_close (which carries rounding) within :data:`SPLIT_DERIVED_TOLERANCE`.
SPLIT_DENOMINATORS = (1, 2, 3, 4, 5, 10, 20)
SPLIT_GIVEN_TOLERANCE = 5e-3
SPLIT_DERIVED_TOLERANCE = 1e-2
#: A one-day move of adj_close / close larger than this (in log terms) that
#: the next session undoes (to within a tenth of its size) is a glitch of one
#: adj_close cell, not a dividend or split.
REVERSAL_THRESHOLD = 0.05
#: What to do with implausible adjustments.
ADJUSTMENT_MODES = ("raise", "quarantine")


@dataclass
class PreparedBundle:
    """Everything the writers need, aligned to the calendar's sessions."""

    bars: dict  # symbol -> DataFrame(open, high, low, close, volume) indexed by session
    assets: pd.DataFrame  # one row per symbol, sorted by symbol: sid order
    splits: pd.DataFrame  # symbol, ratio, effective_date
    dividends: pd.DataFrame  # symbol, ex_date, amount
    report: dict = field(default_factory=dict)

    def summary(self) -> str:
        """A few human-readable lines about what was ingested and repaired."""
        r = self.report
        lines = [
            f"{r['n_symbols']} symbols, {r['n_rows']} bars, "
            f"{r['first_date']} .. {r['last_date']} from {r['source']}",
            f"adjustments: {len(self.splits)} splits, {len(self.dividends)} dividends"
            + (" (derived from adj_close)" if r.get("derived_from_adj_close") else ""),
        ]
        filled = r.get("filled_sessions", {})
        if filled:
            total = sum(len(v) for v in filled.values())
            worst = sorted(filled.items(), key=lambda kv: -len(kv[1]))[:8]
            lines.append(
                f"forward-filled {total} missing session(s) with zero volume in "
                f"{len(filled)} symbol(s): "
                + ", ".join(f"{s} ({len(d)}: {d[0]}{'..' + d[-1] if len(d) > 1 else ''})" for s, d in worst)
                + (" ..." if len(filled) > len(worst) else "")
            )
        quarantined = r.get("quarantined", [])
        if quarantined:
            lines.append(f"quarantined {len(quarantined)} implausible adjustment(s), not applied:")
            for q in quarantined[:20]:
                lines.append(f"  {q['symbol']} {q['date']} {q['kind']} {q['value']:.6g}: "
                             f"{q['reason']}")
            if len(quarantined) > 20:
                lines.append(f"  ... and {len(quarantined) - 20} more (listed in the summary file)")
        for w in r.get("warnings", []):
            lines.append(f"warning: {w}")
        return "\n".join(lines)


def _where(df, i):
    row = df.iloc[i]
    return dict(file=row["_file"], row=None if pd.isna(row["_row"]) else int(row["_row"]),
                symbol=row["symbol"], date=str(pd.Timestamp(row["date"]).date()))


def _first_bad(df, mask, message, count_hint=True):
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        i = int(np.flatnonzero(mask)[0])
        n = int(mask.sum())
        extra = f" ({n} such rows)" if count_hint and n > 1 else ""
        raise BundleDataError(message(df.iloc[i]) + extra, **_where(df, i))


def check_no_duplicates(df, what, unit):
    """BundleDataError at the first (date, symbol) given twice in ``df``.

    Names the first row of the first duplicated pair (by symbol, date, file,
    row) and where the second stands: ``"<what> also at <file> line <row>
    (<n> duplicated <unit> in all)"``. The one duplicate check of the long
    tables (prices, each fundamentals column).
    """
    dup = df.duplicated(["date", "symbol"], keep=False).to_numpy()
    if dup.any():
        first = df[dup].sort_values(["symbol", "date", "_file", "_row"])
        a, b = first.iloc[0], first.iloc[1]
        raise BundleDataError(
            f"{what} also at {b['_file']} line {b['_row']} ({int(dup.sum())} duplicated "
            f"{unit} in all)",
            file=a["_file"], row=int(a["_row"]), symbol=a["symbol"], date=str(a["date"].date()),
        )


def _format_rows(df, mask, limit=5):
    sub = df.loc[mask]
    items = [f"{r.symbol} {pd.Timestamp(r.date).date()}" for r in sub.head(limit).itertuples()]
    return ", ".join(items) + (f" and {len(sub) - limit} more" if len(sub) > limit else "")


def validate_prices(prices: pd.DataFrame, sessions: pd.DatetimeIndex, ohlc: str = "raise",
                    warnings_out=None, ohlc_switch=None, calendar_name=None) -> pd.DataFrame:
    """Check the long price frame row by row; return a cleaned copy.

    Parameters
    ----------
    prices : DataFrame
        Long frame from a reader (with ``_file`` and ``_row``).
    sessions : DatetimeIndex
        The calendar's sessions the bundle may cover.
    ohlc : {'raise', 'repair'}
        What to do with rows whose open/close lie outside [low, high] or whose
        high is below the low: raise (default), or widen high/low to contain
        open and close and report each repaired row.
    ohlc_switch : str, optional
        How the user asks for 'repair' for this bundle, named in the error
        (e.g. ``FACTORARB_CSV_OHLC=repair``); default: the ``ohlc='repair'``
        argument of the bundle's registration.
    calendar_name : str, optional
        The exchange calendar the sessions come from, named in errors
        (default ``XNYS``).
    """
    repair = (f"set {ohlc_switch}" if ohlc_switch
              else "register the bundle with ohlc='repair'") + " to widen high/low instead"
    check_choice("ohlc", ohlc, ("raise", "repair"))
    notes = warnings_out if warnings_out is not None else []
    df = prices.reset_index(drop=True).copy()
    if df.empty:
        raise BundleDataError("no price rows at all")

    # duplicates ----------------------------------------------------------
    check_no_duplicates(df, "duplicate (date, symbol):", "rows")

    # close ---------------------------------------------------------------
    close = df["close"].to_numpy()
    _first_bad(df, np.isnan(close), lambda r: "close is missing (NaN)")
    _first_bad(df, close <= 0, lambda r: f"close must be positive, got {r['close']}")

    # open / high / low ---------------------------------------------------
    for col in ("open", "high", "low"):
        values = df[col].to_numpy()
        _first_bad(df, values <= 0, lambda r, c=col: f"{c} must be positive, got {r[c]}")
        nan = np.isnan(values)
        if nan.any():
            notes.append(
                f"{col} missing on {int(nan.sum())} row(s), set to the close: {_format_rows(df, nan)}"
            )
            df.loc[nan, col] = df.loc[nan, "close"]

    # storage limits ------------------------------------------------------
    for col in ("open", "high", "low", "close"):
        values = df[col].to_numpy()
        _first_bad(df, values > MAX_PRICE, lambda r, c=col: (
            f"{c} {r[c]} is beyond zipline's price storage (uint32 of price x 1000, "
            f"max {MAX_PRICE:.3f}); rescale this symbol's prices"))

    for col in ("open", "high", "low", "close"):
        values = df[col].to_numpy()
        _first_bad(df, values < MIN_PRICE, lambda r, c=col: (
            f"{c} {r[c]} is below zipline's price precision (prices are stored in "
            f"thousandths, the smallest is {MIN_PRICE}); quote this symbol's prices in a "
            "larger unit (e.g. per 1000 shares) so that no value is below 0.001"))
        stored = np.round(values * 1000.0) / 1000.0
        _first_bad(df, np.abs(stored - values) > PRICE_ROUNDING_TOLERANCE * values,
                   lambda r, c=col: (
                       f"{c} {r[c]} would be stored as {np.round(r[c] * 1000) / 1000:.3f} "
                       "(zipline keeps prices in thousandths), changing it by more than "
                       f"{PRICE_ROUNDING_TOLERANCE:.1%}; quote this symbol's prices in a larger "
                       "unit (e.g. per 1000 shares)"))

    hi, lo, op, cl = (df[c].to_numpy() for c in ("high", "low", "open", "close"))
    inverted = hi < lo
    outside = (op > hi) | (op < lo) | (cl > hi) | (cl < lo)
    if ohlc == "raise":
        _first_bad(df, inverted, lambda r: f"high {r['high']} is below low {r['low']} "
                   f"({repair})")
        _first_bad(df, outside, lambda r: f"open {r['open']} / close {r['close']} outside "
                   f"[low {r['low']}, high {r['high']}] ({repair})")
    elif (inverted | outside).any():
        bad = inverted | outside
        notes.append(
            f"repaired {int(bad.sum())} row(s) whose open/close lay outside [low, high] "
            f"or whose high was below the low: {_format_rows(df, bad, limit=20)}"
        )
        stack = np.vstack([hi, lo, op, cl])
        df["high"] = stack.max(axis=0)
        df["low"] = stack.min(axis=0)

    vol = df["volume"].to_numpy()
    _first_bad(df, vol < 0, lambda r: f"volume must not be negative, got {r['volume']}")
    _first_bad(df, vol > MAX_VOLUME, lambda r: (
        f"volume {r['volume']:.0f} is beyond zipline's volume storage (uint32, max {MAX_VOLUME:.0f})"))
    nanvol = np.isnan(vol)
    if nanvol.any():
        notes.append(f"volume missing on {int(nanvol.sum())} row(s), set to 0: {_format_rows(df, nanvol)}")
        df.loc[nanvol, "volume"] = 0.0
    vol = df["volume"].to_numpy()
    fractional = vol != np.round(vol)
    if fractional.any():
        # zipline stores whole shares; round (half to even) rather than truncate
        notes.append(f"volume fractional on {int(fractional.sum())} row(s), rounded to the "
                     f"nearest whole share: {_format_rows(df, fractional)}")
        df["volume"] = np.round(vol)

    # optional columns ----------------------------------------------------
    if "adj_close" in df.columns:
        adj = df["adj_close"].to_numpy()
        has = ~np.isnan(adj)
        per_symbol = pd.Series(has).groupby(df["symbol"].to_numpy())
        partial = per_symbol.any() & ~per_symbol.all()
        if partial.any():
            sym = partial[partial].index[0]
            _first_bad(df, (df["symbol"].to_numpy() == sym) & ~has, lambda r: (
                "adj_close is missing on this row but given on others of the symbol; "
                "give it on every row or on none"))
        _first_bad(df, has & (adj <= 0), lambda r: f"adj_close must be positive, got {r['adj_close']}")
    if "dividend" in df.columns:
        div = df["dividend"].fillna(0.0)
        _first_bad(df, div.to_numpy() < 0, lambda r: f"dividend must not be negative, got {r['dividend']}")
        df["dividend"] = div
    if "split" in df.columns:
        spl = df["split"].fillna(1.0).replace(0.0, 1.0)
        _first_bad(df, spl.to_numpy() < 0, lambda r: (
            f"split must be a positive ratio of new to old shares, got {r['split']}"))
        df["split"] = spl

    # calendar ------------------------------------------------------------
    dates = pd.DatetimeIndex(df["date"])
    _first_bad(df, dates < sessions[0], lambda r: (
        f"date is before the calendar's first session {sessions[0].date()}"))
    _first_bad(df, dates > sessions[-1], lambda r: (
        f"date is after the calendar's last session {sessions[-1].date()}"))
    _first_bad(df, ~dates.isin(sessions), lambda r: (
        f"{pd.Timestamp(r['date']).day_name()} {pd.Timestamp(r['date']).date()} is not a "
        f"trading session of the calendar ({calendar_name or 'XNYS'})"))
    return df


def _resolve_metadata(metadata, symbols, notes):
    rows = {}
    if metadata is not None:
        for rec in metadata.to_dict("records"):
            where = dict(file=rec["_file"], row=None if pd.isna(rec["_row"]) else int(rec["_row"]),
                         symbol=rec["symbol"])
            try:
                sector = sector_code(rec["sector"])
                atype = ASSET_TYPES[asset_type_code(rec["asset_type"])]
            except KeyError as exc:
                raise BundleDataError(exc.args[0], **where) from None
            name = rec.get("name")
            exchange = rec.get("exchange")
            rows[rec["symbol"]] = dict(
                asset_name=str(name) if isinstance(name, str) and name.strip() else rec["symbol"],
                sector=sector, asset_type=atype,
                exchange=str(exchange).strip().upper() if isinstance(exchange, str) and exchange.strip() else "NYSE",
            )
        orphan = sorted(set(rows) - set(symbols))
        if orphan:
            notes.append(f"metadata for {len(orphan)} symbol(s) with no prices, ignored: "
                         + ", ".join(orphan[:20]) + (" ..." if len(orphan) > 20 else ""))
    unknown = [s for s in symbols if s not in rows]
    if unknown:
        if metadata is not None:
            notes.append(f"no metadata for {len(unknown)} symbol(s); sector unknown, asset type "
                         "stock: " + ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else ""))
        for s in unknown:
            rows[s] = dict(asset_name=s, sector=UNKNOWN_SECTOR, asset_type="stock", exchange="NYSE")
    return rows


def split_problem(shares, tolerance=SPLIT_GIVEN_TOLERANCE):
    """Why a split of ``shares`` new shares per old share is implausible, or None.

    Plausible: within :data:`SPLIT_RATIO_BOUNDS` and within ``tolerance``
    (relative) of a simple ratio p:q with q in :data:`SPLIT_DENOMINATORS`
    (2:1, 3:2, 21:20, 1:10...).
    """
    lo, hi = SPLIT_RATIO_BOUNDS
    if not np.isfinite(shares) or not lo <= shares <= hi:
        return f"outside the plausible range 1:{1 / lo:.0f} .. {hi:.0f}:1"
    x = shares if shares >= 1 else 1.0 / shares
    f = _nearest_simple(x)
    if abs(float(f) - x) > tolerance * x:
        near = f"{f.numerator}:{f.denominator}" if shares >= 1 else f"{f.denominator}:{f.numerator}"
        return f"not near a simple ratio such as 2:1, 3:2 or 1:10 (nearest {near})"
    return None


def _nearest_simple(x):
    """The ratio p/q (q in :data:`SPLIT_DENOMINATORS`) nearest to ``x``."""
    candidates = [Fraction(max(1, round(x * q)), q) for q in SPLIT_DENOMINATORS]
    return min(candidates, key=lambda f: abs(float(f) - x))


class _AdjustmentCheck:
    """Refuse (mode 'raise') or set aside (mode 'quarantine') implausible adjustments."""

    def __init__(self, mode, switch, quarantined):
        if mode not in ADJUSTMENT_MODES:
            raise ValueError(f"adjustments must be one of {ADJUSTMENT_MODES}, got {mode!r}")
        self.mode = mode
        self.switch = switch
        self.quarantined = quarantined

    def reject(self, message, where, kind, value):
        if self.mode == "raise":
            how = (f"set {self.switch}" if self.switch
                   else "register the bundle with adjustments='quarantine'")
            raise BundleDataError(
                f"{message} ({how} to leave such adjustments out and list them in the "
                "ingest summary)", **where)
        self.quarantined.append(dict(
            symbol=where.get("symbol"), date=where.get("date"), kind=kind,
            value=float(value), reason=message, file=where.get("file"), line=where.get("row")))


def _locator(symbol, group):
    """date -> dict(file, row, symbol, date) for a symbol's rows."""
    rows = dict(zip(pd.DatetimeIndex(group["date"]), zip(group["_file"], group["_row"])))

    def where(date):
        date = pd.Timestamp(date)
        file, row = rows.get(date, (None, None))
        return dict(file=file, row=None if row is None or pd.isna(row) else int(row),
                    symbol=symbol, date=str(date.date()))

    return where


def _derive_adjustments(symbol, frame, notes, check, where):
    """Dividends and splits implied by adj_close / close (Yahoo convention).

    With k_t = adj_close_t / close_t, a one-day ratio r_t = k_{t-1} / k_t
    below 1 means prices before t are scaled by r_t: a cash dividend of
    (1 - r_t) close_{t-1} on ex-date t, or, for r_t <
    :data:`SPLIT_RATIO_THRESHOLD`, a split with ratio r_t; r_t above
    1 / :data:`SPLIT_RATIO_THRESHOLD` is a reverse split. A move larger than
    :data:`REVERSAL_THRESHOLD` that the next session undoes is a glitch of one
    cell, and a split ratio that is not plausible (:func:`split_problem`) is
    refused or quarantined by ``check`` (an :class:`_AdjustmentCheck`); ``where``
    is the :func:`_locator` of the symbol's rows.
    """
    k = (frame["adj_close"] / frame["close"]).to_numpy()
    r = k[:-1] / k[1:]
    dates = frame.index[1:]
    prev_close = frame["close"].to_numpy()[:-1]
    logr = np.log(r)
    skip = np.zeros(len(r), dtype=bool)
    big = np.abs(logr) > REVERSAL_THRESHOLD
    for i in np.flatnonzero(big[:-1]):
        if (big[i + 1] and not skip[i] and np.sign(logr[i]) != np.sign(logr[i + 1])
                and abs(logr[i] + logr[i + 1]) < 0.1 * abs(logr[i])):
            check.reject(
                f"adj_close/close moves by a factor {np.exp(-logr[i]):.6g} on this session and "
                f"back on the next ({dates[i + 1].date()}): a bad adj_close or close cell, "
                "not a dividend or split", where(dates[i]), "adj_close glitch", r[i])
            skip[i] = skip[i + 1] = True
    up = (r > 1 + ADJ_RATIO_TOLERANCE) & (r <= 1 / SPLIT_RATIO_THRESHOLD) & ~skip
    if up.any():
        notes.append(f"{symbol}: adj_close/close rises on {int(up.sum())} day(s) (first "
                     f"{dates[np.argmax(up)].date()}); ignored, it implies no dividend")
    split = ((r < SPLIT_RATIO_THRESHOLD) | (r > 1 / SPLIT_RATIO_THRESHOLD)) & ~skip
    for i in np.flatnonzero(split):
        shares = 1.0 / r[i]
        why = split_problem(shares, SPLIT_DERIVED_TOLERANCE)
        if why is not None:
            check.reject(f"adj_close/close implies a split of {shares:.6g} new shares per old "
                         f"share, {why}", where(dates[i]), "derived split", shares)
            split[i] = False
    div = (r < 1 - ADJ_RATIO_TOLERANCE) & (r >= SPLIT_RATIO_THRESHOLD) & ~skip
    splits = pd.DataFrame({"symbol": symbol, "ratio": r[split], "effective_date": dates[split]})
    dividends = pd.DataFrame({"symbol": symbol, "ex_date": dates[div],
                              "amount": (1.0 - r[div]) * prev_close[div]})
    return splits, dividends


def _given_adjustments(symbol, frame, notes, check, where):
    """Splits and dividends from the ``split`` / ``dividend`` columns, checked."""
    splits = dividends = None
    if "split" in frame.columns:
        s = frame["split"]
        s = s[s != 1.0]
        keep = np.ones(len(s), dtype=bool)
        for i, (date, shares) in enumerate(s.items()):
            why = split_problem(shares, SPLIT_GIVEN_TOLERANCE)
            if why is not None:
                check.reject(f"split {shares:g} (new shares per old share) is implausible: {why}",
                             where(date), "split", shares)
                keep[i] = False
        s = s[keep]
        splits = pd.DataFrame({"symbol": symbol, "ratio": 1.0 / s.to_numpy(),
                               "effective_date": s.index})
    if "dividend" in frame.columns:
        d = frame["dividend"]
        d = d[d > 0]
        if len(d) and d.index[0] == frame.index[0]:
            notes.append(f"{symbol}: dividend on its first day {d.index[0].date()} dropped "
                         "(no prior close to adjust)")
            d = d.iloc[1:]
        prev_close = frame["close"].shift(1).reindex(d.index).to_numpy()
        keep = np.ones(len(d), dtype=bool)
        for i, (date, amount) in enumerate(d.items()):
            if amount >= prev_close[i]:
                check.reject(
                    f"dividend {amount:g} is not below the previous close {prev_close[i]:g}; "
                    "applied, it would make every earlier price zero or negative",
                    where(date), "dividend", amount)
                keep[i] = False
        d = d[keep]
        dividends = pd.DataFrame({"symbol": symbol, "ex_date": d.index, "amount": d.to_numpy()})
    return splits, dividends


def prepare(data, sessions: pd.DatetimeIndex, ohlc: str = "raise",
            adjustments=None, calendar_name=None) -> PreparedBundle:
    """Validate ``data`` and align every symbol to ``sessions``.

    A session missing inside a symbol's life (between its first and last
    row) is forward-filled from the previous close with zero volume and
    listed in ``report['filled_sessions']``.

    ``adjustments`` ('raise' or 'quarantine'; default ``data.adjustments``
    or 'raise') says what to do with implausible splits, dividends and
    adj_close moves: raise a :class:`BundleDataError`, or leave them out and
    list them in ``report['quarantined']`` and the summary.
    """
    notes = list(getattr(data, "notes", []))
    quarantined = []
    check = _AdjustmentCheck(adjustments or getattr(data, "adjustments", None) or "raise",
                             getattr(data, "adjustments_switch", None), quarantined)
    sessions = pd.DatetimeIndex(sessions)
    df = validate_prices(data.prices, sessions, ohlc=ohlc, warnings_out=notes,
                         ohlc_switch=getattr(data, "ohlc_switch", None),
                         calendar_name=calendar_name)
    df = df.sort_values(["symbol", "date"], kind="stable")
    symbols = sorted(df["symbol"].unique())
    meta = _resolve_metadata(data.metadata, symbols, notes)

    has_adj = "adj_close" in df.columns
    has_explicit = ("dividend" in df.columns) or ("split" in df.columns)
    if has_adj and has_explicit:
        notes.append("dividend/split columns given: adjustments taken from them, adj_close ignored")
    value_cols = ["open", "high", "low", "close", "volume"]
    extra_cols = [c for c in ("adj_close", "dividend", "split") if c in df.columns]

    bars, assets, split_frames, div_frames, filled = {}, [], [], [], {}
    pos = np.searchsorted(sessions, df["date"].to_numpy())
    df = df.assign(_pos=pos)
    for symbol, g in df.groupby("symbol", sort=True):
        first, last = int(g["_pos"].iloc[0]), int(g["_pos"].iloc[-1])
        life = sessions[first:last + 1]
        frame = g.set_index("date")[value_cols + extra_cols]
        if len(frame) != len(life):
            missing = life.difference(frame.index)
            filled[symbol] = [str(d.date()) for d in missing]
            frame = frame.reindex(life)
            gap = frame["close"].isna()
            frame["close"] = frame["close"].ffill()
            for col in ("open", "high", "low"):
                frame.loc[gap, col] = frame.loc[gap, "close"]
            frame.loc[gap, "volume"] = 0.0
            if "adj_close" in frame.columns:
                frame["adj_close"] = frame["adj_close"].ffill()
            for col, neutral in (("dividend", 0.0), ("split", 1.0)):
                if col in frame.columns:
                    frame[col] = frame[col].fillna(neutral)
        bars[symbol] = frame[value_cols]
        if has_explicit:
            sp, dv = _given_adjustments(symbol, frame, notes, check, _locator(symbol, g))
            if sp is not None:
                split_frames.append(sp)
            if dv is not None:
                div_frames.append(dv)
        elif has_adj and frame["adj_close"].notna().all() and len(frame) > 1:
            sp, dv = _derive_adjustments(symbol, frame, notes, check, _locator(symbol, g))
            split_frames.append(sp)
            div_frames.append(dv)
        m = meta[symbol]
        assets.append(dict(symbol=symbol, asset_name=m["asset_name"], exchange=m["exchange"],
                           sector=m["sector"], asset_type=m["asset_type"],
                           start_date=life[0], end_date=life[-1]))

    assets = pd.DataFrame(assets)
    splits = (pd.concat(split_frames, ignore_index=True) if split_frames
              else pd.DataFrame(columns=["symbol", "ratio", "effective_date"]))
    dividends = (pd.concat(div_frames, ignore_index=True) if div_frames
                 else pd.DataFrame(columns=["symbol", "ex_date", "amount"]))
    report = dict(
        source=data.source, n_symbols=len(symbols), n_rows=int(sum(len(b) for b in bars.values())),
        first_date=str(min(assets["start_date"]).date()), last_date=str(max(assets["end_date"]).date()),
        filled_sessions=filled, warnings=notes, quarantined=quarantined,
        derived_from_adj_close=bool(has_adj and not has_explicit),
    )
    return PreparedBundle(bars=bars, assets=assets, splits=splits, dividends=dividends, report=report)
