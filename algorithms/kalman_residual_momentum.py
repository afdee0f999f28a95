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
on D are filled by zipline's daily simulation at the close of D+1, so the
first return the position earns is that of D+2 (three sessions after the
last return in the signal). With ``factors="fixed_pca"`` or
``"rolling_pca"``, ``signal_close="current"`` includes the close of D in
the signal (two sessions); the study trades at the signal's close (one
session), which zipline's daily simulation cannot do.

The study's own settings (see docs/research.md, "The Kalman study as its
code runs it", and :mod:`zipline_factorarb.research.kalman_study`)::

    FACTORARB_PARAMS='{"universe": ["SPY", "XLB", "XLE", "XLF", "XLI", "XLK",
                                    "XLP", "XLU", "XLV", "XLY"],
                       "factors": "fixed_pca", "signal": "kalman",
                       "filter_state": "carried", "centre": true,
                       "state_noise": 0.01, "obs_noise": 0.0001,
                       "rule": "percentile", "signal_close": "current",
                       "train_start": "2012-01-03", "train_end": "2015-01-02"}' \\
    zipline run -f algorithms/kalman_residual_momentum.py -b factorarb-csv \\
        -s 2015-01-05 -e 2015-12-31 -o fold1.pickle

(the study's first fold; ``train_start`` is the close before its first
training return). ``rule="percentile"``: long rank > 0.9, short rank < 0.1,
which with ten names is 100% long the top name; ``book="weekly_beta_neutral"``
is the study's newer backtester.

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
- ``factors="rolling_pca"``: the study's rolling PCA exactly: the residual
  of the latest day against the PCA of the ``window_length`` days before it
  (the day itself left out of the fit), from ``data.history``.

Portfolio rules (``rule``): ``"cut"`` (default) the top and bottom ``cut``
fraction, half the gross each side; ``"count"`` the ``n_long`` highest and
``n_short`` lowest; ``"percentile"`` the study's rule, long rank > ``upper``
and short rank < ``lower``. ``"count"`` and ``"percentile"`` give each name
held ``gross_exposure / (names held)``, as the study. Ranks run over the
``trade`` symbols (default: the universe).

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
    symbol,
)
from zipline.pipeline import Pipeline

from zipline_factorarb.algo import (
    SECTOR_ETFS,
    algorithm_params,
    book_exposures,
    initialize_trading,
    newer_rebalance_weights,
    order_target_book,
    per_dollar_costs,
    training_history,
    universe_filter,
)
from zipline_factorarb.kernels import (
    CarriedFilter,
    count_rule_weights,
    daily_returns,
    percentile_rule_weights,
    rolling_pca_residuals,
)
from zipline_factorarb.pipeline import (
    KalmanInnovation,
    PCAResidual,
    fit_fixed_pca,
    fixed_pca_residuals,
    fixed_pca_signal,
)

PARAMS = algorithm_params(
    {
        # traded assets: a list of symbols, or "stocks" / "etfs" (every such asset)
        "universe": SECTOR_ETFS,
        # "pca" (`components` principal components of the trailing window, refitted
        # every session),
        # "fixed_pca" (fitted once on [train_start, train_end]), "rolling_pca" (the
        # study's: each day against the window_length days before it, signal ignored)
        # or a list of factor symbols
        "factors": "pca",
        "components": 3,
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
        # fixed_pca + Kalman: filter R_t - mu (mu: the training mean, as the study) or R_t
        "centre": False,
        # fixed_pca / rolling_pca: "previous" (closes to the previous session, as the
        # pipeline) or "current" (the close of the session the order is placed in too)
        "signal_close": "previous",
        # "cut" (top / bottom cut fraction), "count" (n_long / n_short names) or
        # "percentile" (rank > upper long, rank < lower short: the study's rule)
        "rule": "cut",
        "cut": 0.1,  # fraction of the ranked universe per side (at least one name)
        "n_long": 1,
        "n_short": 1,
        "upper": 0.9,
        "lower": 0.1,
        "trade": [],  # symbols ranked and traded (default: the universe)
        # "daily" or "weekly_beta_neutral" (the study's newer backtester: Fridays,
        # EWMA-scaled residual, ranks >= 0.7 / <= 0.3, dollar and SPY-beta neutral,
        # the book held for one session)
        "book": "daily",
        "mean_reversion": False,  # True: long the lowest innovations, short the highest
        "gross_exposure": 1.0,  # long + short, as a fraction of the portfolio value
        "cost_bps": 2.0,  # per side, on the traded notional
        "benchmarks": ["SPY", "SP500"],  # first one found in the bundle
        # training window of the fold (set by the sweep); needed by "fixed_pca"
        "train_start": "",
        "train_end": "",
    }
)


SIGNALS = ("innovation", "kalman", "standardized_innovation", "pca_residual")


