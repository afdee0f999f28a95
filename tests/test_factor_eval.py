"""Factor evaluation on the sample bundle, checked against the source prices."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
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
