"""Adjustment sanity: impossible splits, dividends and adj_close moves are
errors naming the file, line, symbol and date, or, with the quarantine
switch, left out and listed in the ingest summary; never applied silently.

Every case is a real ``factorarb-csv`` ingestion read back with zipline.
"""

import json

import numpy as np
import pandas as pd
import pytest
from zipline.data import bundles

from conftest import ingest, zipline_environ
from zipline_factorarb.data.errors import BundleDataError
from zipline_factorarb.data.register import register_csv_bundle
from zipline_factorarb.data.validation import split_problem
from zipline_factorarb.data.writer import SUMMARY_FILE

DATES = pd.bdate_range("2021-03-01", "2021-03-19")  # fifteen XNYS sessions


def _bars(close=100.0):
    c = np.round(close * (1 + 0.01 * np.sin(np.arange(len(DATES)))), 2)
    return pd.DataFrame({"date": DATES.strftime("%Y-%m-%d"), "open": c, "high": c, "low": c,
                         "close": c, "volume": 1000})


def _write(tmp_path, frames):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(src / name, index=False)
    return src


def _ingested(root, symbol):
    """(splits, dividends) of ``symbol`` as zipline stored them: {date: ratio}."""
    data = bundles.load("factorarb-csv", environ=zipline_environ(root))
    try:
        sid = data.asset_finder.lookup_symbol(symbol, as_of_date=None).sid
        adj = data.adjustment_reader
        splits = {pd.Timestamp(d): r for d, r in adj.get_adjustments_for_sid("splits", sid)}
        divs = {pd.Timestamp(d): r for d, r in adj.get_adjustments_for_sid("dividends", sid)}
        return splits, divs
    finally:
        data.close()


def _summary(root):
    (stamp,) = [p for p in (root / "data" / "factorarb-csv").iterdir()
                if not p.name.startswith(".")]
    return json.loads((stamp / SUMMARY_FILE).read_text())


def _glitched_adj_close():
    frame = _bars()
    frame["adj_close"] = frame["close"] * 0.9
    frame.loc[5, "adj_close"] = frame.loc[5, "close"] * 0.9 * 1.5e-5  # one bad cell
    return frame


def _dividend_above_close():
    frame = _bars()
    frame["dividend"] = 0.0
    frame.loc[6, "dividend"] = 120.0  # the previous close is about 99
    return frame


def _split(value):
    def make():
        frame = _bars()
        frame["split"] = 1.0
        frame.loc[7, "split"] = value
        return frame
    return make


def _last_row_glitch():
    frame = _bars()
    frame["adj_close"] = frame["close"] * 0.95
    frame.loc[len(frame) - 1, "adj_close"] = frame["close"].iloc[-1] * 1e-6
    return frame


def _derived_odd_split():
    frame = _bars()
    frame["adj_close"] = frame["close"]
    frame.loc[:8, "adj_close"] = frame.loc[:8, "close"] * 0.58  # a 1.72-for-1 "split"
    return frame


