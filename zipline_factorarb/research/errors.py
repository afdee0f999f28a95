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
