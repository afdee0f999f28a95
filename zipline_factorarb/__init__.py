"""zipline-factorarb: factor-residual statistical arbitrage for zipline-reloaded.

The main names of the package, importable from the top::

    from zipline_factorarb import (
        WLSResidual, KalmanInnovation, SScore, PCAResidual, FactorRiskModel,  # pipeline terms
        Sector, IsStock,                                                      # classifiers
        order_optimal_portfolio, MaximizeAlpha, TrackingError, RiskModel,     # optimizer
        register_bundles,                                                     # bundles
    )

Each name is also in its sub-package (:mod:`zipline_factorarb.pipeline`,
:mod:`zipline_factorarb.optimize`, :mod:`zipline_factorarb.data`), which
holds the complete lists; the layers are drawn in ``docs/architecture.md``
and the vocabulary in ``docs/glossary.md``.

The names are loaded lazily so that ``import zipline_factorarb`` (or
``zipline_factorarb.kernels``) stays cheap and has no side effects: zipline,
JAX and cvxpy are imported only when the object that needs them is used.
"""

from zipline_factorarb._lazy import lazy_namespace

__version__ = "0.1.0"

_PIPELINE = "zipline_factorarb.pipeline"
_OPTIMIZE = "zipline_factorarb.optimize"

# public name -> namespace or module that defines it
_LAZY = {
    # data bundles
    "register_bundles": "zipline_factorarb.data.register",
    "register_csv_bundle": "zipline_factorarb.data.register",
    "BundleDataError": "zipline_factorarb.data.errors",
    # pipeline terms
    **dict.fromkeys(
        ["WLSResidual", "StyleLoading", "KalmanInnovation", "DailyReturns", "SScore",
         "PCAResidual", "FactorRiskModel", "factor_risk_model_for_algorithm",
         "signal_columns", "alpha_scores", "expected_alphas"],
        _PIPELINE),
    # classifiers and filters
    **dict.fromkeys(["Sector", "AssetType", "IsStock", "IsETF", "IsIndex", "IsTradable"],
                    _PIPELINE),
    # optimizer: the order function, solving, objectives, constraints, risk model
    **dict.fromkeys(
        ["order_optimal_portfolio", "calculate_optimal_portfolio", "run_optimization",
         "MaximizeAlpha", "TargetWeights", "MaximizeFactorTilt", "MeanVariance",
         "RiskBudgeting",
         "TrackingError", "LongOnly", "NetExposure", "DollarNeutral", "MaxGrossExposure",
         "PositionConcentration", "FactorExposure", "RiskModelExposure", "NetGroupExposure",
         "MaxTurnover", "CannotHold", "Frozen",
         "RiskModel", "OptimizationError"],
        _OPTIMIZE),
}

__getattr__, __dir__, __all__ = lazy_namespace(__name__, _LAZY, extra=["__version__"])
