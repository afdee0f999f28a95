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

# re-exported: zipline's pipeline sampling frequency of each rebalance period, defined in
# the pipeline layer so pipeline modules need not import this one
from .pipeline.sampling import SAMPLING_FREQUENCIES  # noqa: F401

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
