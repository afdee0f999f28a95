"""Speed of the portfolio optimizer: cached re-solves against fresh builds.

The problem is the research's tracking-error-budget portfolio: maximise the expected
active factor return under a 6% annual tracking-error budget (monthly risk model),
long only and fully invested, with m = 6 factors (a constant plus five factors).

Measured, all end to end through ``run_optimization`` (input alignment, parameter
update, solve, checks, report), each call with fresh inputs as in a backtest:

* N = 500: median re-solve of a cached (DPP-compiled) problem, and median time when a
  fresh cvxpy problem is built every call (``cache=False``), in the same run; their ratio.
* N = 2000: first solve of a new structure including compilation, then median re-solves.

Usage::

    python benchmarks/bench_optimizer.py           # full run
    python benchmarks/bench_optimizer.py --quick   # fewer repetitions
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd


def make_inputs(n, m=6, seed=0):
    """Random but realistic monthly risk model, benchmark and factor means."""
    from zipline_factorarb.optimize import RiskModel

    rng = np.random.default_rng(seed)
    assets = [f"S{i:05d}" for i in range(n)]
    factors = ["const"] + [f"f{j}" for j in range(1, m)]
    F = np.vstack([rng.normal(0.0, 0.002, n), rng.normal(1.0, 0.3, (1, n)),
                   rng.normal(0.0, 0.5, (m - 2, n))])
    A = rng.normal(0.0, 0.02, (m - 1, m - 1))
    cov = np.zeros((m, m))
    cov[1:, 1:] = A @ A.T + np.diag(rng.uniform(2e-4, 1e-3, m - 1))
    spec = rng.uniform(0.002, 0.01, n)
    caps = np.exp(rng.normal(0.0, 1.2, n))
    model = RiskModel(pd.DataFrame(F.T, index=assets, columns=factors),
                      pd.DataFrame(cov, index=factors, columns=factors),
                      pd.Series(spec, index=assets))
    bench = pd.Series(caps / caps.sum(), index=assets)
    mu = pd.Series(np.r_[1.0, rng.normal(0.0, 0.005, m - 1)], index=factors)
    return model, bench, mu


def problem(model, bench, mu):
    from zipline_factorarb.optimize import (LongOnly, MaximizeFactorTilt, NetExposure,
                                            TrackingError)

    return (MaximizeFactorTilt(mu, model, bench),
            [TrackingError(0.06, model, bench, periods_per_year=12), LongOnly(),
             NetExposure(1.0, 1.0)])


def timed_solve(inputs, cache):
    from zipline_factorarb.optimize import run_optimization

    objective, constraints = problem(*inputs)
    t0 = time.perf_counter()
    res = run_optimization(objective, constraints, cache=cache)
    elapsed = time.perf_counter() - t0
    res.raise_for_status()
    return elapsed, res


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    reps_500, fresh_500, reps_2000 = (10, 4, 4) if args.quick else (40, 12, 12)

    from zipline_factorarb.optimize import ProblemCache

    t0 = time.perf_counter()
    timed_solve(make_inputs(20, seed=99), ProblemCache())  # imports and first-use warm-up
    print(f"warm-up solve (first cvxpy/Clarabel call, N=20): {time.perf_counter() - t0:.2f} s")

    # ---- N = 500 -------------------------------------------------------------------
    n = 500
    pool = [make_inputs(n, seed=s) for s in range(max(reps_500, fresh_500) + 1)]
    cache = ProblemCache()
    first, first_res = timed_solve(pool[0], cache)
    cached, solver_only = [], []
    for inputs in pool[1:reps_500 + 1]:
        t, res = timed_solve(inputs, cache)
        assert res.cache_hit
        cached.append(t)
        solver_only.append(res.diagnostics["solver_time"] or float("nan"))
    fresh = [timed_solve(inputs, False)[0] for inputs in pool[1:fresh_500 + 1]]
    med_cached = statistics.median(cached)
    med_fresh = statistics.median(fresh)
    print(f"\nN={n}, m=6 (TEV budget 6%, long-only, fully invested)")
    print(f"  first solve incl. compile : {first * 1e3:8.1f} ms   (compile "
          f"{first_res.compile_time * 1e3:.0f} ms)")
    print(f"  re-solve median (cached)  : {med_cached * 1e3:8.1f} ms   (target <= 20 ms; "
          f"Clarabel itself {statistics.median(solver_only) * 1e3:.1f} ms)  [{len(cached)} runs]")
    print(f"  fresh build median        : {med_fresh * 1e3:8.1f} ms   [{len(fresh)} runs]")
    print(f"  ratio fresh / cached      : {med_fresh / med_cached:8.2f} x  (target >= 2x)")

    # ---- N = 2000 ------------------------------------------------------------------
    n = 2000
    pool = [make_inputs(n, seed=100 + s) for s in range(reps_2000 + 1)]
    cache = ProblemCache()
    first, first_res = timed_solve(pool[0], cache)
    resolves = []
    for inputs in pool[1:]:
        t, res = timed_solve(inputs, cache)
        assert res.cache_hit
        resolves.append(t)
    med = statistics.median(resolves)
    print(f"\nN={n}, m=6")
    print(f"  first solve incl. compile : {first * 1e3:8.1f} ms   (target < 1000 ms; of which "
          f"compile {first_res.compile_time * 1e3:.0f} ms, solve {first_res.solve_time * 1e3:.0f} ms)")
    print(f"  re-solve median (cached)  : {med * 1e3:8.1f} ms   (target < 100 ms)  [{len(resolves)} runs]")
    print(f"  ratio first / re-solve    : {first / med:8.2f} x")


if __name__ == "__main__":
    main()
