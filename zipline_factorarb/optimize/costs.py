"""Transaction and holding costs as terms of the optimisation, and the zipline models
that charge the same numbers in a backtest.

Each cost (:class:`LinearCost`, :class:`MarketImpact`, :class:`BorrowCost`; formulas
and units in :mod:`zipline_factorarb.kernels.costs`, which also evaluates them) is a
convex term the optimiser subtracts from a maximised objective (adds to a minimised
one). Their coefficients are DPP parameters, the trade an auxiliary variable with ``z
== w - w0`` (``w0`` a parameter), so re-solves with new costs reuse the compiled problem.

:class:`CostModel` holds one set of numbers for both sides: :meth:`CostModel.terms` for
the optimiser, :meth:`CostModel.slippage` and :meth:`CostModel.commission` for zipline
(imported only there).
"""

from __future__ import annotations

import functools
import logging
import numbers

import cvxpy as cp
import numpy as np
import pandas as pd

from ..kernels import costs as kc
from ._base import Context, Term, TermData, _lenient, as_series, describe_value, fmt
from .errors import InvalidInput

__all__ = ["Cost", "LinearCost", "MarketImpact", "BorrowCost", "CostModel", "evaluate_costs"]

log = logging.getLogger(__name__)

#: cost components, in the order they are reported
COMPONENTS = ("linear", "impact", "borrow")


# ----------------------------------------------------------------------------- validation
def _number(x, field, positive=False):
    """``x`` as a float: ``TypeError`` unless a real number, :class:`~.errors.InvalidInput`
    (a ``ValueError`` naming ``field``) unless finite and non-negative (``positive``:
    > 0)."""
    if not isinstance(x, numbers.Real) or isinstance(x, bool):
        raise TypeError(f"{field} must be a number, got {x!r}")
    v = float(x)
    if not np.isfinite(v):
        raise InvalidInput(f"{field} must be finite, got {x!r}", field)
    if v < 0 or (positive and v == 0):
        raise InvalidInput(
            f"{field} must be {'positive' if positive else 'non-negative'}, got {x!r}", field)
    return v


def _rates(values, field, positive=False):
    """A non-negative (``positive``: > 0) finite number, or such a Series by asset.

    Errors name the parameter and, for a Series, the first offending asset: a
    ``TypeError`` for a wrong type, a ``ValueError`` (an :class:`~.errors.InvalidInput`
    where the value is at fault) for NaN, infinite, negative, empty or duplicated data.
    """
    if isinstance(values, numbers.Real) and not isinstance(values, bool):
        return _number(values, field, positive)
    s = as_series(values, field)  # NonFiniteInput names the asset
    arr = s.to_numpy()
    bad = arr <= 0 if positive else arr < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInput(f"{field} must be {'positive' if positive else 'non-negative'}: "
                           f"{s.index[i]!r} has {arr[i]!r}", field)
    return s


# ----------------------------------------------------------------------------- terms
class Cost(Term):
    """Base class of cost terms (in fractions of portfolio value).

    Subclasses give ``_component`` (``"linear"``, ``"impact"`` or ``"borrow"``), the cvxpy
    expression ``_expression(w, z, p)`` (``z`` the trade variable, None unless
    ``_trades``), and the per-asset numpy cost ``_costs(w, w0, data)`` (the kernel).

    Inputs are checked when the term is created; data errors (NaN, a negative rate, a
    non-positive volume, ...) are kept and raised when the term is solved, naming the
    parameter and the asset (see :class:`~._base.KeepsInputErrors`).
    """

    _component = None
    #: the term needs the trade variable ``z = w - w0``
    _trades = True
    #: attributes shown by ``repr``
    _shown = ()

    def _rates(self, values, field, positive=False):
        """:func:`_rates`, with data errors kept for the solve (see the class docstring);
        meanwhile a lenient copy of the input is returned."""
        return self._checked(
            lambda: _rates(values, field, positive),
            lambda: float(values) if isinstance(values, numbers.Real) else _lenient(values))

    def _number(self, x, field, positive=False):
        """:func:`_number`, with data errors kept for the solve."""
        return self._checked(lambda: _number(x, field, positive), lambda: float(x))

    def _describe(self):
        shown = ", ".join(f"{a}={describe_value(getattr(self, a))}" for a in self._shown)
        return f"{type(self).__name__}({shown})"

    def _aligned(self, name, ctx):
        """Attribute ``name`` (a number or Series from :func:`_rates`) as a vector on the
        universe, after raising any kept data error. A Series must cover every asset of
        the universe (a missing asset is an :class:`~.errors.UnknownAssets` error, never
        a zero cost, which would make it free to trade)."""
        self._raise_input_error()
        values = getattr(self, name)
        if isinstance(values, float):
            return np.full(ctx.n, values)
        ctx.missing_from(values.index, f"{type(self).__name__}.{name}", "entry",
                         "Give every asset a value (e.g. .reindex(universe, fill_value=...)) "
                         "or drop them from the objective and constraints")
        return values.to_numpy(dtype=float)[ctx.indexer(values.index)]

    def _expression(self, w, z, p):  # pragma: no cover - abstract
        raise NotImplementedError

    def _costs(self, w, w0, data):  # pragma: no cover - abstract
        raise NotImplementedError

    def _value(self, w, w0, data):
        return float(np.sum(self._costs(w, w0, data)))

    def _bounds_portfolio(self, data):
        """True when the term alone keeps a linear objective bounded."""
        return False


