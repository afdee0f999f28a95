"""Small helpers for algorithm files run with ``zipline run -f``.

Parameter convention (used by our algorithms and by sweeps): an algorithm
declares its tunable parameters once, as a dict of defaults passed to
:func:`algorithm_params` at module level. Overrides come from the
``FACTORARB_PARAMS`` environment variable as a JSON object, so the same file
runs unchanged under ``zipline run`` and in a parameter sweep::

    FACTORARB_PARAMS='{"n_long": 8}' zipline run -f algorithms/sector_momentum.py ...
"""

from __future__ import annotations

import json
import logging
import os

from . import records
from .checks import check_choice

# zipline's pipeline sampling frequency of each rebalance period (re-exported)
from .pipeline.sampling import SAMPLING_FREQUENCIES

PARAMS_ENV = "FACTORARB_PARAMS"

#: the SPDR Select Sector ETFs of our sample data: the default universe of the ETF
#: algorithms (``universe_filter(SECTOR_ETFS)``)
SECTOR_ETFS = ["XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY"]

log = logging.getLogger(__name__)


def algorithm_params(defaults, environ=None):
    """Defaults updated with the JSON object in ``$FACTORARB_PARAMS``.

    Unknown names and values of the wrong type raise ``ValueError`` naming
    the parameter, so a typo in a sweep fails the run instead of silently
    running the defaults.
    """
    environ = os.environ if environ is None else environ
    params = dict(defaults)
    raw = environ.get(PARAMS_ENV, "").strip()
    if not raw:
        return params
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{PARAMS_ENV} is not valid JSON: {exc}") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"{PARAMS_ENV} must be a JSON object, got {type(overrides).__name__}")
    for name, value in overrides.items():
        if name not in params:
            raise ValueError(
                f"{PARAMS_ENV}: unknown parameter {name!r}; this algorithm takes "
                f"{sorted(params)}"
            )
        default = params[name]
        if isinstance(default, bool) != isinstance(value, bool) or (
            isinstance(default, (int, float)) and not isinstance(value, (int, float))
        ):
            raise ValueError(
                f"{PARAMS_ENV}: parameter {name!r} expects {type(default).__name__}, "
                f"got {value!r}"
            )
        params[name] = value
    return params


def _algo():
    from zipline.utils.algo_instance import get_algo_instance

    algo = get_algo_instance()
    if algo is None:
        raise RuntimeError("call this from an algorithm's initialize or handle_data")
    return algo


def set_benchmark_from(candidates):
    """Set the first symbol of ``candidates`` found in the bundle as benchmark.

    Returns the asset, or raises ``LookupError`` naming the symbols tried.
    """
    from zipline.api import set_benchmark, symbol
    from zipline.errors import SymbolNotFound

    for name in candidates:
        try:
            asset = symbol(name)
        except SymbolNotFound:
            continue
        set_benchmark(asset)
        return asset
    raise LookupError(f"none of the benchmark symbols {list(candidates)} is in this bundle")


def assets_of_type(asset_type):
    """Assets of the running algorithm's bundle with the given asset type."""
    from .data.sectors import ASSET_TYPE_CODES
    from .pipeline.classifiers import _encode_asset_type, supplementary_codes

    finder = _algo().asset_finder
    codes = supplementary_codes(finder, "asset_type", _encode_asset_type)
    sids = [int(s) for s in range(len(codes)) if codes[s] == ASSET_TYPE_CODES[asset_type]]
    return finder.retrieve_all(sids)


def stocks_with_sector():
    """Stocks of the running algorithm's bundle that have a known GICS sector."""
    from .data.sectors import UNKNOWN_SECTOR
    from .pipeline.classifiers import _encode_sector, supplementary_codes

    codes = supplementary_codes(_algo().asset_finder, "sector", _encode_sector)
    return [a for a in assets_of_type("stock")
            if a.sid < len(codes) and codes[a.sid] != UNKNOWN_SECTOR]


