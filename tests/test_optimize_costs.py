"""Transaction and holding costs in the optimisation and in zipline's fills.

References, all independent of the package's kernels unless said otherwise:

* closed forms for one asset (linear cost: a dead zone around the current weight;
  impact: ``a = c + 1.5 k z^{1/2}``; borrow: a short only when ``-a > f``;
  mean-variance with a linear cost: soft-thresholding);
* a second conic solver (SCS) and scipy's SLSQP on a smooth split reformulation;
* costs recomputed in the test from the input numbers.

Clarabel's stopping rule is a duality gap of ~1e-10 in the objective; where the
optimum is flat (the impact term's curvature is small) that leaves ~1e-6 in the weights,
hence the 1e-5 tolerances there. On these tiny problems with the impact term Clarabel
often ends at AlmostSolved (``optimal_inaccurate``, accepted with an
OptimizationWarning): its primal residual stalls just above the tightened 1e-10
tolerance; the weights still agree with SCS to ~1e-7.
"""

import warnings

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from zipline_factorarb.kernels import costs as kc
from zipline_factorarb.optimize import (
    BorrowCost,
    CostModel,
    InvalidInput,
    LinearCost,
    MarketImpact,
    MaxGrossExposure,
    MaximizeAlpha,
    MeanVariance,
    NonFiniteInput,
    OptimizationWarning,
    PositionConcentration,
    ProblemCache,
    RiskModel,
    TargetWeights,
    UnknownAssets,
    optimal_target,
    run_optimization,
)

A = ["A"]


def bounds(lo=-0.5, hi=0.5, assets=A):
    return PositionConcentration(pd.Series(lo, index=assets), pd.Series(hi, index=assets))


def impact_k(k, assets=A):
    """A MarketImpact term whose weight coefficient is exactly ``k`` (b = 1, V = PV)."""
    return MarketImpact(1.0, pd.Series(k, index=assets), pd.Series(1e6, index=assets), 1e6)


def solve1(alpha, w0, costs, constraints=None, **kw):
    res = run_optimization(MaximizeAlpha(pd.Series([alpha], index=A)),
                           [bounds()] if constraints is None else constraints,
                           pd.Series([w0], index=A), costs=costs, **kw)
    assert res.success, res.error
    return res, float(res.new_weights["A"])


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("alpha", [0.004, -0.012, 0.0149, 0.02, -0.03])
def test_linear_cost_dead_zone(alpha):
    c, w0 = 0.015, 0.1
    res, w = solve1(alpha, w0, [LinearCost(c)], cache=False)
    expected = w0 if abs(alpha) <= c else (0.5 if alpha > 0 else -0.5)
    assert w == pytest.approx(expected, abs=1e-8)
    assert res.expected_cost == pytest.approx(c * abs(expected - w0), abs=1e-9)
    assert res.diagnostics["net_objective"] == pytest.approx(
        alpha * expected - c * abs(expected - w0), abs=1e-9)
    assert res.objective_value == pytest.approx(alpha * expected, abs=1e-9)


@pytest.mark.parametrize("alpha,c,k,w0", [
    (0.05, 0.0, 0.2, 0.1),     # impact only
    (0.05, 0.01, 0.2, 0.1),    # impact and linear
    (-0.04, 0.01, 0.1, 0.1),   # a sale
    (0.01, 0.0, 0.1, 0.0),
])
def test_impact_closed_form(alpha, c, k, w0):
    # maximise a z - c|z| - k|z|^1.5: a - c = 1.5 k z^0.5, z = (2 (a - c) / (3 k))^2
    costs = [impact_k(k)] + ([LinearCost(c)] if c else [])
    res, w = solve1(alpha, w0, costs, cache=False)
    z = np.sign(alpha) * (2 * (abs(alpha) - c) / (3 * k)) ** 2
    assert abs(w0 + z) < 0.5  # inside the bounds
    assert w - w0 == pytest.approx(z, abs=1e-5)
    ec = res.diagnostics["expected_costs"]
    assert ec["impact"] == pytest.approx(k * abs(z) ** 1.5, rel=1e-3)
    assert ec["linear"] == pytest.approx(c * abs(z), rel=1e-3, abs=1e-12)


