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

Factor sources and signals (the three strategies of the study's table):

- ``factors="pca"`` (default), ``signal="innovation"``: Kalman innovations
  against the principal components of the trailing ``window_length`` days,
  refitted every session (:class:`~zipline_factorarb.KalmanInnovation`);
- ``factors="fixed_pca"``: loadings ``W`` and mean ``mu`` fitted once, on the
  daily log returns of the universe over the fold's training window
  ``[train_start, train_end]`` only (the sweep sets both per fold; without
  them the algorithm stops with an error), and applied unchanged to the test
  period: factor returns ``F_t = (R_t - mu) W``. With ``signal="innovation"``
  (or ``"kalman"``) the Kalman filter runs on these ``F_t`` over the trailing
  ``window_length`` days (``filter_state="carried"``: one filter from
  ``train_start``, beta0 = 0 and P0 = p0 I, its state carried from session to
  session, as the seed runs it over the full history); with
  ``signal="pca_residual"`` the signal is the static residual
  ``eps_t = R_t - (F_t W' + mu)`` of the latest day;
- ``factors="pca"``, ``signal="pca_residual"``: the residual of the latest
  day against the PCA of the trailing ``window_length`` days
  (:class:`~zipline_factorarb.pipeline.pca_residual.PCAResidual`; the study's
  rolling PCA uses 60 days and trades mean reversion).

Records ``n_holdings``, ``gross_exposure``, ``net_exposure``, ``n_long``
and ``n_short`` every session.
"""

import numpy as np
import pandas as pd
from zipline.api import (
    attach_pipeline,
    get_datetime,
    pipeline_output,
    record,
    set_commission,
    set_slippage,
    symbol,
)
from zipline.finance import commission, slippage
from zipline.pipeline import Pipeline
from zipline.pipeline.filters import StaticAssets

from zipline_factorarb.algo import (
    algorithm_params,
    book_exposures,
    forbid_trading_indexes,
    order_target_book,
    set_benchmark_from,
)
from zipline_factorarb.kernels.kalman import kalman_update
from zipline_factorarb.pipeline.classifiers import IsETF, IsStock
from zipline_factorarb.pipeline.kalman import KalmanInnovation, kalman_innovation_window
from zipline_factorarb.pipeline.pca_residual import (
    PCAResidual,
    fit_fixed_pca,
    fixed_pca_residuals,
)
from zipline_factorarb.research.walkforward import training_history

SECTOR_ETFS = ["XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY"]

PARAMS = algorithm_params(
    {
        # traded assets: a list of symbols, or "stocks" / "etfs" (every such asset)
        "universe": SECTOR_ETFS,
        # "pca" (k components of the trailing window, refitted every session),
        # "fixed_pca" (fitted once on [train_start, train_end]) or a list of factor symbols
        "factors": "pca",
        "k": 3,
        "window_length": 252,  # daily returns in the filter window
        "state_noise": 1e-5,  # delta: variance of the daily beta random-walk step
        "obs_noise": 1e-4,  # v_e: observation noise variance
        "p0": 1.0,  # prior variance of each beta
        "log_returns": True,
        # "innovation" (= "kalman"), "standardized_innovation" (e / sqrt(Q)),
        # or "pca_residual" (static PCA residual of the latest day, no filter)
        "signal": "innovation",
        # fixed_pca with a Kalman signal: "window" re-runs the filter over the trailing
        # window_length days every session; "carried" runs one filter from train_start
        # (beta0 = 0, P0 = p0 I) through the training window and on, session by session
        "filter_state": "window",
        "cut": 0.1,  # fraction of the ranked universe per side (at least one name)
        "mean_reversion": False,  # True: long the lowest innovations, short the highest
        "gross_exposure": 1.0,  # long + short, as a fraction of the portfolio value
        "cost_bps": 2.0,  # per side, on the traded notional
        "benchmarks": ["SPY", "SP500"],  # first one found in the bundle
        # training window of the fold (set by the sweep); needed by "fixed_pca"
        "train_start": "",
        "train_end": "",
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


SIGNALS = ("innovation", "kalman", "standardized_innovation", "pca_residual")


def _check_params():
    if not 0.0 < PARAMS["cut"] <= 0.5:
        raise ValueError(f"cut must be in (0, 0.5], got {PARAMS['cut']!r}")
    if PARAMS["signal"] not in SIGNALS:
        raise ValueError(f"signal must be one of {', '.join(map(repr, SIGNALS))}, "
                         f"got {PARAMS['signal']!r}")
    if PARAMS["factors"] == "fixed_pca":
        if not PARAMS["train_start"] or not PARAMS["train_end"]:
            raise ValueError(
                "factors='fixed_pca' fits its loadings on the training window: set "
                "train_start and train_end (a walk-forward sweep sets them per fold), got "
                f"train_start={PARAMS['train_start']!r}, train_end={PARAMS['train_end']!r}"
            )
        universe = PARAMS["universe"]
        if isinstance(universe, str) or not universe:
            raise ValueError(f"factors='fixed_pca' needs a list of symbols as universe, "
                             f"got {universe!r}")
        if pd.Timestamp(PARAMS["train_end"]) < pd.Timestamp(PARAMS["train_start"]):
            raise ValueError(f"train_end {PARAMS['train_end']} is before train_start "
                             f"{PARAMS['train_start']}")
    if PARAMS["filter_state"] not in ("window", "carried"):
        raise ValueError(f"filter_state must be 'window' or 'carried', got "
                         f"{PARAMS['filter_state']!r}")
    if PARAMS["filter_state"] == "carried" and (
            PARAMS["factors"] != "fixed_pca" or PARAMS["signal"] == "pca_residual"):
        raise ValueError("filter_state='carried' needs factors='fixed_pca' and a Kalman "
                         f"signal, got factors={PARAMS['factors']!r}, "
                         f"signal={PARAMS['signal']!r}")
    if PARAMS["signal"] == "pca_residual" and PARAMS["factors"] not in ("pca", "fixed_pca"):
        raise ValueError("signal='pca_residual' needs factors 'pca' or 'fixed_pca', "
                         f"got {PARAMS['factors']!r}")


def make_pipeline():
    """The pipeline of the ``"pca"`` and factor-asset sources (one column, ``signal``)."""
    universe = _universe_filter(PARAMS["universe"])
    factors = PARAMS["factors"]
    if not isinstance(factors, str):
        factors = [symbol(s) for s in factors]
    if PARAMS["signal"] == "pca_residual":
        signal = PCAResidual(k=PARAMS["k"], window_length=PARAMS["window_length"],
                             log_returns=PARAMS["log_returns"], mask=universe)
        return Pipeline({"signal": signal}, screen=universe & signal.notnull())
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
    output = "innovation" if PARAMS["signal"] == "kalman" else PARAMS["signal"]
    signal = getattr(kalman, output)
    return Pipeline({"signal": signal}, screen=universe & signal.notnull())


def initialize(context):
    _check_params()
    set_benchmark_from(PARAMS["benchmarks"])
    context.indexes = forbid_trading_indexes()
    set_commission(commission.PerDollar(cost=PARAMS["cost_bps"] / 1e4))
    set_slippage(slippage.FixedSlippage(spread=0.0))
    context.fixed = None
    context.carried = None
    if PARAMS["factors"] == "fixed_pca":
        context.assets = [symbol(s) for s in PARAMS["universe"]]
    else:
        attach_pipeline(make_pipeline(), "kalman")


def before_trading_start(context, data):
    if PARAMS["factors"] == "fixed_pca" and context.fixed is None:
        # read through zipline's data portal, restricted to the training window
        prices = training_history(data, context.assets, PARAMS["train_start"],
                                  PARAMS["train_end"], fields="close")
        context.fixed = fit_fixed_pca(prices, PARAMS["train_start"], PARAMS["train_end"],
                                      k=PARAMS["k"], log_returns=PARAMS["log_returns"])


def _returns(closes, log_returns):
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = closes / closes.shift(1)
        return (np.log(ratio) if log_returns else ratio - 1.0).iloc[1:]


def fixed_pca_signal(closes, fixed, signal="innovation", state_noise=1e-5, obs_noise=1e-4,
                     p0=1.0, log_returns=True, min_observations=1):
    """One session's signal against fixed PCA loadings, from a window of closes.

    Parameters
    ----------
    closes : pandas.DataFrame
        Adjusted closes of the universe, oldest first, ending on the last
        close the signal may use (the previous session's).
    fixed : zipline_factorarb.pipeline.pca_residual.FixedPCA
        Loadings ``W`` and mean ``mu`` fitted on the training window.
    signal : str
        ``"pca_residual"``: the residual ``eps_t = R_t - (F_t W' + mu)`` of
        the last day. ``"innovation"`` / ``"kalman"`` /
        ``"standardized_innovation"``: the Kalman filter on the factor
        returns ``F_t = (R_t - mu) W`` over the window's returns.
    state_noise, obs_noise, p0, min_observations : float, int
        The filter's settings.
    log_returns : bool
        Log or simple returns (as the loadings were fitted).

    Returns
    -------
    pandas.Series
        The signal per asset (the columns of ``closes``).
    """
    closes = closes[list(fixed.loadings.index)]
    returns = _returns(closes.astype(np.float64), log_returns)
    scores, residuals = fixed_pca_residuals(returns.to_numpy(), fixed.loadings.to_numpy(),
                                            fixed.mean.to_numpy())
    if signal == "pca_residual":
        values = residuals[-1]
    else:
        res = kalman_innovation_window(returns.to_numpy(), scores, state_noise=state_noise,
                                       obs_noise=obs_noise, p0=p0,
                                       min_observations=min_observations)
        values = (res.standardized_innovations if signal == "standardized_innovation"
                  else res.innovations)
    return pd.Series(values, index=closes.columns)


class CarriedFilter:
    """The Kalman filter's state carried from session to session.

    Starts from :math:`\beta_0 = 0, P_0 = p_0 I` and takes one
    :func:`~zipline_factorarb.kernels.kalman.kalman_update` per new daily
    return, in date order (a date already taken is skipped), so after the
    returns of days 1..t its innovations are those of the full-history filter
    (:func:`~zipline_factorarb.kernels.kalman.kalman_filter`) at day t,
    whatever the chunks the returns arrive in.
    """

    def __init__(self, n_assets, k, p0, state_noise, obs_noise):
        self.beta = np.zeros((n_assets, k))
        self.P = np.broadcast_to(p0 * np.eye(k), (n_assets, k, k)).copy()
        self.state_noise, self.obs_noise = state_noise, obs_noise
        self.last = None
        self.innovations = np.full(n_assets, np.nan)
        self.innovation_variance = np.full(n_assets, np.nan)

    def advance(self, dates, returns, factor_returns):
        """Update with the rows dated after the last one taken; returns how many."""
        taken = 0
        for day, r, f in zip(dates, returns, factor_returns):
            if self.last is not None and day <= self.last:
                continue
            step = kalman_update(self.beta, self.P, r, f, self.state_noise, self.obs_noise)
            self.beta, self.P = step.beta, step.P
            self.innovations, self.innovation_variance = step.innovations, \
                step.innovation_variance
            self.last = day
            taken += 1
        return taken


def carried_signal(context, data):
    """This session's innovations of the carried filter on the fixed-PCA factors.

    The first call runs the filter from ``train_start`` through the previous
    session (the training window, then the test days so far); later calls
    add the returns that arrived since. Returns to the previous close only,
    as in the window mode.
    """
    fixed = context.fixed
    names = list(fixed.loadings.index)
    if context.carried is None:
        calendar = context.trading_calendar
        now = pd.Timestamp(get_datetime()).tz_convert(None).normalize()
        bars = len(calendar.sessions_in_range(pd.Timestamp(PARAMS["train_start"]), now))
        context.carried = CarriedFilter(len(names), fixed.loadings.shape[1], PARAMS["p0"],
                                        PARAMS["state_noise"], PARAMS["obs_noise"])
    else:
        bars = 10  # the session just passed, with room for a gap
    closes = data.history(context.assets, "close", bars + 1, "1d").iloc[:-1]
    closes = closes[names].astype(np.float64)
    days = pd.DatetimeIndex(closes.index)
    days = days.tz_convert(None) if days.tz is not None else days
    closes = closes.loc[days.normalize() >= pd.Timestamp(PARAMS["train_start"])]
    returns = _returns(closes, PARAMS["log_returns"])
    scores, _ = fixed_pca_residuals(returns.to_numpy(), fixed.loadings.to_numpy(),
                                    fixed.mean.to_numpy())
    context.carried.advance(list(returns.index), returns.to_numpy(), scores)
    state = context.carried
    values = state.innovations
    if PARAMS["signal"] == "standardized_innovation":
        values = state.innovations / np.sqrt(state.innovation_variance)
    return pd.Series(values, index=names)


def current_signal(context, data):
    """This session's signal per asset: the pipeline's, or the fixed-PCA one.

    Both use closes up to the previous session (the current bar is left
    out of the fixed-PCA window so that the timing is the pipeline's).
    """
    if PARAMS["factors"] != "fixed_pca":
        return pipeline_output("kalman")["signal"]
    if PARAMS["filter_state"] == "carried":
        return carried_signal(context, data)
    length = 1 if PARAMS["signal"] == "pca_residual" else PARAMS["window_length"]
    closes = data.history(context.assets, "close", length + 2, "1d").iloc[:-1]
    return fixed_pca_signal(
        closes, context.fixed, PARAMS["signal"], state_noise=PARAMS["state_noise"],
        obs_noise=PARAMS["obs_noise"], p0=PARAMS["p0"], log_returns=PARAMS["log_returns"],
        min_observations=max(1, length // 4),
    )


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
    targets = target_weights(current_signal(context, data), PARAMS["cut"], PARAMS["gross_exposure"],
                             PARAMS["mean_reversion"])
    order_target_book(context, data, targets)


def record_book(context, data):
    record(**book_exposures(context.portfolio))
