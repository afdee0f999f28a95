"""Portfolio constraints (Quantopian Optimize names, plus :class:`TrackingError`).

Each constraint validates its inputs when created, compiles itself into cvxpy with DPP
parameters, and measures its own violation for a numpy weight vector: the amount by
which the bound is exceeded, in the units of the bound (weights, or annualised
tracking error). :class:`Constraint` documents the hooks a new constraint implements.
"""

from __future__ import annotations

import numpy as np
import cvxpy as cp
import pandas as pd

from ..checks import check_instance, check_number
from ._base import (
    Bounds,
    RiskTerm,
    Term,
    TermData,
    asset_label,
    as_series,
    asset_list,
    by_label,
    check_factors,
    describe_value,
    label_codes,
    finite_or_big,
    fmt,
    short_list,
)
from .errors import InvalidInput, NonFiniteInput
from .risk_model import RiskModel

__all__ = [
    "Constraint",
    "TrackingError",
    "LongOnly",
    "NetExposure",
    "DollarNeutral",
    "MaxGrossExposure",
    "PositionConcentration",
    "FactorExposure",
    "RiskModelExposure",
    "NetGroupExposure",
    "MaxTurnover",
    "CannotHold",
    "Frozen",
]


class Constraint(Term):
    """Base class of constraints: the hooks a new constraint implements.

    Required:

    ``_prepare(self, ctx) -> TermData``
        The constraint's data on the universe ``ctx.universe`` (``ctx.n`` assets;
        ``ctx.align(series)`` aligns a Series, ``ctx.current`` holds the current
        weights, ``ctx.risk(model)`` a risk model's arrays): ``TermData(parameters,
        constants)``. Parameters become cvxpy parameters (list those that must be
        non-negative in the class attribute ``_nonneg``); constants are for the checks.
    ``_build(self, w, p, data) -> list``
        cvxpy constraints on the weight variable ``w`` written with the parameters
        ``p[name]`` (DPP: parameters enter affinely), built once per structure.
    ``_violation(self, w, data) -> (amount, detail)``
        How far the numpy weights ``w`` are outside the constraint, in its units (0
        inside), and a short description; used to check every solution and to explain
        infeasibility.

    Optional: ``_describe`` (the repr used in messages), ``_hint`` (a class attribute:
    what to loosen; ``_relax_hint`` for a text that depends on the data), ``_bounds``
    (a :class:`~._base.Bounds`: what it bounds, for the unboundedness test; default
    nothing), ``_assets`` (assets it adds to the universe), ``_structure`` (flags that
    change the compiled problem), ``_risk`` (a :class:`~._base.RiskTerm` for a risk
    budget). Attributes named ``benchmark_weights``, ``risk_model`` and
    ``periods_per_year`` are what ``_benchmark`` and ``_risk_reference`` report by
    default (benchmark of the diagnostics, model of the risk report). Check data
    inputs with ``self._data(series, field)`` in ``__init__``: a NaN or an empty input
    then fails the solve (so ``on_failure="hold"`` holds) instead of the constructor.
    """

    #: what to loosen when the problem is infeasible (a fixed text)
    _hint = None

    def _violation(self, w, data):
        """``(amount, detail)``: how far ``w`` is outside the constraint (0 inside)."""
        raise NotImplementedError  # pragma: no cover

    def _relax_hint(self, data):
        return self._hint or f"loosen {self!r}"

    def _bounds(self, data):
        """What the constraint bounds (a :class:`~._base.Bounds`), for the
        unboundedness check."""
        return Bounds()


