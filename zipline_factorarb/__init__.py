"""zipline-factorarb: factor-residual statistical arbitrage for zipline-reloaded.

The top-level names are loaded lazily so that ``import zipline_factorarb`` (or
``zipline_factorarb.kernels``) stays cheap and has no side effects: zipline,
JAX and cvxpy are imported only when the object that needs them is used.
"""

from importlib import import_module

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

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'zipline_factorarb' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
