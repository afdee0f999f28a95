"""Pure numerical kernels: numpy / JAX arrays in, arrays out.

Nothing in this sub-package imports zipline or pandas, performs I/O or keeps
global state. The zipline adapters in :mod:`zipline_factorarb.pipeline` and
:mod:`zipline_factorarb.optimize` call these functions.
"""

from zipline_factorarb._lazy import lazy_namespace

_LAZY = {
    "wls_residuals": "zipline_factorarb.kernels.wls",
    "WLSResult": "zipline_factorarb.kernels.wls",
    "inverse_variance_weights": "zipline_factorarb.kernels.wls",
    "neutralize_weights": "zipline_factorarb.kernels.wls",
    "sector_loadings": "zipline_factorarb.kernels.wls",
    "standardize_styles": "zipline_factorarb.kernels.wls",
    "style_factors": "zipline_factorarb.kernels.wls",
    "SectorLoadings": "zipline_factorarb.kernels.wls",
    "StyleFactors": "zipline_factorarb.kernels.wls",
    "STYLE_NAMES": "zipline_factorarb.kernels.wls",
    "scale_free_ridge": "zipline_factorarb.kernels.wls",
    "wls_window": "zipline_factorarb.kernels.wls_window",
    "WLSSettings": "zipline_factorarb.kernels.wls_window",
    "WLSWindowResult": "zipline_factorarb.kernels.wls_window",
    "factor_neutrality": "zipline_factorarb.kernels.wls_window",
    "pca_factors": "zipline_factorarb.kernels.pca",
    "pca_loadings": "zipline_factorarb.kernels.pca",
    "pca_factor_returns": "zipline_factorarb.kernels.pca",
    "pca_residuals": "zipline_factorarb.kernels.pca",
    "pca_residual_window": "zipline_factorarb.kernels.pca",
    "correlation_pca_loadings": "zipline_factorarb.kernels.pca",
    "daily_returns": "zipline_factorarb.kernels.returns",
    "kalman_innovation_window": "zipline_factorarb.kernels.kalman",
    "KalmanWindowResult": "zipline_factorarb.kernels.kalman",
    "sscore_window": "zipline_factorarb.kernels.ou",
    "kalman_filter": "zipline_factorarb.kernels.kalman",
    "kalman_update": "zipline_factorarb.kernels.kalman",
    "KalmanResult": "zipline_factorarb.kernels.kalman",
    "kalman_last": "zipline_factorarb.kernels.kalman",
    "KalmanLastResult": "zipline_factorarb.kernels.kalman",
    "KalmanStep": "zipline_factorarb.kernels.kalman",
    "CarriedFilter": "zipline_factorarb.kernels.kalman",
    "count_rule_weights": "zipline_factorarb.kernels.study",
    "percentile_rule_weights": "zipline_factorarb.kernels.study",
    "rolling_pca_residuals": "zipline_factorarb.kernels.study",
    "style_weights": "zipline_factorarb.kernels.style",
    "compilation_count": "zipline_factorarb.kernels.kalman",
    "sscore": "zipline_factorarb.kernels.ou",
    "SScoreResult": "zipline_factorarb.kernels.ou",
    "PCAResult": "zipline_factorarb.kernels.pca",
}

__getattr__, __dir__, __all__ = lazy_namespace(__name__, _LAZY)
