"""Point-in-time fundamentals: validation, storage with the ingestion, Pipeline
reads without look-ahead, and a `zipline run` backtest on market-cap weights.

The fundamentals file is built at test time from the real prices in
../shared/data: ``market_cap`` is a stand-in, the close times a fixed share
count per symbol (no real shares outstanding are in the data), and
``book_to_market`` a made-up month-end value (some month ends fall on a
weekend, which exercises the "first session after D" rule).
"""

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import ingest, zipline_environ
from hypothesis import given, settings
from hypothesis import strategies as st

from zipline_factorarb.data.errors import BundleDataError
from zipline_factorarb.data.fundamentals import (
    FUNDAMENTALS_FILE,
    read_fundamentals_files,
    validate_fundamentals,
)
from zipline_factorarb.pipeline.fundamentals import FundamentalsTable

STOCKS = ["AAPL", "MSFT", "XOM", "CVX", "JPM", "BAC", "JNJ", "PFE", "KO", "PG", "GE", "HD",
          "AMZN", "WMT", "T", "VZ", "INTC", "CSCO", "MRK", "DIS"]
START, END = "2014-01-02", "2015-12-31"
LOOKAHEAD_DAY = "2015-03-16"  # a Monday


def shares_of(symbols):
    """A fixed, made-up share count per symbol (the market-cap stand-in)."""
    return {s: 1e8 * (i + 1) for i, s in enumerate(sorted(symbols))}


def write_folder(shared, dest, corrupt_from=None, in_price_files=False):
    """Price folder (20 stocks) with fundamentals/ built from the real closes."""
    dest.mkdir(parents=True)
    px = pd.read_csv(shared / "sp500_stocks_daily_2013_2018.csv.gz")
    px = px[px["symbol"].isin(STOCKS) & px["date"].between(START, END)].reset_index(drop=True)
    shares = shares_of(STOCKS)
    caps = px[["date", "symbol"]].assign(market_cap=px["close"] * px["symbol"].map(shares))
    month_ends = pd.date_range(START, END, freq="ME")
    rank = {s: i for i, s in enumerate(sorted(STOCKS))}
    btm = pd.DataFrame([dict(date=d.strftime("%Y-%m-%d"), symbol=s,
                             book_to_market=round(0.2 + 0.05 * rank[s] + 0.01 * k, 6))
                        for k, d in enumerate(month_ends) for s in STOCKS])
    if corrupt_from is not None:
        caps.loc[caps["date"] >= corrupt_from, "market_cap"] *= 1000.0
        btm.loc[btm["date"] >= corrupt_from, "book_to_market"] = -99.0
    cols = ["date", "symbol", "open", "high", "low", "close", "volume"]
    if in_price_files:
        px[cols].assign(market_cap=caps["market_cap"]).to_csv(dest / "prices.csv", index=False)
    else:
        px[cols].to_csv(dest / "prices.csv", index=False)
        (dest / "fundamentals").mkdir()
        caps.to_csv(dest / "fundamentals" / "market_cap.csv", index=False)
    (dest / "fundamentals").mkdir(exist_ok=True)
    btm.to_csv(dest / "fundamentals" / "book_to_market.csv.gz", index=False)
    gics = pd.read_csv(shared / "sp500_stocks_gics_sectors_2018.csv").set_index("symbol")
    pd.DataFrame({"symbol": STOCKS, "name": STOCKS,
                  "sector": [gics.loc[s, "gics_sector"] for s in STOCKS],
                  "asset_type": "stock"}).to_csv(dest / "metadata.csv", index=False)
    return dest, caps, btm


@pytest.fixture(scope="module")
def fund(shared_data_dir, tmp_path_factory):
    """One root with three ingested bundles over the same prices: ``fund`` (the
    fundamentals/ folder), ``fund-corrupt`` (values dated on or after
    LOOKAHEAD_DAY corrupted) and ``fund-cols`` (market_cap as a price-file column)."""
    from zipline_factorarb.data.register import register_csv_bundle

    base = tmp_path_factory.mktemp("fund")
    root = base / "zipline"
    root.mkdir()
    good, caps, btm = write_folder(shared_data_dir, base / "good")
    bad, _, _ = write_folder(shared_data_dir, base / "bad", corrupt_from=LOOKAHEAD_DAY)
    cols, _, _ = write_folder(shared_data_dir, base / "cols", in_price_files=True)
    register_csv_bundle("fund", good)
    register_csv_bundle("fund-corrupt", bad)
    register_csv_bundle("fund-cols", cols, fundamental_columns=["market_cap"])
    for name in ("fund", "fund-corrupt", "fund-cols"):
        ingest(name, root)
    (root / "extension.py").write_text(
        "from zipline_factorarb import register_csv_bundle\n"
        f"register_csv_bundle('fund', {str(good)!r})\n")
    return dict(root=root, env=zipline_environ(root), good=good, caps=caps, btm=btm, base=base)


