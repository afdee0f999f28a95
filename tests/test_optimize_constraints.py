"""Each constraint, checked by projecting target weights (a strictly convex QP) and
comparing with closed forms or the same projection written directly in cvxpy and
solved by OSQP."""

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from zipline_factorarb.optimize import (
    CannotHold,
    DollarNeutral,
    FactorExposure,
    Frozen,
    LongOnly,
    MaxGrossExposure,
    MaxTurnover,
    NetExposure,
    NetGroupExposure,
    PositionConcentration,
    TargetWeights,
    run_optimization,
)

N = 15
ASSETS = [f"X{i:02d}" for i in range(N)]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(123)
    return dict(
        target=rng.normal(0.05, 0.15, N),
        current=rng.dirichlet(np.ones(N)),
        labels=np.array(["tech", "energy", "health"])[np.arange(N) % 3],
        loadings=rng.normal(0, 1, (N, 2)),
        bench=np.full(N, 1.0 / N),
    )


def solve(target, constraints, current=None, **kw):
    res = run_optimization(TargetWeights(pd.Series(target, index=ASSETS)), constraints,
                           None if current is None else pd.Series(current, index=ASSETS), **kw)
    assert res.success, res.error
    return res.new_weights.reindex(ASSETS).to_numpy(), res


def osqp_projection(target, build):
    w = cp.Variable(N)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(w - target)), build(w))
    prob.solve(solver=cp.OSQP, eps_abs=1e-11, eps_rel=1e-11, max_iter=200_000, polish=True)
    assert prob.status == cp.OPTIMAL
    return w.value


def test_position_concentration_is_clipping(data):
    t = data["target"]
    lo = pd.Series({"X00": -0.05, "X01": 0.1})
    hi = pd.Series({"X00": 0.02, "X01": 0.3, "X02": 0.01})
    w, _ = solve(t, [PositionConcentration(lo, hi, default_min_weight=-0.1, default_max_weight=0.2)])
    lo_v = np.full(N, -0.1)
    hi_v = np.full(N, 0.2)
    lo_v[:2] = [-0.05, 0.1]
    hi_v[:3] = [0.02, 0.3, 0.01]
    # X14's target is 4e-5 above its bound: an interior-point answer sits within ~1e-7
    np.testing.assert_allclose(w, np.clip(t, lo_v, hi_v), atol=1e-6)
    # Quantopian's default: assets without bounds cannot be held
    w, _ = solve(t, [PositionConcentration(lo, hi)])
    assert np.abs(w[3:]).max() < 1e-8


def test_dollar_neutral_and_net_exposure_shift_every_weight_equally(data):
    t = data["target"]
    w, _ = solve(t, [DollarNeutral(0.01)])
    excess = t.sum() - 0.01
    assert excess > 0
    np.testing.assert_allclose(w, t - excess / N, atol=1e-7)
    w, _ = solve(t, [NetExposure(1, 1)])
    np.testing.assert_allclose(w, t - (t.sum() - 1) / N, atol=1e-7)
    w, _ = solve(t, [NetExposure(-np.inf, 0.2)])
    np.testing.assert_allclose(w, t - (t.sum() - 0.2) / N, atol=1e-7)


def test_cannot_hold_and_frozen(data):
    t, cur = data["target"], data["current"]
    w, _ = solve(t, [CannotHold(["X03", "X07"]), Frozen("X05")], current=cur)
    expected = t.copy()
    expected[[3, 7]] = 0.0
    expected[5] = cur[5]
    np.testing.assert_allclose(w, expected, atol=1e-7)