def universe_filter(universe):
    """The pipeline filter of an algorithm's ``universe`` parameter.

    Parameters
    ----------
    universe : list of str, "stocks" or "etfs"
        Symbols (a ``StaticAssets`` filter), or every stock / every ETF of the bundle
        (``IsStock()`` / ``IsETF()``).
    """
    from .pipeline.classifiers import IsETF, IsStock

    if universe == "stocks":
        return IsStock()
    if universe == "etfs":
        return IsETF()
    if isinstance(universe, str) or not universe:
        raise ValueError(
            f"universe must be a list of symbols, 'stocks' or 'etfs'; got {universe!r}"
        )
    from zipline.api import symbol
    from zipline.pipeline.filters import StaticAssets

    return StaticAssets([symbol(s) for s in universe])


def calibrated_risk_aversion(target_tev, risk_model, benchmark_weights, fallback,
                             on_failure="hold", **kwargs):
    """Risk aversion whose mean-variance portfolio has the ex-ante tracking error
    ``target_tev`` (:func:`~zipline_factorarb.optimize.calibrate_risk_aversion`), or
    ``fallback`` when it cannot be calibrated this time (target out of reach, a failed
    solve), logged, unless ``on_failure`` is ``"raise"``.

    ``kwargs`` go to ``calibrate_risk_aversion`` (``expected_factor_returns``,
    ``constraints``, ...).
    """
    from .optimize import OptimizationError, calibrate_risk_aversion

    try:
        return calibrate_risk_aversion(target_tev, risk_model, benchmark_weights,
                                       **kwargs).risk_aversion
    except (ValueError, OptimizationError) as exc:
        if on_failure == "raise":
            raise
        try:
            day = f"{_algo().get_datetime().date()}: "
        except RuntimeError:
            day = ""
        log.warning("%srisk aversion not calibrated (%s); using risk_aversion=%s",
                    day, str(exc).splitlines()[0], fallback)
        return fallback


def forbid_trading_indexes():
    """Put every ``index`` asset on zipline's do-not-order list."""
    from zipline.api import set_do_not_order_list

    indexes = assets_of_type("index")
    if indexes:
        set_do_not_order_list(indexes)
    return indexes


def initialize_trading(context, benchmark_symbols, commission=None, slippage=None,
                       require_benchmark=False):
    """The start of every algorithm's ``initialize``: benchmark, no index trading, costs.

    Sets ``context.benchmark`` (:func:`set_benchmark_from`; None, to run with
    ``--no-benchmark``, when the bundle has none of ``benchmark_symbols``, unless
    ``require_benchmark``: then the ``LookupError`` raises) and ``context.indexes``
    (:func:`forbid_trading_indexes`), and the zipline ``commission`` and ``slippage``
    models given (:func:`per_share_costs`, :func:`per_dollar_costs`, ``CostModel``).
    """
    from zipline.api import set_commission, set_slippage

    try:
        context.benchmark = set_benchmark_from(benchmark_symbols)
    except LookupError:
        if require_benchmark:
            raise
        context.benchmark = None
    context.indexes = forbid_trading_indexes()
    if commission is not None:
        set_commission(commission)
    if slippage is not None:
        set_slippage(slippage)


def per_share_costs(commission_per_share, slippage_bps, min_trade_cost=1.0):
    """zipline's ``PerShare`` commission and ``FixedBasisPointsSlippage`` (no volume
    limit), as the keyword arguments of :func:`initialize_trading`."""
    from zipline.finance import commission, slippage

    return {"commission": commission.PerShare(cost=commission_per_share,
                                              min_trade_cost=min_trade_cost),
            "slippage": slippage.FixedBasisPointsSlippage(basis_points=slippage_bps,
                                                          volume_limit=1.0)}


def per_dollar_costs(cost_bps):
    """A ``PerDollar`` commission of ``cost_bps`` basis points of the traded notional and
    no slippage, as the keyword arguments of :func:`initialize_trading`."""
    from zipline.finance import commission, slippage

    return {"commission": commission.PerDollar(cost=cost_bps / 1e4),
            "slippage": slippage.FixedSlippage(spread=0.0)}


