"""Flagship: a long-only, benchmark-relative portfolio on residual signals.

At each rebalance (``rebalance``: day, week or month):

1. the alpha is a residual signal, chosen by ``signals``: the s-score (the
   default: its rank IC survives zipline's fill lag, see docs/signals.md), the
   WLS weighted residual, the Kalman standardised innovation, or a blend of
   their scores; each is signed (residuals revert), demeaned within sectors,
   winsorised and z-scored, then turned into an expected return with Grinold's
   rule ``alpha = IC * sigma * sqrt(h) * z`` (``information_coefficient``, sigma the
   daily volatility, h the sessions between rebalances) so that it can be weighed
   against costs;
2. the risk model is the ``FactorRiskModel`` pipeline (the factor ETFs and the
   market on the sample; the market and sector factors on a stock bundle);
3. the portfolio maximises alpha minus expected costs (half-spread and
   commission, market impact ``b sigma |x|^1.5 / sqrt(V)`` where the bundle has
   real volumes) subject to an ex-ante ``TrackingError(tev_budget)`` against the
   benchmark weights, long only and fully invested, each sector's weight within
   ``sector_band`` of the benchmark's, at most ``max_weight`` per name, and
   optionally ``MaxTurnover(max_turnover)``.

The benchmark weights are market caps where the bundle has them, else the
documented proxy (dollar-volume weights; equal weights where the volumes are a
stand-in, as on the sample). zipline's fills are charged the same costs
(``CostModel.slippage()`` / ``.commission()``), so the expected cost of each
rebalance (``expected_cost``: spread, commission and impact) and the cost zipline
charged (``realised_cost``, every session) can be compared. Also recorded: ``ex_ante_tev``,
``factor_exposure_<f>``, ``risk_contribution_<f>``, ``sector_weight_<s>`` and
``benchmark_sector_weight_<s>``, ``tracked_benchmark_return``, the book's
exposures, and ``optimizer_failure``.

Run (the README's main job)::

    zipline run -f algorithms/benchmark_relative.py -b factorarb-sample \\
        -s 2015-02-02 -e 2022-12-28 -o flagship.pickle
    FACTORARB_PARAMS='{"signals": ["wls", "sscore"], "rebalance": "month"}' zipline run ...
"""

import numpy as np
from zipline.api import attach_pipeline, pipeline_output, record
from zipline.pipeline import Pipeline

from zipline_factorarb.algo import (algorithm_params, algorithm_risk_model, book_exposures,
                                    first_session_of, initialize_trading)
from zipline_factorarb.optimize import (BenchmarkTracker, CostModel, LongOnly, MaximizeAlpha,
                                        MaxTurnover, NetExposure, NetGroupExposure,
                                        PositionConcentration, TrackingError,
                                        cost_records, order_optimal_portfolio, risk_records)
from zipline_factorarb.pipeline import (HORIZONS, IsStock, Sector, alpha_scores, expected_alphas,
                                        market_cap_columns, market_inputs, signal_columns,
                                        size_benchmark_weights)

PARAMS = algorithm_params({
    # any of "wls", "kalman", "sscore"; several are blended. The s-score is the one whose
    # rank IC survives zipline's fill lag (docs/signals.md: lag 3 on the 505 stocks)
    "signals": ["sscore"],
    "signal_weights": {},  # blend weights by signal (default equal)
    "information_coefficient": 0.02,  # Grinold: alpha = IC * sigma * z
    "rebalance": "week",  # "day", "week" or "month"
    "tev_budget": 0.05,  # annualised ex-ante tracking error against the benchmark
    "sector_band": 0.05,  # |sector weight - benchmark sector weight| at most this
    "max_weight": 0.10,  # per name
    "max_turnover": 0.0,  # sum |trades| per rebalance; 0: no limit
    "half_spread": 0.0005, "commission_rate": 0.0005, "impact": 1.0,  # costs (fractions)
    "factor_symbols": ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"],
    "market_symbols": ["SP500", "SPY"],
    "benchmark_symbols": ["SP500", "SPY"],
    "window": 252,  # sessions of the risk model's regression
    "on_failure": "hold",
})


def initialize(context):
    context.costs = CostModel(PARAMS["half_spread"], PARAMS["commission_rate"], PARAMS["impact"])
    initialize_trading(context, PARAMS["benchmark_symbols"], context.costs.commission(),
                       context.costs.slippage())
    universe = IsStock() & Sector().notnull()
    risk, _ = algorithm_risk_model(PARAMS, universe)  # estimated when rebalancing
    columns = {**signal_columns(PARAMS["signals"], universe, rebalance=PARAMS["rebalance"]),
               **risk.pipeline_columns(),
               **market_cap_columns()}  # when the bundle stores market caps
    attach_pipeline(Pipeline(columns, screen=universe), "flagship")
    context.risk = risk
    context.tracker = BenchmarkTracker()


def rebalance(context, data):
    out = pipeline_output("flagship")
    costed = out.index[np.isfinite(out["signal:volatility"]) & (out["signal:dollar_volume"] > 0)]
    model = context.risk.risk_model(out.loc[costed])
    out = out.loc[model.assets]
    scores = alpha_scores(out, PARAMS["signals"], weights=PARAMS["signal_weights"] or None)
    alpha = expected_alphas(out, scores, PARAMS["information_coefficient"],
                            HORIZONS[PARAMS["rebalance"]])
    benchmark = size_benchmark_weights(model.assets, out, out["signal:dollar_volume"],
                                       out["signal:volume"])
    sectors = out["signal:sector"].map(Sector.name_of)
    band = PARAMS["sector_band"]
    bench_sectors = benchmark.groupby(sectors).sum()
    constraints = [
        TrackingError(PARAMS["tev_budget"], model, benchmark), LongOnly(), NetExposure(1, 1),
        NetGroupExposure(sectors, bench_sectors - band, bench_sectors + band),
        PositionConcentration.with_equal_bounds(0.0, PARAMS["max_weight"]),
    ]
    if PARAMS["max_turnover"] > 0:
        constraints.append(MaxTurnover(PARAMS["max_turnover"]))
    market = market_inputs(out)  # (None, None) where volumes are a stand-in (the sample)
    pv = context.portfolio.portfolio_value
    result = order_optimal_portfolio(
        MaximizeAlpha(alpha.reindex(model.assets, fill_value=0.0)), constraints,
        on_failure=PARAMS["on_failure"], data=data, costs=context.costs.terms(pv, *market))
    if result.action != "rebalance":
        return result
    if market[0] is not None:
        context.costs.update_market(*market)
    context.tracker.reset(benchmark)
    record(impact_modelled=int(market[0] is not None),
           benchmark_cap_weighted=int(benchmark.attrs["source"] == "market_cap"),
           **risk_records(result.result.new_weights, benchmark, model, sectors=sectors,
                          sector_names=sorted(set(sectors))))
    return result


def handle_data(context, data):
    result = rebalance(context, data) if first_session_of(context, PARAMS["rebalance"]) else None
    record(**cost_records(context.costs, context.portfolio.portfolio_value, result),
           **book_exposures(context.portfolio))
    context.tracker.record(data)  # tracked_benchmark_return: the benchmark weights' return
