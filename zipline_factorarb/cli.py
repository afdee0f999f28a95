"""The ``factorarb`` command.

Sub-commands:

- ``factorarb install-extension``: make ``$ZIPLINE_ROOT/extension.py`` load
  our bundles (idempotent; keeps the user's own code in that file);
- ``factorarb uninstall-extension``: take our lines out again;
- ``factorarb bundles``: our bundles and their ingestions;
- ``factorarb demo``: the main job: ingest the sample if needed, run the
  main algorithm on it with ``zipline run`` and write its crisis report;
- ``factorarb tearsheet PERF.pickle --out DIR``: the crisis report of any
  zipline perf pickle;
- ``factorarb evaluate-factor FACTOR ...``: factor evaluation through alphalens;
- ``factorarb sweep SPEC``: parameter grids and walk-forward folds on Dask;
- ``factorarb study kalman-etf``: the Kalman study's tables reproduced from its code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from .data.register import load_user_extensions

BEGIN = "# >>> zipline-factorarb >>>"
END = "# <<< zipline-factorarb <<<"
BLOCK = (
    f"{BEGIN}\n"
    "# Added by `factorarb install-extension`; remove with `factorarb uninstall-extension`.\n"
    "import zipline_factorarb.extension  # registers factorarb-sample and factorarb-csv\n"
    f"{END}\n"
)

DEMO_ALGORITHM = "algorithms/benchmark_relative.py"
# the sample's factor ETFs start on 2014-01-02: the risk model's 252-session
# window is full from 2015-01
DEMO_START = "2015-02-02"
DEMO_END = "2022-12-28"


def _zipline_root(root=None):
    if root:
        return Path(root).expanduser()
    from zipline.utils.paths import zipline_root

    return Path(zipline_root())


#: Bundles zipline registers itself; `factorarb bundles` lists them once ingested.
ZIPLINE_BUILT_IN_BUNDLES = ("quandl", "quantopian-quandl", "csvdir")


def extension_option(f):
    """``-e/--extension FILE``, as zipline's own flag (repeatable)."""
    return click.option(
        "-e", "--extension", "extensions", multiple=True,
        help="zipline extension registering bundles: a .py file or a module (repeatable); "
             "$ZIPLINE_ROOT/extension.py is loaded first when it exists, as `zipline run` "
             "does")(f)


ZIPLINE_ROOT_OPTION = click.option(
    "--zipline-root", type=click.Path(file_okay=False), default=None,
    help="zipline's root folder (default: $ZIPLINE_ROOT or ~/.zipline).")


@click.group()
@click.version_option(package_name="zipline-factorarb")
def main():
    """zipline-factorarb: factor-residual stat-arb tools for zipline."""


@main.command("install-extension")
@ZIPLINE_ROOT_OPTION
def install_extension(zipline_root):
    """Make plain `zipline` load the factorarb bundles.

    Appends a marked block to $ZIPLINE_ROOT/extension.py (creating it if
    needed). Running it again changes nothing; existing code in the file is
    kept as it is.
    """
    root = _zipline_root(zipline_root)
    path = root / "extension.py"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text:
        click.echo(f"already installed: {path} loads the factorarb bundles; nothing changed")
        return
    root.mkdir(parents=True, exist_ok=True)
    if text and not text.endswith("\n"):
        text += "\n"
    sep = "\n" if text else ""
    path.write_text(text + sep + BLOCK)
    action = "appended to" if text else "created"
    click.echo(f"{action} {path}: `zipline ingest -b factorarb-sample` and "
               "`zipline run -b factorarb-sample` now find our bundles")


@main.command("uninstall-extension")
@ZIPLINE_ROOT_OPTION
def uninstall_extension(zipline_root):
    """Remove the block that install-extension added (nothing else)."""
    path = _zipline_root(zipline_root) / "extension.py"
    text = path.read_text() if path.exists() else ""
    if BEGIN not in text:
        click.echo(f"not installed in {path}; nothing changed")
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text((head.rstrip("\n") + "\n" if head.strip() else "") + tail.lstrip("\n"))
    click.echo(f"removed the factorarb block from {path}")


