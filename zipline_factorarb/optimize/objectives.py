"""Portfolio objectives (Quantopian Optimize names, plus factor-model forms)."""

from __future__ import annotations

import numpy as np
import cvxpy as cp
import pandas as pd

from ..checks import check_instance, check_number
from ..kernels import risk as kr
from ._base import RiskTerm, Term, TermData, as_series, check_factors, fmt, short_list
from .risk_model import RiskModel

__all__ = ["Objective", "MaximizeAlpha", "TargetWeights", "MaximizeFactorTilt", "MeanVariance",
           "RiskBudgeting"]


class Objective(Term):
    """Base class of objectives."""

    #: a linear objective needs constraints that bound the portfolio
    _linear = False

    def _value(self, w, data):
        """The objective's value at the numpy weights ``w`` (as reported)."""
        raise NotImplementedError  # pragma: no cover

    def _linear_coefficients(self, data):
        """``c`` of a linear objective ``maximise c' w`` (for the unboundedness test), or
        None when the objective is not linear."""
        return data["alpha"] if self._linear else None

    def _cost_scale(self, data):
        """Factor applied to cost terms so that they are in the units of the compiled
        objective (1: the objective is compiled in return units)."""
        return 1.0

    def _check_constraints(self, constraints, costs=()):
        """Refuse (``TypeError``) constraints or costs this objective's formulation
        cannot honour; called before anything is built. Default: accept all."""

    def _finish(self, w, data):
        """The weights from the solver's solution ``w`` (default: ``w`` itself)."""
        return w


def _factor_vector(term, expected_factor_returns, risk_model, field):
    mu = term._data(expected_factor_returns, field)  # NaN: raised when solved
    check_factors(mu.index, risk_model.factors, field)
    return mu.reindex(risk_model.factors, fill_value=0.0).to_numpy()


class _ByAsset(Objective):
    """An objective on one Series by asset (attribute ``_attr``), which defines the
    universe and is aligned on it as the parameter ``_param``."""

    _attr = _param = None

    def _describe(self):
        return f"{type(self).__name__}({len(getattr(self, self._attr))} assets)"

    def _assets(self):
        return getattr(self, self._attr).index

    def _prepare(self, ctx):
        return TermData({self._param: ctx.align(getattr(self, self._attr))})


class MaximizeAlpha(_ByAsset):
    """Maximise ``alphas' w``.

    A linear objective: the constraints must bound the portfolio (for instance
    ``MaxGrossExposure``, ``LongOnly`` with ``NetExposure``, a ``TrackingError`` or
    ``MaxTurnover``), otherwise :class:`~.errors.UnboundedObjective` is raised before
    solving.

    Parameters
    ----------
    alphas : pandas.Series
        Expected return (or any score) by asset; defines the universe. NaN is an error:
        drop those assets first.
    """

    _linear = True
    _attr, _param = "alphas", "alpha"

    def __init__(self, alphas):
        self.alphas = self._data(alphas, "MaximizeAlpha.alphas")

    def _build(self, w, p, data):
        return cp.Maximize(p["alpha"] @ w)

    def _value(self, w, data):
        return float(data["alpha"] @ w)


class TargetWeights(_ByAsset):
    """Minimise the squared distance ``||w - target||^2`` to target weights.

    Parameters
    ----------
    weights : pandas.Series
        Target weights by asset; defines the universe (others target zero).
    """

    _attr, _param = "weights", "target"

    def __init__(self, weights):
        self.weights = self._data(weights, "TargetWeights.weights")

    def _build(self, w, p, data):
        return cp.Minimize(cp.sum_squares(w - p["target"]))

    def _value(self, w, data):
        return float(np.sum((w - data["target"]) ** 2))


