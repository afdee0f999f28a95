"""Factor evaluation on the sample bundle, checked against the source prices."""

import re
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
    # alphalens' tables and tear sheets, drawn headless and saved
    assert {"returns_tear_sheet.png", "information_tear_sheet.png", "turnover_tear_sheet.png",
            "ic_by_lag.png", "ic_by_group.csv", "quantile_returns.csv", "factor_returns.csv",
            "alpha_beta.csv", "quantile_turnover.csv", "rank_autocorrelation.csv"} <= {
        p.name for p in out.iterdir()}
    # progress on stderr: every phase with its time
    for phase in ("pipeline (momentum on factorarb-sample, 2019-01-02 .. 2019-12-31)",
                  "adjusted returns from the bundle", "alphalens factor data",
                  "alphalens tables", "IC by lag", "alphalens tear sheets",
                  "writing tables and figures"):
        assert f"[evaluate-factor] {phase} ...\n" in result.stderr
        assert re.search(rf"\[evaluate-factor\] {re.escape(phase)}: \d+\.\d s\n",
                         result.stderr), phase
    assert re.search(r"\[evaluate-factor\] total \d+\.\d s", result.stderr)
    assert "[evaluate-factor]" not in result.stdout

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
    tables = evaluate(factor, rets, horizons=(1,), lags=range(6), figures=False).tables
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


# --------------------------------------------------------------------------- alphalens numbers

def _momentum_frame(prices, lookback=126, skip=21):
    """12-1-style momentum of each session from the closes before it (as the pipeline)."""
    hist = prices.shift(1)
    return (hist / hist.shift(lookback - 1)) / (hist / hist.shift(skip - 1)) - 1.0


def test_alphalens_numbers_match_direct_computations():
    """Real prices (the sample's): alphalens' IC, quantile means and lag-0 IC against scipy
    and a plain pandas groupby that does not use alphalens' quantiles."""
    from zipline_factorarb.analysis.factor_eval import evaluate

    prices = _sample_prices().loc["2018-01-01":"2019-12-31"]
    rets = prices.pct_change(fill_method=None)
    factor = _momentum_frame(prices).loc["2019-03-01":"2019-09-30"]
    sectors = pd.Series({c: ("ETF" if c in ("MTUM", "QUAL", "SIZE", "USMV", "VLUE") else "Stock")
                         for c in prices.columns})
    evaluation = evaluate(factor, rets, sectors=sectors, horizons=(1, 5), quantiles=4,
                          lags=(0, 3), figures=False)
    tables = evaluation.tables
    # lag 0: the return ending at the factor's own close (the session before D)
    for day in ("2019-03-15", "2019-07-01"):
        day = pd.Timestamp(day)
        pos = rets.index.get_loc(day)
        expected = spearmanr(factor.loc[day], rets.iloc[pos - 1]).statistic
        assert tables["ic_lag"].loc[day, "lag_0"] == pytest.approx(expected, abs=1e-12)
        fwd5 = prices.iloc[pos + 5] / prices.iloc[pos] - 1.0
        assert tables["ic"].loc[day, "5D"] == pytest.approx(
            spearmanr(factor.loc[day], fwd5).statistic, abs=1e-9)
    # quantile means: equal-count quartiles by rank per day, returns demeaned per day
    long = factor.stack().rename("factor").to_frame()
    long.index.names = ["date", "asset"]
    fwd1 = (prices.shift(-1) / prices - 1.0).stack()
    fwd1.index.names = ["date", "asset"]
    long["fwd"] = fwd1.reindex(long.index)
    long = long.dropna()
    long["q"] = long.groupby(level="date")["factor"].transform(
        lambda x: pd.qcut(x, 4, labels=False) + 1)
    long["demeaned"] = long["fwd"] - long.groupby(level="date")["fwd"].transform("mean")
    direct = long.groupby(["q", long.index.get_level_values("date")])["demeaned"].mean() \
        .groupby(level="q").mean()
    np.testing.assert_allclose(tables["quantile_returns"]["1D"].to_numpy(), direct.to_numpy(),
                               rtol=1e-10, atol=1e-14)
    assert tables["ic_summary"].loc["5D", "days"] == tables["ic"]["5D"].count()
    assert set(tables["ic_by_group"].index) == {"ETF", "Stock"}


