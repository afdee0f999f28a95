"""zipline-factorarb: factor-residual statistical arbitrage for zipline-reloaded.

The top-level names are loaded lazily so that ``import zipline_factorarb`` (or
``zipline_factorarb.kernels``) stays cheap and has no side effects: zipline,
JAX and cvxpy are imported only when the object that needs them is used.
"""

from zipline_factorarb._lazy import lazy_namespace

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # data bundles
    "register_bundles": "zipline_factorarb.data.register",
    "register_csv_bundle": "zipline_factorarb.data.register",
    "BundleDataError": "zipline_factorarb.data.errors",
    # pipeline terms
    "Sector": "zipline_factorarb.pipeline.classifiers",
    "AssetType": "zipline_factorarb.pipeline.classifiers",
    "WLSResidual": "zipline_factorarb.pipeline.wls",
    "KalmanInnovation": "zipline_factorarb.pipeline.kalman",
    "SScore": "zipline_factorarb.pipeline.sscore",
}

__getattr__, __dir__, __all__ = lazy_namespace(__name__, _LAZY, extra=["__version__"])
