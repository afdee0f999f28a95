"""Parameter sweeps over walk-forward folds, run on Dask.

:func:`run_sweep` expands a :class:`~.spec.SweepSpec` into runs (grid point x
fold), checks that every worker sees the bundle, submits each run to a
``dask.distributed`` cluster (a :class:`~distributed.LocalCluster` with one
single-threaded worker process per core unless a scheduler address is given)
and records each run as it finishes. A run that raises is recorded with its
traceback; the others go on. With ``resume=True`` the runs already recorded
in the results folder are not run again.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import BundleNotVisibleError, SpecError, SweepError
from .runner import _empty_row, inspect_bundle, run_one
from .spec import load_spec
from .store import RunStore

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns.

    Attributes
    ----------
    results : pandas.DataFrame
        One row per run of the spec (finished ones; see ``status``).
    out : pathlib.Path
        The results folder.
    n_runs : int
        Runs in the spec.
    n_executed : int
        Runs executed by this call.
    n_skipped : int
        Runs already recorded (resumed) and not run again.
    n_failed : int
        Runs with ``status != 'ok'``.
    files : dict
        Name -> path of the tables and figures written.
    executed : list of str
        Run ids executed by this call.
    """

    results: pd.DataFrame
    out: Path
    n_runs: int
    n_executed: int
    n_skipped: int
    n_failed: int
    files: dict = field(default_factory=dict)
    executed: list = field(default_factory=list)

    def __str__(self):
        return (f"{self.n_runs} runs: {self.n_executed} executed, {self.n_skipped} already "
                f"done, {self.n_failed} failed; results in {self.out}")


class TextProgress:
    """A text progress bar on stderr (a line per run when not a terminal)."""

    def __init__(self, total, done=0, params=(), stream=None, enabled=True, width=30):
        self.total, self.done, self.failed = total, done, 0
        self.params = tuple(params)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.width = width
        self.started = time.perf_counter()
        self.first = done
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if enabled and self.tty:
            self._draw()

    def _draw(self, note=""):
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        elapsed = time.perf_counter() - self.started
        ran = self.done - self.first
        eta = elapsed / ran * (self.total - self.done) if ran else float("nan")
        eta_txt = f", eta {eta:.0f}s" if eta == eta else ""
        text = (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} runs"
                f"{f', {self.failed} failed' if self.failed else ''}, {elapsed:.0f}s{eta_txt}")
        if self.tty:
            self.stream.write("\r" + text)
        else:
            self.stream.write(text + (f"  {note}" if note else "") + "\n")
        self.stream.flush()

    def update(self, row):
        self.done += 1
        if row.get("status") != "ok":
            self.failed += 1
        if not self.enabled:
            return
        params = ", ".join(f"{k}={row.get(k)}" for k in self.params)
        note = f"fold {row.get('fold')}{' ' + params if params else ''}: " + (
            f"sharpe {row['sharpe']:.3f}" if row.get("status") == "ok" else
            f"{row.get('status')} ({row.get('error')})")
        self._draw(note)

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def resolve_zipline_root(zipline_root=None, spec=None):
    """The ZIPLINE_ROOT handed to the workers (an absolute path)."""
    root = zipline_root or (spec.zipline_root if spec is not None else None) \
        or os.environ.get("ZIPLINE_ROOT")
    if not root:
        from zipline.utils.paths import zipline_root as default_root

        root = default_root()
    return os.path.abspath(os.path.expanduser(str(root)))


def _open_client(client, scheduler, n_workers, n_runs):
    """``(client, own_cluster, own_client)``: the last two are None or to be closed."""
    from distributed import Client, LocalCluster

    if client is not None:
        return client, None, None
    address = scheduler or os.environ.get(SCHEDULER_ENV)
    if address:
        try:
            c = Client(address, timeout="20s")
        except OSError as exc:
            raise SweepError(f"cannot connect to the Dask scheduler at {address}: {exc}; start "
                             "it with `dask scheduler` (and workers with `dask worker "
                             f"{address} --nthreads 1`) or leave --scheduler out to run on "
                             "this machine") from None
        return c, None, c
    n = n_workers or os.cpu_count() or 1
    n = max(1, min(n, n_runs))
    try:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    except RuntimeError as exc:
        raise SweepError(
            f"could not start a local Dask cluster ({exc}); when run_sweep is called from a "
            "script, put the call under `if __name__ == '__main__':` (worker processes import "
            "the main module), or pass serial=True") from None
    return Client(cluster), cluster, None


