"""Sector rotation under a tracking-error budget.

Once a month (``rebalance``: also "week" or "day"), choose k sector weights x
(long-only, summing to one) that maximise the expected active factor return under
an ex-ante tracking error of at most ``tev_budget`` (6% a year). Two modes
(``mode``):

``"stocks"``
    The research's sector rotation on single names: a mapping W (assets x
    sectors, each column the within-sector size weights) turns sector weights into
    stock weights ``W x``. The sector problem is an ordinary factor risk model whose
    "assets" are the sectors, with loadings ``B = F W`` and specific variances
    ``diag(W' E W)`` (:func:`~zipline_factorarb.optimize.sector_rotation_model`):

        maximise    mu_f' B (x - x_b)
        subject to  252 [(x - x_b)' B' Sigma_f B (x - x_b) + ||sqrt(E) W (x - x_b)||^2]
                        <= tev_budget^2,   sum(x) = 1,   x >= 0

    with the benchmark ``x_b`` the sectors' size weights (so ``W x_b`` is the
    size-weighted stock benchmark). Sizes are market caps where the bundle stores
    them (``Fundamentals.market_cap``), else the documented proxy
    (``benchmark_weighting``): 63-session average dollar volume where volumes are
    real, equal weights where they are a stand-in (the sample bundle). The stock
    weights ``W x`` are then ordered with ``order_optimal_portfolio(TargetWeights(...))``.

``"etfs"``
    Directly on the sector ETFs (e.g. the SPDR Select Sector funds of a
    ``factorarb-csv`` bundle) against SPY: benchmark weights ``b = {SPY: 1}``, SPY
    itself cannot be held (``CannotHold``), every sector ETF maps to its own sector.

``"auto"`` picks ``"stocks"`` when the bundle has stocks with a GICS sector, else
``"etfs"``.

The risk model is :class:`~zipline_factorarb.pipeline.risk.FactorRiskModel`
over the trailing ``window`` sessions, estimated only on rebalance sessions (its
``frequency`` follows ``rebalance``), with the factor moments from a one-row
pipeline of their own (``FactorRiskModel.moments_pipeline``). Factors
(``factor_source="auto"``): in stock mode as in
``tev_factor_tilt.py`` (the factor ETFs plus the market index on the sample; an
equal-weighted market and sector-minus-market factors on a stock-only bundle); in
ETF mode the market (SPY) plus every sector ETF that trades through the whole
backtest, in excess of SPY (so the trailing factor means are the sectors'
relative performance and the risk model captures the sectors' co-movement).

Recorded at each rebalance: ``ex_ante_tev``, ``factor_exposure_<factor>``,
``sector_weight_<GICS sector>``, ``benchmark_sector_weight_<GICS sector>`` (in ETF
mode estimated by a returns-based style analysis of SPY on the sector ETFs over the
window: non-negative weights summing to one), ``risk_contribution_<factor>`` /
``risk_contribution_specific``, ``n_holdings``, ``optimizer_failure`` (with
``optimizer_failure_reason`` when a rebalance failed) and the daily
``tracked_benchmark_return`` (the benchmark weights of the last rebalance held
until the next).

Run::

    zipline run -f algorithms/sector_rotation_tev.py -b factorarb-sample \\
        -s 2019-01-02 -e 2021-12-31 -o rotation.pickle
    FACTORARB_CSV_DIR=~/data/etfs zipline ingest -b factorarb-csv
    zipline run -f algorithms/sector_rotation_tev.py -b factorarb-csv \\
        -s 2016-01-04 -e 2018-12-31 -o rotation_etfs.pickle
"""

import logging

import pandas as pd
from zipline.api import get_datetime, record, symbol
from zipline.errors import SymbolNotFound

from zipline_factorarb.algo import (algorithm_params, assets_of_type, attach_tev_pipelines,
                                    check_tev_params, initialize_trading, per_share_costs,
                                    rebalance_and_track, stocks_with_sector, tev_inputs,
                                    tev_objective)
from zipline_factorarb.kernels import style_weights
from zipline_factorarb.optimize import (CannotHold, LongOnly, NetExposure, TargetWeights,
                                        optimal_target, order_optimal_portfolio, risk_records,
                                        sector_rotation_model)
from zipline_factorarb.pipeline import IsETF, IsStock, Sector, size_benchmark_weights
from zipline_factorarb.records import BENCHMARK_SECTOR_WEIGHT


PARAMS = algorithm_params(
    {
        "mode": "auto",  # "auto", "stocks" (stocks mapped to sectors) or "etfs" (sector ETFs)
        "tev_budget": 0.06,  # annualised ex-ante tracking-error budget
        "rebalance": "month",  # "month", "week" (first session of each) or "day"
        "objective": "tev_budget",  # "tev_budget" or "risk_aversion"
        "risk_aversion": 10.0,  # gamma (per-day variance units) when not calibrated
        "calibrate": True,  # risk_aversion form: calibrate gamma to tev_budget each rebalance
        "include_alpha": False,  # count the regression intercepts (alphas) in the expected return
        "factor_source": "auto",  # "auto", "assets", "market", "market_sector"
        "factor_symbols": ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"],  # stock mode, "assets"
        "market_symbols": ["SP500", "SPY"],  # first found: market factor (and ETF benchmark)
        "benchmark_symbols": ["SP500", "SPY"],  # zipline's benchmark (first found)
        "benchmark_weighting": "auto",  # stock mode sizes: "auto" (market caps when the
        # bundle has them, else the proxy), "market_cap", "dollar_volume", "equal"
        "window": 252,  # sessions of returns in the risk-model regression
        "halflife": None,  # exponential weighting of covariances (sessions), None: equal
        "on_failure": "hold",  # "hold", "benchmark" or "raise" when the optimiser fails
        "commission_per_share": 0.005,
        "slippage_bps": 5.0,
    }
)

