"""Residual momentum on Kalman-filter innovations (dynamic factor arbitrage).

Each session, the innovation e_t of every asset of the universe (its return
less what a random-walk-beta Kalman filter on the factor returns predicted,
:class:`zipline_factorarb.KalmanInnovation`) is ranked across the universe;
the top ``cut`` fraction is held long and the bottom ``cut`` short (at least
one name per side: with the nine SPDR sector ETFs and ``cut=0.1`` that is
the top and the bottom ETF), equal weight, dollar neutral, rebalanced every
session. ``mean_reversion=True`` trades the opposite way (long the lowest
innovations). Costs: ``cost_bps`` per side on the traded notional.

Default universe: the SPDR sector ETFs XLB XLE XLF XLI XLK XLP XLU XLV XLY,
factors: the top 3 principal components of their trailing 252 daily log
returns; SPY is the benchmark and is not traded::

    zipline run -f algorithms/kalman_residual_momentum.py -b factorarb-csv \\
        -s 2015-01-02 -e 2024-12-31 -o out.pickle

On the sample bundle, its 20 stocks against the five MSCI factor ETFs
(from 2015, the ETFs start in 2014)::

    FACTORARB_PARAMS='{"universe": "stocks",
                       "factors": ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"]}' \\
    zipline run -f algorithms/kalman_residual_momentum.py -b factorarb-sample \\
        -s 2015-06-01 -e 2022-12-28 -o out.pickle

Timing: the pipeline value of session D uses closes up to D-1; orders placed
on D are filled by zipline's daily simulation at the close of D+1.

Records ``n_holdings``, ``gross_exposure``, ``net_exposure``, ``n_long``
and ``n_short`` every session.
"""

from zipline.api import (
    attach_pipeline,
    get_open_orders,
    order_target_percent,
    pipeline_output,
    record,
    set_commission,
    set_slippage,
    symbol,
)
from zipline.finance import commission, slippage
from zipline.pipeline import Pipeline
from zipline.pipeline.filters import StaticAssets

from zipline_factorarb.algo import algorithm_params, forbid_trading_indexes, set_benchmark_from
from zipline_factorarb.pipeline.classifiers import IsETF, IsStock
from zipline_factorarb.pipeline.kalman import KalmanInnovation

SECTOR_ETFS = ["XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY"]

PARAMS = algorithm_params(
    {
        # traded assets: a list of symbols, or "stocks" / "etfs" (every such asset)
        "universe": SECTOR_ETFS,
        # "pca" (k components of the universe's returns) or a list of factor symbols
        "factors": "pca",
        "k": 3,
        "window_length": 252,  # daily returns in the filter window
        "state_noise": 1e-5,  # delta: variance of the daily beta random-walk step
        "obs_noise": 1e-4,  # v_e: observation noise variance
        "p0": 1.0,  # prior variance of each beta
        "log_returns": True,
        "signal": "innovation",  # or "standardized_innovation" (e / sqrt(Q))
        "cut": 0.1,  # fraction of the ranked universe per side (at least one name)
        "mean_reversion": False,  # True: long the lowest innovations, short the highest
        "gross_exposure": 1.0,  # long + short, as a fraction of the portfolio value
        "cost_bps": 2.0,  # per side, on the traded notional
        "benchmarks": ["SPY", "SP500"],  # first one found in the bundle
    }
)


def _universe_filter(universe):
    if universe == "stocks":
        return IsStock()
    if universe == "etfs":
        return IsETF()
    if isinstance(universe, str) or not universe:
        raise ValueError(
            f"universe must be a list of symbols, 'stocks' or 'etfs'; got {universe!r}"
        )
    return StaticAssets([symbol(s) for s in universe])


def make_pipeline():
    universe = _universe_filter(PARAMS["universe"])
    factors = PARAMS["factors"]
    if not isinstance(factors, str):
        factors = [symbol(s) for s in factors]
    if PARAMS["signal"] not in ("innovation", "standardized_innovation"):
        raise ValueError(f"signal must be 'innovation' or 'standardized_innovation', "
                         f"got {PARAMS['signal']!r}")
    kalman = KalmanInnovation(
        factors=factors,
        k=PARAMS["k"] if factors == "pca" else None,
        window_length=PARAMS["window_length"],
        state_noise=PARAMS["state_noise"],
        obs_noise=PARAMS["obs_noise"],
        p0=PARAMS["p0"],
        log_returns=PARAMS["log_returns"],
        mask=universe,
    )
    signal = getattr(kalman, PARAMS["signal"])
    return Pipeline({"signal": signal}, screen=universe & signal.notnull())


def initialize(context):
    if not 0.0 < PARAMS["cut"] <= 0.5:
        raise ValueError(f"cut must be in (0, 0.5], got {PARAMS['cut']!r}")
    set_benchmark_from(PARAMS["benchmarks"])
    context.indexes = forbid_trading_indexes()
    set_commission(commission.PerDollar(cost=PARAMS["cost_bps"] / 1e4))
    set_slippage(slippage.FixedSlippage(spread=0.0))
    attach_pipeline(make_pipeline(), "kalman")


def handle_data(context, data):
    # every daily bar, half days included (in daily mode zipline skips
    # scheduled functions with time rules on early-close sessions)
    rebalance(context, data)
    record_book(context, data)


def target_weights(signal, cut, gross, mean_reversion=False):
    """Equal-weight, dollar-neutral weights from one session's signal (Series)."""
    ranked = signal.dropna().sort_values()
    n = len(ranked)
    per_side = max(1, int(cut * n + 1e-9))
    if n < 2 * per_side:
        return {}
    low, high = ranked.index[:per_side], ranked.index[-per_side:]
    longs, shorts = (low, high) if mean_reversion else (high, low)
    weight = gross / 2.0 / per_side
    targets = {asset: weight for asset in longs}
    targets.update({asset: -weight for asset in shorts})
    return targets


def rebalance(context, data):
    out = pipeline_output("kalman")
    targets = target_weights(out["signal"], PARAMS["cut"], PARAMS["gross_exposure"],
                             PARAMS["mean_reversion"])
    for asset, weight in targets.items():
        if data.can_trade(asset) and not get_open_orders(asset):
            order_target_percent(asset, weight)
    for asset in context.portfolio.positions:
        if asset not in targets and data.can_trade(asset) and not get_open_orders(asset):
            order_target_percent(asset, 0.0)


def record_book(context, data):
    positions = context.portfolio.positions
    value = context.portfolio.portfolio_value
    exposures = [p.amount * p.last_sale_price / value for p in positions.values()]
    record(
        n_holdings=len(positions),
        n_long=sum(1 for x in exposures if x > 0),
        n_short=sum(1 for x in exposures if x < 0),
        gross_exposure=sum(abs(x) for x in exposures),
        net_exposure=sum(exposures),
    )