def test_group_factor_gross_and_turnover_against_osqp(data):
    t, cur, labels, L, b = (data[k] for k in ("target", "current", "labels", "loadings", "bench"))
    groups = ["energy", "health", "tech"]
    M = np.vstack([(labels == g).astype(float) for g in groups])
    glo = pd.Series({"energy": 0.1, "health": 0.2})          # tech unbounded below
    ghi = pd.Series({"energy": 0.3, "health": 0.3, "tech": 0.35})
    cases = {
        "group": ([NetGroupExposure(pd.Series(labels, index=ASSETS), glo, ghi)],
                  lambda w: [M[0] @ w >= 0.1, M[1] @ w >= 0.2, M @ w <= ghi.reindex(groups).to_numpy()]),
        "factor": ([FactorExposure(pd.DataFrame(L, index=ASSETS, columns=["value", "mom"]),
                                   pd.Series({"value": -0.05}), 0.05,
                                   benchmark_weights=pd.Series(b, index=ASSETS))],
                   lambda w: [L[:, 0] @ (w - b) >= -0.05, L.T @ (w - b) <= 0.05]),
        "gross": ([MaxGrossExposure(0.8)], lambda w: [cp.norm1(w) <= 0.8]),
        "turnover": ([MaxTurnover(0.5)], lambda w: [cp.norm1(w - cur) <= 0.5]),
        "all": ([NetGroupExposure(pd.Series(labels, index=ASSETS), glo, ghi), LongOnly(),
                 NetExposure(0.9, 1.0), MaxTurnover(0.9)],
                lambda w: [M[0] @ w >= 0.1, M[1] @ w >= 0.2, M @ w <= ghi.reindex(groups).to_numpy(),
                           w >= 0, cp.sum(w) >= 0.9, cp.sum(w) <= 1.0, cp.norm1(w - cur) <= 0.9]),
    }
    for name, (constraints, build) in cases.items():
        w, res = solve(t, constraints, current=cur)
        ref = osqp_projection(t, build)
        np.testing.assert_allclose(w, ref, atol=1e-6, err_msg=name)
        assert np.max(np.abs(ref - t)) > 1e-3, name  # the constraint is active
        assert max(res.diagnostics["constraint_violations"].values()) <= 1e-7, name


def test_violation_amounts(data):
    from zipline_factorarb.optimize._base import Context

    universe = pd.Index(ASSETS)
    ctx = Context(universe, data["current"])
    w = np.full(N, 0.1)
    w[0] = -0.2
    labels = pd.Series(data["labels"], index=ASSETS)
    cases = [
        (LongOnly(), 0.2),
        (NetExposure(1, 1), abs(w.sum() - 1)),
        (MaxGrossExposure(1.0), np.abs(w).sum() - 1.0),
        (PositionConcentration.with_equal_bounds(-0.1, 0.05), 0.1),
        (NetGroupExposure.with_equal_bounds(labels, 0.0, 0.3), max(
            w[data["labels"] == g].sum() - 0.3 for g in ("tech", "energy", "health"))),
        (MaxTurnover(0.5), np.abs(w - data["current"]).sum() - 0.5),
        (CannotHold(["X00"]), 0.2),
        (Frozen(["X04"]), abs(0.1 - data["current"][4])),
    ]
    for constraint, expected in cases:
        d = constraint._prepare(ctx)
        d.universe = universe
        amount, detail = constraint._violation(w, d)
        assert amount == pytest.approx(expected, rel=1e-12), constraint
        assert detail


def test_all_terms_together_compile_once_and_resolve(data):
    """Every objective with every constraint is DPP: the second solve is a cache hit."""
    from zipline_factorarb.optimize import (MaximizeAlpha, MaximizeFactorTilt, MeanVariance,
                                            ProblemCache, RiskModel, TrackingError)

    rng = np.random.default_rng(5)
    model = RiskModel(pd.DataFrame(rng.normal(1, 0.3, (N, 2)), index=ASSETS, columns=["a", "b"]),
                      np.diag([4e-4, 1e-4]), pd.Series(rng.uniform(1e-4, 3e-4, N), index=ASSETS))
    bench = pd.Series(data["bench"], index=ASSETS)
    labels = pd.Series(data["labels"], index=ASSETS)
    constraints = [
        TrackingError(0.2, model, bench), LongOnly(), NetExposure(1, 1), MaxGrossExposure(1.2),
        PositionConcentration.with_equal_bounds(0, 0.3),
        FactorExposure(model.loadings, -0.5, 0.5, benchmark_weights=bench),
        NetGroupExposure.with_equal_bounds(labels, 0.1, 0.6), MaxTurnover(1.5),
        CannotHold("X01"), Frozen("X02"),
    ]
    current = pd.Series(data["current"], index=ASSETS)
    objectives = [
        lambda s: MaximizeAlpha(pd.Series(s.normal(0, 0.01, N), index=ASSETS)),
        lambda s: TargetWeights(pd.Series(s.dirichlet(np.ones(N)), index=ASSETS)),
        lambda s: MaximizeFactorTilt(pd.Series({"a": s.normal(0, 0.01), "b": 0.01}), model, bench),
        lambda s: MeanVariance(pd.Series(s.normal(0, 0.01, N), index=ASSETS), model, 2.0,
                               benchmark_weights=bench),
    ]
    for make in objectives:
        cache = ProblemCache()
        s = np.random.default_rng(1)
        first = run_optimization(make(s), constraints, current, cache=cache)
        second = run_optimization(make(s), constraints, current, cache=cache)
        assert first.success and second.success and second.cache_hit
        assert not np.allclose(first.new_weights, second.new_weights, atol=1e-6)
        for res in (first, second):
            assert max(res.diagnostics["constraint_violations"].values()) <= 1e-7
            assert res.new_weights["X01"] == pytest.approx(0, abs=1e-9)
            assert res.new_weights["X02"] == pytest.approx(current["X02"], abs=1e-9)