log = logging.getLogger(__name__)

_MODES = ("auto", "stocks", "etfs")


def _check_params():
    if PARAMS["mode"] not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {PARAMS['mode']!r}")
    check_tev_params(PARAMS)


def _resolve_mode():
    if PARAMS["mode"] != "auto":
        return PARAMS["mode"]
    return "stocks" if stocks_with_sector() else "etfs"


def _market_etf():
    for name in PARAMS["market_symbols"]:
        try:
            return symbol(name)
        except SymbolNotFound:
            continue
    raise LookupError(
        f"mode 'etfs' needs the market fund as benchmark: none of market_symbols "
        f"{PARAMS['market_symbols']} is in this bundle; add SPY to the bundle or set "
        "market_symbols")


def initialize(context):
    _check_params()
    initialize_trading(context, PARAMS["benchmark_symbols"],
                       **per_share_costs(PARAMS["commission_per_share"], PARAMS["slippage_bps"]))
    context.mode = _resolve_mode()
    if context.mode == "stocks":
        context.market = None
        universe, symbols = IsStock() & Sector().notnull(), {}
    else:
        context.market = _market_etf()
        universe = IsETF()
        etfs = [a for a in assets_of_type("etf") if a != context.market]
        symbols = {"factor_symbols": [a.symbol for a in etfs],
                   "market_symbols": [context.market.symbol]}
    attach_tev_pipelines(context, "sector_rotation", PARAMS, universe,
                         market_caps=context.mode == "stocks", **symbols)
    if context.mode == "etfs" and context.factor_info["market"] != context.market:
        raise ValueError(
            f"mode 'etfs': the market fund {context.market.symbol} must trade through the "
            "whole backtest and its risk-model window; start the backtest later")


def rebalance(context, data):
    inputs = tev_inputs(context, data, "sector_rotation", PARAMS["include_alpha"],
                        keep=context.market)
    if inputs is None:
        return
    out, model, mu_f = inputs
    sectors = out["sector"].map(Sector.name_of)
    if context.mode == "stocks":
        rebalance_stocks(context, data, out, model, mu_f, sectors)
    else:
        rebalance_etfs(context, data, out, model, mu_f, sectors)


def rebalance_stocks(context, data, out, model, mu_f, sectors):
    sizes = size_benchmark_weights(model.assets, out, out["dollar_volume"], out["volume"],
                                   PARAMS["benchmark_weighting"])
    extra = {"benchmark_cap_weighted": int(sizes.attrs["source"] == "market_cap")}
    rotation = sector_rotation_model(model, sectors, sizes)
    objective, constraints, more = tev_objective(
        PARAMS, mu_f, rotation.risk_model, rotation.benchmark_weights,
        [LongOnly(), NetExposure(1.0, 1.0)])
    extra.update(more)
    # the sector problem's failures are handled (held, moved to the benchmark or
    # raised, and recorded) by the optimiser's own on_failure handling
    sector = optimal_target(objective, constraints, PARAMS["on_failure"], record_failures=True)
    if sector.action == "hold":
        return
    target = rotation.asset_weights(sector.weights.clip(lower=0.0))
    benchmark = rotation.asset_weights(rotation.benchmark_weights)
    placed = order_optimal_portfolio(TargetWeights(target), [LongOnly(), NetExposure(1.0, 1.0)],
                                     on_failure="raise", data=data, record_failures=False)
    context.benchmark_tracker.reset(benchmark)
    record(**risk_records(placed.result.new_weights, benchmark, model, sectors=sectors,
                          sector_names=sorted(set(sectors))),
           **extra)


def rebalance_etfs(context, data, out, model, mu_f, sectors):
    market = context.market
    if market not in model.assets:
        log.info("%s: the market fund has no risk-model estimate; not rebalancing",
                 get_datetime().date())
        return
    funds = [a for a in model.assets if a != market and sectors.get(a, "Unknown") != "Unknown"]
    no_sector = [a for a in model.assets if a != market and a not in funds]
    benchmark = pd.Series({market: 1.0})
    objective, constraints, extra = tev_objective(
        PARAMS, mu_f, model, benchmark,
        [LongOnly(), NetExposure(1.0, 1.0), CannotHold([market, *no_sector])])
    result = order_optimal_portfolio(objective, constraints, on_failure=PARAMS["on_failure"],
                                     data=data)
    context.benchmark_tracker.reset(benchmark)
    if result.action != "rebalance":
        return
    history = data.history([*funds, market], "price", PARAMS["window"] + 1, "1d").pct_change()
    style = pd.Series(style_weights(history[funds].to_numpy(), history[market].to_numpy()),
                      index=funds)
    fund_sectors = sectors.reindex(funds)
    names = sorted(set(fund_sectors))
    records = risk_records(result.result.new_weights, benchmark, model, sectors=fund_sectors,
                           sector_names=names)
    for name, value in style.groupby(fund_sectors.to_numpy()).sum().items():
        records[BENCHMARK_SECTOR_WEIGHT + str(name)] = float(value)
    record(**records, **extra)


def handle_data(context, data):
    """Rebalance on the first session of each ``rebalance`` period, then record the
    benchmark's return (:func:`~zipline_factorarb.algo.rebalance_and_track`)."""
    rebalance_and_track(context, data, PARAMS["rebalance"], rebalance)
