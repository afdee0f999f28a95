"""Pipeline terms of zipline-factorarb (zipline adapters around the kernels).

Names load lazily: ``from zipline_factorarb.pipeline import WLSResidual``
imports zipline (and JAX for the Kalman terms) only when the name is used.
"""

from zipline_factorarb._lazy import lazy_namespace

_LAZY = {
    # residual signals
    "WLSResidual": "zipline_factorarb.pipeline.wls",
    "StyleLoading": "zipline_factorarb.pipeline.wls",
    "KalmanInnovation": "zipline_factorarb.pipeline.kalman",
    "DailyReturns": "zipline_factorarb.pipeline.kalman",
    "SScore": "zipline_factorarb.pipeline.sscore",
    "PCAResidual": "zipline_factorarb.pipeline.pca_residual",
    "FixedPCA": "zipline_factorarb.pipeline.pca_residual",
    "fit_fixed_pca": "zipline_factorarb.pipeline.pca_residual",
    "fixed_pca_residuals": "zipline_factorarb.pipeline.pca_residual",
    "fixed_pca_signal": "zipline_factorarb.pipeline.kalman",
    # risk model
    "FactorRiskModel": "zipline_factorarb.pipeline.risk",
    "factor_risk_model_for_algorithm": "zipline_factorarb.pipeline.risk",
    # alphas from residual signals
    "signal_columns": "zipline_factorarb.pipeline.signals",
    "alpha_scores": "zipline_factorarb.pipeline.signals",
    "expected_alphas": "zipline_factorarb.pipeline.signals",
    "market_inputs": "zipline_factorarb.pipeline.signals",
    "HORIZONS": "zipline_factorarb.pipeline.signals",
    # classifiers and filters
    "Sector": "zipline_factorarb.pipeline.classifiers",
    "AssetType": "zipline_factorarb.pipeline.classifiers",
    "IsStock": "zipline_factorarb.pipeline.classifiers",
    "IsETF": "zipline_factorarb.pipeline.classifiers",
    "IsIndex": "zipline_factorarb.pipeline.classifiers",
    "IsTradable": "zipline_factorarb.pipeline.classifiers",
    # point-in-time fundamentals stored with the ingestion
    "Fundamentals": "zipline_factorarb.pipeline.fundamentals",
    "Fundamental": "zipline_factorarb.pipeline.fundamentals",
    "market_cap_columns": "zipline_factorarb.pipeline.fundamentals",
    "size_benchmark_weights": "zipline_factorarb.pipeline.fundamentals",
}

__getattr__, __dir__, __all__ = lazy_namespace(__name__, _LAZY)