class LinearCost(Cost):
    """Linear trading cost ``sum_i c_i |w_i - w0_i|``.

    Parameters
    ----------
    rate : float or pandas.Series
        ``c``: half-spread plus commission per unit traded (0.001 = 10 bp), a number or
        a Series by asset. A Series must cover every asset of the optimisation universe:
        a missing asset raises ``ValueError`` naming it (no silent zero cost).
    """

    _component = "linear"
    _nonneg = frozenset({"rate"})
    _shown = ("rate",)

    def __init__(self, rate):
        self.rate = self._rates(rate, "LinearCost.rate")

    def _prepare(self, ctx):
        return TermData({"rate": self._aligned("rate", ctx)})

    def _expression(self, w, z, p):
        return p["rate"] @ cp.abs(z)

    def _costs(self, w, w0, data):
        return kc.linear_cost(w - w0, data["rate"])


class MarketImpact(Cost):
    """Market-impact cost ``sum_i b_i sigma_i sqrt(PV / V_i) |w_i - w0_i|^{3/2}``.

    The weight form of the cvxportfolio / Almgren dollar cost ``b sigma |x|^{3/2} /
    sqrt(V)`` of a dollar trade ``x = PV z``.

    Parameters
    ----------
    coefficient : float or pandas.Series
        ``b`` (dimensionless; cvxportfolio's default is 1).
    volatility : pandas.Series
        ``sigma``: daily return volatility by asset, non-negative.
    dollar_volume : pandas.Series
        ``V``: average daily dollar volume by asset, positive.
    portfolio_value : float
        ``PV`` in dollars, positive.

    Every Series must cover every asset of the optimisation universe (``ValueError``
    naming the missing ones otherwise); non-finite or out-of-range values raise when
    the term is solved, naming the asset and the parameter (see :class:`Cost`).
    """

    _component = "impact"
    _nonneg = frozenset({"k"})
    _shown = ("coefficient", "portfolio_value")

    def __init__(self, coefficient, volatility, dollar_volume, portfolio_value):
        self.coefficient = self._rates(coefficient, "MarketImpact.coefficient")
        self.volatility = self._rates(volatility, "MarketImpact.volatility")
        self.dollar_volume = self._rates(dollar_volume, "MarketImpact.dollar_volume",
                                         positive=True)
        self.portfolio_value = self._number(portfolio_value, "MarketImpact.portfolio_value",
                                            positive=True)

    def _prepare(self, ctx):
        return TermData({"k": kc.impact_coefficient(
            self._aligned("coefficient", ctx), self._aligned("volatility", ctx),
            self._aligned("dollar_volume", ctx), self.portfolio_value)})

    def _expression(self, w, z, p):
        return p["k"] @ cp.power(cp.abs(z), 1.5)

    def _costs(self, w, w0, data):
        return kc.impact_cost(w - w0, data["k"])

    def _bounds_portfolio(self, data):
        return bool(np.all(data["k"] > 0))


