"""The report refuses bad numbers and writes its folder atomically.

Perf frames here are small generated ones with zipline's perf columns (the
report reads any such frame); the command line is the real `factorarb`.
"""

import json
import os

import empyrical
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from zipline_factorarb.analysis.crisis import MIN_SESSIONS_ANNUALISED
from zipline_factorarb.analysis.perf import (BenchmarkReturnsError, ReturnsError, load_backtest,
                                             read_benchmark_file)
from zipline_factorarb.analysis.report import (ReportOutputError, build_report, check_output,
                                               write_report)
from zipline_factorarb.cli import main


def perf_frame(n=300, seed=0, start="2015-01-02", net=1.0, bench=True):
    """A zipline-like perf frame: one long position (``net`` = 1) or a long and a
    short of equal size (``net`` = 0), daily returns, cumulative benchmark."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range(start, periods=n, tz="UTC") + pd.Timedelta(hours=21)
    returns = rng.normal(0.0004, 0.01, n)
    value = 1e6 * np.cumprod(1 + returns)
    if net == 1.0:
        positions = [[{"sid": "AAA", "amount": v / 100.0, "last_sale_price": 100.0}] for v in value]
    else:
        positions = [[{"sid": "AAA", "amount": v / 200.0, "last_sale_price": 100.0},
                      {"sid": "BBB", "amount": -v / 200.0, "last_sale_price": 100.0}]
                     for v in value]
    frame = pd.DataFrame({"returns": returns, "portfolio_value": value, "positions": positions,
                          "transactions": [[] for _ in range(n)],
                          "ending_cash": np.zeros(n) if net == 1.0 else value}, index=index)
    if bench:
        b = rng.normal(0.0003, 0.009, n)
        b[0] = 0.0
        frame["benchmark_period_return"] = np.cumprod(1 + b) - 1
    return frame


@pytest.fixture
def pickle_path(tmp_path):
    path = tmp_path / "perf.pickle"
    perf_frame().to_pickle(path)
    return path


def bench_csv(tmp_path, perf, values=None, name="bench.csv"):
    days = pd.DatetimeIndex(perf.index).tz_convert(None).normalize()
    if values is None:
        values = np.random.default_rng(1).normal(0.0003, 0.01, len(days))
    path = tmp_path / name
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "return": values}).to_csv(path, index=False)
    return path


# ------------------------------------------------------------ non-finite returns
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_strategy_returns_are_refused(tmp_path, bad):
    perf = perf_frame()
    perf.iloc[37, perf.columns.get_loc("returns")] = bad
    day = perf.index[37].date()
    with pytest.raises(ReturnsError, match=rf"1 non-finite strategy returns .* on {day}"):
        load_backtest(perf)
    path = tmp_path / "p.pickle"
    perf.to_pickle(path)
    result = CliRunner().invoke(main, ["tearsheet", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "non-finite strategy returns" in result.output
    assert not (tmp_path / "o").exists()


def test_duplicated_session_is_refused(tmp_path):
    perf = perf_frame()
    doubled = pd.concat([perf.iloc[:50], perf.iloc[49:]])
    with pytest.raises(ReturnsError, match=rf"duplicated session\(s\) {perf.index[49].date()}"):
        load_backtest(doubled)


# ------------------------------------------------------------ benchmark returns file
def test_benchmark_file_partial_coverage_is_refused(tmp_path, pickle_path):
    perf = pd.read_pickle(pickle_path)
    path = bench_csv(tmp_path, perf)
    full = read_benchmark_file(path)
    build_report(pickle_path, benchmark_returns=path, pyfolio_sheets=False)  # the full file works
    partial = tmp_path / "partial.csv"
    frame = pd.read_csv(path)
    frame.drop(index=range(100, 130)).to_csv(partial, index=False)
    with pytest.raises(BenchmarkReturnsError,
                       match=r"miss 30 of the backtest's 300 sessions \(2015-05-22"):
        build_report(pickle_path, benchmark_returns=partial, pyfolio_sheets=False)
    assert len(full) == 300


@pytest.mark.parametrize("value, message", [
    ("abc", r"line 12 \(2015-01-16\): a value that is not a number 'abc'"),
    ("", r"line 12 \(2015-01-16\): an empty value"),
    ("nan", r"line 12 \(2015-01-16\): a non-finite value 'nan'"),
    ("1.2%", r"a value that is not a number '1.2%'.*without a % sign"),
    ("1,5", r"a value that is not a number '1,5'.*no thousands or decimal commas"),
])
def test_benchmark_file_bad_values_name_the_line(tmp_path, pickle_path, value, message):
    perf = pd.read_pickle(pickle_path)
    values = [f"{v:.6f}" for v in np.random.default_rng(2).normal(0, 0.01, len(perf))]
    values[10] = value
    path = bench_csv(tmp_path, perf, values)
    with pytest.raises(BenchmarkReturnsError, match=message):
        read_benchmark_file(path)
    result = CliRunner().invoke(main, ["tearsheet", str(pickle_path), "--out",
                                       str(tmp_path / "o"), "--benchmark-returns", str(path)])
    assert result.exit_code == 1 and "line 12" in result.output


def test_benchmark_file_in_percent_is_refused_with_a_hint(tmp_path, pickle_path):
    perf = pd.read_pickle(pickle_path)
    fractions = np.random.default_rng(3).normal(0.0004, 0.011, len(perf))
    path = bench_csv(tmp_path, perf, fractions * 100, name="percent.csv")
    with pytest.raises(BenchmarkReturnsError, match=r"look like percentages.*divide the column by 100"):
        read_benchmark_file(path)
    # the same numbers as fractions are taken, and compound as empyrical says
    good = bench_csv(tmp_path, perf, fractions, name="fractions.csv")
    report = build_report(pickle_path, benchmark_returns=good, pyfolio_sheets=False)
    bench_total = report.tables["summary"].loc["benchmark", "total_return"]
    assert bench_total == pytest.approx(empyrical.cum_returns_final(fractions), rel=1e-9)
    # a loss of 100% or more in one day is not a daily return either
    worse = fractions.copy()
    worse[5] = -1.5
    with pytest.raises(BenchmarkReturnsError, match="line 7: -1.5"):
        read_benchmark_file(bench_csv(tmp_path, perf, worse, name="worse.csv"))


def test_benchmark_file_duplicated_date(tmp_path, pickle_path):
    perf = pd.read_pickle(pickle_path)
    path = bench_csv(tmp_path, perf)
    frame = pd.read_csv(path)
    pd.concat([frame.iloc[:20], frame.iloc[19:]]).to_csv(path, index=False)
    with pytest.raises(BenchmarkReturnsError, match="line 22: date 2015-01-29 appears more than once"):
        read_benchmark_file(path)


# ------------------------------------------------------------ too short
def test_short_backtest_is_not_annualised_and_says_so(tmp_path):
    perf = perf_frame(n=5)
    report = build_report(perf, pyfolio_sheets=False)
    strategy = report.tables["summary"].loc["strategy"]
    for column in ("annual_return", "annual_volatility", "sharpe_ratio", "sortino_ratio",
                   "tracking_error", "information_ratio", "alpha"):
        assert np.isnan(strategy[column]), column
    assert strategy["total_return"] == pytest.approx(
        empyrical.cum_returns_final(perf["returns"]), rel=1e-12)
    assert report.short
    assert any("5 sessions" in n and "annualised statistics" in n for n in report.notes)
    write_report(report, tmp_path / "o", formats=("html",))
    html = (tmp_path / "o" / "report.html").read_text()
    assert "short backtest: annualised statistics not computed" in html
    # at the threshold the statistics are there
    long_enough = build_report(perf_frame(n=MIN_SESSIONS_ANNUALISED), pyfolio_sheets=False)
    assert np.isfinite(long_enough.tables["summary"].loc["strategy", "sharpe_ratio"])


# ------------------------------------------------------------ output folder
def test_unknown_format_refused_before_the_work(tmp_path, pickle_path):
    result = CliRunner().invoke(main, ["tearsheet", str(pickle_path), "--out",
                                       str(tmp_path / "o"), "--format", "html,docx"])
    assert result.exit_code == 1
    assert "unknown format(s) ['docx']" in result.output
    assert "[report]" not in result.output  # no phase started
    assert not (tmp_path / "o").exists()


def test_unwritable_out_refused_before_the_work(tmp_path, pickle_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["tearsheet", str(pickle_path), "--out",
                                       str(blocker / "report")])
    assert result.exit_code == 1, result.output
    assert "cannot write the report there" in result.output
    assert "[report]" not in result.output and "Traceback" not in result.output
    if os.geteuid() != 0:  # root writes into read-only folders
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(ReportOutputError, match="cannot write the report there"):
            check_output(locked / "report", ["html"])


def test_folder_with_other_files_is_not_replaced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ReportOutputError, match=r"holds files that are not a report's \(notes.txt\)"):
        check_output(out, ["html"])
    assert (out / "notes.txt").read_text() == "keep me"


def test_report_folder_replaced_atomically(tmp_path, pickle_path):
    out = tmp_path / "report"
    report = build_report(pickle_path, pyfolio_sheets=False)
    write_report(report, out, formats=("html", "png"))
    first = {p.relative_to(out) for p in out.rglob("*")}
    # a stale file from an older report is gone after the next write (no mix)
    (out / "figures" / "stale_figure.png").write_bytes(b"old")
    (out / "tables" / "stale_table.csv").write_text("old")
    report = build_report(pickle_path, pyfolio_sheets=False)
    written = write_report(report, out, formats=("html", "png"))
    assert {p.relative_to(out) for p in out.rglob("*")} == first
    assert all(p.exists() for p in written)
    # a write that fails half-way leaves the previous report whole, and no temporary folder
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    report = build_report(pickle_path, pyfolio_sheets=False)
    from matplotlib.figure import Figure

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    broken = Figure()
    broken.savefig = disk_full  # fails after the tables are written
    report.figures["broken"] = broken
    with pytest.raises(OSError, match="No space left"):
        write_report(report, out, formats=("html", "png"))
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["perf.pickle", "report"]


def test_timings_written(tmp_path, pickle_path):
    result = CliRunner().invoke(main, ["tearsheet", str(pickle_path), "--out", str(tmp_path / "o"),
                                       "--format", "html"])
    assert result.exit_code == 0, result.output
    timings = json.loads((tmp_path / "o" / "timings.json").read_text())
    phases = timings["phases_s"]
    assert {"load backtest and benchmark", "tables", "figures", "pyfolio tear sheets",
            "write"} <= set(phases)
    assert timings["total_s"] == pytest.approx(sum(phases.values()), abs=0.01)
    # the phases were announced on stderr as they ran
    assert "[report] pyfolio tear sheets ..." in result.stderr
    assert "report phases:" in result.stderr


# ------------------------------------------------------------ benchmark choice
def test_cash_benchmark(pickle_path):
    report = build_report(pickle_path, benchmark="cash", pyfolio_sheets=False)
    summary = report.tables["summary"]
    r = pd.read_pickle(pickle_path)["returns"]
    assert summary.loc["benchmark", "total_return"] == 0.0
    assert summary.loc["strategy", "tracking_error"] == pytest.approx(
        empyrical.annual_volatility(r), rel=1e-12)
    assert summary.loc["strategy", "information_ratio"] == pytest.approx(
        empyrical.sharpe_ratio(r), rel=1e-12)
    assert report.benchmark.startswith("cash")


def test_dollar_neutral_book_gets_cash_automatically(tmp_path):
    path = tmp_path / "neutral.pickle"
    perf_frame(net=0.0).to_pickle(path)
    report = build_report(path, pyfolio_sheets=False)
    assert report.benchmark.startswith("cash (zero returns): the book is dollar-neutral")
    assert any("dollar-neutral" in n for n in report.notes)
    assert report.tables["summary"].loc["benchmark", "total_return"] == 0.0
    # a long book keeps the perf frame's benchmark
    long_book = build_report(perf_frame(net=1.0), pyfolio_sheets=False)
    assert "perf frame's benchmark" in long_book.benchmark
    assert long_book.tables["summary"].loc["benchmark", "total_return"] != 0.0


def test_a_benchmark_given_replaces_a_broken_perf_frame_benchmark(tmp_path):
    """The perf frame's benchmark is read only when no benchmark is given: a frame
    whose benchmark_period_return has a hole is refused on its own, and reported
    against cash or a returns file without complaint."""
    perf = perf_frame()
    perf.iloc[10, perf.columns.get_loc("benchmark_period_return")] = np.nan
    path = tmp_path / "perf.pickle"
    perf.to_pickle(path)
    with pytest.raises(ReturnsError, match="benchmark_period_return"):
        build_report(path, pyfolio_sheets=False)
    cash = build_report(path, benchmark="cash", pyfolio_sheets=False)
    assert cash.tables["summary"].loc["benchmark", "total_return"] == 0.0
    values = np.random.default_rng(3).normal(0.0003, 0.01, len(perf))
    file = bench_csv(tmp_path, perf, values)
    given = build_report(path, benchmark_returns=file, pyfolio_sheets=False)
    clean = build_report(perf_frame(), benchmark_returns=file, pyfolio_sheets=False)
    pd.testing.assert_frame_equal(given.tables["summary"], clean.tables["summary"])
    assert given.tables["summary"].loc["benchmark", "total_return"] != 0.0
