"""The risk diagnostics an algorithm records at each rebalance.

:func:`risk_records` returns the ``record()`` names the crisis report reads
(:mod:`zipline_factorarb.analysis`): ``ex_ante_tev``, ``factor_exposure_<factor>``,
``sector_weight_<sector>``, ``benchmark_sector_weight_<sector>``,
``risk_contribution_<factor>`` (plus ``risk_contribution_specific``) and
``n_holdings``::

    from zipline.api import record
    record(**risk_records(target, benchmark, risk_model, sectors=labels))
"""

from __future__ import annotations

from .. import records as names
from ..checks import check_instance
from ._base import as_series
from .risk_model import CONSTANT, RiskModel

__all__ = ["risk_records", "sector_weights", "BenchmarkTracker"]


def sector_weights(weights, sectors, names=None):
    """Weights summed by sector.

    Parameters
    ----------
    weights : pandas.Series
        By asset.
    sectors : pandas.Series
        Sector label of each asset; assets without one count as ``"Unknown"``.
    names : sequence, optional
        Sectors to report (zero where nothing is held); default: those of ``sectors``.

    Returns
    -------
    pandas.Series
    """
    w = as_series(weights, "weights")
    labels = sectors.reindex(w.index).fillna("Unknown")
    out = w.groupby(labels.to_numpy()).sum()
    if names is not None:
        out = out.reindex(list(names), fill_value=0.0)
    return out


def risk_records(weights, benchmark_weights, risk_model, sectors=None, periods_per_year=252,
                 holding_threshold=1e-4, sector_names=None):
    """Rebalance diagnostics as ``{record name: value}``.

    Parameters
    ----------
    weights : pandas.Series
        Target (or current) weights by asset.
    benchmark_weights : pandas.Series
        The benchmark the tracking error is measured against.
    risk_model : RiskModel
        Per-period model covering every asset with a non-zero weight in either.
    sectors : pandas.Series, optional
        Sector label (e.g. GICS name) by asset, for ``sector_weight_*`` and
        ``benchmark_sector_weight_*``.
    periods_per_year : float, default 252
        Annualisation of the risk model's variances.
    holding_threshold : float, default 1e-4
        Weights above this count towards ``n_holdings``.
    sector_names : sequence, optional
        Sectors always reported (zeros included), so that the recorded columns stay
        the same from one rebalance to the next. Default: the labels in ``sectors``.

    Returns
    -------
    dict
        ``ex_ante_tev`` (annualised), ``factor_exposure_<f>`` (active exposure
        ``F (w - b)``, the intercept left out), ``risk_contribution_<f>`` and
        ``risk_contribution_specific`` (Euler shares of the active variance, summing
        to one; absent when the active variance is zero), ``n_holdings``, and the
        sector weights when ``sectors`` is given.
    """
    check_instance("risk_model", risk_model, RiskModel)
    w = as_series(weights, "weights")
    b = as_series(benchmark_weights, "benchmark_weights")
    decomposition = risk_model.risk_contributions(w, b, periods_per_year)
    out = {names.EX_ANTE_TEV: decomposition.volatility}
    _, active, arrays = risk_model._weights_vectors(w, b)  # on the assets held by either
    exposures = arrays.F @ active
    for name, value in zip(risk_model.factors, exposures):
        if name != CONSTANT:
            out[names.FACTOR_EXPOSURE + str(name)] = float(value)
    total = decomposition.total
    if total > 0:
        for name, value in decomposition.by_factor.items():
            if name != CONSTANT:
                out[names.RISK_CONTRIBUTION + str(name)] = float(value / total)
    out[names.N_HOLDINGS] = int((w > holding_threshold).sum())
    if sectors is not None:
        labels = (sorted(set(sectors.dropna().astype(str))) if sector_names is None
                  else sector_names)
        for name, value in sector_weights(w, sectors, labels).items():
            out[names.SECTOR_WEIGHT + str(name)] = float(value)
        for name, value in sector_weights(b, sectors, labels).items():
            out[names.BENCHMARK_SECTOR_WEIGHT + str(name)] = float(value)
    return out


def cost_records(cost_model, portfolio_value, order_result=None):
    """The session's costs as ``{record name: fraction of the portfolio value}``.

    ``expected_cost``: spread, commission and impact the optimizer expected for the
    orders of ``order_result`` (what zipline will charge on their fills; 0 when no
    rebalance ran); ``expected_borrow_cost``: its borrow fee (zipline charges none);
    ``realised_cost``: what ``cost_model``'s zipline models charged since the last
    call (this session's fills). Call once per session, after any rebalance::

        record(**cost_records(context.costs, context.portfolio.portfolio_value, result))
    """
    expected = {"linear": 0.0, "impact": 0.0, "borrow": 0.0}
    opt = getattr(order_result, "result", None)
    if opt is not None and getattr(order_result, "action", None) == "rebalance":
        expected.update(opt.diagnostics.get("expected_costs", {}))
    realised = cost_model.take_realised()["total"]
    return {names.EXPECTED_COST: float(expected["linear"] + expected["impact"]),
            names.EXPECTED_BORROW_COST: float(expected["borrow"]),
            names.REALISED_COST: float(realised / float(portfolio_value))}


class BenchmarkTracker:
    """Daily total return of benchmark weights held from one rebalance to the next.

    The tracking-error budget refers to the optimiser's benchmark weights (for
    example a size-weighted proxy of the stock universe), which zipline's own
    benchmark asset need not match. Call :meth:`reset` with the new weights at each
    rebalance and :meth:`update` once a day from ``handle_data``; record what it
    returns to measure the ex-post tracking error against the right benchmark, or
    let :meth:`record` do both::

        tracker = BenchmarkTracker()
        ...
        tracker.record(data)  # record(tracked_benchmark_return=...) once there is one

    Returns are total returns like the portfolio's: the session's close over the
    previous close adjusted for the session's splits and dividends
    (:func:`zipline_factorarb.bars.bar_returns`, one block read for the whole
    benchmark; zipline's ``data.history`` over more than its 1,000-asset cache
    re-read the bar table every session).
    """

    def __init__(self):
        self.values = None
        self._pending = None

    def reset(self, weights):
        """New benchmark weights, taking effect at the next :meth:`update`'s close."""
        self._pending = as_series(weights, "weights")

    def update(self, data):
        """Advance one session; returns the day's return (None before the first reset)."""
        out = None
        if self.values is not None and len(self.values):
            from ..bars import bar_returns

            growth = 1.0 + bar_returns(data, self.values.index).reindex(self.values.index)
            growth = growth.where(growth.notna() & (growth > 0), 1.0)
            new = self.values * growth
            out = float(new.sum() / self.values.sum() - 1.0)
            self.values = new
        if self._pending is not None:
            pending = self._pending
            self.values = pending[pending != 0]
            self._pending = None
        return out

    def record(self, data, name=names.TRACKED_BENCHMARK_RETURN):
        """:meth:`update`, and ``zipline.api.record`` the day's return under ``name``
        (nothing before the first rebalance). Returns the value."""
        value = self.update(data)
        if value is not None:
            from zipline.api import record

            record(**{name: value})
        return value
