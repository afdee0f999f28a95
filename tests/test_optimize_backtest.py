"""order_optimal_portfolio inside real zipline backtests on the sample bundle.

Each test runs ``zipline.run_algorithm`` over a few weeks or months of the
embedded sample and checks what the fills did against what the optimiser asked
for: target weights reached (to the share), names leaving the target closed,
open orders counted, and the failure modes (hold / raise) on an infeasible
rebalance.
"""

import numpy as np
import pandas as pd
import pytest

from conftest import run_in_sample

STOCKS = ["AAPL", "BAC", "CVX", "HD", "JNJ", "JPM", "KO", "MSFT", "PFE", "XOM"]


def _zero_costs():
    from zipline.api import set_commission, set_slippage
    from zipline.finance import commission, slippage

    set_commission(commission.PerShare(cost=0.0, min_trade_cost=0.0))
    set_slippage(slippage.FixedSlippage(spread=0.0))


def _amounts(perf, day):
    """Shares held at the end of ``day`` (the perf row's positions), by symbol."""
    return {p["sid"].symbol: p["amount"] for p in perf.loc[day, "positions"] if p["amount"] != 0}


@pytest.mark.slow
def test_target_weights_are_reached_and_leavers_closed(sample_root):
    """Orders reach the optimiser's target to the share, with and without costs, and
    names that leave the target are closed."""
    from zipline.api import get_datetime, schedule_function, date_rules, time_rules, symbol

    from zipline_factorarb.optimize import LongOnly, NetExposure, TargetWeights, order_optimal_portfolio

    first = pd.Series(np.arange(1, 11, dtype=float), index=STOCKS)
    first /= first.sum()
    second = pd.Series({"AAPL": 0.3, "KO": 0.3, "PFE": 0.2, "WMT": 0.2})  # 7 names leave, WMT joins
    log = []

    def initialize(context):
        _zero_costs()
        context.step = 0
        schedule_function(rebalance, date_rules.every_day(), time_rules.market_open())

    def rebalance(context, data):
        context.step += 1
        if context.step not in (2, 8):
            return
        target = first if context.step == 2 else second
        weights = pd.Series(target.to_numpy(), index=[symbol(s) for s in target.index])
        out = order_optimal_portfolio(TargetWeights(weights), [LongOnly(), NetExposure(1, 1)],
                                      data=data)
        log.append(dict(
            day=get_datetime().normalize(), result=out,
            pv=context.portfolio.portfolio_value,
            prices=data.current(list(weights.index) + list(context.portfolio.positions), "price"),
            held=dict(context.portfolio.positions),
        ))

    perf = run_in_sample(sample_root, initialize, "2021-03-01", "2021-03-31")
    assert [entry["result"].action for entry in log] == ["rebalance", "rebalance"]
    assert perf["optimizer_failure"].dropna().eq(0).all()
    for entry, target in zip(log, (first, second)):
        result = entry["result"]
        # the optimiser's target is the requested one (TargetWeights under feasible bounds)
        got = result.result.new_weights
        got.index = [a.symbol for a in got.index]
        np.testing.assert_allclose(got.reindex(target.index).to_numpy(), target.to_numpy(),
                                   atol=1e-7)
        fill_day = perf.index[perf.index.get_indexer([entry["day"]], method="bfill")[0] + 1]
        held = _amounts(perf, fill_day)
        # every position is the target weight at the order's price, to the share
        prices = {a.symbol: p for a, p in entry["prices"].items()}
        for name, w in target.items():
            expected = w * entry["pv"] / prices[name]
            assert abs(held.get(name, 0) - expected) <= 1.0, (name, held.get(name), expected)
        assert set(held) == set(target.index)  # leavers closed, nothing else held
        # weights after the fill equal the target up to the day's price moves
        pv = perf.loc[fill_day, "portfolio_value"]
        last = {p["sid"].symbol: p["last_sale_price"] for p in perf.loc[fill_day, "positions"]}
        realised = pd.Series({s: held[s] * last[s] / pv for s in held})
        assert realised.sum() == pytest.approx(1.0, abs=0.01)
        np.testing.assert_allclose(realised.reindex(target.index), target, atol=0.01)
    # the second rebalance closed exactly the names that left
    closed = {o.asset.symbol for o in log[1]["result"].orders if o.target_weight == 0}
    assert closed == set(first.index) - set(second.index)


