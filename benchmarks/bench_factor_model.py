"""Time per rebalance of the factor-model estimator against scikit-learn fitted per asset.

One "rebalance" estimates the loadings of N=500 assets on K factors over a window of
T daily returns: OLS, ridge with the penalty chosen per asset by 5-fold walk-forward
cross-validation, and lasso likewise (:func:`zipline_factorarb.kernels.factor_model.fit_factor_model`).
The baseline fits scikit-learn per asset on the same data and grids: ``LinearRegression``,
``RidgeCV(alphas, cv=TimeSeriesSplit(5), scoring="neg_mean_squared_error")`` and
``LassoCV(alphas, cv=TimeSeriesSplit(5))``. The baseline is timed on ``--baseline-assets``
assets (default 25) and scaled to N (the per-asset fits are independent, so their time is
linear in the number of assets); ours on all N. Factors are generated nearly collinear
(a market and sector-like factors that share it), as SPY with the sector ETFs. Both run
with one BLAS thread (``threadpoolctl``), as the pipeline terms do: on a busy machine
BLAS threads fighting over cores made one OLS solve ten times slower.

Prints the median of ``--repeats`` runs for each, and the ratio baseline / ours.

    python benchmarks/bench_factor_model.py [--repeats 3] [--baseline-assets 25]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LassoCV, LinearRegression, RidgeCV
from sklearn.model_selection import TimeSeriesSplit
from threadpoolctl import threadpool_limits

from zipline_factorarb.kernels import factor_model as fm


def data(T, N, K, seed=0):
    rng = np.random.default_rng(seed)
    market = rng.normal(0, 0.01, (T, 1))
    X = np.hstack([market, market + rng.normal(0, 0.006, (T, K - 1))])
    Y = X @ rng.normal(0.1, 0.5, (K, N)) + rng.normal(0, 0.015, (T, N))
    return X, Y


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-assets", type=int, default=25)
    ap.add_argument("--assets", type=int, default=500)
    args = ap.parse_args()
    with threadpool_limits(1):
        run(args)


def run(args):
    N, nb = args.assets, args.baseline_assets
    print(f"N={N} assets; baseline timed on {nb} assets and scaled x{N / nb:g}; "
          f"median of {args.repeats}")
    print(f"{'T':>4} {'K':>3} {'method':>9} {'ours (s)':>10} {'sklearn (s)':>12} {'ratio':>8}")
    for T, K in [(252, 10), (756, 15)]:
        X, Y = data(T, N, K)
        rgrid = fm.ridge_grid(X)
        lgrid = np.geomspace(fm.lasso_grid(X, Y).max(), fm.lasso_grid(X, Y).min(), 20)
        cases = {
            "ols": (lambda: fm.fit_factor_model(Y, X, "ols"),
                    lambda y: LinearRegression().fit(X, y)),
            "ridge-cv": (lambda: fm.fit_factor_model(Y, X, "ridge", grid=rgrid),
                         lambda y: RidgeCV(alphas=rgrid, cv=TimeSeriesSplit(5),
                                           scoring="neg_mean_squared_error").fit(X, y)),
            "lasso-cv": (lambda: fm.fit_factor_model(Y, X, "lasso", grid=lgrid),
                         lambda y: LassoCV(alphas=lgrid, cv=TimeSeriesSplit(5)).fit(X, y)),
        }
        for name, (ours, base) in cases.items():
            t_ours = median_time(ours, args.repeats)
            t_base = median_time(lambda: [base(Y[:, i]) for i in range(nb)], args.repeats) * N / nb
            print(f"{T:>4} {K:>3} {name:>9} {t_ours:>10.3f} {t_base:>12.3f} {t_base / t_ours:>8.1f}x",
                  flush=True)


if __name__ == "__main__":
    main()
