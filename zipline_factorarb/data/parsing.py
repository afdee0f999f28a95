"""Strict parsing of the cells of user price and metadata files.

Every value must be a plain number (missing markers such as ``NA`` give NaN)
or a plain ``YYYY-MM-DD`` date (a time of day is ignored; a zone only with
midnight, never shifting the date); anything else is a
:class:`~.errors.BundleDataError` naming the file, line, symbol (and date),
with a hint for the usual cause. Nothing is coerced silently. The full rules
are in ``docs/ingest.md`` ("Every cell parsed strictly").
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .errors import BundleDataError

#: Cell texts read as a missing number (compared lower-cased, stripped).
MISSING_NUMBER = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "#n/a", "#na", "<na>"})
#: The same texts as written in files, for ``pandas.read_csv(na_values=...)``.
MISSING_NUMBER_CELLS = sorted(
    {v for m in MISSING_NUMBER for v in (m, m.upper(), m.title(), m.capitalize())}
    | {"N/a", "NaN", "-NaN", "#N/A", "#NA", "<NA>"})

_DATE = re.compile(
    r"^(?P<date>\d{4}[-/]\d{1,2}[-/]\d{1,2})"
    r"(?:[T ](?P<time>\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)"
    r"\s*(?P<tz>Z|UTC|[+-]\d{2}(?::?\d{2})?)?)?$"
)


def _show(value):
    """repr() of a cell without numpy's type names."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _where(frame, i, symbol=None):
    row = frame["_row"].iloc[i]
    where = dict(file=str(frame["_file"].iloc[i]),
                 row=None if pd.isna(row) else int(row))
    if "symbol" in frame.columns:
        where["symbol"] = frame["symbol"].iloc[i]
    elif symbol is not None:
        where["symbol"] = symbol
    return where


def _number_hint(text):
    t = text.strip()
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", t):
        return ("it looks like a number with thousands separators; write it without them "
                f"({t.replace(',', '')})")
    if re.fullmatch(r"[+-]?\d+,\d+", t):
        return "a decimal comma? write the number with a decimal point"
    if re.fullmatch(r"[+-]?\d+(\.\d+)?( ?[_' ]\d{3})+(\.\d+)?", t):
        return "write the number without digit grouping"
    if t.endswith("%"):
        return "percent signs are not read: give the plain number (e.g. 0.015 rather than 1.5%)"
    if re.fullmatch(r"[+-]?\d+\s*:\s*\d+", t):
        return "a ratio such as 2:1 is not read: give it as one number (2 for a 2-for-1 split)"
    if re.fullmatch(r"[+-]?(inf|infinity)", t, flags=re.I):
        return "infinite values are not prices"
    if not re.search(r"\d", t):
        return ("give a plain decimal number such as 1234.5; leave the cell empty or write NA "
                "for a missing value")
    if re.search(r"[$€£¥]|\d\s*[kKmMbB]$|[A-Za-z]", t):
        return "currency symbols, units or suffixes (k, M, USD) are not read: give the plain number"
    return "give a plain decimal number such as 1234.5"


def parse_numbers(frame, column, symbol=None, what="a plain number"):
    """``frame[column]`` as float64; missing markers give NaN.

    Raises :class:`BundleDataError` at the first cell that is not a plain
    finite number (or missing), with a hint about its likely cause.
    """
    raw = frame[column]
    if pd.api.types.is_bool_dtype(raw):
        bad = np.ones(len(raw), dtype=bool)
        values = None
    elif pd.api.types.is_numeric_dtype(raw):
        values = raw.to_numpy(dtype=float, na_value=np.nan)
        bad = np.isinf(values)
    else:
        text = raw.astype("string").str.strip()
        missing = text.isna() | text.str.lower().isin(MISSING_NUMBER)
        values = pd.to_numeric(text.where(~missing, None), errors="coerce").to_numpy(
            dtype=float, na_value=np.nan)
        # a value such as True read from Parquet is not a number either
        if pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty"):
            objects = np.zeros(len(raw), dtype=bool)
        else:
            objects = raw.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
        bad = (np.isnan(values) & ~missing.to_numpy(dtype=bool)) | np.isinf(values) | objects
        ok = ~np.isnan(values) & ~bad
        if ok.any():
            # the exact (correctly rounded) value of each accepted text
            values[ok] = text[ok].astype(str).astype(float).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = raw.iloc[i]
        hint = _number_hint(str(value))
        extra = f" ({int(bad.sum())} such cells in the file)" if bad.sum() > 1 else ""
        where = _where(frame, i, symbol)
        if "date" in frame.columns and isinstance(frame["date"].iloc[i], pd.Timestamp):
            where["date"] = str(frame["date"].iloc[i].date())
        raise BundleDataError(
            f"{column} {_show(value)} is not {what}: {hint}{extra}", **where)
    return values


def _date_hint(text):
    t = str(text).strip()
    if re.fullmatch(r"\d{8}(\.0)?", t):
        return (f"an integer date such as {t[:8]} is not read (it would be taken as "
                f"nanoseconds after 1970): write {t[:4]}-{t[4:6]}-{t[6:8]}")
    if re.fullmatch(r"\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}", t):
        return ("day-first and month-first dates (02/01/2019) cannot be told apart: "
                "write dates as YYYY-MM-DD")
    if _DATE.match(t.replace("  ", " ")) is None and re.match(r"^\d{4}-\d{2}-\d{2}", t):
        return ("the time part is not read; use YYYY-MM-DD, optionally followed by "
                "HH:MM:SS and a UTC offset such as +09:00")
    if re.search(r"[A-Za-z]{3}", t):
        return "month names are not read: write dates as YYYY-MM-DD"
    return "write dates as YYYY-MM-DD"