def latest_ingestion(root, bundle):
    folders = sorted(p for p in (root / "data" / bundle).iterdir()
                     if p.is_dir() and not p.name.startswith("."))
    return folders[-1]


def pipeline(fund, bundle, start, end, max_age=None):
    from zipline.pipeline import Pipeline

    from zipline_factorarb.pipeline import Fundamentals
    from zipline_factorarb.pipeline.research import run_pipeline

    f = Fundamentals(max_age=max_age)
    out = run_pipeline(Pipeline({"market_cap": f.market_cap, "book_to_market": f.book_to_market}),
                       start, end, bundle=bundle, environ=fund["env"])
    out.index = out.index.set_levels([a.symbol for a in out.index.levels[1]], level=1)
    return out


def reference(source, column, sessions, symbols, max_age=None):
    """Independent point-in-time values: the latest source row dated strictly
    before each session (pandas' merge_asof), older than max_age days -> NaN."""
    src = source.dropna(subset=[column]).assign(date=lambda d: pd.to_datetime(d["date"]))
    src = src.sort_values("date")[["date", "symbol", column]].rename(columns={"date": "dated"})
    grid = pd.MultiIndex.from_product([sessions, symbols], names=["session", "symbol"])
    left = grid.to_frame(index=False).sort_values("session")
    merged = pd.merge_asof(left, src, left_on="session", right_on="dated", by="symbol",
                           allow_exact_matches=False)
    if max_age is not None:
        too_old = (merged["session"] - merged["dated"]).dt.days > max_age
        merged.loc[too_old, column] = np.nan
    return merged.set_index(["session", "symbol"])[column].sort_index()


# ---------------------------------------------------------------------------
# storage
# ---------------------------------------------------------------------------
def test_round_trip_stored_file_equals_the_source(fund):
    from zipline.data.bundles import load

    folder = latest_ingestion(fund["root"], "fund")
    stored = pd.read_parquet(folder / FUNDAMENTALS_FILE)
    data = load("fund", environ=fund["env"])
    try:
        symbol = {sid: data.asset_finder.retrieve_asset(sid).symbol for sid in stored["sid"].unique()}
    finally:
        data.close()
    stored["symbol"] = stored["sid"].map(symbol)
    files = (("market_cap", "market_cap.csv"), ("book_to_market", "book_to_market.csv.gz"))
    for column, name in files:
        # the source file as written, read back with Python's exact float parsing
        source = pd.read_csv(fund["good"] / "fundamentals" / name, float_precision="round_trip")
        got = stored.dropna(subset=[column]).set_index(["symbol", "date"])[column].sort_index()
        want = source.assign(date=pd.to_datetime(source["date"])).set_index(
            ["symbol", "date"])[column].sort_index()
        # equal to the last bit but for pandas' decimal parser (within 1 ulp)
        pd.testing.assert_series_equal(got, want, check_names=False, rtol=2.3e-16, atol=0)
    summary = (folder / "factorarb_ingest.json").read_text()
    assert '"book_to_market"' in summary and '"market_cap"' in summary


def test_price_file_columns_store_the_same_values(fund):
    a = pd.read_parquet(latest_ingestion(fund["root"], "fund") / FUNDAMENTALS_FILE)
    b = pd.read_parquet(latest_ingestion(fund["root"], "fund-cols") / FUNDAMENTALS_FILE)
    pd.testing.assert_frame_equal(a[["sid", "date", "market_cap", "book_to_market"]],
                                  b[["sid", "date", "market_cap", "book_to_market"]])


def test_a_new_ingestion_never_changes_the_previous_one(fund, shared_data_dir, tmp_path):
    from zipline_factorarb.data.register import register_csv_bundle

    folder, _, _ = write_folder(shared_data_dir, tmp_path / "src")
    register_csv_bundle("fund-again", folder)
    ingest("fund-again", fund["root"])
    first = latest_ingestion(fund["root"], "fund-again")
    before = (first / FUNDAMENTALS_FILE).read_bytes()
    caps = pd.read_csv(folder / "fundamentals" / "market_cap.csv")
    caps["market_cap"] *= 2.0
    caps.to_csv(folder / "fundamentals" / "market_cap.csv", index=False)
    import time

    time.sleep(1.1)  # ingestion folders are named by the second
    ingest("fund-again", fund["root"])
    second = latest_ingestion(fund["root"], "fund-again")
    assert second != first
    assert (first / FUNDAMENTALS_FILE).read_bytes() == before
    a, b = (pd.read_parquet(p / FUNDAMENTALS_FILE) for p in (first, second))
    np.testing.assert_allclose(b["market_cap"].dropna(), 2.0 * a["market_cap"].dropna())


