"""The ``sweep`` and ``study`` commands (attached to the ``factorarb`` group)."""

from __future__ import annotations

import click


@click.command("sweep")
@click.argument("spec_path", metavar="SPEC", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="results folder (default: the spec's `out`, else sweeps/<spec name>)")
@click.option("--scheduler", default=None, envvar="DASK_SCHEDULER_ADDRESS",
              show_envvar=True,
              help="address tcp://HOST:PORT of a running Dask scheduler; default: a local "
                   "cluster on this machine")
@click.option("--workers", "n_workers", type=click.IntRange(min=1), default=None,
              help="worker processes of the local cluster (default: one per core)")
@click.option("--serial", is_flag=True,
              help="run in this process one after the other, without Dask (debugging)")
@click.option("--resume", is_flag=True,
              help="continue the sweep in the results folder: skip the runs recorded there")
@click.option("--retry-failed", is_flag=True,
              help="with --resume, run the runs recorded as failed again")
@click.option("--overwrite", is_flag=True,
              help="delete the runs recorded in the results folder and start again")
@click.option("--keep-perf/--no-keep-perf", default=None,
              help="keep each run's perf DataFrame as perf/<run_id>.pickle")
@click.option("--zipline-root", type=click.Path(file_okay=False), default=None,
              help="ZIPLINE_ROOT for the workers, the same path on every worker (default: "
                   "the spec's `zipline_root`, else $ZIPLINE_ROOT, else ~/.zipline)")
@click.option("--dry-run", is_flag=True, help="print the folds and the grid; run nothing")
@click.option("--quiet", is_flag=True, help="no progress bar")
def sweep(spec_path, out, scheduler, n_workers, serial, resume, retry_failed, overwrite,
          keep_perf, zipline_root, dry_run, quiet):
    """Run a parameter grid over walk-forward folds, each run a zipline backtest.

    SPEC is a YAML or TOML file naming the algorithm, the bundle, the folds
    (walk_forward: train_years, test_years, folds, start/end) or a single
    start/end, the capital and the grid of parameters, e.g.:

    \b
        algorithm: algorithms/sector_momentum.py
        bundle: factorarb-sample
        walk_forward: {train_years: 3, test_years: 1, folds: 5, start: 2012-01-01}
        grid: {n_long: [3, 5], lookback: [126, 252]}

    Writes results.parquet / results.csv (one row per run), summary and
    fold tables, heatmaps, and runs/<run_id>.json as each run finishes.
    """
    from .errors import SweepError
    from .spec import SweepSpec
    from .sweep import run_sweep

    if serial and scheduler:
        raise click.UsageError("--serial runs without Dask; leave out --scheduler "
                               "(or unset DASK_SCHEDULER_ADDRESS)")
    try:
        spec = SweepSpec.from_file(spec_path)
        if dry_run:
            click.echo(spec.describe())
            return
        click.echo(spec.describe().splitlines()[2], err=True)
        where = "serial (this process)" if serial else (
            f"Dask scheduler {scheduler}" if scheduler else "local Dask cluster")
        click.echo(f"running on {where}", err=True)
        result = run_sweep(spec, out=out, scheduler=scheduler, n_workers=n_workers,
                           serial=serial, resume=resume, retry_failed=retry_failed,
                           overwrite=overwrite, keep_perf=keep_perf, zipline_root=zipline_root,
                           progress=not quiet)
    except SweepError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException(
            "interrupted; the finished runs are recorded: rerun with --resume to do the rest"
        ) from None
    click.echo(str(result))
    failed = result.results[result.results["status"] != "ok"]
    for _, row in failed.iterrows():
        click.echo(f"  failed: run {row['run_id']} fold {row['fold']} "
                   f"{row['params']}: {row['error']}", err=True)
    for name, path in result.files.items():
        click.echo(f"  {name}: {path}")
    if len(result.results) and len(failed) == len(result.results):
        raise SystemExit(1)


@click.group("study")
def study():
    """Reproduce published studies from what their code does."""


@study.command("kalman-etf")
@click.option("--version", "version", type=click.Choice(["original", "newer"]),
              default="original", show_default=True,
              help="original: the seed's table (daily, percentile rule); newer: the study's "
                   "later backtester (weekly, beta neutral)")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="folder holding spdr_sector_etfs_daily.csv.gz (default: "
                   "$FACTORARB_SHARED_DATA, else ../shared/data)")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="write the tables as CSV files into this folder")
@click.option("--walk/--no-walk", default=None,
              help="also the walk from the study to our defaults, the lag table and the "
                   "null model (default: with --version original)")
@click.option("--zipline", "with_zipline", is_flag=True,
              help="also run every fold through zipline (kalman_residual_momentum.py on the "
                   "factorarb-csv bundle; minutes)")
@click.option("--bundle", default="factorarb-csv", show_default=True,
              help="with --zipline: the bundle holding the SPDR ETFs and SPY")
@click.option("--zipline-root", type=click.Path(file_okay=False), default=None,
              help="with --zipline: ZIPLINE_ROOT (default: $ZIPLINE_ROOT, else ~/.zipline)")
def kalman_etf(version, data_dir, out, walk, with_zipline, bundle, zipline_root):
    """The Kalman residual study on the SPDR sector ETFs, reproduced (no zipline).

    Prints the study's table as its code computes it (and, with --zipline,
    the same strategies as zipline backtests), next to the published numbers.
    """
    import os
    from pathlib import Path

    import pandas as pd

    from . import kalman_study as ks

    if data_dir is None:
        env = os.environ.get("FACTORARB_SHARED_DATA")
        data_dir = Path(env) if env else Path("..") / "shared" / "data"
    try:
        returns = ks.load_study_returns(data_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    tables = {f"study_{version}": ks.study_table(returns, version)}
    if walk if walk is not None else version == "original":
        tables["walk"] = ks.walk_table(returns)
        tables["lags"] = ks.lag_table(returns)
        run = ks.run_study(returns, ks.ORIGINAL[0])
        null = ks.null_model(returns, run)
        tables["null_model"] = pd.DataFrame([dict(
            books=null["n_books"], seed=null["seed"],
            switch_probability=null["switch_probability"], mean_sharpe=null["mean"],
            std_sharpe=null["std"], q05=null["quantiles"][0], median=null["quantiles"][1],
            q95=null["quantiles"][2], study_sharpe=run.metrics()["sharpe"],
            study_percentile=null["percentile"])])
    if with_zipline:
        tables[f"zipline_{version}"] = ks.zipline_table(returns, version, bundle=bundle,
                                                         zipline_root=zipline_root)
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.max_colwidth", 70):
        for name, table in tables.items():
            click.echo(f"\n{name}:\n{table.round(4).to_string(index=False)}")
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            table.to_csv(folder / f"{name}.csv", index=False)
            click.echo(f"  {name}: {folder / (name + '.csv')}")
