"""Real ingestions read back and compared with their source files."""

import json

import pandas as pd
import pytest
from zipline.data import bundles
from zipline.pipeline import Pipeline
from zipline.pipeline.data import EquityPricing
from zipline.pipeline.factors import Returns

from conftest import zipline_environ
from zipline_factorarb.data.writer import SUMMARY_FILE
from zipline_factorarb.pipeline.classifiers import AssetType, Sector
from zipline_factorarb.pipeline.research import run_pipeline


def _load(name, root):
    return bundles.load(name, environ=zipline_environ(root))


def _close(data, symbol, date):
    asset = data.asset_finder.lookup_symbol(symbol, as_of_date=None)
    return data.equity_daily_bar_reader.get_value(asset.sid, pd.Timestamp(date), "close")


# ---------------------------------------------------------------- sample
def test_sample_bars_match_skfolio(sample_root):
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset, load_sp500_index

    stocks, index, etfs = load_sp500_dataset(), load_sp500_index(), load_factors_dataset()
    data = _load("factorarb-sample", sample_root)
    try:
        last = stocks.index[-1]
        assert last == pd.Timestamp("2022-12-28")
        for symbol in ("AAPL", "XOM", "JPM"):
            assert _close(data, symbol, last) == pytest.approx(stocks.loc[last, symbol], abs=5e-4)
            assert _close(data, symbol, "2008-10-10") == pytest.approx(
                stocks.loc["2008-10-10", symbol], abs=5e-4)
        assert _close(data, "SP500", last) == pytest.approx(index.iloc[-1, 0], abs=5e-4)
        assert _close(data, "MTUM", etfs.index[0]) == pytest.approx(etfs.iloc[0]["MTUM"], abs=5e-4)
        assets = data.asset_finder.retrieve_all(data.asset_finder.sids)
        assert len(assets) == 26
        assert all(a.exchange_info.country_code == "US" for a in assets)
        mtum = data.asset_finder.lookup_symbol("MTUM", as_of_date=None)
        assert mtum.start_date == etfs.index[0]
    finally:
        data.close()


def test_sample_sector_and_asset_type_in_pipeline(sample_root, monkeypatch):
    monkeypatch.setenv("ZIPLINE_ROOT", str(sample_root))
    out = run_pipeline(
        Pipeline({"sector": Sector(), "type": AssetType(), "close": EquityPricing.close.latest}),
        "2020-03-02", "2020-03-03", bundle="factorarb-sample",
    )
    day = out.xs(pd.Timestamp("2020-03-03"), level=0)
    by_symbol = {a.symbol: row for a, row in day.iterrows()}
    assert by_symbol["XOM"]["sector"] == Sector.ENERGY == 10
    assert by_symbol["MSFT"]["sector"] == Sector.INFORMATION_TECHNOLOGY == 45
    assert by_symbol["JPM"]["sector"] == 40
    assert by_symbol["SP500"]["type"] == AssetType.INDEX
    assert by_symbol["SP500"]["sector"] == Sector.UNKNOWN
    assert by_symbol["USMV"]["type"] == AssetType.ETF
    assert by_symbol["AAPL"]["type"] == AssetType.STOCK
    assert Sector.name_of(by_symbol["PG"]["sector"]) == "Consumer Staples"


# ---------------------------------------------------------------- real CSV data
def _etf_source(shared):
    df = pd.read_csv(shared / "spdr_sector_etfs_daily.csv.gz", parse_dates=["date"])
    return df.set_index(["symbol", "date"]).sort_index()


def test_etf_bundle_prices_and_a_known_dividend(shared_csv_root, shared_data_dir):
    src = _etf_source(shared_data_dir)
    data = _load("factorarb-csv", shared_csv_root["root"])
    try:
        for symbol, date in (("SPY", "2019-12-19"), ("XLK", "2008-09-15"), ("XLU", "2025-09-25")):
            assert _close(data, symbol, date) == pytest.approx(src.loc[(symbol, date), "close"], abs=5e-4)
        spy = data.asset_finder.lookup_symbol("SPY", as_of_date=None)
        divs = data.adjustment_reader.get_adjustments_for_sid("dividends", spy.sid)
        ratios = {pd.Timestamp(d): r for d, r in divs}
        # SPY went ex-dividend on 2019-12-20 (a $1.57 distribution)
        ex = pd.Timestamp("2019-12-20")
        prev = pd.Timestamp("2019-12-19")
        c0, c1 = src.loc[("SPY", prev), "close"], src.loc[("SPY", ex), "close"]
        a0, a1 = src.loc[("SPY", prev), "adj_close"], src.loc[("SPY", ex), "adj_close"]
        expected_ratio = (a0 / c0) / (a1 / c1)
        assert ratios[ex] == pytest.approx(expected_ratio, abs=2e-6)
        assert (1 - ratios[ex]) * c0 == pytest.approx(1.57, abs=0.01)
        # quarterly: four SPY dividends a year
        years = pd.Series([d.year for d in ratios]).value_counts()
        assert (years.loc[2000:2024] == 4).all()
    finally:
        data.close()


