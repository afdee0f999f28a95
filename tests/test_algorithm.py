"""The first algorithm, through the real `zipline run` command and run_algorithm."""

import importlib.util

import numpy as np
import pandas as pd

from conftest import REPO_ROOT, zipline_cli, zipline_environ

ALGO = REPO_ROOT / "algorithms" / "sector_momentum.py"




def _expected_top(prices, sectors, day, n, lookback=252, skip=21):
    """Top-n sector-demeaned 12-1 momentum, computed directly from the prices."""
    hist = prices.loc[: day - pd.Timedelta(days=1)]
    momentum = hist.iloc[-skip] / hist.iloc[-lookback] - 1.0
    momentum = momentum.dropna()
    demeaned = momentum - momentum.groupby(sectors).transform("mean")
    return set(demeaned.nlargest(n).index)


def _held(perf, day):
    return {p["sid"].symbol for p in perf.loc[day, "positions"] if p["amount"] != 0}


def test_zipline_run_cli_full_sample(sample_perf):
    import pyfolio

    from skfolio.datasets import load_sp500_dataset, load_sp500_index

    perf = pd.read_pickle(sample_perf)
    assert perf.index[0].date() == pd.Timestamp("2005-01-03").date()
    assert perf.index[-1].date() == pd.Timestamp("2022-12-28").date()
    returns, positions, transactions = pyfolio.utils.extract_rets_pos_txn_from_zipline(perf)
    assert len(returns) == len(perf) and returns.index.tz is not None
    assert len(transactions) > 100

    # the benchmark is the sample's S&P 500 index
    index = load_sp500_index().iloc[:, 0]
    cum = 1.0 + perf["benchmark_period_return"]
    bench = cum / cum.shift(1) - 1.0
    days = bench.index[1:]
    expected = index.pct_change().reindex(days.tz_localize(None).normalize())
    np.testing.assert_allclose(bench.loc[days].to_numpy(), expected.to_numpy(), atol=2e-5)

    # the index is never held; five names, fully invested, after the first rebalance
    held = set().union(*[_held(perf, d) for d in perf.index[::21]])
    assert "SP500" not in held and held
    late = perf.iloc[60:]
    assert late["n_holdings"].max() == 5
    assert late["gross_exposure"].between(0.9, 1.1).mean() > 0.95

    # holdings equal the top names computed directly from the source prices
    stocks = load_sp500_dataset()
    from zipline_factorarb.data.sources import SAMPLE_SECTORS

    sectors = pd.Series(SAMPLE_SECTORS)
    for month in ("2010-03", "2015-06", "2021-11"):
        first = perf.loc[month].index[0]
        after = perf.index[perf.index.get_loc(first) + 1]
        expected_names = _expected_top(stocks, sectors, first.tz_localize(None).normalize(), 5)
        assert _held(perf, after) == expected_names, month


def test_run_algorithm_with_parameter_override(sample_root, monkeypatch):
    from zipline import run_algorithm

    monkeypatch.setenv("FACTORARB_PARAMS", '{"n_long": 3}')
    spec = importlib.util.spec_from_file_location("sector_momentum_test", ALGO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PARAMS["n_long"] == 3

    from zipline_factorarb.data.register import register_bundles

    register_bundles()
    perf = run_algorithm(
        start=pd.Timestamp("2019-01-02"), end=pd.Timestamp("2020-12-30"),
        initialize=module.initialize, handle_data=module.handle_data,
        capital_base=1e6, data_frequency="daily",
        bundle="factorarb-sample", environ=zipline_environ(sample_root),
    )
    assert perf["n_holdings"].iloc[30:].max() == 3
    assert perf["benchmark_period_return"].abs().sum() > 0
    assert np.isfinite(perf["portfolio_value"]).all()


def test_unknown_parameter_is_named(sample_root):
    result = zipline_cli(sample_root, "run", "-f", str(ALGO), "-b", "factorarb-sample",
                         "-s", "2020-01-02", "-e", "2020-02-28",
                         extra_env={"FACTORARB_PARAMS": '{"n_lnog": 3}'})
    assert result.returncode != 0
    assert "unknown parameter 'n_lnog'" in result.stderr
