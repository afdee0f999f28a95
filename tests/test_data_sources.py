"""Readers: the embedded sample and the user's CSV / Parquet layouts."""

import socket
import urllib.request

import numpy as np
import pandas as pd
import pytest

from zipline_factorarb.data.errors import BundleDataError
from zipline_factorarb.data.sources import SAMPLE_VOLUME, load_directory, load_sample


def test_sample_loaders_never_touch_the_network(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    data = load_sample()
    assert calls == []
    symbols = set(data.prices["symbol"])
    assert len(symbols) == 26  # 20 stocks + SP500 + 5 factor ETFs
    assert {"AAPL", "XOM", "SP500", "MTUM", "VLUE"} <= symbols


def test_sample_prices_are_the_skfolio_closes():
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset, load_sp500_index

    data = load_sample()
    p = data.prices.set_index(["date", "symbol"])
    stocks, index, etfs = load_sp500_dataset(), load_sp500_index(), load_factors_dataset()
    last = stocks.index[-1]
    assert p.loc[(last, "AAPL"), "close"] == stocks.loc[last, "AAPL"]
    assert p.loc[(index.index[0], "SP500"), "close"] == index.iloc[0, 0]
    assert p.loc[(etfs.index[100], "USMV"), "close"] == etfs.iloc[100]["USMV"]
    # closes only: open = high = low = close, documented stand-in volume
    assert (data.prices["open"] == data.prices["close"]).all()
    assert (data.prices["volume"] == SAMPLE_VOLUME).all()
    meta = data.metadata.set_index("symbol")
    assert meta.loc["SP500", "asset_type"] == "index"
    assert meta.loc["MTUM", "asset_type"] == "etf"
    assert meta.loc["XOM", "sector"] == "Energy"
    assert meta.loc[meta.asset_type == "stock", "sector"].notna().all()


def _bars(symbol, dates, close=100.0):
    n = len(dates)
    c = close * (1 + 0.01 * np.sin(np.arange(n)))
    return pd.DataFrame({"date": [d.strftime("%Y-%m-%d") for d in dates], "open": c,
                         "high": c * 1.01, "low": c * 0.99, "close": c,
                         "volume": np.arange(n) * 100 + 1000})


DATES = pd.bdate_range("2021-03-01", "2021-03-12")


def test_per_symbol_files_csv_and_parquet(tmp_path):
    _bars("AAA", DATES).to_csv(tmp_path / "AAA.csv", index=False)
    _bars("BBB", DATES, 50.0).to_parquet(tmp_path / "bbb.parquet")
    data = load_directory(tmp_path)
    assert sorted(data.prices["symbol"].unique()) == ["AAA", "BBB"]
    assert data.metadata is None
    row = data.prices[(data.prices.symbol == "BBB")].iloc[3]
    assert row["_row"] == 5 and row["_file"].endswith("bbb.parquet")
    assert row["close"] == pytest.approx(50.0 * (1 + 0.01 * np.sin(3)))


def test_long_file_with_aliases_and_metadata(tmp_path):
    a = _bars("AAA", DATES).assign(Ticker="aaa")
    b = _bars("BBB", DATES).assign(Ticker="BBB")
    long = pd.concat([a, b]).rename(columns={"close": "Close", "date": "Date"})
    long["Adj Close"] = long["Close"]
    long.to_csv(tmp_path / "prices.csv.gz", index=False)
    pd.DataFrame({"symbol": ["AAA", "BBB"], "name": ["A", "B"], "sector": ["Energy", ""],
                  "asset_type": ["stock", "ETF"]}).to_csv(tmp_path / "metadata.csv", index=False)
    data = load_directory(tmp_path)
    assert set(data.prices.columns) >= {"date", "symbol", "close", "adj_close"}
    assert sorted(data.prices["symbol"].unique()) == ["AAA", "BBB"]
    assert list(data.metadata["symbol"]) == ["AAA", "BBB"]


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(BundleDataError, match="price folder not found"):
        load_directory(tmp_path / "nope")
    with pytest.raises(BundleDataError, match="no price files"):
        load_directory(tmp_path)
