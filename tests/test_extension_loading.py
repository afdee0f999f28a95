"""A bundle registered only in the user's ``$ZIPLINE_ROOT/extension.py`` (or a
file given with ``-e``) works in every command and helper, as in ``zipline run``.

Each command runs as a real subprocess with a temporary ZIPLINE_ROOT whose
``extension.py`` is the only place the bundle is registered; the bundle is a
folder of real prices from ../shared/data, ingested by the real ``zipline
ingest``.
"""

import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from conftest import zipline_environ

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

STOCKS = ["AAPL", "MSFT", "XOM", "CVX", "JPM", "BAC", "JNJ", "PFE", "KO", "PG", "GE", "HD"]
START, END = "2014-01-02", "2015-06-30"

TINY_ALGORITHM = textwrap.dedent('''
    """Buy the first n stocks in equal weights on the first session."""
    from zipline.api import order_target_percent, record, symbol, set_benchmark
    from zipline_factorarb.algo import algorithm_params

    PARAMS = algorithm_params({"n": 3})

    def initialize(context):
        set_benchmark(symbol("SPY"))
        context.done = False

    def handle_data(context, data):
        if not context.done:
            names = ["AAPL", "MSFT", "XOM", "CVX", "JPM"][: PARAMS["n"]]
            for name in names:
                order_target_percent(symbol(name), 1.0 / len(names))
            context.done = True
        record(n=PARAMS["n"])
''')


def write_folder(shared, dest):
    """Twelve stocks and SPY, 2014-01 .. 2015-06, with GICS sectors."""
    dest.mkdir(parents=True)
    px = pd.read_csv(shared / "sp500_stocks_daily_2013_2018.csv.gz")
    px = px[px["symbol"].isin(STOCKS) & px["date"].between(START, END)]
    etf = pd.read_csv(shared / "spdr_sector_etfs_daily.csv.gz")
    etf = etf[(etf["symbol"] == "SPY") & etf["date"].between(START, END)]
    cols = ["date", "symbol", "open", "high", "low", "close", "volume"]
    pd.concat([px[cols], etf[cols]]).to_csv(dest / "prices.csv", index=False)
    gics = pd.read_csv(shared / "sp500_stocks_gics_sectors_2018.csv").set_index("symbol")
    meta = pd.DataFrame({"symbol": STOCKS + ["SPY"],
                         "name": STOCKS + ["SPDR S&P 500"],
                         "sector": [gics.loc[s, "gics_sector"] for s in STOCKS] + [""],
                         "asset_type": ["stock"] * len(STOCKS) + ["etf"]})
    meta.to_csv(dest / "metadata.csv", index=False)
    return dest


def run(args, env, cwd=None, timeout=900):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def factorarb(env, *args, cwd=None):
    return run([sys.executable, "-m", "zipline_factorarb.cli", *args], env, cwd=cwd)