def _ingestions(name, environ=None):
    from zipline.data.bundles.core import ingestions_for_bundle

    try:
        return ingestions_for_bundle(name, environ=environ)
    except OSError:
        return []


@main.command("bundles")
@extension_option
def list_bundles(extensions):
    """List the registered bundles and their ingestions.

    The factorarb bundles, and every bundle registered by
    $ZIPLINE_ROOT/extension.py or -e (zipline's built-in bundles only when
    ingested).
    """
    from zipline.data.bundles import bundles as registry
    from zipline.data.bundles.core import to_bundle_ingest_dirname
    from zipline.utils.paths import data_path

    from .data.register import REGISTERED
    from .data.writer import SUMMARY_FILE

    load_user_extensions(extensions)
    listed = dict(REGISTERED)
    for name in sorted(registry):
        if name not in listed and (name not in ZIPLINE_BUILT_IN_BUNDLES or _ingestions(name)):
            listed[name] = f"registered by an extension (calendar {registry[name].calendar_name})"
    for name, description in listed.items():
        click.echo(f"{name}: {description}")
        stamps = _ingestions(name)
        if not stamps:
            click.echo("  not ingested yet: zipline ingest -b " + name)
        for stamp in stamps:
            folder = Path(data_path([name, to_bundle_ingest_dirname(stamp)]))
            info = ""
            summary = folder / SUMMARY_FILE
            if summary.exists():
                s = json.loads(summary.read_text())
                info = f"  {s['n_symbols']} symbols, {s['first_date']} .. {s['last_date']}"
            click.echo(f"  {stamp}{info}")


def ensure_sample_ingested(show_progress=True):
    """Ingest ``factorarb-sample`` unless an ingestion already exists."""
    from zipline.data.bundles import ingest

    from .data.register import SAMPLE_BUNDLE, register_bundles

    register_bundles()
    if _ingestions(SAMPLE_BUNDLE):
        return False
    ingest(SAMPLE_BUNDLE, show_progress=show_progress)
    return True


def _default_algorithm(name):
    here = Path(__file__).resolve().parent.parent / name
    return here if here.exists() else Path(name)


@main.command("demo")
@click.option("--algorithm", "algorithm", type=click.Path(dir_okay=False), default=None,
              help=f"algorithm file (default {DEMO_ALGORITHM})")
@click.option("--start", default=DEMO_START, show_default=True)
@click.option("--end", default=DEMO_END, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results",
              show_default=True, help="folder for the results")
@click.option("--report/--no-report", default=True, show_default=True,
              help="write the crisis report after the run")
@click.option("--bundle", default="factorarb-sample", show_default=True,
              help="bundle to run on; another than the sample must be ingested already "
                   "(zipline ingest -b NAME) and usually needs --start/--end")
