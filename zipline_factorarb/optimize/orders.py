"""Order the optimal portfolio from inside a zipline algorithm.

The zipline part is a thin adapter: read the current weights from the algorithm's
portfolio and open orders, solve, and send the orders. The weights -> orders logic is
the pure function :func:`plan_orders`. ``zipline`` is imported only when
:func:`order_optimal_portfolio` runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import records
from ..checks import check_choice
from ._base import as_series
from .errors import InvalidInput, OptimizationError, UnknownAssets
from ..bars import bar_snapshot, portfolio_weights
from .problem import OptimizationResult, _universe, as_list, benchmark_of, run_optimization

__all__ = [
    "PlannedOrder",
    "OrderResult",
    "plan_orders",
    "current_portfolio_weights",
    "optimal_target",
    "OptimalTarget",
    "order_optimal_portfolio",
    "order_target_weights",
    "FAILURE_RECORD",
    "FAILURE_REASON_RECORD",
]

log = logging.getLogger(__name__)

_FAILURE_MODES = ("raise", "hold", "benchmark")

#: ``record()`` name of the failure flag: 1 when a rebalance failed, 0 when it solved
FAILURE_RECORD = records.OPTIMIZER_FAILURE
#: ``record()`` name of why it failed: ``"<reason>: <first line of the error>"`` (the
#: reason is the error's ``reason``: ``infeasible``, ``unbounded``, ``solver_error``,
#: ``inaccurate``, ``non_finite_input``, ``unknown_assets``, ``degenerate_risk``,
#: ``invalid_input``); None after a successful rebalance (zipline keeps a recorded value
#: until it is recorded again, so the pair always describes the last rebalance)
FAILURE_REASON_RECORD = records.OPTIMIZER_FAILURE_REASON


@dataclass(frozen=True)
class PlannedOrder:
    """One order of a rebalance.

    Attributes
    ----------
    asset : object
    current_weight : float
        Including the asset's open orders.
    target_weight : float
    delta : float
        ``target_weight - current_weight``.
    method : str
        ``"target_percent"`` (no open orders: ``order_target_percent(asset, target)``
        reaches the target exactly) or ``"value"`` (open orders are outstanding:
        ``order_value(asset, delta * portfolio_value)`` orders only the difference,
        because ``order_target_percent`` ignores open orders).
    """

    asset: object
    current_weight: float
    target_weight: float
    delta: float
    method: str


@dataclass
class OrderResult:
    """What :func:`order_optimal_portfolio` did.

    Attributes
    ----------
    result : OptimizationResult
    orders : list of PlannedOrder
        The orders sent (empty when holding).
    order_ids : list
        The ids zipline returned, in the same order (None for an order zipline refused).
    action : str
        ``"rebalance"``, ``"hold"`` (failure, portfolio kept) or ``"benchmark"``
        (failure, moved to the benchmark weights).
    skipped : list of PlannedOrder
        Orders not sent because ``data.can_trade(asset)`` was False.
    """

    result: object
    orders: list = field(default_factory=list)
    order_ids: list = field(default_factory=list)
    action: str = "rebalance"
    skipped: list = field(default_factory=list)

    @property
    def reason(self):
        """Why the optimisation failed (see :data:`FAILURE_REASON_RECORD`), or None."""
        return None if self.result is None else self.result.reason


def plan_orders(current_weights, target_weights, open_order_assets=(), min_weight_change=1e-6,
                prices=None, portfolio_value=None):
    """The orders that move ``current_weights`` to ``target_weights``.

    Assets held (or with open orders) but absent from the target are closed (target
    weight zero). Sells come before buys, so that cash is freed first.

    Parameters
    ----------
    current_weights : pandas.Series
        Current weights including open orders (see :func:`current_portfolio_weights`).
    target_weights : pandas.Series
        Target weights by asset.
    open_order_assets : iterable, optional
        Assets with open orders: they are ordered by value difference.
    min_weight_change : float, default 1e-6
        Changes at most this small are skipped, except that a position whose target
        is zero is always closed.
    prices : pandas.Series, optional
        Current prices by asset. With ``portfolio_value``, a change worth less than
        one share (``|delta| * portfolio_value < price``) is skipped too, unless it
        closes the position: zipline would round it to zero shares anyway, and
        without this a second call in the same bar would re-send the rounding
        remainders of the first.
    portfolio_value : float, optional

    Returns
    -------
    list of PlannedOrder
    """
    current = as_series(current_weights, "current_weights")
    target = as_series(target_weights, "target_weights")
    open_set = set(open_order_assets)
    assets = list(dict.fromkeys([*target.index, *current.index, *open_set]))
    cur = current.reindex(assets, fill_value=0.0).to_numpy()
    tgt = target.reindex(assets, fill_value=0.0).to_numpy()
    px = None
    if prices is not None and portfolio_value is not None:
        px = pd.Series(prices, dtype=float).reindex(assets).to_numpy()
    orders = []
    for i, (asset, c, t) in enumerate(zip(assets, cur, tgt)):
        delta = float(t - c)
        closing = t == 0 and (c != 0 or asset in open_set)
        if not closing and abs(delta) <= min_weight_change:
            continue
        if closing and c == 0 and asset in open_set:
            # only open orders that net to nothing: nothing to send
            continue
        if (not closing and px is not None and np.isfinite(px[i]) and px[i] > 0
                and abs(delta) * portfolio_value < px[i]):
            continue
        method = "value" if asset in open_set else "target_percent"
        orders.append(PlannedOrder(asset, float(c), float(t), delta, method))
    orders.sort(key=lambda o: (o.delta >= 0, o.delta))
    return orders


#: the weights of a zipline book (positions plus open orders): one definition, in
#: :mod:`zipline_factorarb.bars`, exported here under the optimiser's name
current_portfolio_weights = portfolio_weights


def _running_algo(context, caller):
    """``context``, else the running zipline algorithm; RuntimeError outside one."""
    from zipline.utils.algo_instance import get_algo_instance

    algo = context if context is not None else get_algo_instance()
    if algo is None:
        raise RuntimeError(f"{caller} must be called inside a running zipline algorithm")
    return algo


def _book(algo, data, assets):
    """``(open orders, bar snapshot or None, current weights)`` of the algorithm's book.

    With ``data``, one block read of prices and tradability covers ``assets``, the
    holdings and the open orders. The weights are empty when the portfolio value is not
    positive (a bankrupt book has none).
    """
    from zipline import api

    open_orders = api.get_open_orders()
    snapshot = None
    if data is not None:
        snapshot = bar_snapshot(data, [*assets, *algo.portfolio.positions, *open_orders], algo)
    pv = float(algo.portfolio.portfolio_value)
    if not (np.isfinite(pv) and pv > 0):
        return open_orders, snapshot, pd.Series(dtype=float)
    prices = None if snapshot is None else snapshot.prices
    return open_orders, snapshot, portfolio_weights(algo.portfolio, open_orders, prices)


def _place(algo, data, target, current, open_orders, min_weight_change, snapshot=None):
    """Send the orders from ``current`` to ``target`` weights; ``(plan, ids, skipped)``.

    Share amounts are what ``order_target_percent`` (no open orders) or
    ``order_value`` of the difference (open orders) would compute, from prices read
    for the whole book at once, and go to ``algo.order`` directly: zipline's
    per-asset price lookups inside those functions are the cost this avoids.
    """
    pv = float(algo.portfolio.portfolio_value)
    candidates = [*target.index, *current.index, *open_orders]
    if data is not None and (snapshot is None
                             or not pd.Index(candidates).isin(snapshot.assets).all()):
        snapshot = bar_snapshot(data, candidates, algo)
    prices = None if data is None else snapshot.prices
    plan = plan_orders(current, target, open_orders.keys(), min_weight_change,
                       prices=prices, portfolio_value=pv)
    skipped = []
    if data is not None:
        ok = snapshot.tradable
        skipped = [o for o in plan if not ok.get(o.asset, False)]
        if skipped:
            log.warning("skipping orders for %d assets that cannot trade now: %s", len(skipped),
                        ", ".join(repr(o.asset) for o in skipped[:10]))
            plan = [o for o in plan if ok.get(o.asset, False)]
    positions = algo.portfolio.positions
    ids = []
    for o in plan:
        if prices is None:  # no bar data: zipline prices each order itself
            from zipline import api

            if o.method == "target_percent":
                ids.append(api.order_target_percent(o.asset, o.target_weight))
            else:
                ids.append(api.order_value(o.asset, o.delta * pv))
            continue
        unit = float(prices[o.asset]) * float(getattr(o.asset, "price_multiplier", 1.0) or 1.0)
        if o.method == "target_percent":
            pos = positions.get(o.asset)
            amount = o.target_weight * pv / unit - (pos.amount if pos is not None else 0)
        else:
            amount = o.delta * pv / unit
        ids.append(algo.order(o.asset, amount))
    return plan, ids, skipped


def order_target_weights(target_weights, data=None, *, context=None, min_weight_change=1e-6):
    """Move the portfolio to ``target_weights`` (asset -> fraction of portfolio value).

    The order step of :func:`order_optimal_portfolio`, for weights computed any other
    way. Held assets missing from ``target_weights`` are closed; assets with open
    orders are ordered by the remaining difference; assets that cannot trade now are
    skipped (listed in the result). With ``data``, prices and tradability of the
    whole book are read once (:func:`~zipline_factorarb.bars.bar_snapshot`) and the
    share amounts equal those of ``order_target_percent``.

    Returns
    -------
    OrderResult
        ``result`` is None; ``action`` is ``"hold"`` (nothing sent, an error logged)
        when the portfolio value is not positive (a bankrupt book has no weights).
    """
    algo = _running_algo(context, "order_target_weights")
    target = as_series(target_weights, "target_weights")
    pv = float(algo.portfolio.portfolio_value)
    if not (np.isfinite(pv) and pv > 0):
        # weights of a non-positive value mean nothing: nothing can be targeted
        log.error("portfolio value is %s on %s: no target weights can be ordered; holding",
                  pv, algo.get_datetime().date())
        return OrderResult(None, [], [], "hold", [])
    open_orders, snapshot, current = _book(algo, data, target.index)
    plan, ids, skipped = _place(algo, data, target, current, open_orders, min_weight_change,
                                snapshot)
    return OrderResult(None, plan, ids, "rebalance", skipped)


@dataclass(frozen=True)
class OptimalTarget:
    """What :func:`optimal_target` decided.

    Attributes
    ----------
    weights : pandas.Series or None
        The target weights (the optimum, or the benchmark after a failure); None when
        holding.
    result : OptimizationResult
        The optimisation (status, error, diagnostics); for an input that could not be
        optimised, a result with status ``"invalid_input"`` and the error.
    action : str
        ``"rebalance"``, ``"hold"`` or ``"benchmark"``.
    """

    weights: object
    result: object
    action: str

    @property
    def reason(self):
        """Why the optimisation failed (the error's ``reason``), or None."""
        return self.result.reason


def _failure_text(result):
    first = str(result.error).splitlines()[0] if str(result.error) else ""
    text = f"{result.reason}: {first}" if first else str(result.reason)
    return text if len(text) <= 400 else text[:397] + "..."


def _record(**values):
    from zipline import api

    api.record(**values)


def optimal_target(objective, constraints=(), on_failure="raise", current_weights=None, *,
                   record_failures=False, **kwargs):
    """Solve for the target weights, or apply ``on_failure``: the one place where the
    optimiser's failures are handled.

    Every failure counts: infeasible, unbounded, solver errors, refused inaccurate
    solutions, and inputs that cannot be optimised (an
    :class:`~.errors.InvalidInput`: NaN or infinite data, assets missing from the
    risk model or loadings, a degenerate risk model, an empty universe), whether
    found when a term was created or when the problem was built.

    Parameters
    ----------
    objective, constraints, current_weights
        As in :func:`~zipline_factorarb.optimize.run_optimization`.
    on_failure : {"raise", "hold", "benchmark"}, default "raise"
        ``"raise"``: raise the error (an :class:`~.errors.OptimizationError` naming
        the term, parameter or asset at fault); ``"hold"``: no target; ``"benchmark"``:
        the benchmark weights of the first constraint or objective that has them
        (holding when those are themselves invalid).
    record_failures : bool, default False
        Inside a zipline algorithm: ``record`` :data:`FAILURE_RECORD` (1 on failure, 0
        on success) and :data:`FAILURE_REASON_RECORD` (the reason; None on success).
    **kwargs
        Passed to :func:`~zipline_factorarb.optimize.run_optimization`.

    Returns
    -------
    OptimalTarget
    """
    check_choice("on_failure", on_failure, _FAILURE_MODES)
    constraints = as_list(constraints)
    try:
        result = run_optimization(objective, constraints, current_weights, **kwargs)
    except OptimizationError as exc:
        if on_failure == "raise":
            raise
        try:
            old = as_series(current_weights, "current_weights")
        except (TypeError, ValueError):
            old = pd.Series(dtype=float)
        result = OptimizationResult.failed("invalid_input", exc, old)
    if result.success:
        if record_failures:
            _record(**{FAILURE_RECORD: 0, FAILURE_REASON_RECORD: None})
        return OptimalTarget(result.new_weights, result, "rebalance")
    return _on_failure(objective, constraints, result, on_failure, record_failures)


def _on_failure(objective, constraints, result, on_failure, record_failures):
    """Apply ``on_failure`` to a failed ``result``: raise, hold or move to the
    benchmark; log it and record the flag and the reason."""
    if on_failure == "raise":
        result.raise_for_status()
    text = _failure_text(result)
    action, target = on_failure, None
    if on_failure == "benchmark":
        target, term = benchmark_of(objective, constraints)
        if target is None:
            raise OptimizationError(
                "on_failure='benchmark' needs benchmark weights in a constraint or the "
                f"objective (e.g. TrackingError); none has them. Original error: {result.error}"
            ) from result.error
        if term._input_error is not None:
            text += f" (benchmark weights unusable: {str(term._input_error).splitlines()[0]})"
            action, target = "hold", None
    log.warning("portfolio optimisation failed (%s); %s", text,
                "holding the current portfolio" if action == "hold"
                else "moving to the benchmark weights")
    log.info("optimisation error in full: %s", result.error)
    if record_failures:
        _record(**{FAILURE_RECORD: 1, FAILURE_REASON_RECORD: text})
    return OptimalTarget(target, result, action)


def _check_assets(universe):
    """UnknownAssets for universe entries that are not zipline assets."""
    from zipline.assets import Asset

    bad = [a for a in universe if not isinstance(a, Asset)]
    if bad:
        raise UnknownAssets(
            f"{len(bad)} entries of the optimisation universe are not assets of the "
            f"bundle: {bad[:5]!r}{' ...' if len(bad) > 5 else ''}; index the alphas, "
            "weights and loadings by zipline assets (e.g. symbol('AAPL') or the "
            "pipeline output's index)", "optimisation universe", bad)


def order_optimal_portfolio(objective, constraints=(), on_failure="raise", *, context=None,
                            data=None, min_weight_change=1e-6, record_failures=True,
                            close_untracked=True, **kwargs):
    """Solve for the optimal portfolio and place the orders that reach it.

    Call from ``handle_data`` or a scheduled function of a zipline algorithm. Current
    weights are the positions' ``amount * last_sale_price / portfolio_value`` plus
    open orders (``zipline.api.get_open_orders()``); each asset then gets
    ``order_target_percent(asset, target)``, or ``order_value`` of the difference when
    it has open orders (``order_target_percent`` ignores them). Held assets that leave
    the target are closed.

    Parameters
    ----------
    objective : Objective
    constraints : sequence of Constraint
    on_failure : {"raise", "hold", "benchmark"}, default "raise"
        As in :func:`optimal_target` (``"hold"`` sends no orders), for every failure
        listed there and also assets that are not assets of the bundle and a
        non-positive portfolio value.
    context : TradingAlgorithm, optional
        The algorithm (``context`` of ``handle_data``); default: the running one.
    data : BarData, optional
        Recommended. Prices open orders without a position; orders for assets
        that ``data.can_trade`` rejects (delisted, not yet listed, no price) are
        skipped and logged instead of sent; changes worth less than one share are
        not sent (zipline would round them to nothing), so that a second call in the
        same bar sends nothing.
    min_weight_change : float, default 1e-6
        Skip smaller weight changes (see :func:`plan_orders`).
    record_failures : bool, default True
        As in :func:`optimal_target`.
    close_untracked : bool, default True
        Close held assets that neither the objective nor any constraint mentions
        (e.g. names that left the pipeline's output, which the risk model no longer
        covers) instead of optimising them. With False they join the optimisation
        universe, and every term that needs data on them must have it.
    **kwargs
        Passed to :func:`~zipline_factorarb.optimize.run_optimization`.

    Returns
    -------
    OrderResult
        ``reason`` says why a failed rebalance failed.
    """
    check_choice("on_failure", on_failure, _FAILURE_MODES)
    algo = _running_algo(context, "order_optimal_portfolio")
    constraints = as_list(constraints)
    universe, problem = None, None
    try:
        for t in [objective, *constraints]:  # a data problem found when a term was built
            t._raise_input_error()
        universe = _universe(objective, constraints, None)
        if data is not None:  # what cannot be priced cannot be traded
            _check_assets(universe)
    except InvalidInput as exc:
        problem, universe = exc, None
    open_orders, snapshot, current = _book(algo, data, () if universe is None else universe)
    pv = float(algo.portfolio.portfolio_value)
    if problem is None and not (np.isfinite(pv) and pv > 0):
        problem = InvalidInput(f"portfolio value is {pv} on {algo.get_datetime().date()}: "
                               "a book without positive value has no weights to optimise",
                               "portfolio_value")
    if problem is not None:
        if on_failure == "raise":
            raise problem
        # without a positive portfolio value not even the benchmark can be ordered
        mode = on_failure if np.isfinite(pv) and pv > 0 else "hold"
        target = _on_failure(objective, constraints,
                             OptimizationResult.failed("invalid_input", problem, current),
                             mode, record_failures)
    else:
        tracked = current
        if close_untracked and len(current):
            tracked = current[current.index.isin(universe)]
        target = optimal_target(objective, constraints, on_failure, tracked,
                                record_failures=record_failures, **kwargs)
    if target.action == "hold":
        return OrderResult(target.result, [], [], "hold", [])
    plan, ids, skipped = _place(algo, data, target.weights, current, open_orders,
                                min_weight_change, snapshot)
    return OrderResult(target.result, plan, ids, target.action, skipped)
