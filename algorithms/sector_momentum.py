"""Sector-relative momentum: the first end-to-end algorithm.

Each month, rank the stocks of the universe by 12-1 momentum (the return
from 12 months to 1 month ago) measured relative to their GICS sector's
mean, and hold the top ``n_long`` names in equal weight, long only and fully
invested. The benchmark is the bundle's index (``SP500`` in the sample,
``SPY`` in an ETF bundle); index assets are never traded.

Run::

    zipline run -f algorithms/sector_momentum.py -b factorarb-sample \\
        -s 2005-01-03 -e 2022-12-28 -o out.pickle

Parameters (defaults below) can be overridden with ``FACTORARB_PARAMS``,
e.g. ``FACTORARB_PARAMS='{"n_long": 8}'``.
"""

from zipline.api import attach_pipeline, pipeline_output, record
from zipline.pipeline import Pipeline
from zipline.pipeline.factors import Returns

from zipline_factorarb.algo import (algorithm_params, book_exposures, first_session_of,
                                    initialize_trading, order_target_book, per_share_costs)
from zipline_factorarb.pipeline import IsStock, Sector
from zipline_factorarb.records import GROSS_EXPOSURE, NET_EXPOSURE, N_HOLDINGS

PARAMS = algorithm_params(
    {
        "lookback": 252,  # sessions of the momentum window
        "skip": 21,  # most recent sessions left out (short-term reversal)
        "n_long": 5,  # names held
        "benchmarks": ["SP500", "SPY"],  # first one found in the bundle
        "commission_per_share": 0.005,
        "slippage_bps": 5.0,
    }
)


def make_pipeline():
    sector = Sector()
    long_window = Returns(window_length=PARAMS["lookback"])
    recent = Returns(window_length=PARAMS["skip"])
    momentum = (long_window + 1.0) / (recent + 1.0) - 1.0
    universe = IsStock() & momentum.notnull() & sector.notnull()
    return Pipeline(
        columns={
            "momentum": momentum,
            "sector_momentum": momentum.demean(groupby=sector, mask=universe),
            "sector": sector,
        },
        screen=universe,
    )


def initialize(context):
    initialize_trading(context, PARAMS["benchmarks"], require_benchmark=True,
                       **per_share_costs(PARAMS["commission_per_share"], PARAMS["slippage_bps"]))
    attach_pipeline(make_pipeline(), "momentum")


def handle_data(context, data):
    # the month's first session (like date_rules.month_start(), but run from
    # handle_data: see zipline_factorarb.algo.first_session_of), then the book
    if first_session_of(context, "month"):
        rebalance(context, data)
    record_book(context, data)


def rebalance(context, data):
    out = pipeline_output("momentum")
    if out.empty:
        return
    chosen = out["sector_momentum"].nlargest(PARAMS["n_long"]).index
    weight = 1.0 / len(chosen)
    order_target_book(context, data, {asset: weight for asset in chosen})


def record_book(context, data):
    book = book_exposures(context.portfolio)
    record(**{name: book[name] for name in (N_HOLDINGS, GROSS_EXPOSURE, NET_EXPOSURE)})