def test_impact_alone_bounds_a_linear_objective():
    # no constraint at all: the 3/2-power impact keeps MaximizeAlpha bounded
    alphas = pd.Series([0.03, -0.02], index=["A", "B"])
    k = 0.1
    res = run_optimization(MaximizeAlpha(alphas), [], costs=[impact_k(k, ["A", "B"])],
                           cache=False)
    assert res.success
    ref = np.sign(alphas) * (2 * alphas.abs() / (3 * k)) ** 2
    np.testing.assert_allclose(res.new_weights.to_numpy(), ref.to_numpy(), atol=1e-5)
    # without it the same problem is unbounded
    assert run_optimization(MaximizeAlpha(alphas), [], costs=[LinearCost(0.01)],
                            cache=False).status == "unbounded"


@pytest.mark.parametrize("alpha,shorts", [(-0.02, True), (-0.005, False), (-0.0099, False)])
def test_borrow_short_only_when_alpha_exceeds_the_charge(alpha, shorts):
    cost = BorrowCost(0.12, holding_periods=21, periods_per_year=252)  # f = 0.01
    res, w = solve1(alpha, 0.0, [cost], cache=False)
    assert w == pytest.approx(-0.5 if shorts else 0.0, abs=1e-8)
    assert res.diagnostics["expected_costs"]["borrow"] == pytest.approx(
        0.01 * 0.5 if shorts else 0.0, abs=1e-9)


def one_asset_model(variance):
    return RiskModel(pd.DataFrame({"f": [1.0]}, index=A),
                     pd.DataFrame([[0.6 * variance]], index=["f"], columns=["f"]),
                     pd.Series([0.4 * variance], index=A))


@pytest.mark.parametrize("gamma", [1.0, 4.0])
@pytest.mark.parametrize("mu,w0", [(0.004, 0.1), (0.004, 0.9), (0.004, 0.3), (-0.002, 0.0)])
def test_mean_variance_linear_cost_soft_threshold(gamma, mu, w0):
    # maximise mu w - gamma s2 w^2 - c |w - w0|:
    # w* = (mu - c) / (2 gamma s2) when that is above w0, (mu + c) / (2 gamma s2) when
    # below, else w0 (the costs enter in return units: scaled by 1/gamma internally)
    s2, c = 1e-2 / gamma, 0.001
    obj = MeanVariance(pd.Series([mu], index=A), one_asset_model(s2), risk_aversion=gamma)
    res = run_optimization(obj, [], pd.Series([w0], index=A), costs=[LinearCost(c)],
                           cache=False)
    up, down = (mu - c) / (2 * gamma * s2), (mu + c) / (2 * gamma * s2)
    ref = up if up > w0 else down if down < w0 else w0
    assert float(res.new_weights["A"]) == pytest.approx(ref, abs=1e-7)
    value = mu * ref - gamma * s2 * ref ** 2
    assert res.objective_value == pytest.approx(value, abs=1e-10)
    assert res.diagnostics["net_objective"] == pytest.approx(value - c * abs(ref - w0), abs=1e-10)


def test_minimised_objective_adds_costs():
    # minimise (w - t)^2 + c |w - w0|: w = w0 + sign(t - w0) max(|t - w0| - c / 2, 0)
    c, w0 = 0.02, 0.1
    for t in (0.3, 0.105, -0.2):
        res = run_optimization(TargetWeights(pd.Series([t], index=A)), [],
                               pd.Series([w0], index=A), costs=LinearCost(c), cache=False)
        ref = w0 + np.sign(t - w0) * max(abs(t - w0) - c / 2, 0.0)
        assert float(res.new_weights["A"]) == pytest.approx(ref, abs=1e-7)
        assert res.diagnostics["net_objective"] == pytest.approx(
            (ref - t) ** 2 + c * abs(ref - w0), abs=1e-10)


