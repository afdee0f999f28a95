"""Per-session cost of the WLSResidual pipeline factor inside zipline's engine.

Run as a script::

    python benchmarks/bench_wls_pipeline.py            # 252 sessions
    python benchmarks/bench_wls_pipeline.py --quick    # 63 sessions, fewer repeats
    python benchmarks/bench_wls_pipeline.py --source synthetic

The reference is zipline's own vectorised regression factor, ``SimpleBeta``
(252-session beta of every asset to one asset), on the same engine and the
same data. Each factor runs alone in a pipeline over the same sessions, in
one chunk, timed after a warm-up run and in alternation with the others
(medians over repeats); the time per session includes loading the prices,
computing the daily returns and zipline's bookkeeping, for both. The
factor's own ``compute`` time per session is shown beside it, and the peak
memory traced during one run (tracemalloc; numpy reports its buffers to it).

Data (``--source``):

* ``real`` (default when the real price files are beside the checkout in
  ``../shared/data`` or in ``$FACTORARB_SHARED_DATA``): the 505 S&P 500
  stocks of 2013-2018 with their GICS sectors, ingested as a CSV bundle into
  a temporary zipline root (nothing is written to yours);
* ``synthetic``: 500 generated stocks in 11 sectors (market and sector
  moves plus noise with random volatilities) in an in-memory engine, their
  GICS codes in the in-memory asset db for ``Sector()``.

Variants timed: industry-only (the default ``WLSResidual()``: intercept and
sector dummies, 60-session volatility weights) and multi-factor (plus beta,
momentum, reversal and volatility styles over a 253-session window, the
longest the factor needs), and PCA (five principal components of the
correlation matrix of the trailing 252 sessions, refitted every session).
Target: at most 3x ``SimpleBeta``'s per-session cost.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
STYLES = ("beta", "momentum", "reversal", "volatility")


# --------------------------------------------------------------------------
# data sources
# --------------------------------------------------------------------------


def shared_data():
    env = os.environ.get("FACTORARB_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if (path / "sp500_stocks_daily_2013_2018.csv.gz").is_file() else None


def real_setup(data, workdir):
    """Ingest the 505-stock CSV set into a temporary root; engine, finder, sector."""
    from zipline.data import bundles
    from zipline.pipeline.data import EquityPricing
    from zipline.pipeline.domain import US_EQUITIES
    from zipline.pipeline.engine import SimplePipelineEngine
    from zipline.pipeline.loaders import USEquityPricingLoader

    from zipline_factorarb import register_csv_bundle
    from zipline_factorarb.pipeline.classifiers import Sector, bound_asset_finder

    stocks = workdir / "stocks"
    stocks.mkdir()
    (stocks / "prices.csv.gz").symlink_to(data / "sp500_stocks_daily_2013_2018.csv.gz")
    gics = pd.read_csv(data / "sp500_stocks_gics_sectors_2018.csv")
    pd.DataFrame({"symbol": gics["symbol"], "name": gics["name"],
                  "sector": gics["gics_sector"], "asset_type": "stock"}).to_csv(
        stocks / "metadata.csv", index=False)
    root = workdir / "zipline"
    root.mkdir()
    environ = {**os.environ, "ZIPLINE_ROOT": str(root)}
    register_csv_bundle("factorarb-bench-stocks", stocks, ohlc="repair")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        bundles.ingest("factorarb-bench-stocks", environ=environ, show_progress=False)
    loaded = bundles.load("factorarb-bench-stocks", environ=environ)
    loader = USEquityPricingLoader.without_fx(loaded.equity_daily_bar_reader,
                                              loaded.adjustment_reader)

    def get_loader(column):
        if column.unspecialize() in EquityPricing.columns:
            return loader
        raise ValueError(f"no loader for {column}")

    engine = SimplePipelineEngine(get_loader, loaded.asset_finder, default_domain=US_EQUITIES)
    target = loaded.asset_finder.lookup_symbol("AAPL", None)
    context = bound_asset_finder(loaded.asset_finder)
    return engine, target, Sector(), context, "2015-01-02", loaded


def synthetic_setup(n_sessions):
    """500 generated stocks in an in-memory engine, with GICS codes in the asset db."""
    import exchange_calendars as xcals
    import sqlalchemy as sa
    from zipline.assets import AssetDBWriter, AssetFinder
    from zipline.pipeline.data import EquityPricing
    from zipline.pipeline.domain import US_EQUITIES
    from zipline.pipeline.engine import SimplePipelineEngine
    from zipline.pipeline.loaders.frame import DataFrameLoader

    from zipline_factorarb.pipeline.classifiers import Sector, bound_asset_finder

    N = 500
    sessions = xcals.get_calendar("XNYS").sessions_in_range("2013-01-02", "2019-12-31")
    sessions = pd.DatetimeIndex(sessions[: n_sessions + 300]).tz_localize(None)
    T = len(sessions)
    rng = np.random.default_rng(0)
    codes = np.array([10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60])[np.arange(N) % 11]
    market = rng.normal(0.0003, 0.01, T)
    sector_moves = rng.normal(0.0, 0.006, (T, 11))
    sigma = rng.uniform(0.008, 0.03, N)
    r = (rng.uniform(0.6, 1.4, N) * market[:, None] + sector_moves[:, np.arange(N) % 11]
         + sigma * rng.standard_normal((T, N)))
    closes = 50.0 * np.exp(np.cumsum(r, axis=0))
    volumes = rng.uniform(1e5, 1e7, (T, N)).round()
    symbols = [f"S{i:03d}" for i in range(N)]
    equities = pd.DataFrame({"symbol": symbols, "asset_name": symbols,
                             "start_date": sessions[0], "end_date": sessions[-1],
                             "exchange": "NYSE"})
    db = sa.create_engine("sqlite://")
    exchanges = pd.DataFrame({"exchange": ["NYSE"], "canonical_name": ["NYSE"],
                              "country_code": ["US"]})
    mappings = pd.DataFrame({"sid": np.arange(N), "field": "sector", "value": codes.astype(str),
                             "start_date": sessions[0], "end_date": sessions[-1]})
    AssetDBWriter(db).write(equities=equities, exchanges=exchanges,
                            equity_supplementary_mappings=mappings)
    finder = AssetFinder(db)
    sids = finder.sids
    loaders = {
        EquityPricing.close: DataFrameLoader(EquityPricing.close,
                                             pd.DataFrame(closes, index=sessions, columns=sids)),
        EquityPricing.volume: DataFrameLoader(EquityPricing.volume,
                                              pd.DataFrame(volumes, index=sessions, columns=sids)),
    }

    def get_loader(column):
        return loaders[column.unspecialize()]

    engine = SimplePipelineEngine(get_loader, finder, default_domain=US_EQUITIES)
    target = finder.retrieve_asset(sids[0])
    return engine, target, Sector(), bound_asset_finder(finder), sessions[280], None


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------


class ComputeTimer:
    """Adds up the time spent in one term's ``_compute`` (the factor itself)."""

    def __init__(self, term):
        self.term = term
        self.seconds = 0.0

    def __enter__(self):
        original = self.term._compute

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        self.term._compute = timed
        return self

    def __exit__(self, *exc):
        del self.term._compute


