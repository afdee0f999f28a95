"""Benchmark of the JAX Kalman-filter kernel against a numpy re-run.

Measures, in one process and on the same data:

1. ``kalman_last`` on a (252, 500) window with K=3 shared factors (what the
   pipeline factor calls once per session), against re-running the same
   filter over the window in numpy (``kalman_update`` stepped over the
   window, vectorised across assets);
2. the full-history ``kalman_filter`` (T=2520, N=500, K=3);
3. compile time and the number of compilations, separately from the run
   time, including a universe whose size changes every day.

Times are medians over repeats, after compilation. Targets: ``kalman_last``
<= 3 ms per call and >= 5x faster than numpy; full history < 0.1 s.

Usage::

    python benchmarks/bench_kalman_kernel.py           # full run
    python benchmarks/bench_kalman_kernel.py --quick   # fewer repeats
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from zipline_factorarb.kernels.kalman import (
    compilation_count,
    kalman_filter,
    kalman_last,
    kalman_update,
)

DELTA = 1e-5  # state_noise
V_E = 1e-4  # obs_noise


def make_data(T, N, K, seed=0):
    """Returns with a K-factor structure and slowly drifting betas."""
    rng = np.random.default_rng(seed)
    f = rng.normal(0.0, 0.01, size=(T, K))
    beta = rng.normal(1.0, 0.3, size=(N, K)) + np.cumsum(
        rng.normal(0.0, 0.003, size=(T, N, K)), axis=0
    )
    r = np.einsum("tk,tnk->tn", f, beta) + rng.normal(0.0, 0.01, size=(T, N))
    return r, f


def numpy_window_rerun(r, f, delta, v_e, p0=1.0):
    """The same filter re-run over the window in numpy (vectorised over assets)."""
    N, K = r.shape[1], f.shape[-1]
    beta = np.zeros((N, K))
    P = np.broadcast_to(p0 * np.eye(K), (N, K, K))
    for t in range(r.shape[0]):
        beta, P, e, Q = kalman_update(beta, P, r[t], f[t], delta, v_e)
    return e, Q, beta


def numpy_window_rerun_shared(r, f, delta, v_e, p0=1.0):
    """numpy re-run with the kernel's own shortcut for complete windows.

    With shared factors and no missing data every asset has the same
    covariance P_t and gain, so one K x K recursion serves all assets and only
    the betas are per asset: the fairest numpy counterpart of the kernel's
    shared path.
    """
    N, K = r.shape[1], f.shape[-1]
    beta = np.zeros((K, N))
    P = p0 * np.eye(K)
    I = np.eye(K)
    for t in range(r.shape[0]):
        f_t = f[t]
        P_pred = P + delta * I
        Pf = P_pred @ f_t
        Q = f_t @ Pf + v_e
        e = r[t] - f_t @ beta
        gain = Pf / Q
        beta = beta + np.outer(gain, e)
        P = P_pred - np.outer(gain, Pf)
    return e, Q, beta.T


def timed(fn, repeats):
    """Median and minimum wall time of ``fn()`` over ``repeats`` calls (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def first_call(fn):
    """Time of the first call and compilations it caused."""
    c0 = compilation_count()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, compilation_count() - c0


def ms(seconds):
    return f"{seconds * 1e3:8.2f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    rep_last, rep_numpy, rep_full = (30, 5, 3) if args.quick else (300, 30, 15)

    import jax

    W, N, K, T_FULL = 252, 500, 3, 2520
    print("Kalman kernel benchmark (random-walk betas, float64)")
    print(
        f"  python {platform.python_version()}, numpy {np.__version__}, jax {jax.__version__}, "
        f"device {jax.devices()[0].device_kind}, {'quick' if args.quick else 'full'} run"
    )
    print(f"  medians over repeats: kalman_last x{rep_last}, numpy x{rep_numpy}, "
          f"full history x{rep_full}")

    r_full, f_full = make_data(T_FULL, N, K)
    r_win, f_win = r_full[-W:], f_full[-W:]
    r_gap = r_win.copy()
    r_gap[:100, :20] = np.nan  # 20 names listed during the window
    f_per_asset = np.repeat(f_win[:, None, :], N, axis=1)

    # ------------------------------------------------------------------ compile
    print("\n[compilation]  (first call = trace + compile + run)")
    rows = [
        ("kalman_last, complete window", lambda: kalman_last(r_win, f_win, DELTA, V_E)),
        ("kalman_last, 20 names with gaps", lambda: kalman_last(r_gap, f_win, DELTA, V_E)),
        ("kalman_last, per-asset factors", lambda: kalman_last(r_win, f_per_asset, DELTA, V_E)),
        ("kalman_filter, full history", lambda: kalman_filter(r_full, f_full, DELTA, V_E)),
    ]
    for name, fn in rows:
        t, n = first_call(fn)
        print(f"  {name:36s} first call {ms(t)}   compilations: {n}")
    total_compiles = compilation_count()

    # ------------------------------------------------------- per-session window
    print(f"\n[kalman_last]  window W={W}, N={N}, K={K} (per backtest session)")
    numpy_med, numpy_min = timed(lambda: numpy_window_rerun(r_win, f_win, DELTA, V_E), rep_numpy)
    e_np, _, beta_np = numpy_window_rerun(r_win, f_win, DELTA, V_E)
    res = kalman_last(r_win, f_win, DELTA, V_E)
    err = max(
        np.max(np.abs(res.innovations - e_np)) / np.max(np.abs(e_np)),
        np.max(np.abs(res.betas - beta_np)) / np.max(np.abs(beta_np)),
    )
    np2_med, np2_min = timed(
        lambda: numpy_window_rerun_shared(r_win, f_win, DELTA, V_E), rep_numpy
    )
    e_np2, _, beta_np2 = numpy_window_rerun_shared(r_win, f_win, DELTA, V_E)
    err = max(err, np.max(np.abs(res.innovations - e_np2)) / np.max(np.abs(e_np2)))
    print(f"  numpy re-run, per-asset P (kalman_update x {W}) median {ms(numpy_med)}  "
          f"(min {ms(numpy_min)})")
    print(f"  numpy re-run, shared P (same shortcut)         median {ms(np2_med)}  "
          f"(min {ms(np2_min)})")
    results = {}
    for name, fn in rows[:3]:
        med, mn = timed(fn, rep_last)
        results[name] = med
        print(f"  {name:46s} median {ms(med)}  (min {ms(mn)})  "
              f"{numpy_med / med:5.1f}x / {np2_med / med:4.1f}x faster than numpy "
              f"(per-asset P / shared P)")
    print(f"  max relative difference kernel vs numpy re-runs: {err:.1e}")

    # universe size changing every day
    sizes = np.random.default_rng(1).integers(449, 513, size=40)
    c0 = compilation_count()
    t0 = time.perf_counter()
    for n in sizes:
        kalman_last(r_win[:, :n], f_win, DELTA, V_E)
    per_call = (time.perf_counter() - t0) / len(sizes)
    print(f"  universe of 449..512 names changing daily ({len(sizes)} calls): "
          f"{compilation_count() - c0} new compilations, mean {ms(per_call)} per call")

    # ------------------------------------------------------------- full history
    print(f"\n[kalman_filter]  full history T={T_FULL}, N={N}, K={K} "
          f"(innovations, variances and betas of every step)")
    full_med, full_min = timed(lambda: kalman_filter(r_full, f_full, DELTA, V_E), rep_full)
    print(f"  complete data                            median {ms(full_med)}  "
          f"(min {ms(full_min)})")
    r_full_gap = r_full.copy()
    r_full_gap[:500, :50] = np.nan
    kalman_filter(r_full_gap, f_full, DELTA, V_E)  # compile the general path
    gap_med, _ = timed(lambda: kalman_filter(r_full_gap, f_full, DELTA, V_E), rep_full)
    print(f"  50 names listed late (general path too)  median {ms(gap_med)}")

    # ------------------------------------------------------------------ summary
    last_med = results["kalman_last, complete window"]
    print("\n[summary]")
    print(f"  kalman_last per call: {ms(last_med)} (target <= 3 ms: "
          f"{'met' if last_med <= 3e-3 else 'MISSED'})")
    print(f"  speed-up vs numpy re-run with per-asset P: {numpy_med / last_med:5.1f}x "
          f"(target >= 5x: {'met' if numpy_med / last_med >= 5 else 'MISSED'})")
    print(f"  speed-up vs numpy re-run with the same shared-P shortcut: "
          f"{np2_med / last_med:5.1f}x (target >= 5x: "
          f"{'met' if np2_med / last_med >= 5 else 'MISSED'})")
    print(f"  full history: {ms(full_med)} (target < 100 ms: "
          f"{'met' if full_med < 0.1 else 'MISSED'})")
    print(f"  compilations in this run: {compilation_count()} "
          f"({total_compiles} during warm-up, one per path and bucketed shape)")


if __name__ == "__main__":
    main()
