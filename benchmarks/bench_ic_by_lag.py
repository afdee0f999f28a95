"""Speed of the IC by lag: our vectorised kernel against alphalens' per-day IC.

Run as a script::

    python benchmarks/bench_ic_by_lag.py           # 1,000 days x 100 assets, lags 0-5
    python benchmarks/bench_ic_by_lag.py --quick   # 250 days x 30 assets

Generated data with a fixed seed (returns with 5% missing values, a factor
that partly predicts the return of lag 3). The baseline is what alphalens
offers for one lag: an alphalens ``factor_data`` frame holding the factor and
the lagged one-session return as its forward-return column, given to
``alphalens.performance.factor_information_coefficient`` (a ``spearmanr`` per
day). The candidate is :func:`zipline_factorarb.kernels.evaluation.lag_ic`
for all lags at once. Both are timed in alternation, medians over repeats
(minimum beside), and their ICs are compared (they must agree to 1e-12).
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zipline_factorarb.kernels.evaluation import lag_ic  # noqa: E402


def data(days, assets, seed=0):
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2010-01-04", periods=days + 10)
    cols = [f"S{i:03d}" for i in range(assets)]
    rets = pd.DataFrame(rng.normal(0, 0.01, size=(days + 10, assets)), index=sessions,
                        columns=cols)
    rets = rets.mask(rng.random(rets.shape) < 0.05)
    dates = sessions[2:days + 2]
    factor = rets.shift(-2).loc[dates].fillna(0.0) + rng.normal(0, 0.02, size=(days, assets))
    return factor, rets


def alphalens_lags(factor, rets, lags):
    import alphalens as al

    stacked = factor.stack()
    stacked.index = stacked.index.set_names(["date", "asset"])
    out = {}
    for k in lags:
        lagged = rets.shift(1 - k).reindex(factor.index).stack()
        lagged.index = lagged.index.set_names(["date", "asset"])
        frame = pd.DataFrame({"factor": stacked, "1D": lagged}).dropna()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[k] = al.performance.factor_information_coefficient(frame)["1D"].reindex(
                factor.index)
    return pd.DataFrame(out)


def kernel_lags(factor, rets, lags):
    pos = rets.index.get_indexer(factor.index)
    return pd.DataFrame(lag_ic(factor.to_numpy(), rets.to_numpy(), pos - 1, lags),
                        index=factor.index, columns=list(lags))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    days, assets = (250, 30) if args.quick else (1000, 100)
    lags = list(range(6))
    factor, rets = data(days, assets)
    times = {"alphalens": [], "kernel": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        base = alphalens_lags(factor, rets, lags)
        times["alphalens"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = kernel_lags(factor, rets, lags)
        times["kernel"].append(time.perf_counter() - t)
    diff = float(np.nanmax(np.abs(base.to_numpy() - ours.to_numpy())))
    assert diff < 1e-12, diff
    assert base.isna().equals(ours.isna())
    print(f"IC by lag, {days} days x {assets} assets, lags {lags[0]}-{lags[-1]}, "
          f"{args.repeats} repeats; max |difference| {diff:.1e}")
    for name, ts in times.items():
        print(f"  {name:10s} median {statistics.median(ts):8.3f} s   min {min(ts):8.3f} s")
    ratio = statistics.median(times["alphalens"]) / statistics.median(times["kernel"])
    print(f"  kernel is {ratio:.1f}x faster than alphalens' per-day IC (medians)")


if __name__ == "__main__":
    main()
