"""Research at scale: walk-forward folds and parameter sweeps on Dask.

>>> from zipline_factorarb.research import run_sweep
>>> result = run_sweep("sweeps/momentum.yaml")  # doctest: +SKIP
>>> result.results[["n_long", "fold", "sharpe"]]  # doctest: +SKIP

The names below load lazily: importing this package imports neither zipline
nor Dask, and changes nothing.
"""

from importlib import import_module

_LAZY = {
    "run_sweep": ".sweep",
    "SweepResult": ".sweep",
    "check_workers": ".sweep",
    "SweepSpec": ".spec",
    "load_spec": ".spec",
    "declared_params": ".spec",
    "Fold": ".walkforward",
    "walk_forward_folds": ".walkforward",
    "calendar_sessions": ".walkforward",
    "training_history": ".walkforward",
    "FOLD_PARAMS": ".walkforward",
    "run_one": ".runner",
    "load_algorithm": ".runner",
    "inspect_bundle": ".runner",
    "perf_metrics": ".metrics",
    "write_report": ".report",
    "SweepError": ".errors",
    "SpecError": ".errors",
    "BundleNotVisibleError": ".errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(
            f"module 'zipline_factorarb.research' has no attribute {name!r}") from None
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