# --------------------------------------------------------------------------- other solvers
def random_problem(n, seed):
    rng = np.random.default_rng(seed)
    assets = [f"S{i}" for i in range(n)]
    L = rng.normal(0, 0.01, (n, 2))
    cov = np.diag(rng.uniform(0.5, 1.5, 2))
    E = rng.uniform(1e-4, 4e-4, n)
    model = RiskModel(pd.DataFrame(L, index=assets, columns=["f1", "f2"]),
                      pd.DataFrame(cov, index=["f1", "f2"], columns=["f1", "f2"]),
                      pd.Series(E, index=assets))
    return dict(
        assets=assets, model=model, Sigma=L @ cov @ L.T + np.diag(E),
        mu=rng.normal(0, 0.004, n), w0=rng.normal(0, 0.2, n),
        c=rng.uniform(5e-4, 2e-3, n), sigma=rng.uniform(0.01, 0.03, n),
        V=rng.uniform(1e6, 1e7, n), b=1.0, PV=1e6 * rng.uniform(5, 50),
        r=rng.uniform(0.0, 0.2, n), hp=21, ppy=252,
    )


def costs_of(p):
    s = lambda v: pd.Series(v, index=p["assets"])  # noqa: E731
    return [LinearCost(s(p["c"])),
            MarketImpact(p["b"], s(p["sigma"]), s(p["V"]), p["PV"]),
            BorrowCost(s(p["r"]), p["hp"], p["ppy"])]


def solve_random(p, gamma, solver):
    s = lambda v: pd.Series(v, index=p["assets"])  # noqa: E731
    with warnings.catch_warnings():
        # with the impact term Clarabel often stops at AlmostSolved: its primal residual
        # stalls just above the project's tightened 1e-10 tolerance; the weights are
        # still within ~1e-7 of SCS's (what this test checks)
        warnings.simplefilter("ignore", OptimizationWarning)
        res = run_optimization(MeanVariance(s(p["mu"]), p["model"], gamma),
                               [bounds(-0.6, 0.6, p["assets"])], s(p["w0"]),
                               costs=costs_of(p), solvers=[solver], cache=False)
    assert res.success and res.solver == solver
    return res


@pytest.mark.parametrize("seed", [0, 1])
def test_second_solver_and_scipy_agree(seed):
    n, gamma = 5, 2.0
    p = random_problem(n, seed)
    res = solve_random(p, gamma, "CLARABEL")
    w = res.new_weights.to_numpy()
    alt = [s for s in ("ECOS", "SCS") if s in cp.installed_solvers()]
    assert alt, "no second conic solver installed"
    np.testing.assert_allclose(solve_random(p, gamma, alt[0]).new_weights.to_numpy(), w,
                               atol=1e-5)

    # scipy SLSQP on a smooth split: w = w0 + u - v (u, v >= 0), shorts s >= max(-w, 0)
    k = p["b"] * p["sigma"] * np.sqrt(p["PV"] / p["V"])
    f = p["r"] * p["hp"] / p["ppy"]

    def neg_objective(x):  # value and gradient, scaled to order one
        u, v, s = x[:n], x[n:2 * n], x[2 * n:]
        ww = p["w0"] + u - v
        t = np.maximum(u + v, 0.0)
        value = p["mu"] @ ww - gamma * ww @ p["Sigma"] @ ww - p["c"] @ t - k @ t ** 1.5 - f @ s
        dw = p["mu"] - 2 * gamma * p["Sigma"] @ ww
        dt = -p["c"] - 1.5 * k * np.sqrt(t)
        return -1e3 * value, -1e3 * np.r_[dw + dt, -dw + dt, -f]

    def weights(x):
        return p["w0"] + x[:n] - x[n:2 * n]

    eye = np.eye(n)
    cons = [{"type": "ineq", "fun": lambda x: x[2 * n:] + weights(x),
             "jac": lambda x: np.hstack([eye, -eye, eye])},
            {"type": "ineq", "fun": lambda x: 0.6 - weights(x),
             "jac": lambda x: np.hstack([-eye, eye, 0 * eye])},
            {"type": "ineq", "fun": lambda x: 0.6 + weights(x),
             "jac": lambda x: np.hstack([eye, -eye, 0 * eye])}]
    x0 = np.r_[np.full(2 * n, 1e-3), np.maximum(-p["w0"], 0) + 1e-3]  # from w0, not w
    ref = minimize(neg_objective, x0, jac=True, method="SLSQP", bounds=[(0, None)] * (3 * n),
                   constraints=cons, options={"ftol": 1e-12, "maxiter": 1000})
    assert ref.success, ref.message
    np.testing.assert_allclose(w, weights(ref.x), atol=1e-5)
    assert res.diagnostics["net_objective"] == pytest.approx(-ref.fun / 1e3, abs=1e-10)


