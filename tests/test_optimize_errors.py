"""Failures: infeasible constraints, unbounded objectives, bad inputs, solver fallback."""

import re

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from conftest import break_clarabel, clarabel_inaccurate

from zipline_factorarb.optimize import (
    CannotHold,
    DollarNeutral,
    FactorExposure,
    InfeasibleConstraints,
    LongOnly,
    MaxGrossExposure,
    MaximizeAlpha,
    MaximizeFactorTilt,
    NetExposure,
    NetGroupExposure,
    NonFiniteInput,
    OptimizationFailed,
    OptimizationWarning,
    PositionConcentration,
    ProblemCache,
    RiskModel,
    TargetWeights,
    TrackingError,
    UnboundedObjective,
    calculate_optimal_portfolio,
    run_optimization,
)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(42)
    n = 12
    assets = [f"S{i}" for i in range(n)]
    F = np.vstack([rng.normal(0, 0.002, n), rng.normal(1, 0.3, n), rng.normal(0, 0.5, n)])
    cov = np.diag([0.0, 1e-3, 4e-4])
    E = rng.uniform(0.002, 0.006, n)
    model = RiskModel(pd.DataFrame(F.T, index=assets, columns=["const", "mkt", "size"]), cov,
                      pd.Series(E, index=assets))
    b = np.r_[0.4, np.full(n - 1, 0.6 / (n - 1))]
    bench = pd.Series(b, index=assets)
    alphas = pd.Series(rng.normal(0, 0.01, n), index=assets)
    Sigma = F.T @ cov @ F + np.diag(E)
    return dict(model=model, bench=bench, alphas=alphas, assets=assets, Sigma=Sigma, b=b)


# --------------------------------------------------------------------------- infeasible
def test_conflicting_exposure_constraints_name_each_violation(setup):
    current = setup["bench"] * 0.5
    res = run_optimization(MaximizeAlpha(setup["alphas"]),
                           [NetExposure(1, 1), DollarNeutral(), MaxGrossExposure(2)],
                           current_weights=current)
    assert res.status == "infeasible" and not res.success and res.new_weights is None
    err = res.error
    assert isinstance(err, InfeasibleConstraints)
    with pytest.raises(InfeasibleConstraints):
        res.raise_for_status()
    msg = str(err)
    # each reference portfolio, each constraint it violates and by how much
    assert set(err.violations) == {"current", "empty"}  # no term has a benchmark
    cur = dict((name, amt) for name, amt, _ in err.violations["current"])
    assert cur["NetExposure(min=1, max=1)"] == pytest.approx(0.5)
    assert cur["DollarNeutral(tolerance=0.0001)"] == pytest.approx(0.4999)
    empty = dict((name, amt) for name, amt, _ in err.violations["empty"])
    assert empty == {"NetExposure(min=1, max=1)": pytest.approx(1.0)}
    assert "MaxGrossExposure(max=2)" not in cur
    assert "current portfolio:" in msg and "empty portfolio:" in msg
    assert "NetExposure(min=1, max=1) violated by 0.5: net exposure 0.5 outside [1, 1]" in msg
    # which constraint to relax
    assert err.removable == ["NetExposure(min=1, max=1)", "DollarNeutral(tolerance=0.0001)"]
    assert "Removing any one of these makes the problem feasible" in msg
    assert any(s.startswith("DollarNeutral") and "raise tolerance" in s for s in err.suggestions)
    with pytest.raises(InfeasibleConstraints):
        calculate_optimal_portfolio(MaximizeAlpha(setup["alphas"]),
                                    [NetExposure(1, 1), DollarNeutral(), MaxGrossExposure(2)])


