"""Every optimiser failure holds under ``on_failure="hold"`` and is named under "raise".

Problem level: each kind of failure (non-finite data in any term, cost or risk model,
assets missing from the risk model, a loadings table or a cost's Series, a degenerate
risk model, an empty universe, infeasible, unbounded, a solver error, a refused
inaccurate solution) is an :class:`~zipline_factorarb.optimize.OptimizationError` with
a stable ``reason`` that names the term, parameter and asset at fault;
:func:`optimal_target` holds on it. Building the terms, the costs
(``CostModel.terms``) and the risk model never raises on bad data, only on wrong
types and shapes.
Backtest level: a real zipline run on the sample bundle whose algorithm feeds a NaN
alpha, an alpha for an asset outside the risk model, a zero-risk model, an entry that
is not an asset, an infeasible budget, a NaN volatility in the costs and a NaN in the
risk model's factor covariance completes, holding on each of those rebalances, with
the reason recorded; under "raise" the named error ends the run from inside
``order_optimal_portfolio``.
"""

import traceback
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import break_clarabel, clarabel_inaccurate, run_in_sample

from zipline_factorarb.optimize import (
    BorrowCost,
    CostModel,
    DegenerateRiskModel,
    FactorExposure,
    InfeasibleConstraints,
    InvalidInput,
    LinearCost,
    LongOnly,
    MaxGrossExposure,
    MaximizeAlpha,
    MaximizeFactorTilt,
    MeanVariance,
    NetExposure,
    NetGroupExposure,
    NonFiniteInput,
    OptimizationError,
    OptimizationFailed,
    PositionConcentration,
    ProblemCache,
    RiskModel,
    TargetWeights,
    TrackingError,
    UnboundedObjective,
    UnknownAssets,
    calculate_optimal_portfolio,
    optimal_target,
    run_optimization,
)

ASSETS = [f"S{i}" for i in range(8)]


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(7)
    n = len(ASSETS)
    loadings = pd.DataFrame({"mkt": rng.normal(1, 0.3, n), "size": rng.normal(0, 0.5, n)},
                            index=ASSETS)
    model = RiskModel(loadings, np.diag([4e-4, 1e-4]),
                      pd.Series(rng.uniform(1e-4, 3e-4, n), index=ASSETS))
    bench = pd.Series(1.0 / n, index=ASSETS)
    alphas = pd.Series(rng.normal(0, 0.01, n), index=ASSETS)
    return dict(model=model, bench=bench, alphas=alphas, loadings=loadings)


def _with(series, asset, value):
    out = series.copy()
    out[asset] = value
    return out


def _cell(frame, row, column, value):
    out = frame.copy()
    out.loc[row, column] = value
    return out


def _risk_model_with(s, loadings=None, covariance=None, specific=None):
    """The setup's risk model with one input replaced (built the way an algorithm
    builds it, outside the optimiser)."""
    model = s["model"]
    return RiskModel(model.loadings if loadings is None else loadings,
                     model.factor_covariance if covariance is None else covariance,
                     model.specific_variance if specific is None else specific)