def test_one_asset_against_a_grid():
    # all three costs, one asset: brute force over a fine grid around the optimum
    mu, gamma, s2, w0 = 0.003, 1.5, 4e-4, 0.2
    c, sigma, V, PV, r = 0.001, 0.02, 2e6, 4e6, 0.24
    k, f = sigma * np.sqrt(PV / V), r * 21 / 252
    obj = MeanVariance(pd.Series([mu], index=A), one_asset_model(s2), gamma)
    costs = [LinearCost(c), MarketImpact(1.0, pd.Series([sigma], index=A),
                                         pd.Series([V], index=A), PV), BorrowCost(r)]
    res = run_optimization(obj, [bounds(-1, 1)], pd.Series([w0], index=A), costs=costs,
                           cache=False)
    w = float(res.new_weights["A"])

    def net(x):
        return mu * x - gamma * s2 * x ** 2 - c * abs(x - w0) - k * abs(x - w0) ** 1.5 \
            - f * np.maximum(-x, 0)

    grid = np.linspace(-1, 1, 200_001)
    g = grid[np.argmax(net(grid))]
    fine = np.linspace(g - 1e-5, g + 1e-5, 20_001)
    w_ref = fine[np.argmax(net(fine))]
    assert w == pytest.approx(w_ref, abs=1e-5)
    assert res.diagnostics["net_objective"] == pytest.approx(net(w_ref), abs=1e-10)


# --------------------------------------------------------------------------- reported costs
@pytest.mark.filterwarnings("ignore::zipline_factorarb.optimize.errors.OptimizationWarning")
@settings(max_examples=20, deadline=None, derandomize=True)
@given(n=st.integers(1, 5), seed=st.integers(0, 10_000), gamma=st.sampled_from([0.5, 3.0]))
def test_reported_costs_match_independent_formulas(n, seed, gamma):
    p = random_problem(n, seed)
    res = run_optimization(
        MeanVariance(pd.Series(p["mu"], index=p["assets"]), p["model"], gamma),
        [MaxGrossExposure(2.0)], pd.Series(p["w0"], index=p["assets"]), costs=costs_of(p),
        cache=ProblemCache())
    assert res.success
    w = res.new_weights.reindex(p["assets"]).to_numpy()
    z = w - p["w0"]
    lin = float(np.sum(p["c"] * np.abs(z)))
    imp = float(np.sum(p["b"] * p["sigma"] * np.sqrt(p["PV"] / p["V"]) * np.abs(z) ** 1.5))
    bor = float(np.sum(p["r"] * 21 / 252 * np.clip(-w, 0, None)))
    ec = res.diagnostics["expected_costs"]
    assert ec["linear"] == pytest.approx(lin, rel=1e-12, abs=1e-15)
    assert ec["impact"] == pytest.approx(imp, rel=1e-12, abs=1e-15)
    assert ec["borrow"] == pytest.approx(bor, rel=1e-12, abs=1e-15)
    assert ec["total"] == pytest.approx(lin + imp + bor, rel=1e-12, abs=1e-15)
    assert res.expected_cost == ec["total"]
    assert min(ec.values()) >= 0
    value = p["mu"] @ w - gamma * w @ p["Sigma"] @ w
    assert res.objective_value == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert res.diagnostics["net_objective"] == pytest.approx(value - ec["total"], rel=1e-9,
                                                             abs=1e-12)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(x=st.lists(st.floats(-1e7, 1e7), min_size=1, max_size=6),
       hs=st.floats(0, 0.01), b=st.floats(0, 3), sigma=st.floats(0, 0.1),
       V=st.floats(1e3, 1e10))
