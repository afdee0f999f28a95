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

from zipline.api import record

from zipline_factorarb.algo import (algorithm_params, attach_tev_pipelines, check_tev_params,
                                    initialize_trading, per_share_costs, rebalance_and_track,
                                    tev_inputs, tev_objective)
from zipline_factorarb.optimize import (LongOnly, NetExposure, PositionConcentration,
                                        order_optimal_portfolio, risk_records)
from zipline_factorarb.pipeline import IsStock, Sector, size_benchmark_weights


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

def _check_params():
    check_tev_params(PARAMS)
    if not 0 < PARAMS["max_weight"] <= 1:
        raise ValueError(f"max_weight must lie in (0, 1], got {PARAMS['max_weight']!r}")


def initialize(context):
    _check_params()
    initialize_trading(context, PARAMS["benchmark_symbols"],
                       **per_share_costs(PARAMS["commission_per_share"], PARAMS["slippage_bps"]))
    attach_tev_pipelines(context, "tev_factor_tilt", PARAMS, IsStock() & Sector().notnull())


def rebalance(context, data):
    inputs = tev_inputs(context, data, "tev_factor_tilt", PARAMS["include_alpha"])
    if inputs is None:
        return
    out, model, mu_f = inputs
    benchmark = size_benchmark_weights(model.assets, out, out["dollar_volume"], out["volume"],
                                       PARAMS["benchmark_weighting"])
    constraints = [LongOnly(), NetExposure(1.0, 1.0)]
    if PARAMS["max_weight"] < 1.0:
        constraints.append(PositionConcentration.with_equal_bounds(0.0, PARAMS["max_weight"]))
    objective, constraints, more = tev_objective(PARAMS, mu_f, model, benchmark, constraints)
    extra = {"benchmark_cap_weighted": int(benchmark.attrs["source"] == "market_cap"), **more}
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
    """Rebalance on the first session of each ``rebalance`` period, then record the
    benchmark's return (:func:`~zipline_factorarb.algo.rebalance_and_track`)."""
    rebalance_and_track(context, data, PARAMS["rebalance"], rebalance)
