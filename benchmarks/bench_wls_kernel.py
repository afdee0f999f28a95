"""Speed and memory of the WLS residual kernel against statsmodels.

Run as a script::

    python benchmarks/bench_wls_kernel.py           # N=500, K=15, T=2520
    python benchmarks/bench_wls_kernel.py --quick   # small smoke version
    python benchmarks/bench_wls_kernel.py --blas-threads 1

Generated data with a fixed seed: 12 sectors (one reference sector, so an
intercept plus 11 sector dummies) and 3 style columns that change every day,
giving loadings of shape (T, N, 15); inverse-variance weights capped at their
95th percentile; about 1% missing returns. The baseline is the per-day loop a
user would otherwise write: ``sm.WLS(y, X, weights=w).fit()`` on the usable
assets of each day, timed on a subset of days in the same run and scaled per
day. The two are timed in alternation (kernel, baseline, kernel, ...) so that
both see the same load; timings are medians over repeats (the minimum, the
least disturbed run, is printed beside them). The peak memory is the largest traced
allocation during one kernel call (tracemalloc, which numpy reports to),
outputs included, inputs excluded.

Both sides call BLAS/LAPACK; on a small shared machine the number of BLAS
threads changes both timings (statsmodels' per-day SVD more than the
kernel's stacked calls), so the thread count is printed and can be
pinned with ``--blas-threads`` (needs threadpoolctl).

The headline row is what the product runs: :class:`WLSResidual` solves one
session per ``compute`` call, i.e. ``wls_residuals`` on ``(N,)`` returns,
``(N, 15)`` loadings and ``(N,)`` weights, once per day. The batched call on
the whole ``(T, N, 15)`` array (all days in stacked products) is printed
beside it for reference.
"""

import argparse
import contextlib
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zipline_factorarb.kernels.wls import sector_loadings, wls_residuals  # noqa: E402