def test_tight_tracking_error_reports_benchmark_violation_and_smallest_budget(setup):
    model, bench = setup["model"], setup["bench"]
    big = bench.idxmax()
    constraints = [TrackingError(0.01, model, bench, periods_per_year=12), LongOnly(),
                   NetExposure(1, 1), CannotHold([big])]
    res = run_optimization(MaximizeFactorTilt(pd.Series({"mkt": 0.01}), model, bench), constraints)
    err = res.error
    assert isinstance(err, InfeasibleConstraints), res
    bench_viol = {name: (amt, detail) for name, amt, detail in err.violations["benchmark"]}
    assert list(bench_viol) == ["CannotHold(['S0'])"]
    assert bench_viol["CannotHold(['S0'])"][0] == pytest.approx(0.4)
    assert "'S0'" in bench_viol["CannotHold(['S0'])"][1]
    empty = {name: amt for name, amt, _ in err.violations["empty"]}
    assert empty["NetExposure(min=1, max=1)"] == pytest.approx(1.0)
    # the empty portfolio is 100% away from the benchmark: its TEV exceeds the budget
    tev_empty = np.sqrt(12 * setup["b"] @ setup["Sigma"] @ setup["b"])
    assert empty["TrackingError(max_tev=0.01, periods_per_year=12)"] == pytest.approx(tev_empty - 0.01, rel=1e-9)
    # smallest achievable TEV with S0 excluded, computed independently
    w = cp.Variable(len(bench))
    a = w - setup["b"]
    L = np.linalg.cholesky(setup["Sigma"])
    prob = cp.Problem(cp.Minimize(cp.sum_squares(L.T @ a)), [cp.sum(w) == 1, w >= 0, w[0] == 0])
    prob.solve(solver=cp.OSQP, eps_abs=1e-10, eps_rel=1e-10, max_iter=100_000)
    min_tev = np.sqrt(12 * prob.value)
    assert min_tev > 0.01
    match = re.search(r"allow no less than ([0-9.]+)%", str(err))
    assert match, str(err)
    assert float(match.group(1)) / 100 == pytest.approx(min_tev, abs=6e-7)
    assert "TrackingError(max_tev=0.01, periods_per_year=12)" in err.removable
    assert "CannotHold(['S0'])" in err.removable
    # and with the budget the message suggests, the problem solves
    ok = run_optimization(MaximizeFactorTilt(pd.Series({"mkt": 0.01}), model, bench),
                          [TrackingError(min_tev * 1.01, model, bench, 12), *constraints[1:]])
    assert ok.success and ok.new_weights["S0"] == pytest.approx(0, abs=1e-8)


def test_conflicting_position_bounds_are_reported_before_solving(setup):
    with pytest.raises(ValueError, match="min weight 0.2 exceeds max weight 0.1 for 'S3'"):
        run_optimization(TargetWeights(setup["bench"]),
                         [PositionConcentration(pd.Series({"S3": 0.2}), 0.1, 0.0, 0.1)])


# --------------------------------------------------------------------------- unbounded
def test_unbounded_alpha_is_rejected_before_solving(setup, monkeypatch):
    def no_solve(*args, **kwargs):  # the check must not reach the solver
        raise AssertionError("solver called")

    monkeypatch.setattr(cp.Problem, "solve", no_solve)
    res = run_optimization(MaximizeAlpha(setup["alphas"]), [NetExposure(1, 1)], cache=ProblemCache())
    assert res.status == "unbounded" and res.diagnostics["solver_attempts"] == []
    assert isinstance(res.error, UnboundedObjective)
    assert "MaxGrossExposure" in str(res.error) and "LongOnly() with NetExposure" in str(res.error)
    with pytest.raises(UnboundedObjective):
        calculate_optimal_portfolio(MaximizeAlpha(setup["alphas"]), [LongOnly()])
    with pytest.raises(UnboundedObjective):
        calculate_optimal_portfolio(MaximizeAlpha(setup["alphas"]), [])


