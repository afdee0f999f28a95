"""The order function: pure weights -> orders logic, and the zipline adapter with a fake API."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from zipline_factorarb.optimize import (
    DollarNeutral,
    InfeasibleConstraints,
    LongOnly,
    MaximizeAlpha,
    NetExposure,
    PositionConcentration,
    RiskModel,
    TargetWeights,
    TrackingError,
    current_portfolio_weights,
    order_optimal_portfolio,
    plan_orders,
)


def test_plan_orders_diff_closes_and_orders_sells_first():
    current = pd.Series({"A": 0.5, "B": 0.3, "C": 0.2})
    target = pd.Series({"A": 0.6, "C": 0.2 + 5e-7, "D": 0.4})
    plan = plan_orders(current, target)
    by_asset = {o.asset: o for o in plan}
    assert set(by_asset) == {"A", "B", "D"}  # C moves by less than min_weight_change
    assert by_asset["B"].target_weight == 0.0 and by_asset["B"].delta == pytest.approx(-0.3)
    assert by_asset["A"].delta == pytest.approx(0.1) and by_asset["A"].target_weight == 0.6
    assert by_asset["D"].current_weight == 0.0 and by_asset["D"].delta == pytest.approx(0.4)
    assert [o.asset for o in plan] == ["B", "A", "D"]  # sells, then the smallest buy first
    assert all(o.method == "target_percent" for o in plan)
    # with a zero threshold the tiny change is ordered too
    assert "C" in {o.asset for o in plan_orders(current, target, min_weight_change=0.0)}


def test_plan_orders_uses_value_orders_where_orders_are_open():
    current = pd.Series({"A": 0.25, "B": 0.1})  # already include the open orders
    target = pd.Series({"A": 0.2, "B": 0.1})
    plan = plan_orders(current, target, open_order_assets=["A", "E"])
    assert [(o.asset, o.method) for o in plan] == [("A", "value")]
    assert plan[0].delta == pytest.approx(-0.05)
    # a tiny leftover position whose target is zero is still closed
    plan = plan_orders(pd.Series({"X": 1e-9}), pd.Series({"Y": 1.0}))
    assert {o.asset: o.target_weight for o in plan} == {"X": 0.0, "Y": 1.0}


class _Asset:
    def __init__(self, symbol, multiplier=1.0):
        self.symbol = symbol
        self.price_multiplier = multiplier

    def __repr__(self):
        return f"Equity({self.symbol})"


def _position(amount, price):
    return SimpleNamespace(amount=amount, last_sale_price=price)


def _order(amount, filled=0, limit=None):
    return SimpleNamespace(amount=amount, filled=filled, limit=limit, stop=None)


def test_current_portfolio_weights_counts_positions_and_open_orders():
    a, b, c, d = (_Asset(s) for s in "ABCD")
    fut = _Asset("ESZ", multiplier=50.0)
    portfolio = SimpleNamespace(
        portfolio_value=100_000.0,
        positions={a: _position(100, 200.0), b: _position(-50, 100.0), fut: _position(1, 400.0)},
    )
    open_orders = {
        a: [_order(50, filled=20)],           # 30 more shares at the position's price
        c: [_order(10)],                       # priced from `prices`
        d: [_order(-5, limit=80.0)],           # priced from its limit
    }
    w = current_portfolio_weights(portfolio, open_orders, prices=pd.Series({c: 300.0}))
    assert w[a] == pytest.approx((100 + 30) * 200.0 / 100_000)
    assert w[b] == pytest.approx(-50 * 100.0 / 100_000)
    assert w[fut] == pytest.approx(1 * 400.0 * 50.0 / 100_000)
    assert w[c] == pytest.approx(10 * 300.0 / 100_000)
    assert w[d] == pytest.approx(-5 * 80.0 / 100_000)
    with pytest.raises(ValueError, match="portfolio value must be positive"):
        current_portfolio_weights(SimpleNamespace(portfolio_value=0.0, positions={}))


def test_one_definition_of_the_book_weights():
    """The optimiser's current weights and the recorded exposures are the same
    weights (bars.portfolio_weights), contract multipliers included."""
    from zipline_factorarb.algo import book_exposures
    from zipline_factorarb.bars import portfolio_weights

    assert current_portfolio_weights is portfolio_weights
    a, b = _Asset("A"), _Asset("B")
    fut = _Asset("ESZ", multiplier=50.0)
    portfolio = SimpleNamespace(
        portfolio_value=100_000.0,
        positions={a: _position(100, 200.0), b: _position(-50, 100.0), fut: _position(1, 400.0)},
    )
    book = book_exposures(portfolio)
    w = {a: 0.2, b: -0.05, fut: 0.2}  # by hand: amount * price * multiplier / value
    assert book == {"n_holdings": 3, "n_long": 2, "n_short": 1,
                    "gross_exposure": pytest.approx(sum(abs(x) for x in w.values())),
                    "net_exposure": pytest.approx(sum(w.values()))}
    bankrupt = book_exposures(SimpleNamespace(portfolio_value=0.0, positions={a: _position(1, 1.0)}))
    assert bankrupt["n_holdings"] == 1 and np.isnan(bankrupt["gross_exposure"])


class FakeAPI:
    """Records the zipline.api calls order_optimal_portfolio makes."""

    def __init__(self, open_orders=None):
        self.calls = []
        self.open_orders = open_orders or {}

    def install(self, monkeypatch):
        import zipline.api as api

        monkeypatch.setattr(api, "get_open_orders", lambda: self.open_orders, raising=False)
        monkeypatch.setattr(api, "order_target_percent",
                            lambda asset, target: self._log("target_percent", asset, target),
                            raising=False)
        monkeypatch.setattr(api, "order_value",
                            lambda asset, value: self._log("value", asset, value), raising=False)
        monkeypatch.setattr(api, "record", lambda **kw: self.calls.append(("record", kw)),
                            raising=False)
        return self

    def _log(self, kind, asset, amount):
        self.calls.append((kind, asset, amount))
        return f"id-{len(self.calls)}"

    def orders(self):
        return {c[1]: (c[0], c[2]) for c in self.calls if c[0] in ("target_percent", "value")}

    def records(self):
        return [c[1] for c in self.calls if c[0] == "record"]


@pytest.fixture
def algo():
    a, b, c, d = (_Asset(s) for s in "ABCD")
    context = SimpleNamespace(portfolio=SimpleNamespace(
        portfolio_value=1_000.0,
        positions={a: _position(5, 100.0), d: _position(2, 50.0)},  # A 50%, D 10%
    ))
    return context, (a, b, c, d)


# the order step with bar data (prices and tradability read for the whole book,
# share amounts as order_target_percent computes them) is tested inside real zipline
# backtests in test_bars.py


def test_order_optimal_portfolio_failure_modes(monkeypatch, algo):
    context, (a, b, c, d) = algo
    model = RiskModel(pd.DataFrame({"mkt": [1.0, 0.8, 1.2, 0.9]}, index=[a, b, c, d]),
                      np.array([[4e-4]]), pd.Series(1e-4, index=[a, b, c, d]))
    bench = pd.Series({a: 0.25, b: 0.25, c: 0.25, d: 0.25})
    infeasible = [TrackingError(0.05, model, bench), NetExposure(1, 1), DollarNeutral()]
    alphas = pd.Series({a: 0.01, b: 0.02, c: -0.01, d: 0.0})

    api = FakeAPI().install(monkeypatch)
    with pytest.raises(InfeasibleConstraints):
        order_optimal_portfolio(MaximizeAlpha(alphas), infeasible, context=context)
    assert api.orders() == {}

    api = FakeAPI().install(monkeypatch)
    out = order_optimal_portfolio(MaximizeAlpha(alphas), infeasible, on_failure="hold",
                                  context=context)
    assert out.action == "hold" and out.orders == [] and api.orders() == {}
    assert api.records() == [{"optimizer_failure": 1, "optimizer_failure_reason": out.reason
                              + ": " + str(out.result.error).splitlines()[0]}]
    assert out.reason == "infeasible"
    assert isinstance(out.result.error, InfeasibleConstraints)

    api = FakeAPI().install(monkeypatch)
    out = order_optimal_portfolio(MaximizeAlpha(alphas), infeasible, on_failure="benchmark",
                                  context=context)
    assert out.action == "benchmark"
    assert {k: v[1] for k, v in api.orders().items()} == {a: 0.25, b: 0.25, c: 0.25, d: 0.25}

    api = FakeAPI().install(monkeypatch)
    with pytest.raises(Exception, match="needs benchmark weights"):
        order_optimal_portfolio(MaximizeAlpha(alphas), [NetExposure(1, 1), DollarNeutral(),
                                                        PositionConcentration.with_equal_bounds(0, 1)],
                                on_failure="benchmark", context=context)
    with pytest.raises(ValueError, match="on_failure must be one of"):
        order_optimal_portfolio(MaximizeAlpha(alphas), [], on_failure="ignore", context=context)


def test_untracked_holdings_are_closed_not_optimised(monkeypatch, algo):
    context, (a, b, c, d) = algo
    # the risk model knows A, B, C only; D is held but nobody mentions it
    model = RiskModel(pd.DataFrame({"mkt": [1.0, 0.8, 1.2]}, index=[a, b, c]),
                      np.array([[4e-4]]), pd.Series(1e-4, index=[a, b, c]))
    bench = pd.Series({a: 0.4, b: 0.3, c: 0.3})
    api = FakeAPI().install(monkeypatch)
    out = order_optimal_portfolio(MaximizeAlpha(pd.Series({a: 0.01, b: 0.02, c: 0.0})),
                                  [TrackingError(0.05, model, bench), LongOnly(), NetExposure(1, 1)],
                                  context=context)
    assert out.result.success and out.reason is None
    assert api.records() == [{"optimizer_failure": 0, "optimizer_failure_reason": None}]
    orders = api.orders()
    assert orders[d] == ("target_percent", 0.0)
    assert sum(v[1] for k, v in orders.items() if k is not d) == pytest.approx(1.0, abs=1e-7)
    # without closing, D joins the universe and the missing risk data is an error
    with pytest.raises(ValueError, match="no loadings for 1 assets"):
        order_optimal_portfolio(MaximizeAlpha(pd.Series({a: 0.01, b: 0.02, c: 0.0})),
                                [TrackingError(0.05, model, bench), LongOnly(), NetExposure(1, 1)],
                                context=context, close_untracked=False)


def test_a_book_without_positive_value_holds_or_raises(monkeypatch):
    """No weights exist for a non-positive portfolio value: every mode but "raise"
    holds (the benchmark cannot be ordered either), recording why."""
    from zipline_factorarb.optimize import InvalidInput

    a, b = _Asset("A"), _Asset("B")
    context = SimpleNamespace(portfolio=SimpleNamespace(portfolio_value=-50.0,
                                                        positions={a: _position(1, 10.0)}),
                              get_datetime=lambda: pd.Timestamp("2021-03-01"))
    model = RiskModel(pd.DataFrame({"mkt": [1.0, 0.8]}, index=[a, b]), np.array([[4e-4]]),
                      pd.Series(1e-4, index=[a, b]))
    bench = pd.Series({a: 0.5, b: 0.5})
    args = (MaximizeAlpha(pd.Series({a: 0.01, b: 0.02})),
            [TrackingError(0.05, model, bench), LongOnly(), NetExposure(1, 1)])
    for mode in ("hold", "benchmark"):
        api = FakeAPI().install(monkeypatch)
        out = order_optimal_portfolio(*args, on_failure=mode, context=context)
        assert (out.action, out.reason, api.orders()) == ("hold", "invalid_input", {})
        assert api.records()[0]["optimizer_failure_reason"].startswith(
            "invalid_input: portfolio value is -50.0 on 2021-03-01")
    with pytest.raises(InvalidInput, match="portfolio value is -50.0"):
        order_optimal_portfolio(*args, on_failure="raise", context=context)
