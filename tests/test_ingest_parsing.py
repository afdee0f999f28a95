"""No silent coercion: every cell of a user file is a plain number or a plain
date, or the ingest fails naming the file, line, symbol and what was expected.

Most cases go through a real ``factorarb-csv`` ingestion; the properties of
the number parser are checked on generated values (hypothesis).
"""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zipline.data import bundles

from conftest import ingest, zipline_environ
from zipline_factorarb.data.errors import BundleDataError
from zipline_factorarb.data.parsing import parse_dates, parse_numbers
from zipline_factorarb.data.sources import load_directory, read_metadata_file
from zipline_factorarb.data.writer import SUMMARY_FILE

DATES = pd.bdate_range("2021-03-01", "2021-03-12")  # ten XNYS sessions
HEADER = "date,open,high,low,close,volume"


def _csv_lines(close=100.0, volume=1000):
    return [f"{d:%Y-%m-%d},{close},{close * 1.01},{close * 0.99},{close},{volume}" for d in DATES]


def _folder(tmp_path, files):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name, text in files.items():
        (src / name).write_text(text)
    return src


def _ingest_error(tmp_path, files):
    src = _folder(tmp_path, files)
    with pytest.raises(BundleDataError) as info:
        ingest("factorarb-csv", tmp_path / "zipline", FACTORARB_CSV_DIR=src)
    return str(info.value)


def _with_cell(line_index, column, value, close=100.0):
    lines = _csv_lines(close)
    cells = lines[line_index].split(",")
    cells[HEADER.split(",").index(column)] = value
    lines[line_index] = ",".join(cells)
    return "\n".join([HEADER, *lines]) + "\n"


