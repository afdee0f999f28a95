"""Parameter sweeps on a real Dask cluster: equality with serial runs, resume,
failing runs, and workers that cannot see the bundle."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT

from zipline_factorarb.research import run_sweep
from zipline_factorarb.research.errors import BundleNotVisibleError, SpecError, SweepError

pytestmark = pytest.mark.slow

ALGO = REPO_ROOT / "algorithms" / "sector_momentum.py"

#: metrics and identity columns; the wall time and the worker differ by nature
COMPARED = ["run_id", "status", "fold", "train_start", "train_end", "test_start", "test_end",
            "n_long", "lookback", "sharpe", "total_return", "annual_return", "annual_volatility",
            "max_drawdown", "annual_turnover", "tracking_error", "information_ratio",
            "benchmark_total_return", "psr", "daily_sharpe", "returns_skew", "returns_kurtosis",
            "n_trades", "n_sessions", "params", "ingestion"]


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def grid_spec(root, **extra):
    spec = dict(
        algorithm=str(ALGO), bundle="factorarb-sample", capital_base=1_000_000,
        zipline_root=str(root),
        walk_forward=dict(train_years=1, test_years=1, folds=2, start="2017-01-01"),
        grid=dict(n_long=[3, 5], lookback=[126, 252]),
    )
    spec.update(extra)
    return spec


def test_dask_sweep_equals_serial_runs_exactly(sample_root, client, tmp_path):
    spec = grid_spec(sample_root)
    serial = run_sweep(spec, tmp_path / "serial", serial=True, progress=False)
    dask = run_sweep(spec, tmp_path / "dask", client=client, progress=False)

    assert serial.n_executed == dask.n_executed == 8 and dask.n_failed == 0
    a, b = serial.results, dask.results
    assert (a["status"] == "ok").all()
    pd.testing.assert_frame_equal(a[COMPARED], b[COMPARED], check_exact=True)
    for col in ("sharpe", "total_return", "max_drawdown", "tracking_error"):
        assert a[col].to_numpy().tobytes() == b[col].to_numpy().tobytes(), col

    # every grid point x fold, with the fold dates of one-year test windows
    assert sorted(zip(a["n_long"], a["lookback"], a["fold"])) == sorted(
        (n, lb, f) for n in (3, 5) for lb in (126, 252) for f in (0, 1))
    assert set(a["test_start"].dt.year) == {2018, 2019}
    assert (a["n_sessions"] >= 250).all() and (a["n_trades"] > 0).all()
    assert (a["wall_time_s"] > 0).all() and np.isfinite(a[COMPARED[9:22]].to_numpy(float)).all()
    # the runs really went through the cluster's two worker processes
    workers = set(client.scheduler_info()["workers"])
    assert set(b["worker"]) == workers and len(workers) == 2
    assert a["worker"].nunique() == 1

    # the two folds of one grid point differ, and the parameters matter
    sharpe = a.set_index(["n_long", "lookback", "fold"])["sharpe"]
    assert sharpe[(3, 126, 0)] != sharpe[(3, 126, 1)] != sharpe[(5, 126, 1)]

    # the files: per-run records, consolidated tables, figures
    out = tmp_path / "dask"
    assert len(list((out / "runs").glob("*.json"))) == 8
    assert pd.read_parquet(out / "results.parquet")[COMPARED].equals(b[COMPARED])
    csv = pd.read_csv(out / "results.csv", float_precision="round_trip")
    assert len(csv) == 8 and (csv["sharpe"].to_numpy() == b["sharpe"].to_numpy()).all()
    for name in ("heatmap_n_long__lookback.png", "fold_table.png", "summary.csv",
                 "fold_table.csv", "spec.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "heatmap_n_long__lookback.png").read_bytes()[:4] == b"\x89PNG"
    summary = pd.read_csv(out / "summary.csv").set_index(["n_long", "lookback"])
    assert summary.loc[(3, 126), "mean"] == pytest.approx((sharpe[(3, 126, 0)]
                                                           + sharpe[(3, 126, 1)]) / 2)
    assert json.loads((out / "spec.json").read_text())["run_ids"] == list(a["run_id"])

    # honest grid statistics: the PSR of every run, the DSR of each fold's best grid point
    assert a["psr"].between(0, 1).all() and np.isfinite(a["returns_kurtosis"]).all()
    np.testing.assert_allclose(a["daily_sharpe"] * np.sqrt(252), a["sharpe"], rtol=1e-9)
    deflated = pd.read_csv(out / "deflated_sharpe.csv")
    assert deflated["fold"].tolist() == [0, 1] and (deflated["trials"] == 4).all()
    for row in deflated.itertuples():
        fold = a[a["fold"] == row.fold]
        best = fold.loc[fold["sharpe"].idxmax()]
        assert row.sharpe == pytest.approx(best["sharpe"], rel=1e-9)
        assert row.psr == pytest.approx(best["psr"], rel=1e-12)
        assert row.expected_max_sharpe > 0 and row.dsr < row.psr
    selection = pd.read_csv(out / "selection.csv")
    chosen = sharpe.xs(0, level="fold").idxmax()
    assert selection["fold"].tolist() == [1]
    assert selection.loc[0, "selected"] == f"n_long={chosen[0]}, lookback={chosen[1]}"
    fold1 = sharpe.xs(1, level="fold")
    assert selection.loc[0, "rank"] == 1 + (fold1 > fold1[chosen]).sum()


def test_resume_after_an_interruption_redoes_only_the_missing_runs(sample_root, client,
                                                                   tmp_path):
    spec = grid_spec(sample_root, walk_forward=dict(train_months=12, test_months=4, folds=2,
                                                    start="2017-01-01"))
    out = tmp_path / "sweep"
    seen = []

    def interrupt_after_two(row):
        seen.append(row["run_id"])
        if len(seen) == 2:
            raise KeyboardInterrupt  # as a Ctrl-C in the middle of the sweep

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, client=client, progress=False, on_result=interrupt_after_two)
    files = {p.stem: (p.stat().st_mtime_ns, p.read_text()) for p in (out / "runs").glob("*.json")}
    assert set(files) == set(seen)
    assert len(pd.read_parquet(out / "results.parquet")) == 2  # partial results were written

    with pytest.raises(SweepError, match="pass --resume"):
        run_sweep(spec, out, client=client, progress=False)

    resumed = run_sweep(spec, out, client=client, progress=False, resume=True)
    assert (resumed.n_runs, resumed.n_skipped, resumed.n_executed) == (8, 2, 6)
    assert not set(resumed.executed) & set(seen)
    for run_id, (mtime, text) in files.items():  # finished runs were not touched
        path = out / "runs" / f"{run_id}.json"
        assert (path.stat().st_mtime_ns, path.read_text()) == (mtime, text)
    assert len(list((out / "runs").glob("*.json"))) == 8
    assert (resumed.results["status"] == "ok").all() and len(resumed.results) == 8

    again = run_sweep(spec, out, client=client, progress=False, resume=True)
    assert (again.n_executed, again.n_skipped) == (0, 8)
    pd.testing.assert_frame_equal(again.results, resumed.results)


def test_failing_runs_are_recorded_and_the_others_complete(sample_root, client, tmp_path):
    # n_long=0 divides by zero at the first rebalance; "three" is refused by
    # algorithm_params when the module loads
    spec = grid_spec(sample_root, grid=dict(n_long=[0, "three", 3]), walk_forward=None,
                     start="2019-01-02", end="2019-03-29")
    spec.pop("walk_forward")
    out = tmp_path / "sweep"
    result = run_sweep(spec, out, client=client, progress=False)
    r = result.results.set_index("n_long")
    assert list(r["status"]) == ["error", "error", "ok"] and result.n_failed == 2
    assert "ZeroDivisionError" in r.loc["0", "error"]
    assert "in rebalance" in r.loc["0", "traceback"]
    assert "parameter 'n_long' expects int" in r.loc["three", "error"]
    assert "Traceback (most recent call last)" in r.loc["three", "traceback"]
    assert np.isfinite(r.loc["3", "sharpe"]) and r.loc["3", "n_trades"] > 0
    assert len(list((out / "runs").glob("*.json"))) == 3
    assert (out / "results.csv").read_text().count("ZeroDivisionError") >= 1

    # a resume keeps recorded failures; --retry-failed runs them again
    assert run_sweep(spec, out, client=client, progress=False, resume=True).n_executed == 0
    retried = run_sweep(spec, out, client=client, progress=False, resume=True,
                        retry_failed=True)
    assert retried.n_executed == 2 and retried.n_failed == 2


def test_workers_that_cannot_see_the_bundle_fail_before_any_run(client, tmp_path):
    empty = tmp_path / "empty_root"
    empty.mkdir()
    spec = grid_spec(empty)
    with pytest.raises(BundleNotVisibleError) as info:
        run_sweep(spec, tmp_path / "out", client=client, progress=False)
    message = str(info.value)
    assert "2 of 2 worker(s) cannot read bundle 'factorarb-sample'" in message
    assert f"no ingestion of bundle 'factorarb-sample' under {empty}" in message
    assert "zipline ingest -b factorarb-sample" in message
    assert set(info.value.problems) == set(client.scheduler_info()["workers"])
    runs = tmp_path / "out" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # nothing ran

    with pytest.raises(BundleNotVisibleError, match="does not exist on this worker"):
        run_sweep(grid_spec(tmp_path / "missing"), tmp_path / "out2", client=client,
                  progress=False)


def test_dates_outside_the_bundle_are_refused(sample_root, tmp_path):
    spec = grid_spec(sample_root, walk_forward=dict(train_years=3, test_years=1, folds=2,
                                                    start="2020-01-01"))
    with pytest.raises(SpecError, match=r"has data 1990-01-02 \.\. 2022-12-28.*fold 1"):
        run_sweep(spec, tmp_path / "out", serial=True, progress=False)


def test_cli_on_an_existing_scheduler(sample_root, client, tmp_path):
    from click.testing import CliRunner

    from zipline_factorarb.research.cli import sweep

    spec = tmp_path / "spec.toml"
    spec.write_text(
        f'algorithm = "{ALGO}"\nbundle = "factorarb-sample"\nzipline_root = "{sample_root}"\n'
        'start = 2019-01-02\nend = 2019-03-29\nkeep_perf = true\n[grid]\nn_long = [2, 4]\n'
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(sweep, [str(spec), "--out", str(out), "--quiet"],
                                env={"DASK_SCHEDULER_ADDRESS": client.scheduler.address})
    assert result.exit_code == 0, result.output
    assert f"running on Dask scheduler {client.scheduler.address}" in result.output
    assert "2 runs: 2 executed, 0 already done, 0 failed" in result.output
    frame = pd.read_parquet(out / "results.parquet")
    assert set(frame["worker"]) <= set(client.scheduler_info()["workers"])
    perf = pd.read_pickle(out / "perf" / f"{frame['run_id'][0]}.pickle")
    assert perf.index[0].date() == pd.Timestamp("2019-01-02").date()
    assert perf["n_holdings"].max() == 2
    assert (out / "profile_n_long.png").exists()