def _bad_inputs(s):
    """(name, builds (objective, constraints[, current weights[, costs]]), error class,
    field, asset)."""
    model, bench, alphas = s["model"], s["bench"], s["alphas"]
    budget = [LongOnly(), NetExposure(1, 1)]
    vol = pd.Series(0.02, index=ASSETS)
    dollar_volume = pd.Series(5e8, index=ASSETS)
    cov = model.factor_covariance
    return [
        ("nan alpha", lambda: (MaximizeAlpha(_with(alphas, "S3", np.nan)), budget),
         NonFiniteInput, "MaximizeAlpha.alphas", "S3"),
        ("inf alpha", lambda: (MaximizeAlpha(_with(alphas, "S5", np.inf)), budget),
         NonFiniteInput, "MaximizeAlpha.alphas", "S5"),
        ("nan target", lambda: (TargetWeights(_with(bench, "S1", np.nan)), []),
         NonFiniteInput, "TargetWeights.weights", "S1"),
        ("nan expected return", lambda: (
            MeanVariance(_with(alphas, "S2", -np.inf), model, 2.0), budget),
         NonFiniteInput, "MeanVariance.expected_returns", "S2"),
        ("nan benchmark", lambda: (
            MaximizeAlpha(alphas), [TrackingError(0.05, model, _with(bench, "S4", np.nan)),
                                    *budget]),
         NonFiniteInput, "TrackingError.benchmark_weights", "S4"),
        ("nan tilt benchmark", lambda: (
            MaximizeFactorTilt(pd.Series({"mkt": 0.01}), model, _with(bench, "S0", np.nan)),
            [TrackingError(0.05, model, bench), *budget]),
         NonFiniteInput, "MaximizeFactorTilt.benchmark_weights", "S0"),
        ("nan factor return", lambda: (
            MaximizeFactorTilt(pd.Series({"mkt": np.nan, "size": 0.01}), model, bench),
            [TrackingError(0.05, model, bench), *budget]),
         NonFiniteInput, "MaximizeFactorTilt.expected_factor_returns", "mkt"),
        ("inf factor return", lambda: (
            MeanVariance(expected_factor_returns=pd.Series({"size": np.inf}), risk_model=model),
            budget),
         NonFiniteInput, "MeanVariance.expected_factor_returns", "size"),
        ("nan current weight", lambda: (
            MaximizeAlpha(alphas), budget, _with(bench, "S2", np.nan)),
         NonFiniteInput, "current_weights", "S2"),
        ("nan position bound", lambda: (
            MaximizeAlpha(alphas), [PositionConcentration(
                _with(pd.Series(0.0, index=ASSETS), "S6", np.nan), 0.5), *budget]),
         NonFiniteInput, "PositionConcentration.min_weights", "S6"),
        ("nan loading", lambda: (
            MaximizeAlpha(alphas), [FactorExposure(s["loadings"].where(
                pd.Series(s["loadings"].index != "S7", index=ASSETS), axis=0), -1, 1),
                *budget]),
         NonFiniteInput, "FactorExposure.loadings['mkt']", "S7"),
        ("alpha outside the risk model", lambda: (
            MaximizeAlpha(_with(alphas, "NEW", 0.01)),
            [TrackingError(0.05, model, bench), *budget]),
         UnknownAssets, "TrackingError(max_tev=0.05, periods_per_year=252).risk_model", "NEW"),
        ("held asset outside the loadings", lambda: (
            MaximizeAlpha(alphas), [FactorExposure(s["loadings"].drop("S2"), -1, 1), *budget]),
         UnknownAssets, "FactorExposure.loadings", "S2"),
        ("duplicated asset", lambda: (
            MaximizeAlpha(pd.concat([alphas, alphas.iloc[:1]])), budget),
         InvalidInput, None, None),
        ("empty pipeline output", lambda: (
            MaximizeAlpha(pd.Series([], dtype=object)), budget),
         InvalidInput, None, None),
        ("conflicting per-asset bounds", lambda: (
            TargetWeights(bench), [PositionConcentration(pd.Series({"S3": 0.2}), 0.1, 0.0, 0.1)]),
         InvalidInput, "PositionConcentration", None),
        # cost terms (CostModel.terms builds them from the pipeline's volatility and volume)
        ("nan volatility in the costs", lambda: (
            MaximizeAlpha(alphas), budget, None,
            CostModel().terms(1e6, _with(vol, "S3", np.nan), dollar_volume)),
         NonFiniteInput, "MarketImpact.volatility", "S3"),
        ("zero dollar volume in the costs", lambda: (
            MaximizeAlpha(alphas), budget, None,
            CostModel().terms(1e6, vol, _with(dollar_volume, "S2", 0.0))),
         InvalidInput, "MarketImpact.dollar_volume", "S2"),
        ("nan portfolio value in the costs", lambda: (
            MaximizeAlpha(alphas), budget, None, CostModel().terms(np.nan)),
         InvalidInput, "portfolio_value", None),
        ("nan borrow rate", lambda: (
            MaximizeAlpha(alphas), budget, None, [BorrowCost(_with(vol, "S6", np.nan))]),
         NonFiniteInput, "BorrowCost.annual_rate", "S6"),
        ("cost rate missing an asset", lambda: (
            MaximizeAlpha(alphas), budget, None, [LinearCost(vol.drop("S7"))]),
         UnknownAssets, "LinearCost.rate", "S7"),
        # risk models built from bad estimates
        ("nan factor covariance", lambda: (
            MaximizeAlpha(alphas), [TrackingError(0.05, _risk_model_with(
                s, covariance=_cell(cov, "size", "size", np.nan)), bench),
                *budget]),
         NonFiniteInput, "RiskModel.factor_covariance", ("size", "size")),
        ("inf specific variance", lambda: (
            MeanVariance(alphas, _risk_model_with(
                s, specific=_with(model.specific_variance, "S4", np.inf)), 2.0), budget),
         NonFiniteInput, "RiskModel.specific_variance", "S4"),
        ("nan risk-model loading", lambda: (
            MaximizeAlpha(alphas), [TrackingError(0.05, _risk_model_with(
                s, loadings=_cell(s["loadings"], "S6", "mkt", np.nan)), bench), *budget]),
         NonFiniteInput, "RiskModel.loadings['mkt']", "S6"),
        ("specific variance missing an asset", lambda: (
            MaximizeAlpha(alphas), [TrackingError(0.05, _risk_model_with(
                s, specific=model.specific_variance.drop("S1")), bench), *budget]),
         UnknownAssets, "RiskModel.specific_variance", "S1"),
        ("factor covariance not positive semi-definite", lambda: (
            MaximizeAlpha(alphas), [TrackingError(0.05, _risk_model_with(
                s, covariance=cov * -1.0), bench), *budget]),
         InvalidInput, "RiskModel.factor_covariance", None),
    ]


