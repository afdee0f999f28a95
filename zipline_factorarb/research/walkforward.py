"""Walk-forward folds: train on the past, test on the window that follows.

A fold is four session dates. The training window ``[train_start,
train_end]`` is where anything fitted (PCA loadings, a calibrated risk
aversion) may look; the test window ``[test_start, test_end]`` is the only
span a sweep backtests. The test window starts on the first session after
``train_end``, and consecutive folds' test windows do not overlap::

    fold 0: train [2012-01-03 .. 2014-12-31]  test [2015-01-02 .. 2015-12-31]
    fold 1: train [2013-01-02 .. 2015-12-31]  test [2016-01-04 .. 2016-12-30]

Algorithms receive the fold through their declared parameters: a sweep sets
``train_start``, ``train_end``, ``test_start``, ``test_end`` (ISO dates) and
``fold`` (its number) for each of those names the algorithm declares in
``algorithm_params``. Inside the backtest, :func:`training_history` returns the
training window's prices, read through zipline's own data portal, so the
data an algorithm fits on is bounded by construction.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

import pandas as pd

from .. import algo
from .errors import SpecError

#: :func:`zipline_factorarb.algo.training_history`, also served as ``research.training_history``
training_history = algo.training_history

#: Parameter names a sweep fills from the fold, when an algorithm declares them.
FOLD_PARAMS = ("train_start", "train_end", "test_start", "test_end", "fold")


_DATE_TEXT = re.compile(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*")


def parse_day(value, key="date"):
    """A calendar day from ``YYYY-MM-DD`` text or a date object, strictly.

    Accepted: ``datetime.date``, a ``datetime.datetime`` or
    :class:`pandas.Timestamp` at midnight without a time zone, and text
    ``YYYY-MM-DD``. Anything else (``yesterday``, ``2015-02-30``, an integer
    such as ``20150102``, a time or a time zone) is a :class:`SpecError`
    naming ``key``.
    """
    if isinstance(value, (pd.Timestamp, datetime.datetime)):
        ts = pd.Timestamp(value)
        if ts.tzinfo is not None or ts != ts.normalize():
            raise SpecError(f"{key}: {value!r} has a time or a time zone; give a plain date "
                            "YYYY-MM-DD")
        return ts
    if isinstance(value, datetime.date):
        return pd.Timestamp(value)
    if isinstance(value, str):
        match = _DATE_TEXT.fullmatch(value)
        if match:
            try:
                return pd.Timestamp(datetime.date(*(int(g) for g in match.groups())))
            except ValueError as exc:
                raise SpecError(f"{key}: {value!r} is not a valid date ({exc})") from None
    raise SpecError(f"{key}: {value!r} is not a date; write YYYY-MM-DD, e.g. 2015-01-02")


def parse_int(value, key, minimum=None):
    """An integer (not a bool, not a fraction, not text); :class:`SpecError` naming ``key``."""
    ok = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())
    if not ok:
        raise SpecError(f"{key}: {value!r} is not an integer")
    if minimum is not None and int(value) < minimum:
        raise SpecError(f"{key}: {value!r} must be at least {minimum}")
    return int(value)


def _day(value, key="date"):
    if value is None:
        return None
    if isinstance(value, pd.Timestamp) and value.tzinfo is not None:
        return value.tz_convert("UTC").tz_localize(None).normalize()
    if isinstance(value, pd.Timestamp):
        return value.normalize()
    return parse_day(value, key)


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold (session dates, both ends inclusive).

    Parameters
    ----------
    index : int
        Fold number, from 0.
    train_start, train_end : pandas.Timestamp or None
        Training window; ``None`` for a plain backtest without training.
    test_start, test_end : pandas.Timestamp
        The window that is backtested.
    """

    index: int
    train_start: pd.Timestamp | None
    train_end: pd.Timestamp | None
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def __post_init__(self):
        for name in ("train_start", "train_end", "test_start", "test_end"):
            object.__setattr__(self, name, _day(getattr(self, name), f"fold {self.index}: {name}"))
        if self.test_end < self.test_start:
            raise SpecError(f"fold {self.index}: test_end {self.test_end.date()} is before "
                            f"test_start {self.test_start.date()}")
        if (self.train_start is None) != (self.train_end is None):
            raise SpecError(f"fold {self.index}: give both train_start and train_end or neither")
        if self.train_end is not None:
            if self.train_end < self.train_start:
                raise SpecError(f"fold {self.index}: train_end {self.train_end.date()} is before "
                                f"train_start {self.train_start.date()}")
            if self.train_end >= self.test_start:
                raise SpecError(
                    f"fold {self.index}: training ends {self.train_end.date()}, on or after the "
                    f"test start {self.test_start.date()}; the test window must start after "
                    "training ends"
                )

    def to_dict(self):
        """ISO dates (``None`` where there is no training window) and the index."""
        iso = lambda d: None if d is None else d.strftime("%Y-%m-%d")  # noqa: E731
        return dict(fold=self.index, train_start=iso(self.train_start),
                    train_end=iso(self.train_end), test_start=iso(self.test_start),
                    test_end=iso(self.test_end))

    def algorithm_params(self, declared):
        """The fold's values for those of :data:`FOLD_PARAMS` in ``declared``."""
        values = self.to_dict()
        out = {}
        for name in FOLD_PARAMS:
            if name in declared and values[name] is not None:
                out[name] = values[name]
        return out

    def __str__(self):
        test = f"test {self.test_start.date()} .. {self.test_end.date()}"
        if self.train_start is None:
            return f"fold {self.index}: {test}"
        return (f"fold {self.index}: train {self.train_start.date()} .. "
                f"{self.train_end.date()}, {test}")