class _LinearBounds(Constraint):
    """A linear map of the weights within elementwise bounds: ``lo <= A w - b <= hi``.

    Subclasses give the map (``_linear``, evaluated on the cvxpy parameters or on the
    numpy data, which share their names), name its entries for messages (``_item``) and
    prepare their data with :meth:`_bounds_data`: the parameters ``lo`` / ``hi`` (the
    bounds clipped to finite values) and the constants ``lower`` / ``upper`` (the bounds
    as given, +-inf: unbounded).
    """

    #: the name of the map's matrix ``A`` in the prepared data (for the unboundedness test)
    _matrix = None

    @staticmethod
    def _bounds_data(lower, upper, parameters=(), constants=()):
        return TermData({**dict(parameters), "lo": finite_or_big(lower),
                         "hi": finite_or_big(upper)},
                        {**dict(constants), "lower": lower, "upper": upper})

    def _linear(self, w, src):  # pragma: no cover - abstract
        raise NotImplementedError

    def _bounds(self, data):
        return Bounds(rows=((data[self._matrix], np.isfinite(data["lower"]),
                             np.isfinite(data["upper"])),))

    def _item(self, j, value, data):  # pragma: no cover - abstract
        raise NotImplementedError

    def _structure(self, data):
        return (bool(np.isfinite(data["lower"]).any()), bool(np.isfinite(data["upper"]).any()))

    def _build(self, w, p, data):
        has_lo, has_hi = self._structure(data)
        value = self._linear(w, p)
        out = []
        if has_lo:
            out.append(value >= p["lo"])
        if has_hi:
            out.append(value <= p["hi"])
        return out

    def _violation(self, w, data):
        value = self._linear(w, data)
        gap = np.maximum(data["lower"] - value, value - data["upper"])
        if gap.size == 0:
            return 0.0, ""
        j = int(np.argmax(gap))
        return max(0.0, float(gap[j])), (
            f"{self._item(j, value[j], data)} outside "
            f"[{fmt(data['lower'][j])}, {fmt(data['upper'][j])}]")


# --------------------------------------------------------------------------- tracking error
class TrackingError(Constraint):
    """Ex-ante tracking error against a benchmark at most ``max_tev`` a year.

    ``sqrt(periods_per_year * (f' Sigma_f f + ||sqrt(E) (w - b)||^2)) <= max_tev`` with
    ``f = F (w - b)``, written as one second-order cone on the stacked factor-root and
    specific-risk terms, ``||[R F (w - b); sqrt(E) (w - b)]||_2 <= max_tev /
    sqrt(periods_per_year)`` with ``R' R = Sigma_f`` (much more accurate with interior
    point solvers than the equivalent quadratic constraint).

    Parameters
    ----------
    max_tev : float
        Annualised tracking-error budget, e.g. 0.06 for 6% a year.
    risk_model : RiskModel
        Per-period factor risk model.
    benchmark_weights : pandas.Series
        Benchmark weights b by asset (zero where missing).
    periods_per_year : float, default 252
        Periods of the risk model in a year (12 for a monthly model).
    """

    _nonneg = frozenset({"s", "bound"})

    def __init__(self, max_tev, risk_model, benchmark_weights, periods_per_year=252):
        self.max_tev = check_number("max_tev", max_tev, low=0.0, low_open=True)
        self.risk_model = check_instance("risk_model", risk_model, RiskModel)
        self.benchmark_weights = self._data(benchmark_weights, "TrackingError.benchmark_weights")
        self.periods_per_year = check_number("periods_per_year", periods_per_year, low=0.0,
                                             low_open=True)

    def _describe(self):
        return (f"TrackingError(max_tev={fmt(self.max_tev)}, "
                f"periods_per_year={fmt(self.periods_per_year)})")

    def _assets(self):
        b = self.benchmark_weights
        return b.index[b.to_numpy() != 0]

    def _prepare(self, ctx):
        r = ctx.risk(self.risk_model, f"{self!r}.risk_model")
        b = ctx.align(self.benchmark_weights)
        return TermData(
            {"G": r.G, "Gb": r.G @ b, "s": r.s, "sb": r.s * b,
             "bound": self.max_tev / np.sqrt(self.periods_per_year)},
            {"b": b})

    def _risk(self, data):
        return RiskTerm(data["G"], data["s"], data["b"], self.periods_per_year, "max_tev")

    def _build(self, w, p, data):
        return [cp.SOC(p["bound"], cp.hstack([p["G"] @ w - p["Gb"],
                                              cp.multiply(p["s"], w) - p["sb"]]))]

    def _violation(self, w, data):
        tev = float(np.sqrt(self._risk(data).variance(w)) * np.sqrt(self.periods_per_year))
        return (max(0.0, tev - self.max_tev),
                f"ex-ante tracking error {tev:.4%} > {self.max_tev:.4%}")

    def _relax_hint(self, data):
        return (f"raise max_tev above {self.max_tev:.4%}, or loosen the constraints that keep "
                "the portfolio away from the benchmark")

    def _bounds(self, data):
        if np.all(data["s"] > 0):
            return Bounds(bounded=True)
        return Bounds(note="a TrackingError bounds the portfolio only when every specific "
                           "variance is positive; some are zero here")


