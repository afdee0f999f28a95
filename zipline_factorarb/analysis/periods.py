"""Crisis windows: pyfolio's list, extended with dated windows through 2023.

pyfolio-reloaded's ``interesting_periods`` stops in 2016 (plus an
open-ended "Covid"); :func:`default_periods` keeps those and adds the fixed,
dated windows of :data:`EXTRA_PERIODS`. A user file (CSV with
``name,start,end[,crisis]``, or JSON / YAML mapping name -> [start, end] or
[start, end, crisis]) can replace or extend them.

Every window carries a flag: a *crisis* (a dated stress episode, counted by
the report's findings) or a *regime* (one of pyfolio's whole-period windows
such as "Low Volatility Bull Market" or "Covid" to the present day, shown in
the tables but not counted as a crisis). :class:`Periods` holds the windows
and :attr:`Periods.regimes` the names of those that are not crises.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

#: Dated crisis windows (inclusive), added to pyfolio's list.
EXTRA_PERIODS = OrderedDict([
    ("LTCM 1998", ("1998-08-03", "1998-10-15")),
    ("Dot-com bust 2000-2002", ("2000-03-10", "2002-10-09")),
    ("9/11 2001", ("2001-09-11", "2001-10-11")),
    ("GFC 2007-2009", ("2007-10-09", "2009-03-09")),
    ("Lehman 2008", ("2008-09-15", "2008-11-20")),
    ("Flash crash 2010", ("2010-05-06", "2010-07-02")),
    ("US downgrade 2011", ("2011-07-22", "2011-10-03")),
    ("China/oil 2015-2016", ("2015-08-10", "2016-02-11")),
    ("Volmageddon Feb 2018", ("2018-01-26", "2018-02-08")),
    ("Q4 2018", ("2018-10-01", "2018-12-24")),
    ("COVID crash 2020", ("2020-02-19", "2020-03-23")),
    ("Rate shock 2022", ("2022-01-03", "2022-10-12")),
    ("SVB March 2023", ("2023-03-08", "2023-03-31")),
])


#: pyfolio's windows that are market regimes (years long, or open-ended), not crises.
PYFOLIO_REGIMES = frozenset({"Low Volatility Bull Market", "Recovery", "New Normal", "Covid"})


class PeriodsError(ValueError):
    """A crisis-period file or entry that cannot be used."""


def naive_sessions(index):
    """``index`` as a tz-naive ``DatetimeIndex`` (the windows' dates are tz-naive)."""
    index = pd.DatetimeIndex(index)
    return index.tz_convert(None) if index.tz is not None else index


def window_rows(periods, index):
    """``(row, positions)`` for each window of ``periods`` that the sessions ``index`` overlaps.

    ``row`` opens a table row: ``period``, ``crisis`` (False for a window that
    :class:`Periods` flags as a regime), the first and last session inside the
    window (``start``, ``end``, dates) and ``sessions``; ``positions`` are the
    integer positions of those sessions in ``index`` (inclusive bounds), in
    order. Windows without a session are skipped.
    """
    days = naive_sessions(index)
    for name, (start, end) in periods.items():
        inside = (days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))
        if inside.any():
            pos = np.flatnonzero(inside)
            crisis = periods.is_crisis(name) if hasattr(periods, "is_crisis") else True
            yield {"period": name, "crisis": bool(crisis), "start": days[pos[0]].date(),
                   "end": days[pos[-1]].date(), "sessions": len(pos)}, pos


