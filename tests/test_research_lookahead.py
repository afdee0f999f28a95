"""Walk-forward folds never read a later date.

Two bundles are ingested from the same real prices (the embedded sample):
``clean``, and ``corrupt`` where every price after X = 2018-12-31 is replaced
by noise. A fold whose test window ends on X must give bit-identical results
on both, for the momentum algorithm and for an algorithm that fits a model on
its training window; a fold that tests after X must differ (the corruption is
visible to a run that reaches it), while its fit, made on the training
window that ends at X, is still identical.
"""

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT, ingest

from zipline_factorarb.research import run_sweep

pytestmark = pytest.mark.slow

X = pd.Timestamp("2018-12-31")
SYMBOLS = ["AAPL", "BAC", "CVX", "JNJ", "JPM", "KO", "MSFT", "PFE", "WMT", "XOM", "SP500"]

FITTED = '''
"""Fits a score per stock on the training window only, then holds the best ones."""
from zipline.api import (date_rules, order_target_percent, record, schedule_function,
                         set_benchmark, symbol, time_rules)
from zipline_factorarb.algo import algorithm_params
from zipline_factorarb.research import training_history

PARAMS = algorithm_params({"train_start": "", "train_end": "", "n_long": 3})
NAMES = ["AAPL", "BAC", "CVX", "JNJ", "JPM", "KO", "MSFT", "PFE", "WMT", "XOM"]


def initialize(context):
    set_benchmark(symbol("SP500"))
    context.assets = [symbol(s) for s in NAMES]
    context.fit = None
    schedule_function(rebalance, date_rules.month_start(), time_rules.market_open(minutes=30))


def before_trading_start(context, data):
    if context.fit is None:  # fitted once, on the fold's training window
        prices = training_history(data, context.assets, PARAMS["train_start"],
                                  PARAMS["train_end"])
        returns = prices.pct_change().iloc[1:]
        context.fit = returns.mean() / returns.std()
        context.chosen = list(context.fit.nlargest(PARAMS["n_long"]).index)
        days = prices.index
        context.info = dict(train_rows=len(prices),
                            train_first=int(days[0].strftime("%Y%m%d")),
                            train_last=int(days[-1].strftime("%Y%m%d")))
    record(fit_xom=float(context.fit[symbol("XOM")]), **context.info)


def rebalance(context, data):
    for asset in context.assets:
        weight = 1.0 / len(context.chosen) if asset in context.chosen else 0.0
        order_target_percent(asset, weight)
'''