RULES = ("cut", "count", "percentile")
BOOKS = ("daily", "weekly_beta_neutral")


def _check_params():
    for name, allowed in (("rule", RULES), ("book", BOOKS),
                          ("signal_close", ("previous", "current"))):
        if PARAMS[name] not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, "
                             f"got {PARAMS[name]!r}")
    if PARAMS["signal_close"] == "current" and PARAMS["factors"] not in (
            "fixed_pca", "rolling_pca"):
        raise ValueError("signal_close='current' needs factors 'fixed_pca' or 'rolling_pca' "
                         f"(the pipeline sees closes to the previous session), got "
                         f"{PARAMS['factors']!r}")
    if PARAMS["centre"] and PARAMS["factors"] != "fixed_pca":
        raise ValueError(f"centre=True needs factors='fixed_pca', got {PARAMS['factors']!r}")
    if PARAMS["factors"] == "rolling_pca" and (
            isinstance(PARAMS["universe"], str) or not PARAMS["universe"]):
        raise ValueError(f"factors='rolling_pca' needs a list of symbols as universe, "
                         f"got {PARAMS['universe']!r}")
    if PARAMS["trade"] and (isinstance(PARAMS["universe"], str)
                            or not set(PARAMS["trade"]) <= set(PARAMS["universe"])):
        raise ValueError(f"trade {PARAMS['trade']!r} must be symbols of the universe "
                         f"{PARAMS['universe']!r}")
    if PARAMS["book"] == "weekly_beta_neutral" and (
            PARAMS["factors"] not in ("fixed_pca", "rolling_pca")
            or PARAMS["benchmarks"][0] not in PARAMS["universe"]):
        raise ValueError("book='weekly_beta_neutral' needs factors 'fixed_pca' or "
                         "'rolling_pca' and the market (the first of benchmarks, "
                         f"{PARAMS['benchmarks'][0]!r}) in the universe")
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
    if PARAMS["signal"] == "pca_residual" and PARAMS["factors"] not in (
            "pca", "fixed_pca", "rolling_pca"):
        raise ValueError("signal='pca_residual' needs factors 'pca' or 'fixed_pca', "
                         f"got {PARAMS['factors']!r}")


