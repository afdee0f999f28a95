"""Bundles on any exchange_calendars calendar: a London (XLON) bundle ingested,
read by a research pipeline and run by a real `zipline run --trading-calendar XLON`.

The folder holds real daily bars from ../shared/data (eight stocks) re-dated
onto consecutive XLON sessions: the prices are real, the dates are London's,
so that every row falls on an XLON session and the calendar's own holidays
(e.g. the May bank holiday, an NYSE session) are absent.
"""

import subprocess
import sys
import textwrap

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest
from conftest import ingest, zipline_environ

from zipline_factorarb.data.errors import BundleDataError

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

STOCKS = ["AAPL", "MSFT", "XOM", "JPM", "JNJ", "KO", "GE", "HD"]
FIRST, LAST = "2015-01-02", "2016-06-30"


def write_london_folder(shared, dest, extra_date=None):
    dest.mkdir(parents=True)
    sessions = xcals.get_calendar("XLON").sessions_in_range(FIRST, LAST)
    px = pd.read_csv(shared / "sp500_stocks_daily_2013_2018.csv.gz")
    frames = []
    for symbol in STOCKS:
        rows = px[px["symbol"] == symbol].sort_values("date").head(len(sessions)).copy()
        assert len(rows) == len(sessions)
        rows["date"] = sessions.strftime("%Y-%m-%d")
        frames.append(rows)
    prices = pd.concat(frames, ignore_index=True)
    if extra_date is not None:
        extra = prices.iloc[[0]].assign(date=extra_date)
        prices = pd.concat([prices, extra], ignore_index=True)
    prices.to_csv(dest / "prices.csv", index=False)
    gics = pd.read_csv(shared / "sp500_stocks_gics_sectors_2018.csv").set_index("symbol")
    pd.DataFrame({"symbol": STOCKS, "name": STOCKS, "exchange": "LSE",
                  "sector": [gics.loc[s, "gics_sector"] for s in STOCKS],
                  "asset_type": "stock"}).to_csv(dest / "metadata.csv", index=False)
    return dest, prices, sessions


@pytest.fixture(scope="module")
def london(shared_data_dir, tmp_path_factory):
    from zipline_factorarb.data.register import register_csv_bundle

    base = tmp_path_factory.mktemp("london")
    folder, prices, sessions = write_london_folder(shared_data_dir, base / "src")
    root = base / "zipline"
    root.mkdir()
    register_csv_bundle("uk-stocks", folder, calendar_name="XLON")
    ingest("uk-stocks", root)
    (root / "extension.py").write_text(
        "from zipline_factorarb import register_csv_bundle\n"
        f"register_csv_bundle('uk-stocks', {str(folder)!r}, calendar_name='XLON')\n")
    return dict(root=root, env=zipline_environ(root), folder=folder, prices=prices,
                sessions=sessions, base=base)


def test_country_follows_the_calendar(london):
    from zipline.data.bundles import bundles, load

    assert bundles["uk-stocks"].calendar_name == "XLON"
    data = load("uk-stocks", environ=london["env"])
    try:
        countries = {e.country_code for e in data.asset_finder.exchange_info.values()}
        assert countries == {"GB"}
        assert len(data.asset_finder.lookup_symbols(STOCKS, as_of_date=None)) == len(STOCKS)
    finally:
        data.close()


def test_research_pipeline_on_london_sessions(london):
    from zipline.pipeline import Pipeline
    from zipline.pipeline.data import EquityPricing
    from zipline.pipeline.domain import GB_EQUITIES

    from zipline_factorarb.pipeline import Sector
    from zipline_factorarb.pipeline.research import bundle_domain, run_pipeline

    out = run_pipeline(Pipeline({"close": EquityPricing.close.latest, "sector": Sector()}),
                       "2015-04-01", "2015-06-30", bundle="uk-stocks", environ=london["env"])
    days = out.index.get_level_values(0).unique()
    sessions = london["sessions"]
    expected_days = sessions[(sessions >= "2015-04-01") & (sessions <= "2015-06-30")]
    assert list(days) == list(expected_days)
    assert pd.Timestamp("2015-05-04") not in days  # May bank holiday: NYSE open, London shut
    assert (out["sector"] > 0).all()
    # the close seen on each session is the source's close of the XLON session before
    prices = london["prices"].assign(date=lambda d: pd.to_datetime(d["date"]))
    closes = prices.pivot(index="date", columns="symbol", values="close").shift(1)
    got = out["close"].unstack()
    got.columns = [a.symbol for a in got.columns]
    np.testing.assert_allclose(got.to_numpy(), closes.loc[got.index, got.columns].to_numpy(),
                               rtol=1e-3)  # zipline stores prices to 1/1000

    from zipline.data.bundles import load

    data = load("uk-stocks", environ=london["env"])
    try:
        assert bundle_domain("uk-stocks", data.asset_finder) is GB_EQUITIES
    finally:
        data.close()