class MaximizeFactorTilt(Objective):
    """Maximise the expected active factor return ``mu_f' F (w - b)``.

    The objective of the research's tracking-error-budget portfolio: combine it with
    :class:`~.constraints.TrackingError`, ``LongOnly`` and ``NetExposure(1, 1)``.

    Parameters
    ----------
    expected_factor_returns : pandas.Series
        ``mu_f`` by factor name; factors missing from it count as zero. For a model with
        a constant (intercept) factor, ``const=1`` adds the assets' intercepts (alphas)
        to the expected return, as the research did.
    risk_model : RiskModel
        Supplies the loadings F; its assets define the universe.
    benchmark_weights : pandas.Series, optional
        Only shifts the reported value by the constant ``mu_f' F b``.
    """

    _linear = True

    def __init__(self, expected_factor_returns, risk_model, benchmark_weights=None):
        self.risk_model = check_instance("risk_model", risk_model, RiskModel)
        self._mu = _factor_vector(self, expected_factor_returns, risk_model,
                                  "MaximizeFactorTilt.expected_factor_returns")
        self.expected_factor_returns = pd.Series(self._mu, index=risk_model.factors)
        self.benchmark_weights = self._optional_benchmark(benchmark_weights)

    def _describe(self):
        return f"MaximizeFactorTilt(factors={list(self.risk_model.factors)})"

    def _assets(self):
        return self.risk_model.assets

    def _prepare(self, ctx):
        r = ctx.risk(self.risk_model, f"{self!r}.risk_model")
        c = r.F.T @ self._mu
        b = ctx.align(self.benchmark_weights)
        return TermData({"alpha": c}, {"offset": float(c @ b)})

    def _build(self, w, p, data):
        return cp.Maximize(p["alpha"] @ w)

    def _value(self, w, data):
        return float(data["alpha"] @ w - data["offset"])


class MeanVariance(Objective):
    """Maximise ``mu' w - risk_aversion * (w - b)' Sigma (w - b)``.

    With a benchmark this is the research's risk-aversion form, ``mu_f' f - gamma (f'
    Sigma_f f + ||sqrt(E) (w - b)||^2)`` with ``f = F (w - b)``; without one, ``b = 0``
    (total risk). Internally the problem maximises ``(mu / gamma)' w - risk``, which has
    the same solution and keeps ``risk_aversion`` a re-solvable parameter.

    Parameters
    ----------
    expected_returns : pandas.Series, optional
        Expected (per-period) return by asset; assets of the universe missing from it
        count as zero.
    risk_model : RiskModel
        Per-period risk model.
    risk_aversion : float, default 1.0
        gamma > 0, in the units of per-period variance.
    expected_factor_returns : pandas.Series, optional
        The factor form: ``mu = F' mu_f`` (give this or ``expected_returns``).
    benchmark_weights : pandas.Series, optional
        Penalise active rather than total risk.
    """

    _nonneg = frozenset({"s"})

    def __init__(self, expected_returns=None, risk_model=None, risk_aversion=1.0, *,
                 expected_factor_returns=None, benchmark_weights=None):
        if risk_model is None:
            raise TypeError("MeanVariance needs a risk_model")
        self.risk_model = check_instance("risk_model", risk_model, RiskModel)
        if (expected_returns is None) == (expected_factor_returns is None):
            raise TypeError("give exactly one of expected_returns and expected_factor_returns")
        self.expected_returns = (None if expected_returns is None else
                                 self._data(expected_returns, "MeanVariance.expected_returns"))
        self._mu_f = (None if expected_factor_returns is None else
                      _factor_vector(self, expected_factor_returns, risk_model,
                                     "MeanVariance.expected_factor_returns"))
        self.risk_aversion = check_number("risk_aversion", risk_aversion, low=0.0,
                                          low_open=True)
        self.benchmark_weights = self._optional_benchmark(benchmark_weights)

    def _describe(self):
        form = "factor" if self._mu_f is not None else "asset"
        return (f"MeanVariance({form} expected returns, risk_aversion={fmt(self.risk_aversion)}"
                f"{', active' if self.benchmark_weights is not None else ''})")

    def _assets(self):
        idx = (self.risk_model.assets if self.expected_returns is None
               else self.expected_returns.index)
        if self.benchmark_weights is not None:
            b = self.benchmark_weights
            idx = idx.append(b.index[b.to_numpy() != 0])
        return idx

    def _prepare(self, ctx):
        r = ctx.risk(self.risk_model, f"{self!r}.risk_model")
        mu = ctx.align(self.expected_returns) if self._mu_f is None else r.F.T @ self._mu_f
        b = ctx.align(self.benchmark_weights)
        return TermData(
            {"alpha": mu / self.risk_aversion, "G": r.G, "Gb": r.G @ b, "s": r.s,
             "sb": r.s * b},
            {"mu": mu, "b": b})

    def _build(self, w, p, data):
        risk = (cp.sum_squares(p["G"] @ w - p["Gb"])
                + cp.sum_squares(cp.multiply(p["s"], w) - p["sb"]))
        return cp.Maximize(p["alpha"] @ w - risk)

    def _risk(self, data):
        return RiskTerm(data["G"], data["s"], data["b"])

    def _cost_scale(self, data):
        # the problem maximises (mu / gamma)' w - risk: costs (return units) / gamma
        return 1.0 / self.risk_aversion

    def _value(self, w, data):
        return float(data["mu"] @ w - self.risk_aversion * self._risk(data).variance(w))


