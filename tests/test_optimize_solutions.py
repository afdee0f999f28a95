"""Optimal portfolios checked against closed forms and an independent QP solver.

Independent references:

* without the long-only constraint the tracking-error-budget problem has a closed form:
  active weights proportional to ``Sigma^-1 (alpha - lambda 1)`` with ``1' a = 0``,
  scaled to the budget;
* with it, a mean-variance QP on the dense covariance solved by OSQP (ADMM, polished):
  by Lagrangian duality its solution w* is optimal for the tracking-error-budget
  problem whose budget is w*'s own tracking error, so both objectives must agree.
"""

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zipline_factorarb.optimize import (
    LongOnly,
    MaximizeAlpha,
    MaximizeFactorTilt,
    MeanVariance,
    NetExposure,
    NetGroupExposure,
    PositionConcentration,
    ProblemCache,
    RiskModel,
    TrackingError,
    calculate_optimal_portfolio,
    calibrate_risk_aversion,
    run_optimization,
    sector_rotation_model,
)


def random_model(n, m, seed, ppy=12):
    """Monthly-style factor model with a constant first factor (zero variance)."""
    rng = np.random.default_rng(seed)
    assets = [f"A{i:03d}" for i in range(n)]
    factors = ["const"] + [f"f{j}" for j in range(1, m)]
    F = np.vstack([rng.normal(0, 0.003, n), rng.normal(1.0, 0.3, (1, n)),
                   rng.normal(0, 0.5, (m - 2, n))])[:m]
    A = rng.normal(0, 0.02, (m - 1, m - 1))
    cov = np.zeros((m, m))
    cov[1:, 1:] = A @ A.T + np.diag(rng.uniform(2e-4, 1e-3, m - 1))
    E = rng.uniform(0.002, 0.01, n)
    model = RiskModel(pd.DataFrame(F.T, index=assets, columns=factors),
                      pd.DataFrame(cov, index=factors, columns=factors),
                      pd.Series(E, index=assets))
    b = rng.dirichlet(np.full(n, 2.0))
    mu = np.r_[1.0, rng.normal(0, 0.005, m - 1)]
    Sigma = F.T @ cov @ F + np.diag(E)  # dense, built independently of the package
    return dict(model=model, F=F, cov=cov, E=E, Sigma=Sigma, b=b, mu=mu, assets=assets,
                factors=factors, bench=pd.Series(b, index=assets),
                mu_f=pd.Series(mu, index=factors), alpha=F.T @ mu, rng=rng, ppy=ppy)


def tev_of(p, w):
    a = np.asarray(w) - p["b"]
    return float(np.sqrt(p["ppy"] * a @ p["Sigma"] @ a))


def closed_form_tev_budget(p, tev):
    Sigma, alpha = p["Sigma"], p["alpha"]
    Si = np.linalg.inv(Sigma)
    one = np.ones(len(alpha))
    lam = (one @ Si @ alpha) / (one @ Si @ one)
    d = Si @ (alpha - lam * one)
    return p["b"] + d * (tev / np.sqrt(p["ppy"])) / np.sqrt(d @ Sigma @ d)


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("seed,n,m", [(0, 40, 6), (1, 120, 4), (2, 15, 3)])
def test_tev_budget_matches_closed_form(seed, n, m):
    p = random_model(n, m, seed)
    w_ref = closed_form_tev_budget(p, 0.06)
    res = run_optimization(
        MaximizeFactorTilt(p["mu_f"], p["model"], p["bench"]),
        [TrackingError(0.06, p["model"], p["bench"], periods_per_year=12), NetExposure(1, 1)],
        cache=False,
    )
    assert res.status == "optimal" and res.solver == "CLARABEL"
    w = res.new_weights.reindex(p["assets"]).to_numpy()
    np.testing.assert_allclose(w, w_ref, atol=1e-6, rtol=0)
    assert res.tracking_error == pytest.approx(0.06, abs=1e-8)
    assert res.objective_value == pytest.approx(p["alpha"] @ (w_ref - p["b"]), abs=1e-8)
    # the same portfolio through MaximizeAlpha with alphas F' mu
    w2 = calculate_optimal_portfolio(
        MaximizeAlpha(pd.Series(p["alpha"], index=p["assets"])),
        [TrackingError(0.06, p["model"], p["bench"], 12), NetExposure(1, 1)], cache=False)
    np.testing.assert_allclose(w2.reindex(p["assets"]).to_numpy(), w_ref, atol=1e-6, rtol=0)