# ---------------------------------------------------------------------------
# pipeline: point in time
# ---------------------------------------------------------------------------
def test_pipeline_values_are_the_latest_strictly_before_the_session(fund):
    out = pipeline(fund, "fund", "2015-02-02", "2015-07-31")
    sessions = out.index.levels[0]
    for column, source in (("market_cap", fund["caps"]), ("book_to_market", fund["btm"])):
        want = reference(source, column, sessions, sorted(STOCKS))
        got = out[column].sort_index()
        got.index.names = want.index.names
        pd.testing.assert_series_equal(got, want, check_names=False, rtol=1e-12)
    # a month-end on a weekend (2015-05-31, Sunday) is first seen on Monday 2015-06-01
    first_june = out.loc[pd.Timestamp("2015-06-01"), "book_to_market"]
    last_may = out.loc[pd.Timestamp("2015-05-29"), "book_to_market"]
    assert (first_june - last_may).round(6).eq(0.01).all()


def test_max_age_limits_the_carry_forward(fund):
    out = pipeline(fund, "fund", "2015-04-01", "2015-06-30", max_age=10)
    sessions = out.index.levels[0]
    want = reference(fund["btm"], "book_to_market", sessions, sorted(STOCKS), max_age=10)
    got = out["book_to_market"].sort_index()
    got.index.names = want.index.names
    pd.testing.assert_series_equal(got, want, check_names=False)
    assert got.isna().any() and got.notna().any()  # the limit bites on some sessions only
    assert out["market_cap"].notna().all()  # daily values are never 10 days old


def test_no_look_ahead_corrupting_values_dated_on_or_after_d(fund):
    good = pipeline(fund, "fund", "2015-03-02", "2015-03-17")
    bad = pipeline(fund, "fund-corrupt", "2015-03-02", "2015-03-17")
    day = pd.Timestamp(LOOKAHEAD_DAY)
    upto = good.index.get_level_values(0) <= day
    pd.testing.assert_frame_equal(good[upto], bad[upto])
    # the check can fail: the value dated D is seen on the next session
    after = good.index.get_level_values(0) == pd.Timestamp("2015-03-17")
    assert not np.allclose(good[after]["market_cap"], bad[after]["market_cap"])


def test_columns_are_discovered_and_unknown_names_listed(fund, monkeypatch):
    from zipline.data.bundles import bundles
    from zipline.pipeline import Pipeline

    from zipline_factorarb.pipeline import Fundamentals
    from zipline_factorarb.pipeline.research import run_pipeline

    assert "fund" in bundles
    monkeypatch.setenv("ZIPLINE_ROOT", str(fund["root"]))  # where bundle="fund" is read
    assert set(Fundamentals.columns(bundle="fund")) == {"market_cap", "book_to_market"}
    assert Fundamentals.has("market_cap", bundle="fund")
    with pytest.raises(KeyError, match=r"no fundamental column 'earnings'.*book_to_market"):
        run_pipeline(Pipeline({"x": Fundamentals.earnings}), "2015-03-02", "2015-03-03",
                     bundle="fund", environ=fund["env"])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 60),
                            st.one_of(st.none(), st.floats(-1e6, 1e6))), max_size=40),
    day=st.integers(-2, 70), max_age=st.one_of(st.none(), st.integers(0, 20)),
)
def test_as_of_lookup_matches_a_plain_loop(tmp_path_factory, rows, day, max_age):
    """The vectorised lookup against a loop over the rows (generated data)."""
    base = pd.Timestamp("2020-01-01")
    frame = pd.DataFrame(rows, columns=["sid", "offset", "x"]).drop_duplicates(["sid", "offset"])
    frame = pd.DataFrame({"sid": frame["sid"].astype(np.int64),
                          "date": base + pd.to_timedelta(frame["offset"], unit="D"),
                          "x": frame["x"].astype(float)})
    path = tmp_path_factory.mktemp("asof") / FUNDAMENTALS_FILE
    frame.sort_values(["sid", "date"]).to_parquet(path, index=False)
    today = base + pd.Timedelta(days=day)
    sids = np.arange(6)
    got = FundamentalsTable(path).as_of("x", today, sids, max_age)
    for i, sid in enumerate(sids):
        best = None
        for r in frame.itertuples():
            if r.sid == sid and r.date < today and not np.isnan(r.x):
                if best is None or r.date > best.date:
                    best = r
        if best is None or (max_age is not None and (today - best.date).days > max_age):
            assert np.isnan(got[i])
        else:
            assert got[i] == best.x


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def _prices(folder, symbols=("AAA", "BBB")):
    dates = pd.bdate_range("2021-03-01", "2021-03-12")
    rows = [dict(date=d.date(), symbol=s, open=10, high=11, low=9, close=10.5, volume=1000)
            for d in dates for s in symbols]
    pd.DataFrame(rows).to_csv(folder / "prices.csv", index=False)