# --------------------------------------------------------------------------- simple bounds
class LongOnly(Constraint):
    """No short positions: every weight is non-negative."""

    _hint = "drop LongOnly (allow short positions)"

    def _prepare(self, ctx):
        return TermData()

    def _build(self, w, p, data):
        return [w >= 0]

    def _violation(self, w, data):
        if w.size == 0:
            return 0.0, ""
        i = int(np.argmin(w))
        return max(0.0, -float(w[i])), f"weight {fmt(w[i])} < 0 for {asset_label(data, i)}"

    def _bounds(self, data):
        return Bounds(lower=0.0)


class NetExposure(Constraint):
    """Net exposure ``sum(w)`` within ``[min_net_exposure, max_net_exposure]``.

    ``NetExposure(1, 1)`` is a fully invested portfolio.

    Parameters
    ----------
    min_net_exposure, max_net_exposure : float
        Bounds (may be infinite on one side).
    """

    _name = "net exposure"

    def __init__(self, min_net_exposure, max_net_exposure):
        lo = check_number("min_net_exposure", min_net_exposure, allow_inf=True)
        hi = check_number("max_net_exposure", max_net_exposure, allow_inf=True)
        if lo > hi:
            raise ValueError(f"min_net_exposure {lo} exceeds max_net_exposure {hi}")
        self.min_net_exposure, self.max_net_exposure = lo, hi

    def _describe(self):
        return (f"{type(self).__name__}(min={fmt(self.min_net_exposure)}, "
                f"max={fmt(self.max_net_exposure)})")

    def _prepare(self, ctx):
        return TermData({"lo": float(finite_or_big(self.min_net_exposure)),
                         "hi": float(finite_or_big(self.max_net_exposure))})

    def _structure(self, data):
        lo, hi = self.min_net_exposure, self.max_net_exposure
        return ("eq" if lo == hi else "range", np.isfinite(lo), np.isfinite(hi))

    def _build(self, w, p, data):
        lo, hi = self.min_net_exposure, self.max_net_exposure
        if lo == hi:
            return [cp.sum(w) == p["hi"]]
        out = []
        if np.isfinite(lo):
            out.append(cp.sum(w) >= p["lo"])
        if np.isfinite(hi):
            out.append(cp.sum(w) <= p["hi"])
        return out

    def _violation(self, w, data):
        net = float(np.sum(w))
        amount = max(0.0, self.min_net_exposure - net, net - self.max_net_exposure)
        return amount, (f"{self._name} {fmt(net)} outside "
                        f"[{fmt(self.min_net_exposure)}, {fmt(self.max_net_exposure)}]")

    def _relax_hint(self, data):
        return (f"widen the {self._name} range [{fmt(self.min_net_exposure)}, "
                f"{fmt(self.max_net_exposure)}]")

    def _bounds(self, data):
        return Bounds(net_lower=self.min_net_exposure, net_upper=self.max_net_exposure)


class DollarNeutral(NetExposure):
    """Long and short books of equal size: ``|sum(w)| <= tolerance``.

    Parameters
    ----------
    tolerance : float, default 0.0001
    """

    def __init__(self, tolerance=0.0001):
        self.tolerance = check_number("tolerance", tolerance, low=0.0)
        super().__init__(-self.tolerance, self.tolerance)

    def _describe(self):
        return f"DollarNeutral(tolerance={fmt(self.tolerance)})"

    def _relax_hint(self, data):
        return f"raise tolerance above {fmt(self.tolerance)} or drop DollarNeutral"


class _L1Budget(Constraint):
    """``sum(|w - w0|)`` at most a budget: ``w0 = 0`` (gross exposure) or the current
    weights (turnover). Subclasses name the attribute that holds the budget (``_arg``),
    what is measured (``_measure``) and say what to raise (``_raise``)."""

    _nonneg = frozenset({"bound"})
    _arg = _measure = _raise = None
    #: measured from the current weights (turnover) rather than from zero
    _from_current = False

    def _describe(self):
        return f"{type(self).__name__}({self._arg}={fmt(getattr(self, self._arg))})"

    def _prepare(self, ctx):
        w0 = {"w0": ctx.current.copy()} if self._from_current else {}
        return TermData({**w0, "bound": getattr(self, self._arg)})

    def _build(self, w, p, data):
        return [cp.norm1(w - p["w0"] if self._from_current else w) <= p["bound"]]

    def _violation(self, w, data):
        t = float(np.abs(w - data["w0"] if self._from_current else w).sum())
        budget = getattr(self, self._arg)
        return max(0.0, t - budget), f"{self._measure} {fmt(t)} > {fmt(budget)}"

    def _relax_hint(self, data):
        return f"raise {self._raise} above {fmt(getattr(self, self._arg))}"

    def _bounds(self, data):
        return Bounds(bounded=True)


