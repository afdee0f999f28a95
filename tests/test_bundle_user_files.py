"""factorarb-csv on user files: share-class symbols with a dot in the file
name, and explicit dividend and split columns, through a real ingestion."""

import numpy as np
import pandas as pd
import pytest
from zipline.data import bundles

from conftest import ingest, zipline_environ
from zipline_factorarb.data.sources import file_stem, load_directory

DATES = pd.bdate_range("2021-03-01", "2021-03-12")  # ten XNYS sessions


def _bars(close=100.0):
    c = close * (1 + 0.01 * np.sin(np.arange(len(DATES))))
    return pd.DataFrame({"date": DATES.strftime("%Y-%m-%d"), "open": c, "high": c * 1.01,
                         "low": c * 0.99, "close": c, "volume": 1000 + np.arange(len(DATES))})


@pytest.mark.parametrize("name, stem", [
    ("BRK.B.csv", "BRK.B"), ("bf.a.csv.gz", "bf.a"), ("SPY.parquet", "SPY"),
    ("X.pq", "X"), ("AAA.csv", "AAA"),
])
def test_file_stem_keeps_dots_of_the_symbol(name, stem):
    assert file_stem(name) == stem


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    src = tmp_path_factory.mktemp("user_files")
    _bars(100.0).to_csv(src / "BF.A.csv", index=False)
    _bars(90.0).to_csv(src / "BF.B.csv.gz", index=False)
    c = _bars(200.0)
    c["dividend"] = 0.0
    c["split"] = 1.0
    c.loc[4, "dividend"] = 1.5  # ex-dividend on the fifth session
    c.loc[7, "split"] = 2.0  # 2-for-1 on the eighth
    c.loc[7:, ["open", "high", "low", "close"]] /= 2.0
    c.to_parquet(src / "CCC.parquet")
    pd.DataFrame({"symbol": ["BF.A", "BF.B", "CCC"], "name": ["A", "B", "C"],
                  "sector": ["Consumer Staples", "Consumer Staples", "Energy"],
                  "asset_type": ["stock", "stock", "stock"]}).to_csv(src / "metadata.csv", index=False)
    return src, c


def test_share_classes_are_two_symbols(user_files):
    src, _ = user_files
    data = load_directory(src)
    assert sorted(data.prices["symbol"].unique()) == ["BF.A", "BF.B", "CCC"]


def test_ingested_share_classes_and_adjustments(user_files, tmp_path):
    src, ccc = user_files
    root = tmp_path / "zipline"
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=src)
    data = bundles.load("factorarb-csv", environ=zipline_environ(root))
    try:
        finder = data.asset_finder
        a = finder.lookup_symbol("BF.A", as_of_date=None)
        b = finder.lookup_symbol("BF.B", as_of_date=None)
        assert a.sid != b.sid
        day = pd.Timestamp(DATES[3])
        reader = data.equity_daily_bar_reader
        assert reader.get_value(b.sid, day, "close") == pytest.approx(90.0 * (1 + 0.01 * np.sin(3)),
                                                                      abs=1e-3)
        ccc_sid = finder.lookup_symbol("CCC", as_of_date=None).sid
        adj = data.adjustment_reader
        splits = {pd.Timestamp(d): r for d, r in adj.get_adjustments_for_sid("splits", ccc_sid)}
        divs = {pd.Timestamp(d): r for d, r in adj.get_adjustments_for_sid("dividends", ccc_sid)}
        # zipline's ratios: a 2-for-1 split is 0.5; a dividend D on the day
        # before's close P is 1 - D / P
        assert splits == {pd.Timestamp(DATES[7]): pytest.approx(0.5)}
        assert divs == {pd.Timestamp(DATES[4]): pytest.approx(1 - 1.5 / ccc.loc[3, "close"],
                                                              abs=1e-6)}
    finally:
        data.close()
