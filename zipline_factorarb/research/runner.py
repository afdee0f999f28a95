"""One backtest of a sweep, as it runs inside a worker process.

:func:`run_one` is what a Dask worker executes (and what a serial sweep calls
in-process): it loads the algorithm file fresh, under the run's
``FACTORARB_PARAMS``, runs it with ``zipline.run_algorithm`` over the fold's
test window and returns one results row. Any exception becomes a row with
``status='error'`` and the traceback; it never escapes.

:func:`inspect_bundle` is what the sweep runs on every worker before
submitting anything: it checks that the worker sees the bundle's ingestion.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import socket
import sys
import threading
import time
import traceback
import types
from contextlib import contextmanager

from ..algo import PARAMS_ENV
from ..data.register import load_user_extensions

# Runs in one process take turns: the parameters reach the algorithm through
# os.environ, and zipline keeps the running algorithm in process-wide state.
_RUN_LOCK = threading.Lock()
_COUNTER = iter(range(1 << 62))


@contextmanager
def environ_set(updates):
    """Set ``os.environ`` entries for the duration of a block, then restore them."""
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update({k: str(v) for k, v in updates.items()})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_algorithm(source, filename, params=None):
    """Execute an algorithm file into a new module, with parameter overrides.

    ``algorithm_params`` reads ``$FACTORARB_PARAMS`` when the module is
    executed, so each call sets it to ``params`` (JSON), executes the source in
    a fresh module namespace (never a cached import) and restores the
    environment. The module is not left in ``sys.modules``.

    Parameters
    ----------
    source : str
        The algorithm file's text.
    filename : str
        Name shown in tracebacks.
    params : dict, optional
        Parameter overrides (the algorithm's declared names).

    Returns
    -------
    types.ModuleType
    """
    name = f"_factorarb_algorithm_{os.getpid()}_{next(_COUNTER)}"
    module = types.ModuleType(name)
    module.__file__ = filename
    code = compile(source, filename, "exec")
    with environ_set({PARAMS_ENV: json.dumps(params or {}, sort_keys=True)}):
        sys.modules[name] = module  # dataclasses and pickling look the module up
        try:
            exec(code, module.__dict__)
        finally:
            sys.modules.pop(name, None)
    return module


def _worker_name():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _root_environ(zipline_root):
    env = dict(os.environ)
    if zipline_root:
        env["ZIPLINE_ROOT"] = str(zipline_root)
    return env


def _empty_row(task):
    fold = task["fold"]
    row = dict(
        run_id=task["run_id"], status="error", fold=fold["fold"],
        train_start=fold["train_start"], train_end=fold["train_end"],
        test_start=fold["test_start"], test_end=fold["test_end"],
    )
    row.update(task.get("grid", {}))
    row.update(
        sharpe=float("nan"), total_return=float("nan"), annual_return=float("nan"),
        annual_volatility=float("nan"), max_drawdown=float("nan"), annual_turnover=float("nan"),
        tracking_error=float("nan"), information_ratio=float("nan"),
        benchmark_total_return=float("nan"), n_trades=0, n_sessions=0, wall_time_s=float("nan"),
        error=None, traceback=None, params=json.dumps(task["params"], sort_keys=True),
        algorithm=task["algorithm"], algorithm_sha256=task["algorithm_sha256"],
        bundle=task["bundle"], ingestion=task.get("ingestion"),
        capital_base=task["capital_base"], seed=task["seed"], worker=None,
    )
    return row


def run_one(task):
    """Run one backtest of a sweep; never raises.

    Parameters
    ----------
    task : dict
        One element of :meth:`SweepSpec.runs`.

    Returns
    -------
    dict
        ``row``: the results row (metrics, or ``error`` and ``traceback``);
        ``perf``: the pickled perf DataFrame when the task asks to keep it,
        else ``None``.
    """
    import numpy as np
    import pandas as pd

    row = _empty_row(task)
    row["worker"] = _worker_name()
    perf_bytes = None
    started = time.perf_counter()
    try:
        from zipline import run_algorithm
        from zipline.utils.calendar_utils import get_calendar

        from .metrics import perf_metrics

        environ = _root_environ(task.get("zipline_root"))
        environ[PARAMS_ENV] = json.dumps(task["params"], sort_keys=True)
        with _RUN_LOCK, environ_set({k: environ[k] for k in (PARAMS_ENV, "ZIPLINE_ROOT")
                                     if k in environ}):
            load_user_extensions(task.get("extensions") or (), environ=environ)
            random.seed(task["seed"])
            np.random.seed(task["seed"])
            module = load_algorithm(task["algorithm_source"], task["algorithm"], task["params"])
            ns = module.__dict__
            if "initialize" not in ns:
                raise ValueError(f"{task['algorithm']} defines no initialize(context)")
            ingestion = task.get("ingestion")
            perf = run_algorithm(
                start=pd.Timestamp(task["fold"]["test_start"]),
                end=pd.Timestamp(task["fold"]["test_end"]),
                initialize=ns["initialize"],
                handle_data=ns.get("handle_data"),
                before_trading_start=ns.get("before_trading_start"),
                analyze=ns.get("analyze"),
                capital_base=task["capital_base"],
                data_frequency="daily",
                bundle=task["bundle"],
                bundle_timestamp=pd.Timestamp(ingestion) if ingestion else None,
                trading_calendar=get_calendar(task.get("calendar", "XNYS")),
                default_extension=False,  # loaded above when present
                environ=environ,
            )
        row.update(perf_metrics(perf))
        row["status"] = "ok"
        if task.get("keep_perf"):
            perf_bytes = pickle.dumps(perf, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # recorded, the sweep goes on
        row["status"] = "error"
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc()
    row["wall_time_s"] = time.perf_counter() - started
    return dict(row=row, perf=perf_bytes)


def inspect_bundle(bundle, zipline_root=None, extensions=()):
    """What this process sees of a bundle: its newest ingestion and date range.

    Returns a dict with ``ok`` (bool), ``error`` (a message saying what to
    change, or ``None``), ``host``, ``zipline_root``, ``ingestion`` (ISO
    timestamp), ``first_session`` and ``last_session``.
    """
    info = dict(ok=False, error=None, host=socket.gethostname(), pid=os.getpid(),
                bundle=bundle, ingestion=None, first_session=None, last_session=None)
    try:
        import pandas as pd
        from zipline.data.bundles import bundles
        from zipline.assets import AssetFinder
        from zipline.data.bundles.core import (
            asset_db_path,
            ingestions_for_bundle,
            to_bundle_ingest_dirname,
        )
        from zipline.utils.paths import data_path
        from zipline.utils.paths import zipline_root as default_root

        environ = _root_environ(zipline_root)
        root = os.path.abspath(default_root(environ=environ))
        info["zipline_root"] = root
        if not os.path.isdir(root):
            info["error"] = (f"ZIPLINE_ROOT {root} does not exist on this worker; mount the "
                             "shared zipline root at that path or set `zipline_root` in the "
                             "spec to a path every worker can read")
            return info
        folder = data_path([bundle], environ=environ)
        stamps = ingestions_for_bundle(bundle, environ) if os.path.isdir(folder) else []
        if not stamps:
            info["error"] = (f"no ingestion of bundle {bundle!r} under {folder}; run "
                             f"`ZIPLINE_ROOT={root} zipline ingest -b {bundle}` where the "
                             "workers can see it, or point `zipline_root` to a root that has it")
            return info
        newest = stamps[0]
        load_user_extensions(extensions or (), environ=environ)
        if bundle not in bundles:
            info["error"] = (f"bundle {bundle!r} is ingested under {root} but not registered "
                             f"on this worker; register it in {root}/extension.py or list the "
                             "file that registers it under `extensions` in the spec")
            return info
        # the assets' own first and last days: the bar files span the whole
        # calendar the bundle was registered with, not just the data
        finder = AssetFinder(asset_db_path(bundle, to_bundle_ingest_dirname(newest),
                                           environ=environ))
        assets = finder.retrieve_all(finder.sids)
        if not assets:
            info["error"] = f"the newest ingestion of bundle {bundle!r} under {root} is empty"
            return info
        first = min(pd.Timestamp(a.start_date) for a in assets)
        last = max(pd.Timestamp(a.end_date) for a in assets)
        info.update(
            ok=True,
            ingestion=pd.Timestamp(newest).isoformat(),
            first_session=first.strftime("%Y-%m-%d"),
            last_session=last.strftime("%Y-%m-%d"),
        )
    except Exception as exc:
        info["error"] = f"cannot read bundle {bundle!r}: {type(exc).__name__}: {exc}"
    return info