class BorrowCost(Cost):
    """Cost of the short positions over the holding period,
    ``sum_i r_i * holding_periods / periods_per_year * max(-w_i, 0)``.

    Parameters
    ----------
    annual_rate : float or pandas.Series
        ``r``: annual borrow fee (0.01 = 1% a year), a number or a Series by asset
        covering the whole optimisation universe.
    holding_periods : float, default 21
        Periods the position is expected to be held (21 trading days: a month).
    periods_per_year : float, default 252
    """

    _component = "borrow"
    _trades = False
    _nonneg = frozenset({"f"})
    _shown = ("annual_rate", "holding_periods")

    def __init__(self, annual_rate, holding_periods=21, periods_per_year=252):
        self.annual_rate = self._rates(annual_rate, "BorrowCost.annual_rate")
        self.holding_periods = self._number(holding_periods, "BorrowCost.holding_periods")
        self.periods_per_year = self._number(periods_per_year, "BorrowCost.periods_per_year",
                                             positive=True)

    def _prepare(self, ctx):
        r = self._aligned("annual_rate", ctx)
        return TermData({"f": kc.borrow_fraction(r, self.holding_periods,
                                                  self.periods_per_year)})

    def _expression(self, w, z, p):
        return p["f"] @ cp.neg(w)

    def _costs(self, w, w0, data):
        return kc.borrow_cost(w, data["f"])


def evaluate_costs(costs, datas, w, w0):
    """Expected cost of the trade ``w0 -> w`` by component (fractions of portfolio value):
    ``{"linear", "impact", "borrow", "total"}``, evaluated with the numpy kernels."""
    out = dict.fromkeys(COMPONENTS, 0.0)
    for c, d in zip(costs, datas):
        out[c._component] += c._value(w, w0, d)
    out["total"] = float(sum(out[k] for k in COMPONENTS))
    return out