def calendar_sessions(calendar="XNYS"):
    """All sessions of a zipline trading calendar (tz-naive dates)."""
    from zipline.utils.calendar_utils import get_calendar

    return pd.DatetimeIndex(get_calendar(calendar).sessions)


def _offset(years, months):
    if months is not None:
        return pd.DateOffset(months=int(months))
    return pd.DateOffset(years=int(years))


def _first_on_or_after(sessions, day):
    pos = sessions.searchsorted(day, side="left")
    return sessions[pos] if pos < len(sessions) else None


def _last_before(sessions, day):
    pos = sessions.searchsorted(day, side="left") - 1
    return sessions[pos] if pos >= 0 else None


def walk_forward_folds(sessions, train_years=3, test_years=1, n_folds=None, start=None,
                       end=None, train_months=None, test_months=None):
    """Rolling walk-forward folds over a session calendar.

    Fold ``i`` trains on ``[b_i - train, b_i)`` and tests on ``[b_i, b_i +
    test)`` with ``b_i = start + train + i * test`` (calendar offsets), each
    window then shrunk to the sessions inside it. So the test window of fold
    ``i`` starts on the first session after its training window ends, and
    test windows of consecutive folds abut without overlap.

    Parameters
    ----------
    sessions : pandas.DatetimeIndex
        Trading sessions (e.g. :func:`calendar_sessions`).
    train_years, test_years : int
        Window lengths in years (ignored where the ``*_months`` is given).
    n_folds : int, optional
        Number of folds. Without it, as many as fit between ``start`` and
        ``end``.
    start : date-like, optional
        Start of the first training window.
    end : date-like, optional
        Last day (inclusive) the last test window may reach. With ``n_folds``
        and no ``start``, the folds are laid out backwards from ``end``.
    train_months, test_months : int, optional
        Window lengths in months instead of years.

    Returns
    -------
    list of Fold

    Examples
    --------
    The layout of the Kalman study, ten folds of 3 years train and 1 year test:

    >>> folds = walk_forward_folds(calendar_sessions(), 3, 1, n_folds=10,
    ...                            start="2012-01-01")  # doctest: +SKIP
    >>> print(folds[0])  # doctest: +SKIP
    fold 0: train 2012-01-03 .. 2014-12-31, test 2015-01-02 .. 2015-12-31
    """
    sessions = pd.DatetimeIndex(sessions)
    for key, value in (("train_years", train_years), ("test_years", test_years),
                       ("train_months", train_months), ("test_months", test_months)):
        if value is not None:
            parse_int(value, f"walk_forward: {key}", minimum=0)
    train = _offset(train_years, train_months)
    train_len = int(train_months) if train_months is not None else int(train_years)
    test_len = int(test_months) if test_months is not None else int(test_years)
    if test_len <= 0 or train_len < 0:
        raise SpecError("walk_forward: window lengths must be positive (train may be 0)")

    def test_offset(k):
        return (pd.DateOffset(months=test_len * k) if test_months is not None
                else pd.DateOffset(years=test_len * k))

    start, end = _day(start, "walk_forward: start"), _day(end, "walk_forward: end")
    if start is None and end is None:
        raise SpecError("walk_forward: give `start` (first training day) or `end` (last test day)")
    if n_folds is not None:
        n_folds = parse_int(n_folds, "walk_forward: folds")
        if n_folds < 1:
            raise SpecError(f"walk_forward: folds must be at least 1, got {n_folds}")
    if start is None:
        if n_folds is None:
            raise SpecError("walk_forward: with only `end`, give the number of `folds`")
        start = end + pd.Timedelta(days=1) - test_offset(n_folds) - train
    first_boundary = start + train
    if n_folds is None:
        n_folds = 0
        while first_boundary + test_offset(n_folds + 1) <= end + pd.Timedelta(days=1):
            n_folds += 1
        if n_folds == 0:
            raise SpecError(
                f"walk_forward: no complete fold fits between {start.date()} and {end.date()}; "
                "move `start` earlier, `end` later or shorten the windows"
            )
    elif end is not None and first_boundary + test_offset(n_folds) > end + pd.Timedelta(days=1):
        raise SpecError(
            f"walk_forward: {n_folds} folds from {start.date()} need data until "
            f"{(first_boundary + test_offset(n_folds) - pd.Timedelta(days=1)).date()}, after "
            f"end {end.date()}; lower `folds` or drop `end`"
        )

    folds = []
    for i in range(n_folds):
        boundary = first_boundary + test_offset(i)
        next_boundary = first_boundary + test_offset(i + 1)
        test_start = _first_on_or_after(sessions, boundary)
        test_end = _last_before(sessions, next_boundary)
        if test_start is None or test_end is None or test_end < test_start:
            raise SpecError(
                f"walk_forward: fold {i} ({boundary.date()} .. {next_boundary.date()}) has no "
                "sessions in the calendar"
            )
        if train_len == 0:
            train_start = train_end = None
        else:
            train_start = _first_on_or_after(sessions, boundary - train)
            train_end = _last_before(sessions, boundary)
            if train_start is None or train_end is None or train_end < train_start:
                raise SpecError(f"walk_forward: fold {i} has no training sessions before "
                                f"{boundary.date()}")
        folds.append(Fold(i, train_start, train_end, test_start, test_end))
    return folds


def single_period(sessions, start, end):
    """One fold without training window: a plain backtest over ``start .. end``."""
    sessions = pd.DatetimeIndex(sessions)
    start, end = _day(start, "start"), _day(end, "end")
    if end < start:
        raise SpecError(f"end: {end.date()} is before start {start.date()}")
    first = _first_on_or_after(sessions, start)
    last = _last_before(sessions, end + pd.Timedelta(days=1))
    if first is None or last is None or last < first:
        raise SpecError(f"no sessions between start {start.date()} and end {end.date()}")
    return [Fold(0, None, None, first, last)]