def check_workers(client, bundle, zipline_root, extensions=()):
    """Check on every worker (or in this process) that the bundle is readable.

    Parameters
    ----------
    client : distributed.Client or None
        ``None`` checks this process (serial sweeps).

    Returns
    -------
    dict
        Worker -> what :func:`~.runner.inspect_bundle` reported.

    Raises
    ------
    BundleNotVisibleError
        Naming each worker that cannot read the bundle and what to change.
    """
    if client is None:
        infos = {"this process": inspect_bundle(bundle, zipline_root, extensions)}
    else:
        if not client.scheduler_info().get("workers"):
            try:
                client.wait_for_workers(1, timeout=30)
            except Exception:
                raise SweepError("the Dask cluster has no workers; start some with "
                                 "`dask worker SCHEDULER_ADDRESS --nthreads 1`") from None
        infos = client.run(inspect_bundle, bundle, zipline_root, list(extensions))
    problems = {w: i["error"] for w, i in infos.items() if not i.get("ok")}
    if problems:
        lines = "\n".join(f"  {w}: {msg}" for w, msg in sorted(problems.items()))
        raise BundleNotVisibleError(
            f"{len(problems)} of {len(infos)} worker(s) cannot read bundle {bundle!r} "
            f"(ZIPLINE_ROOT {zipline_root}):\n{lines}\nEvery worker must see the same "
            "ingestion: use a ZIPLINE_ROOT on a shared file system (set `zipline_root` in the "
            "spec or --zipline-root) and ingest the bundle there.", problems)
    stamps = {i["ingestion"] for i in infos.values()}
    if len(stamps) > 1:
        detail = "\n".join(f"  {w}: {i['ingestion']} in {i['zipline_root']}"
                           for w, i in sorted(infos.items()))
        raise BundleNotVisibleError(
            f"workers see different ingestions of bundle {bundle!r}:\n{detail}\npoint them at "
            "one shared ZIPLINE_ROOT so every run reads the same data")
    return infos


def _check_dates(spec, info):
    first = pd.Timestamp(info["first_session"])
    last = pd.Timestamp(info["last_session"])
    bad = [f for f in spec.folds if f.test_start < first or f.test_end > last]
    if bad:
        raise SpecError(
            f"bundle {spec.bundle!r} has data {first.date()} .. {last.date()}, but "
            + "; ".join(str(f) for f in bad[:3]) + (" ..." if len(bad) > 3 else "")
            + " lies outside it: move the dates (walk_forward start/end, folds) inside "
            "the bundle's range")


