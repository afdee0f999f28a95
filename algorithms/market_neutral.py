"""Flagship: a market-neutral long-short book, neutral to every factor of the WLS regression.

At each rebalance (``rebalance``: day, week or month) the book maximises the
residual signal's expected return minus expected costs:

    maximise    alpha' w - costs(w - w0)
    subject to  sum(w) = 0,  sum |w| <= gross_leverage,  |w_i| <= max_weight,
                Omega' w = 0   (every factor of the day's WLS regression)

``alpha`` is the chosen residual signal (``signals``: the s-score by default,
whose rank IC survives zipline's fill lag; the WLS weighted residual, the Kalman
innovation or a blend), signed to mean-revert, sector-demeaned, winsorised,
z-scored and sized with Grinold's ``IC * sigma * sqrt(h) * z`` (h: sessions
between rebalances). ``Omega`` is the day's regression loadings read back from
the ``WLSResidual`` pipeline output (``wls.loadings(out)``: intercept, sector
dummies, styles or principal components, by ``variant``), so
``FactorExposure(Omega, 0, 0)`` leaves no exposure to any of them: the
recommended way to a factor-neutral book (``wls_mean_reversion.py`` is the
seed-faithful decile version). Costs are the half-spread plus commission, market
impact where the bundle has real volumes, and a borrow fee on shorts
(``borrow_rate`` a year, over the sessions to the next rebalance); zipline's
fills are charged the same spread, commission and impact (``CostModel``).
Borrow is not charged by zipline: it is recorded as ``expected_borrow_cost``
only.

Recorded each session: ``expected_cost`` (spread, commission and impact of the
orders sent that session: what zipline will charge), ``expected_borrow_cost``
and ``realised_cost`` (charged on that session's fills), the book's exposures; at
each rebalance ``factor_neutrality_max`` (the largest ``|Omega' w|`` over the
regression's factors, after the solve), ``factor_exposure_<f>`` and
``risk_contribution_<f>`` from the ``FactorRiskModel`` risk model (total risk:
the benchmark is cash), ``ex_ante_tev`` (the book's ex-ante volatility against
cash), ``sector_weight_<s>`` (net, zero by construction).

Run::

    zipline run -f algorithms/market_neutral.py -b factorarb-sample \\
        -s 2015-02-02 -e 2022-12-28 -o neutral.pickle
    FACTORARB_PARAMS='{"variant": "multi_factor"}' zipline run \\
        -f algorithms/market_neutral.py -b my-stocks -s 2015-01-02 -e 2017-12-29 \\
        --no-benchmark -o neutral.pickle
"""

import numpy as np
import pandas as pd
from zipline.api import attach_pipeline, pipeline_output, record
from zipline.pipeline import Pipeline

from zipline_factorarb.algo import (algorithm_params, algorithm_risk_model, book_exposures,
                                    first_session_of, initialize_trading)
from zipline_factorarb.optimize import (CostModel, DollarNeutral, FactorExposure, MaximizeAlpha,
                                        MaxGrossExposure, PositionConcentration,
                                        cost_records, order_optimal_portfolio, risk_records)
from zipline_factorarb.pipeline import (HORIZONS, IsStock, Sector, WLSResidual, alpha_scores,
                                        expected_alphas, market_inputs, signal_columns)

PARAMS = algorithm_params({
    # any of "wls", "kalman", "sscore"; several are blended. The s-score is the one whose
    # rank IC survives zipline's fill lag (docs/signals.md: lag 3 on the 505 stocks)
    "signals": ["sscore"],
    "variant": "industry",  # WLS loadings: "industry", "multi_factor" (+ styles), "pca"
    "styles": ["beta", "momentum", "reversal", "volatility"],  # multi_factor
    "components": 3,  # pca: number of principal components
    "information_coefficient": 0.02,  # Grinold: alpha = IC * sigma * z
    "rebalance": "week",  # "day", "week" or "month"
    "gross_leverage": 1.0,  # sum |w|
    "max_weight": 0.05,  # |w_i|
    "half_spread": 0.0005, "commission_rate": 0.0005, "impact": 1.0,  # costs (fractions)
    "borrow_rate": 0.005,  # annual fee on shorts
    "factor_symbols": ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"],  # risk model (records)
    "market_symbols": ["SP500", "SPY"],
    "benchmark_symbols": ["SP500", "SPY"],
    "window": 252,
    "on_failure": "hold",
})
VARIANTS = {"industry": {}, "multi_factor": {"styles": tuple(PARAMS["styles"])},
            "pca": {"sector": None, "components": PARAMS["components"]}}


def initialize(context):
    if PARAMS["variant"] not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}; got {PARAMS['variant']!r}")
    context.costs = CostModel(PARAMS["half_spread"], PARAMS["commission_rate"], PARAMS["impact"],
                              borrow_rate=PARAMS["borrow_rate"],
                              holding_periods=HORIZONS[PARAMS["rebalance"]])
    initialize_trading(context, PARAMS["benchmark_symbols"], context.costs.commission(),
                       context.costs.slippage())
    universe = IsStock() & Sector().notnull()
    context.wls = WLSResidual(mask=universe, **VARIANTS[PARAMS["variant"]])
    context.risk, _ = algorithm_risk_model(PARAMS, universe)  # estimated when rebalancing
    columns = {**signal_columns(PARAMS["signals"], universe, wls=context.wls,
                                rebalance=PARAMS["rebalance"]),
               **context.wls.pipeline_columns(), **context.risk.pipeline_columns()}
    attach_pipeline(Pipeline(columns, screen=universe), "neutral")


def rebalance(context, data):
    out = pipeline_output("neutral")
    loadings = context.wls.loadings(out)  # the day's regression: assets x factors
    model = context.risk.risk_model(out)
    costed = out.index[np.isfinite(out["signal:volatility"]) & (out["signal:dollar_volume"] > 0)]
    names = loadings.index.intersection(model.assets).intersection(costed)
    out, loadings = out.loc[names], loadings.loc[names]
    alpha = expected_alphas(out, alpha_scores(out, PARAMS["signals"]),
                            PARAMS["information_coefficient"], HORIZONS[PARAMS["rebalance"]])
    market = market_inputs(out)  # (None, None) where volumes are a stand-in (the sample)
    cap = PARAMS["max_weight"]
    constraints = [DollarNeutral(), MaxGrossExposure(PARAMS["gross_leverage"]),
                   PositionConcentration.with_equal_bounds(-cap, cap),
                   FactorExposure(loadings, 0.0, 0.0)]
    result = order_optimal_portfolio(
        MaximizeAlpha(alpha.reindex(names, fill_value=0.0)), constraints,
        on_failure=PARAMS["on_failure"], data=data,
        costs=context.costs.terms(context.portfolio.portfolio_value, *market))
    if result.action != "rebalance":
        return result
    if market[0] is not None:
        context.costs.update_market(*market)
    w = result.result.new_weights.reindex(names, fill_value=0.0)
    sectors = out["signal:sector"].map(Sector.name_of)
    exposure = loadings.to_numpy().T @ w.to_numpy()  # Omega' w after the solve
    record(impact_modelled=int(market[0] is not None),
           factor_neutrality_max=float(np.abs(exposure).max()),
           **risk_records(w, pd.Series(0.0, index=names), model, sectors=sectors,
                          sector_names=sorted(set(sectors))))
    return result


def handle_data(context, data):
    result = rebalance(context, data) if first_session_of(context, PARAMS["rebalance"]) else None
    record(**cost_records(context.costs, context.portfolio.portfolio_value, result),
           **book_exposures(context.portfolio))