# A negative control: reads prices after its test window straight from the data
# portal (which zipline's ``data`` object would refuse); the test must catch it.
PEEKING = FITTED.replace(
    "        context.fit = returns.mean() / returns.std()\n",
    "        import pandas as pd\n"
    "        future = pd.Timestamp('2019-06-28')\n"
    "        late = context.data_portal.get_spot_value(context.assets, 'close', future, 'daily')\n"
    "        context.fit = pd.Series(late, index=context.assets) / prices.iloc[-1]\n",
)
assert PEEKING != FITTED


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """``la-clean`` and ``la-corrupt`` ingested into one zipline root."""
    from zipline_factorarb.data.register import register_csv_bundle
    from zipline_factorarb.data.sources import load_sample

    base = tmp_path_factory.mktemp("lookahead")
    sample = load_sample()
    p = sample.prices
    p = p[p["symbol"].isin(SYMBOLS) & (p["date"] >= "2014-01-02") & (p["date"] <= "2020-12-31")]
    p = p[["date", "symbol", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
    meta = sample.metadata[sample.metadata["symbol"].isin(SYMBOLS)]
    meta = meta[["symbol", "name", "sector", "asset_type"]]

    rng = np.random.default_rng(7)
    corrupt = p.copy()
    after = corrupt["date"] > X
    noise = rng.uniform(0.3, 3.0, after.sum())
    for col in ("open", "high", "low", "close"):
        corrupt.loc[after, col] = (corrupt.loc[after, "close"] * noise).round(2)
    assert (corrupt.loc[~after, "close"] == p.loc[~after, "close"]).all()

    root = base / "root"
    root.mkdir()
    lines = ["from zipline_factorarb import register_csv_bundle"]
    for name, frame in (("la-clean", p), ("la-corrupt", corrupt)):
        folder = base / name
        folder.mkdir()
        frame.to_csv(folder / "prices.csv", index=False)
        meta.to_csv(folder / "metadata.csv", index=False)
        register_csv_bundle(name, folder)
        ingest(name, root)
        lines.append(f"register_csv_bundle({name!r}, {str(folder)!r})")
    # workers (and `zipline run`) find the bundles through the root's extension
    (root / "extension.py").write_text("\n".join(lines) + "\n")
    return dict(root=root, prices=p)


def sweep(bundles, bundle, algorithm, out, folds=2):
    spec = dict(algorithm=str(algorithm), bundle=bundle, zipline_root=str(bundles["root"]),
                walk_forward=dict(train_years=2, test_years=1, folds=folds, start="2016-01-01"),
                keep_perf=True)
    result = run_sweep(spec, out, serial=True, progress=False)
    assert (result.results["status"] == "ok").all(), result.results["traceback"].tolist()
    frame = result.results.set_index("fold")
    perfs = {f: pd.read_pickle(out / "perf" / f"{frame.loc[f, 'run_id']}.pickle")
             for f in frame.index}
    return frame, perfs


METRICS = ["sharpe", "total_return", "annual_return", "annual_volatility", "max_drawdown",
           "annual_turnover", "tracking_error", "information_ratio", "benchmark_total_return",
           "n_trades", "n_sessions"]


def test_the_check_catches_an_algorithm_that_peeks(bundles, tmp_path):
    algorithm = tmp_path / "peeking.py"
    algorithm.write_text(PEEKING)
    clean, _ = sweep(bundles, "la-clean", algorithm, tmp_path / "clean", folds=1)
    dirty, _ = sweep(bundles, "la-corrupt", algorithm, tmp_path / "dirty", folds=1)
    assert clean.loc[0, "test_end"] == X
    assert clean.loc[0, "sharpe"] != dirty.loc[0, "sharpe"]


@pytest.mark.parametrize("which", ["sector_momentum", "fitted"])
def test_a_fold_ending_at_x_never_reads_after_x(bundles, tmp_path, which):
    if which == "fitted":
        algorithm = tmp_path / "fitted.py"
        algorithm.write_text(FITTED)
    else:
        algorithm = REPO_ROOT / "algorithms" / "sector_momentum.py"
    clean, clean_perf = sweep(bundles, "la-clean", algorithm, tmp_path / "clean")
    dirty, dirty_perf = sweep(bundles, "la-corrupt", algorithm, tmp_path / "dirty")

    assert clean.loc[0, "test_end"] == X and clean.loc[1, "test_start"] > X
    # fold 0 tests up to X: identical to the last bit, including every trade
    assert clean.loc[0, METRICS].tolist() == dirty.loc[0, METRICS].tolist()
    a, b = clean_perf[0], dirty_perf[0]
    assert a["returns"].to_numpy().tobytes() == b["returns"].to_numpy().tobytes()
    assert a["portfolio_value"].equals(b["portfolio_value"])
    strip = lambda perf: [[(t["sid"].symbol, t["amount"], t["price"]) for t in day]  # noqa: E731
                          for day in perf["transactions"]]
    assert strip(a) == strip(b)
    # fold 1 tests after X: the corrupted prices show up
    assert clean.loc[1, "sharpe"] != dirty.loc[1, "sharpe"]
    assert not clean_perf[1]["returns"].equals(dirty_perf[1]["returns"])

    if which == "fitted":
        prices = bundles["prices"].pivot(index="date", columns="symbol", values="close")
        for fold in (0, 1):
            perf = clean_perf[fold]
            train_start, train_end = clean.loc[fold, "train_start"], clean.loc[fold, "train_end"]
            # the fit saw exactly the training window: first and last day, row count
            assert perf["train_first"].iloc[0] == int(train_start.strftime("%Y%m%d"))
            assert perf["train_last"].iloc[0] == int(train_end.strftime("%Y%m%d"))
            window = prices.loc[train_start:train_end]
            assert perf["train_rows"].iloc[0] == len(window)
            # ... and equals the same statistic computed from the source prices
            r = window["XOM"].round(3).pct_change().iloc[1:]
            assert perf["fit_xom"].iloc[0] == pytest.approx(r.mean() / r.std(), rel=1e-9)
            # the fit of fold 1 (training ends at X) is the same on the corrupt bundle
            assert (dirty_perf[fold]["fit_xom"].iloc[0]
                    == perf["fit_xom"].iloc[0])