def _fundamentals(folder, text, name="f.csv"):
    (folder / "fundamentals").mkdir(exist_ok=True)
    (folder / "fundamentals" / name).write_text(textwrap.dedent(text))


@pytest.mark.parametrize("text, message", [
    ("date,symbol,market_cap\n2021-03-01,AAA,1e9\n2021-03-02,AAA,12 bn\n",
     r"f\.csv, line 3, symbol AAA, date 2021-03-02: market_cap '12 bn' is not a plain number"),
    ("date,symbol,market_cap\n2021-03-01,AAA,1e9\n2021-03-01,AAA,2e9\n",
     r"line 2, symbol AAA, date 2021-03-01: column 'market_cap': \(date, symbol\) given twice, "
     r"also at .*f\.csv line 3"),
    ("date,symbol,market_cap\n2021-03-01,AAA,1e9\n2021-03-01,ZZZ,2e9\n",
     r"line 3, symbol ZZZ, date 2021-03-01: symbol has no prices in the bundle"),
    ("date,symbol,market_cap\n2021-03-01,AAA,inf\n", r"market_cap 'inf' is not a plain number"),
    ("date,symbol,market cap,close\n2021-03-01,AAA,1,2\n", r"fundamental column 'close' cannot"),
    ("date,symbol\n2021-03-01,AAA\n", r"no value columns"),
    ("date,symbol,x\n03/01/2021,AAA,1\n", r"line 2, symbol AAA: unparsable date '03/01/2021'"),
])
def test_bad_fundamentals_are_refused_by_ingest_naming_the_place(tmp_path, text, message):
    from zipline_factorarb.data.register import register_csv_bundle

    folder = tmp_path / "src"
    folder.mkdir()
    _prices(folder)
    _fundamentals(folder, text)
    name = f"fund-bad-{abs(hash(text)) % 10**8}"
    register_csv_bundle(name, folder)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(BundleDataError, match=message):
        ingest(name, root)
    # nothing half-written: no ingestion of the bundle
    bundle_dir = root / "data" / name
    assert not bundle_dir.exists() or not [p for p in bundle_dir.iterdir()
                                           if not p.name.startswith(".")]


def test_missing_values_are_allowed_and_merged_across_files(tmp_path):
    _fundamentals(tmp_path, "date,symbol,a\n2021-03-01,AAA,1\n2021-03-02,AAA,\n", "one.csv")
    _fundamentals(tmp_path, "date,symbol,b\n2021-03-01,AAA,5\n2021-03-02,BBB,NA\n", "two.csv")
    table = validate_fundamentals(read_fundamentals_files(tmp_path / "fundamentals"),
                                  ["AAA", "BBB"])
    assert table.to_dict("records") == [
        dict(symbol="AAA", date=pd.Timestamp("2021-03-01"), a=1.0, b=5.0)]