BAD_CELLS = {
    # case: (column, cell text as written in the CSV, expected parts of the message)
    "volume thousands": ("volume", '"15,442,900"', ["volume '15,442,900'", "thousands separators",
                                                    "(15442900)"]),
    "close thousands": ("close", '"1,234.5"', ["close '1,234.5'", "thousands separators"]),
    "decimal comma": ("close", '"101,5"', ["close '101,5'", "decimal comma"]),
    "percent": ("open", "1.5%", ["open '1.5%'", "percent"]),
    "currency": ("high", "$101.0", ["high '$101.0'", "currency"]),
    "units": ("volume", "1.2M", ["volume '1.2M'", "suffixes"]),
    "infinite": ("low", "inf", ["low inf is not a plain number", "infinite"]),
    "words": ("close", "n.a.", ["close 'n.a.'", "plain decimal number"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CELLS))
def test_a_number_that_is_not_plain_is_named(tmp_path, case):
    column, text, parts = BAD_CELLS[case]
    message = _ingest_error(tmp_path, {"AAA.csv": _with_cell(3, column, text)})
    assert "AAA.csv, line 5, symbol AAA, date 2021-03-04" in message, message
    for part in parts:
        assert part in message, message


BAD_DATES = {
    "integer date": ("20210304", ["unparsable date '20210304'", "write 2021-03-04", "1970"]),
    "day first": ("04/03/2021", ["unparsable date '04/03/2021'", "day-first"]),
    "month name": ("4 Mar 2021", ["unparsable date '4 Mar 2021'", "month names"]),
    "not a day": ("2021-02-30", ["unparsable date '2021-02-30'"]),
    "time with a zone": ("2021-03-04T15:30:00+09:00", ["time of day with a time zone"]),
    "empty": ("", ["date is missing"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DATES))
def test_a_date_that_is_not_plain_is_named(tmp_path, case):
    text, parts = BAD_DATES[case]
    message = _ingest_error(tmp_path, {"AAA.csv": _with_cell(3, "date", text)})
    assert "AAA.csv, line 5, symbol AAA" in message, message
    for part in parts:
        assert part in message, message


def test_integer_dates_in_a_parquet_file_are_refused(tmp_path):
    frame = pd.read_csv(pd.io.common.StringIO("\n".join([HEADER, *_csv_lines()])))
    frame["date"] = DATES.strftime("%Y%m%d").astype(int)
    src = tmp_path / "src"
    src.mkdir()
    frame.to_parquet(src / "AAA.parquet")
    with pytest.raises(BundleDataError, match=r"AAA.parquet, line 2, symbol AAA: unparsable "
                                              r"date 20210301 \(a number\).*write 2021-03-01"):
        load_directory(src)


def test_zoned_midnights_keep_their_date_across_offsets(tmp_path):
    """+09:00 midnights and New York midnights across the DST change
    (-05:00 then -04:00) are the dates written, never shifted."""
    dates = pd.bdate_range("2021-03-08", "2021-03-19")  # DST starts 2021-03-14
    lines = [HEADER]
    for i, d in enumerate(dates):
        offset = "-05:00" if d < pd.Timestamp("2021-03-14") else "-04:00"
        lines.append(f"{d:%Y-%m-%d}T00:00:00{offset},{10 + i},{10 + i},{10 + i},{10 + i},5")
    tokyo = [HEADER] + [f"{d:%Y-%m-%d} 00:00:00+09:00,{20 + i},{20 + i},{20 + i},{20 + i},5"
                        for i, d in enumerate(dates)]
    utc = [HEADER] + [f"{d:%Y-%m-%d}T00:00Z,{30 + i},{30 + i},{30 + i},{30 + i},5"
                      for i, d in enumerate(dates)]
    src = _folder(tmp_path, {"NY.csv": "\n".join(lines) + "\n",
                             "TYO.csv": "\n".join(tokyo) + "\n",
                             "UTC.csv": "\n".join(utc) + "\n"})
    root = tmp_path / "zipline"
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=src)
    data = bundles.load("factorarb-csv", environ=zipline_environ(root))
    try:
        reader = data.equity_daily_bar_reader
        for symbol, base in (("NY", 10), ("TYO", 20), ("UTC", 30)):
            asset = data.asset_finder.lookup_symbol(symbol, as_of_date=None)
            assert asset.start_date == dates[0] and asset.end_date == dates[-1]
            for i, d in enumerate(dates):
                assert reader.get_value(asset.sid, d, "close") == base + i, (symbol, d)
    finally:
        data.close()


def test_plain_timestamps_and_slashes_are_dates():
    frame = pd.DataFrame({
        "date": ["2021-03-04", "2021/03/05", "2021-03-08 16:00:00", "2021-03-09T00:00",
                 " 2021-03-10 "],
        "_file": "f.csv", "_row": range(2, 7), "symbol": "A"})
    parsed = parse_dates(frame)
    assert list(parsed) == list(pd.to_datetime(
        ["2021-03-04", "2021-03-05", "2021-03-08", "2021-03-09", "2021-03-10"]))


def test_price_below_storage_precision_is_refused(tmp_path):
    message = _ingest_error(tmp_path, {"PENNY.csv": _with_cell(2, "close", "0.000585")})
    assert "PENNY.csv, line 4, symbol PENNY, date 2021-03-03" in message
    assert "close 0.000585 is below zipline's price precision" in message
    assert "per 1000 shares" in message


def test_price_that_loses_precision_is_refused(tmp_path):
    message = _ingest_error(tmp_path, {"PENNY.csv": "\n".join(
        [HEADER] + [f"{d:%Y-%m-%d},0.0456,0.0456,0.0456,0.0456,10" for d in DATES]) + "\n"})
    assert "PENNY.csv, line 2" in message
    assert "would be stored as 0.046" in message and "per 1000 shares" in message


def test_fractional_volume_is_rounded_and_reported(tmp_path):
    lines = _csv_lines()
    cells = lines[2].split(",")
    cells[5] = "1234.7"
    lines[2] = ",".join(cells)
    cells = lines[3].split(",")
    cells[5] = "99.2"
    lines[3] = ",".join(cells)
    src = _folder(tmp_path, {"AAA.csv": "\n".join([HEADER, *lines]) + "\n"})
    root = tmp_path / "zipline"
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=src)
    data = bundles.load("factorarb-csv", environ=zipline_environ(root))
    try:
        sid = data.asset_finder.lookup_symbol("AAA", as_of_date=None).sid
        reader = data.equity_daily_bar_reader
        assert reader.get_value(sid, DATES[2], "volume") == 1235  # not truncated to 1234
        assert reader.get_value(sid, DATES[3], "volume") == 99
    finally:
        data.close()
    (stamp,) = [p for p in (root / "data" / "factorarb-csv").iterdir() if not p.name.startswith(".")]
    summary = json.loads((stamp / SUMMARY_FILE).read_text())
    assert any("volume fractional on 2 row(s), rounded" in w and "AAA 2021-03-03" in w
               for w in summary["warnings"])