class MaxGrossExposure(_L1Budget):
    """Gross exposure ``sum(|w|)`` at most ``max``.

    Parameters
    ----------
    max : float
        E.g. 1.0 for no leverage.
    """

    _arg, _measure, _raise = "max", "gross exposure", "max gross exposure"

    def __init__(self, max):  # noqa: A002 - Quantopian's argument name
        self.max = check_number("max", max, low=0.0, low_open=True)


class PositionConcentration(_LinearBounds):
    """Per-asset weight bounds ``min_weights <= w <= max_weights``.

    Parameters
    ----------
    min_weights, max_weights : pandas.Series or float
        Bounds by asset (a number applies to every asset).
    default_min_weight, default_max_weight : float, default 0.0
        Bounds of assets missing from a Series (Quantopian's convention: an asset
        without bounds cannot be held). Use :meth:`with_equal_bounds` for one range.
    """

    _hint = "widen the per-asset weight bounds (min_weights / max_weights / defaults)"

    def __init__(self, min_weights, max_weights, default_min_weight=0.0, default_max_weight=0.0):
        self.min_weights = self._data(min_weights, "PositionConcentration.min_weights",
                                      allow_scalar=True, finite=False)
        self.max_weights = self._data(max_weights, "PositionConcentration.max_weights",
                                      allow_scalar=True, finite=False)
        for name, v in (("min_weights", self.min_weights), ("max_weights", self.max_weights)):
            if isinstance(v, float):
                if np.isnan(v):
                    raise ValueError(f"PositionConcentration.{name} is NaN; use +-inf for no bound")
            elif v.isna().any():
                bad = v.index[v.isna().to_numpy()][0]
                self._defer(NonFiniteInput(f"PositionConcentration.{name}", bad, np.nan,
                                           "use +-inf for no bound, or drop the asset"))
        self.default_min_weight = check_number("default_min_weight", default_min_weight,
                                               allow_inf=True)
        self.default_max_weight = check_number("default_max_weight", default_max_weight,
                                               allow_inf=True)

    @classmethod
    def with_equal_bounds(cls, min, max):  # noqa: A002
        """The same ``[min, max]`` range for every asset."""
        return cls(float(min), float(max), float(min), float(max))

    def _describe(self):
        return (f"PositionConcentration(min={describe_value(self.min_weights)}, "
                f"max={describe_value(self.max_weights)})")

    def _prepare(self, ctx):
        lo, hi = (np.full(ctx.n, v) if isinstance(v, float) else ctx.align(v, default)
                  for v, default in ((self.min_weights, self.default_min_weight),
                                     (self.max_weights, self.default_max_weight)))
        bad = lo > hi
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInput(
                f"PositionConcentration: min weight {fmt(lo[i])} exceeds max weight "
                f"{fmt(hi[i])} for {ctx.universe[i]!r} (check default_min_weight / "
                "default_max_weight for assets missing from the bounds)",
                "PositionConcentration")
        return self._bounds_data(lo, hi)

    def _linear(self, w, src):
        return w

    def _item(self, j, value, data):
        return f"weight {fmt(value)} of {asset_label(data, j)}"

    def _bounds(self, data):
        return Bounds(lower=data["lower"], upper=data["upper"])