def run_sweep(spec, out=None, *, client=None, scheduler=None, n_workers=None, serial=False,
              resume=False, retry_failed=False, overwrite=False, keep_perf=None,
              zipline_root=None, progress=True, report=True, on_result=None):
    """Run every grid point x fold of a sweep spec as a zipline backtest.

    Parameters
    ----------
    spec : SweepSpec, dict or path
        The sweep (see :mod:`zipline_factorarb.research.spec`).
    out : path, optional
        Results folder (default: the spec's ``out``, else ``sweeps/<name>``).
    client : distributed.Client, optional
        Run on this client's cluster (it is left open).
    scheduler : str, optional
        Address ``tcp://HOST:PORT`` of a running Dask scheduler; default
        ``$DASK_SCHEDULER_ADDRESS``, else a new ``LocalCluster`` with
        ``n_workers`` single-threaded worker processes (default: one per core).
    n_workers : int, optional
        Workers of the local cluster.
    serial : bool
        Run in this process, one run after the other, without Dask (for
        debugging and for comparison).
    resume : bool
        Continue a sweep in ``out``: runs already recorded there are kept and
        not run again.
    retry_failed : bool
        With ``resume``, also run again the runs recorded as failed.
    overwrite : bool
        Delete the runs recorded in ``out`` and start again.
    keep_perf : bool, optional
        Keep each run's perf DataFrame as ``perf/<run_id>.pickle`` (default:
        the spec's ``keep_perf``).
    zipline_root : path, optional
        ZIPLINE_ROOT for the workers (default: the spec's, else
        ``$ZIPLINE_ROOT``, else ``~/.zipline``). It must be readable by every
        worker at this same path.
    progress : bool
        Show a progress bar on stderr.
    report : bool
        Write the summary tables and figures at the end.
    on_result : callable, optional
        Called with each results row as it is recorded.

    Returns
    -------
    SweepResult

    Raises
    ------
    SpecError
        The spec is invalid or its dates lie outside the bundle.
    BundleNotVisibleError
        A worker cannot read the bundle (checked before any run starts).
    SweepError
        The results folder holds another sweep's runs and neither ``resume``
        nor ``overwrite`` was given, or the cluster cannot be reached.
    """
    spec = load_spec(spec)
    if keep_perf is not None and keep_perf != spec.keep_perf:
        spec = dataclasses.replace(spec, keep_perf=bool(keep_perf))
    out = Path(out or spec.out or Path("sweeps") / spec.name)
    store = RunStore(out)
    recorded = store.existing()
    if recorded and not (resume or overwrite):
        raise SweepError(
            f"{out} already holds {len(recorded)} recorded run(s); pass --resume to continue "
            "that sweep, --overwrite to start it again, or choose another --out folder")
    if overwrite:
        store.clear()
        recorded = {}
    root = resolve_zipline_root(zipline_root, spec)
    n_planned = len(spec.grid_points()) * len(spec.folds)

    own_cluster = own_client = None
    try:
        if not serial:
            client, own_cluster, own_client = _open_client(client, scheduler, n_workers,
                                                           n_planned)
        infos = check_workers(None if serial else client, spec.bundle, root, spec.extensions)
        info = next(iter(infos.values()))
        _check_dates(spec, info)
        tasks = spec.runs(ingestion=info["ingestion"], zipline_root=root)
        store.prepare()
        store.write_json("spec.json", dict(
            spec=spec.raw, algorithm=str(spec.algorithm), algorithm_sha256=spec.algorithm_sha256,
            bundle=spec.bundle, ingestion=info["ingestion"], zipline_root=root,
            folds=[f.to_dict() for f in spec.folds], grid=spec.grid, params=spec.params,
            run_ids=[t["run_id"] for t in tasks]))

        def finished(row):
            return row.get("status") == "ok" or (row.get("status") == "error"
                                                 and not retry_failed)

        done = {t["run_id"]: recorded[t["run_id"]] for t in tasks
                if t["run_id"] in recorded and finished(recorded[t["run_id"]])}
        todo = [t for t in tasks if t["run_id"] not in done]
        rows = dict(done)
        executed = []
        bar = TextProgress(len(tasks), done=len(done), params=spec.grid, enabled=progress)

        def record(task, result):
            row = result["row"]
            if row.get("status") != "lost":  # lost = the worker died: not recorded, redone
                store.write(row, result.get("perf"))
            rows[task["run_id"]] = row
            executed.append(task["run_id"])
            bar.update(row)
            if on_result is not None:
                on_result(row)

        try:
            if serial:
                for task in todo:
                    record(task, run_one(task))
            elif todo:
                _run_on_dask(client, todo, record)
        finally:
            bar.close()
            ordered = [rows[t["run_id"]] for t in tasks if t["run_id"] in rows]
            frame = store.consolidate(ordered, list(spec.grid))
        files = {"results": out / "results.parquet", "results_csv": out / "results.csv"}
        if report:
            from .report import write_report

            metric = spec.report.get("metric", "sharpe")
            files.update(write_report(frame, list(spec.grid), out, metric=metric,
                                      heatmaps=spec.report.get("heatmaps")))
        return SweepResult(results=frame, out=out, n_runs=len(tasks),
                           n_executed=len(executed), n_skipped=len(done),
                           n_failed=int((frame["status"] != "ok").sum()), files=files,
                           executed=executed)
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            client.close()
            own_cluster.close()


def _run_on_dask(client, todo, record):
    from distributed import as_completed

    tag = uuid.uuid4().hex[:8]
    futures = {}
    for task in todo:
        fut = client.submit(run_one, task, key=f"factorarb-run-{task['run_id']}-{tag}",
                            pure=False)
        futures[fut] = task
    pending = set(futures)
    try:
        for fut in as_completed(list(futures)):
            pending.discard(fut)
            task = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # the worker died or the task could not run at all
                row = _empty_row(task)
                row.update(status="lost", error=f"{type(exc).__name__}: {exc}")
                result = dict(row=row, perf=None)
            fut.release()
            record(task, result)
    finally:
        if pending:
            client.cancel(list(pending))