def test_kernels_nonnegative_and_zero_at_zero_trade(x, hs, b, sigma, V):
    x = np.asarray(x)
    assert np.all(kc.linear_cost(x, hs) >= 0)
    assert np.all(kc.dollar_impact(x, b, sigma, V) >= 0)
    assert np.all(kc.borrow_cost(x / 1e7, 0.01) >= 0)
    zero = np.zeros_like(x)
    assert kc.linear_cost(zero, hs).sum() == 0 and kc.dollar_impact(zero, b, sigma, V).sum() == 0
    assert kc.impact_cost(zero, kc.impact_coefficient(b, sigma, V, 1e6)).sum() == 0
    # the fill-price form and the dollar form are the same cost
    np.testing.assert_allclose(kc.slippage_fraction(x, hs, b, sigma, V) * np.abs(x),
                               hs * np.abs(x) + kc.dollar_impact(x, b, sigma, V),
                               rtol=1e-12, atol=1e-9)
    # weights and dollars agree: PV * k |z|^1.5 == b sigma |PV z|^1.5 / sqrt(V)
    pv = 3e6
    np.testing.assert_allclose(pv * kc.impact_cost(x / pv, kc.impact_coefficient(b, sigma, V, pv)),
                               kc.dollar_impact(x, b, sigma, V), rtol=1e-10, atol=1e-9)


def test_no_trade_no_cost_and_no_costs_reported_as_zero():
    cm = CostModel(borrow_rate=0.05)
    s = pd.Series([0.02, 0.01], index=["A", "B"])
    e = cm.expected(pd.Series(0.0, index=s.index), pd.Series([0.3, 0.2], index=s.index),
                    portfolio_value=1e6, volatility=s, dollar_volume=s * 1e8)
    assert e == {"linear": 0.0, "impact": 0.0, "borrow": 0.0, "total": 0.0}
    res = run_optimization(TargetWeights(s), [], cache=False)
    assert res.expected_cost == 0.0
    assert res.diagnostics["expected_costs"]["total"] == 0.0
    assert res.diagnostics["net_objective"] == res.objective_value


# --------------------------------------------------------------------------- cache
@pytest.mark.filterwarnings("ignore::zipline_factorarb.optimize.errors.OptimizationWarning")
def test_new_cost_values_reuse_the_compiled_problem():
    cache = ProblemCache()
    k0 = 0.2
    first, w = solve1(0.05, 0.1, [LinearCost(0.01), impact_k(k0)], cache=cache)
    assert not first.cache_hit
    for c, k, alpha, w0 in [(0.02, 0.1, 0.05, 0.0), (0.0, 0.3, -0.06, 0.2)]:
        res, w = solve1(alpha, w0, [LinearCost(c), impact_k(k)], cache=cache)
        assert res.cache_hit and res.compile_time == 0.0
        z = np.sign(alpha) * (2 * (abs(alpha) - c) / (3 * k)) ** 2
        assert w - w0 == pytest.approx(z, abs=1e-5)
    # the dead zone after the impact term's solves: same structure, new values
    res, w = solve1(0.005, 0.3, [LinearCost(0.01), impact_k(0.1)], cache=cache)
    assert res.cache_hit and w == pytest.approx(0.3, abs=1e-7)
    assert cache.hits == 3 and cache.misses == 1
    # a different set of cost terms is a different structure
    res, _ = solve1(0.005, 0.3, [LinearCost(0.01)], cache=cache)
    assert not res.cache_hit


def test_mean_variance_rescaled_on_a_cache_hit():
    cache = ProblemCache()
    mu, c, w0, s2 = 0.004, 0.001, 0.0, 1e-2
    for gamma in (1.0, 2.5, 0.4):
        obj = MeanVariance(pd.Series([mu], index=A), one_asset_model(s2), risk_aversion=gamma)
        res = run_optimization(obj, [], pd.Series([w0], index=A), costs=[LinearCost(c)],
                               cache=cache)
        ref = max((mu - c) / (2 * gamma * s2), w0)
        assert float(res.new_weights["A"]) == pytest.approx(ref, abs=1e-7)
    assert cache.hits == 2


def test_cost_model_terms():
    cm = CostModel(half_spread=0.001, commission_rate=0.0005, impact=0.5, borrow_rate=0.02)
    s = pd.Series([0.02], index=A)
    terms = cm.terms(1e6, s, s * 1e8)
    assert [type(t) for t in terms] == [LinearCost, MarketImpact, BorrowCost]
    assert terms[0].rate == pytest.approx(0.0015)
    assert [type(t) for t in cm.terms(1e6)] == [LinearCost, BorrowCost]
    assert CostModel(0, 0, impact=0).terms(1e6) == []
    with pytest.raises(TypeError, match="both volatility and dollar_volume"):
        cm.terms(1e6, volatility=s)