def test_etf_bundle_total_returns_match_adj_close(shared_csv_root, shared_data_dir, monkeypatch):
    monkeypatch.setenv("ZIPLINE_ROOT", str(shared_csv_root["root"]))
    src = _etf_source(shared_data_dir)
    out = run_pipeline(Pipeline({"r1": Returns(window_length=2), "r252": Returns(window_length=253)}),
                       "2019-12-02", "2019-12-31", bundle="factorarb-csv")
    checked = 0
    for (day, asset), row in out.iterrows():
        adj = src.loc[asset.symbol, "adj_close"]
        # the pipeline's value on `day` uses data through the previous session
        pos = adj.index.get_loc(day) - 1
        exp1 = adj.iloc[pos] / adj.iloc[pos - 1] - 1
        exp252 = adj.iloc[pos] / adj.iloc[pos - 252] - 1
        assert row["r1"] == pytest.approx(exp1, abs=1e-4), (day, asset)
        assert row["r252"] == pytest.approx(exp252, rel=1e-3), (day, asset)
        checked += 1
    assert checked >= 200


def test_stock_bundle_prices_fills_and_sectors(shared_csv_root, monkeypatch):
    root = shared_csv_root["root"]
    data = _load("factorarb-csv-stocks", root)
    try:
        # AAPL's 7:1 split is already in the source prices: stored as is
        assert _close(data, "AAPL", "2014-06-06") == pytest.approx(92.2242, abs=5e-4)
        assert _close(data, "AAPL", "2014-06-09") == pytest.approx(93.70, abs=5e-4)
        assert _close(data, "MSFT", "2013-02-08") == pytest.approx(27.55, abs=5e-4)
        # DHR has no row on 2013-04-26: forward-filled with zero volume
        dhr = data.asset_finder.lookup_symbol("DHR", as_of_date=None)
        reader = data.equity_daily_bar_reader
        assert reader.get_value(dhr.sid, pd.Timestamp("2013-04-26"), "volume") == 0
        assert reader.get_value(dhr.sid, pd.Timestamp("2013-04-26"), "close") == pytest.approx(
            reader.get_value(dhr.sid, pd.Timestamp("2013-04-25"), "close"))
        assert len(data.asset_finder.sids) == 505
    finally:
        data.close()
    stamp = sorted(p for p in (root / "data" / "factorarb-csv-stocks").iterdir()
                   if not p.name.startswith("."))[-1]
    summary = json.loads((stamp / SUMMARY_FILE).read_text())
    filled = {k: len(v) for k, v in summary["filled_sessions"].items()}
    assert filled == {"DHR": 16, "O": 16, "ES": 10, "ICE": 5, "BMY": 2, "ORCL": 2}
    assert any("repaired 12 row(s)" in w for w in summary["warnings"])

    monkeypatch.setenv("ZIPLINE_ROOT", str(root))
    out = run_pipeline(Pipeline({"sector": Sector()}), "2018-02-07", "2018-02-07",
                       bundle="factorarb-csv-stocks")
    sectors = {a.symbol: s for (_, a), s in out["sector"].items()}
    assert sectors["AAPL"] == Sector.INFORMATION_TECHNOLOGY
    assert sectors["T"] == Sector.COMMUNICATION_SERVICES  # GICS 2017: Telecommunication Services
    assert sectors["XOM"] == Sector.ENERGY
    counts = pd.Series(sectors).value_counts()
    assert counts[Sector.CONSUMER_DISCRETIONARY] == 84 and counts[Sector.REAL_ESTATE] == 33
