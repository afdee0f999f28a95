"""Assemble, cache and solve optimisation problems; report the result.

A problem is compiled once per *structure* (objective and constraint types, their
flags and the parameter shapes, which fix the number of assets) with cvxpy DPP
parameters, and kept in a :class:`ProblemCache`. Later calls with the same structure
only assign new parameter values and re-solve, which skips cvxpy's canonicalisation.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import cvxpy as cp
import pandas as pd

from ..checks import check_int
from ._base import Context, Term, as_series, fmt
from .constraints import Constraint
from .costs import Cost, evaluate_costs
from .errors import (
    DegenerateRiskModel,
    InfeasibleConstraints,
    InvalidInput,
    NonFiniteInput,
    OptimizationError,
    OptimizationFailed,
    OptimizationWarning,
    UnboundedObjective,
)
from .objectives import Objective
from .risk_model import MIN_ASSET_VARIANCE

__all__ = [
    "ProblemCache",
    "OptimizationResult",
    "run_optimization",
    "calculate_optimal_portfolio",
    "available_solvers",
    "DEFAULT_SOLVERS",
]

#: solvers tried in order (those installed): Clarabel, then a fallback
DEFAULT_SOLVERS = ("CLARABEL", "ECOS", "SCS")

#: per-solver options used unless overridden through ``solver_options``. Clarabel's
#: gap and feasibility tolerances are tightened from 1e-8 to 1e-10: one or two more
#: iterations, and weights on nearly-active bounds accurate to ~1e-7 instead of ~1e-5.
DEFAULT_SOLVER_OPTIONS = {
    "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
    "ECOS": {"abstol": 1e-9, "reltol": 1e-9, "feastol": 1e-9, "max_iters": 500},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 100_000},
}

_SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


@functools.lru_cache(maxsize=None)
def _installed_solvers():
    # cvxpy probes every solver on each call (~10 ms): once per process is enough
    return frozenset(cp.installed_solvers())


def available_solvers(preference=DEFAULT_SOLVERS):
    """The installed solvers among ``preference``, in that order."""
    installed = _installed_solvers()
    return tuple(s for s in preference if s in installed)


class ProblemCache:
    """Least-recently-used store of compiled problems keyed by structure.

    Parameters
    ----------
    maxsize : int, default 16
        Compiled problems kept; the least recently used is dropped beyond it.
    """

    def __init__(self, maxsize=16):
        self.maxsize = check_int("maxsize", maxsize, low=1)
        self._store = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key):
        item = self._store.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._store.move_to_end(key)
        return item

    def put(self, key, value):
        self._store[key] = value
        self._store.move_to_end(key)
        while len(self._store) > self.maxsize:
            self._store.popitem(last=False)

    def clear(self):
        """Drop every compiled problem and reset the counters."""
        self._store.clear()
        self.hits = self.misses = 0

    def __len__(self):
        return len(self._store)

    def __repr__(self):
        return (f"ProblemCache({len(self)}/{self.maxsize} problems, hits={self.hits}, "
                f"misses={self.misses})")


#: cache used when ``cache=None``; empty until the first solve
DEFAULT_CACHE = ProblemCache()


@dataclass
class OptimizationResult:
    """Outcome of :func:`run_optimization`.

    Attributes
    ----------
    status : str
        ``"optimal"``, ``"optimal_inaccurate"`` (accepted after checking the
        constraints), ``"infeasible"``, ``"unbounded"``, ``"failed"``, or
        ``"invalid_input"`` (only in results that ``order_optimal_portfolio`` builds
        when :func:`run_optimization` raised an :class:`~.errors.InvalidInput`).
    old_weights : pandas.Series
        Current weights on the optimisation universe (zeros when none were given).
    new_weights : pandas.Series or None
        Target weights; None unless :attr:`success`.
    objective_value : float or None
        As the objective reports it (e.g. ``alphas' w``; for :class:`TargetWeights`
        the squared distance), without the costs: see ``diagnostics["net_objective"]``.
    tracking_error : float or None
        Annualised ex-ante tracking error of the new weights against the benchmark of
        the first term that has a risk model and a benchmark.
    risk_contributions : pandas.Series or None
        Euler contributions to the annualised active variance (total variance when no
        benchmark is known) by factor plus ``"specific"``; they sum to
        ``tracking_error ** 2``.
    solver : str or None
        The solver whose solution was accepted.
    solve_time : float
        Seconds spent solving (parameter update and solver calls).
    compile_time : float
        Seconds spent building the cvxpy problem (0 on a cache hit).
    cache_hit : bool
    diagnostics : dict
        ``constraint_violations`` (amount by constraint), ``solver_attempts``,
        ``iterations``, ``solver_time``, ``universe_size``, ``turnover``,
        ``old_tracking_error``, ``periods_per_year``, ``warnings``; on success also
        ``expected_costs`` (``{"linear", "impact", "borrow", "total"}``: the cost terms
        evaluated at the new weights with the numpy kernels, in fractions of portfolio
        value; zeros without costs) and ``net_objective`` (``objective_value`` minus the
        total cost for a maximised objective, plus it for a minimised one: what the
        solver optimised, in the objective's units).
    error : OptimizationError or None
        The error :meth:`raise_for_status` raises.
    """

    status: str
    old_weights: pd.Series
    new_weights: pd.Series | None
    objective_value: float | None
    tracking_error: float | None
    risk_contributions: pd.Series | None
    solver: str | None
    solve_time: float
    compile_time: float
    cache_hit: bool
    diagnostics: dict = field(default_factory=dict)
    error: OptimizationError | None = None

    @classmethod
    def failed(cls, status, error, old_weights, diagnostics=None, *, compile_time=0.0,
               cache_hit=False, solve_time=0.0):
        """A result without target weights: ``status`` and the ``error`` that explains it."""
        return cls(status, old_weights, None, None, None, None, None, solve_time,
                   compile_time, cache_hit, dict(diagnostics or {}), error)

    @property
    def success(self):
        """True when target weights were produced."""
        return self.status in _SOLVED

    @property
    def reason(self):
        """Short name of the failure (the error's ``reason``), None on success."""
        if self.success:
            return None
        return getattr(self.error, "reason", self.status)

    @property
    def weights(self):
        """Alias of :attr:`new_weights`."""
        return self.new_weights

    @property
    def expected_cost(self):
        """Total expected cost of the rebalance (fraction of portfolio value; 0.0 without
        costs or without a solution)."""
        return float(self.diagnostics.get("expected_costs", {}).get("total", 0.0))

    def raise_for_status(self):
        """Raise the stored error unless the optimisation succeeded; return self."""
        if not self.success:
            raise self.error
        return self

    def __repr__(self):
        if not self.success:
            return f"OptimizationResult(status={self.status!r}, error={type(self.error).__name__})"
        tev = "n/a" if self.tracking_error is None else f"{self.tracking_error:.4%}"
        return (f"OptimizationResult(status={self.status!r}, assets={len(self.new_weights)}, "
                f"objective={fmt(self.objective_value)}, tracking_error={tev}, "
                f"solver={self.solver}, solve_time={self.solve_time * 1e3:.1f} ms, "
                f"cache_hit={self.cache_hit})")


# ----------------------------------------------------------------------------- assembly
@dataclass
class _Compiled:
    """A compiled problem, its weight variable and its parameters by term."""

    problem: cp.Problem
    w: cp.Variable
    params: list
    cost_params: list = ()
    #: parameter of the current weights (None: no cost uses the trade)
    w0: cp.Parameter | None = None

    def assign(self, datas, cost_datas=(), scale=1.0, current=None):
        """New parameter values (the costs' multiplied by ``scale``)."""
        for p, d in zip(self.params, datas):
            for name, par in p.items():
                par.value = d[name]
        for p, d in zip(self.cost_params, cost_datas):
            for name, par in p.items():
                par.value = d[name] * scale
        if self.w0 is not None:
            self.w0.value = current


def as_list(terms):
    """``terms`` as a list (one term: a list of one)."""
    return [terms] if isinstance(terms, Term) else list(terms)


def _universe(objective, constraints, current, origins=None):
    """The optimisation universe: the assets of the objective, then of the constraints,
    then the held ones; ``origins`` (a dict), when given, gets each asset's source."""
    seen = {} if origins is None else origins
    parts = [(objective._assets(), objective)] + [(c._assets(), c) for c in constraints]
    if current is not None:
        parts.append((current.index[current.to_numpy() != 0], "current_weights"))
    for idx, source in parts:
        if idx is not None:
            label = source if isinstance(source, str) else repr(source)
            for asset in idx:
                seen.setdefault(asset, label)
    if not seen:
        raise InvalidInput(
            f"the optimisation universe is empty: {objective!r} names no assets and no "
            "constraint or current position adds any", repr(objective))
    return pd.Index(list(seen), tupleize_cols=False)


def _make_params(term, data):
    return {name: cp.Parameter(np.shape(value), nonneg=name in term._nonneg)
            for name, value in data.parameters.items()}


def _build_problem(objective, constraints, datas, n, obj_override=None, costs=(),
                   cost_datas=(), scale=1.0, current=None):
    """A fresh cvxpy problem (parameters assigned); ``obj_override(w, params)`` replaces
    the objective (used for feasibility checks, which leave the costs out).

    Costs are subtracted from a maximised objective and added to a minimised one, their
    coefficients multiplied by ``scale`` (the objective's ``_cost_scale``). A trade
    variable ``z`` with ``z == w - w0`` (``w0`` a parameter) keeps ``c' |z|`` DPP.
    """
    w = cp.Variable(n, name="weights")
    params = [_make_params(t, d) for t, d in zip([objective, *constraints], datas)]
    cons = []
    for c, p, d in zip(constraints, params[1:], datas[1:]):
        cons.extend(c._build(w, p, d))
    cost_params, w0 = [], None
    if obj_override is None:
        obj = objective._build(w, params[0], datas[0])
        if isinstance(obj, tuple):  # (objective, constraints it needs): RiskBudgeting
            obj, extra = obj
            cons.extend(extra)
        if costs:
            z = None
            if any(c._trades for c in costs):
                w0 = cp.Parameter(n, name="current_weights")
                z = cp.Variable(n, name="trades")
                cons.append(z == w - w0)
            cost_params = [_make_params(c, d) for c, d in zip(costs, cost_datas)]
            total = 0
            for c, p in zip(costs, cost_params):
                expr = c._expression(w, z, p)
                if isinstance(expr, tuple):  # (expression, constraints it needs)
                    expr, extra = expr
                    cons.extend(extra)
                total = total + expr
            obj = (cp.Maximize(obj.args[0] - total) if isinstance(obj, cp.Maximize)
                   else cp.Minimize(obj.args[0] + total))
    else:
        obj = obj_override(w, params)
    problem = cp.Problem(obj, cons)
    if not problem.is_dpp():  # every term is written to be DPP; keep it that way
        raise RuntimeError("internal error: the compiled problem is not DPP; re-solves "
                           "would recompile it every time")
    compiled = _Compiled(problem, w, params, cost_params, w0)
    compiled.assign(datas, cost_datas if cost_params else (), scale, current)
    return compiled


def _check_bounded(objective, constraints, cdatas, n, odata=None):
    """Raise UnboundedObjective when a linear objective can grow without limit.

    Fast path: a constraint bounds the whole portfolio (gross exposure, turnover, a
    tracking error with positive specific variances), or per-asset bounds on both sides,
    or on one side with the net exposure bounded on the other. Otherwise the exact test
    on the linear constraints: the objective ``c' w`` is unbounded over a non-empty
    polyhedron ``{lo <= A w <= hi}`` exactly when some direction ``d`` of its recession
    cone (``A d >= 0`` where ``lo`` is finite, ``A d <= 0`` where ``hi`` is) improves it,
    ``c' d > 0``: one small LP over ``d`` in ``[-1, 1]^n`` (HiGHS), solved only when the
    fast path is inconclusive (e.g. long only with sector caps).
    """
    if not objective._linear:
        return
    lower = np.full(n, -np.inf)
    upper = np.full(n, np.inf)
    sum_lo, sum_hi = -np.inf, np.inf
    rows = []
    notes = []
    for c, d in zip(constraints, cdatas):
        b = c._bounds(d)
        if b.bounded:
            return
        if b.lower is not None:
            lower = np.maximum(lower, b.lower)
        if b.upper is not None:
            upper = np.minimum(upper, b.upper)
        sum_lo = max(sum_lo, b.net_lower)
        sum_hi = min(sum_hi, b.net_upper)
        rows.extend(b.rows)
        if b.note:
            notes.append(b.note)
    lo_ok = np.isfinite(lower).all()
    hi_ok = np.isfinite(upper).all()
    if (lo_ok and hi_ok) or (lo_ok and np.isfinite(sum_hi)) or (hi_ok and np.isfinite(sum_lo)):
        return
    alpha = None if odata is None else objective._linear_coefficients(odata)
    if alpha is not None and not _improving_direction(
            np.asarray(alpha, dtype=float), lower, upper, sum_lo, sum_hi, rows):
        return
    names = ", ".join(repr(c) for c in constraints) or "no constraints"
    raise UnboundedObjective(
        f"{objective!r} is linear and nothing bounds the portfolio under {names}: the "
        "solver could grow the positions without limit. Add MaxGrossExposure(max), or "
        "LongOnly() with NetExposure(min, max), or finite PositionConcentration bounds, "
        "or MaxTurnover(max), or a TrackingError constraint"
        + "".join(f" ({note})" for note in notes)
        + "."
    )


def _improving_direction(c, lower, upper, sum_lo, sum_hi, rows):
    """Is there ``d`` in the recession cone of the linear constraints with ``c' d > 0``?

    The cone: ``d_i >= 0`` where asset ``i`` has a finite lower bound, ``<= 0`` where it
    has a finite upper bound, ``sum(d)`` likewise for the net exposure, and ``A d >= 0``
    / ``<= 0`` for the rows ``(A, lower finite, upper finite)`` of the group and factor
    constraints. Constraints this does not know (a tracking error with zero specific
    variances) are left out, which can only report a bounded problem as unbounded.
    """
    from scipy.optimize import linprog

    n = len(c)
    scale = np.abs(c).sum()
    if not scale > 0:
        return False
    bounds = np.column_stack([np.where(np.isfinite(lower), 0.0, -1.0),
                              np.where(np.isfinite(upper), 0.0, 1.0)])
    a_ub = []  # rows of A_ub d <= 0
    ones = np.ones((1, n))
    if np.isfinite(sum_lo):
        a_ub.append(-ones)
    if np.isfinite(sum_hi):
        a_ub.append(ones)
    for A, lo_finite, hi_finite in rows:
        A = np.asarray(A, dtype=float)
        if np.any(lo_finite):
            a_ub.append(-A[np.asarray(lo_finite, dtype=bool)])
        if np.any(hi_finite):
            a_ub.append(A[np.asarray(hi_finite, dtype=bool)])
    A_ub = np.vstack(a_ub) if a_ub else None
    b_ub = np.zeros(A_ub.shape[0]) if a_ub else None
    res = linprog(-c / scale, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:  # cannot tell: let the solver decide
        return False
    return -res.fun > 1e-9


def benchmark_of(objective, constraints):
    """``(benchmark weights, term)`` of the first constraint, else the objective, that
    has benchmark weights; ``(None, None)`` when none has."""
    for term in [*constraints, objective]:
        b = term._benchmark()
        if b is not None:
            return b, term
    return None, None


def _violations(constraints, cdatas, w):
    return [(c, *c._violation(w, d)) for c, d in zip(constraints, cdatas)]


def _solve(compiled, constraints, cdatas, solvers, solver_options, tol):
    """Try the solvers in turn. Returns ``(outcome, solver, attempts)`` with outcome one of
    ``"optimal"``, ``"optimal_inaccurate"``, ``"infeasible"``, ``"unbounded"``, ``"failed"``."""
    attempts = []
    problem = compiled.problem
    soft_infeasible = soft_unbounded = False
    for name in solvers:
        opts = dict(DEFAULT_SOLVER_OPTIONS.get(name, {}))
        opts.update((solver_options or {}).get(name, {}))
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # cvxpy's generic "may be inaccurate" warning: judged below instead
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                problem.solve(solver=name, **opts)
        except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
            attempts.append({"solver": name, "status": "error", "error": str(exc),
                             "time": time.perf_counter() - t0})
            continue
        status = problem.status
        entry = {"solver": name, "status": status, "time": time.perf_counter() - t0}
        stats = problem.solver_stats
        if stats is not None:
            entry["iterations"] = stats.num_iters
            entry["solver_time"] = stats.solve_time
        attempts.append(entry)
        if status in _SOLVED:
            w = compiled.w.value
            if w is None or not np.isfinite(w).all():
                entry["error"] = "no finite solution returned"
                continue
            worst = max((v[1] for v in _violations(constraints, cdatas, w)), default=0.0)
            entry["max_violation"] = worst
            if worst > tol:
                entry["error"] = f"solution violates a constraint by {worst:.3g} > {tol:.3g}"
                continue
            if status == cp.OPTIMAL_INACCURATE:
                warnings.warn(
                    f"{name} returned an inaccurate solution; accepted because every "
                    f"constraint holds within {tol:.3g} (worst {worst:.3g})",
                    OptimizationWarning, stacklevel=4,
                )
            return status, name, attempts
        if status == cp.INFEASIBLE:
            return "infeasible", name, attempts
        if status == cp.UNBOUNDED:
            return "unbounded", name, attempts
        soft_infeasible |= status == cp.INFEASIBLE_INACCURATE
        soft_unbounded |= status == cp.UNBOUNDED_INACCURATE
    if soft_infeasible:
        return "infeasible", None, attempts
    if soft_unbounded:
        return "unbounded", None, attempts
    return "failed", None, attempts


def _risk_norm(w, risk):
    """The per-period risk ``sqrt(||G (w - b)||^2 + ||s (w - b)||^2)`` of a RiskTerm."""
    return cp.norm(cp.hstack([risk.G @ w - risk.G @ risk.b,
                              cp.multiply(risk.s, w) - risk.s * risk.b]))


def _check_risk_terms(terms, datas, periods_per_year):
    """Raise DegenerateRiskModel when a term's risk is (near) zero on every asset of the
    universe: a variance per period of at most ``risk_model.MIN_ASSET_VARIANCE``, the
    threshold under which the risk model itself calls an asset riskless."""
    for t, d in zip(terms, datas):
        risk = t._risk(d)
        if risk is None or len(risk.s) == 0:
            continue
        ppy = periods_per_year if risk.periods_per_year is None else risk.periods_per_year
        variance = np.sum(np.asarray(risk.G) ** 2, axis=0) + np.asarray(risk.s) ** 2
        top = float(variance.max())
        if not top > MIN_ASSET_VARIANCE:
            raise DegenerateRiskModel(
                f"{t!r}: the risk model gives every one of the {len(risk.s)} assets of the "
                f"optimisation universe a variance of at most {MIN_ASSET_VARIANCE:g} per "
                f"period (largest {top:.3g}, an annualised volatility of "
                f"{np.sqrt(ppy * top):.3g}): a risk term that sees no risk constrains "
                "nothing and would put the whole book in the best-scoring asset. Check the "
                "risk model's estimation (a window of constant prices, a covariance of "
                "zeros)", repr(t), float(np.sqrt(ppy * top)))


def _check_parameters(terms, datas, universe):
    """Raise NonFiniteInput for a NaN or infinite parameter, naming term and asset."""
    for t, d in zip(terms, datas):
        for name, value in d.parameters.items():
            arr = np.asarray(value, dtype=float)
            bad = ~np.isfinite(arr)
            if not bad.any():
                continue
            idx = np.argwhere(bad)[0]
            label = (universe[idx[-1]] if arr.ndim and arr.shape[-1] == len(universe)
                     else tuple(int(i) for i in idx))
            raise NonFiniteInput(f"{t!r} parameter {name!r}", label, arr[tuple(idx)],
                                 "check the inputs this term was built from")


def _diagnose_infeasible(objective, constraints, datas, ctx, current_given, tol, attempts,
                         solver):
    odata, cdatas = datas[0], datas[1:]
    refs = []
    if current_given:
        refs.append(("current", ctx.current))
    bench, _ = benchmark_of(objective, constraints)
    if bench is not None:
        refs.append(("benchmark", ctx.align(bench)))
    refs.append(("empty", np.zeros(ctx.n)))
    violations = {}
    for name, w in refs:
        violations[name] = [(repr(c), amt, detail)
                            for c, amt, detail in _violations(constraints, cdatas, w) if amt > tol]

    def solved_without(i, goal=lambda w: 0):
        """Minimise ``goal(w)`` under every constraint but the ``i``-th: the solved
        problem when the solver found a solution, else None."""
        try:
            comp = _build_problem(objective, constraints[:i] + constraints[i + 1:],
                                  [odata, *cdatas[:i], *cdatas[i + 1:]], ctx.n,
                                  obj_override=lambda w, p: cp.Minimize(goal(w)))
            comp.problem.solve(solver=solver)
        except (cp.error.SolverError, ValueError, ArithmeticError):
            return None
        return comp.problem if comp.problem.status in _SOLVED else None

    checked = 1 < len(constraints) <= 12
    removable = [repr(c) for i, c in enumerate(constraints)
                 if checked and solved_without(i) is not None]

    violated = {r for items in violations.values() for r, _, _ in items} | set(removable)
    suggestions = []
    for i, (c, d) in enumerate(zip(constraints, cdatas)):
        if repr(c) not in violated and len(constraints) > 1:
            continue
        hint = c._relax_hint(d)
        risk = c._risk(d)
        if risk is not None and risk.bound_name is not None:
            ppy = 252.0 if risk.periods_per_year is None else risk.periods_per_year
            least = solved_without(i, lambda w: _risk_norm(w, risk))  # smallest risk allowed
            if least is not None:
                low = float(least.value * np.sqrt(ppy))
                hint += (f"; the other constraints allow no less than {low:.4%} "
                         f"(raise {risk.bound_name} to at least that)")
        suggestions.append(f"{c!r}: {hint}")

    lines = [f"No portfolio satisfies all {len(constraints)} constraints "
             f"({objective!r}, {ctx.n} assets)."]
    lines.append("Constraint violations of reference portfolios (amount beyond the bound):")
    for name, items in violations.items():
        if not items:
            lines.append(f"  {name} portfolio: violates none (within {tol:.1g})")
            continue
        lines.append(f"  {name} portfolio:")
        for r, amt, detail in items:
            lines.append(f"    - {r} violated by {fmt(amt)}: {detail}")
    if removable:
        lines.append("Removing any one of these makes the problem feasible: "
                     + ", ".join(removable) + ".")
    elif checked:
        lines.append("No single constraint's removal makes the problem feasible: several "
                     "constraints conflict.")
    if suggestions:
        lines.append("What to relax:")
        lines.extend(f"  - {s}" for s in suggestions)
    if attempts and attempts[-1].get("status") == cp.INFEASIBLE_INACCURATE:
        lines.append("(the solver's infeasibility certificate was inaccurate)")
    return InfeasibleConstraints("\n".join(lines), violations, removable, suggestions)


def _report_risk(objective, constraints, ctx, w, periods_per_year):
    ref = None
    for t in [*constraints, objective]:
        r = t._risk_reference()
        if r is not None and (ref is None or (ref[1] is None and r[1] is not None)):
            ref = r
    if ref is None:
        return None, None, {}
    risk_model, bench, ppy = ref
    ppy = float(periods_per_year if ppy is None else ppy)
    b = np.zeros(ctx.n) if bench is None else ctx.align(bench)
    rc = risk_model.decompose(w - b, ctx.universe)
    contributions = pd.Series(np.append(rc.factor, rc.specific) * ppy,
                              index=list(risk_model.factors) + ["specific"])
    total = float(np.sqrt(max(rc.total, 0.0) * ppy))
    old = float(np.sqrt(max(risk_model.decompose(ctx.current - b, ctx.universe).total, 0.0) * ppy))
    extra = {"periods_per_year": ppy,
             "risk_basis": "active" if bench is not None else "total",
             "risk_contributions_by_asset": pd.Series(rc.asset * ppy, index=ctx.universe)}
    if bench is None:
        extra["volatility"] = total
        extra["old_volatility"] = old
        return None, contributions, extra
    extra["old_tracking_error"] = old
    return total, contributions, extra


# ----------------------------------------------------------------------------- public API
def run_optimization(objective, constraints=(), current_weights=None, *, costs=(), cache=None,
                     solvers=None, solver_options=None, feasibility_tolerance=1e-7,
                     periods_per_year=252, diagnose=True):
    """Solve a portfolio optimisation and return a full :class:`OptimizationResult`.

    Parameters
    ----------
    objective : Objective
        :class:`MaximizeAlpha`, :class:`TargetWeights`, :class:`MaximizeFactorTilt` or
        :class:`MeanVariance`.
    constraints : sequence of Constraint
    current_weights : pandas.Series, optional
        Current portfolio weights by asset (zero when omitted); used by
        :class:`MaxTurnover`, :class:`Frozen` and the diagnostics. Held assets join
        the optimisation universe.
    costs : sequence of Cost, optional
        :class:`~.costs.LinearCost`, :class:`~.costs.MarketImpact`,
        :class:`~.costs.BorrowCost` (e.g. from :meth:`~.costs.CostModel.terms`), in
        fractions of portfolio value: subtracted from a maximised objective, added to a
        minimised one (scaled by ``1 / risk_aversion`` for :class:`MeanVariance`, which
        is compiled as ``(mu / gamma)' w - risk``). They are parameters of the compiled
        problem: new cost values re-solve it without recompiling.
    cache : ProblemCache or False, optional
        Where compiled problems are kept (default: a module-level cache); False builds
        a fresh problem every call.
    solvers : sequence of str, optional
        cvxpy solver names to try in turn (default: Clarabel, then ECOS or SCS as
        installed).
    solver_options : dict, optional
        ``{solver_name: {option: value}}`` merged over the defaults.
    feasibility_tolerance : float, default 1e-7
        A returned solution must satisfy every constraint within this amount (in the
        constraint's units: weights, or annualised tracking error); inaccurate or
        fallback solutions are accepted only under this check.
    periods_per_year : float, default 252
        Annualisation of reported risk when no :class:`TrackingError` sets it.
    diagnose : bool, default True
        On infeasibility, also test which single constraint's removal restores
        feasibility (a few extra small solves).

    Returns
    -------
    OptimizationResult
        Failures (infeasible, unbounded, solver failure) are returned with
        ``success == False`` and the error in ``result.error``; call
        :meth:`OptimizationResult.raise_for_status` to raise it. Arguments of the
        wrong type raise ``TypeError``; inputs that cannot be optimised (including data
        problems kept when a term was created) raise an :class:`~.errors.InvalidInput`
        naming the term, parameter and asset at fault (its subclasses are listed in
        :mod:`~zipline_factorarb.optimize.errors`).
    """
    if not isinstance(objective, Objective):
        raise TypeError("objective must be an Objective (e.g. MaximizeAlpha), got "
                        f"{type(objective).__name__}")
    constraints = as_list(constraints)
    for c in constraints:
        if not isinstance(c, Constraint):
            raise TypeError(f"constraints must be Constraint objects, got {type(c).__name__}")
    costs = as_list(costs)
    for c in costs:
        if not isinstance(c, Cost):
            raise TypeError(f"costs must be Cost objects (LinearCost, MarketImpact, BorrowCost; "
                            f"CostModel.terms() builds them), got {type(c).__name__}")
    # objectives with a restricted formulation (RiskBudgeting) refuse other terms up front
    objective._check_constraints(constraints, costs)
    terms = [objective, *constraints]
    for t in [*terms, *costs]:
        t._raise_input_error()
    try:
        current = (None if current_weights is None
                   else as_series(current_weights, "current_weights"))
        origins = {}
        universe = _universe(objective, constraints, current, origins)
        w0 = np.zeros(len(universe)) if current is None else \
            current.reindex(universe, fill_value=0.0).to_numpy()
        ctx = Context(universe, w0, origins)
        datas = [t._prepare(ctx) for t in terms]
        for d in datas:
            d.universe = universe
        kdatas = [c._prepare(ctx) for c in costs]
        _check_parameters([*terms, *costs], [*datas, *kdatas], universe)
        _check_risk_terms(terms, datas, periods_per_year)
    except InvalidInput:
        raise
    except ValueError as exc:  # a term's own check: name it, keep the message
        raise InvalidInput(str(exc)) from exc
    odata, cdatas = datas[0], datas[1:]
    scale = objective._cost_scale(odata)
    old = pd.Series(w0, index=universe)

    def failure(status, error, attempts=(), compile_time=0.0, hit=False, solve_time=0.0):
        return OptimizationResult.failed(
            status, error, old, {"solver_attempts": list(attempts), "universe_size": ctx.n},
            compile_time=compile_time, cache_hit=hit, solve_time=solve_time)

    try:
        if not any(c._bounds_portfolio(d) for c, d in zip(costs, kdatas)):
            _check_bounded(objective, constraints, cdatas, ctx.n, odata)
    except UnboundedObjective as exc:
        return failure("unbounded", exc)

    if cache is None:
        cache = DEFAULT_CACHE
    key = (objective._key(odata), tuple(c._key(d) for c, d in zip(constraints, cdatas)),
           tuple(c._key(d) for c, d in zip(costs, kdatas)))
    compiled = cache.get(key) if cache is not False else None
    hit = compiled is not None
    solvers = available_solvers() if solvers is None else tuple(solvers)
    if not solvers:
        raise RuntimeError("no supported solver is installed (install clarabel)")
    t0 = time.perf_counter()
    try:
        if compiled is None:
            compiled = _build_problem(objective, constraints, datas, ctx.n, costs=costs,
                                      cost_datas=kdatas, scale=scale, current=w0)
            try:
                # canonicalise now (cvxpy keeps it for the solve), so compile_time is honest
                compiled.problem.get_problem_data(solvers[0])
            except (cp.error.SolverError, ValueError):
                pass
            if cache is not False:
                cache.put(key, compiled)
            compile_time = time.perf_counter() - t0
            t0 = time.perf_counter()
        else:
            compile_time = 0.0
            compiled.assign(datas, kdatas, scale, w0)
    except ValueError as exc:  # cvxpy refuses a parameter value (e.g. a negative variance)
        raise InvalidInput(f"{objective!r}: a parameter value was refused: {exc}") from exc
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OptimizationWarning)
        outcome, solver, attempts = _solve(compiled, constraints, cdatas, solvers,
                                           solver_options, feasibility_tolerance)
    for wmsg in caught:
        warnings.warn_explicit(wmsg.message, wmsg.category, wmsg.filename, wmsg.lineno)
    solve_time = time.perf_counter() - t0

    if outcome == "infeasible":
        if diagnose:
            err = _diagnose_infeasible(objective, constraints, datas, ctx, current is not None,
                                       feasibility_tolerance, attempts, solver or solvers[0])
        else:
            err = InfeasibleConstraints(
                f"No portfolio satisfies all {len(constraints)} constraints "
                f"({objective!r}, {ctx.n} assets).")
        return failure("infeasible", err, attempts, compile_time, hit, solve_time)
    if outcome == "unbounded":
        return failure("unbounded", UnboundedObjective(
            f"{objective!r} is unbounded under the given constraints: the solver found a "
            "direction that improves it without limit. Add MaxGrossExposure or bound the "
            "positions."), attempts, compile_time, hit, solve_time)
    if outcome == "failed":
        summary = "; ".join(
            f"{a['solver']}: {a.get('status')}" + (f" ({a['error']})" if a.get("error") else "")
            for a in attempts)
        return failure("failed", OptimizationFailed(
            f"no solver produced an acceptable solution ({summary}). Try rescaling the "
            "inputs (e.g. returns in decimals, variances per period), loosening the "
            "constraints, raising feasibility_tolerance, or passing solver_options.",
            attempts), attempts, compile_time, hit, solve_time)

    w = np.asarray(compiled.w.value, dtype=float).copy()
    w = objective._finish(w, odata)  # e.g. RiskBudgeting rescales its barrier point
    viol = {repr(c): amt for c, amt, _ in _violations(constraints, cdatas, w)}
    tev, contributions, extra = _report_risk(objective, constraints, ctx, w, periods_per_year)
    last = attempts[-1]
    value = objective._value(w, odata)
    expected = evaluate_costs(costs, kdatas, w, w0)
    sign = -1.0 if isinstance(compiled.problem.objective, cp.Maximize) else 1.0
    diagnostics = {
        "constraint_violations": viol,
        "solver_attempts": attempts,
        "iterations": last.get("iterations"),
        "solver_time": last.get("solver_time"),
        "universe_size": ctx.n,
        "turnover": float(np.abs(w - w0).sum()),
        "warnings": [str(m.message) for m in caught],
        "expected_costs": expected,
        "net_objective": value + sign * expected["total"],
        **extra,
    }
    return OptimizationResult(outcome, old, pd.Series(w, index=universe), value, tev,
                              contributions, solver, solve_time, compile_time, hit, diagnostics)


def calculate_optimal_portfolio(objective, constraints=(), current_weights=None, **kwargs):
    """Target weights (a Series on the optimisation universe) that optimise
    ``objective`` under ``constraints``; the arguments are those of
    :func:`run_optimization`. A failure raises its error (:class:`InfeasibleConstraints`,
    :class:`UnboundedObjective`, :class:`OptimizationFailed`).
    """
    result = run_optimization(objective, constraints, current_weights, **kwargs)
    return result.raise_for_status().new_weights