@pytest.mark.parametrize("index", range(26))
def test_bad_inputs_fail_the_solve_with_a_named_error_and_hold(setup, index):
    name, build, error, field, asset = _bad_inputs(setup)[index]
    # building the terms, costs and risk models never raises on bad data
    objective, constraints, *rest = build()
    current = rest[0] if rest else None
    costs = rest[1] if len(rest) > 1 else ()
    with pytest.raises(error) as info:
        run_optimization(objective, constraints, current, costs=costs, cache=ProblemCache())
    err = info.value
    assert isinstance(err, (OptimizationError, ValueError)), name
    if field is not None:
        assert err.field == field, (name, err.field)
    if asset is not None:
        assert repr(asset) in str(err), (name, str(err))
        if isinstance(err, NonFiniteInput):
            assert err.asset == asset
        if isinstance(err, UnknownAssets):
            assert err.assets == [asset]
    with pytest.raises(error):
        calculate_optimal_portfolio(objective, constraints, current, costs=costs)
    held = optimal_target(objective, constraints, on_failure="hold", current_weights=current,
                          costs=costs)
    assert held.action == "hold" and held.weights is None, name
    assert held.result.status == "invalid_input" and type(held.result.error) is type(err)
    assert held.reason == error.reason and held.reason != "failed"
    with pytest.raises(error):
        optimal_target(objective, constraints, on_failure="raise", current_weights=current,
                       costs=costs)
    assert len(_bad_inputs(setup)) == 26  # every case is run


def test_unknown_assets_name_where_they_came_from(setup):
    objective = MaximizeAlpha(_with(setup["alphas"], "NEW", 0.01))
    with pytest.raises(UnknownAssets, match=r"no loadings for 1 assets.*'NEW'.*from MaximizeAlpha"):
        run_optimization(objective, [TrackingError(0.05, setup["model"], setup["bench"]),
                                     LongOnly(), NetExposure(1, 1)])
    # a held position the risk model does not cover is named as the current weights'
    current = pd.Series({"OLD": 0.1, "S1": 0.2})
    with pytest.raises(UnknownAssets, match=r"'OLD'.*from current_weights"):
        run_optimization(MaximizeAlpha(setup["alphas"]),
                         [TrackingError(0.05, setup["model"], setup["bench"]), LongOnly(),
                          NetExposure(1, 1)], current_weights=current)


