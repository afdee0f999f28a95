"""Portfolio objectives (Quantopian Optimize names, plus factor-model forms)."""

from __future__ import annotations

import numpy as np
import cvxpy as cp
import pandas as pd

from ._base import Term, as_series, fmt, short_list
from .risk_model import RiskModel

__all__ = ["Objective", "MaximizeAlpha", "TargetWeights", "MaximizeFactorTilt", "MeanVariance"]


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


def _factor_vector(expected_factor_returns, risk_model, field):
    mu = as_series(expected_factor_returns, field)
    extra = mu.index.difference(risk_model.factors)
    if len(extra):
        raise ValueError(
            f"{field} names factors the risk model does not have: {short_list(extra)} "
            f"(its factors: {list(risk_model.factors)})"
        )
    return mu.reindex(risk_model.factors, fill_value=0.0).to_numpy()


def _check_risk_model(risk_model):
    if not isinstance(risk_model, RiskModel):
        raise TypeError(f"risk_model must be a RiskModel, got {type(risk_model).__name__}")
    return risk_model


class MaximizeAlpha(Objective):
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

    def __init__(self, alphas):
        self.alphas = as_series(alphas, "MaximizeAlpha.alphas")

    def _describe(self):
        return f"MaximizeAlpha({len(self.alphas)} assets)"

    def _assets(self):
        return self.alphas.index

    def _prepare(self, ctx):
        return {"alpha": ctx.align(self.alphas)}

    def _build(self, w, p, data):
        return cp.Maximize(p["alpha"] @ w)

    def _value(self, w, data):
        return float(data["alpha"] @ w)


class TargetWeights(Objective):
    """Minimise the squared distance ``||w - target||^2`` to target weights.

    Parameters
    ----------
    weights : pandas.Series
        Target weights by asset; defines the universe (others target zero).
    """

    def __init__(self, weights):
        self.weights = as_series(weights, "TargetWeights.weights")

    def _describe(self):
        return f"TargetWeights({len(self.weights)} assets)"

    def _assets(self):
        return self.weights.index

    def _prepare(self, ctx):
        return {"target": ctx.align(self.weights)}

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
        self.risk_model = _check_risk_model(risk_model)
        self._mu = _factor_vector(expected_factor_returns, risk_model,
                                  "MaximizeFactorTilt.expected_factor_returns")
        self.expected_factor_returns = pd.Series(self._mu, index=risk_model.factors)
        self.benchmark_weights = (None if benchmark_weights is None else
                                  as_series(benchmark_weights, "MaximizeFactorTilt.benchmark_weights"))

    def _describe(self):
        return f"MaximizeFactorTilt(factors={list(self.risk_model.factors)})"

    def _assets(self):
        return self.risk_model.assets

    def _benchmark(self):
        return self.benchmark_weights

    def _risk_reference(self):
        return self.risk_model, self.benchmark_weights, None

    def _prepare(self, ctx):
        r = ctx.risk(self.risk_model)
        c = r.F.T @ self._mu
        b = np.zeros(ctx.n) if self.benchmark_weights is None else ctx.align(self.benchmark_weights)
        return {"alpha": c, "_offset": float(c @ b)}

    def _build(self, w, p, data):
        return cp.Maximize(p["alpha"] @ w)

    def _value(self, w, data):
        return float(data["alpha"] @ w - data["_offset"])


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
        self.risk_model = _check_risk_model(risk_model)
        if (expected_returns is None) == (expected_factor_returns is None):
            raise TypeError("give exactly one of expected_returns and expected_factor_returns")
        self.expected_returns = (None if expected_returns is None else
                                 as_series(expected_returns, "MeanVariance.expected_returns"))
        self._mu_f = (None if expected_factor_returns is None else
                      _factor_vector(expected_factor_returns, risk_model,
                                     "MeanVariance.expected_factor_returns"))
        gamma = float(risk_aversion)
        if not np.isfinite(gamma) or gamma <= 0:
            raise ValueError(f"risk_aversion must be a positive number, got {risk_aversion!r}")
        self.risk_aversion = gamma
        self.benchmark_weights = (None if benchmark_weights is None else
                                  as_series(benchmark_weights, "MeanVariance.benchmark_weights"))

    def _describe(self):
        form = "factor" if self._mu_f is not None else "asset"
        return (f"MeanVariance({form} expected returns, risk_aversion={fmt(self.risk_aversion)}"
                f"{', active' if self.benchmark_weights is not None else ''})")

    def _assets(self):
        if self.expected_returns is not None:
            idx = self.expected_returns.index
        else:
            idx = self.risk_model.assets
        if self.benchmark_weights is not None:
            b = self.benchmark_weights
            idx = idx.append(b.index[b.to_numpy() != 0])
        return idx

    def _benchmark(self):
        return self.benchmark_weights

    def _risk_reference(self):
        return self.risk_model, self.benchmark_weights, None

    def _prepare(self, ctx):
        r = ctx.risk(self.risk_model)
        mu = ctx.align(self.expected_returns) if self._mu_f is None else r.F.T @ self._mu_f
        b = np.zeros(ctx.n) if self.benchmark_weights is None else ctx.align(self.benchmark_weights)
        return {
            "alpha": mu / self.risk_aversion,
            "G": r.G,
            "Gb": r.G @ b,
            "s": r.s,
            "sb": r.s * b,
            "_mu": mu,
            "_b": b,
        }

    def _build(self, w, p, data):
        risk = cp.sum_squares(p["G"] @ w - p["Gb"]) + cp.sum_squares(cp.multiply(p["s"], w) - p["sb"])
        return cp.Maximize(p["alpha"] @ w - risk)

    def _cost_scale(self, data):
        # the problem maximises (mu / gamma)' w - risk: costs (return units) / gamma
        return 1.0 / self.risk_aversion

    def _variance(self, w, data):
        a = w - data["_b"]
        return float(np.sum((data["G"] @ a) ** 2) + np.sum((data["s"] * a) ** 2))

    def _value(self, w, data):
        return float(data["_mu"] @ w - self.risk_aversion * self._variance(w, data))