CASES = {
    # name: (frame maker, line, date, kind, expected parts)
    "glitched adj_close": (_glitched_adj_close, 7, "2021-03-08", "adj_close glitch",
                           ["moves by a factor", "and back on the next (2021-03-09)"]),
    "glitch on the last row": (_last_row_glitch, 16, "2021-03-19", "derived split",
                               ["implies a split of", "outside the plausible range"]),
    "derived odd split": (_derived_odd_split, 11, "2021-03-12", "derived split",
                          ["not near a simple ratio"]),
    "dividend above close": (_dividend_above_close, 8, "2021-03-09", "dividend",
                             ["dividend 120 is not below the previous close"]),
    "tiny split": (_split(1e-9), 9, "2021-03-10", "split", ["split 1e-09", "plausible range"]),
    "huge split": (_split(1e9), 9, "2021-03-10", "split", ["split 1e+09", "plausible range"]),
    "odd split": (_split(1.37), 9, "2021-03-10", "split", ["split 1.37", "simple ratio"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_implausible_adjustment_is_an_error_naming_the_place(tmp_path, case):
    make, line, date, _, parts = CASES[case]
    src = _write(tmp_path, {"AAA.csv": make()})
    with pytest.raises(BundleDataError) as info:
        ingest("factorarb-csv", tmp_path / "zipline", FACTORARB_CSV_DIR=src)
    message = str(info.value)
    assert f"AAA.csv, line {line}, symbol AAA, date {date}" in message, message
    for part in parts:
        assert part in message, message
    assert "set FACTORARB_CSV_ADJUSTMENTS=quarantine" in message


@pytest.mark.parametrize("case", sorted(CASES))
def test_quarantine_leaves_it_out_and_lists_it(tmp_path, case):
    make, line, date, kind, _ = CASES[case]
    src = _write(tmp_path, {"AAA.csv": make(), "BBB.csv": _bars(50.0)})
    root = tmp_path / "zipline"
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=src, FACTORARB_CSV_ADJUSTMENTS="quarantine")
    splits, divs = _ingested(root, "AAA")
    assert splits == {}
    if case == "dividend above close":
        assert divs == {}
    else:
        # the glitch's own days give no dividend either
        assert all(pd.Timestamp(date) != d for d in divs)
    quarantined = _summary(root)["quarantined"]
    assert [(q["symbol"], q["date"], q["kind"], q["line"]) for q in quarantined] == [
        ("AAA", date, kind, line)]
    assert quarantined[0]["file"].endswith("AAA.csv")


def test_quarantine_as_a_registration_argument_and_the_hint_names_it(tmp_path):
    src = _write(tmp_path, {"AAA.csv": _split(1e9)()})
    root = tmp_path / "zipline"
    register_csv_bundle("factorarb-adj-strict", src, adjustments="raise")
    register_csv_bundle("factorarb-adj-lenient", src, adjustments="quarantine")
    from zipline.data.bundles import ingest as zipline_ingest

    with pytest.raises(BundleDataError, match="register the bundle with adjustments='quarantine'"):
        zipline_ingest("factorarb-adj-strict", environ=zipline_environ(root))
    zipline_ingest("factorarb-adj-lenient", environ=zipline_environ(root))
    with pytest.raises(ValueError, match="adjustments must be 'raise' or 'quarantine'"):
        register_csv_bundle("factorarb-adj-bad", src, adjustments="ignore")


def test_ohlc_hint_names_the_argument_for_bundles_registered_in_code(tmp_path):
    frame = _bars()
    frame.loc[3, "high"] = frame.loc[3, "low"] - 1
    src = _write(tmp_path, {"AAA.csv": frame})
    register_csv_bundle("factorarb-ohlc-strict", src, ohlc="raise")
    from zipline.data.bundles import ingest as zipline_ingest

    with pytest.raises(BundleDataError) as info:
        zipline_ingest("factorarb-ohlc-strict", environ=zipline_environ(tmp_path / "zipline"))
    assert "register the bundle with ohlc='repair'" in str(info.value)
    assert "FACTORARB_CSV_OHLC" not in str(info.value)


def test_reverse_and_forward_splits_from_adj_close_are_applied(tmp_path):
    """A 1-for-10 reverse split (close x10, adj_close continuous) is the
    zipline ratio 10; a 3-for-2 split is 2/3; ordinary dividends stay."""
    rev = _bars(10.0)
    rev.loc[8:, ["open", "high", "low", "close"]] *= 10
    rev["adj_close"] = rev["close"]
    rev.loc[:7, "adj_close"] = rev.loc[:7, "close"] * 10
    fwd = _bars(90.0)
    after = np.round(fwd.loc[8:, "close"] / 1.5, 2)
    for col in ("open", "high", "low", "close"):
        fwd.loc[8:, col] = after
    fwd["adj_close"] = fwd["close"]
    fwd.loc[:7, "adj_close"] = np.round(fwd.loc[:7, "close"] / 1.5, 6)
    fwd.loc[:3, "adj_close"] *= 0.99  # and a 1% dividend on the fifth session
    src = _write(tmp_path, {"REV.csv": rev, "FWD.csv": fwd})
    root = tmp_path / "zipline"
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=src)
    splits, divs = _ingested(root, "REV")
    assert splits == {pd.Timestamp(DATES[8]): pytest.approx(10.0, rel=1e-6)} and divs == {}
    splits, divs = _ingested(root, "FWD")
    assert splits == {pd.Timestamp(DATES[8]): pytest.approx(2 / 3, rel=1e-5)}
    assert divs == {pd.Timestamp(DATES[4]): pytest.approx(0.99, abs=1e-6)}


def test_a_split_written_as_a_ratio_is_named(tmp_path):
    frame = _bars().astype({"volume": object})
    frame["split"] = ""
    frame.loc[7, "split"] = "2:1"
    src = _write(tmp_path, {"AAA.csv": frame})
    with pytest.raises(BundleDataError) as info:
        ingest("factorarb-csv", tmp_path / "zipline", FACTORARB_CSV_DIR=src)
    message = str(info.value)
    assert "AAA.csv, line 9, symbol AAA, date 2021-03-10: split '2:1'" in message
    assert "2 for a 2-for-1 split" in message


@pytest.mark.parametrize("shares, ok", [
    (2.0, True), (0.5, True), (1.5, True), (3.0, True), (0.1, True), (1.05, True),
    (4 / 3, True), (7.0, True), (1 / 15, True), (50.0, True), (0.02, True),
    (1e-9, False), (1e9, False), (51.0, False), (0.019, False), (1.37, False), (2.718, False),
])
def test_split_problem_against_simple_ratios(shares, ok):
    assert (split_problem(shares) is None) == ok