class _LoadingsBounds(_LinearBounds):
    """Exposures ``loadings' (w - b)`` within per-factor bounds (shared machinery).

    Subclasses set ``loadings`` (a validated DataFrame), ``benchmark_weights`` (a Series or
    None) and the bound arrays ``_lo`` / ``_hi`` (one entry per factor, +-inf: unbounded).
    """

    _matrix = "Lt"

    @property
    def exposure_bounds(self):
        """The bounds applied, a DataFrame by factor with columns ``min`` and ``max``."""
        return pd.DataFrame({"min": self._lo, "max": self._hi}, index=self.loadings.columns)

    def _prepare(self, ctx):
        ctx.missing_from(self.loadings.index, f"{type(self).__name__}.loadings", "row",
                         "Add them (e.g. .reindex(universe).fillna(0) for zero exposure)")
        pos = ctx.indexer(self.loadings.index)
        Lt = self.loadings.to_numpy()[pos].T
        b = ctx.align(self.benchmark_weights)
        return self._bounds_data(self._lo, self._hi, {"Lt": Lt, "Lb": Lt @ b})

    def _linear(self, w, src):
        return src["Lt"] @ w - src["Lb"]

    def _item(self, j, value, data):
        return f"exposure to {self.loadings.columns[j]!r} {fmt(value)}"

    @staticmethod
    def _check_order(name, factors, lo, hi):
        bad = lo > hi
        if bad.any():
            f = factors[np.flatnonzero(bad)[0]]
            raise ValueError(f"{name}: min exposure exceeds max exposure for factor {f!r}")


class FactorExposure(_LoadingsBounds):
    """Factor exposures ``loadings' w`` within bounds.

    Parameters
    ----------
    loadings : pandas.DataFrame
        Assets x factors. Every asset of the optimisation universe needs a row.
    min_exposures, max_exposures : pandas.Series or float
        Bounds by factor (a number applies to every factor; a factor missing from a
        Series is unbounded on that side).
    benchmark_weights : pandas.Series, optional
        Constrain the active exposure ``loadings' (w - b)`` instead.
    """

    _hint = "widen min_exposures / max_exposures of the factors named above"

    def __init__(self, loadings, min_exposures, max_exposures, benchmark_weights=None):
        self.loadings = self._data(loadings, "FactorExposure.loadings", frame=True)
        self.min_exposures = as_series(min_exposures, "FactorExposure.min_exposures",
                                       allow_scalar=True, finite=False)
        self.max_exposures = as_series(max_exposures, "FactorExposure.max_exposures",
                                       allow_scalar=True, finite=False)
        self.benchmark_weights = self._optional_benchmark(benchmark_weights)
        factors = self.loadings.columns
        for v in (self.min_exposures, self.max_exposures):
            if not isinstance(v, float):
                check_factors(v.index, factors, "FactorExposure bounds", "the loadings table")
        self._lo = by_label(self.min_exposures, factors, -np.inf)
        self._hi = by_label(self.max_exposures, factors, np.inf)
        self._check_order("FactorExposure", factors, self._lo, self._hi)

    def _describe(self):
        return f"FactorExposure(factors={list(self.loadings.columns)})"