def test_mean_variance_matches_closed_form():
    p = random_model(30, 5, seed=3)
    gamma = 40.0
    Si = np.linalg.inv(p["Sigma"])
    one = np.ones(30)
    lam = (one @ Si @ p["alpha"]) / (one @ Si @ one)
    w_ref = p["b"] + Si @ (p["alpha"] - lam * one) / (2 * gamma)
    obj = MeanVariance(risk_model=p["model"], risk_aversion=gamma,
                       expected_factor_returns=p["mu_f"], benchmark_weights=p["bench"])
    res = run_optimization(obj, [NetExposure(1, 1)], cache=False)
    np.testing.assert_allclose(res.new_weights.reindex(p["assets"]).to_numpy(), w_ref, atol=1e-6)
    a = w_ref - p["b"]
    assert res.objective_value == pytest.approx(p["alpha"] @ w_ref - gamma * a @ p["Sigma"] @ a, abs=1e-9)


def test_calibrate_risk_aversion_matches_closed_form():
    p = random_model(25, 4, seed=4)
    Si = np.linalg.inv(p["Sigma"])
    one = np.ones(25)
    d = Si @ (p["alpha"] - (one @ Si @ p["alpha"]) / (one @ Si @ one) * one)
    # tracking error of the gamma-optimum is sqrt(ppy d' Sigma d) / (2 gamma)
    gamma_ref = np.sqrt(12 * d @ p["Sigma"] @ d) / (2 * 0.06)
    cal = calibrate_risk_aversion(0.06, p["model"], p["bench"],
                                  expected_factor_returns=p["mu_f"],
                                  constraints=[NetExposure(1, 1)], periods_per_year=12,
                                  cache=ProblemCache())
    assert cal.converged
    assert cal.risk_aversion == pytest.approx(gamma_ref, rel=2e-4)
    assert tev_of(p, cal.weights.reindex(p["assets"])) == pytest.approx(0.06, rel=1e-4)
    # long-only: no closed form, but the calibrated portfolio must hit the target
    cal = calibrate_risk_aversion(0.03, p["model"], p["bench"],
                                  expected_factor_returns=p["mu_f"],
                                  constraints=[LongOnly(), NetExposure(1, 1)],
                                  periods_per_year=12)
    assert cal.converged and cal.weights.min() > -1e-8
    assert tev_of(p, cal.weights.reindex(p["assets"])) == pytest.approx(0.03, rel=1e-4)
    with pytest.raises(ValueError, match="below the target"):
        calibrate_risk_aversion(5.0, p["model"], p["bench"], expected_factor_returns=p["mu_f"],
                                constraints=[LongOnly(), NetExposure(1, 1)], periods_per_year=12)


# --------------------------------------------------------------------------- long-only vs OSQP
def osqp_mean_variance(p, gamma, caps=None, groups=None):
    """Reference: the mean-variance QP on the dense covariance, solved by OSQP."""
    n = len(p["b"])
    w = cp.Variable(n)
    L = np.linalg.cholesky(p["Sigma"])  # dense factor, unrelated to the package's
    cons = [cp.sum(w) == 1, w >= 0]
    if caps is not None:
        cons.append(w <= caps)
    if groups is not None:
        M, lo, hi = groups
        cons += [M @ w >= lo, M @ w <= hi]
    a = w - p["b"]
    prob = cp.Problem(cp.Maximize(p["alpha"] @ w - gamma * cp.sum_squares(L.T @ a)), cons)
    prob.solve(solver=cp.OSQP, eps_abs=1e-11, eps_rel=1e-11, max_iter=400_000, polish=True)
    assert prob.status == cp.OPTIMAL
    return w.value