def test_cap_weighted_backtest_under_zipline_run(fund, tmp_path):
    """`zipline run` reads Fundamentals.market_cap and trades to cap weights."""
    algo = tmp_path / "caps.py"
    algo.write_text(textwrap.dedent('''
        from zipline.api import (attach_pipeline, order_target_percent, pipeline_output,
                                 record, symbol)
        from zipline.pipeline import Pipeline
        from zipline_factorarb.pipeline import Fundamentals, IsStock
        from zipline_factorarb.pipeline.fundamentals import (market_cap_columns,
                                                             size_benchmark_weights)

        def initialize(context):
            attach_pipeline(Pipeline(market_cap_columns(), screen=IsStock()), "caps")
            context.traded = False

        def before_trading_start(context, data):
            out = pipeline_output("caps")
            context.weights = size_benchmark_weights(out.index, out)

        def handle_data(context, data):
            w = context.weights
            if not context.traded:
                for asset, weight in w.items():
                    order_target_percent(asset, weight)
                context.traded = True
            record(cap_weighted=int(w.attrs["source"] == "market_cap"),
                   w_aapl=float(w[symbol("AAPL")]), w_xom=float(w[symbol("XOM")]))
    '''))
    out = tmp_path / "perf.pickle"
    result = subprocess.run(
        [sys.executable, "-m", "zipline", "run", "-f", str(algo), "-b", "fund", "-s", "2015-03-02",
         "-e", "2015-03-31", "--no-benchmark", "-o", str(out)],
        env=fund["env"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    perf = pd.read_pickle(out)
    assert (perf["cap_weighted"] == 1).all()
    # the weights are cap / sum(cap) of the source's caps at the previous session
    caps = fund["caps"].assign(date=lambda d: pd.to_datetime(d["date"])).pivot(
        index="date", columns="symbol", values="market_cap")
    prev = caps.shift(1).reindex(pd.DatetimeIndex(perf.index.date))
    np.testing.assert_allclose(perf["w_aapl"], (prev["AAPL"] / prev.sum(axis=1)).to_numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(perf["w_xom"], (prev["XOM"] / prev.sum(axis=1)).to_numpy(),
                               rtol=1e-12)
    # the book holds every name, in proportion to the caps it was ordered at (within
    # the price moves of one session and zipline's default slippage and rounding)
    held = perf["positions"].iloc[2]
    values = pd.Series({p["sid"].symbol: p["amount"] * p["last_sale_price"] for p in held})
    assert len(values) == len(STOCKS)
    target = prev.iloc[0]
    target = target / target.sum()
    np.testing.assert_allclose((values / values.sum()).reindex(target.index), target, atol=0.01)


@pytest.mark.parametrize("algorithm", ["benchmark_relative", "tev_factor_tilt",
                                       "sector_rotation_tev"])
def test_flagship_and_tev_algorithms_use_market_caps(fund, tmp_path, algorithm):
    """On a bundle with market caps, the benchmark of each is cap-weighted."""
    from conftest import REPO_ROOT

    out = tmp_path / "perf.pickle"
    params = '{"rebalance": "month"}' if algorithm != "benchmark_relative" else \
        '{"rebalance": "month", "factor_symbols": [], "market_symbols": []}'
    result = subprocess.run(
        [sys.executable, "-m", "zipline", "run", "-f",
         str(REPO_ROOT / "algorithms" / f"{algorithm}.py"), "-b", "fund", "-s", "2015-02-02",
         "-e", "2015-03-31", "--no-benchmark", "-o", str(out)],
        env=dict(fund["env"], FACTORARB_PARAMS=params), capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    perf = pd.read_pickle(out)
    assert "benchmark_cap_weighted" in perf, list(perf.columns)
    assert (perf["benchmark_cap_weighted"].dropna() == 1).all()
    assert perf["benchmark_cap_weighted"].notna().any()


def test_size_benchmark_weights_rules():
    from zipline_factorarb.pipeline.fundamentals import MARKET_CAP_COLUMN, size_benchmark_weights

    assets = ["a", "b", "c"]
    caps = pd.Series([1e9, 3e9, 6e9], index=assets)
    dv = pd.Series([5e6, 1e6, 4e6], index=assets)
    vol = pd.Series([1e5, 2e5, 3e5], index=assets)
    out = pd.DataFrame({MARKET_CAP_COLUMN: caps})
    w = size_benchmark_weights(assets, out, dv, vol)
    assert w.attrs["source"] == "market_cap"
    np.testing.assert_allclose(w, caps / caps.sum(), rtol=1e-15)
    # no market caps in the pipeline: the proxy (dollar volume where volumes are real)
    w = size_benchmark_weights(assets, pd.DataFrame(index=assets), dv, vol)
    assert w.attrs["source"] == "dollar_volume"
    np.testing.assert_allclose(w, dv / dv.sum(), rtol=1e-15)
    # one cap missing: the whole benchmark is the proxy's, with a warning
    partial = pd.DataFrame({MARKET_CAP_COLUMN: caps.where(caps.index != "b")})
    with pytest.warns(UserWarning, match=r"market cap missing or not positive for 1 of 3 .*'b'"):
        w = size_benchmark_weights(assets, partial, dv, vol)
    assert w.attrs["source"] == "dollar_volume"
    with pytest.raises(ValueError, match=r"missing or not positive for 1 of 3"):
        size_benchmark_weights(assets, partial, dv, vol, weighting="market_cap")
    with pytest.raises(ValueError, match=r"no 'fundamentals:market_cap' column"):
        size_benchmark_weights(assets, pd.DataFrame(index=assets), dv, vol, weighting="market_cap")
    # explicit proxy weightings ignore the caps
    assert size_benchmark_weights(assets, out, dv, vol, "equal").attrs["source"] == "equal"