def test_a_risk_model_keeps_data_errors_and_raises_wrong_types_at_once(setup):
    """A risk model built from bad numbers is built (no traceback in the algorithm's own
    code) and raises its named error wherever its risk numbers are used; arguments of
    the wrong type or shape are programming errors and raise at once."""
    model, bench = setup["model"], setup["bench"]
    cov = model.factor_covariance
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no degenerate-model warning from NaN
        bad = _risk_model_with(setup, covariance=_cell(cov, "mkt", "mkt", np.inf))
    assert isinstance(bad._input_error, NonFiniteInput) and repr(bad) == repr(model)
    for use in (lambda: bad.covariance(), lambda: bad.variance(bench),
                lambda: bad.tracking_error(bench, bench * 0.5),
                lambda: bad.risk_contributions(bench),
                lambda: bad.decompose(np.ones(len(ASSETS)), ASSETS)):
        with pytest.raises(NonFiniteInput,
                           match=r"RiskModel\.factor_covariance.*inf.*'mkt', 'mkt'"):
            use()
    asymmetric = _cell(cov, "mkt", "size", 1e-5)
    with pytest.raises(InvalidInput, match=r"RiskModel\.factor_covariance must be symmetric"):
        _risk_model_with(setup, covariance=asymmetric).covariance()
    with pytest.raises(InvalidInput, match=r"RiskModel\.specific_variance is negative for 'S5'"):
        _risk_model_with(setup, specific=_with(model.specific_variance, "S5", -1e-4)).covariance()
    with pytest.raises(InvalidInput, match=r"RiskModel\.loadings has a duplicated asset 'S0'"):
        _risk_model_with(setup, loadings=pd.concat([setup["loadings"],
                                                    setup["loadings"].iloc[:1]])).covariance()
    # programming errors: at once
    with pytest.raises(TypeError, match=r"RiskModel\.loadings must be a pandas DataFrame"):
        RiskModel(setup["loadings"].to_numpy(), cov, model.specific_variance)
    with pytest.raises(TypeError, match=r"RiskModel\.specific_variance must be a pandas Series"):
        RiskModel(setup["loadings"], cov, model.specific_variance.to_numpy())
    with pytest.raises(TypeError, match=r"RiskModel\.loadings must hold numbers"):
        RiskModel(setup["loadings"].astype(object).assign(mkt="x"), cov, model.specific_variance)
    with pytest.raises(ValueError, match=r"must be 2 x 2 .* got shape \(3, 3\)"):
        RiskModel(setup["loadings"], np.eye(3), model.specific_variance)
    with pytest.raises(ValueError, match=r"lacks factors \['size'\]"):
        RiskModel(setup["loadings"], cov.loc[["mkt"], ["mkt"]], model.specific_variance)


