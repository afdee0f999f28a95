"""Speed of a parameter sweep on a 2-worker Dask cluster against the same runs in series.

The sweep: ``algorithms/sector_momentum.py`` on the embedded sample bundle, a
2 x 2 grid (``n_long`` in [3, 5], ``lookback`` in [126, 252]) over 2
walk-forward folds = 8 real zipline backtests (two-year test windows; one-year
with ``--quick``).

Measured, in the same run and on the same data:

* serial: ``run_sweep(..., serial=True)``: the 8 runs one after the other in
  this process;
* dask: ``run_sweep(..., client=...)`` on a ``LocalCluster`` with 2 worker
  processes of 1 thread each;
* their ratio, best of ``--repeat`` alternating repetitions of each (the
  machine may be shared). Both sides are warmed first (zipline imported and one short
  backtest run in this process and in each worker), so the ratio compares
  steady-state throughput; the cluster's start-up time is printed on its own,
  with the ratio it gives when counted in.

Both sweeps must give identical metrics; the script checks it.

Usage::

    python benchmarks/bench_sweep.py            # two-year test windows
    python benchmarks/bench_sweep.py --quick    # one-year test windows
    python benchmarks/bench_sweep.py --zipline-root DIR   # reuse an ingested sample
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ALGORITHM = Path(__file__).resolve().parents[1] / "algorithms" / "sector_momentum.py"
COMPARED = ["run_id", "status", "sharpe", "total_return", "max_drawdown", "annual_turnover",
            "tracking_error", "information_ratio", "n_trades"]


def ensure_sample(root):
    """Ingest the sample into ``root`` unless it is there already."""
    from zipline.data.bundles import ingest
    from zipline.data.bundles.core import ingestions_for_bundle

    from zipline_factorarb.data.register import SAMPLE_BUNDLE, register_bundles

    register_bundles()
    env = {**os.environ, "ZIPLINE_ROOT": str(root)}
    try:
        if ingestions_for_bundle(SAMPLE_BUNDLE, env):
            return False
    except OSError:
        pass
    ingest(SAMPLE_BUNDLE, environ=env, show_progress=False)
    return True


def make_spec(root, quick):
    test_years = 1 if quick else 2
    return dict(
        algorithm=str(ALGORITHM), bundle="factorarb-sample", capital_base=1_000_000,
        zipline_root=str(root),
        walk_forward=dict(train_years=1, test_years=test_years, folds=2, start="2014-01-01"),
        grid=dict(n_long=[3, 5], lookback=[126, 252]),
    )


def warm_task(spec):
    """One short backtest (a month), used to warm a process."""
    from zipline_factorarb.research.spec import SweepSpec
    from zipline_factorarb.research.sweep import check_workers

    s = SweepSpec.from_dict({**{k: v for k, v in spec.items() if k != "walk_forward"},
                             "grid": {}, "start": "2012-01-03", "end": "2012-01-31"})
    info = check_workers(None, s.bundle, spec["zipline_root"])
    return s.runs(ingestion=next(iter(info.values()))["ingestion"],
                  zipline_root=spec["zipline_root"])[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one-year test windows")
    parser.add_argument("--zipline-root", default=None,
                        help="zipline root with (or to receive) the sample; default a temp dir")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=None,
                        help="alternating serial/dask repetitions, best kept (default 3; "
                             "2 with --quick)")
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (2 if args.quick else 3)

    import pandas as pd
    from distributed import Client, LocalCluster

    from zipline_factorarb.research import run_sweep
    from zipline_factorarb.research.runner import run_one

    load_before = os.getloadavg()[0]
    tmp = tempfile.TemporaryDirectory(prefix="bench_sweep_")
    root = Path(args.zipline_root or Path(tmp.name) / "zipline")
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if ensure_sample(root):
        print(f"ingested factorarb-sample into {root} in {time.perf_counter() - t:.1f}s")
    spec = make_spec(root, args.quick)
    out = Path(tmp.name)

    # warm this process and each worker: imports, calendar, one short backtest
    task = warm_task(spec)
    assert run_one(task)["row"]["status"] == "ok"
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    client.run(run_one, task)
    start_s = time.perf_counter() - t

    # alternate the two so that both see the same background load; keep the best
    serial_times, dask_times = [], []
    try:
        for i in range(args.repeat):
            t = time.perf_counter()
            serial = run_sweep(spec, out / f"serial{i}", serial=True, progress=False,
                               report=False)
            serial_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            dask = run_sweep(spec, out / f"dask{i}", client=client, progress=False,
                             report=False)
            dask_times.append(time.perf_counter() - t)
            a, b = serial.results, dask.results
            assert (a["status"] == "ok").all() and len(a) == 8
            pd.testing.assert_frame_equal(a[COMPARED], b[COMPARED], check_exact=True)
    finally:
        client.close()
        cluster.close()
    serial_s, dask_s = min(serial_times), min(dask_times)

    years = 1 if args.quick else 2
    print(f"sweep: sector_momentum on factorarb-sample, 2 x 2 grid x 2 folds = 8 runs, "
          f"{years}-year test windows, {os.cpu_count()} cores")
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    workers = f"dask, {args.workers} workers x 1 thread"
    print(f"{'serial (this process)':<28}: {serial_s:6.2f} s  best of [{fmt(serial_times)}]")
    print(f"{workers:<28}: {dask_s:6.2f} s  best of [{fmt(dask_times)}]")
    print(f"{'speed-up':<28}: {serial_s / dask_s:6.2f}x")
    print(f"{'cluster start + warm-up':<28}: {start_s:6.2f} s  (counted in once: "
          f"{serial_s / (dask_s + start_s):.2f}x)")
    print(f"{'metrics identical':<28}: yes, every repetition")
    print(f"{'load average (1 min)':<28}: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    tmp.cleanup()


if __name__ == "__main__":
    main()