# --------------------------------------------------------------------------- zipline models
class FakeBar:
    """The part of zipline's BarData the slippage model reads."""

    def __init__(self, prices, volume=1e6):
        self.prices = prices
        self.volume = volume
        self.current_dt = pd.Timestamp("2020-01-02", tz="UTC")

    def current(self, asset, field):
        return self.volume if field == "volume" else self.prices[asset]


@pytest.fixture
def equities():
    from zipline.assets import Equity, ExchangeInfo

    exchange = ExchangeInfo("TEST", "TEST", "US")
    return [Equity(i, exchange, symbol=s) for i, s in enumerate(["AAA", "BBB"], 1)]


@pytest.mark.parametrize("amount", [300, -1200])
def test_zipline_models_charge_the_expected_cost(equities, amount):
    from zipline.finance.order import Order

    aaa, bbb = equities
    cm = CostModel(half_spread=0.0007, commission_rate=0.0003, impact=0.8)
    sigma = pd.Series([0.021, 0.015], index=[aaa, bbb])
    V = pd.Series([3e6, 8e7], index=[aaa, bbb])
    cm.update_market(sigma, V)
    slippage, commission = cm.slippage(), cm.commission()
    bar = FakeBar({aaa: 41.25, bbb: 120.0})

    order = Order(bar.current_dt, aaa, amount, id="o1")
    fills = list(slippage.simulate(bar, aaa, [order]))
    assert len(fills) == 1
    _, txn = fills[0]
    assert txn.amount == amount  # the whole order fills
    charged_commission = commission.calculate(order, txn)
    x = abs(amount) * 41.25
    slip = abs(txn.price - 41.25) * abs(amount)
    assert (txn.price > 41.25) == (amount > 0)  # adverse to the trader
    expected = 0.001 * x + 0.8 * 0.021 * x ** 1.5 / np.sqrt(3e6)
    assert slip + charged_commission == pytest.approx(expected, abs=1e-10)
    assert charged_commission == pytest.approx(0.0003 * x, abs=1e-12)
    # the optimiser's expectation of the same trade, in dollars
    pv = 2.5e6
    e = cm.expected(pd.Series([amount * 41.25 / pv], index=[aaa]), portfolio_value=pv,
                    volatility=sigma, dollar_volume=V)
    assert e["total"] * pv == pytest.approx(expected, abs=1e-10)
    realised = cm.take_realised()
    assert realised["total"] == pytest.approx(expected, abs=1e-10)
    assert realised["linear"] == pytest.approx(e["linear"] * pv, abs=1e-10)
    assert realised["impact"] == pytest.approx(e["impact"] * pv, abs=1e-10)
    assert cm.take_realised()["total"] == 0.0  # reset

    # an asset without market data pays the spread (and commission) only
    order = Order(bar.current_dt, bbb, -50, id="o2")
    cm.update_market(sigma.drop(bbb), V.drop(bbb))
    (_, txn), = slippage.simulate(bar, bbb, [order])
    commission.calculate(order, txn)
    assert cm.take_realised()["total"] == pytest.approx(0.001 * 50 * 120.0, abs=1e-10)