def test_group_and_factor_bounds_bound_a_long_only_book(setup):
    """Long only with a cap on every sector is bounded (the exact recession-cone test):
    it solves, and matches its closed form, each sector's cap on its best alpha."""
    alphas, assets = setup["alphas"], setup["assets"]
    labels = pd.Series(["A", "B", "C"] * 4, index=assets)
    w = calculate_optimal_portfolio(MaximizeAlpha(alphas),
                                    [LongOnly(), NetGroupExposure(labels, 0.0, 0.5)])
    best = alphas.groupby(labels).max().clip(lower=0.0)
    assert float(alphas @ w.reindex(assets)) == pytest.approx(0.5 * best.sum(), abs=1e-7)
    # a factor with positive loadings capped at 1 bounds a long-only book as well;
    # the optimum puts it all on the best alpha per unit of loading
    loadings = pd.DataFrame({"size": np.linspace(0.5, 2.0, len(assets))}, index=assets)
    w = calculate_optimal_portfolio(MaximizeAlpha(alphas),
                                    [LongOnly(), FactorExposure(loadings, -np.inf, 1.0)])
    ratio = (alphas / loadings["size"]).clip(lower=0.0)
    assert float(alphas @ w.reindex(assets)) == pytest.approx(ratio.max(), abs=1e-7)


def test_uncapped_group_leaves_the_alpha_unbounded(setup, monkeypatch):
    def no_solve(*args, **kwargs):
        raise AssertionError("solver called")

    monkeypatch.setattr(cp.Problem, "solve", no_solve)
    alphas, assets = setup["alphas"], setup["assets"]
    labels = pd.Series(["A", "B", "C"] * 4, index=assets)
    # sector C has no cap and an asset with positive alpha: unbounded, before solving
    caps = pd.Series({"A": 0.5, "B": 0.5})
    assert (alphas[labels == "C"] > 0).any()
    with pytest.raises(UnboundedObjective):
        calculate_optimal_portfolio(MaximizeAlpha(alphas),
                                    [LongOnly(), NetGroupExposure(labels, 0.0, caps)])
    # with every alpha of C negative the objective is bounded again (the test is on
    # the objective, not just on the feasible set)
    bounded = alphas.where(labels != "C", -alphas.abs() - 1e-3)
    monkeypatch.undo()
    w = calculate_optimal_portfolio(MaximizeAlpha(bounded),
                                    [LongOnly(), NetGroupExposure(labels, 0.0, caps)])
    best = bounded.groupby(labels).max().clip(lower=0.0).drop("C")
    assert float(bounded @ w.reindex(assets)) == pytest.approx(0.5 * best.sum(), abs=1e-7)


def test_tracking_error_bounds_only_with_positive_specific_variance(setup):
    model = setup["model"]
    zero = RiskModel(model.loadings, model.factor_covariance,
                     model.specific_variance.where(model.specific_variance.index != "S1", 0.0))
    with pytest.raises(UnboundedObjective, match="every specific variance is positive"):
        calculate_optimal_portfolio(MaximizeAlpha(setup["alphas"]),
                                    [TrackingError(0.05, zero, setup["bench"]), NetExposure(1, 1)])
    # positive specific variances make the TEV ellipsoid bounded: it solves
    w = calculate_optimal_portfolio(MaximizeAlpha(setup["alphas"]),
                                    [TrackingError(0.05, model, setup["bench"]), NetExposure(1, 1)])
    a = w.reindex(setup["assets"]).to_numpy() - setup["b"]
    assert np.sqrt(252 * a @ setup["Sigma"] @ a) == pytest.approx(0.05, abs=1e-8)


def test_bounded_linear_problem_puts_everything_in_the_best_alpha(setup):
    w = calculate_optimal_portfolio(MaximizeAlpha(setup["alphas"]), [LongOnly(), NetExposure(0, 1)])
    best = setup["alphas"].idxmax()
    assert w[best] == pytest.approx(1.0, abs=1e-7)
    assert w.drop(best).abs().max() < 1e-7


