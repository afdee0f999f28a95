"""Ingest time and ingestion size with fundamentals against without.

Two CSV bundles over the same 505 real S&P 500 stocks of ``../shared/data``
(2013-02-08 .. 2018-02-07, 619,040 daily bars): ``prices`` alone, and
``prices`` plus a ``fundamentals/`` folder with one value per bar and column
(``market_cap``, a stand-in: the close times a fixed share count per symbol,
and ``book_to_market``, a made-up monthly value), i.e. 619,040 + ~30,000
fundamentals rows. Each bundle is ingested ``--repeat`` times in-process by
zipline's own ``ingest`` (alternating, into a fresh ZIPLINE_ROOT); printed:
median seconds, the size of one ingestion folder and of its
``fundamentals.parquet``, and the ratios with/without.

    python benchmarks/bench_fundamentals_ingest.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def write_folders(data, base):
    """``base/plain`` (prices + metadata) and ``base/fundamentals`` (the same + fundamentals/)."""
    prices = pd.read_csv(data / "sp500_stocks_daily_2013_2018.csv.gz")
    gics = pd.read_csv(data / "sp500_stocks_gics_sectors_2018.csv")
    meta = pd.DataFrame({"symbol": gics["symbol"], "name": gics["name"],
                         "sector": gics["gics_sector"], "asset_type": "stock"})
    folders = {}
    for name in ("plain", "fundamentals"):
        folder = base / name
        folder.mkdir(parents=True)
        (folder / "prices.csv.gz").symlink_to(data / "sp500_stocks_daily_2013_2018.csv.gz")
        meta.to_csv(folder / "metadata.csv", index=False)
        folders[name] = folder
    symbols = sorted(prices["symbol"].unique())
    shares = pd.Series(1e8 * (1 + np.arange(len(symbols))), index=symbols)
    fund = folders["fundamentals"] / "fundamentals"
    fund.mkdir()
    caps = prices[["date", "symbol"]].assign(
        market_cap=prices["close"].to_numpy() * shares.reindex(prices["symbol"]).to_numpy())
    caps.to_csv(fund / "market_cap.csv.gz", index=False)
    month_end = prices.assign(month=prices["date"].str[:7]).groupby(["symbol", "month"]).tail(1)
    btm = month_end[["date", "symbol"]].assign(
        book_to_market=0.2 + 0.001 * shares.reindex(month_end["symbol"]).to_numpy() / 1e8)
    btm.to_csv(fund / "book_to_market.csv.gz", index=False)
    return folders, len(prices), len(caps) + len(btm)


def folder_size(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (args.data / "sp500_stocks_daily_2013_2018.csv.gz").exists():
        raise SystemExit(f"price data not found in {args.data} (pass --data)")

    from zipline.data.bundles import ingest

    from zipline_factorarb.data.fundamentals import FUNDAMENTALS_FILE
    from zipline_factorarb.data.register import register_csv_bundle

    with tempfile.TemporaryDirectory(prefix="bench-fund-") as tmp:
        base = Path(tmp)
        folders, n_bars, n_fund = write_folders(args.data, base / "src")
        register_csv_bundle("bench-plain", folders["plain"], ohlc="repair")
        register_csv_bundle("bench-fund", folders["fundamentals"], ohlc="repair")
        times = {"bench-plain": [], "bench-fund": []}
        sizes = {}
        for i in range(args.repeat):
            for name in times:
                root = base / f"root-{name}-{i}"
                root.mkdir()
                env = dict(os.environ, ZIPLINE_ROOT=str(root))
                start = time.perf_counter()
                ingest(name, environ=env, show_progress=False)
                times[name].append(time.perf_counter() - start)
                folder = [p for p in (root / "data" / name).iterdir()
                          if p.is_dir() and not p.name.startswith(".")][0]
                sizes[name] = folder_size(folder)
                fund_file = folder / FUNDAMENTALS_FILE
                if fund_file.exists():
                    sizes["fundamentals.parquet"] = fund_file.stat().st_size
        plain, fund = (statistics.median(times[n]) for n in ("bench-plain", "bench-fund"))
        print(f"505 stocks, {n_bars:,} bars; fundamentals: {n_fund:,} rows "
              f"(market_cap daily, book_to_market monthly); median of {args.repeat} ingests")
        print(f"ingest without fundamentals: {plain:7.2f} s   ingestion {sizes['bench-plain'] / 1e6:7.1f} MB")
        print(f"ingest with fundamentals:    {fund:7.2f} s   ingestion {sizes['bench-fund'] / 1e6:7.1f} MB "
              f"(fundamentals.parquet {sizes['fundamentals.parquet'] / 1e6:.1f} MB)")
        print(f"ratio with/without: time {fund / plain:.2f}x, size "
              f"{sizes['bench-fund'] / sizes['bench-plain']:.2f}x")
        print("all times (s):", {k: [round(t, 2) for t in v] for k, v in times.items()})


if __name__ == "__main__":
    main()