def check_constraints(p, w, max_tev=None, caps=None, groups=None, tol=1e-7):
    w = np.asarray(w)
    assert abs(w.sum() - 1) <= tol
    assert w.min() >= -tol
    if max_tev is not None:
        assert tev_of(p, w) <= max_tev + tol
    if caps is not None:
        assert np.all(w <= caps + tol)
    if groups is not None:
        M, lo, hi = groups
        assert np.all(M @ w >= lo - tol) and np.all(M @ w <= hi + tol)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(4, 30), m=st.integers(2, 6),
       log_gamma=st.floats(0.0, 4.0), extra=st.sampled_from(["none", "caps", "groups"]))
def test_long_only_tev_budget_matches_independent_qp(seed, n, m, log_gamma, extra):
    p = random_model(n, m, seed)
    gamma = 10.0 ** log_gamma
    caps = groups = None
    constraints = [LongOnly(), NetExposure(1, 1)]
    if extra == "caps":
        cap = max(2.0 / n, 0.05)
        caps = np.full(n, cap)
        constraints.append(PositionConcentration.with_equal_bounds(0.0, cap))
    elif extra == "groups":
        labels = np.arange(n) % 3
        M = np.vstack([(labels == g).astype(float) for g in range(3)])
        bench_groups = M @ p["b"]
        lo, hi = np.maximum(bench_groups - 0.1, 0), bench_groups + 0.1
        groups = (M, lo, hi)
        constraints.append(NetGroupExposure(pd.Series(labels, index=p["assets"]),
                                            pd.Series(lo, index=range(3)),
                                            pd.Series(hi, index=range(3))))
    w_qp = osqp_mean_variance(p, gamma, caps, groups)
    tev = tev_of(p, w_qp)
    if tev < 1e-4:  # the QP sits on the benchmark: a budget this small is degenerate
        return
    res = run_optimization(
        MaximizeFactorTilt(p["mu_f"], p["model"], p["bench"]),
        [TrackingError(tev, p["model"], p["bench"], periods_per_year=12), *constraints],
    )
    assert res.success, res.error
    w = res.new_weights.reindex(p["assets"]).to_numpy()
    check_constraints(p, w, tev, caps, groups)
    assert p["alpha"] @ w == pytest.approx(p["alpha"] @ w_qp, abs=1e-6)

    # the mean-variance objective itself against the same QP
    mv = run_optimization(
        MeanVariance(risk_model=p["model"], risk_aversion=gamma,
                     expected_factor_returns=p["mu_f"], benchmark_weights=p["bench"]),
        constraints,
    )
    w_mv = mv.new_weights.reindex(p["assets"]).to_numpy()
    check_constraints(p, w_mv, None, caps, groups)

    def mv_value(x):
        a = x - p["b"]
        return p["alpha"] @ x - gamma * a @ p["Sigma"] @ a

    assert mv_value(w_mv) == pytest.approx(mv_value(w_qp), abs=1e-6)


def test_long_only_tev_budget_against_slsqp():
    """A second, unrelated reference: scipy's SLSQP on the research's quadratic form."""
    from scipy.optimize import minimize

    p = random_model(8, 3, seed=11)
    budget = 0.04
    var_cap = budget ** 2 / 12
    res_ref = minimize(
        lambda w: -p["alpha"] @ w, p["b"], jac=lambda w: -p["alpha"], method="SLSQP",
        bounds=[(0, None)] * 8,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(8)},
                     {"type": "ineq", "fun": lambda w: var_cap - (w - p["b"]) @ p["Sigma"] @ (w - p["b"]),
                      "jac": lambda w: -2 * p["Sigma"] @ (w - p["b"])}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    assert res_ref.success
    w = calculate_optimal_portfolio(
        MaximizeFactorTilt(p["mu_f"], p["model"]),
        [TrackingError(budget, p["model"], p["bench"], 12), LongOnly(), NetExposure(1, 1)])
    w = w.reindex(p["assets"]).to_numpy()
    check_constraints(p, w, budget)
    assert p["alpha"] @ w == pytest.approx(p["alpha"] @ res_ref.x, abs=1e-6)


