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
import os

PARAMS_ENV = "FACTORARB_PARAMS"


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
    the sweeps read when an algorithm passes them to ``record``.
    """
    value = portfolio.portfolio_value
    exposures = [p.amount * p.last_sale_price / value for p in portfolio.positions.values()]
    return {
        "n_holdings": len(exposures),
        "n_long": sum(1 for x in exposures if x > 0),
        "n_short": sum(1 for x in exposures if x < 0),
        "gross_exposure": float(sum(abs(x) for x in exposures)),
        "net_exposure": float(sum(exposures)),
    }


#: what :func:`first_session_of` accepts, and the key of a session's period
_PERIODS = {
    "day": lambda d: (d.year, d.month, d.day),
    "week": lambda d: tuple(d.isocalendar())[:2],
    "month": lambda d: (d.year, d.month),
    "quarter": lambda d: (d.year, (d.month - 1) // 3),
}


#: zipline's pipeline sampling frequency of each rebalance period (``Term.downsample``
#: and ``FactorRiskModel(frequency=...)``): a term read only on rebalance sessions
#: needs computing only there
SAMPLING_FREQUENCIES = {"day": None, "week": "week_start", "month": "month_start",
                        "quarter": "quarter_start"}


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
    try:
        key_of = _PERIODS[period]
    except (KeyError, TypeError):
        raise ValueError(
            f"period must be one of {sorted(_PERIODS)}; got {period!r}") from None
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