@pytest.mark.slow
def test_targets_reached_within_cost_tolerance(sample_root):
    """With commissions and slippage, the weights after each monthly fill still equal
    the target up to the day's price moves and the costs, which are charged and small."""
    from zipline.api import schedule_function, date_rules, time_rules, symbol, set_commission, set_slippage
    from zipline.finance import commission, slippage

    from zipline_factorarb.optimize import LongOnly, NetExposure, TargetWeights, order_optimal_portfolio

    target = pd.Series(1.0 / len(STOCKS), index=STOCKS)
    days = []

    def initialize(context):
        set_commission(commission.PerShare(cost=0.005, min_trade_cost=1.0))
        set_slippage(slippage.FixedBasisPointsSlippage(basis_points=5.0, volume_limit=1.0))
        schedule_function(rebalance, date_rules.month_start(), time_rules.market_open())

    def rebalance(context, data):
        from zipline.api import get_datetime

        weights = pd.Series(target.to_numpy(), index=[symbol(s) for s in target.index])
        order_optimal_portfolio(TargetWeights(weights), [LongOnly(), NetExposure(1, 1)], data=data)
        days.append(get_datetime().normalize())

    perf = run_in_sample(sample_root, initialize, "2021-01-04", "2021-04-30")
    assert len(days) == 4
    traded = 0.0
    for day in days:
        fill_day = perf.index[perf.index.get_indexer([day], method="bfill")[0] + 1]
        pv = perf.loc[fill_day, "portfolio_value"]
        weights = pd.Series({p["sid"].symbol: p["amount"] * p["last_sale_price"] / pv
                             for p in perf.loc[fill_day, "positions"]})
        assert set(weights.index) == set(STOCKS)
        np.testing.assert_allclose(weights.reindex(STOCKS), target, atol=0.006)
        assert weights.sum() == pytest.approx(1.0, abs=0.02)
        traded += sum(abs(t["amount"]) * t["price"] for t in perf.loc[fill_day, "transactions"])
    costs = sum(o["commission"] or 0 for orders in perf["orders"] for o in orders
                if o["status"] == 1)
    assert traded > 1e6
    assert 0 < costs < 0.001 * traded


@pytest.mark.slow
def test_open_orders_are_counted(sample_root):
    """A second call in the same bar sees the first call's open orders and sends
    nothing more; a resting limit order counts towards its asset's weight, so only
    the difference is ordered."""
    from zipline.api import (
        get_open_orders, order, schedule_function, date_rules, time_rules, symbol,
    )
    from zipline.finance.execution import LimitOrder

    from zipline_factorarb.optimize import LongOnly, NetExposure, TargetWeights, order_optimal_portfolio

    target = pd.Series({"AAPL": 0.4, "JNJ": 0.3, "XOM": 0.3})
    state = {}

    def initialize(context):
        _zero_costs()
        context.step = 0
        schedule_function(rebalance, date_rules.every_day(), time_rules.market_open())

    def rebalance(context, data):
        context.step += 1
        weights = pd.Series(target.to_numpy(), index=[symbol(s) for s in target.index])
        aapl = symbol("AAPL")
        if context.step == 2:
            # a buy limit far below the market: it rests, worth 10% at today's price
            price = data.current(aapl, "price")
            shares = int(0.1 * context.portfolio.portfolio_value / price)
            order(aapl, shares, style=LimitOrder(price * 0.5))
            state["limit_shares"] = shares
            state["pv"] = context.portfolio.portfolio_value
            state["price"] = price
            first = order_optimal_portfolio(TargetWeights(weights), [LongOnly(), NetExposure(1, 1)],
                                            data=data)
            second = order_optimal_portfolio(TargetWeights(weights), [LongOnly(), NetExposure(1, 1)],
                                             data=data)
            state["first"], state["second"] = first, second
            state["open_after"] = {a.symbol: sum(o.amount - o.filled for o in orders)
                                   for a, orders in get_open_orders().items()}
        if context.step == 4:
            state["open_later"] = {a.symbol: [(o.amount, o.limit) for o in orders]
                                   for a, orders in get_open_orders().items()}

    perf = run_in_sample(sample_root, initialize, "2021-06-01", "2021-06-10")
    first, second = state["first"], state["second"]
    by_asset = {o.asset.symbol: o for o in first.orders}
    # AAPL had the resting limit order: ordered by value, only the missing 30%
    assert by_asset["AAPL"].method == "value"
    limit_weight = state["limit_shares"] * state["price"] / state["pv"]
    assert by_asset["AAPL"].current_weight == pytest.approx(limit_weight, rel=1e-9)
    assert by_asset["AAPL"].delta == pytest.approx(0.4 - limit_weight, abs=1e-7)
    assert {by_asset["JNJ"].method, by_asset["XOM"].method} == {"target_percent"}
    # the second call in the same bar counts every open order: nothing more to send
    assert second.action == "rebalance" and second.orders == []
    # open orders after both calls: AAPL's add up to its target, the limit order included
    total_aapl = state["open_after"]["AAPL"]
    assert abs(total_aapl * state["price"] - 0.4 * state["pv"]) <= 2 * state["price"]
    # after the fills: the market orders filled, the limit order still rests
    fill_day = perf.index[2]
    held = _amounts(perf, fill_day)
    assert abs(held["AAPL"] + state["limit_shares"] - total_aapl) <= 1
    assert set(held) == {"AAPL", "JNJ", "XOM"}
    assert state["open_later"] == {
        "AAPL": [(state["limit_shares"], pytest.approx(state["price"] * 0.5, abs=0.011))]}