class RiskModelExposure(_LoadingsBounds):
    """Per-factor bounds on the portfolio's exposure to a risk model's loadings.

    Quantopian's ``RiskModelExposure``: ``lo_k <= sum_i loadings[i, k] w_i <= hi_k`` for
    every factor ``k`` of the risk model, with a default bound for the factors not given
    one. Quantopian's version 0 bounded its own model's 11 sector exposures at +-0.18 and
    its 5 style exposures at +-0.36; a model here can hold anything (sector dummies,
    standardised styles, principal components, ETF betas, an intercept), so one
    symmetric default applies to every factor: +-``default_bound``, 0.18 unless given,
    Quantopian's tighter (sector) default, so that no factor is looser than Quantopian
    would have left it. ``RiskModelExposure(loadings, 0, 0)`` asks for a book neutral to
    every factor.

    Parameters
    ----------
    loadings : pandas.DataFrame or RiskModel
        Assets x factors (e.g. ``WLSResidual.loadings(frame)`` or
        ``FactorRiskModel.loadings(frame)``), or a
        :class:`~zipline_factorarb.optimize.RiskModel` (its ``loadings``). Every asset of
        the optimisation universe needs a row.
    min_exposure, max_exposure : float, pandas.Series or dict, optional
        Bounds for every factor (a number) or by factor (a factor missing from a Series
        gets the default). None: the default.
    bounds : dict, optional
        ``{factor: (min, max)}``, taking precedence over ``min_exposure`` /
        ``max_exposure``; either side may be None (the default for that side) or
        ``-inf`` / ``inf`` (unbounded).
    default_bound : float or None, default 0.18
        Factors without another bound are held within ``[-default_bound,
        default_bound]``; None or ``inf`` leaves them unbounded.
    benchmark_weights : pandas.Series, optional
        Bound the active exposure ``loadings' (w - b)`` instead.

    Examples
    --------
    >>> RiskModelExposure(loadings)                        # doctest: +SKIP
    ... # every factor within +-0.18
    >>> RiskModelExposure(loadings, bounds={"momentum": (-0.05, 0.05)},
    ...                   default_bound=0.1)               # doctest: +SKIP
    >>> RiskModelExposure(loadings, 0, 0)                  # doctest: +SKIP
    ... # neutral to every factor
    """

    #: Quantopian's version-0 bound on a sector exposure (its style bound was 0.36)
    DEFAULT_BOUND = 0.18
    _hint = ("widen the bounds of the factors named above (bounds={factor: (min, max)}, "
             "min_exposure / max_exposure, or default_bound)")

    def __init__(self, loadings, min_exposure=None, max_exposure=None, *, bounds=None,
                 default_bound=DEFAULT_BOUND, benchmark_weights=None):
        name = "RiskModelExposure"
        if isinstance(loadings, RiskModel):
            loadings = loadings.loadings
        self.loadings = self._data(loadings, f"{name}.loadings", frame=True)
        factors = self.loadings.columns
        if default_bound is None:
            default = np.inf
        else:
            default = check_number("default_bound", default_bound, allow_inf=True)
            if default < 0:
                raise ValueError(f"default_bound must be non-negative, got {default_bound!r}")
        self.default_bound = default
        self.min_exposure = self._given(min_exposure, f"{name}.min_exposure", factors)
        self.max_exposure = self._given(max_exposure, f"{name}.max_exposure", factors)
        lo = by_label(self.min_exposure, factors, -default)
        hi = by_label(self.max_exposure, factors, default)
        self.bounds = self._check_bounds(bounds, factors)
        pos = {f: j for j, f in enumerate(factors)}
        for factor, (low, high) in self.bounds.items():
            if low is not None:
                lo[pos[factor]] = low
            if high is not None:
                hi[pos[factor]] = high
        self._check_order(name, factors, lo, hi)
        self._lo, self._hi = lo, hi
        self.benchmark_weights = self._optional_benchmark(benchmark_weights)

    @staticmethod
    def _given(v, field, factors):
        if v is None:
            return None
        out = as_series(v, field, allow_scalar=True, finite=False)
        if isinstance(out, float):
            if np.isnan(out):
                raise ValueError(f"{field} is NaN; use +-inf for no bound or None for the default")
            return out
        check_factors(out.index, factors, field, "the loadings table")
        return out

    @staticmethod
    def _check_bounds(bounds, factors):
        if bounds is None:
            return {}
        if not isinstance(bounds, dict):
            raise TypeError("RiskModelExposure.bounds must be a dict {factor: (min, max)}, "
                            f"got {type(bounds).__name__}")
        check_factors(list(bounds), factors, "RiskModelExposure.bounds", "the loadings table")
        out = {}
        for factor, pair in bounds.items():
            try:
                low, high = pair
            except (TypeError, ValueError):
                raise TypeError(f"RiskModelExposure.bounds[{factor!r}] must be a pair (min, "
                                f"max), got {pair!r}") from None
            out[factor] = tuple(
                check_number(f"bounds[{factor!r}] {side}", x, allow_none=True,
                                         allow_inf=True)
                for x, side in ((low, "min"), (high, "max")))
        return out

    def _describe(self):
        factors = list(self.loadings.columns)
        shown = factors if len(factors) <= 6 else [*factors[:5], f"... ({len(factors)} in all)"]
        return f"RiskModelExposure(factors={shown}, default_bound={fmt(self.default_bound)})"