# --------------------------------------------------------------------------- errors
def test_errors_name_the_asset_and_parameter():
    """Data errors of a cost term are kept when it is built and raised, named, when it
    is solved (so that on_failure="hold" can hold on them); wrong types raise at once."""
    good = pd.Series([0.02, 0.01], index=["A", "B"])
    budget = [MaxGrossExposure(1.0)]
    objective = MaximizeAlpha(pd.Series([0.01, 0.02], index=["A", "B"]))
    cases = [
        (lambda: MarketImpact(1.0, pd.Series([0.02, np.nan], index=["A", "B"]), good * 1e8,
                              1e6), NonFiniteInput, r"MarketImpact\.volatility.*'B'"),
        (lambda: MarketImpact(1.0, pd.Series([0.02, -0.01], index=["A", "B"]), good * 1e8,
                              1e6), InvalidInput, r"MarketImpact\.volatility.*non-negative.*'B'"),
        (lambda: MarketImpact(1.0, good, pd.Series([0.0, 1e8], index=["A", "B"]), 1e6),
         InvalidInput, r"MarketImpact\.dollar_volume.*positive.*'A'"),
        (lambda: MarketImpact(1.0, good, pd.Series([np.inf, 1e8], index=["A", "B"]), 1e6),
         NonFiniteInput, r"MarketImpact\.dollar_volume.*'A'"),
        (lambda: MarketImpact(1.0, good, good * 1e8, 0.0), InvalidInput,
         r"MarketImpact\.portfolio_value.*positive"),
        (lambda: MarketImpact(np.nan, good, good * 1e8, 1e6), InvalidInput,
         r"MarketImpact\.coefficient.*finite"),
        (lambda: LinearCost(pd.Series([-0.001], index=["A"])), InvalidInput,
         r"LinearCost\.rate.*non-negative.*'A'"),
        (lambda: LinearCost(-0.001), InvalidInput, r"LinearCost\.rate.*non-negative"),
        (lambda: BorrowCost(pd.Series([0.01, np.nan], index=["A", "B"])), NonFiniteInput,
         r"BorrowCost\.annual_rate.*'B'"),
        (lambda: BorrowCost(0.01, holding_periods=np.inf), InvalidInput,
         r"BorrowCost\.holding_periods.*finite"),
        (lambda: LinearCost(pd.concat([good, good.iloc[:1]])), InvalidInput,
         r"LinearCost\.rate.*duplicated.*'A'"),
        (lambda: CostModel(impact=0.5).terms(1e6, pd.Series([0.02, np.nan], index=["A", "B"]),
                                             good * 1e8)[1],
         NonFiniteInput, r"MarketImpact\.volatility.*'B'"),
        (lambda: CostModel().terms(np.nan)[0], InvalidInput, r"portfolio_value must be finite"),
    ]
    for build, error, match in cases:
        cost = build()  # building never raises on bad data
        with pytest.raises(error, match=match):
            run_optimization(objective, budget, costs=[cost], cache=ProblemCache())
        held = optimal_target(objective, budget, "hold", costs=[cost])
        assert held.action == "hold" and held.reason == error.reason, match
        with pytest.raises(error, match=match):  # and never priced silently
            cost._prepare(None)
    with pytest.raises(NonFiniteInput, match=r"MarketImpact\.volatility.*'B'"):
        CostModel().expected(pd.Series([0.1, 0.1], index=["A", "B"]), portfolio_value=1e6,
                             volatility=pd.Series([0.02, np.nan], index=["A", "B"]),
                             dollar_volume=good * 1e8)
    # wrong types, and the model's own configuration, raise at once
    with pytest.raises(TypeError, match=r"MarketImpact\.volatility must be a pandas Series"):
        MarketImpact(1.0, [0.02, 0.01], good * 1e8, 1e6)
    with pytest.raises(TypeError, match=r"LinearCost\.rate must hold numbers"):
        LinearCost(pd.Series(["x"], index=["A"]))
    with pytest.raises(TypeError, match=r"portfolio_value must be a number"):
        CostModel().terms("1e6")
    with pytest.raises(ValueError, match=r"CostModel\.half_spread"):
        CostModel(half_spread=-1e-4)
    with pytest.raises(ValueError, match=r"update_market dollar_volume.*positive.*'B'"):
        CostModel().update_market(good, pd.Series([1e8, -1.0], index=["A", "B"]))
    # a Series that misses an asset of the universe: named at solve time
    alphas = pd.Series([0.01, 0.02, 0.03], index=["A", "B", "C"])
    with pytest.raises(UnknownAssets, match=r"MarketImpact\.volatility has no entry.*'C'"):
        run_optimization(MaximizeAlpha(alphas), [MaxGrossExposure(1.0)],
                         costs=[MarketImpact(1.0, good, good * 1e8, 1e6)])
    with pytest.raises(UnknownAssets, match=r"LinearCost\.rate has no entry.*'C'"):
        run_optimization(MaximizeAlpha(alphas), [MaxGrossExposure(1.0)],
                         costs=[LinearCost(good)])
    with pytest.raises(TypeError, match="costs must be Cost objects"):
        run_optimization(MaximizeAlpha(alphas), [MaxGrossExposure(1.0)], costs=[CostModel()])