@pytest.fixture(scope="module")
def user_root(shared_data_dir, tmp_path_factory):
    """A ZIPLINE_ROOT whose extension.py alone registers ``my-stocks`` (ingested)."""
    base = tmp_path_factory.mktemp("user_ext")
    folder = write_folder(shared_data_dir, base / "prices")
    root = base / "zipline"
    root.mkdir()
    (root / "extension.py").write_text(
        "from zipline_factorarb import register_csv_bundle\n"
        f"register_csv_bundle('my-stocks', {str(folder)!r})\n"
    )
    env = zipline_environ(root)
    result = run([sys.executable, "-m", "zipline", "ingest", "-b", "my-stocks"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    algo = base / "tiny.py"
    algo.write_text(TINY_ALGORITHM)
    return dict(root=root, env=env, folder=folder, algo=algo, base=base)


def test_bundle_is_not_registered_without_the_extension(user_root):
    """The control: the bundle exists only through the root's extension.py."""
    env = zipline_environ(user_root["base"] / "empty_root")
    result = run([sys.executable, "-m", "zipline", "run", "-f", str(user_root["algo"]),
                  "-b", "my-stocks", "-s", "2015-01-05", "-e", "2015-01-09", "--no-benchmark"],
                 env)
    assert result.returncode != 0
    assert "my-stocks" in result.stderr


def test_bundles_command_lists_extension_bundles(user_root, tmp_path):
    result = factorarb(user_root["env"], "bundles")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    block = lines[lines.index(next(x for x in lines if x.startswith("my-stocks:"))):]
    assert "13 symbols, 2014-01-02 .. 2015-06-30" in block[1]
    # a second bundle from a file given with -e, on top of the root's extension
    other = tmp_path / "other_ext.py"
    other.write_text("from zipline_factorarb import register_csv_bundle\n"
                     f"register_csv_bundle('my-other', {str(user_root['folder'])!r})\n")
    result = factorarb(user_root["env"], "bundles", "-e", str(other))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "my-stocks:" in result.stdout and "my-other:" in result.stdout
    assert "not ingested yet: zipline ingest -b my-other" in result.stdout


def test_run_pipeline_finds_the_extension_bundle(user_root):
    from zipline.data.bundles import bundles, unregister
    from zipline.pipeline import Pipeline
    from zipline.pipeline.data import EquityPricing

    from zipline_factorarb.pipeline import Sector
    from zipline_factorarb.pipeline.research import run_pipeline

    assert "my-stocks" not in bundles
    try:
        out = run_pipeline(Pipeline({"close": EquityPricing.close.latest, "sector": Sector()}),
                           "2015-03-02", "2015-03-06", bundle="my-stocks",
                           environ=user_root["env"])
    finally:
        if "my-stocks" in bundles:
            unregister("my-stocks")
    assert len(out) == 5 * 13
    # the close seen on 2015-03-02 is the source file's close of the session before
    src = pd.read_csv(user_root["folder"] / "prices.csv")
    first = out.xs(pd.Timestamp("2015-03-02"), level=0)["close"]
    expected = src[src["date"] == "2015-02-27"].set_index("symbol")["close"]
    got = pd.Series(first.to_numpy(), index=[a.symbol for a in first.index])
    pd.testing.assert_series_equal(got.sort_index(), expected.reindex(got.index).sort_index(),
                                   check_names=False, rtol=1e-3)


def test_demo_tearsheet_evaluate_factor_and_sweep_on_the_extension_bundle(user_root, tmp_path):
    env = user_root["env"]
    # demo: the main job's flow on the user's bundle with another algorithm
    result = factorarb(env, "demo", "--bundle", "my-stocks", "--algorithm", str(user_root["algo"]),
                       "--start", "2015-01-05", "--end", "2015-03-31", "--out",
                       str(tmp_path / "demo"), "--no-report")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    pickle = tmp_path / "demo" / "tiny" / "perf.pickle"
    perf = pd.read_pickle(pickle)
    import exchange_calendars as xcals

    sessions = xcals.get_calendar("XNYS").sessions_in_range("2015-01-05", "2015-03-31")
    assert len(perf) == len(sessions) and perf["n"].iloc[-1] == 3

    # tearsheet: --bundle and --benchmark resolve in the extension's bundle
    result = factorarb(env, "tearsheet", str(pickle), "--bundle", "my-stocks", "--benchmark",
                       "SPY", "--out", str(tmp_path / "report"), "--format", "html")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (tmp_path / "report" / "report.html").exists()

    # evaluate-factor on the extension's bundle
    result = factorarb(env, "evaluate-factor", "momentum", "--bundle", "my-stocks", "--start",
                       "2015-03-02", "--end", "2015-04-30", "--out", str(tmp_path / "ic"),
                       "--quantiles", "2", "--horizons", "1", "--lags", "0-1",
                       "--param", "lookback=42", "--param", "skip=5", "--quiet")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (tmp_path / "ic" / "ic_summary.csv").exists()

    # sweep: runs in this process (--serial) read the root's extension too
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        algorithm: {user_root['algo']}
        bundle: my-stocks
        capital_base: 100000
        start: 2015-01-05
        end: 2015-02-27
        grid: {{n: [2, 3]}}
    """))
    result = factorarb(env, "sweep", str(spec), "--serial", "--quiet", "--out",
                       str(tmp_path / "sweep"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert list(rows["status"]) == ["ok", "ok"] and sorted(rows["n"]) == [2, 3]


def test_extension_flag_alone_registers_the_bundle(user_root, tmp_path):
    """With an empty root, -e FILE is what makes the bundle known (zipline's own flag)."""
    root = tmp_path / "root"
    root.mkdir()
    ext = tmp_path / "ext.py"
    ext.write_text((user_root["root"] / "extension.py").read_text())
    env = zipline_environ(root)
    missing = factorarb(env, "evaluate-factor", "momentum", "--bundle", "my-stocks", "--start",
                        "2015-03-02", "--end", "2015-03-31", "--out", str(tmp_path / "x"))
    assert missing.returncode != 0 and "my-stocks" in (missing.stderr + missing.stdout)
    result = factorarb(env, "bundles", "-e", str(ext))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "my-stocks:" in result.stdout