@extension_option
def demo(algorithm, start, end, out_dir, report, bundle, extensions):
    """Run the main algorithm on the embedded sample and write its results."""
    root = _zipline_root()
    click.echo(f"ZIPLINE_ROOT: {root}")
    load_user_extensions(extensions)
    if bundle != "factorarb-sample":
        from zipline.data.bundles import bundles as registry

        if bundle not in registry:
            raise click.ClickException(
                f"no bundle registered with the name {bundle!r}: register it in "
                f"{root / 'extension.py'} or pass the file that does with -e")
        if not _ingestions(bundle):
            raise click.ClickException(f"bundle {bundle!r} is not ingested: "
                                       f"zipline ingest -b {bundle}")
    elif ensure_sample_ingested():
        click.echo("ingested factorarb-sample")
    else:
        click.echo("factorarb-sample already ingested")
    algo = Path(algorithm) if algorithm else _default_algorithm(DEMO_ALGORITHM)
    if not algo.exists():
        raise click.ClickException(f"algorithm file not found: {algo}")
    out = Path(out_dir) / algo.stem
    out.mkdir(parents=True, exist_ok=True)
    pickle = out / "perf.pickle"
    ext_args = [a for e in ("zipline_factorarb.extension", *extensions) for a in ("-e", e)]
    cmd = [sys.executable, "-m", "zipline", *ext_args, "run",
           "-f", str(algo), "-b", bundle, "-s", start, "-e", end, "-o", str(pickle)]
    click.echo("running: zipline " + " ".join(cmd[3:]))
    result = subprocess.run(cmd, env=dict(os.environ))
    if result.returncode != 0:
        raise click.ClickException(f"zipline run failed with exit code {result.returncode}")
    click.echo(_summarise(pickle))
    click.echo(f"results: {pickle.resolve()}")
    if report:
        sample = bundle == "factorarb-sample"
        from .analysis.perf import is_dollar_neutral, load_backtest

        # a dollar-neutral book is compared with cash (build_report's default for it)
        neutral = is_dollar_neutral(load_backtest(pickle))
        written = _write_report(pickle, out / "report", bundle=bundle,
                                benchmark="SP500" if sample and not neutral else None,
                                benchmark_returns=None, periods=None,
                                periods_mode="extend", formats=("html", "png"))
        click.echo(f"report: {[p for p in written if p.name == 'report.html'][0].resolve()}")


def _write_report(pickle, out_dir, **kwargs):
    """Check the output folder and formats, build the report (phases and their
    times on stderr), then write it atomically."""
    from .analysis.progress import Phases
    from .analysis.report import build_report, check_output, write_report

    formats = check_output(out_dir, kwargs.pop("formats"))
    phases = Phases("report")
    report = build_report(pickle, progress=phases, **kwargs)
    for note in report.notes:
        click.echo(f"note: {note}")
    written = write_report(report, out_dir, formats=formats, progress=phases)
    click.echo("report phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.timings.items())
               + f"; total {phases.total:.1f} s", err=True)
    return written


@main.command("tearsheet")
@click.argument("perf_pickle", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="folder for the report")
@click.option("--bundle", default=None,
              help="bundle the backtest ran on: enables --benchmark SYMBOL, sector weights and "
                   "risk contributions estimated from the positions")
@click.option("--benchmark", default=None,
              help="benchmark symbol in --bundle, or 'cash' (zero returns); default: the perf "
                   "frame's benchmark, or cash for a dollar-neutral book")
@click.option("--benchmark-returns", type=click.Path(dir_okay=False), default=None,
              help="CSV date,return of daily benchmark returns, as fractions (0.012 for 1.2%)")
@click.option("--periods", type=click.Path(dir_okay=False), default=None,
              help="crisis windows file (CSV name,start,end or JSON/YAML name: [start, end])")
@click.option("--replace-periods", is_flag=True,
              help="use only the windows of --periods instead of adding them to the defaults")
@click.option("--format", "formats", default="html,png", show_default=True,
              help="comma-separated: html, pdf, png")