def _tev_algorithm(on_failure, blocked_month, record_into):
    """Monthly TEV-budget tilt on ten stocks vs their equal weights; in
    ``blocked_month`` three benchmark names may not be held, which a 1% budget
    cannot absorb."""
    from zipline.api import date_rules, get_datetime, record, schedule_function, symbol, time_rules

    from zipline_factorarb.optimize import (
        CannotHold, LongOnly, MaximizeAlpha, NetExposure, RiskModel, TrackingError,
        order_optimal_portfolio,
    )

    def initialize(context):
        _zero_costs()
        context.assets = [symbol(s) for s in STOCKS]
        context.market = symbol("SP500")
        schedule_function(rebalance, date_rules.month_start(), time_rules.market_open())

    def rebalance(context, data):
        prices = data.history([*context.assets, context.market], "price", 253, "1d")
        returns = prices.pct_change().iloc[1:]
        model = RiskModel.from_returns(returns[context.assets],
                                       returns[[context.market]].rename(columns={context.market: "market"}))
        benchmark = pd.Series(1.0 / len(context.assets), index=context.assets)
        momentum = prices.iloc[-1] / prices.iloc[-64] - 1.0
        constraints = [TrackingError(0.01, model, benchmark), LongOnly(), NetExposure(1, 1)]
        if get_datetime().month == blocked_month:
            constraints.append(CannotHold([symbol("AAPL"), symbol("MSFT"), symbol("XOM")]))
        out = order_optimal_portfolio(MaximizeAlpha(momentum[context.assets]), constraints,
                                      on_failure=on_failure, data=data)
        record_into.append((get_datetime().normalize(), out))
        if out.action == "rebalance":
            record(ex_ante_tev=out.result.tracking_error)

    return initialize


@pytest.mark.slow
def test_hold_survives_an_infeasible_rebalance(sample_root):
    log = []
    perf = run_in_sample(sample_root, _tev_algorithm("hold", 3, log), "2021-01-04", "2021-05-28")
    actions = {day.month: out.action for day, out in log}
    assert actions == {1: "rebalance", 2: "rebalance", 3: "hold", 4: "rebalance", 5: "rebalance"}
    march = next(out for day, out in log if day.month == 3)
    assert march.orders == [] and march.result.status == "infeasible"
    assert "CannotHold" in str(march.result.error) and "TrackingError" in str(march.result.error)
    # recorded: optimizer_failure is 1 on the failed rebalance only
    failures = perf["optimizer_failure"]
    rebalance_days = [perf.index[perf.index.normalize().tz_localize(None) == d.tz_localize(None)][0]
                      for d, _ in log]
    assert [int(failures.loc[d]) for d in rebalance_days] == [0, 0, 1, 0, 0]
    # holding: the positions are unchanged across the failed rebalance
    i = perf.index.get_loc(rebalance_days[2])
    assert _amounts(perf, perf.index[i - 1]) == _amounts(perf, perf.index[i + 1])
    # every successful rebalance respected the budget
    assert perf["ex_ante_tev"].dropna().max() <= 0.01 + 1e-6
    assert np.isfinite(perf["portfolio_value"]).all()


@pytest.mark.slow
def test_raise_fails_the_run_naming_the_constraint(sample_root):
    from zipline_factorarb.optimize import InfeasibleConstraints

    with pytest.raises(InfeasibleConstraints) as info:
        run_in_sample(sample_root, _tev_algorithm("raise", 2, []), "2021-01-04", "2021-03-31")
    message = str(info.value)
    assert "TrackingError(max_tev=0.01" in message and "CannotHold" in message
    assert "raise max_tev" in message  # what to change
    assert any("CannotHold" in r or "TrackingError" in r for r in info.value.removable)


def test_plan_orders_skips_changes_below_one_share():
    """The fix behind the same-bar test above: a change worth less than one share is
    not planned (zipline would round it to nothing), a close always is."""
    from zipline_factorarb.optimize import plan_orders

    current = pd.Series({"A": 0.30, "B": 0.2})
    target = pd.Series({"A": 0.30 + 4e-5, "B": 0.0, "C": 0.1})
    prices = pd.Series({"A": 100.0, "B": 50.0, "C": 20.0})
    plan = plan_orders(current, target, prices=prices, portfolio_value=1e6)
    assert {o.asset for o in plan} == {"B", "C"}  # A: $40 of a $100 share
    assert "A" in {o.asset for o in plan_orders(current, target, prices=prices,
                                                 portfolio_value=1e7)}
    tiny_close = plan_orders(pd.Series({"A": 1e-6}), pd.Series({"C": 1.0}), prices=prices,
                             portfolio_value=1e6)
    assert {o.asset: o.target_weight for o in tiny_close} == {"A": 0.0, "C": 1.0}
