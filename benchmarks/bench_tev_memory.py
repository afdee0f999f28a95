"""Seconds and peak memory of ``algorithms/tev_factor_tilt.py`` against plain zipline.

Run as a script::

    python benchmarks/bench_tev_memory.py                        # 500 and 2,000 stocks
    python benchmarks/bench_tev_memory.py --stocks 2000 --only tev --keep /tmp/tev_root
    python benchmarks/bench_tev_memory.py --stocks 2000 --phases  # where the time goes
    # the same against another checkout (e.g. `git archive HEAD | tar -x -C /tmp/head`):
    python benchmarks/bench_tev_memory.py --only tev --code /tmp/head

Command-line mode: each backtest is the real command line (``zipline run -f ...``)
in a child process under ``/usr/bin/time -v`` (wall seconds, including the
process start, and peak resident set size), on a generated bundle
(:func:`benchmarks._generated.build_generated_bundle`: random-walk stocks in the
eleven GICS sectors plus a market fund, SPY, the algorithm's benchmark) over two
years (2019-01-02 to 2020-12-31; the data start 15 months earlier for the
252-session risk window). Three backtests on the same bundle and dates:

``tev``
    ``algorithms/tev_factor_tilt.py`` with its defaults (monthly rebalance,
    equal-weighted market and sector factors since the bundle has no factor ETFs;
    ``--params`` for others).
``same trades``
    zipline placing the TEV run's trades by plain ``order_target_percent`` on the
    same sessions (``benchmarks/algorithms/replay.py``, the plan built by
    ``bench_backtest.replay_plan``): no pipeline, no optimiser, no records.
``zipline alone``
    equal weights in every stock, reset monthly (``benchmarks/algorithms/buy_and_hold.py``).

``--phases`` mode runs the TEV algorithm in this process (``run_algorithm``) and
times its parts (pipelines, risk-model computes, rebalances, the optimiser, the
daily benchmark tracker), sampling the resident set size every 5 ms:
``new_peak_rss_mb`` is the highest size first reached while that part ran (which
part sets the peak).

Targets (issue 11): ``tev`` at 2,000 stocks under 1.5 GB peak RSS and within
about 1.5x of ``same trades``.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from _generated import build_generated_bundle  # noqa: E402

TILT = REPO / "algorithms" / "tev_factor_tilt.py"
BASELINES = HERE / "algorithms"
DATA_START, START, END = "2017-10-02", "2019-01-02", "2020-12-31"


def timed_run(root, extension, algo, bundle, out, env=None, code=None):
    """``zipline run`` under ``/usr/bin/time -v``: (seconds, peak RSS in MB).

    ``code``: a folder whose ``zipline_factorarb`` is imported instead of this one's.
    """
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "zipline", "-e", str(extension), "run",
           "-f", str(algo), "-b", bundle, "-s", START, "-e", END, "-o", str(out),
           "--no-benchmark"]
    environ = {k: v for k, v in os.environ.items() if k != "FACTORARB_PARAMS"}
    environ.update(ZIPLINE_ROOT=str(root), PYTHONWARNINGS="ignore", **(env or {}))
    if code:
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code),
                                                              environ.get("PYTHONPATH")]))
    # cwd outside any checkout: `python -m` puts the cwd first on sys.path
    proc = subprocess.run(cmd, env=environ, capture_output=True, text=True, cwd=str(root))
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(algo).name} failed:\n{proc.stderr[-4000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    h, m, s = (float(x) if x else 0.0 for x in wall.groups())
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return 3600 * h + 60 * m + s, rss / 1024.0


def command_line(args, root):
    from bench_backtest import replay_plan  # the lead's plan of "the same trades"

    which = args.only or ["tev", "same trades", "zipline alone"]
    work = root / "bench_out"
    work.mkdir(parents=True, exist_ok=True)
    rows = []

    def run(n, label, algo, out, env=None, code=None):
        runs = [timed_run(root, extension, algo, bundle, out, env, code)
                for _ in range(args.repeat)]
        rows.append(dict(stocks=n, backtest=label,
                         seconds=round(statistics.median(r[0] for r in runs), 1),
                         peak_rss_mb=round(statistics.median(r[1] for r in runs)),
                         runs=", ".join(f"{r[0]:.1f}" for r in runs)))
        print(json.dumps(rows[-1]), flush=True)

    for n in args.stocks:
        bundle, extension = build_generated_bundle(root, n, DATA_START, END)
        tev_out = work / f"tev_{n}.pickle"
        if "tev" in which:
            out = work / f"tev_{n}_other_code.pickle" if args.code else tev_out
            env = {"FACTORARB_PARAMS": args.params} if args.params else None
            tilt = Path(args.code) / "algorithms" / TILT.name if args.code else TILT
            run(n, "tev" if not args.code else f"tev ({args.code})", tilt, out, env, args.code)
        if "same trades" in which:
            if not tev_out.exists():
                raise SystemExit(f"'same trades' needs a TEV run's output {tev_out}")
            plan = replay_plan(pd.read_pickle(tev_out), bundle, root, extension)
            with open(work / f"plan_{n}.pickle", "wb") as fh:
                pickle.dump(plan, fh)
            run(n, "same trades", BASELINES / "replay.py", work / f"replay_{n}.pickle",
                {"FACTORARB_REPLAY": str(work / f"plan_{n}.pickle")})
        if "zipline alone" in which:
            run(n, "zipline alone", BASELINES / "buy_and_hold.py", work / f"alone_{n}.pickle")
    print(pd.DataFrame(rows).to_string(index=False))


def phases(args, root):
    """The TEV algorithm in this process, its parts timed and their peak RSS sampled."""
    n = args.stocks[0]
    tilt = TILT
    if args.code:
        sys.path.insert(0, str(args.code))
        tilt = Path(args.code) / "algorithms" / TILT.name
    bundle, _ = build_generated_bundle(root, n, DATA_START, END)
    os.environ["ZIPLINE_ROOT"] = str(root)
    if args.params:
        os.environ["FACTORARB_PARAMS"] = args.params
    spec = importlib.util.spec_from_file_location("tev_factor_tilt", tilt)
    algo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(algo)

    from zipline import run_algorithm
    from zipline.pipeline import engine

    import zipline_factorarb.pipeline.risk as risk
    from zipline_factorarb.optimize import records

    seconds, calls = collections.defaultdict(float), collections.Counter()
    # peak[label]: the highest resident size first reached while `label` ran (freed
    # memory often stays resident, so a phase's own maximum would blame later ones)
    peak, current, highest = collections.defaultdict(float), ["other"], [0.0]

    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def sampler():
        while True:
            now = rss_mb()
            if now > highest[0]:
                highest[0] = now
                peak[current[-1]] = max(peak[current[-1]], now)
            time.sleep(0.005)

    def watch(owner, name, label):
        inner = getattr(owner, name)

        def wrapper(*a, **k):
            current.append(label)
            t = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                seconds[label] += time.perf_counter() - t
                calls[label] += 1
                current.pop()

        setattr(owner, name, wrapper)

    watch(engine.SimplePipelineEngine, "run_pipeline", "pipelines (zipline engine)")
    watch(risk.FactorRiskModel, "compute", "FactorRiskModel.compute")
    if hasattr(risk, "FactorMoments"):
        watch(risk.FactorMoments, "compute", "FactorMoments.compute")
    watch(algo, "rebalance", "rebalance (all)")
    watch(algo, "order_optimal_portfolio", "order_optimal_portfolio")
    watch(records.BenchmarkTracker, "update", "BenchmarkTracker.update")
    threading.Thread(target=sampler, daemon=True).start()
    t0 = time.perf_counter()
    perf = run_algorithm(start=pd.Timestamp(START), end=pd.Timestamp(END),
                         initialize=algo.initialize, handle_data=algo.handle_data,
                         capital_base=1e7, data_frequency="daily", bundle=bundle)
    total = time.perf_counter() - t0
    import resource

    print(f"{n} stocks, {len(perf)} sessions: run_algorithm {total:.1f} s, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    table = pd.DataFrame({"seconds": pd.Series(seconds).round(2), "calls": pd.Series(calls),
                          "new_peak_rss_mb": pd.Series(peak).round()})
    print(table.sort_values("seconds", ascending=False).to_string())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stocks", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--only", nargs="+", choices=["tev", "same trades", "zipline alone"])
    parser.add_argument("--phases", action="store_true",
                        help="time the parts of one in-process TEV run (first --stocks)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per backtest (median)")
    parser.add_argument("--keep", help="zipline root to keep (and reuse) the bundles in")
    parser.add_argument("--params", help="FACTORARB_PARAMS for the TEV run (JSON)")
    parser.add_argument("--code", help="run this checkout's algorithm and zipline_factorarb "
                        "(tev only; e.g. `git archive HEAD | tar -x -C DIR`)")
    args = parser.parse_args(argv)
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="bench_tev_")
    root = Path(args.keep or tmp.name)
    try:
        (phases if args.phases else command_line)(args, root)
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
