"""Factor evaluation on the sample bundle, checked against the source prices."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import zipline_environ
from scipy.stats import spearmanr

from zipline_factorarb.cli import main


def test_evaluate_momentum_cli_matches_direct_computation(sample_root, tmp_path):
    from skfolio.datasets import load_sp500_dataset

    out = tmp_path / "eval"
    result = CliRunner(env={"ZIPLINE_ROOT": str(sample_root)}).invoke(main, [
        "evaluate-factor", "momentum", "--bundle", "factorarb-sample", "--start", "2019-01-02",
        "--end", "2019-12-31", "--out", str(out), "--horizons", "1,5", "--quantiles", "4",
        "--param", "lookback=126"])
    assert result.exit_code == 0, result.output
    ic = pd.read_csv(out / "ic.csv", index_col=0, parse_dates=True)
    assert {"ic.png", "quantile_returns.png", "ic_by_sector.csv", "quantile_turnover.csv"} <= {
        p.name for p in out.iterdir()}

    prices = load_sp500_dataset()
    # the sample's stocks plus its factor ETFs are tradable; recompute on one date
    from skfolio.datasets import load_factors_dataset

    prices = prices.join(load_factors_dataset())
    day = pd.Timestamp("2019-06-14")
    pos = prices.index.get_loc(day)
    hist = prices.iloc[:pos]  # the pipeline sees data through the previous session
    momentum = (hist.iloc[-1] / hist.iloc[-126]) / (hist.iloc[-1] / hist.iloc[-21]) - 1.0
    forward = prices.iloc[pos + 5] / prices.iloc[pos] - 1.0
    expected = spearmanr(momentum, forward.reindex(momentum.index)).statistic
    assert ic.loc[day, "5D"] == pytest.approx(expected, abs=1e-3)
    summary = pd.read_csv(out / "ic_summary.csv", index_col=0)
    assert summary.loc["5D", "days"] == ic["5D"].count()
    assert summary.loc["5D", "mean_ic"] == pytest.approx(ic["5D"].mean())


def test_unknown_factor_is_named(sample_root, tmp_path):
    result = CliRunner(env={"ZIPLINE_ROOT": str(sample_root)}).invoke(main, [
        "evaluate-factor", "nosuch", "--start", "2019-01-02", "--end", "2019-02-01",
        "--out", str(tmp_path)])
    assert result.exit_code == 1 and "unknown factor 'nosuch'" in result.output


@pytest.mark.parametrize("factor, extra", [
    ("sscore", ["--param", 'factors=["MTUM","QUAL","USMV"]', "--param", "bundle=factorarb-sample"]),
    ("kalman_innovation", []),
])
def test_project_factors_evaluate(sample_root, tmp_path, factor, extra):
    out = tmp_path / factor
    result = CliRunner(env={"ZIPLINE_ROOT": str(sample_root)}).invoke(main, [
        "evaluate-factor", factor, "--start", "2019-01-02", "--end", "2019-04-30",
        "--out", str(out), "--horizons", "1,5", *extra])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "ic_summary.csv", index_col=0)
    assert summary.loc["1D", "days"] > 60
    assert np.isfinite(summary.loc["1D", "mean_ic"]) and abs(summary.loc["1D", "mean_ic"]) < 1


def _sample_prices():
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset

    return load_sp500_dataset().join(load_factors_dataset())


def test_ic_by_lag_cli_matches_direct_computation(sample_root, tmp_path):
    """Lag k of session D: close D-2+k to close D-1+k; lag 0 is the factor's own close."""
    out = tmp_path / "lags"
    result = CliRunner(env={"ZIPLINE_ROOT": str(sample_root)}).invoke(main, [
        "evaluate-factor", "momentum", "--start", "2019-05-01", "--end", "2019-08-30",
        "--out", str(out), "--horizons", "1", "--param", "lookback=126"])
    assert result.exit_code == 0, result.output
    assert "IC by lag" in result.output and "first earned" in result.output
    table = pd.read_csv(out / "ic_by_lag.csv", index_col=0)
    daily = pd.read_csv(out / "ic_lag.csv", index_col=0, parse_dates=True)
    assert table.index.tolist() == [0, 1, 2, 3, 4, 5]
    assert table.loc[0, "return"] == "close D-2 -> close D-1"
    assert table.loc[3, "zipline_daily"].startswith("first earned")
    assert (out / "ic_by_lag.png").exists()

    prices = _sample_prices()
    for day in ("2019-06-14", "2019-08-01"):
        day = pd.Timestamp(day)
        pos = prices.index.get_loc(day)
        hist = prices.iloc[:pos]  # the pipeline value of `day` saw closes up to the one before
        momentum = (hist.iloc[-1] / hist.iloc[-126]) / (hist.iloc[-1] / hist.iloc[-21]) - 1.0
        for lag in (0, 1, 3):
            ret = prices.iloc[pos - 1 + lag] / prices.iloc[pos - 2 + lag] - 1.0
            expected = spearmanr(momentum, ret.reindex(momentum.index)).statistic
            assert daily.loc[day, f"lag_{lag}"] == pytest.approx(expected, abs=1e-3), (day, lag)
    # lag 2 (close D -> close D+1) is the 1-day horizon
    ic = pd.read_csv(out / "ic.csv", index_col=0, parse_dates=True)
    np.testing.assert_allclose(daily["lag_2"], ic["1D"], atol=1e-12)
    assert table.loc[0, "days"] == daily["lag_0"].count() == len(daily)
    assert table.loc[5, "mean_ic"] == pytest.approx(daily["lag_5"].mean())
    assert table.loc[5, "t_stat"] == pytest.approx(
        daily["lag_5"].mean() / daily["lag_5"].std() * np.sqrt(daily["lag_5"].count()))

    result = CliRunner(env={"ZIPLINE_ROOT": str(sample_root)}).invoke(main, [
        "evaluate-factor", "momentum", "--start", "2019-05-01", "--end", "2019-05-31",
        "--out", str(tmp_path / "some"), "--horizons", "1", "--lags", "0,2-3", "--nw-lags", "0"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "some" / "ic_by_lag.csv", index_col=0)
    assert table.index.tolist() == [0, 2, 3] and (table["nw_lags"] == 0).all()
    result = CliRunner(env={"ZIPLINE_ROOT": str(sample_root)}).invoke(main, [
        "evaluate-factor", "momentum", "--start", "2019-05-01", "--end", "2019-05-31",
        "--out", str(tmp_path / "bad"), "--lags", "-1"])
    assert result.exit_code == 2 and "--lags" in result.output


def test_evaluate_lags_on_a_planted_signal():
    """A factor equal to the return of close D+1 -> D+2 has IC 1 at lag 3 only."""
    from zipline_factorarb.analysis.factor_eval import FIRST_EARNED_LAG, evaluate

    rng = np.random.default_rng(1)
    sessions = pd.bdate_range("2020-01-01", periods=80)
    rets = pd.DataFrame(rng.normal(0, 0.01, size=(80, 30)), index=sessions,
                        columns=[f"S{i}" for i in range(30)])
    dates = sessions[5:70]
    factor = rets.shift(-2).loc[dates]  # row D holds the return ending at close D+2
    tables = evaluate(factor, rets, horizons=(1,), lags=range(6)).tables
    by_lag = tables["ic_by_lag"]
    assert by_lag.loc[FIRST_EARNED_LAG, "mean_ic"] == pytest.approx(1.0)
    assert by_lag.loc[FIRST_EARNED_LAG, "return"] == "close D+1 -> close D+2"
    assert by_lag.drop(FIRST_EARNED_LAG)["mean_ic"].abs().max() < 0.1
    assert (by_lag["days"] == len(dates)).all()


def test_first_earned_lag_is_zipline_daily_fill_timing(sample_root):
    """A real daily zipline run: the pipeline value of D is the close of D-1; an
    order placed in handle_data on D fills at the close of D+1; the first
    price move the position earns is close D+1 -> close D+2, lag 3."""
    from zipline import run_algorithm
    from zipline.api import (attach_pipeline, order, pipeline_output, record, set_commission,
                             set_slippage, symbol)
    from zipline.finance import commission, slippage
    from zipline.pipeline import Pipeline
    from zipline.pipeline.data import EquityPricing

    from zipline_factorarb.analysis.factor_eval import FIRST_EARNED_LAG
    from zipline_factorarb.data.register import register_bundles


    register_bundles()

    def initialize(ctx):
        attach_pipeline(Pipeline({"close": EquityPricing.close.latest}), "p")
        set_slippage(slippage.FixedSlippage(spread=0.0))
        set_commission(commission.PerShare(cost=0.0, min_trade_cost=0.0))
        ctx.asset, ctx.n = symbol("AAPL"), 0

    def handle_data(ctx, data):
        record(pipeline_close=pipeline_output("p").loc[ctx.asset, "close"])
        if ctx.n == 2:
            order(ctx.asset, 100)
        ctx.n += 1

    perf = run_algorithm(start=pd.Timestamp("2019-06-10"), end=pd.Timestamp("2019-06-20"),
                         initialize=initialize, handle_data=handle_data, capital_base=1e6,
                         bundle="factorarb-sample", data_frequency="daily",
                         environ=zipline_environ(sample_root))
    close = _sample_prices()["AAPL"]
    sessions = pd.DatetimeIndex(perf.index).tz_localize(None).normalize()
    pos = {d: close.index.get_loc(d) for d in sessions}
    # the pipeline value of every session D is the close of D-1 (its own close)
    for d, value in zip(sessions, perf["pipeline_close"]):
        assert value == pytest.approx(close.iloc[pos[d] - 1], abs=1e-3)
    placed = sessions[2]
    own = pos[placed] - 1
    fills = [(pd.Timestamp(t["dt"]).tz_localize(None).normalize(), t["price"])
             for txns in perf["transactions"] for t in txns]
    assert len(fills) == 1
    fill_day, price = fills[0]
    assert pos[fill_day] == pos[placed] + 1  # the next session ...
    assert price == pytest.approx(close.iloc[pos[fill_day]], abs=1e-3)  # ... at its close
    pnl = perf["pnl"].to_numpy()
    i = list(sessions).index(fill_day)
    assert abs(pnl[i]) < 1e-6  # bought at the close it is marked at: nothing earned yet
    move = close.iloc[pos[fill_day] + 1] - close.iloc[pos[fill_day]]
    assert pnl[i + 1] == pytest.approx(100 * move, abs=0.2)  # first return: close D+1 -> D+2
    # that return ends FIRST_EARNED_LAG sessions after the factor's own close
    assert pos[fill_day] + 1 - own == FIRST_EARNED_LAG
