"""Errors and warnings raised by :mod:`zipline_factorarb.optimize`."""

from __future__ import annotations

__all__ = [
    "OptimizationError",
    "InfeasibleConstraints",
    "UnboundedObjective",
    "OptimizationFailed",
    "NonFiniteInput",
    "OptimizationWarning",
]


class OptimizationError(Exception):
    """Base class of the errors raised when no target portfolio can be produced."""


class InfeasibleConstraints(OptimizationError):
    """No portfolio satisfies all the constraints.

    Attributes
    ----------
    violations : dict[str, list[tuple[str, float, str]]]
        For each reference portfolio (``"current"``, ``"benchmark"``, ``"empty"``), the
        constraints it violates as ``(constraint, amount, detail)``.
    removable : list[str]
        Constraints whose removal alone makes the problem feasible.
    suggestions : list[str]
        What to relax, one line per constraint.
    """

    def __init__(self, message, violations=None, removable=None, suggestions=None):
        super().__init__(message)
        self.violations = violations or {}
        self.removable = removable or []
        self.suggestions = suggestions or []


class UnboundedObjective(OptimizationError):
    """The objective can grow without limit under the given constraints."""


class OptimizationFailed(OptimizationError):
    """Every solver failed, or returned a solution that violates the constraints.

    Attributes
    ----------
    attempts : list[dict]
        One entry per solver tried: its name, status and error.
    """

    def __init__(self, message, attempts=None):
        super().__init__(message)
        self.attempts = attempts or []


class NonFiniteInput(ValueError):
    """An input holds NaN or infinity.

    Attributes
    ----------
    field : str
        The argument that holds it, e.g. ``"MaximizeAlpha.alphas"``.
    asset : object
        The first offending asset (or factor / group label).
    """

    def __init__(self, field, asset, value, hint=None):
        self.field = field
        self.asset = asset
        self.value = value
        msg = f"{field} has a non-finite value ({value!r}) for {asset!r}"
        msg += f"; {hint}" if hint else "; drop or fill it (e.g. .dropna() or .fillna(0)) first"
        super().__init__(msg)


class OptimizationWarning(UserWarning):
    """An accepted but inaccurate solve, or a solver fallback."""
