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
    "pca_factors": "zipline_factorarb.kernels.pca",
    "pca_loadings": "zipline_factorarb.kernels.pca",
    "kalman_filter": "zipline_factorarb.kernels.kalman",
    "kalman_update": "zipline_factorarb.kernels.kalman",
    "KalmanResult": "zipline_factorarb.kernels.kalman",
    "kalman_last": "zipline_factorarb.kernels.kalman",
    "KalmanLastResult": "zipline_factorarb.kernels.kalman",
    "KalmanStep": "zipline_factorarb.kernels.kalman",
    "compilation_count": "zipline_factorarb.kernels.kalman",
    "sscore": "zipline_factorarb.kernels.ou",
    "SScoreResult": "zipline_factorarb.kernels.ou",
    "PCAResult": "zipline_factorarb.kernels.pca",
}

__getattr__, __dir__, __all__ = lazy_namespace(__name__, _LAZY)
