"""Crisis windows: pyfolio's list, extended with dated windows through 2023.

pyfolio-reloaded's ``interesting_periods`` stops in 2016 (plus an
open-ended "Covid"); :data:`CRISIS_PERIODS` keeps those and adds fixed,
dated windows. A user file (CSV with ``name,start,end``, or JSON / YAML
mapping name -> [start, end]) can replace or extend them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

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


class PeriodsError(ValueError):
    """A crisis-period file or entry that cannot be used."""


def _timestamp(value, name, where):
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise PeriodsError(f"{where}: period {name!r} has an unparsable date {value!r}") from None
    if ts is pd.NaT:
        raise PeriodsError(f"{where}: period {name!r} has an empty date")
    return ts.tz_localize(None) if ts.tzinfo else ts


def default_periods():
    """pyfolio's interesting periods (tz-naive) followed by :data:`EXTRA_PERIODS`."""
    from pyfolio.interesting_periods import PERIODS

    out = OrderedDict()
    for name, (start, end) in PERIODS.items():
        out[f"{name} (pyfolio)"] = (_timestamp(start, name, "pyfolio"), _timestamp(end, name, "pyfolio"))
    for name, (start, end) in EXTRA_PERIODS.items():
        out[name] = (pd.Timestamp(start), pd.Timestamp(end))
    return out


def validate_periods(periods, where="periods"):
    """Check names and dates; return an OrderedDict name -> (start, end)."""
    out = OrderedDict()
    for name, bounds in periods.items():
        try:
            start, end = bounds
        except (TypeError, ValueError):
            raise PeriodsError(f"{where}: period {name!r} needs [start, end], got {bounds!r}") from None
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
        ``.csv`` with columns ``name,start,end``; or ``.json`` / ``.yaml``
        with a mapping ``name: [start, end]``.
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
        raw = OrderedDict((r.name, (r.start, r.end)) for r in frame.itertuples(index=False))
    elif suffix == ".json":
        raw = json.loads(path.read_text())
    elif suffix in (".yaml", ".yml"):
        import yaml

        raw = yaml.safe_load(path.read_text())
    else:
        raise PeriodsError(f"{path}: use a .csv, .json or .yaml file")
    if not isinstance(raw, dict) or not raw:
        raise PeriodsError(f"{path}: no periods found")
    user = validate_periods(raw, where=str(path))
    if mode == "replace":
        return user
    if mode != "extend":
        raise ValueError(f"mode must be 'extend' or 'replace', got {mode!r}")
    combined = default_periods()
    combined.update(user)
    return combined
