"""Errors raised by the research tools, each telling the user what to change."""

from __future__ import annotations


class SweepError(Exception):
    """A sweep cannot start or cannot go on (not a failing backtest)."""


class SpecError(SweepError, ValueError):
    """The sweep specification is invalid; the message names the key to fix."""


class BundleNotVisibleError(SweepError):
    """One or more workers cannot read the bundle's ingestion.

    Attributes
    ----------
    problems : dict
        Worker address -> what that worker reported.
    """

    def __init__(self, message, problems=None):
        super().__init__(message)
        self.problems = dict(problems or {})


class ParameterError(ValueError):
    """A parameter has an unknown name or an invalid value.

    Attributes
    ----------
    param : str
        The parameter's name as the user spelled it.
    """

    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param


def closest_name(name, choices):
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (difflib), or ``''``."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_names(given, valid, where):
    """Raise :class:`ParameterError` for the first name of ``given`` not in ``valid``.

    The message names ``where`` (e.g. ``factor 'momentum'``), the unknown
    name, the closest valid one and the valid names.
    """
    valid = list(valid)
    for name in given:
        if name not in valid:
            raise ParameterError(f"{where}: unknown parameter {name!r}"
                                 f"{closest_name(name, valid)}; the parameters are "
                                 + ", ".join(map(str, valid)), param=name)