def _tz_midnight_error(frame, i, symbol, value):
    return BundleDataError(
        f"date {value!r} has a time of day with a time zone; the session of an instant "
        "depends on the exchange's clock, so give the session date (YYYY-MM-DD, or "
        "midnight with its offset)", **_where(frame, i, symbol))


def parse_dates(frame, column="date", symbol=None):
    """``frame[column]`` as naive midnight timestamps (see the module's rules)."""
    raw = frame[column]
    kind = pd.api.types.infer_dtype(raw, skipna=False)
    if kind == "string":
        fast = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
        if not fast.isna().any():  # the usual case: plain dates only
            return fast
    elif kind == "date":  # datetime.date objects (a Parquet date32 column)
        return pd.to_datetime(raw)
    if pd.api.types.is_datetime64_any_dtype(raw):
        values = pd.Series(raw.to_numpy(), index=raw.index) if raw.dt.tz is None else raw
        nat = values.isna().to_numpy()
        if nat.any():
            i = int(np.flatnonzero(nat)[0])
            raise BundleDataError("date is missing", **_where(frame, i, symbol))
        if getattr(values.dt, "tz", None) is not None:
            wall = values.dt.tz_localize(None)  # the wall-clock time in its own zone
            off = (wall != wall.dt.normalize()).to_numpy()
            if off.any():
                i = int(np.flatnonzero(off)[0])
                raise _tz_midnight_error(frame, i, symbol, str(values.iloc[i]))
            return wall.dt.normalize()
        return values.dt.normalize()
    if pd.api.types.is_numeric_dtype(raw):
        i = 0
        raise BundleDataError(
            f"unparsable date {_show(raw.iloc[i])} (a number): {_date_hint(raw.iloc[i])}",
            **_where(frame, i, symbol))
    objs = raw.to_numpy(dtype=object)
    # datetime.date / Timestamp objects (Parquet object columns)
    is_obj_date = np.array([hasattr(v, "year") and not isinstance(v, str) for v in objs], dtype=bool)
    text = raw.astype("string").str.strip()
    missing = (text.isna() | (text == "")).to_numpy(dtype=bool) & ~is_obj_date
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise BundleDataError(f"date is missing ({int(missing.sum())} such row(s))",
                              **_where(frame, i, symbol))
    out = pd.to_datetime(text.where(~pd.Series(is_obj_date, index=text.index), None),
                         format="%Y-%m-%d", errors="coerce")
    if is_obj_date.any():
        stamps = []
        for j in np.flatnonzero(is_obj_date):
            t = pd.Timestamp(objs[j])
            if t.tzinfo is not None:
                t = t.tz_localize(None)  # its wall-clock time in its own zone
                if t != t.normalize():
                    raise _tz_midnight_error(frame, int(j), symbol, str(objs[j]))
            stamps.append(t)
        out[is_obj_date] = stamps
    todo = out.isna().to_numpy()
    if todo.any():
        idx = np.flatnonzero(todo)
        parts = text.iloc[idx].str.replace("/", "-", regex=False).str.extract(_DATE)
        ok = parts["date"].notna().to_numpy()
        dates = pd.to_datetime(parts["date"], format="%Y-%m-%d", errors="coerce")
        bad = ~ok | dates.isna().to_numpy()
        if bad.any():
            j = int(idx[np.flatnonzero(bad)[0]])
            value = raw.iloc[j]
            raise BundleDataError(
                f"unparsable date {_show(value)} ({int(bad.sum())} such row(s)): "
                f"{_date_hint(value)}",
                **_where(frame, j, symbol))
        tz = parts["tz"].notna().to_numpy()
        if tz.any():
            times = parts["time"].fillna("0:00").str.split(":", expand=True).iloc[:, :3]
            nonzero = np.zeros(len(times), dtype=bool)
            for col in times.columns:
                nonzero |= pd.to_numeric(times[col], errors="coerce").fillna(0).to_numpy() != 0
            off = tz & nonzero
            if off.any():
                j = int(idx[np.flatnonzero(off)[0]])
                raise _tz_midnight_error(frame, j, symbol, raw.iloc[j])
        out.iloc[idx] = dates.to_numpy()
    return pd.to_datetime(out).dt.normalize()


def parse_rows(df, path, symbol_hint=None):
    """Number the rows of a table read from ``path`` and parse its symbols and dates, in place.

    Adds ``_row`` (the file's line number, the header being line 1) and
    ``_file``; ``symbol`` becomes upper-case text (an empty symbol is an error
    naming the file and row) and ``date`` a normalised timestamp
    (:func:`parse_dates`, whose errors name ``symbol_hint``). The one place
    every long table of the bundle sources (prices, fundamentals) goes through.
    """
    df["_row"] = np.arange(len(df)) + 2
    df["_file"] = str(path)
    df["symbol"] = parse_text(df, "symbol").str.upper()
    empty = (df["symbol"] == "").to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise BundleDataError("empty symbol", file=str(path), row=int(df["_row"].iloc[i]))
    df["symbol"] = df["symbol"].astype(object)
    df["date"] = parse_dates(df, "date", symbol_hint)
    return df


def parse_text(frame, column):
    """``frame[column]`` as stripped text; missing cells give ''.

    Used for symbols (``NA``, ``NULL`` and ``N/A`` are valid tickers) and
    metadata labels; files are read without pandas' missing-value markers.
    """
    raw = frame[column]
    if pd.api.types.infer_dtype(raw, skipna=False) == "string":
        return raw.str.strip()
    def text(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))  # a code such as 45 stored as 45.0 beside missing cells
        return str(v)

    return raw.map(text).str.strip()
