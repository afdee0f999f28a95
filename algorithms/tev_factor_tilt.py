"""Single-name factor tilt under a tracking-error budget.

Once a month (``rebalance``: also "week" or "day"), choose long-only, fully
invested stock weights w that maximise the expected active factor return
``mu_f' F (w - b)`` subject to an ex-ante tracking error of at most
``tev_budget`` (6% a year) against the benchmark b:

    maximise    mu_f' F (w - b)
    subject to  sqrt(252 (w - b)' Sigma (w - b)) <= tev_budget,  sum(w) = 1,  w >= 0

with the factor model ``Sigma = F' Sigma_f F + diag(E)`` estimated by
:class:`~zipline_factorarb.pipeline.risk.FactorRiskModel`: each stock's trailing
``window`` daily returns regressed on the factor returns give its loadings F, its
intercept (alpha) and its specific variance E; the factor means mu_f and
covariance Sigma_f come from the same window. The model is estimated only on
rebalance sessions (its ``frequency`` follows ``rebalance``), and the factor
moments, the same numbers for every stock, come from a one-row pipeline of their
own (``FactorRiskModel.moments_pipeline``) rather than as columns of every stock:
at 2,000 stocks this keeps the pipelines' memory to a few hundred MB. With ``include_alpha`` (off by
default) the intercepts count in the expected return (the research's formulation,
where the constant's expected "factor return" is 1).

``objective="risk_aversion"`` switches to the research's other form,
``maximise mu' w - gamma (w - b)' Sigma (w - b)``, with gamma either fixed
(``risk_aversion``) or, with ``calibrate``, re-calibrated at every rebalance so that
the ex-ante tracking error is ``tev_budget`` (the calibrated form then holds the
same portfolio as the budget form: gamma is the budget's multiplier).

Factors (``factor_source``): on the sample bundle the five MSCI factor ETFs (MTUM,
QUAL, SIZE, USMV, VLUE) in excess of the market, plus the market (the S&P 500
index, whose prices are read but never traded); on a bundle without them (e.g. the
505-stock CSV set) an equal-weighted market factor plus one sector-minus-market
factor per GICS sector.

Benchmark: market-cap weights (``b = cap / sum(cap)``) where the bundle stores
``market_cap`` fundamentals (docs/data.md; recorded ``benchmark_cap_weighted``).
Otherwise the documented proxy (``benchmark_weighting``): weights
proportional to the 63-session average dollar volume where volumes are real, and
equal weights over the tradable stocks where they are not (the sample bundle's
volumes are a constant stand-in, so its benchmark is the equal-weighted 20
stocks). zipline's own benchmark (``set_benchmark``) is the first of
``benchmark_symbols`` found (``SP500`` on the sample); on a bundle with none, run
with ``--no-benchmark``.

Recorded at each rebalance: ``ex_ante_tev``, ``factor_exposure_<factor>``,
``sector_weight_<GICS sector>``, ``benchmark_sector_weight_<GICS sector>``,
``risk_contribution_<factor>`` / ``risk_contribution_specific`` (shares of the
active variance, summing to one), ``n_holdings``, ``optimizer_failure`` and, in the
risk-aversion form, ``risk_aversion``; every session, ``tracked_benchmark_return``
(the daily total return of the benchmark weights of the last rebalance, for the
ex-post tracking error against the benchmark the budget refers to).

Run::

    zipline run -f algorithms/tev_factor_tilt.py -b factorarb-sample \\
        -s 2019-01-02 -e 2021-12-31 -o tilt.pickle

Parameters (defaults below) can be overridden with ``FACTORARB_PARAMS``, e.g.
``FACTORARB_PARAMS='{"objective": "risk_aversion"}'``.

Speed and memory at scale: ``benchmarks/bench_tev_memory.py``.
"""

import logging

from zipline.api import (
    attach_pipeline,
    get_datetime,
    pipeline_output,
    record,
    set_commission,
    set_slippage,
)
from zipline.finance import commission, slippage
from zipline.pipeline import Pipeline
from zipline.pipeline.data import EquityPricing
from zipline.pipeline.factors import AverageDollarVolume

from zipline_factorarb.algo import (
    SAMPLING_FREQUENCIES,
    algorithm_params,
    calibrated_risk_aversion,
    first_session_of,
    forbid_trading_indexes,
    set_benchmark_from,
)
from zipline_factorarb.optimize import (
    BenchmarkTracker,
    LongOnly,
    MaximizeFactorTilt,
    MeanVariance,
    NetExposure,
    PositionConcentration,
    TrackingError,
    order_optimal_portfolio,
    risk_records,
)
from zipline_factorarb.pipeline import (IsStock, Sector, factor_risk_model_for_algorithm,
                                        market_cap_columns, size_benchmark_weights)


PARAMS = algorithm_params(
    {
        "tev_budget": 0.06,  # annualised ex-ante tracking-error budget
        "rebalance": "month",  # "month", "week" (first session of each) or "day"
        "objective": "tev_budget",  # "tev_budget" or "risk_aversion"
        "risk_aversion": 10.0,  # gamma (per-day variance units) when not calibrated
        "calibrate": True,  # risk_aversion form: calibrate gamma to tev_budget each rebalance
        "include_alpha": False,  # count the regression intercepts (alphas) in the expected return
        "factor_source": "auto",  # "auto", "assets", "market", "market_sector"
        "factor_symbols": ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"],
        "market_symbols": ["SP500", "SPY"],  # first found: market factor (else equal-weighted)
        "benchmark_symbols": ["SP500", "SPY"],  # zipline's benchmark (first found)
        "benchmark_weighting": "auto",  # "auto" (market caps when the bundle has them, else
        # dollar volume or equal), "market_cap", "dollar_volume", "equal"
        "window": 252,  # sessions of returns in the risk-model regression
        "halflife": None,  # exponential weighting of covariances (sessions), None: equal
        "max_weight": 1.0,  # per-name cap (1.0: none)
        "on_failure": "hold",  # "hold", "benchmark" or "raise" when the problem is infeasible
        "commission_per_share": 0.005,
        "slippage_bps": 5.0,
    }
)

