"""Calibrate the risk aversion of a mean-variance portfolio to a tracking-error target."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..checks import check_number
from .objectives import MeanVariance
from .problem import run_optimization

__all__ = ["CalibrationResult", "calibrate_risk_aversion"]


@dataclass(frozen=True)
class CalibrationResult:
    """Outcome of :func:`calibrate_risk_aversion`.

    Attributes
    ----------
    risk_aversion : float
        The calibrated gamma.
    tracking_error : float
        Annualised ex-ante tracking error of the portfolio at that gamma.
    weights : pandas.Series
        That portfolio.
    iterations : int
        Optimisations solved.
    converged : bool
        Whether ``|tracking_error - target| <= rtol * target`` was reached.
    history : list of tuple
        ``(risk_aversion, tracking_error)`` for every solve, in order.
    """

    risk_aversion: float
    tracking_error: float
    weights: pd.Series
    iterations: int
    converged: bool
    history: list = field(default_factory=list)


def calibrate_risk_aversion(target_tev, risk_model, benchmark_weights, *, expected_returns=None,
                            expected_factor_returns=None, constraints=(), periods_per_year=252,
                            bounds=(1e-3, 1e9), rtol=1e-4, max_iter=60, current_weights=None,
                            **kwargs):
    """Find the risk aversion gamma whose mean-variance portfolio has a given ex-ante TEV.

    The tracking error of the optimum of ``MeanVariance(..., risk_aversion=gamma,
    benchmark_weights=b)`` falls as gamma grows. The search brackets the target between
    ``bounds`` and narrows the bracket on ``log(gamma)``, alternating a log-log secant
    step with plain bisection (so it converges at least as fast as bisection). Every
    solve re-uses the same compiled problem: only the parameters change.

    Parameters
    ----------
    target_tev : float
        Annualised tracking-error target (e.g. 0.06, as the research anchored gamma).
    risk_model : RiskModel
    benchmark_weights : pandas.Series
    expected_returns, expected_factor_returns : pandas.Series
        As in :class:`MeanVariance` (give one).
    constraints : sequence of Constraint
        E.g. ``[LongOnly(), NetExposure(1, 1)]``.
    periods_per_year : float, default 252
        Periods of the risk model per year.
    bounds : tuple of float, default (1e-3, 1e9)
        Search range of gamma.
    rtol : float, default 1e-4
        Relative tolerance on the tracking error.
    max_iter : int, default 60
    current_weights : pandas.Series, optional
    **kwargs
        Passed to :func:`run_optimization`.

    Returns
    -------
    CalibrationResult

    Raises
    ------
    ValueError
        If the target lies outside the tracking errors reachable within ``bounds``
        (the message gives the reachable range and what to change).
    """
    target = check_number("target_tev", target_tev, low=0.0, low_open=True)
    lo, hi = (float(x) for x in bounds)
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds!r}")
    history = []

    def solve(gamma):
        obj = MeanVariance(expected_returns, risk_model, gamma,
                           expected_factor_returns=expected_factor_returns,
                           benchmark_weights=benchmark_weights)
        res = run_optimization(obj, constraints, current_weights,
                               periods_per_year=periods_per_year, **kwargs).raise_for_status()
        tev = risk_model.tracking_error(res.new_weights, benchmark_weights, periods_per_year)
        history.append((gamma, tev))
        return tev, res.new_weights

    def done(gamma, tev, w, converged=True):
        return CalibrationResult(gamma, tev, w, len(history), converged, history)

    tev_lo, w_lo = solve(lo)
    if abs(tev_lo - target) <= rtol * target:
        return done(lo, tev_lo, w_lo)
    if tev_lo < target:
        raise ValueError(
            f"the tracking error at the smallest risk aversion {lo:g} is only {tev_lo:.4%}, "
            f"below the target {target:.4%}: lower bounds[0], or loosen the constraints that "
            "cap the active risk (e.g. position bounds, LongOnly)"
        )
    tev_hi, w_hi = solve(hi)
    if abs(tev_hi - target) <= rtol * target:
        return done(hi, tev_hi, w_hi)
    if tev_hi > target:
        raise ValueError(
            f"the tracking error at the largest risk aversion {hi:g} is still {tev_hi:.4%}, "
            f"above the target {target:.4%}: raise bounds[1], or check that the constraints "
            "let the portfolio approach the benchmark"
        )
    a, b = np.log(lo), np.log(hi)
    fa, fb = tev_lo, tev_hi
    best = min([(lo, tev_lo, w_lo), (hi, tev_hi, w_hi)], key=lambda t: abs(t[1] - target))
    for it in range(max_iter):
        mid = 0.5 * (a + b)
        x = mid
        if it % 2 == 0 and fa > 0 and fb > 0:
            la, lb = np.log(fa), np.log(fb)
            if la != lb:
                cand = a + (np.log(target) - la) * (b - a) / (lb - la)
                if a + 0.01 * (b - a) < cand < b - 0.01 * (b - a):
                    x = cand
        gamma = float(np.exp(x))
        tev, w = solve(gamma)
        if abs(tev - target) < abs(best[1] - target):
            best = (gamma, tev, w)
        if abs(tev - target) <= rtol * target:
            return done(gamma, tev, w)
        if tev > target:
            a, fa = x, tev
        else:
            b, fb = x, tev
        if b - a < 1e-12:
            break
    return done(*best, converged=False)