def test_zipline_run_on_xlon(london, tmp_path):
    algo = tmp_path / "uk.py"
    algo.write_text(textwrap.dedent('''
        from zipline.api import attach_pipeline, order_target_percent, pipeline_output, record
        from zipline.pipeline import Pipeline
        from zipline.pipeline.data import EquityPricing
        from zipline_factorarb.pipeline import IsStock, Sector

        def initialize(context):
            attach_pipeline(Pipeline({"close": EquityPricing.close.latest, "sector": Sector()},
                                     screen=IsStock()), "uk")
            context.traded = False

        def handle_data(context, data):
            out = pipeline_output("uk")
            if not context.traded:
                for asset in out.index:
                    order_target_percent(asset, 1.0 / len(out))
                context.traded = True
            record(n_assets=len(out), n_sectors=out["sector"].nunique())
    '''))
    pickle = tmp_path / "perf.pickle"
    result = subprocess.run(
        [sys.executable, "-m", "zipline", "run", "-f", str(algo), "-b", "uk-stocks",
         "--trading-calendar", "XLON", "-s", "2016-03-01", "-e", "2016-04-29",
         "--no-benchmark", "-o", str(pickle)],
        env=london["env"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    perf = pd.read_pickle(pickle)
    days = pd.DatetimeIndex(perf.index.date)
    expected = xcals.get_calendar("XLON").sessions_in_range("2016-03-01", "2016-04-29")
    assert list(days) == list(expected)  # Good Friday and Easter Monday 2016 are absent
    assert pd.Timestamp("2016-03-28") not in days
    assert (perf["n_assets"] == len(STOCKS)).all()
    assert len(perf["positions"].iloc[-1]) == len(STOCKS)


def test_a_date_that_is_not_a_london_session_is_refused(shared_data_dir, tmp_path):
    from zipline_factorarb.data.register import register_csv_bundle

    folder, _, _ = write_london_folder(shared_data_dir, tmp_path / "src", extra_date="2016-05-02")
    register_csv_bundle("uk-bad", folder, calendar_name="XLON")
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(BundleDataError, match=r"AAPL, date 2016-05-02: .*not a trading session of the calendar \(XLON\)"):
        ingest("uk-bad", root)


def test_start_and_end_sessions_bound_the_bundle(shared_data_dir, tmp_path):
    from zipline_factorarb.data.register import register_csv_bundle

    folder, _, _ = write_london_folder(shared_data_dir, tmp_path / "src")
    register_csv_bundle("uk-window", folder, calendar_name="LSE",  # an alias of XLON
                        start_session="2015-06-01", end_session="2016-12-30")
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(BundleDataError, match=r"date 2015-01-02: date is before .*2015-06-01"):
        ingest("uk-window", root)


def test_calendar_arguments_are_checked():
    from zipline_factorarb.data.register import country_code_of, register_csv_bundle

    assert country_code_of("XTKS") == "JP" and country_code_of("NYSE") == "US"
    assert country_code_of("XETR") is None  # no zipline domain for Xetra
    with pytest.raises(ValueError, match=r"unknown trading calendar 'XXXX'"):
        register_csv_bundle("bad-cal", "nowhere", calendar_name="XXXX")
    with pytest.raises(ValueError, match=r"no country is known for calendar 'XETR'.*country_code"):
        register_csv_bundle("bad-cal", "nowhere", calendar_name="XETR")
    with pytest.raises(ValueError, match=r"country_code must be a two-letter"):
        register_csv_bundle("bad-cal", "nowhere", calendar_name="XLON", country_code="GBR")
    with pytest.raises(ValueError, match=r"end_session 2015-01-01 is before start_session"):
        register_csv_bundle("bad-cal", "nowhere", start_session="2016-01-01",
                            end_session="2015-01-01")


def test_calendar_without_a_zipline_domain_gets_its_own(shared_data_dir, tmp_path, monkeypatch):
    """Xetra (XETR) with country_code='DE': research pipelines run on an
    EquityCalendarDomain of that country and calendar."""
    from zipline.pipeline import Pipeline
    from zipline.pipeline.data import EquityPricing

    from zipline_factorarb.data.register import register_csv_bundle
    from zipline_factorarb.pipeline.research import run_pipeline

    folder = tmp_path / "src"
    folder.mkdir()
    sessions = xcals.get_calendar("XETR").sessions_in_range("2016-01-04", "2016-03-31")
    px = pd.read_csv(shared_data_dir / "sp500_stocks_daily_2013_2018.csv.gz")
    rows = px[px["symbol"] == "MSFT"].sort_values("date").head(len(sessions)).copy()
    rows["date"] = sessions.strftime("%Y-%m-%d")
    rows.to_csv(folder / "MSFT.csv", index=False)
    register_csv_bundle("de-one", folder, calendar_name="XETR", country_code="DE")
    root = tmp_path / "root"
    root.mkdir()
    ingest("de-one", root)
    out = run_pipeline(Pipeline({"close": EquityPricing.close.latest}), "2016-02-01",
                       "2016-02-29", bundle="de-one", environ=zipline_environ(root))
    days = out.index.get_level_values(0)
    assert list(days) == list(sessions[(sessions >= "2016-02-01") & (sessions <= "2016-02-29")])