log = logging.getLogger(__name__)

_OBJECTIVES = ("tev_budget", "risk_aversion")


def _check_params():
    if PARAMS["rebalance"] not in ("day", "week", "month"):
        raise ValueError("rebalance must be one of ['day', 'week', 'month'], "
                         f"got {PARAMS['rebalance']!r}")
    if PARAMS["objective"] not in _OBJECTIVES:
        raise ValueError(f"objective must be one of {_OBJECTIVES}, got {PARAMS['objective']!r}")
    if not 0 < PARAMS["tev_budget"] < 1:
        raise ValueError(f"tev_budget is annualised (0.06 for 6%), got {PARAMS['tev_budget']!r}")
    if not 0 < PARAMS["max_weight"] <= 1:
        raise ValueError(f"max_weight must lie in (0, 1], got {PARAMS['max_weight']!r}")


def initialize(context):
    _check_params()
    try:
        context.benchmark = set_benchmark_from(PARAMS["benchmark_symbols"])
    except LookupError:
        context.benchmark = None  # pass --no-benchmark (or --benchmark-file) to zipline run
    context.indexes = forbid_trading_indexes()
    set_commission(commission.PerShare(cost=PARAMS["commission_per_share"], min_trade_cost=1.0))
    set_slippage(slippage.FixedBasisPointsSlippage(basis_points=PARAMS["slippage_bps"],
                                                   volume_limit=1.0))
    sector = Sector()
    universe = IsStock() & sector.notnull()
    risk, info = factor_risk_model_for_algorithm(
        PARAMS["factor_source"], PARAMS["factor_symbols"], PARAMS["market_symbols"],
        window_length=PARAMS["window"], mask=universe, halflife=PARAMS["halflife"],
        frequency=SAMPLING_FREQUENCIES[PARAMS["rebalance"]])
    for name, reason in info["left_out"].items():
        log.info("factor or market symbol %s not used: %s", name, reason)
    context.risk = risk
    context.factor_info = info
    columns = risk.pipeline_columns(moments=False, into={
        "sector": sector,
        "dollar_volume": AverageDollarVolume(window_length=63, mask=universe),
        "volume": EquityPricing.volume.latest,
        **market_cap_columns(),  # when the bundle stores market caps
    })
    attach_pipeline(Pipeline(columns, screen=universe), "tev_factor_tilt")
    attach_pipeline(risk.moments_pipeline(), "tev_factor_tilt_moments")
    context.benchmark_tracker = BenchmarkTracker()


def rebalance(context, data):
    out = pipeline_output("tev_factor_tilt")
    out = out[[bool(data.can_trade(a)) for a in out.index]] if len(out) else out
    risk = context.risk
    loadings = risk.loadings(out) if len(out) else out
    if len(loadings) < 2:
        log.info("%s: fewer than two stocks with a risk-model estimate; not rebalancing",
                 get_datetime().date())
        return
    out = out.loc[loadings.index]
    moments = pipeline_output("tev_factor_tilt_moments")
    model = risk.risk_model(out, moments=moments)
    mu_f = risk.expected_factor_returns(moments, include_alpha=PARAMS["include_alpha"])
    benchmark = size_benchmark_weights(model.assets, out, out["dollar_volume"], out["volume"],
                                       PARAMS["benchmark_weighting"])
    constraints = [LongOnly(), NetExposure(1.0, 1.0)]
    if PARAMS["max_weight"] < 1.0:
        constraints.append(PositionConcentration.with_equal_bounds(0.0, PARAMS["max_weight"]))
    extra = {"benchmark_cap_weighted": int(benchmark.attrs["source"] == "market_cap")}
    if PARAMS["objective"] == "tev_budget":
        objective = MaximizeFactorTilt(mu_f, model, benchmark)
        constraints.append(TrackingError(PARAMS["tev_budget"], model, benchmark))
    else:
        gamma = PARAMS["risk_aversion"]
        if PARAMS["calibrate"]:
            gamma = calibrated_risk_aversion(PARAMS["tev_budget"], model, benchmark, gamma,
                                             PARAMS["on_failure"],
                                             expected_factor_returns=mu_f,
                                             constraints=constraints)
        objective = MeanVariance(expected_factor_returns=mu_f, risk_model=model,
                                 risk_aversion=gamma, benchmark_weights=benchmark)
        extra["risk_aversion"] = gamma
    result = order_optimal_portfolio(objective, constraints, on_failure=PARAMS["on_failure"],
                                     data=data)
    if result.action != "rebalance":
        return
    context.benchmark_tracker.reset(benchmark)
    sectors = out["sector"].map(Sector.name_of)
    record(**risk_records(result.result.new_weights, benchmark, model, sectors=sectors,
                          sector_names=sorted(set(sectors))),
           **extra)


def handle_data(context, data):
    """Rebalance on the first session of each ``rebalance`` period, then track the
    benchmark.

    Both run from ``handle_data`` rather than ``schedule_function``: in daily mode
    zipline 3 runs no scheduled function on some early-close sessions (e.g.
    2018-07-03), which would skip a rebalance and a day of the benchmark's return.
    """
    if first_session_of(context, PARAMS["rebalance"]):
        rebalance(context, data)
    # tracked_benchmark_return: the daily total return of the benchmark weights set
    # at the last rebalance (held until the next), the TEV's benchmark
    context.benchmark_tracker.record(data)
