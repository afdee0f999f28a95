"""``data.parsing.parse_rows``: the one row/symbol/date normalisation of the price and
fundamentals readers, checked through both readers on real files."""

import pandas as pd
import pytest

from zipline_factorarb.data.errors import BundleDataError
from zipline_factorarb.data.fundamentals import read_fundamentals_files
from zipline_factorarb.data.sources import read_price_file


def _write(path, text):
    path.write_text(text)
    return path


def test_both_readers_number_rows_and_parse_symbols_and_dates(tmp_path):
    prices = read_price_file(_write(
        tmp_path / "prices.csv",
        "date,symbol,open,high,low,close,volume\n"
        "2021-03-01, aaa ,1,1,1,1,10\n2021-03-02,bbb,2,2,2,2,20\n"))
    funds = read_fundamentals_files(_write(
        tmp_path / "funds.csv", "date,symbol,market_cap\n2021-03-01, aaa ,5\n2021-03-02,bbb,6\n"))
    for frame, name in ((prices, "prices.csv"), (funds, "funds.csv")):
        assert list(frame["_row"]) == [2, 3]  # the header is line 1
        assert set(frame["_file"]) == {str(tmp_path / name)}
        assert list(frame["symbol"]) == ["AAA", "BBB"]
        assert list(frame["date"]) == [pd.Timestamp("2021-03-01"), pd.Timestamp("2021-03-02")]


@pytest.mark.parametrize("reader, name, header", [
    (read_price_file, "prices.csv", "date,symbol,open,high,low,close,volume\n"
     "2021-03-01,AAA,1,1,1,1,10\n2021-03-02,,2,2,2,2,20\n"),
    (read_fundamentals_files, "funds.csv", "date,symbol,market_cap\n2021-03-01,AAA,5\n"
     "2021-03-02,,6\n"),
])
def test_an_empty_symbol_names_the_file_and_row_in_both_readers(tmp_path, reader, name, header):
    path = _write(tmp_path / name, header)
    with pytest.raises(BundleDataError, match="empty symbol") as info:
        reader(path)
    assert name in str(info.value) and "line 3" in str(info.value)