# ----------------------------------------------------------------------------- one model
class CostModel:
    """One set of cost numbers for the optimiser and for zipline's fills.

    Parameters
    ----------
    half_spread : float, default 0.0005
        Half the bid-ask spread as a fraction of price (5 bp).
    commission_rate : float, default 0.0005
        Commission per dollar traded (5 bp).
    impact : float, default 1.0
        Market-impact coefficient ``b`` (cvxportfolio's default).
    borrow_rate : float or pandas.Series, default 0.0
        Annual borrow fee of short positions (0 leaves the borrow term out).
    holding_periods : float, default 21
        Periods over which the borrow fee is charged to a new short (see
        :class:`BorrowCost`).
    periods_per_year : float, default 252

    Notes
    -----
    The optimiser's linear rate is ``half_spread + commission_rate``. In a backtest
    (``set_slippage(cost_model.slippage())``, ``set_commission(cost_model.commission())``,
    and ``cost_model.update_market(volatility, dollar_volume)`` at each rebalance with
    the Series given to the optimiser) zipline charges per trade of ``x`` dollars
    ``(half_spread + commission_rate) |x| + b sigma |x|^{3/2} / sqrt(V)``: the
    optimiser's expectation at the fill bar's close. Realised differs from expected
    because zipline rounds orders to whole shares and fills at the next bar's close
    (the optimiser used the decision bar's portfolio value). Borrow is not charged by
    zipline: its expected value is reported by the optimiser only.
    """

    def __init__(self, half_spread=0.0005, commission_rate=0.0005, impact=1.0, borrow_rate=0.0,
                 holding_periods=21, periods_per_year=252):
        self.half_spread = _number(half_spread, "CostModel.half_spread")
        self.commission_rate = _number(commission_rate, "CostModel.commission_rate")
        self.impact = _number(impact, "CostModel.impact")
        self.borrow_rate = _rates(borrow_rate, "CostModel.borrow_rate")
        self.holding_periods = _number(holding_periods, "CostModel.holding_periods")
        self.periods_per_year = _number(periods_per_year, "CostModel.periods_per_year",
                                        positive=True)
        self._market = {}
        self._said_no_market = False
        self._closes = {}
        self._realised = dict.fromkeys(("spread", "impact", "commission"), 0.0)

    def __repr__(self):
        return (f"CostModel(half_spread={fmt(self.half_spread)}, "
                f"commission_rate={fmt(self.commission_rate)}, impact={fmt(self.impact)}, "
                f"borrow_rate={describe_value(self.borrow_rate)})")

    @property
    def linear_rate(self):
        """``half_spread + commission_rate``: the optimiser's cost per unit traded."""
        return self.half_spread + self.commission_rate

    # ------------------------------------------------------------------ optimiser side
    def terms(self, portfolio_value, volatility=None, dollar_volume=None):
        """The cost terms for :func:`~zipline_factorarb.optimize.run_optimization`.

        Parameters
        ----------
        portfolio_value : float
            Dollars, positive.
        volatility, dollar_volume : pandas.Series, optional
            Daily return volatility and average daily dollar volume by asset. Give both
            for a :class:`MarketImpact` term, or neither for linear (and borrow) costs
            only, e.g. for a bundle whose volume is a stand-in (this is logged).

        Returns
        -------
        list of Cost
            :class:`LinearCost` (when its rate is positive), :class:`MarketImpact`
            (when the market data is given and ``impact > 0``), :class:`BorrowCost`
            (when ``borrow_rate`` is positive somewhere).

        Raises
        ------
        TypeError
            Arguments of the wrong type, or only one of ``volatility`` and
            ``dollar_volume``. Data problems (a NaN volatility, a portfolio value that
            is not positive) are kept by the terms and raised when solved (see
            :class:`Cost`).
        """
        if (volatility is None) != (dollar_volume is None):
            raise TypeError("give both volatility and dollar_volume for the market-impact "
                            "term, or neither for linear costs only")
        try:
            pv, pv_error = _number(portfolio_value, "portfolio_value", positive=True), None
        except ValueError as exc:  # kept by the terms (a TypeError raises now)
            pv, pv_error = float(portfolio_value), exc
        out = []
        if self.linear_rate > 0:
            out.append(LinearCost(self.linear_rate))
        if volatility is None:
            if self.impact > 0 and not self._said_no_market:
                self._said_no_market = True  # once per model, not at every rebalance
                log.info("no volatility / dollar volume given: market impact left out of the "
                         "optimisation (linear and borrow costs only)")
        elif self.impact > 0:
            out.append(MarketImpact(self.impact, volatility, dollar_volume, pv))
        if np.any(np.asarray(self.borrow_rate) > 0):
            out.append(BorrowCost(self.borrow_rate, self.holding_periods, self.periods_per_year))
        if pv_error is not None:  # every term refuses to be solved with it
            for term in out:
                term._defer(pv_error)
        return out

    def expected(self, trades, weights=None, *, portfolio_value, volatility=None,
                 dollar_volume=None):
        """Expected cost of a rebalance in fractions of portfolio value.

        Parameters
        ----------
        trades : pandas.Series
            ``z = w - w0`` by asset (fractions of portfolio value).
        weights : pandas.Series, optional
            Post-trade weights ``w`` (for the borrow cost; zero when omitted).
        portfolio_value : float
        volatility, dollar_volume : pandas.Series, optional
            As for :meth:`terms`.

        Returns
        -------
        dict
            ``{"linear", "impact", "borrow", "total"}``; multiply by
            ``portfolio_value`` for dollars.
        """
        z = as_series(trades, "trades")
        w = z * 0.0 if weights is None else as_series(weights, "weights")
        universe = pd.Index(list(dict.fromkeys([*z.index, *w.index])), tupleize_cols=False)
        zv = z.reindex(universe, fill_value=0.0).to_numpy()
        wv = w.reindex(universe, fill_value=0.0).to_numpy()
        ctx = Context(universe, wv - zv)
        costs = self.terms(portfolio_value, volatility, dollar_volume)  # _prepare raises
        # the data errors the terms kept (a NaN volatility, ...), naming them
        return evaluate_costs(costs, [c._prepare(ctx) for c in costs], wv, wv - zv)

    # ------------------------------------------------------------------ zipline side
    def update_market(self, volatility, dollar_volume):
        """Set the market data the slippage model prices impact with.

        Call after each successful rebalance (``result.action == "rebalance"``) with
        the Series given to :meth:`terms`. Replaces the previous data; assets missing
        from either Series get the half-spread only. Unlike :meth:`terms`, NaN,
        infinite or negative values raise here at once (``ValueError`` naming the
        asset): the optimiser has already refused such data on a failed rebalance.
        """
        sigma = _rates(volatility, "CostModel.update_market volatility")
        vol = _rates(dollar_volume, "CostModel.update_market dollar_volume", positive=True)
        if isinstance(sigma, float) or isinstance(vol, float):
            raise TypeError("update_market needs pandas Series by asset")
        common = sigma.index.intersection(vol.index)
        self._market = dict(zip(common, zip(sigma[common].to_numpy(), vol[common].to_numpy())))

    def slippage(self):
        """A zipline ``SlippageModel`` charging the half-spread and market impact.

        The fill price of an order for ``amount`` shares is ``close * (1 +- (half_spread
        + b sigma sqrt(|x| / V)))`` with ``x = |amount| * close``, the sign adverse to
        the trader, and ``sigma``, ``V`` from :meth:`update_market` (the half-spread
        only for assets without market data). The whole order fills in one bar: there
        is no volume limit. Equities only.
        """
        return _zipline_classes()[0](self)

    def commission(self):
        """A zipline ``CommissionModel`` charging ``commission_rate * |x|`` per fill,
        ``x = |amount| * close`` (the close the slippage model saw; the fill price when
        used without it)."""
        return _zipline_classes()[1](self)

    def take_realised(self):
        """Dollars charged by the zipline models since the previous call (then reset).

        Returns
        -------
        dict
            ``spread`` (half-spread slippage), ``impact`` (the rest of the slippage),
            ``commission``, ``linear`` (spread plus commission) and ``total``.
        """
        out = dict(self._realised)
        out["linear"] = out["spread"] + out["commission"]
        out["total"] = out["linear"] + out["impact"]
        self._realised = dict.fromkeys(self._realised, 0.0)
        return out

    def _fill(self, data, order):
        close = float(data.current(order.asset, "close"))
        amount = order.open_amount
        if amount == 0 or not np.isfinite(close):
            return None, None
        x = abs(amount) * close
        sigma, volume = self._market.get(order.asset, (0.0, np.inf))
        frac = float(kc.slippage_fraction(x, self.half_spread, self.impact, sigma, volume))
        price = close * (1.0 + (frac if amount > 0 else -frac))
        limit = getattr(order, "limit", None)
        if limit and ((amount > 0 and price > limit) or (amount < 0 and price < limit)):
            return None, None
        slip = float(abs(price - close) * abs(amount))
        spread = self.half_spread * x
        self._realised["spread"] += spread
        self._realised["impact"] += slip - spread
        self._closes[order.id] = close
        return price, amount

    def _charge(self, order, transaction):
        px = self._closes.pop(order.id, None)
        if px is None:
            px = float(transaction.price)
        charged = self.commission_rate * abs(transaction.amount) * px
        self._realised["commission"] += charged
        return charged


@functools.lru_cache(maxsize=None)
def _zipline_classes():
    """The zipline model classes (defined on first use: zipline is imported lazily)."""
    from zipline.finance.commission import EquityCommissionModel
    from zipline.finance.slippage import EquitySlippageModel

    class CostModelSlippage(EquitySlippageModel):
        """Fill at ``close * (1 +- (half_spread + b sigma sqrt(|x| / V)))``, the whole
        order in one bar (no volume limit); see :meth:`CostModel.slippage`."""

        def __init__(self, cost_model):
            super().__init__()
            self.cost_model = cost_model

        def __repr__(self):
            return f"CostModelSlippage({self.cost_model!r})"

        def process_order(self, data, order):
            return self.cost_model._fill(data, order)

    class CostModelCommission(EquityCommissionModel):
        """``commission_rate * |x|`` per fill; see :meth:`CostModel.commission`."""

        def __init__(self, cost_model):
            self.cost_model = cost_model

        def __repr__(self):
            return f"CostModelCommission({self.cost_model!r})"

        def calculate(self, order, transaction):
            return self.cost_model._charge(order, transaction)

    return CostModelSlippage, CostModelCommission
