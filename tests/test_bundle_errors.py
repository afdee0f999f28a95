"""Bad input: a clear error naming the culprit, and nothing half-written.

Each case first has a good ingestion of ``factorarb-csv`` in the zipline
root, then ingests a broken copy of the same files with real zipline. The
error must name the file, line, symbol or date at fault, and afterwards the
previous ingestion must still be the one zipline loads, with no empty
timestamped folder left behind.
"""

import json
import os

import numpy as np
import pandas as pd
import pytest
from zipline.data import bundles

from conftest import ingest, zipline_environ
from zipline_factorarb.data.errors import BundleDataError
from zipline_factorarb.data.writer import SUMMARY_FILE

DATES = pd.bdate_range("2021-03-01", "2021-03-12")  # ten XNYS sessions


def good_files():
    files = {}
    for i, symbol in enumerate(["AAA", "BBB"]):
        c = (100.0 + 10 * i) * (1 + 0.01 * np.sin(np.arange(len(DATES)) + i))
        files[f"{symbol}.csv"] = pd.DataFrame({
            "date": DATES.strftime("%Y-%m-%d"), "open": c, "high": c * 1.01,
            "low": c * 0.99, "close": c, "volume": 1000 + np.arange(len(DATES)),
        })
    files["metadata.csv"] = pd.DataFrame({
        "symbol": ["AAA", "BBB"], "name": ["Alpha", "Beta"],
        "sector": ["Energy", "Utilities"], "asset_type": ["stock", "etf"],
    })
    return files


def write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in files.items():
        frame.to_csv(folder / name, index=False)
    return folder


@pytest.fixture(scope="module")
def good_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_input")
    src = write(base / "good", good_files())
    root = base / "zipline"
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=src)
    return root, base


def _rename(col, new):
    def f(files):
        files["AAA.csv"] = files["AAA.csv"].rename(columns={col: new})
    return f


def _set(file, row, col, value):
    def f(files):
        files[file] = files[file].astype({col: object}) if isinstance(value, str) else files[file]
        files[file].loc[row, col] = value
    return f


def _append_row(file, row):
    def f(files):
        files[file] = pd.concat([files[file], pd.DataFrame([row])], ignore_index=True)
    return f


def _dup(files):
    files["BBB.csv"] = pd.concat([files["BBB.csv"], files["BBB.csv"].iloc[[4]]], ignore_index=True)


def _high_below_low(files):
    files["AAA.csv"].loc[6, ["high", "low"]] = [90.0, 95.0]


CASES = {
    "misspelled column": (_rename("close", "clsoe"),
                          ["AAA.csv", "missing column(s) 'close'", "did you mean 'clsoe'"]),
    "unparsable date": (_set("AAA.csv", 2, "date", "2021-13-45"),
                        ["AAA.csv", "line 4", "unparsable date '2021-13-45'"]),
    "duplicate date": (_dup, ["BBB.csv", "symbol BBB", "date 2021-03-05", "duplicate (date, symbol)"]),
    "not a session": (_append_row("AAA.csv", dict(date="2021-03-13", open=1, high=1, low=1,
                                                  close=1, volume=1)),
                      ["AAA.csv", "line 12", "Saturday 2021-03-13 is not a trading session"]),
    "zero close": (_set("BBB.csv", 5, "close", 0.0),
                   ["BBB.csv", "line 7", "symbol BBB", "close must be positive"]),
    "NaN close": (_set("AAA.csv", 3, "close", np.nan), ["AAA.csv", "line 5", "close is missing"]),
    "high below low": (_high_below_low, ["AAA.csv", "line 8", "high 90.0 is below low 95.0",
                                         "set FACTORARB_CSV_OHLC=repair"]),
    "beyond uint32": (_set("AAA.csv", 1, "close", 5_000_000.0),
                      ["AAA.csv", "line 3", "beyond zipline's price storage"]),
    "unknown asset type": (_set("metadata.csv", 1, "asset_type", "bond"),
                           ["metadata.csv", "line 3", "symbol BBB", "unknown asset type 'bond'"]),
    "unknown sector": (_set("metadata.csv", 0, "sector", "Crypto"),
                       ["metadata.csv", "line 2", "symbol AAA", "unknown sector 'Crypto'"]),
    "metadata column": (lambda files: files.__setitem__(
        "metadata.csv", files["metadata.csv"].rename(columns={"sector": "sectr"})),
        ["metadata.csv", "missing column(s) 'sector'", "did you mean 'sectr'"]),
}


def _ingestions(root):
    folder = root / "data" / "factorarb-csv"
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))  # .cache is zipline's


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_named_and_previous_ingestion_survives(good_root, case):
    root, base = good_root
    mutate, expected = CASES[case]
    files = good_files()
    mutate(files)
    src = write(base / case.replace(" ", "_"), files)
    before = _ingestions(root)

    with pytest.raises(BundleDataError) as info:
        ingest("factorarb-csv", root, FACTORARB_CSV_DIR=src)
    message = str(info.value)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"

    # nothing half-written: no new (empty) ingestion folder ...
    assert _ingestions(root) == before
    # ... and zipline still loads the previous good data
    data = bundles.load("factorarb-csv", environ=zipline_environ(root))
    try:
        aaa = data.asset_finder.lookup_symbol("AAA", as_of_date=None)
        close = data.equity_daily_bar_reader.get_value(aaa.sid, DATES[3], "close")
        assert close == pytest.approx(100.0 * (1 + 0.01 * np.sin(3)), abs=1e-3)
    finally:
        data.close()


def test_metadata_mismatch_warns_and_sector_unknown(tmp_path):
    files = good_files()
    files["metadata.csv"] = pd.DataFrame({
        "symbol": ["AAA", "ZZZ"], "name": ["Alpha", "Ghost"], "sector": ["Energy", "Energy"],
        "asset_type": ["stock", "stock"],
    })
    src = write(tmp_path / "src", files)
    root = tmp_path / "zipline"
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=src)
    (stamp,) = _ingestions(root)
    summary = json.loads((root / "data" / "factorarb-csv" / stamp / SUMMARY_FILE).read_text())
    warnings = " ".join(summary["warnings"])
    assert "metadata for 1 symbol(s) with no prices, ignored: ZZZ" in warnings
    assert "no metadata for 1 symbol(s); sector unknown" in warnings and "BBB" in warnings
    assert summary["assets"]["BBB"]["sector"] is None
    assert summary["assets"]["AAA"]["sector"] == 10


def test_missing_folder_fails_cleanly(tmp_path):
    root = tmp_path / "zipline"
    with pytest.raises(BundleDataError, match="price folder not found"):
        ingest("factorarb-csv", root, FACTORARB_CSV_DIR=tmp_path / "missing")
    assert _ingestions(root) == []
