"""Backtest time and memory against zipline itself, on the same bundle and dates.

Each backtest is a real ``zipline run`` subprocess; its wall time and peak RSS
(``os.wait4``) are measured. Baselines, measured in the same invocation:

* ``zipline alone``: equal-weight buy-and-hold of every stock, re-set on the
  first session of each month by plain ``order_target_percent`` calls
  (``benchmarks/algorithms/buy_and_hold.py``);
* ``same trades``: for each algorithm, zipline placing that algorithm's own
  trades (same sessions, same target positions) by plain
  ``order_target_percent`` calls (``benchmarks/algorithms/replay.py``) — what the
  algorithm would cost if its signals, optimiser and records were free.

Printed per algorithm: median seconds, seconds per session, median peak RSS and
the ratios to both baselines. Data sets: ``--data sp505`` (the 505 real S&P 500
stocks of ``../shared/data``, ingested once into ``--cache``) or
``--generated N`` (N generated stocks, see ``benchmarks/_generated.py``).

    python benchmarks/bench_backtest.py --data sp505 -s 2014-01-02 -e 2017-12-29 --repeat 3
    python benchmarks/bench_backtest.py --generated 3000 -s 2016-01-04 -e 2017-12-29 \\
        --algorithms market_neutral
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ALGORITHMS = REPO / "algorithms"
BASELINES = HERE / "algorithms"

#: algorithm name -> FACTORARB_PARAMS used in the benchmark (defaults when empty)
DEFAULT_ALGORITHMS = {
    "benchmark_relative": {},
    "market_neutral": {},
    "wls_mean_reversion": {},
    "tev_factor_tilt": {},
    # not sscore_statarb: it trades the sector ETFs and needs a benchmark asset
    # (SPY or SP500), which neither the sp505 nor the generated bundle has
}


def _extension(root, stocks_dir, bundle):
    path = root / "extension.py"
    path.write_text(
        "from zipline_factorarb import register_bundles, register_csv_bundle\n"
        "register_bundles()\n"
        f"register_csv_bundle({bundle!r}, {str(stocks_dir)!r}, ohlc='repair')\n")
    return path


def prepare_sp505(cache, shared):
    """A zipline root with the 505 real stocks ingested as bundle ``sp505``."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import write_shared_csv_dirs  # the tests' own layout of the real files

    root = cache / "sp505"
    stocks = root / "src" / "stocks"
    if not (root / "data" / "sp505").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        if not stocks.is_dir():
            write_shared_csv_dirs(shared, root / "src")
        ext = _extension(root, stocks, "sp505")
        _zipline(root, ext, "ingest", "-b", "sp505")
    return root, _extension(root, stocks, "sp505"), "sp505"


def prepare_generated(cache, n_stocks, start, end):
    sys.path.insert(0, str(HERE))
    from _generated import build_generated_bundle

    root = cache / f"generated_{n_stocks}"
    root.mkdir(parents=True, exist_ok=True)
    # data from 15 months before the backtest: the 252-session windows are full
    first = (pd.Timestamp(start) - pd.DateOffset(months=15)).date()
    bundle, ext = build_generated_bundle(root, n_stocks, first, end)
    return root, Path(ext), bundle


def _zipline(root, ext, *args, params=None, extra_env=None):
    """Run ``zipline -e ext ARGS`` and return (seconds, peak RSS in MB, stderr tail)."""
    env = {k: v for k, v in os.environ.items() if k != "FACTORARB_PARAMS"}
    env["ZIPLINE_ROOT"] = str(root)
    env["PYTHONWARNINGS"] = "ignore"
    if params:
        env["FACTORARB_PARAMS"] = json.dumps(params)
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "zipline", "-e", str(ext), *args]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        err.seek(0)
        tail = err.read().decode(errors="replace")[-3000:]
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"zipline {' '.join(args)} failed ({code}):\n{tail}")
    return seconds, usage.ru_maxrss / 1024.0