def test_importing_the_package_is_cheap_and_side_effect_free():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, zipline_factorarb.optimize as o, zipline_factorarb.kernels.risk; "
            "assert 'cvxpy' not in sys.modules and 'zipline' not in sys.modules, sorted(sys.modules); "
            "assert 'MaximizeAlpha' in dir(o)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# --------------------------------------------------------------------------- a new constraint
def test_a_new_constraint_in_under_30_lines(data):
    """The constraint protocol, extended the way docs/optimize.md shows: a cap on every
    asset's weight by group (under 30 lines), solved and checked against the closed
    form of a capped long-only book (fill the best alphas up to their caps)."""
    from zipline_factorarb.optimize import (Bounds, Constraint, InfeasibleConstraints,
                                            MaximizeAlpha, TermData, UnboundedObjective,
                                            calculate_optimal_portfolio)
    from zipline_factorarb.optimize._base import asset_label

    class MaxWeightPerGroup(Constraint):
        """Each asset's weight at most the cap of its group (uncapped without a group)."""

        def __init__(self, groups, caps):
            self.groups, self.caps = groups, dict(caps)

        def _prepare(self, ctx):
            cap = ctx.align(self.groups.map(self.caps).astype(float), fill=np.inf)
            return TermData({"cap": np.minimum(cap, 1e4)}, {"given": cap})

        def _build(self, w, p, data):
            return [w <= p["cap"]]

        def _violation(self, w, data):
            gap = w - data["given"]
            i = int(np.argmax(gap))
            return max(0.0, float(gap[i])), f"weight of {asset_label(data, i)} above its cap"

        def _bounds(self, data):
            return Bounds(upper=data["given"])

    labels = pd.Series(data["labels"], index=ASSETS)
    caps = {"tech": 0.1, "energy": 0.25, "health": 0.05}
    alphas = pd.Series(np.random.default_rng(9).normal(0, 0.01, N), index=ASSETS)
    w = calculate_optimal_portfolio(MaximizeAlpha(alphas), [
        MaxWeightPerGroup(labels, caps), LongOnly(), NetExposure(1, 1)])
    expected, left = pd.Series(0.0, index=ASSETS), 1.0
    for asset in alphas.sort_values(ascending=False).index:  # the closed form
        expected[asset] = min(caps[labels[asset]], left)
        left -= expected[asset]
    np.testing.assert_allclose(w.reindex(ASSETS), expected, atol=1e-7)
    # its Bounds make a long-only book bounded; without LongOnly it is unbounded
    with pytest.raises(UnboundedObjective):
        calculate_optimal_portfolio(MaximizeAlpha(alphas), [MaxWeightPerGroup(labels, caps)])
    # its _violation explains infeasibility
    tight = MaxWeightPerGroup(labels, {"tech": 0.01, "energy": 0.01, "health": 0.01})
    with pytest.raises(InfeasibleConstraints, match="MaxWeightPerGroup"):
        calculate_optimal_portfolio(MaximizeAlpha(alphas), [tight, LongOnly(), NetExposure(1, 1)])