# --------------------------------------------------------------------------- result object
def test_result_reports_tracking_error_and_risk_contributions():
    p = random_model(50, 6, seed=5)
    current = pd.Series(p["rng"].dirichlet(np.ones(50)), index=p["assets"])
    res = run_optimization(
        MaximizeFactorTilt(p["mu_f"], p["model"], p["bench"]),
        [TrackingError(0.05, p["model"], p["bench"], 12), LongOnly(), NetExposure(1, 1)],
        current_weights=current,
    )
    w = res.new_weights.reindex(p["assets"]).to_numpy()
    assert res.tracking_error == pytest.approx(tev_of(p, w), rel=1e-10)
    assert res.tracking_error == pytest.approx(0.05, abs=1e-7)
    rc = res.risk_contributions
    assert list(rc.index) == p["factors"] + ["specific"]
    assert rc.sum() == pytest.approx(res.tracking_error ** 2, rel=1e-10)
    a = w - p["b"]
    f = p["F"] @ a
    np.testing.assert_allclose(rc.iloc[:-1].to_numpy(), 12 * f * (p["cov"] @ f), rtol=1e-9, atol=1e-15)
    assert rc["specific"] == pytest.approx(12 * np.sum(p["E"] * a * a), rel=1e-9)
    pd.testing.assert_series_equal(res.old_weights.reindex(p["assets"]), current, check_names=False)
    d = res.diagnostics
    assert d["old_tracking_error"] == pytest.approx(tev_of(p, current.to_numpy()), rel=1e-10)
    assert d["turnover"] == pytest.approx(np.abs(w - current.to_numpy()).sum(), rel=1e-10)
    assert max(d["constraint_violations"].values()) <= 1e-7
    assert res.solver == "CLARABEL" and res.solve_time > 0 and d["iterations"] > 0


# --------------------------------------------------------------------------- cache
def test_resolve_with_new_parameters_equals_fresh_build():
    cache = ProblemCache()
    p1, p2 = random_model(60, 5, seed=6), random_model(60, 5, seed=7)

    def solve(p, c, tev=0.05):
        return run_optimization(
            MaximizeFactorTilt(p["mu_f"], p["model"], p["bench"]),
            [TrackingError(tev, p["model"], p["bench"], 12), LongOnly(), NetExposure(1, 1)],
            cache=c)

    first = solve(p1, cache)
    again = solve(p2, cache)
    fresh = solve(p2, False)
    assert not first.cache_hit and again.cache_hit and not fresh.cache_hit
    assert len(cache) == 1 and cache.hits == 1
    # same optimum (cvxpy re-uses the Clarabel workspace on a re-solve, so the two agree
    # to solver accuracy rather than bit for bit: the objective is flat to ~1e-11 over
    # weight moves of ~1e-6 near the long-only boundary)
    np.testing.assert_allclose(again.new_weights.to_numpy(), fresh.new_weights.to_numpy(), atol=2e-5)
    assert again.objective_value == pytest.approx(fresh.objective_value, abs=1e-9)
    assert np.abs(again.new_weights.to_numpy() - first.new_weights.to_numpy()).max() > 1e-3
    # a different universe of the same size re-uses the compiled problem, correctly
    p3 = random_model(60, 5, seed=8)
    p3_model = RiskModel(p3["model"].loadings.set_axis([f"Z{i}" for i in range(60)]),
                         p3["model"].factor_covariance,
                         p3["model"].specific_variance.set_axis([f"Z{i}" for i in range(60)]))
    p3_bench = p3["bench"].set_axis([f"Z{i}" for i in range(60)])
    renamed = run_optimization(
        MaximizeFactorTilt(p3["mu_f"], p3_model, p3_bench),
        [TrackingError(0.05, p3_model, p3_bench, 12), LongOnly(), NetExposure(1, 1)], cache=cache)
    assert renamed.cache_hit
    np.testing.assert_allclose(renamed.new_weights.to_numpy(),
                               solve(p3, False).new_weights.to_numpy(), atol=2e-5)
    assert renamed.objective_value == pytest.approx(solve(p3, False).objective_value, abs=1e-9)
    # a new structure (another constraint) compiles a new problem
    other = run_optimization(
        MaximizeFactorTilt(p2["mu_f"], p2["model"], p2["bench"]),
        [TrackingError(0.05, p2["model"], p2["bench"], 12), LongOnly(), NetExposure(0.9, 1)],
        cache=cache)
    assert not other.cache_hit and len(cache) == 2
    # changing only the budget is a parameter update and still matches a fresh build
    tight = solve(p2, cache, tev=0.02)
    assert tight.cache_hit
    tight_fresh = solve(p2, False, tev=0.02)
    np.testing.assert_allclose(tight.new_weights.to_numpy(), tight_fresh.new_weights.to_numpy(), atol=2e-5)
    assert tight.objective_value == pytest.approx(tight_fresh.objective_value, abs=1e-9)
    assert tight.tracking_error == pytest.approx(0.02, abs=1e-8)


