"""Speed and memory of the batched WLS residual kernel against statsmodels.

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
kernel's large stacked calls), so the thread count is printed and can be
pinned with ``--blas-threads`` (needs threadpoolctl).

Rows: the (T, N, 15) array as built (its intercept and sector columns are
the same every day, which the kernel recognises and checks on every day,
then treats as shared loadings); the same regression given as shared
(N, 12) loadings plus (T, N, 3) ``daily_loadings``; shared (N, 15) loadings;
and a (T, N, 15) array whose 15 columns all change every day (no shared
column: the fully general case). The last one is bounded by reading the
loadings (~8 us/day at the memory bandwidth of a small machine), one
stacked 16 x N x 16 product per day (~8 us/day) and the exact condition
number, a LAPACK eigenvalue solve of a 15 x 15 matrix per day (~8 us/day).
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
    varying = np.random.default_rng(7).standard_normal(loadings.shape)  # no shared column
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
    n_fixed = K - 3  # intercept + sector dummies: the same every day
    fixed = np.ascontiguousarray(loadings[0, :, :n_fixed])
    daily = np.ascontiguousarray(loadings[:, :, n_fixed:])
    (kernel_s, kernel_samples), (split_s, split_samples), (sm_s, sm_samples) = time_alternating(
        [
            lambda: wls_residuals(returns, loadings, weights),
            lambda: wls_residuals(returns, fixed, weights, daily_loadings=daily),
            lambda: statsmodels_loop(returns, loadings, weights, days),
        ],
        repeats,
    )
    result = wls_residuals(returns, loadings, weights)
    split = wls_residuals(returns, fixed, weights, daily_loadings=daily)
    split_err = np.nanmax(np.abs(split.residuals - result.residuals))

    # same answers (sanity check of what is being timed)
    reference = statsmodels_loop(returns, loadings, weights, days)
    f_err = max(np.max(np.abs(result.factor_returns[t] - p)) for t, (p, _, _) in zip(days, reference))
    r_err = max(
        np.max(np.abs(result.residuals[t][use] - e)) for t, (_, e, use) in zip(days, reference)
    )

    # shared (N, K) loadings (no daily styles), all columns changing every day,
    # and the single-day call used by a pipeline factor (one day per compute call)
    shared = np.ascontiguousarray(loadings[0])
    shared_s, _ = time_call(lambda: wls_residuals(returns, shared, weights), repeats)
    (varying_s, varying_samples), (sm2_s, _) = time_alternating(
        [
            lambda: wls_residuals(returns, varying, weights),
            lambda: statsmodels_loop(returns, varying, weights, days),
        ],
        repeats,
    )
    n_single = min(T, 200)
    single_s, _ = time_call(
        lambda: [wls_residuals(returns[t], loadings[t], weights[t]) for t in range(n_single)],
        repeats,
    )

    peak = peak_memory(lambda: wls_residuals(returns, loadings, weights))
    output_bytes = sum(np.asarray(a).nbytes for a in result)

    kernel_us = kernel_s / T * 1e6
    split_us = split_s / T * 1e6
    shared_us = shared_s / T * 1e6
    sm_us = sm_s / len(days) * 1e6
    kernel_min = min(kernel_samples) / T * 1e6
    split_min = min(split_samples) / T * 1e6
    sm_min = min(sm_samples) / len(days) * 1e6
    rows = [
        (f"statsmodels WLS loop ({len(days)} days, scaled per day)", sm_us, sm_min, None),
        ("wls_residuals, loadings (T, N, 15)", kernel_us, kernel_min, sm_us / kernel_us),
        (
            f"wls_residuals, loadings (N, {n_fixed}) + daily_loadings (T, N, 3)",
            split_us,
            split_min,
            sm_us / split_us,
        ),
        ("wls_residuals, shared loadings (N, 15), no daily styles", shared_us, None,
         sm_us / shared_us),
        (
            "wls_residuals, (T, N, 15), all 15 columns change daily",
            varying_s / T * 1e6,
            min(varying_samples) / T * 1e6,
            sm2_s / len(days) / (varying_s / T),
        ),
        ("wls_residuals, one call per day (N,) (pipeline form)", single_s / n_single * 1e6,
         None, None),
    ]
    print(f"{'method':60s} {'us/day':>9s} {'(min)':>8s} {'speedup':>8s}")
    for name, median, minimum, speedup in rows:
        print(
            f"{name:60s} {median:9.1f} "
            f"{'' if minimum is None else f'{minimum:.1f}':>8s} "
            f"{'' if speedup is None else f'{speedup:.1f}x':>8s}"
        )
    print()
    print(
        f"speedup vs the statsmodels loop (target >= 10x): (T, N, 15) {sm_us / kernel_us:.1f}x "
        f"(minima {sm_min / kernel_min:.1f}x); fixed + daily {sm_us / split_us:.1f}x "
        f"(minima {sm_min / split_min:.1f}x); all columns changing daily "
        f"{sm2_s / len(days) / (varying_s / T):.1f}x (statsmodels on those loadings)"
    )
    print(
        f"kernel wall time for all {T} days: median {kernel_s * 1e3:.1f} ms "
        f"(repeats: {', '.join(f'{s * 1e3:.0f}' for s in kernel_samples)} ms)"
    )
    print(
        f"statsmodels {len(days)} days: median {sm_s * 1e3:.1f} ms "
        f"(repeats: {', '.join(f'{s * 1e3:.0f}' for s in sm_samples)} ms)"
    )
    print(
        f"peak memory of one kernel call: {peak / mib:.1f} MiB "
        f"(of which outputs {output_bytes / mib:.1f} MiB; input loadings {loadings.nbytes / mib:.0f} MiB not counted)"
    )
    print(
        f"agreement with statsmodels on the {len(days)} days: max |df| = {f_err:.1e}, "
        f"max |d residual| = {r_err:.1e}; fixed + daily vs (T, N, 15): max |d residual| = "
        f"{split_err:.1e}; valid days {int(result.valid.sum())}/{T}, "
        f"max condition number {np.max(result.condition_number):.1f}"
    )


if __name__ == "__main__":
    main()