class RiskBudgeting(Objective):
    """Long-only weights whose contributions to total risk match given budgets.

    The risk contribution of asset ``i`` is its Euler share ``w_i (Sigma w)_i`` of the
    variance ``w' Sigma w``, and that of factor ``j`` is ``f_j (Sigma_f f)_j`` with
    ``f = F w`` (:func:`~zipline_factorarb.kernels.risk.risk_contributions`). Equal
    budgets by asset give the risk-parity (equal risk contribution) portfolio.

    **By asset** (``budgets``; the default, equal budgets): the portfolio holds
    ``w_i (Sigma w)_i / w' Sigma w = b_i`` for budgets ``b`` summing to one. Convex
    formulation, compiled once and re-solved with new parameters: the log-barrier
    problem of Spinu (2013) and Roncalli (2013),

        ``minimise 0.5 x' Sigma x - sum_i b_i log x_i``  (so ``x > 0``),

    whose first-order condition is ``x_i (Sigma x)_i = b_i``; the weights are then
    ``w = x / sum(x)``, and contributions are homogeneous of degree two, so the shares
    equal the budgets exactly (to solver tolerance). ``Sigma`` is the risk model's
    ``F' Sigma_f F + diag(E)``, entered through its factor root.

    **By group** (sector; ``group_budgets`` with ``groups``): each group's budget is
    split equally among its assets (``b_i = B_g / n_g``) and the asset problem is
    solved; a group's contribution is the sum of its assets', so it equals ``B_g``
    (with equal risk inside the group).

    **By factor** (``factor_budgets``): shares of the *systematic* (factor) variance
    ``f' Sigma_f f`` equal to the budgets, the specific variance as small as the
    budgets allow. Two convex steps: the factor exposures ``y`` that hold the budgets
    solve the log-barrier problem in factor space (``y_j (Sigma_f y)_j = B_j``,
    :func:`~zipline_factorarb.kernels.risk.risk_budget_weights`, with ``Sigma_f``
    sign-flipped by ``factor_signs`` for negative exposures); then the compiled
    problem is ``minimise sum_i E_i w_i^2`` subject to ``F w`` parallel to ``y``
    (``P F w = 0`` with ``P`` the projection orthogonal to ``y``, and ``y' F w >= 0``),
    ``w >= 0`` and ``sum(w) = 1``. Every factor of the model with non-zero variance
    needs a budget (the intercept ``"const"`` has none). A universe whose long-only
    portfolios cannot reach those exposures is reported as infeasible.

    Constraints: in the asset and group forms the barrier point must be free to
    scale (a constraint on it would change its first-order condition) and it is
    rescaled after solving, so only :class:`~.constraints.LongOnly` (implied) is
    accepted; any other constraint (``NetExposure(1, 1)`` included: the weights sum to
    one anyway), and any cost, is refused with a ``TypeError`` before solving. The
    factor form is an ordinary constrained problem and takes any other constraint and
    costs (which can make it infeasible).

    Parameters
    ----------
    risk_model : RiskModel
        Per-period risk model; every asset of the budgets must be in it.
    budgets : pandas.Series, optional
        Positive budgets by asset (normalised to sum to one); they define the
        universe. Default: equal budgets on the risk model's assets (risk parity).
    group_budgets : mapping or pandas.Series, optional
        Positive budgets by group; needs ``groups``.
    groups : pandas.Series, optional
        Group (e.g. sector) of each asset; the universe is the assets whose group has
        a budget.
    factor_budgets : mapping or pandas.Series, optional
        Positive budgets by factor; the universe is the risk model's assets.
    factor_signs : mapping, optional
        ``{factor: -1}`` for a factor whose exposure should be negative (default +1).
    """

    _nonneg = frozenset({"s", "b"})
    #: constraints the rescaled log-barrier solution (asset and group forms) can satisfy
    _COMPATIBLE = ("LongOnly",)

    def __init__(self, risk_model, budgets=None, *, group_budgets=None, groups=None,
                 factor_budgets=None, factor_signs=None):
        self.risk_model = check_instance("risk_model", risk_model, RiskModel)
        forms = [budgets is not None, group_budgets is not None or groups is not None,
                 factor_budgets is not None]
        if sum(forms) > 1:
            raise TypeError("give one of budgets (by asset), group_budgets with groups, or "
                            "factor_budgets")
        self.groups = self.group_budgets = self.factor_budgets = None
        self.factor_signs = None
        if factor_budgets is not None:
            self._init_factor(factor_budgets, factor_signs)
            return
        if factor_signs is not None:
            raise TypeError("factor_signs goes with factor_budgets")
        if forms[1]:
            if group_budgets is None or groups is None:
                raise TypeError("group_budgets and groups go together")
            gb = self._positive(group_budgets, "RiskBudgeting.group_budgets", "group")
            g = pd.Series(groups)
            g = g[g.isin(gb.index)]
            missing = gb.index.difference(pd.Index(g.unique()))
            if len(missing):
                raise ValueError(f"RiskBudgeting.group_budgets names groups without assets: "
                                 f"{short_list(missing)}")
            counts = g.value_counts()
            budgets = pd.Series(gb.reindex(g.to_numpy()).to_numpy()
                                / counts.reindex(g.to_numpy()).to_numpy(), index=g.index)
            self.groups = g
            self.group_budgets = gb
        elif budgets is None:
            budgets = pd.Series(1.0, index=risk_model.assets)
        b = self._positive(budgets, "RiskBudgeting.budgets", "asset")
        missing = b.index.difference(risk_model.assets)
        if len(missing):
            raise ValueError(f"RiskBudgeting.budgets names assets the risk model does not "
                             f"cover: {short_list(missing)}")
        self.budgets = b

    @staticmethod
    def _positive(values, field, what):
        b = as_series(values, field)
        if (b.to_numpy() <= 0).any():
            bad = b.index[b.to_numpy() <= 0][0]
            raise ValueError(f"{field} must be positive; {bad!r} has {b[bad]!r} (leave an "
                             f"{what} out to give it no weight)")
        return b / b.sum()

    def _init_factor(self, factor_budgets, factor_signs):
        model = self.risk_model
        fb = self._positive(factor_budgets, "RiskBudgeting.factor_budgets", "factor")
        check_factors(fb.index, model.factors, "RiskBudgeting.factor_budgets")
        cov = model.factor_covariance
        risky = [f for f in model.factors if cov.loc[f, f] > 0]
        missing = [f for f in risky if f not in fb.index]
        if missing:
            raise ValueError(f"RiskBudgeting.factor_budgets lacks factors with risk: "
                             f"{short_list(missing)}; every factor with non-zero variance "
                             "needs a budget")
        riskless = [f for f in fb.index if f not in risky]
        if riskless:
            raise ValueError(f"RiskBudgeting.factor_budgets gives a budget to factors with no "
                             f"variance: {short_list(riskless)}")
        signs = pd.Series(1.0, index=fb.index)
        for name, sign in dict(factor_signs or {}).items():
            if name not in signs.index or sign not in (1, -1):
                raise ValueError(f"factor_signs must map budgeted factors to +1 or -1, got "
                                 f"{name!r}: {sign!r}")
            signs[name] = float(sign)
        self.factor_budgets = fb
        self.factor_signs = signs
        S = cov.loc[fb.index, fb.index].to_numpy(dtype=float)
        D = signs.to_numpy()
        z = kr.risk_budget_weights(D[:, None] * S * D[None, :], fb.to_numpy())
        y = D * z
        self._exposure_direction = y / np.linalg.norm(y)
        self.budgets = pd.Series(1.0 / len(model.assets), index=model.assets)

    def _describe(self):
        if self.factor_budgets is not None:
            return f"RiskBudgeting(factors={list(self.factor_budgets.index)})"
        kind = f"{len(self.group_budgets)} groups" if self.group_budgets is not None \
            else f"{len(self.budgets)} assets"
        return f"RiskBudgeting({kind})"

    def _assets(self):
        return self.budgets.index

    def _structure(self, data):
        return ("factor",) if self.factor_budgets is not None else ("barrier",)

    def _check_constraints(self, constraints, costs=()):
        """Refuse constraints and costs the rescaled barrier solution cannot honour."""
        if self.factor_budgets is not None:
            return
        for c in constraints:
            if type(c).__name__ not in self._COMPATIBLE:
                raise TypeError(
                    f"{self!r} cannot be combined with {c!r}: its log-barrier solution is "
                    "rescaled to sum to one after solving (so its weights are fully "
                    "invested and long only already), and a constraint on the barrier point "
                    "would change its risk contributions; only LongOnly is accepted. Drop "
                    "the constraint, budget by factor (factor_budgets), or use MeanVariance "
                    "/ TargetWeights with it")
        if costs:
            raise TypeError(f"{self!r} cannot take costs: the rescaled log-barrier "
                            "solution does not optimise them")

    def _prepare(self, ctx):
        r = ctx.risk(self.risk_model, f"{self!r}.risk_model")
        if self.factor_budgets is not None:
            pos = self.risk_model.factors.get_indexer(self.factor_budgets.index)
            FB = r.F[pos]
            y = self._exposure_direction
            P = np.eye(len(y)) - np.outer(y, y)
            Sf = self.risk_model.factor_covariance.to_numpy(dtype=float)[np.ix_(pos, pos)]
            scale = float(np.sqrt(np.mean(r.s ** 2))) or 1.0
            return TermData({"PF": P @ FB, "yF": y @ FB, "s": r.s / scale},
                            {"_G": r.G, "_sd": r.s, "_FB": FB, "_Sf": Sf,
                             "_b": self.factor_budgets.to_numpy()})
        b = ctx.align(self.budgets)
        if (b <= 0).any():
            extra = [ctx.universe[i] for i in np.flatnonzero(b <= 0)]
            raise ValueError(f"{self!r}: assets of the universe have no risk budget: "
                             f"{short_list(extra)} (current positions or other terms' assets "
                             "join the universe; give them a budget or close them first)")
        # scale: solve for x in units where the barrier weights are of order one
        scale = float(np.sqrt(np.mean(np.sum(r.G ** 2, axis=0) + r.s ** 2)))
        if not scale > 0:  # a riskless model: the engine refuses it (DegenerateRiskModel)
            scale = 1.0
        return TermData({"G": r.G / scale, "s": r.s / scale, "b": b},
                        {"_G": r.G, "_sd": r.s, "_b": b})

    def _build(self, w, p, data):
        if self.factor_budgets is not None:
            cons = [p["PF"] @ w == 0, p["yF"] @ w >= 0, w >= 0, cp.sum(w) == 1]
            return cp.Minimize(cp.sum_squares(cp.multiply(p["s"], w))), cons
        risk = cp.sum_squares(p["G"] @ w) + cp.sum_squares(cp.multiply(p["s"], w))
        return cp.Minimize(0.5 * risk - p["b"] @ cp.log(w))

    def _risk(self, data):
        return RiskTerm(data["_G"], data["_sd"], np.zeros(len(data["_sd"])))

    def _finish(self, w, data):
        """The solved barrier point rescaled to weights that sum to one."""
        w = np.maximum(np.asarray(w, dtype=float), 0.0)
        return w / w.sum()

    def _value(self, w, data):
        """Largest gap between a risk share and its budget (0 at the solution): asset
        shares of the variance, or factor shares of the systematic variance."""
        if self.factor_budgets is not None:
            f = data["_FB"] @ w
            contrib = f * (data["_Sf"] @ f)
        else:
            G, s = data["_G"], data["_sd"]
            contrib = w * (G.T @ (G @ w) + s * s * w)
        total = contrib.sum()
        return float(np.max(np.abs(contrib / total - data["_b"]))) if total > 0 else float("nan")