class Periods(OrderedDict):
    """Windows ``name -> (start, end)`` (tz-naive, inclusive) with a crisis flag.

    ``regimes`` holds the names that are not crises; :meth:`is_crisis` reads it.
    """

    def __init__(self, *args, regimes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.regimes = set(regimes)

    def is_crisis(self, name):
        return name not in self.regimes

    def combined(self, other):
        """These windows, then ``other``'s (overriding by name, flags included)."""
        names = set(other)
        regimes = (self.regimes - names) | (set(getattr(other, "regimes", ())) & names)
        return Periods({**self, **other}, regimes=regimes)


def _timestamp(value, name, where):
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise PeriodsError(f"{where}: period {name!r} has an unparsable date {value!r}") from None
    if ts is pd.NaT:
        raise PeriodsError(f"{where}: period {name!r} has an empty date")
    return ts.tz_localize(None) if ts.tzinfo else ts


def default_periods():
    """pyfolio's interesting periods (tz-naive) followed by :data:`EXTRA_PERIODS`.

    pyfolio's :data:`PYFOLIO_REGIMES` are flagged as regimes, not crises.
    """
    from pyfolio.interesting_periods import PERIODS

    out = Periods()
    for name, (start, end) in PERIODS.items():
        key = f"{name} (pyfolio)"
        out[key] = (_timestamp(start, name, "pyfolio"), _timestamp(end, name, "pyfolio"))
        if name in PYFOLIO_REGIMES:
            out.regimes.add(key)
    for name, (start, end) in EXTRA_PERIODS.items():
        out[name] = (pd.Timestamp(start), pd.Timestamp(end))
    return out


def _flag(value, name, where):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "crisis"):
        return True
    if text in ("false", "no", "0", "regime"):
        return False
    raise PeriodsError(f"{where}: period {name!r} has a crisis flag {value!r}; use true or false")


def validate_periods(periods, where="periods"):
    """Check names, dates and flags; return :class:`Periods`.

    Each value is ``[start, end]`` (a crisis) or ``[start, end, crisis]``
    with ``crisis`` true or false (false: a regime, shown but not counted).
    """
    out = Periods(regimes=getattr(periods, "regimes", ()))
    for name, bounds in periods.items():
        flag = True
        try:
            if not isinstance(bounds, str) and len(bounds) == 3:
                start, end, flag = bounds
            else:
                start, end = bounds
        except (TypeError, ValueError):
            raise PeriodsError(f"{where}: period {name!r} needs [start, end] or "
                               f"[start, end, crisis], got {bounds!r}") from None
        if not _flag(flag, name, where):
            out.regimes.add(str(name))
        start, end = _timestamp(start, name, where), _timestamp(end, name, where)
        if end < start:
            raise PeriodsError(f"{where}: period {name!r} ends ({end.date()}) before it starts "
                               f"({start.date()})")
        out[str(name)] = (start, end)
    return out


def load_periods(path, mode="extend"):
    """Read a crisis-period file and combine it with the defaults.

    Parameters
    ----------
    path : str or path
        ``.csv`` with columns ``name,start,end`` and optionally ``crisis``
        (true/false); or ``.json`` / ``.yaml`` with a mapping
        ``name: [start, end]`` or ``name: [start, end, crisis]``.
    mode : {'extend', 'replace'}
        Add to (and override by name) the defaults, or use the file alone.
    """
    path = Path(path)
    if not path.exists():
        raise PeriodsError(f"crisis period file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path)
        missing = {"name", "start", "end"} - set(frame.columns)
        if missing:
            raise PeriodsError(f"{path}: missing column(s) {sorted(missing)}; need name,start,end")
        columns = ["name", "start", "end"] + (["crisis"] if "crisis" in frame.columns else [])
        raw = OrderedDict((row[0], row[1:])
                          for row in frame[columns].itertuples(index=False, name=None))
    elif suffix == ".json":
        raw = json.loads(path.read_text())
    elif suffix in (".yaml", ".yml"):
        import yaml

        raw = yaml.safe_load(path.read_text())
    else:
        raise PeriodsError(f"{path}: use a .csv, .json or .yaml file")
    if not isinstance(raw, dict) or not raw:
        raise PeriodsError(f"{path}: no periods found")
    return _with_defaults(validate_periods(raw, where=str(path)), mode)


def _with_defaults(user, mode):
    if mode == "replace":
        return user
    if mode != "extend":
        raise ValueError(f"mode must be 'extend' or 'replace', got {mode!r}")
    return default_periods().combined(user)


def periods_of(source=None, mode="extend"):
    """The crisis windows: the defaults (``source`` None), or a file (:func:`load_periods`)
    or mapping (:func:`validate_periods`) that extends (``mode='extend'``) or replaces them."""
    if source is None:
        return default_periods()
    if isinstance(source, (str, Path)):
        return load_periods(source, mode=mode)
    return _with_defaults(validate_periods(source), mode)