def algorithm_risk_model(params, mask, factor_symbols=None, market_symbols=None, **kwargs):
    """:func:`~zipline_factorarb.pipeline.factor_risk_model_for_algorithm` from an
    algorithm's ``params``: ``factor_source`` (default "auto"), ``factor_symbols`` and
    ``market_symbols`` (unless given), ``window``, ``halflife`` (if any), estimated on
    the first session of each ``rebalance`` period. ``mask``: the universe; ``kwargs``
    go through (``method``, ``lam``, ...). Logs the symbols left out; returns
    ``(risk, info)``."""
    from .pipeline import factor_risk_model_for_algorithm

    if "halflife" in params:
        kwargs["halflife"] = params["halflife"]
    risk, info = factor_risk_model_for_algorithm(
        params.get("factor_source", "auto"),
        params["factor_symbols"] if factor_symbols is None else factor_symbols,
        params["market_symbols"] if market_symbols is None else market_symbols,
        window_length=params["window"], mask=mask,
        frequency=SAMPLING_FREQUENCIES[params["rebalance"]], **kwargs)
    for name, reason in info["left_out"].items():
        log.info("factor or market symbol %s not used: %s", name, reason)
    return risk, info


def check_tev_params(params):
    """The checks of the parameters the TEV algorithms share (``rebalance``,
    ``objective``, ``tev_budget``); ``ValueError`` naming the parameter."""
    if params["rebalance"] not in ("day", "week", "month"):
        raise ValueError("rebalance must be one of ['day', 'week', 'month'], "
                         f"got {params['rebalance']!r}")
    objectives = ("tev_budget", "risk_aversion")
    if params["objective"] not in objectives:
        raise ValueError(f"objective must be one of {objectives}, got {params['objective']!r}")
    if not 0 < params["tev_budget"] < 1:
        raise ValueError(f"tev_budget is annualised (0.06 for 6%), got {params['tev_budget']!r}")


def tev_objective(params, expected_factor_returns, model, benchmark, constraints):
    """The factor-tilt objective of the TEV algorithms, in the form ``params["objective"]``.

    ``"tev_budget"``: ``MaximizeFactorTilt`` under ``TrackingError(params["tev_budget"])``
    (added after ``constraints``); ``"risk_aversion"``: ``MeanVariance`` with
    ``params["risk_aversion"]``, calibrated to ``tev_budget`` first with
    ``params["calibrate"]`` (:func:`calibrated_risk_aversion`, ``params["on_failure"]``).
    Returns ``(objective, constraints, extra)``, ``extra`` the values to record
    (``risk_aversion`` in the second form).
    """
    from .optimize import MaximizeFactorTilt, MeanVariance, TrackingError

    mu_f = expected_factor_returns
    if params["objective"] == "tev_budget":
        return (MaximizeFactorTilt(mu_f, model, benchmark),
                [*constraints, TrackingError(params["tev_budget"], model, benchmark)], {})
    gamma = params["risk_aversion"]
    if params["calibrate"]:
        gamma = calibrated_risk_aversion(params["tev_budget"], model, benchmark, gamma,
                                         params["on_failure"], expected_factor_returns=mu_f,
                                         constraints=constraints)
    return (MeanVariance(expected_factor_returns=mu_f, risk_model=model, risk_aversion=gamma,
                         benchmark_weights=benchmark),
            list(constraints), {"risk_aversion": gamma})