def make_pipeline():
    """The pipeline of the ``"pca"`` and factor-asset sources (one column, ``signal``)."""
    universe = universe_filter(PARAMS["universe"])
    factors = PARAMS["factors"]
    if not isinstance(factors, str):
        factors = [symbol(s) for s in factors]
    if PARAMS["signal"] == "pca_residual":
        signal = PCAResidual(components=PARAMS["components"], window_length=PARAMS["window_length"],
                             log_returns=PARAMS["log_returns"], mask=universe)
        return Pipeline({"signal": signal}, screen=universe & signal.notnull())
    kalman = KalmanInnovation(
        factors=factors,
        components=PARAMS["components"] if factors == "pca" else None,
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
    initialize_trading(context, PARAMS["benchmarks"], require_benchmark=True,
                       **per_dollar_costs(PARAMS["cost_bps"]))
    context.fixed = None
    context.carried = None
    context.history = {"residuals": [], "days": []}
    if PARAMS["factors"] in ("fixed_pca", "rolling_pca"):
        context.assets = [symbol(s) for s in PARAMS["universe"]]
    else:
        attach_pipeline(make_pipeline(), "kalman")


def before_trading_start(context, data):
    if PARAMS["factors"] == "fixed_pca" and context.fixed is None:
        # read through zipline's data portal, restricted to the training window
        prices = training_history(data, context.assets, PARAMS["train_start"],
                                  PARAMS["train_end"], fields="close")
        context.fixed = fit_fixed_pca(prices, PARAMS["train_start"], PARAMS["train_end"],
                                      components=PARAMS["components"],
                                      log_returns=PARAMS["log_returns"])


def _closes(context, data, bars):
    """The last ``bars`` closes the signal may use (to the previous or the current close)."""
    if PARAMS["signal_close"] == "current":
        return data.history(context.assets, "close", bars, "1d")
    return data.history(context.assets, "close", bars + 1, "1d").iloc[:-1]


def returns_from_closes(closes, log_returns=True):
    """Daily log (or simple) returns between consecutive rows of ``closes`` (a DataFrame)."""
    values = daily_returns(closes.to_numpy(dtype=np.float64), log=log_returns)
    return pd.DataFrame(values, index=closes.index[1:], columns=closes.columns)


def carried_signal(context, data):
    """This session's innovations of the carried filter on the fixed-PCA factors.

    The first call runs the filter from ``train_start`` through the previous
    session (the training window, then the test days so far); later calls
    add the returns that arrived since. Returns to the previous close, or
    to the current one with ``signal_close="current"``.
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
    closes = _closes(context, data, bars)
    closes = closes[names].astype(np.float64)
    days = pd.DatetimeIndex(closes.index)
    days = days.tz_convert(None) if days.tz is not None else days
    closes = closes.loc[days.normalize() >= pd.Timestamp(PARAMS["train_start"])]
    returns = returns_from_closes(closes, PARAMS["log_returns"])
    mean = fixed.mean.to_numpy()
    scores, _ = fixed_pca_residuals(returns.to_numpy(), fixed.loadings.to_numpy(), mean)
    observed = returns.to_numpy() - mean if PARAMS["centre"] else returns.to_numpy()
    context.carried.advance(list(returns.index), observed, scores)
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
    if PARAMS["factors"] == "rolling_pca":
        window = PARAMS["window_length"]
        closes = _closes(context, data, window + 2).astype(np.float64)
        returns = returns_from_closes(closes, PARAMS["log_returns"])
        values = rolling_pca_residuals(returns.to_numpy(), window, PARAMS["components"])[-1]
        return pd.Series(values, index=closes.columns)
    if PARAMS["factors"] != "fixed_pca":
        return pipeline_output("kalman")["signal"]
    if PARAMS["filter_state"] == "carried":
        return carried_signal(context, data)
    length = 1 if PARAMS["signal"] == "pca_residual" else PARAMS["window_length"]
    closes = _closes(context, data, length + 1)
    return fixed_pca_signal(
        closes, context.fixed, PARAMS["signal"], state_noise=PARAMS["state_noise"],
        obs_noise=PARAMS["obs_noise"], p0=PARAMS["p0"], log_returns=PARAMS["log_returns"],
        min_observations=max(1, length // 4), centre=PARAMS["centre"],
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


def rule_weights(signal):
    """Target weights (asset -> fraction) of one session's signal under ``PARAMS["rule"]``."""
    signal = signal.dropna()
    if PARAMS["rule"] == "cut":
        return target_weights(signal, PARAMS["cut"], PARAMS["gross_exposure"],
                              PARAMS["mean_reversion"])
    if signal.empty:
        return {}
    row = signal.to_numpy()[None, :]
    if PARAMS["rule"] == "count":
        if len(signal) < PARAMS["n_long"] + PARAMS["n_short"]:
            return {}
        w = count_rule_weights(row, PARAMS["n_long"], PARAMS["n_short"],
                               PARAMS["mean_reversion"])[0]
    else:
        w = percentile_rule_weights(row, PARAMS["upper"], PARAMS["lower"],
                                    PARAMS["mean_reversion"])[0]
    gross = PARAMS["gross_exposure"]
    return {asset: gross * x for asset, x in zip(signal.index, w) if x != 0.0}


def _traded(signal):
    if not PARAMS["trade"]:
        return signal
    keep = [a for a in signal.index if getattr(a, "symbol", a) in set(PARAMS["trade"])]
    return signal.loc[keep]


def weekly_targets(context, data, signal):
    """The study's newer book: weights on Fridays, flat on the other sessions.

    The residual and return history since the first session of the run is
    kept in ``context.history``; on a Friday the weights are
    :func:`~zipline_factorarb.algo.newer_rebalance_weights`
    of that history (scaled to ``gross_exposure``), on any other session the
    book is closed (the newer backtester holds its weights for one session).
    """
    traded = _traded(signal)
    market = symbol(PARAMS["benchmarks"][0])
    assets = list(dict.fromkeys([*traded.index, market]))
    closes = data.history(assets, "close", 2, "1d").astype(np.float64)
    day = pd.Timestamp(get_datetime()).tz_convert(None).normalize()
    ret = returns_from_closes(closes, True).iloc[-1]
    hist = context.history
    hist["days"].append(day)
    hist["residuals"].append((traded, ret))
    if day.dayofweek != 4:
        return {}
    names = list(traded.index)
    residuals = pd.DataFrame([r.reindex(names) for r, _ in hist["residuals"]],
                             index=hist["days"])
    returns = pd.DataFrame([x.reindex(names) for _, x in hist["residuals"]],
                           index=hist["days"])
    market_returns = pd.Series([x[market] for _, x in hist["residuals"]], index=hist["days"])
    w = newer_rebalance_weights(residuals, returns, market_returns,
                                mean_reversion=PARAMS["mean_reversion"])
    if w is None:
        return {}
    gross = PARAMS["gross_exposure"]
    return {asset: gross * x for asset, x in w.items() if x != 0.0}


def rebalance(context, data):
    signal = current_signal(context, data)
    if PARAMS["book"] == "weekly_beta_neutral":
        targets = weekly_targets(context, data, signal)
    else:
        targets = rule_weights(_traded(signal))
    order_target_book(context, data, targets)


def record_book(context, data):
    record(**book_exposures(context.portfolio))