@extension_option
def tearsheet(perf_pickle, out_dir, bundle, benchmark, benchmark_returns, periods,
              replace_periods, formats, extensions):
    """Crisis report (tear sheets, crisis and risk tables) of a zipline perf pickle."""
    from .analysis.perf import PerfFileError
    from .analysis.periods import PeriodsError
    from .analysis.report import check_output

    try:  # before any work: a bad --format or an unwritable --out fails at once
        check_output(out_dir, formats.split(","))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if benchmark and benchmark_returns:
        raise click.UsageError("give --benchmark or --benchmark-returns, not both")
    if bundle:
        load_user_extensions(extensions)
    try:
        written = _write_report(perf_pickle, out_dir, bundle=bundle, benchmark=benchmark,
                                benchmark_returns=benchmark_returns, periods=periods,
                                periods_mode="replace" if replace_periods else "extend",
                                formats=tuple(formats.split(",")))
    except (PerfFileError, PeriodsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {len(written)} files to {Path(out_dir).resolve()}")
    html = [p for p in written if p.name == "report.html"]
    if html:
        click.echo(f"report: {html[0].resolve()}")


def _summarise(pickle):
    import pandas as pd

    from .analysis.perf import benchmark_returns_of
    from .kernels.performance import sharpe_ratio

    perf = pd.read_pickle(pickle)
    lines = [f"{len(perf)} sessions {perf.index[0].date()} .. {perf.index[-1].date()}",
             f"total return {perf['algorithm_period_return'].iloc[-1]:+.2%}, "
             f"Sharpe {sharpe_ratio(perf['returns']):.2f}"]
    bench = benchmark_returns_of(perf)
    if bench is not None:  # the first session has no benchmark return of its own
        lines.append(f"benchmark total return {perf['benchmark_period_return'].iloc[-1]:+.2%}, "
                     f"Sharpe {sharpe_ratio(bench.iloc[1:]):.2f}")
    from .records import EX_ANTE_TEV, EXPECTED_COST, REALISED_COST

    if EX_ANTE_TEV in perf:
        lines.append(f"ex-ante tracking error: mean {perf[EX_ANTE_TEV].mean():.2%}, "
                     f"max {perf[EX_ANTE_TEV].max():.2%}")
    if EXPECTED_COST in perf and REALISED_COST in perf:
        lines.append(f"costs (sum over sessions, fraction of the portfolio): expected by the "
                     f"optimizer {perf[EXPECTED_COST].sum():.2%}, charged by zipline "
                     f"{perf[REALISED_COST].sum():.2%}")
    return "\n".join(lines)


@main.command("evaluate-factor")
@click.argument("factor")
@click.option("--bundle", default="factorarb-sample", show_default=True)
@click.option("--start", required=True)
@click.option("--end", required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@click.option("--horizons", default="1,5,21", show_default=True,
              help="alphalens periods: forward returns from the close of D to the close of D+h")
@click.option("--lags", default="0-5", show_default=True,
              help="IC-by-lag lags: a comma list and/or ranges (0,1,3 or 0-10); lag k is the "
                   "return from close D-2+k to close D-1+k for the pipeline value of session D")
@click.option("--nw-lags", type=int, default=None,
              help="Newey-West lags of nw_t_stat [default: floor(4 (days/100)^(2/9))]")
@click.option("--quantiles", default=5, show_default=True, type=int,
              help="equal-count factor quantiles per day (at least 2)")
@click.option("--universe", default="all", show_default=True,
              help="assets evaluated: all (stocks and ETFs), stocks, etfs, or "
                   "package.module:callable returning a pipeline Filter")
@click.option("--sign", type=click.Choice(["+1", "1", "-1"]), default="+1", show_default=True,
              help="multiply the factor by this sign (-1 for a factor traded against its sign)")
@click.option("--group-neutral", is_flag=True,
              help="demean returns within each sector and day (alphalens' group-neutral "
                   "analysis) for every table and the IC by lag")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="factor parameter (repeatable); values are read as JSON when they parse; "
                   "unknown names are refused")
@extension_option
@click.option("--no-figures", is_flag=True,
              help="tables only: skip alphalens' tear sheets and the IC-by-lag chart")
@click.option("--quiet", is_flag=True, help="no progress on stderr")
def evaluate_factor_cmd(factor, bundle, start, end, out_dir, horizons, lags, nw_lags, quantiles,
                        universe, sign, group_neutral, params, extensions, no_figures, quiet):
    """Factor evaluation of FACTOR (momentum, wls_residual, kalman_innovation,
    sscore, or package.module:callable) through alphalens-reloaded.

    Writes alphalens' tables (ic.csv, ic_summary.csv, ic_by_group.csv,
    quantile_returns.csv, factor_returns.csv, alpha_beta.csv,
    quantile_turnover.csv, rank_autocorrelation.csv, ...) and tear sheets
    (*_tear_sheet*.png), plus ic_by_lag.csv / ic_lag.csv / ic_by_lag.png
    (one-session returns by lag; lag 0 ends at the close of D-1, the last
    close the factor saw). A daily zipline backtest orders on D and is filled
    at the close of D+1: the first lag it earns is 3. Phases and their times
    go to stderr.
    """
    from .analysis.factor_eval import (check_options, evaluate_factor, format_ic_by_lag,
                                       write_evaluation)
    from .analysis.progress import Phases
    from .research.errors import ParameterError

    def refuse(exc):
        hint = {"quantiles": "--quantiles", "horizons": "--horizons", "lags": "--lags",
                "nw_lags": "--nw-lags", "universe": "--universe", "start": "--start",
                "end": "--end"}.get(getattr(exc, "param", None), "--param")
        return click.BadParameter(str(exc), param_hint=hint)

    parsed = {}
    for item in params:
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--param")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise click.BadParameter(f"{item!r}: the name is empty", param_hint="--param")
        if key in parsed:
            raise click.BadParameter(f"{key!r} is given twice", param_hint="--param")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    lag_list = _parse_lags(lags)
    hs = []
    for part in horizons.split(","):
        try:
            hs.append(int(part))
        except ValueError:
            raise click.BadParameter(f"{part.strip()!r} in {horizons!r}: use integers such as "
                                     "1,5,21", param_hint="--horizons") from None
    try:  # every option checked before anything runs
        check_options(hs, quantiles, lag_list, nw_lags, int(sign))
    except ParameterError as exc:
        raise refuse(exc) from None
    progress = Phases("evaluate-factor", stream=None if quiet else "stderr")
    load_user_extensions(extensions)
    try:
        evaluation = evaluate_factor(factor, bundle, start, end, horizons=hs, quantiles=quantiles,
                                     params=parsed, lags=lag_list, nw_lags=nw_lags,
                                     universe=universe, sign=int(sign),
                                     group_neutral=group_neutral, figures=not no_figures,
                                     progress=progress)
    except ParameterError as exc:
        raise refuse(exc) from None
    except (ValueError, LookupError) as exc:
        raise click.ClickException(str(exc)) from None
    with progress("writing tables and figures"):
        written = write_evaluation(evaluation, out_dir)
    if not quiet:
        click.echo(f"[evaluate-factor] total {progress.total:.1f} s", err=True)
    click.echo(f"alphalens kept {len(evaluation.factor_data)} factor values; "
               f"{evaluation.dropped:.1%} left out (infinite, no forward return or not binned)")
    click.echo(evaluation.tables["ic_summary"].to_string())
    click.echo("")
    click.echo("IC by lag")
    click.echo(format_ic_by_lag(evaluation.tables["ic_by_lag"]))
    click.echo(f"wrote {len(written)} files to {Path(out_dir).resolve()}")


def _parse_lags(text):
    """'0-5' / '0,1,3' / '0-2,5' -> sorted distinct non-negative ints."""
    lags = set()
    for part in (p.strip() for p in str(text).split(",")):
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                lags.update(range(lo, hi + 1))
            elif part:
                lags.add(int(part))
        except ValueError:
            raise click.BadParameter(f"{part!r}: use non-negative integers and ranges such as "
                                     "0-5 or 0,1,3", param_hint="--lags") from None
    if not lags:
        raise click.BadParameter("no lag given", param_hint="--lags")
    return tuple(sorted(lags))


def _attach_research_commands():
    from .research.cli import study, sweep

    main.add_command(sweep)
    main.add_command(study)


_attach_research_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