def replay_plan(perf, bundle, root, ext):
    """``{session: {sid: target weight}}`` of the orders a run created each session."""
    import runpy

    from zipline.data.bundles import bundles, load

    if bundle not in bundles:
        runpy.run_path(str(ext))
    reader = load(bundle, environ={**os.environ, "ZIPLINE_ROOT": str(root)}).equity_daily_bar_reader
    plan = {}
    for day, row in perf.iterrows():
        session = pd.Timestamp(day).tz_localize(None).normalize() if pd.Timestamp(day).tzinfo \
            else pd.Timestamp(day).normalize()
        created = {}
        for o in row["orders"]:
            made = pd.Timestamp(o["created"])
            made = made.tz_localize(None) if made.tzinfo else made
            if made.normalize() == session:
                created[o["sid"]] = created.get(o["sid"], 0) + o["amount"]
        if not created:
            continue
        held = {p["sid"]: p["amount"] for p in row["positions"]}
        pv = float(row["portfolio_value"])
        weights = {}
        for asset, amount in created.items():
            close = reader.get_value(asset.sid, session, "close")
            weights[int(asset.sid)] = (held.get(asset, 0) + amount) * close / pv
        plan[session] = weights
    return plan


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--data", choices=["sp505"], default="sp505")
    group.add_argument("--generated", type=int, metavar="N")
    ap.add_argument("-s", "--start", default="2014-01-02")
    ap.add_argument("-e", "--end", default="2017-12-29")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--algorithms", nargs="*", default=list(DEFAULT_ALGORITHMS))
    ap.add_argument("--params", default="{}",
                    help='JSON {algorithm: {param: value}} merged over the defaults')
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "factorarb-bench")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args(argv)
    extra = json.loads(args.params)

    args.cache.mkdir(parents=True, exist_ok=True)
    if args.generated:
        root, ext, bundle = prepare_generated(args.cache, args.generated, args.start, args.end)
    else:
        if not args.shared.is_dir():
            sys.exit(f"real data not found at {args.shared} (pass --shared)")
        root, ext, bundle = prepare_sp505(args.cache, args.shared)
    sessions = None
    out_dir = Path(tempfile.mkdtemp(prefix="bench_backtest_"))
    dates = ["-s", args.start, "-e", args.end, "--no-benchmark"]

    results = {}

    def measure(label, algo_file, params=None, extra_env=None, keep=None):
        times, rss = [], []
        for _ in range(args.repeat):
            out = out_dir / f"{label}.pickle"
            sec, mb = _zipline(root, ext, "run", "-f", str(algo_file), "-b", bundle, *dates,
                               "-o", str(out), params=params, extra_env=extra_env)
            times.append(sec)
            rss.append(mb)
        results[label] = (statistics.median(times), statistics.median(rss), times)
        print(f"  {label:<34} {statistics.median(times):8.1f} s  "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)})  {statistics.median(rss):7.0f} MB",
              flush=True)
        return out_dir / f"{label}.pickle"

    print(f"bundle {bundle}, {args.start} .. {args.end}, {args.repeat} runs each; "
          f"python {sys.version.split()[0]}", flush=True)
    perf = pd.read_pickle(measure("zipline alone (buy-and-hold)", BASELINES / "buy_and_hold.py"))
    sessions = len(perf)
    for name in args.algorithms:
        params = {**DEFAULT_ALGORITHMS.get(name, {}), **extra.get(name, {})}
        perf = pd.read_pickle(measure(name, ALGORITHMS / f"{name}.py", params=params))
        plan = replay_plan(perf, bundle, root, ext)
        plan_file = out_dir / f"{name}.plan.pickle"
        with open(plan_file, "wb") as fh:
            pickle.dump(plan, fh)
        measure(f"{name}: same trades", BASELINES / "replay.py",
                extra_env={"FACTORARB_REPLAY": str(plan_file)})

    base = results["zipline alone (buy-and-hold)"][0]
    print()
    print(f"{'backtest':<34} {'seconds':>8} {'ms/session':>10} {'peak MB':>8} "
          f"{'x zipline alone':>15} {'x same trades':>13}")
    for label, (sec, mb, _) in results.items():
        same = results.get(f"{label}: same trades")
        ratio_same = f"{sec / same[0]:13.2f}" if same else f"{'':>13}"
        print(f"{label:<34} {sec:8.1f} {1e3 * sec / sessions:10.1f} {mb:8.0f} "
              f"{sec / base:15.2f} {ratio_same}")
    print(f"\n{sessions} sessions; medians of {args.repeat} runs; each time includes the "
          "`zipline run` process start (imports, bundle load).")


if __name__ == "__main__":
    main()