def make_data(T, N, n_sectors=12, n_styles=3, seed=20100701):
    """returns (T, N), loadings (T, N, K) = [intercept, sector dummies, styles], weights (T, N)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_sectors, N)
    sectors = sector_loadings(codes).loadings  # intercept + (n_sectors - 1) dummies
    styles = rng.standard_normal((T, N, n_styles))
    loadings = np.concatenate(
        [np.broadcast_to(sectors, (T, N, sectors.shape[1])), styles], axis=2
    )
    K = loadings.shape[2]
    factor_returns = rng.standard_normal((T, K)) * 0.005
    sigma = rng.uniform(0.008, 0.04, N) * np.exp(0.1 * rng.standard_normal((T, N)))
    returns = np.einsum("tnk,tk->tn", loadings, factor_returns)
    returns += sigma * rng.standard_normal((T, N))
    returns[rng.random((T, N)) < 0.01] = np.nan
    weights = 1.0 / sigma**2
    weights = np.minimum(weights, np.quantile(weights, 0.95, axis=1, keepdims=True))
    return returns, np.ascontiguousarray(loadings), weights


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_call(fn, repeats):
    samples = [timed(fn) for _ in range(repeats)]
    return statistics.median(samples), samples


def time_alternating(fns, repeats):
    """Median and all samples of each function, timed in turn per repeat."""
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples):
            out.append(timed(fn))
    return [(statistics.median(s), s) for s in samples]


def statsmodels_loop(returns, loadings, weights, days):
    import statsmodels.api as sm

    out = []
    for t in days:
        X = loadings[t]
        use = np.isfinite(returns[t]) & np.isfinite(weights[t]) & np.isfinite(X).all(axis=1)
        fit = sm.WLS(returns[t, use], X[use], weights=weights[t, use]).fit()
        out.append((fit.params, fit.resid, use))
    return out


def peak_memory(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    del result
    return peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke version")
    parser.add_argument("--repeats", type=int, default=None, help="timing repeats")
    parser.add_argument(
        "--blas-threads", type=int, default=None, help="limit BLAS threads (threadpoolctl)"
    )
    args = parser.parse_args(argv)
    limit = contextlib.nullcontext()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=args.blas_threads, user_api="blas")
    with limit:
        run(args)


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    counts = {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
    return ", ".join(str(c) for c in sorted(counts)) or "unknown"


def run(args):

    if args.quick:
        T, N, baseline_days, repeats = 120, 100, 20, 3
    else:
        T, N, baseline_days, repeats = 2520, 500, 100, 5
    repeats = args.repeats or repeats

    returns, loadings, weights = make_data(T, N)
    K = loadings.shape[2]
    mib = 2.0**20
    print("WLS residual kernel benchmark")
    print(f"  N = {N} stocks, K = {K} loadings (intercept + 11 sector dummies + 3 styles), T = {T} days")
    print(
        f"  numpy {np.__version__}, BLAS threads {blas_threads()}; "
        f"loadings input {loadings.nbytes / mib:.0f} MiB; medians of {repeats} repeats"
    )
    print()

    # warm-up (imports, first-touch allocations), then alternating timings
    days = np.linspace(0, T - 1, baseline_days).astype(int)
    wls_residuals(returns[:5], loadings[:5], weights[:5])
    statsmodels_loop(returns, loadings, weights, days[:3])

    def per_day():  # the pipeline factor's form: one session per call
        return [wls_residuals(returns[t], loadings[t], weights[t]) for t in range(T)]

    (day_s, day_samples), (batch_s, batch_samples), (sm_s, sm_samples) = time_alternating(
        [per_day, lambda: wls_residuals(returns, loadings, weights),
         lambda: statsmodels_loop(returns, loadings, weights, days)],
        repeats,
    )
    result = wls_residuals(returns, loadings, weights)
    one_by_one = per_day()
    batch_err = max(np.nanmax(np.abs(d.residuals - result.residuals[t]), initial=0.0)
                    for t, d in enumerate(one_by_one))

    # same answers (sanity check of what is being timed)
    reference = statsmodels_loop(returns, loadings, weights, days)
    f_err = max(np.max(np.abs(one_by_one[t].factor_returns - p))
                for t, (p, _, _) in zip(days, reference))
    r_err = max(np.max(np.abs(one_by_one[t].residuals[use] - e))
                for t, (_, e, use) in zip(days, reference))

    peak = peak_memory(lambda: wls_residuals(returns[0], loadings[0], weights[0]))

    day_us, day_min = day_s / T * 1e6, min(day_samples) / T * 1e6
    batch_us, batch_min = batch_s / T * 1e6, min(batch_samples) / T * 1e6
    sm_us, sm_min = sm_s / len(days) * 1e6, min(sm_samples) / len(days) * 1e6
    rows = [
        (f"statsmodels WLS loop ({len(days)} days, scaled per day)", sm_us, sm_min, None),
        ("wls_residuals, one call per day (N,) (what WLSResidual runs)", day_us, day_min,
         sm_us / day_us),
        ("wls_residuals, all days in one call (T, N, 15)", batch_us, batch_min,
         sm_us / batch_us),
    ]
    print(f"{'method':62s} {'us/day':>9s} {'(min)':>8s} {'speedup':>8s}")
    for name, median, minimum, speedup in rows:
        print(
            f"{name:62s} {median:9.1f} {minimum:8.1f} "
            f"{'' if speedup is None else f'{speedup:.1f}x':>8s}"
        )
    print()
    print(
        f"speedup of the product's per-day call vs the statsmodels loop: "
        f"{sm_us / day_us:.1f}x (minima {sm_min / day_min:.1f}x); batched call "
        f"{sm_us / batch_us:.1f}x (minima {sm_min / batch_min:.1f}x)"
    )
    print(
        f"per-day calls for all {T} days: median {day_s * 1e3:.1f} ms "
        f"(repeats: {', '.join(f'{s * 1e3:.0f}' for s in day_samples)} ms); "
        f"statsmodels {len(days)} days: median {sm_s * 1e3:.1f} ms"
    )
    print(f"peak memory of one per-day call: {peak / 2.0**10:.1f} KiB (outputs included)")
    print(
        f"agreement with statsmodels on the {len(days)} days: max |df| = {f_err:.1e}, "
        f"max |d residual| = {r_err:.1e}; batched vs per day: max |d residual| = "
        f"{batch_err:.1e}; valid days {int(result.valid.sum())}/{T}, "
        f"max condition number {np.max(result.condition_number):.1f}"
    )


if __name__ == "__main__":
    main()