def test_na_and_null_are_tickers(tmp_path):
    long = ["date,symbol,open,high,low,close,volume"]
    for symbol, price in (("NA", 10.0), ("NULL", 20.0), ("N/A", 30.0), ("NAN", 40.0)):
        long += [f"{d:%Y-%m-%d},{symbol},{price},{price},{price},{price},100" for d in DATES]
    meta = "symbol,name,sector,asset_type\nNA,National Australia,Financials,stock\n" \
           "NULL,Null Inc,,etf\nN/A,Slash,Energy,stock\nNAN,Nan Corp,,stock\n"
    src = _folder(tmp_path, {"prices.csv": "\n".join(long) + "\n", "metadata.csv": meta})
    root = tmp_path / "zipline"
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=src)
    data = bundles.load("factorarb-csv", environ=zipline_environ(root))
    try:
        finder = data.asset_finder
        for symbol, price in (("NA", 10.0), ("NULL", 20.0), ("N/A", 30.0), ("NAN", 40.0)):
            asset = finder.lookup_symbol(symbol, as_of_date=None)
            assert data.equity_daily_bar_reader.get_value(asset.sid, DATES[1], "close") == price
        assert finder.lookup_symbol("NA", as_of_date=None).asset_name == "National Australia"
    finally:
        data.close()


def test_empty_asset_type_names_the_row(tmp_path):
    meta = "symbol,name,sector,asset_type\nAAA,Alpha,Energy,stock\nBBB,Beta,Energy,\n"
    message = _ingest_error(tmp_path, {"AAA.csv": "\n".join([HEADER, *_csv_lines()]) + "\n",
                                       "BBB.csv": "\n".join([HEADER, *_csv_lines()]) + "\n",
                                       "metadata.csv": meta})
    assert "metadata.csv, line 3, symbol BBB: asset_type is empty" in message
    assert "nan" not in message


def test_metadata_without_asset_type_means_stocks(tmp_path):
    meta = "symbol,name,sector\nAAA,Alpha,Energy\nBBB,Beta,Utilities\n"
    path = tmp_path / "metadata.csv"
    path.write_text(meta)
    frame = read_metadata_file(path)
    assert list(frame["asset_type"]) == ["stock", "stock"]
    assert frame.attrs["notes"] == ["metadata.csv has no asset_type column: every symbol is a stock"]


def _frame(values):
    return pd.DataFrame({"x": values, "_file": "f.csv", "_row": np.arange(len(values)) + 2,
                         "symbol": "S"})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1,
                max_size=20))
def test_plain_numbers_round_trip(values):
    text = [repr(v) for v in values] + ["", "NA", "null"]
    parsed = parse_numbers(_frame(text), "x")
    assert parsed[:len(values)].tolist() == values
    assert np.isnan(parsed[len(values):]).all()


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1000, max_value=10**12),
       st.sampled_from(["{:,}", "{:,}.5", "{}%", "${}", "{} USD", "{}k", "{:_}"]))
def test_decorated_numbers_are_refused(value, fmt):
    text = fmt.format(value)
    with pytest.raises(BundleDataError, match=r"file f.csv, line 3, symbol S: x .* is not a "
                                              r"plain number"):
        parse_numbers(_frame(["1.0", text]), "x")


def test_parquet_dates_and_codes_keep_their_meaning(tmp_path):
    """Tokyo-midnight timestamps, ``datetime.date`` values and float sector
    codes (45.0 beside missing cells) read from Parquet files."""
    src = tmp_path / "src"
    src.mkdir()
    base = pd.DataFrame({"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0,
                         "volume": 5}, index=range(len(DATES)))
    zoned = base.assign(date=DATES.tz_localize("Asia/Tokyo"))
    zoned.to_parquet(src / "TYO.parquet")
    plain = base.assign(date=[d.date() for d in DATES])
    plain.to_parquet(src / "DAY.parquet")
    pd.DataFrame({"symbol": ["TYO", "DAY"], "name": ["T", "D"], "sector": [45.0, np.nan],
                  "asset_type": ["stock", "etf"]}).to_parquet(src / "metadata.parquet")
    data = load_directory(src)
    for symbol in ("TYO", "DAY"):
        dates = data.prices.loc[data.prices["symbol"] == symbol, "date"]
        assert list(dates) == list(DATES), symbol
    assert list(data.metadata["sector"]) == ["45", ""]

    late = base.assign(date=(DATES + pd.Timedelta(hours=15)).tz_localize("Asia/Tokyo"))
    late.to_parquet(src / "TYO.parquet")
    with pytest.raises(BundleDataError, match="TYO.parquet, line 2, symbol TYO: date .* has a "
                                              "time of day with a time zone"):
        load_directory(src)
