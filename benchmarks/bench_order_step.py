"""What ``order_optimal_portfolio`` costs beyond its own solve, inside zipline.

A real backtest on the 505 real stocks (``../shared/data``) calls
``order_optimal_portfolio`` every session with the long-short flagship's problem
(``MaximizeAlpha`` on the WLS residual, ``DollarNeutral``, ``MaxGrossExposure``,
``PositionConcentration``, zero exposure to the regression's factors, linear
costs) and times, per call: the whole call, the optimisation's own time
(``compile_time + solve_time`` as reported), and what is left: reading the
portfolio and the bar (prices, tradability) and placing the orders. Also timed
on the same sessions and assets: the per-asset zipline reads the adapter used to
make (``data.current(asset, "price")`` and ``data.can_trade(asset)`` for every
asset of the book) against one block read (``bar_snapshot``).

    python benchmarks/bench_order_step.py [--start 2015-01-02 --end 2015-03-31]

Prints medians over the sessions (the first, which compiles, is shown apart).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", default="2015-01-02")
    ap.add_argument("--end", default="2015-03-31")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "factorarb-bench")
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(HERE))
    import runpy
    import os

    from bench_backtest import prepare_sp505

    root, ext, bundle = prepare_sp505(args.cache, args.shared)
    os.environ["ZIPLINE_ROOT"] = str(root)
    runpy.run_path(str(ext))

    from zipline import run_algorithm
    from zipline.api import attach_pipeline, pipeline_output

    from zipline_factorarb.bars import bar_snapshot
    from zipline_factorarb.optimize import (CostModel, DollarNeutral, FactorExposure,
                                            MaxGrossExposure, MaximizeAlpha,
                                            PositionConcentration, order_optimal_portfolio)
    from zipline_factorarb.pipeline import IsStock, Sector, WLSResidual
    from zipline.pipeline import Pipeline

    rows = []

    def initialize(context):
        universe = IsStock() & Sector().notnull()
        context.wls = WLSResidual(mask=universe)
        attach_pipeline(Pipeline(context.wls.pipeline_columns(), screen=universe), "w")
        context.costs = CostModel()

    def handle_data(context, data):
        out = pipeline_output("w")
        loadings = context.wls.loadings(out)
        alpha = -out["wls:weighted_residual"].reindex(loadings.index) * 1e-3
        constraints = [DollarNeutral(), MaxGrossExposure(1.0),
                       PositionConcentration.with_equal_bounds(-0.02, 0.02),
                       FactorExposure(loadings, 0.0, 0.0)]
        # the portfolio is synced to the bar's prices once per bar, by whoever reads
        # it first (zipline's own per-position reads); the flagships read it before
        # the call (for the cost terms), so it is read here too
        pv = context.portfolio.portfolio_value
        t0 = time.perf_counter()
        result = order_optimal_portfolio(MaximizeAlpha(alpha), constraints, data=data,
                                         costs=context.costs.terms(pv))
        call = time.perf_counter() - t0
        opt = result.result.solve_time + result.result.compile_time
        book = list(dict.fromkeys([*alpha.index, *context.portfolio.positions]))
        t0 = time.perf_counter()
        for a in book:  # what the per-asset zipline reads of the book cost
            data.current(a, "price")
            data.can_trade(a)
        per_asset = time.perf_counter() - t0
        t0 = time.perf_counter()
        bar_snapshot(data, book)
        block = time.perf_counter() - t0
        rows.append(dict(call=call, optimisation=opt, solve=result.result.solve_time,
                         compile=result.result.compile_time, rest=call - opt,
                         orders=len(result.orders), assets=len(book),
                         per_asset_reads=per_asset, block_read=block))

    run_algorithm(start=pd.Timestamp(args.start), end=pd.Timestamp(args.end),
                  initialize=initialize, handle_data=handle_data, capital_base=1e7,
                  bundle=bundle, data_frequency="daily")
    df = pd.DataFrame(rows)
    first, rest = df.iloc[0], df.iloc[1:]
    print(f"{bundle}, {args.start} .. {args.end}: {len(df)} calls, "
          f"{int(rest['assets'].median())} assets, {int(rest['orders'].median())} orders per call")
    print(f"first call (compiles): {first['call'] * 1e3:.0f} ms, of which compile "
          f"{first['compile'] * 1e3:.0f} ms")
    print("medians of the other calls (ms):")
    for col in ["call", "optimisation", "solve", "compile", "rest", "block_read",
                "per_asset_reads"]:
        print(f"  {col:<16} {rest[col].median() * 1e3:8.1f}")
    ratio = (rest["call"] / rest["optimisation"]).median()
    print(f"call / own optimisation time: {ratio:.2f}x (target at most 1.5x)")
    print(f"recompiles after the first call: {(rest['compile'] > 0).sum()}")
    print(f"the whole book's per-asset zipline reads / one block read: "
          f"{(rest['per_asset_reads'] / rest['block_read']).median():.0f}x")


if __name__ == "__main__":
    main()