def attach_tev_pipelines(context, name, params, universe, market_caps=True, **symbols):
    """Attach the two pipelines of a TEV algorithm, from its ``initialize``.

    ``name``: per asset of ``universe``, the risk model's columns
    (:func:`algorithm_risk_model` of ``params``; ``symbols`` may replace its
    ``factor_symbols`` / ``market_symbols``), ``sector``, the 63-session
    ``dollar_volume``, the latest ``volume`` and, with ``market_caps``, the market caps
    where the bundle stores them; ``name + "_moments"``: the one-row factor moments.
    Sets ``context.risk``, ``context.factor_info`` (the model's ``info``) and a
    ``context.benchmark_tracker`` (``BenchmarkTracker``).
    """
    from zipline.api import attach_pipeline
    from zipline.pipeline import Pipeline
    from zipline.pipeline.data import EquityPricing
    from zipline.pipeline.factors import AverageDollarVolume

    from .optimize import BenchmarkTracker
    from .pipeline import Sector, market_cap_columns

    context.risk, context.factor_info = algorithm_risk_model(params, universe, **symbols)
    columns = context.risk.pipeline_columns(moments=False, into={
        "sector": Sector(),
        "dollar_volume": AverageDollarVolume(window_length=63, mask=universe),
        "volume": EquityPricing.volume.latest,
        **(market_cap_columns() if market_caps else {}),
    })
    attach_pipeline(Pipeline(columns, screen=universe), name)
    attach_pipeline(context.risk.moments_pipeline(), name + "_moments")
    context.benchmark_tracker = BenchmarkTracker()


def rebalance_and_track(context, data, period, rebalance):
    """``rebalance(context, data)`` on the first session of each ``period``
    (:func:`first_session_of`), then record the session's ``tracked_benchmark_return``:
    the total return of the benchmark weights of the last rebalance, held until the
    next (``context.benchmark_tracker``). The ``handle_data`` of the TEV algorithms."""
    if first_session_of(context, period):
        rebalance(context, data)
    context.benchmark_tracker.record(data)


def tev_inputs(context, data, name, include_alpha, keep=None):
    """A TEV algorithm's inputs at a rebalance, from :func:`attach_tev_pipelines`.

    Returns ``(out, model, expected_factor_returns)``: the rows of pipeline ``name``
    for the assets that can trade (and ``keep``, which need not) and have a risk-model
    estimate, their ``RiskModel`` and the expected factor returns (with the
    intercepts when ``include_alpha``); or None, logged, when fewer than two assets
    remain.
    """
    from zipline.api import pipeline_output

    from .bars import bar_snapshot

    out = pipeline_output(name)
    if len(out):  # tradability of the whole book in one block read
        tradable = bar_snapshot(data, out.index).tradable.reindex(out.index).to_numpy(bool)
        out = out[tradable | (out.index == keep if keep is not None else False)]
    if len(out):
        out = out.loc[context.risk.loadings(out).index]
    if len(out) < 2:
        log.info("%s: fewer than two assets with a risk-model estimate; not rebalancing",
                 _algo().get_datetime().date())
        return None
    moments = pipeline_output(name + "_moments")
    return (out, context.risk.risk_model(out, moments=moments),
            context.risk.expected_factor_returns(moments, include_alpha=include_alpha))


def book_exposures(portfolio):
    """Holdings and exposures of a zipline portfolio, as fractions of its value.

    Returns a dict with ``n_holdings``, ``n_long``, ``n_short``,
    ``gross_exposure`` and ``net_exposure``: the names the crisis report and
    the sweeps read when an algorithm passes them to ``record``. Weights are
    :func:`zipline_factorarb.bars.portfolio_weights` (positions only); a book
    without positive value has NaN exposures.
    """
    from .bars import portfolio_weights

    value = float(portfolio.portfolio_value)
    if value > 0:
        exposures = list(portfolio_weights(portfolio).to_numpy())
    else:
        exposures = [float("nan")] * len(portfolio.positions)
    return {
        records.N_HOLDINGS: len(exposures),
        records.N_LONG: sum(1 for x in exposures if x > 0),
        records.N_SHORT: sum(1 for x in exposures if x < 0),
        records.GROSS_EXPOSURE: float(sum(abs(x) for x in exposures)),
        records.NET_EXPOSURE: float(sum(exposures)),
    }