def test_sign_and_group_neutral():
    """Generated data: sign flips every IC; group-neutral IC is the IC with returns
    demeaned within each group and day."""
    from zipline_factorarb.analysis.factor_eval import evaluate

    rng = np.random.default_rng(7)
    sessions = pd.bdate_range("2021-01-01", periods=60)
    cols = [f"S{i}" for i in range(24)]
    groups = pd.Series({c: "AB"[i % 2] for i, c in enumerate(cols)})
    shift = np.where(groups.to_numpy() == "A", 0.02, -0.02)
    rets = pd.DataFrame(rng.normal(0, 0.01, size=(60, 24)) + shift, index=sessions, columns=cols)
    factor = pd.DataFrame(rng.normal(size=(45, 24)), index=sessions[5:50], columns=cols) \
        + 0.5 * rets.shift(-1).loc[sessions[5:50]] / 0.01
    plus = evaluate(factor, rets, sectors=groups, horizons=(1,), lags=(1, 2), figures=False)
    minus = evaluate(factor, rets, sectors=groups, horizons=(1,), lags=(1, 2), figures=False,
                     sign=-1)
    np.testing.assert_allclose(minus.tables["ic"], -plus.tables["ic"], atol=1e-12)
    np.testing.assert_allclose(minus.tables["ic_lag"], -plus.tables["ic_lag"], atol=1e-12)
    neutral = evaluate(factor, rets, sectors=groups, horizons=(1,), lags=(2,), figures=False,
                       group_neutral=True)
    day = sessions[20]
    fwd = rets.shift(-1).loc[day]
    demeaned = fwd - fwd.groupby(groups).transform("mean")
    assert neutral.tables["ic"].loc[day, "1D"] == pytest.approx(
        spearmanr(factor.loc[day], demeaned).statistic, abs=1e-12)
    # lag 2 is the 1-day horizon, group-neutral too
    assert neutral.tables["ic_lag"].loc[day, "lag_2"] == pytest.approx(
        neutral.tables["ic"].loc[day, "1D"], abs=1e-12)


def test_tear_sheets_are_collected_headless():
    """alphalens' tear sheets are captured as figures with axes; pyplot keeps no open
    figure and its backend is what it was."""
    import matplotlib
    import matplotlib.pyplot as plt

    from zipline_factorarb.analysis.factor_eval import evaluate

    rng = np.random.default_rng(3)
    sessions = pd.bdate_range("2021-01-01", periods=80)
    cols = [f"S{i}" for i in range(20)]
    rets = pd.DataFrame(rng.normal(0, 0.01, size=(80, 20)), index=sessions, columns=cols)
    factor = rets.shift(-1).loc[sessions[5:60]] + rng.normal(0, 0.01, size=(55, 20))
    sectors = pd.Series({c: "AB"[i % 2] for i, c in enumerate(cols)})
    before, backend = plt.get_fignums(), matplotlib.get_backend()
    figs = evaluate(factor, rets, sectors=sectors, horizons=(1, 5), lags=(0, 3)).figures
    assert plt.get_fignums() == before
    assert matplotlib.get_backend().lower() == backend.lower()
    assert {"returns_tear_sheet", "information_tear_sheet", "turnover_tear_sheet",
            "ic_by_lag"} <= set(figs)
    assert all(fig.axes for fig in figs.values())


# --------------------------------------------------------------------------- bad parameters

@pytest.mark.parametrize("args, hint, message", [
    (["--param", "lokback=126"], "--param",
     "unknown parameter 'lokback' (did you mean 'lookback'?)"),
    (["--param", "lookback=-5"], "--param", "lookback=-5: must be an integer >= 2"),
    (["--param", "lookback=12.5"], "--param", "lookback=12.5: must be an integer"),
    (["--param", "skip=300"], "--param", "skip=300: must be smaller than lookback=252"),
    (["--quantiles", "0"], "--quantiles", "quantiles=0: must be an integer >= 2"),
    (["--horizons", "1,x"], "--horizons", "'x'"),
    (["--horizons", "0"], "--horizons", "horizons=0"),
    (["--nw-lags", "-1"], "--nw-lags", "nw_lags=-1"),
    (["--universe", "bonds"], "--universe", "use one of ['all', 'stocks', 'etfs']"),
    (["--start", "2019-02-30"], "--start", "start='2019-02-30': not a date"),
])
def test_bad_options_are_named_before_any_work(tmp_path, args, hint, message):
    """No bundle is needed: every option is checked before the pipeline runs."""
    base = ["evaluate-factor", "momentum", "--start", "2019-01-02", "--end", "2019-03-01",
            "--out", str(tmp_path / "o")]
    if args[0] == "--start":
        base[3] = args[1]
        args = []
    result = CliRunner(env={"ZIPLINE_ROOT": str(tmp_path / "empty")}).invoke(main, base + args)
    assert result.exit_code == 2, result.output
    assert hint in result.output and message in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "o").exists()


