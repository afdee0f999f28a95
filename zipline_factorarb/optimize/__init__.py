"""Portfolio optimisation with a Quantopian-Optimize-style API plus tracking error.

Objectives and constraints are small objects; :func:`calculate_optimal_portfolio`
returns target weights, :func:`run_optimization` a full result (status, weights,
ex-ante tracking error, risk contributions, solver, timings), and
:func:`order_optimal_portfolio` trades to the target inside a zipline algorithm.
Problems are solved with cvxpy and Clarabel (falling back to another installed conic
solver), compiled once per structure and re-solved by updating parameters.

Example
-------
>>> from zipline_factorarb.optimize import (
...     MaximizeFactorTilt, TrackingError, LongOnly, NetExposure, RiskModel,
...     calculate_optimal_portfolio)
>>> model = RiskModel.from_returns(asset_returns, factor_returns, halflife=63)  # doctest: +SKIP
>>> weights = calculate_optimal_portfolio(                                       # doctest: +SKIP
...     MaximizeFactorTilt(mu_f, model),
...     [TrackingError(0.06, model, benchmark), LongOnly(), NetExposure(1, 1)])

Names are loaded lazily: importing this package does not import cvxpy or zipline.
"""

from zipline_factorarb._lazy import lazy_namespace

# public name -> module that defines it
_LAZY = {
    # objectives
    "Objective": "zipline_factorarb.optimize.objectives",
    "MaximizeAlpha": "zipline_factorarb.optimize.objectives",
    "TargetWeights": "zipline_factorarb.optimize.objectives",
    "MaximizeFactorTilt": "zipline_factorarb.optimize.objectives",
    "MeanVariance": "zipline_factorarb.optimize.objectives",
    "RiskBudgeting": "zipline_factorarb.optimize.objectives",
    # constraints
    "Constraint": "zipline_factorarb.optimize.constraints",
    "TrackingError": "zipline_factorarb.optimize.constraints",
    "LongOnly": "zipline_factorarb.optimize.constraints",
    "NetExposure": "zipline_factorarb.optimize.constraints",
    "DollarNeutral": "zipline_factorarb.optimize.constraints",
    "MaxGrossExposure": "zipline_factorarb.optimize.constraints",
    "PositionConcentration": "zipline_factorarb.optimize.constraints",
    "FactorExposure": "zipline_factorarb.optimize.constraints",
    "RiskModelExposure": "zipline_factorarb.optimize.constraints",
    "NetGroupExposure": "zipline_factorarb.optimize.constraints",
    "MaxTurnover": "zipline_factorarb.optimize.constraints",
    "CannotHold": "zipline_factorarb.optimize.constraints",
    "Frozen": "zipline_factorarb.optimize.constraints",
    # writing a constraint (see Constraint): its prepared data, bounds and risk
    "TermData": "zipline_factorarb.optimize._base",
    "Bounds": "zipline_factorarb.optimize._base",
    "RiskTerm": "zipline_factorarb.optimize._base",
    # costs
    "Cost": "zipline_factorarb.optimize.costs",
    "LinearCost": "zipline_factorarb.optimize.costs",
    "MarketImpact": "zipline_factorarb.optimize.costs",
    "BorrowCost": "zipline_factorarb.optimize.costs",
    "CostModel": "zipline_factorarb.optimize.costs",
    # risk model
    "RiskModel": "zipline_factorarb.optimize.risk_model",
    "RiskDecomposition": "zipline_factorarb.optimize.risk_model",
    "DegenerateRiskWarning": "zipline_factorarb.optimize.risk_model",
    "FactorModel": "zipline_factorarb.optimize.factor_model",
    "make_benchmark_weights": "zipline_factorarb.optimize.risk_model",
    "proxy_benchmark_weights": "zipline_factorarb.optimize.risk_model",
    "SectorRotationModel": "zipline_factorarb.optimize.sectors",
    "sector_rotation_model": "zipline_factorarb.optimize.sectors",
    "expand_sector_weights": "zipline_factorarb.optimize.sectors",
    # solving
    "calculate_optimal_portfolio": "zipline_factorarb.optimize.problem",
    "run_optimization": "zipline_factorarb.optimize.problem",
    "OptimizationResult": "zipline_factorarb.optimize.problem",
    "ProblemCache": "zipline_factorarb.optimize.problem",
    "available_solvers": "zipline_factorarb.optimize.problem",
    "calibrate_risk_aversion": "zipline_factorarb.optimize.calibration",
    "CalibrationResult": "zipline_factorarb.optimize.calibration",
    # zipline order function
    "order_optimal_portfolio": "zipline_factorarb.optimize.orders",
    "plan_orders": "zipline_factorarb.optimize.orders",
    "order_target_weights": "zipline_factorarb.optimize.orders",
    "current_portfolio_weights": "zipline_factorarb.optimize.orders",
    "PlannedOrder": "zipline_factorarb.optimize.orders",
    "OrderResult": "zipline_factorarb.optimize.orders",
    "optimal_target": "zipline_factorarb.optimize.orders",
    "OptimalTarget": "zipline_factorarb.optimize.orders",
    # records for the crisis report
    "risk_records": "zipline_factorarb.optimize.records",
    "cost_records": "zipline_factorarb.optimize.records",
    "sector_weights": "zipline_factorarb.optimize.records",
    "BenchmarkTracker": "zipline_factorarb.optimize.records",
    # errors
    "OptimizationError": "zipline_factorarb.optimize.errors",
    "InfeasibleConstraints": "zipline_factorarb.optimize.errors",
    "UnboundedObjective": "zipline_factorarb.optimize.errors",
    "OptimizationFailed": "zipline_factorarb.optimize.errors",
    "InvalidInput": "zipline_factorarb.optimize.errors",
    "NonFiniteInput": "zipline_factorarb.optimize.errors",
    "UnknownAssets": "zipline_factorarb.optimize.errors",
    "DegenerateRiskModel": "zipline_factorarb.optimize.errors",
    "OptimizationWarning": "zipline_factorarb.optimize.errors",
}

__getattr__, __dir__, __all__ = lazy_namespace(__name__, _LAZY)