# --------------------------------------------------------------------------- sector rotation
def test_sector_rotation_is_the_research_formulation():
    p = random_model(40, 4, seed=9)
    rng = p["rng"]
    labels = pd.Series(rng.choice(["Energy", "Tech", "Health", "Utilities"], 40), index=p["assets"])
    caps = pd.Series(np.exp(rng.normal(size=40)), index=p["assets"])
    srm = sector_rotation_model(p["model"], labels, caps)
    W = srm.mapping.reindex(p["assets"]).to_numpy()
    xb = srm.benchmark_weights.to_numpy()
    # asset benchmark is the cap-weighted portfolio
    np.testing.assert_allclose(W @ xb, caps / caps.sum(), rtol=1e-12)
    # for any sector weights the sector model's active variance is the research's
    # f' Sigma_f f + ||sqrt(E) W (x - x_b)||^2 with f = F W (x - x_b)
    for _ in range(3):
        x = rng.dirichlet(np.ones(4))
        d = x - xb
        f = p["F"] @ W @ d
        research = f @ p["cov"] @ f + np.sum((np.sqrt(p["E"]) * (W @ d)) ** 2)
        ours = srm.risk_model.variance(pd.Series(x, index=srm.mapping.columns), srm.benchmark_weights)
        assert ours == pytest.approx(research, rel=1e-12)
    # optimise the sectors: 6% TEV budget, long only, fully invested
    x = calculate_optimal_portfolio(
        MaximizeFactorTilt(p["mu_f"], srm.risk_model, srm.benchmark_weights),
        [TrackingError(0.06, srm.risk_model, srm.benchmark_weights, 12), LongOnly(), NetExposure(1, 1)])
    w = srm.asset_weights(x).reindex(p["assets"]).to_numpy()
    assert w.sum() == pytest.approx(1, abs=1e-9) and w.min() >= -1e-9
    # the asset-level model sees the same tracking error against the cap-weighted
    # benchmark W x_b: the budget, which binds
    a = w - W @ xb
    asset_tev = np.sqrt(12 * a @ p["Sigma"] @ a)
    assert asset_tev == pytest.approx(0.06, abs=1e-7)
    # and the research's formulation (quadratic constraint on the dense sector
    # covariance W' Sigma W) solved by SCS gives the same objective
    gamma_w = cp.Variable(4)
    Sigma_s = W.T @ p["Sigma"] @ W
    L = np.linalg.cholesky(Sigma_s + 1e-14 * np.eye(4))
    budget_var = 0.06 ** 2 / 12
    prob = cp.Problem(cp.Maximize(p["mu"] @ (p["F"] @ W @ gamma_w)),
                      [cp.sum(gamma_w) == 1, gamma_w >= 0,
                       cp.sum_squares(L.T @ (gamma_w - xb)) <= budget_var])
    prob.solve(solver=cp.SCS, eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)
    assert p["mu"] @ p["F"] @ W @ x.to_numpy() == pytest.approx(prob.value, abs=1e-6)