# --------------------------------------------------------------------------- inputs
def test_non_finite_inputs_name_asset_and_field(setup):
    """A NaN in a term's data is raised when the term is solved (not when it is
    created, so that order_optimal_portfolio(on_failure="hold") can hold on it)."""
    alphas = setup["alphas"].copy()
    alphas["S5"] = np.nan
    objective = MaximizeAlpha(alphas)
    with pytest.raises(NonFiniteInput) as info:
        run_optimization(objective, [LongOnly(), NetExposure(1, 1)])
    assert isinstance(info.value, ValueError)
    assert info.value.asset == "S5" and info.value.field == "MaximizeAlpha.alphas"
    assert "'S5'" in str(info.value) and "dropna" in str(info.value)
    bench = setup["bench"].copy()
    bench["S2"] = np.inf
    te = TrackingError(0.05, setup["model"], bench)
    with pytest.raises(NonFiniteInput, match="TrackingError.benchmark_weights.*'S2'"):
        calculate_optimal_portfolio(MaximizeAlpha(setup["alphas"]), [te, NetExposure(1, 1)])
    cur = setup["bench"].copy()
    cur["S7"] = np.nan
    with pytest.raises(NonFiniteInput, match="current_weights.*'S7'"):
        run_optimization(TargetWeights(setup["bench"]), [], current_weights=cur)


def test_assets_missing_from_the_risk_model_are_named(setup):
    alphas = pd.concat([setup["alphas"], pd.Series({"NEW": 0.01})])
    with pytest.raises(ValueError, match=r"no loadings for 1 assets.*'NEW'"):
        run_optimization(MaximizeAlpha(alphas),
                         [TrackingError(0.05, setup["model"], setup["bench"]), NetExposure(1, 1)])


# --------------------------------------------------------------------------- solver fallback
def test_falls_back_to_second_solver_when_clarabel_fails(setup, monkeypatch):
    break_clarabel(monkeypatch)
    constraints = [TrackingError(0.05, setup["model"], setup["bench"]), LongOnly(), NetExposure(1, 1)]
    res = run_optimization(MaximizeAlpha(setup["alphas"]), constraints, cache=ProblemCache(),
                           feasibility_tolerance=1e-6)
    assert res.success and res.solver == "SCS"
    attempts = res.diagnostics["solver_attempts"]
    assert attempts[0]["solver"] == "CLARABEL" and "simulated" in attempts[0]["error"]
    w = res.new_weights.reindex(setup["assets"]).to_numpy()
    assert abs(w.sum() - 1) < 1e-6 and w.min() > -1e-6
    monkeypatch.undo()
    ref = run_optimization(MaximizeAlpha(setup["alphas"]), constraints, cache=ProblemCache())
    assert res.objective_value == pytest.approx(ref.objective_value, abs=1e-5)


def test_inaccurate_solution_is_checked_then_accepted_with_warning(setup, monkeypatch):
    clarabel_inaccurate(monkeypatch)
    with pytest.warns(OptimizationWarning, match="inaccurate solution; accepted"):
        res = run_optimization(MaximizeAlpha(setup["alphas"]), [LongOnly(), NetExposure(1, 1)],
                               cache=ProblemCache())
    assert res.status == "optimal_inaccurate" and res.success

    # an inaccurate answer that breaks a constraint is refused, and the fallback used
    monkeypatch.undo()
    clarabel_inaccurate(monkeypatch, shift=0.01)
    res = run_optimization(MaximizeAlpha(setup["alphas"]), [LongOnly(), NetExposure(1, 1)],
                           cache=ProblemCache(), feasibility_tolerance=1e-6)
    assert res.success and res.solver == "SCS"
    assert "violates a constraint" in res.diagnostics["solver_attempts"][0]["error"]
    res = run_optimization(MaximizeAlpha(setup["alphas"]), [LongOnly(), NetExposure(1, 1)],
                           cache=ProblemCache(), solvers=["CLARABEL"])
    assert res.status == "failed" and isinstance(res.error, OptimizationFailed)
    assert "CLARABEL" in str(res.error)