def _zero_risk_model(scale=0.0):
    """Risk zero (or ``scale``) on the ASSETS; one risky asset "Z" outside the problem
    keeps the model itself valid."""
    loadings = pd.DataFrame({"mkt": np.r_[np.zeros(len(ASSETS)), 1.0]}, index=[*ASSETS, "Z"])
    spec = pd.Series(np.r_[np.full(len(ASSETS), scale), 1e-4], index=[*ASSETS, "Z"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the model warns that the ASSETS look riskless
        return RiskModel(loadings, np.array([[4e-4]]), spec)


def test_an_all_zero_risk_model_is_refused_when_solved_not_built(setup):
    """The issue's case: an all-zero covariance put 100% in one asset. The model is
    built (with a warning, so that an algorithm can still hold) and refused when a
    risk term uses it."""
    from zipline_factorarb.optimize import DegenerateRiskWarning

    with pytest.warns(DegenerateRiskWarning):
        zero = RiskModel(setup["loadings"], np.zeros((2, 2)), pd.Series(0.0, index=ASSETS))
    constraints = [TrackingError(0.05, zero, setup["bench"]), LongOnly(), NetExposure(1, 1)]
    with pytest.raises(DegenerateRiskModel, match="risk model gives every one of the 8 assets"):
        run_optimization(MaximizeAlpha(setup["alphas"]), constraints)
    held = optimal_target(MaximizeAlpha(setup["alphas"]), constraints, "hold")
    assert held.action == "hold" and held.reason == "degenerate_risk"


@pytest.mark.parametrize("scale", [0.0, 1e-16])
def test_zero_risk_is_a_named_error_not_a_corner_portfolio(setup, scale):
    """With no risk on the universe a TrackingError constrains nothing: the solver
    would put the whole book in the best alpha (what it did before this check)."""
    model = _zero_risk_model(scale)
    alphas = setup["alphas"]
    objective = MaximizeAlpha(alphas)
    constraints = [TrackingError(0.05, model, setup["bench"]), LongOnly(), NetExposure(1, 1)]
    with pytest.raises(DegenerateRiskModel, match=r"TrackingError.*variance of at most") as info:
        run_optimization(objective, constraints)
    assert info.value.reason == "degenerate_risk" and info.value.volatility < 1e-6
    held = optimal_target(objective, constraints, on_failure="hold")
    assert held.action == "hold" and held.reason == "degenerate_risk"
    # the same for a risk penalty
    with pytest.raises(DegenerateRiskModel, match="MeanVariance"):
        run_optimization(MeanVariance(alphas, model, 2.0), [LongOnly(), NetExposure(1, 1)])
    # the risky asset alone is not degenerate: it solves
    ok = run_optimization(MeanVariance(pd.Series({"Z": 0.01}), model, 2.0))
    assert ok.success and ok.new_weights["Z"] == pytest.approx(0.01 / (2 * 2 * 5e-4), rel=1e-6)


def test_solver_outcomes_have_reasons_and_hold(setup, monkeypatch):
    alphas = setup["alphas"]
    infeasible = [NetExposure(1, 1), NetExposure(-1, -0.5)]
    held = optimal_target(MaximizeAlpha(alphas), [*infeasible, MaxGrossExposure(2)], "hold")
    assert (held.action, held.reason) == ("hold", "infeasible")
    assert isinstance(held.result.error, InfeasibleConstraints)
    held = optimal_target(MaximizeAlpha(alphas), [NetExposure(1, 1)], "hold")
    assert (held.action, held.reason) == ("hold", "unbounded")
    assert isinstance(held.result.error, UnboundedObjective)
    with pytest.raises(UnboundedObjective):
        optimal_target(MaximizeAlpha(alphas), [NetExposure(1, 1)], "raise")

    budget = [LongOnly(), NetExposure(1, 1)]
    break_clarabel(monkeypatch)
    held = optimal_target(MaximizeAlpha(alphas), budget, "hold", solvers=["CLARABEL"],
                          cache=ProblemCache())
    assert (held.action, held.reason) == ("hold", "solver_error")
    assert "simulated Clarabel failure" in str(held.result.error)
    monkeypatch.undo()

    clarabel_inaccurate(monkeypatch, shift=0.01)
    held = optimal_target(MaximizeAlpha(alphas), budget, "hold", solvers=["CLARABEL"],
                          cache=ProblemCache())
    assert (held.action, held.reason) == ("hold", "inaccurate")
    assert isinstance(held.result.error, OptimizationFailed)
    with pytest.raises(OptimizationFailed, match="violates a constraint"):
        optimal_target(MaximizeAlpha(alphas), budget, "raise", solvers=["CLARABEL"],
                       cache=ProblemCache())


def test_benchmark_mode_moves_to_the_benchmark_or_holds_when_it_is_unusable(setup):
    model, bench, alphas = setup["model"], setup["bench"], setup["alphas"]
    objective = MaximizeAlpha(_with(alphas, "S3", np.nan))
    moved = optimal_target(objective, [TrackingError(0.05, model, bench), LongOnly(),
                                       NetExposure(1, 1)], "benchmark")
    assert moved.action == "benchmark" and moved.reason == "non_finite_input"
    pd.testing.assert_series_equal(moved.weights, bench)
    # a benchmark that is itself NaN is not ordered: hold, saying why
    bad = _with(bench, "S1", np.nan)
    held = optimal_target(MaximizeAlpha(alphas), [TrackingError(0.05, model, bad), LongOnly(),
                                                  NetExposure(1, 1)], "benchmark")
    assert held.action == "hold" and held.weights is None
    assert held.reason == "non_finite_input"


def test_a_non_finite_parameter_is_named_even_from_valid_inputs(setup):
    """The engine checks every parameter a term prepares (a term's arithmetic can turn
    valid inputs into infinity): the error names the term, parameter and asset."""
    from zipline_factorarb.optimize._base import TermData
    from zipline_factorarb.optimize.constraints import Constraint

    class Overflowing(Constraint):
        def _prepare(self, ctx):
            cap = np.full(ctx.n, 0.5)
            cap[2] = np.inf  # e.g. a ratio over a zero volume
            return TermData({"cap": cap})

        def _build(self, w, p, data):
            return [w <= p["cap"]]

        def _violation(self, w, data):
            return 0.0, ""

    with pytest.raises(NonFiniteInput, match=r"Overflowing\(\) parameter 'cap'.*'S2'"):
        run_optimization(MaximizeAlpha(setup["alphas"]), [Overflowing(), LongOnly(),
                                                          NetExposure(1, 1)])


def test_group_labels_with_duplicates_fail_the_solve(setup):
    labels = pd.concat([pd.Series("A", index=ASSETS), pd.Series({"S0": "B"})])
    constraint = NetGroupExposure(labels, 0.0, 0.5)
    with pytest.raises(InvalidInput, match="duplicated assets"):
        run_optimization(MaximizeAlpha(setup["alphas"]), [constraint, LongOnly()])


# --------------------------------------------------------------------------- backtests
STOCKS = ["AAPL", "BAC", "CVX", "HD", "JNJ", "JPM", "KO", "MSFT", "PFE", "XOM"]


def _failing_algorithm(on_failure, log):
    """Monthly 5%-TEV tilt on ten stocks with linear and market-impact costs; each
    month from February to August feeds one kind of bad input, the way an algorithm
    would get it from its pipeline or its own estimates."""
    from zipline.api import (date_rules, get_datetime, record, schedule_function, set_commission,
                             set_slippage, symbol, time_rules)
    from zipline.finance import commission, slippage

    from zipline_factorarb.optimize import order_optimal_portfolio

    def initialize(context):
        set_commission(commission.PerShare(cost=0.0, min_trade_cost=0.0))
        set_slippage(slippage.FixedSlippage(spread=0.0))
        context.assets = [symbol(s) for s in STOCKS]
        context.market = symbol("SP500")
        context.costs = CostModel(half_spread=0.0005, commission_rate=0.0005, impact=1.0)
        schedule_function(rebalance, date_rules.month_start(), time_rules.market_open())

    def rebalance(context, data):
        assets, market = context.assets, context.market
        prices = data.history([*assets, market], "price", 253, "1d")
        returns = prices.pct_change().iloc[1:]
        model = RiskModel.from_returns(returns[assets],
                                       returns[[market]].rename(columns={market: "market"}))
        bench = pd.Series(1.0 / len(assets), index=assets)
        alpha = prices.iloc[-1][assets] / prices.iloc[-64][assets] - 1.0
        constraints = [TrackingError(0.05, model, bench), LongOnly(), NetExposure(1, 1)]
        volatility = returns[assets].iloc[-63:].std()
        volume = data.history(assets, "volume", 21, "1d")
        dollar_volume = (prices[assets].iloc[-21:] * volume).mean()
        month = get_datetime().month
        if month == 2:  # a NaN score, as a pipeline factor gives for a missing price
            alpha[symbol("AAPL")] = np.nan
        elif month == 3:  # a score for an asset the risk model does not cover
            alpha = pd.concat([alpha, pd.Series({market: 0.05})])
        elif month == 4:  # an all-zero risk model (e.g. estimated on constant prices)
            zero = RiskModel(model.loadings, model.factor_covariance * 0.0,
                             model.specific_variance * 0.0)
            constraints = [TrackingError(0.05, zero, bench), LongOnly(), NetExposure(1, 1)]
        elif month == 5:  # an entry that is not an asset of the bundle
            alpha = pd.concat([alpha, pd.Series({"NOT_A_SYMBOL": 0.01})])
        elif month == 6:  # a budget the exclusions cannot meet
            from zipline_factorarb.optimize import CannotHold

            constraints = [TrackingError(0.001, model, bench), LongOnly(), NetExposure(1, 1),
                           CannotHold(assets[:3])]
        elif month == 7:  # a NaN volatility for the cost model (a missing price)
            volatility[symbol("JPM")] = np.nan
        elif month == 8:  # a NaN in the risk model's factor covariance
            cov = model.factor_covariance.copy()
            cov.loc["market", "market"] = np.nan
            bad = RiskModel(model.loadings, cov, model.specific_variance)  # no error here
            constraints = [TrackingError(0.05, bad, bench), LongOnly(), NetExposure(1, 1)]
        costs = context.costs.terms(context.portfolio.portfolio_value, volatility,
                                    dollar_volume)  # no error here either
        out = order_optimal_portfolio(MaximizeAlpha(alpha), constraints,
                                      on_failure=on_failure, data=data, costs=costs)
        log.append((get_datetime().normalize(), out))
        if out.action == "rebalance":
            record(ex_ante_tev=out.result.tracking_error)

    return initialize


@pytest.mark.slow
def test_hold_survives_every_kind_of_failure_in_a_backtest(sample_root):
    log = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the zero-risk model warns when it is built
        perf = run_in_sample(sample_root, _failing_algorithm("hold", log), "2021-01-04", "2021-09-30")
    reasons = {day.month: out.reason for day, out in log}
    assert reasons == {1: None, 2: "non_finite_input", 3: "unknown_assets",
                       4: "degenerate_risk", 5: "unknown_assets", 6: "infeasible",
                       7: "non_finite_input", 8: "non_finite_input", 9: None}
    assert {day.month: out.action for day, out in log} == {
        1: "rebalance", 2: "hold", 3: "hold", 4: "hold", 5: "hold", 6: "hold", 7: "hold",
        8: "hold", 9: "rebalance"}
    # recorded on each rebalance day: the flag, and on failures the reason naming the asset
    days = {d.month: perf.index[perf.index.normalize().tz_localize(None) == d.tz_localize(None)][0]
            for d, _ in log}
    flags = {m: int(perf.loc[d, "optimizer_failure"]) for m, d in days.items()}
    assert flags == {1: 0, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 0}
    text = {m: perf.loc[d, "optimizer_failure_reason"] for m, d in days.items() if flags[m]}
    assert text[2].startswith("non_finite_input: MaximizeAlpha.alphas") and "AAPL" in text[2]
    assert text[3].startswith("unknown_assets:") and "SP500" in text[3]
    assert text[4].startswith("degenerate_risk: TrackingError")
    assert text[5].startswith("unknown_assets:") and "NOT_A_SYMBOL" in text[5]
    assert text[6].startswith("infeasible:")
    assert text[7].startswith("non_finite_input: MarketImpact.volatility") and "JPM" in text[7]
    assert text[8].startswith("non_finite_input: RiskModel.factor_covariance")
    assert "('market', 'market')" in text[8]
    # a success records no reason (zipline would otherwise carry August's into September)
    assert perf["optimizer_failure_reason"].loc[:days[2]].iloc[:-1].isna().all()
    assert perf["optimizer_failure_reason"].loc[days[9]:].isna().all()
    # holding: the positions are the same before and after every failed rebalance
    held = days[2], days[8]
    before = perf.index[perf.index.get_loc(held[0]) - 1]
    after = perf.index[perf.index.get_loc(held[1]) + 1]
    amounts = [{p["sid"].symbol: p["amount"] for p in perf.loc[d, "positions"]}
               for d in (before, after)]
    assert amounts[0] == amounts[1] and len(amounts[0]) > 0
    # the successful rebalances respected the budget and the run completed
    assert perf["ex_ante_tev"].dropna().max() <= 0.05 + 1e-6
    assert np.isfinite(perf["portfolio_value"]).all()


@pytest.mark.slow
def test_raise_ends_the_backtest_naming_the_asset(sample_root):
    with pytest.raises(NonFiniteInput) as info:
        run_in_sample(sample_root, _failing_algorithm("raise", []), "2021-01-04", "2021-02-26")
    assert info.value.field == "MaximizeAlpha.alphas"
    assert info.value.asset.symbol == "AAPL" and "AAPL" in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("start, field, asset", [
    ("2021-07-01", "MarketImpact.volatility", "JPM"),
    ("2021-08-02", "RiskModel.factor_covariance", ("market", "market")),
])
def test_raise_ends_the_backtest_on_bad_costs_and_risk_models(sample_root, start, field, asset):
    """The July (NaN volatility in the costs) and August (NaN factor covariance)
    rebalances, each the first of its run: the error ends the run from inside
    order_optimal_portfolio, named (the algorithm's own calls build without error)."""
    with pytest.raises(NonFiniteInput) as info:
        run_in_sample(sample_root, _failing_algorithm("raise", []), start, start)
    assert info.value.field == field
    got = info.value.asset
    assert (got.symbol if hasattr(got, "symbol") else got) == asset
    assert any(frame.f_code.co_name == "order_optimal_portfolio"
               for frame, _ in traceback.walk_tb(info.tb))