class NetGroupExposure(_LinearBounds):
    """Net weight of each group (e.g. sector) within bounds.

    Parameters
    ----------
    labels : pandas.Series
        Group label of each asset; assets without a label belong to no group.
    min_weights, max_weights : pandas.Series or float
        Bounds by group label (a number applies to every group; a group missing from a
        Series is unbounded on that side).
    """

    _hint = "widen the group bounds (min_weights / max_weights)"

    def __init__(self, labels, min_weights, max_weights):
        if not isinstance(labels, pd.Series):
            raise TypeError("NetGroupExposure.labels must be a pandas Series: asset -> group")
        if not labels.index.is_unique:
            self._defer(InvalidInput("NetGroupExposure.labels has duplicated assets",
                                     "NetGroupExposure.labels"))
            labels = labels[~labels.index.duplicated()]
        self.labels = labels
        self.min_weights = as_series(min_weights, "NetGroupExposure.min_weights",
                                     allow_scalar=True, finite=False)
        self.max_weights = as_series(max_weights, "NetGroupExposure.max_weights",
                                     allow_scalar=True, finite=False)

    @classmethod
    def with_equal_bounds(cls, labels, min, max):  # noqa: A002
        """The same ``[min, max]`` range for every group."""
        return cls(labels, float(min), float(max))

    def _describe(self):
        return "NetGroupExposure(groups={})".format(self.labels.dropna().nunique())

    def _prepare(self, ctx):
        pos = ctx.indexer(self.labels.index)
        lab = np.empty(ctx.n, dtype=object)
        have = pos >= 0
        lab[have] = self.labels.to_numpy()[pos[have]]
        member = have & pd.notna(lab)
        bounded = [g for v in (self.min_weights, self.max_weights)
                   if isinstance(v, pd.Series) for g in v.index]
        groups, codes = label_codes(lab[member], bounded)
        M = np.zeros((len(groups), ctx.n))
        M[codes, np.flatnonzero(member)] = 1.0
        lo = by_label(self.min_weights, groups, -np.inf)
        hi = by_label(self.max_weights, groups, np.inf)
        bad = lo > hi
        if bad.any():
            raise InvalidInput(
                "NetGroupExposure: min weight exceeds max weight for group "
                f"{groups[np.flatnonzero(bad)[0]]!r}", "NetGroupExposure")
        return self._bounds_data(lo, hi, {"M": M}, {"groups": groups})

    _matrix = "M"

    def _linear(self, w, src):
        return src["M"] @ w

    def _item(self, j, value, data):
        return f"group {data['groups'][j]!r} net weight {fmt(value)}"


class MaxTurnover(_L1Budget):
    """Turnover ``sum(|w - w_current|)`` at most ``max_turnover``.

    Parameters
    ----------
    max_turnover : float
    """

    _arg, _measure, _raise = "max_turnover", "turnover", "max_turnover"
    _from_current = True

    def __init__(self, max_turnover):
        self.max_turnover = check_number("max_turnover", max_turnover, low=0.0, low_open=True)


class _Pinned(Constraint):
    """The given assets' weights pinned to a target (``mask * w == target``): zero
    unless ``_target`` says otherwise. ``_moved`` words a violation (a template with
    ``{weight}``, ``{gap}`` and ``{asset}``)."""

    _moved = None

    def __init__(self, assets):
        self.assets = asset_list(assets)

    def _describe(self):
        return f"{type(self).__name__}({short_list(self.assets, 3)})"

    def _prepare(self, ctx):
        mask = np.zeros(ctx.n)
        mask[pd.Index(self.assets).get_indexer(ctx.universe) >= 0] = 1.0
        return TermData({"mask": mask, "target": self._target(mask, ctx)})

    def _build(self, w, p, data):
        return [cp.multiply(p["mask"], w) == p["target"]]

    def _violation(self, w, data):
        gap = np.abs(w * data["mask"] - data["target"])
        if gap.size == 0:
            return 0.0, ""
        i = int(np.argmax(gap))
        return float(gap[i]), self._moved.format(weight=fmt(w[i]), gap=fmt(gap[i]),
                                                 asset=asset_label(data, i))

    def _target(self, mask, ctx):
        return np.zeros(ctx.n)

    def _bounds(self, data):
        m = data["mask"] > 0
        return Bounds(lower=np.where(m, data["target"], -np.inf),
                      upper=np.where(m, data["target"], np.inf))


class CannotHold(_Pinned):
    """The given ``assets`` (an asset or a sequence of assets) must have zero weight."""

    _hint = "allow some of the CannotHold assets"
    _moved = "weight {weight} in {asset}, which cannot be held"


class Frozen(_Pinned):
    """The given ``assets`` (an asset or a sequence of assets) keep their current weight."""

    _hint = "unfreeze some of the Frozen assets"
    _moved = "weight of frozen {asset} moved by {gap}"

    def _assets(self):
        return pd.Index(self.assets)

    def _target(self, mask, ctx):
        return mask * ctx.current