#: what :func:`first_session_of` accepts, and the key of a session's period
_PERIODS = {
    "day": lambda d: (d.year, d.month, d.day),
    "week": lambda d: tuple(d.isocalendar())[:2],
    "month": lambda d: (d.year, d.month),
    "quarter": lambda d: (d.year, (d.month - 1) // 3),
}


def first_session_of(context, period, today=None, name="rebalance"):
    """True on the first session of each ``period`` a call sees, else False.

    For ``handle_data``: the rebalancing calendar of ``date_rules.every_day()``
    (``period='day'``), ``week_start()`` (``'week'``, ISO weeks) and
    ``month_start()`` (``'month'``; also ``'quarter'``) without
    ``schedule_function``. In daily mode zipline 3 runs no scheduled function
    with a time rule on some early-close sessions (2018-07-03, for one), which
    silently drops a rebalance or a day of records; ``handle_data`` runs on
    every bar. State lives on ``context`` under ``_first_session_<name>``, so
    several calendars can coexist under different names.

    Parameters
    ----------
    context : zipline algorithm context
    period : {'day', 'week', 'month', 'quarter'}
    today : datetime-like, optional
        The session (default: ``zipline.api.get_datetime()``).
    name : str
        Which calendar, when an algorithm keeps several.
    """
    key_of = _PERIODS[check_choice("period", period, tuple(_PERIODS))]
    if today is None:
        from zipline.api import get_datetime

        today = get_datetime()
    key = key_of(today)
    attr = f"_first_session_{name}"
    if getattr(context, attr, None) == key:
        return False
    setattr(context, attr, key)
    return True


def order_target_book(context, data, targets):
    """Move the portfolio to ``targets`` (asset -> fraction of the portfolio value).

    Every target is reached as ``order_target_percent`` would, and every held
    asset not among the targets is closed; an asset that cannot trade today is
    left for a later session, and one with open orders is ordered by the
    remaining difference. Prices and tradability of the whole book are read once
    (see :func:`zipline_factorarb.optimize.order_target_weights`). The rebalance
    step of our long/short algorithms::

        order_target_book(context, data, {asset_a: 0.5, asset_b: -0.5})
    """
    import pandas as pd

    from .optimize.orders import order_target_weights

    return order_target_weights(pd.Series(targets, dtype=float), data, context=context)


def _day(value, name):
    """A tz-naive midnight Timestamp of a date, a Timestamp or ``YYYY-MM-DD`` text."""
    import datetime
    import re

    import pandas as pd

    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", value.strip()):
        try:
            value = pd.Timestamp(value.strip())
        except ValueError as exc:
            raise ValueError(f"{name}: {value!r} is not a valid date ({exc})") from None
    if not isinstance(value, datetime.date):
        raise ValueError(f"{name}: {value!r} is not a date; write YYYY-MM-DD, e.g. 2015-01-02")
    day = pd.Timestamp(value)
    return (day.tz_convert("UTC").tz_localize(None) if day.tzinfo else day).normalize()


def training_history(data, assets, train_start, train_end, fields="price"):
    """The training window's daily history, read inside a running backtest.

    Call it from ``before_trading_start`` or a scheduled function on or after
    the fold's first test session (e.g. to fit PCA loadings once). It asks
    zipline's data portal for the bars from ``train_start`` up to the current
    session and keeps those up to ``train_end``; zipline never serves bars
    after the current simulation time, so this cannot read the future.

    Parameters
    ----------
    data : zipline.protocol.BarData
        The ``data`` object passed to the algorithm's functions.
    assets : Asset or list of Asset
    train_start, train_end : date-like
        The fold's training window (the parameters a sweep sets).
    fields : str or list of str
        As in ``data.history``.

    Returns
    -------
    pandas.Series or DataFrame
        As ``data.history`` returns, indexed by the training sessions.

    Raises
    ------
    ValueError
        When the training window does not end before the current session
        (calling it during training would be look-ahead).
    """
    import pandas as pd
    from zipline.api import get_datetime

    calendar = _algo().trading_calendar
    train_start, train_end = _day(train_start, "train_start"), _day(train_end, "train_end")
    now = _day(get_datetime(), "current session")
    if train_end >= now:
        raise ValueError(
            f"training_history: training ends {train_end.date()}, not before the current "
            f"session {now.date()}; call it during the fold's test window"
        )
    bar_count = len(calendar.sessions_in_range(train_start, now))
    frame = data.history(assets, fields, bar_count, "1d")
    index = pd.DatetimeIndex(frame.index)
    days = index.tz_convert("UTC").tz_localize(None).normalize() if index.tz is not None \
        else index.normalize()
    keep = (days >= train_start) & (days <= train_end)
    return frame.loc[keep]


#: settings of :func:`newer_rebalance_weights` (``StudyConfig`` of the Kalman study has them)
NEWER_BOOK_SETTINGS = ("mean_reversion", "long_q", "short_q", "vol_halflife", "mom_lookback",
                       "z_clip", "beta_window", "min_beta_obs")


def newer_rebalance_weights(residuals, returns, market, mean_reversion=False, long_q=0.7,
                            short_q=0.3, vol_halflife=20, mom_lookback=20, z_clip=5.0,
                            beta_window=60, min_beta_obs=10):
    """The Kalman study's newer book: weights for the last row of a history, if it rebalances.

    Parameters
    ----------
    residuals : pandas.DataFrame
        The residuals of the traded names from the first test day through
        the rebalance day (last row).
    returns : pandas.DataFrame
        Their daily log returns over the same days.
    market : pandas.Series
        The market's (SPY's) daily log returns over the same days.
    mean_reversion, long_q, short_q, vol_halflife, mom_lookback, z_clip, beta_window, \
min_beta_obs
        The settings of the same names of
        :class:`~zipline_factorarb.research.kalman_study.StudyConfig` (its defaults).

    Returns
    -------
    pandas.Series or None
        Weights (gross 1) for the last day, or None where the rule holds
        nothing (no score, or an empty leg). The caller decides which days
        rebalance (the newer backtester: Fridays that are sessions).

    Notes
    -----
    The score is the residual over its EWMA volatility (``adjust=False``,
    half-life ``vol_halflife``, floored at 1e-8, clipped at ``z_clip``);
    momentum uses its ``mom_lookback``-day change. Ranks ``>= long_q`` are
    long and ``<= short_q`` short (mean reversion: the reverse), equal weight
    per leg. Betas to the market come from the ``beta_window`` returns
    strictly before the day (at least ``min_beta_obs``); with three or more
    names held the weights are projected to dollar and beta neutrality, then
    scaled to gross 1.
    """
    import numpy as np
    import pandas as pd

    from .kernels.study import project_out_constraints

    X = residuals
    vol = X.ewm(halflife=vol_halflife, adjust=False).std().clip(lower=1e-8)
    Z = (X / vol).replace([np.inf, -np.inf], np.nan).clip(-z_clip, z_clip)
    score = Z if mean_reversion else Z.diff(mom_lookback)
    s = score.iloc[-1].dropna()
    if s.empty:
        return None
    ranks = s.rank(pct=True)
    high, low = ranks[ranks >= long_q].index, ranks[ranks <= short_q].index
    longs, shorts = (low, high) if mean_reversion else (high, low)
    if len(longs) == 0 or len(shorts) == 0:
        return None
    names = list(X.columns)
    w = pd.Series(0.0, index=names)
    w[longs] = 1.0 / len(longs)
    w[shorts] = -1.0 / len(shorts)
    idx = len(X) - 1
    start = max(0, idx - beta_window)
    if idx - start >= min_beta_obs:
        win_r, win_m = returns.iloc[start:idx], market.iloc[start:idx]
        var_m = win_m.var()
        if var_m > 0:
            betas = (win_r.apply(lambda c: c.cov(win_m)) / var_m).reindex(names)
            betas = betas.fillna(0.0).to_numpy()
            active = w.to_numpy() != 0.0
            if active.sum() >= 3:
                values = np.zeros(len(w))
                values[active] = project_out_constraints(w.to_numpy()[active], betas[active])
                w = pd.Series(values, index=names)
    gross = w.abs().sum()
    return w / gross if gross > 0 else None
