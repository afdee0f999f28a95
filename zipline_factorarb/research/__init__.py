"""Research at scale: walk-forward folds and parameter sweeps on Dask.

>>> from zipline_factorarb.research import run_sweep
>>> result = run_sweep("sweeps/momentum.yaml")  # doctest: +SKIP
>>> result.results[["n_long", "fold", "sharpe"]]  # doctest: +SKIP

The names below load lazily: importing this package imports neither zipline
nor Dask, and changes nothing.
"""

from zipline_factorarb._lazy import lazy_namespace

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

__getattr__, __dir__, __all__ = lazy_namespace(__name__, _LAZY)
