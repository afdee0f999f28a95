"""Avellaneda-Lee (2010) statistical arbitrage on s-scores of factor residuals.

Each session, :class:`zipline_factorarb.SScore` fits an Ornstein-Uhlenbeck
process to the cumulative residuals of every asset of the universe over the
trailing 60 daily returns (factor returns: the top ``components`` principal
components of the universe, or the returns of given factor ETFs). Only names
that revert fast enough (mean-reversion time under ``max_mean_reversion_days``,
30 sessions in the paper) are traded, with the paper's bands on the s-score:

* open a long position when s < ``open_long`` (-1.25),
* open a short position when s > ``open_short`` (+1.25),
* close a short position when s < ``close_short`` (+0.75),
* close a long position when s > ``close_long`` (-0.50).

Each position is opened at ``position_weight`` of the portfolio value and
held until its exit band (or until the name stops being valid, with
``close_invalid``). Costs: ``cost_bps`` (5 bp) per side on the traded
notional. Index assets (the sample's SP500) are never traded; the benchmark
is SPY or SP500::

    zipline run -f algorithms/sscore_statarb.py -b factorarb-csv \\
        -s 2015-01-02 -e 2024-12-31 -o out.pickle

    FACTORARB_PARAMS='{"universe": "stocks", "position_weight": 0.05}' \\
    zipline run -f algorithms/sscore_statarb.py -b factorarb-sample \\
        -s 2005-01-03 -e 2022-12-28 -o out.pickle

Timing: the pipeline value of session D uses closes up to D-1; orders placed
on D are filled at the close of D+1 by zipline's daily simulation.

Records ``n_holdings``, ``n_long``, ``n_short``, ``gross_exposure``,
``net_exposure`` and ``n_valid`` (names passing the reversion-speed cut).

References
----------
Avellaneda, M. and Lee, J.-H. (2010). Statistical arbitrage in the US
equities market. Quantitative Finance, 10(7), 761-782.
"""

import math

from zipline.api import (attach_pipeline, get_open_orders, order_target_percent, pipeline_output,
                         record, symbol)
from zipline.pipeline import Pipeline

from zipline_factorarb.algo import (SECTOR_ETFS, algorithm_params, book_exposures,
                                    initialize_trading, per_dollar_costs, universe_filter)
from zipline_factorarb.pipeline import SScore

PARAMS = algorithm_params(
    {
        # traded assets: a list of symbols, or "stocks" / "etfs" (every such asset)
        "universe": SECTOR_ETFS,
        # "pca" (`components` principal components of the universe's returns) or a list of
        # factor symbols
        "factors": "pca",
        "components": 3,
        "window_length": 60,  # daily returns of the OU estimation window
        "max_mean_reversion_days": 30.0,  # trade only names with 1/kappa below this
        "open_long": -1.25,
        "open_short": 1.25,
        "close_short": 0.75,
        "close_long": -0.5,
        "position_weight": 0.1,  # fraction of the portfolio value per open position
        "close_invalid": True,  # exit a position when its name stops being valid
        "cost_bps": 5.0,  # per side, on the traded notional
        "benchmarks": ["SPY", "SP500"],
    }
)


def make_pipeline():
    universe = universe_filter(PARAMS["universe"])
    factors = PARAMS["factors"]
    if not isinstance(factors, str):
        factors = [symbol(s) for s in factors]
    score = SScore(
        factors=factors,
        components=PARAMS["components"] if factors == "pca" else None,
        window_length=PARAMS["window_length"],
        max_mean_reversion_days=PARAMS["max_mean_reversion_days"],
        mask=universe,
    )
    return Pipeline(
        {"s_score": score.s_score, "valid": score.valid,
         "mean_reversion_days": score.mean_reversion_days},
        screen=universe,
    )


def initialize(context):
    p = PARAMS
    if not (p["open_long"] < p["close_long"] and p["close_short"] < p["open_short"]):
        raise ValueError("bands must satisfy open_long < close_long and close_short < open_short")
    initialize_trading(context, p["benchmarks"], require_benchmark=True,
                       **per_dollar_costs(p["cost_bps"]))
    attach_pipeline(make_pipeline(), "sscore")
    context.side = {}  # asset -> +1 long / -1 short
    context.n_valid = 0


def handle_data(context, data):
    # every daily bar, half days included (in daily mode zipline skips
    # scheduled functions with time rules on early-close sessions)
    trade(context, data)
    record_book(context, data)


def next_side(side, s, valid, p=PARAMS):
    """The band rule: the position (+1, -1, 0) after seeing s-score ``s``."""
    if not valid or s is None or math.isnan(s):
        return 0 if p["close_invalid"] else side
    if side == 0:
        if s < p["open_long"]:
            return 1
        if s > p["open_short"]:
            return -1
        return 0
    if side == 1:
        return 0 if s > p["close_long"] else 1
    return 0 if s < p["close_short"] else -1


def trade(context, data):
    out = pipeline_output("sscore")
    context.n_valid = int((out["valid"] == 1.0).sum())
    names = sorted(set(out.index) | set(context.side), key=lambda a: a.sid)
    for asset in names:
        side = context.side.get(asset, 0)
        if asset in out.index:
            row = out.loc[asset]
            new = next_side(side, float(row["s_score"]), row["valid"] == 1.0)
        else:
            new = 0  # left the universe
        if new == side or not data.can_trade(asset) or get_open_orders(asset):
            continue
        order_target_percent(asset, new * PARAMS["position_weight"])
        if new:
            context.side[asset] = new
        else:
            context.side.pop(asset, None)


def record_book(context, data):
    record(**book_exposures(context.portfolio), n_valid=context.n_valid)