def test_class_factor_parameters_are_checked(tmp_path):
    from zipline_factorarb.analysis.factor_eval import factor_parameters, resolve_factor
    from zipline_factorarb.research.errors import ParameterError

    assert "volatility_lookback" in factor_parameters("wls_residual")
    with pytest.raises(ParameterError, match=r"'volatility_lookbak' \(did you mean "
                                             r"'volatility_lookback'\?\)"):
        resolve_factor("wls_residual", volatility_lookbak=60)
    with pytest.raises(ParameterError, match=r"factor 'kalman_innovation' refuses "
                                             r"window_length=-5: window_length"):
        resolve_factor("kalman_innovation", window_length=-5)
    result = CliRunner(env={"ZIPLINE_ROOT": str(tmp_path)}).invoke(main, [
        "evaluate-factor", "sscore", "--start", "2019-01-02", "--end", "2019-02-01",
        "--out", str(tmp_path / "o"), "--param", "windw_length=60"])
    assert result.exit_code == 2 and "did you mean 'window_length'?" in result.output


def test_universe_filters(sample_root, tmp_path, monkeypatch):
    """etfs / stocks by asset type, and a filter from a module."""
    from zipline_factorarb.analysis.factor_eval import evaluate_factor

    environ = zipline_environ(sample_root)
    etfs = evaluate_factor("momentum", "factorarb-sample", "2019-03-01", "2019-04-30",
                           horizons=(1,), lags=(0,), universe="etfs", environ=environ,
                           figures=False)
    assert set(etfs.factor_data.index.get_level_values("asset")) == {
        "MTUM", "QUAL", "SIZE", "USMV", "VLUE"}
    stocks = evaluate_factor("momentum", "factorarb-sample", "2019-03-01", "2019-04-30",
                             horizons=(1,), lags=(0,), universe="stocks", environ=environ,
                             figures=False)
    assert len(set(stocks.factor_data.index.get_level_values("asset"))) == 20
    (tmp_path / "my_universe.py").write_text(
        "from zipline_factorarb.pipeline.classifiers import Sector\n"
        "def tech():\n    return Sector().eq(45)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    tech = evaluate_factor("momentum", "factorarb-sample", "2019-03-01", "2019-04-30",
                           horizons=(1,), lags=(0,), universe="my_universe:tech",
                           environ=environ, figures=False)
    assert set(tech.factor_data["group"]) == {"Information Technology"}


def test_values_alphalens_leaves_out_are_counted():
    """Infinite factor values and values without a forward return are reported, not lost
    silently."""
    from zipline_factorarb.analysis.factor_eval import evaluate

    rng = np.random.default_rng(11)
    sessions = pd.bdate_range("2021-01-01", periods=40)
    cols = [f"S{i}" for i in range(10)]
    rets = pd.DataFrame(rng.normal(0, 0.01, size=(40, 10)), index=sessions, columns=cols)
    factor = pd.DataFrame(rng.normal(size=(30, 10)), index=sessions[2:32], columns=cols)
    factor.iloc[3, 4] = np.inf
    rets.iloc[20, 7] = np.nan  # a missing price: no 1-day forward return from 19 or 20
    result = evaluate(factor, rets, horizons=(1,), lags=(0,), figures=False)
    # the inf, and S7 on sessions 19 and 20 (alphalens alone would forward-fill the price)
    assert len(result.factor_data) == 300 - 3
    assert result.dropped == pytest.approx(3 / 300)
    kept = result.factor_data.xs("S7", level="asset").index
    assert sessions[19] not in kept and sessions[20] not in kept and sessions[21] in kept
