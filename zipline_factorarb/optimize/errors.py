"""Errors and warnings raised by :mod:`zipline_factorarb.optimize`.

Every failure to produce a target portfolio is an :class:`OptimizationError` with a
short, stable :attr:`~OptimizationError.reason` (``"infeasible"``,
``"non_finite_input"``, ...): ``order_optimal_portfolio(on_failure="hold")`` holds on
any of them and records that reason.
"""

from __future__ import annotations

__all__ = [
    "OptimizationError",
    "InfeasibleConstraints",
    "UnboundedObjective",
    "OptimizationFailed",
    "InvalidInput",
    "NonFiniteInput",
    "UnknownAssets",
    "DegenerateRiskModel",
    "OptimizationWarning",
]


class OptimizationError(Exception):
    """Base class of the errors raised when no target portfolio can be produced."""

    #: short, stable name of the failure (recorded as ``optimizer_failure_reason``)
    reason = "failed"


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

    reason = "infeasible"

    def __init__(self, message, violations=None, removable=None, suggestions=None):
        super().__init__(message)
        self.violations = violations or {}
        self.removable = removable or []
        self.suggestions = suggestions or []


class UnboundedObjective(OptimizationError):
    """The objective can grow without limit under the given constraints."""

    reason = "unbounded"


class OptimizationFailed(OptimizationError):
    """Every solver failed, or returned a solution that violates the constraints.

    Attributes
    ----------
    attempts : list[dict]
        One entry per solver tried: its name, status and error.
    reason : str
        ``"inaccurate"`` when a solver returned an inaccurate solution or one that
        was refused (it violates a constraint, or is not finite), else
        ``"solver_error"`` (solvers raised, or stopped without a solution).
    """

    def __init__(self, message, attempts=None):
        super().__init__(message)
        self.attempts = attempts or []
        inaccurate = any("max_violation" in a or str(a.get("status", "")).endswith("inaccurate")
                         or a.get("error") == "no finite solution returned"
                         for a in self.attempts)
        self.reason = "inaccurate" if inaccurate else "solver_error"


class InvalidInput(OptimizationError, ValueError):
    """An input of an objective, constraint or cost cannot be optimised.

    Raised when the problem is built (by :func:`~.problem.run_optimization`), so that
    ``order_optimal_portfolio(on_failure="hold")`` holds on it. A ``ValueError``.

    Attributes
    ----------
    field : str or None
        The input at fault, e.g. ``"MaximizeAlpha.alphas"``, a term's repr, or what
        lacks the assets of an :class:`UnknownAssets`.
    """

    reason = "invalid_input"

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


class NonFiniteInput(InvalidInput):
    """An input (:attr:`~InvalidInput.field`) holds NaN or infinity.

    Attributes
    ----------
    asset : object
        The first offending asset (or factor / group label).
    """

    reason = "non_finite_input"

    def __init__(self, field, asset, value, hint=None):
        self.asset = asset
        self.value = value
        msg = f"{field} has a non-finite value ({value!r}) for {asset!r}"
        msg += f"; {hint}" if hint else "; drop or fill it (e.g. .dropna() or .fillna(0)) first"
        super().__init__(msg, field)


class UnknownAssets(InvalidInput):
    """Assets of the optimisation universe lack data a term needs (risk-model
    loadings, a row of exposures), or are not assets the algorithm can trade.

    Attributes
    ----------
    assets : list
        The assets concerned.
    """

    reason = "unknown_assets"

    def __init__(self, message, field=None, assets=()):
        super().__init__(message, field)
        self.assets = list(assets)


class DegenerateRiskModel(InvalidInput):
    """A risk term (a tracking-error constraint, a risk penalty) sees zero or
    near-zero risk on every asset, so that it constrains nothing.

    Attributes
    ----------
    volatility : float
        The largest annualised volatility of an asset of the universe.
    """

    reason = "degenerate_risk"

    def __init__(self, message, field=None, volatility=0.0):
        super().__init__(message, field)
        self.volatility = volatility


class OptimizationWarning(UserWarning):
    """An accepted but inaccurate solve, or a solver fallback."""