def run_once(engine, pipeline, start, end):
    out = engine.run_pipeline(pipeline, start, end)
    return out, out.index.get_level_values(0).nunique()


def peak_memory(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="63 sessions, 3 repeats")
    parser.add_argument("--source", choices=("auto", "real", "synthetic"), default="auto")
    parser.add_argument("--sessions", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    n_sessions = args.sessions or (63 if args.quick else 252)
    repeats = args.repeats or (3 if args.quick else 5)

    from zipline.pipeline import Pipeline
    from zipline.pipeline.factors import SimpleBeta

    from zipline_factorarb import WLSResidual

    source = args.source
    data = shared_data()
    if source == "auto":
        source = "real" if data is not None else "synthetic"
    if source == "real" and data is None:
        parser.error("--source real needs the real price files in ../shared/data")

    with tempfile.TemporaryDirectory() as tmp:
        if source == "real":
            engine, target, sector, context, first, loaded = real_setup(data, Path(tmp))
        else:
            engine, target, sector, context, first, loaded = synthetic_setup(n_sessions)
        import exchange_calendars as xcals

        sessions = xcals.get_calendar("XNYS").sessions_in_range(first, "2019-12-31")
        start, end = pd.Timestamp(sessions[0]), pd.Timestamp(sessions[n_sessions - 1])

        factors = {
            "SimpleBeta(target, 252)": SimpleBeta(target=target, regression_length=252),
            "WLSResidual() industry-only": WLSResidual(sector=sector),
            "WLSResidual(styles=4) multi-factor": WLSResidual(sector=sector, styles=STYLES),
            "WLSResidual(components=5) PCA": WLSResidual(sector=None, components=5),
        }
        pipelines = {}
        for name, term in factors.items():
            column = term if isinstance(term, SimpleBeta) else term.weighted_residual
            pipelines[name] = Pipeline({"x": column})

        with context:
            n_assets = None
            for name, pipe in pipelines.items():  # warm-up
                out, _ = run_once(engine, pipe, start, end)
                n_assets = out.groupby(level=0).size().max()
            wall = {name: [] for name in pipelines}
            compute = {name: [] for name in pipelines}
            days = {}
            for _ in range(repeats):
                for name, pipe in pipelines.items():
                    with ComputeTimer(factors[name]) as timer:
                        t0 = time.perf_counter()
                        _, days[name] = run_once(engine, pipe, start, end)
                        wall[name].append(time.perf_counter() - t0)
                    compute[name].append(timer.seconds)
            memory = {name: peak_memory(lambda p=pipe: run_once(engine, p, start, end))
                      for name, pipe in pipelines.items()}
        if loaded is not None:
            loaded.close()

    base = "SimpleBeta(target, 252)"
    per_day = {name: statistics.median(v) / days[name] for name, v in wall.items()}
    compute_day = {name: statistics.median(v) / days[name] for name, v in compute.items()}
    print("WLSResidual pipeline benchmark")
    print(f"  source: {source} ({n_assets} assets), {days[base]} sessions "
          f"{start.date()} .. {end.date()}, one chunk; medians of {repeats} repeats")
    print()
    print(f"{'pipeline with one factor':38s} {'ms/session':>11s} {'x SimpleBeta':>13s} "
          f"{'compute ms':>11s} {'x':>6s} {'peak MiB':>9s}")
    for name in pipelines:
        print(f"{name:38s} {per_day[name] * 1e3:11.2f} {per_day[name] / per_day[base]:12.2f}x "
              f"{compute_day[name] * 1e3:11.2f} {compute_day[name] / compute_day[base]:5.2f}x "
              f"{memory[name] / 2**20:9.1f}")
    print()
    worst = max(per_day[name] / per_day[base] for name in pipelines)
    print(f"target: at most 3x SimpleBeta per session; worst WLSResidual variant "
          f"{worst:.2f}x ({'met' if worst <= 3 else 'NOT met'})")


if __name__ == "__main__":
    main()
