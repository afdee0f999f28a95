"""Crisis report on a real backtest (2005-2022, spanning 2008 and 2020)."""

import pickle
import shutil
import subprocess

import empyrical
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from zipline_factorarb.analysis.perf import PerfFileError, load_backtest
from zipline_factorarb.analysis.periods import PeriodsError, load_periods
from zipline_factorarb.analysis.report import build_report, write_report
from zipline_factorarb.cli import main


@pytest.fixture(scope="module")
def report(sample_perf, sample_root, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("ZIPLINE_ROOT", str(sample_root))
    try:
        rep = build_report(sample_perf, bundle="factorarb-sample", benchmark="SP500")
        out = tmp_path_factory.mktemp("report")
        tables = {k: v.copy() for k, v in rep.tables.items()}
        written = write_report(rep, out, formats=("html", "png", "pdf"))
    finally:
        mp.undo()
    return rep, tables, out, written


def _index_returns():
    from skfolio.datasets import load_sp500_index

    return load_sp500_index().iloc[:, 0].pct_change()


def test_crisis_table_matches_empyrical(report, sample_perf):
    _, tables, _, _ = report
    crisis = tables["crisis"].set_index("period")
    assert {"GFC 2007-2009", "Lehman 2008", "COVID crash 2020", "Rate shock 2022"} <= set(crisis.index)
    assert "LTCM 1998" not in crisis.index  # before the backtest
    perf = pd.read_pickle(sample_perf)
    r = perf["returns"]
    r.index = r.index.tz_convert(None).normalize()
    b = _index_returns().reindex(r.index)
    b.iloc[0] = 0.0  # the first session has no benchmark return in zipline
    for name in ("GFC 2007-2009", "Lehman 2008", "COVID crash 2020", "Q4 2018"):
        row = crisis.loc[name]
        rw = r.loc[str(row["start"]):str(row["end"])]
        bw = b.loc[str(row["start"]):str(row["end"])]
        assert row["sessions"] == len(rw)
        assert row["return"] == pytest.approx(empyrical.cum_returns_final(rw), rel=1e-9)
        assert row["benchmark_return"] == pytest.approx(empyrical.cum_returns_final(bw), rel=1e-4)
        assert row["active_return"] == pytest.approx(row["return"] - row["benchmark_return"])
        assert row["volatility"] == pytest.approx(empyrical.annual_volatility(rw), rel=1e-9)
        assert row["max_drawdown"] == pytest.approx(empyrical.max_drawdown(rw), rel=1e-9)
        assert row["benchmark_max_drawdown"] == pytest.approx(empyrical.max_drawdown(bw), rel=1e-3)
        assert row["tracking_error"] == pytest.approx(empyrical.annual_volatility(rw - bw), rel=1e-3)
        assert row["information_ratio"] == pytest.approx(
            empyrical.excess_sharpe(rw, bw) * np.sqrt(252), rel=1e-3)
        assert row["worst_day"] == pytest.approx(rw.min())
    # days to recover after the COVID crash, counted directly on the wealth curve
    wealth = (1 + r).cumprod()
    start = r.index.get_loc(pd.Timestamp("2020-02-19"))
    peak = max(1.0, wealth.iloc[:start].max())
    recovered = np.flatnonzero(wealth.iloc[start:].to_numpy() >= peak)
    first_below = np.flatnonzero(wealth.iloc[start:].to_numpy() < peak)[0]
    expected = recovered[recovered > first_below][0] + 1
    assert crisis.loc["COVID crash 2020", "days_to_recover"] == expected


def test_summary_table_matches_empyrical(report, sample_perf):
    _, tables, _, _ = report
    summary = tables["summary"]
    perf = pd.read_pickle(sample_perf)
    r = perf["returns"]
    assert summary.loc["strategy", "sharpe_ratio"] == pytest.approx(empyrical.sharpe_ratio(r), rel=1e-9)
    assert summary.loc["strategy", "annual_return"] == pytest.approx(empyrical.annual_return(r), rel=1e-9)
    assert summary.loc["strategy", "max_drawdown"] == pytest.approx(empyrical.max_drawdown(r), rel=1e-9)
    b = _index_returns().reindex(r.index.tz_convert(None).normalize()).fillna(0.0).to_numpy()
    assert summary.loc["strategy", "tracking_error"] == pytest.approx(
        empyrical.annual_volatility(r.to_numpy() - b), rel=1e-3)
    assert summary.loc["benchmark", "sharpe_ratio"] == pytest.approx(empyrical.sharpe_ratio(b), rel=1e-3)
    strategy = summary.loc["strategy"]
    assert strategy["total_return"] == pytest.approx(empyrical.cum_returns_final(r), rel=1e-9)
    assert strategy["annual_volatility"] == pytest.approx(empyrical.annual_volatility(r), rel=1e-9)
    assert strategy["information_ratio"] == pytest.approx(
        empyrical.excess_sharpe(r.to_numpy(), b) * np.sqrt(252), rel=1e-3)
    bench = summary.loc["benchmark"]
    for column, fn in (("annual_return", empyrical.annual_return),
                       ("total_return", empyrical.cum_returns_final),
                       ("annual_volatility", empyrical.annual_volatility),
                       ("max_drawdown", empyrical.max_drawdown)):
        assert bench[column] == pytest.approx(fn(b), rel=1e-3), column
    assert summary.loc["strategy", "average_holdings"] == pytest.approx(5.0, abs=0.05)


def test_risk_contributions(report, sample_perf, sample_root, monkeypatch):
    _, tables, _, _ = report
    shares = tables["risk_shares"]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-10)
    assert "Benchmark" in shares.columns and "Energy" in shares.columns
    # one date recomputed directly: active weights, sample covariance, w'Sw
    from zipline_factorarb.analysis.bundle_data import adjusted_returns, sectors_of

    monkeypatch.setenv("ZIPLINE_ROOT", str(sample_root))
    bt = load_backtest(sample_perf)
    weights = bt.weights
    weights.index = weights.index.tz_convert(None)
    day = shares.index[len(shares) // 2]
    w = weights.loc[day]
    w = w[w.abs() > 1e-8]
    active = w.copy()
    active["SP500"] = -1.0
    rets = adjusted_returns("factorarb-sample", list(active.index), day - pd.Timedelta(days=300), day)
    cov = rets.loc[:day].iloc[-126:].fillna(0.0).cov().to_numpy()
    a = active.to_numpy()
    variance = a @ cov @ a
    sectors = sectors_of("factorarb-sample", list(w.index))
    energy = [i for i, s in enumerate(active.index) if s != "SP500" and sectors[s] == 10]
    direct_energy = sum(a[i] * (cov @ a)[i] for i in energy) / variance
    assert shares.loc[day, "Energy"] == pytest.approx(direct_energy, abs=1e-10)
    tev = tables["ex_ante_tev"]["ex_ante_tev"].loc[day]
    assert tev == pytest.approx(np.sqrt(variance * 252), rel=1e-10)
    around = tables["risk_shares_around_crises"]
    assert set(around["phase"]) == {"before", "during", "after"}
    # shares are estimated every fifth session; "before" is still the 63
    # sessions before the window, counted on the backtest's daily index
    sessions = tables["diversification"].index
    lehman = around[(around["period"] == "Lehman 2008")].set_index("phase")
    start = pd.Timestamp("2008-09-15")
    first = sessions.searchsorted(start)
    window = shares[(shares.index >= sessions[first - 63]) & (shares.index < start)]
    assert 12 <= len(window) <= 14
    assert lehman.loc["before", "Energy"] == pytest.approx(window["Energy"].mean(), abs=1e-12)


def test_around_crises_pads_by_sessions():
    from zipline_factorarb.analysis.risk import around_crises

    sessions = pd.bdate_range("2020-01-01", periods=400)
    sparse = pd.DataFrame({"x": np.arange(0, 400, 5, dtype=float)}, index=sessions[::5])
    periods = {"crash": (sessions[200], sessions[219])}
    table = around_crises(sparse, periods, pad=20, sessions=sessions).set_index("phase")
    # rows at sessions 180..195 before, 200..215 during, 220..235 after (every fifth)
    assert table.loc["before", "x"] == pytest.approx(np.mean([180, 185, 190, 195]))
    assert table.loc["during", "x"] == pytest.approx(np.mean([200, 205, 210, 215]))
    assert table.loc["after", "x"] == pytest.approx(np.mean([220, 225, 230, 235]))
    # without the daily index a sparse frame's pad counts rows (100 sessions here)
    rows = around_crises(sparse, periods, pad=20).set_index("phase")
    assert rows.loc["before", "x"] == pytest.approx(np.mean(np.arange(100, 200, 5)))


def test_tear_sheets_never_display_or_show(sample_perf, monkeypatch):
    import matplotlib.pyplot as plt
    import pyfolio.tears
    import pyfolio.utils

    from zipline_factorarb.analysis.tearsheet import tear_sheet_figures

    calls = []
    for module in (pyfolio.utils, pyfolio.tears):
        monkeypatch.setattr(module, "display", lambda *a, **k: calls.append("display"),
                            raising=False)
    monkeypatch.setattr(plt, "show", lambda *a, **k: calls.append("show"))
    bt = load_backtest(sample_perf)
    sheets, _ = tear_sheet_figures(bt)
    assert sheets and calls == []
    # and the patch was scoped: pyfolio's own display is back afterwards
    pyfolio.utils.display("x")
    assert calls == ["display"]


def test_files_written_and_figures_not_blank(report):
    from matplotlib.image import imread

    rep, _, out, written = report
    names = {p.name for p in written}
    assert {"report.html", "report.pdf", "crisis.csv", "summary.csv", "risk_shares.csv"} <= names
    for must in ("pyfolio_returns", "pyfolio_positions", "pyfolio_interesting_times",
                 "wealth_and_crises", "risk_shares", "diversification"):
        image = imread(out / "figures" / f"{must}.png")
        assert image.shape[0] > 100 and image[..., :3].std() > 0.01, must
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list((out / "figures").glob("*.png")))
    assert "class='findings'" in html and "COVID crash 2020" in html
    crisis_csv = pd.read_csv(out / "tables" / "crisis.csv")
    assert "information_ratio" in crisis_csv.columns


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args, profile):
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1280,900", *args],
        capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package "
                    "'chromium'; .ci/run installs it)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    """Every image loads; the first screen (1280 x 900) holds the summary and the
    wealth chart; nothing overflows the page horizontally."""
    _, _, out, _ = report
    html = (out / "report.html").read_text()
    probe = ("<script>window.addEventListener('load', function(){var imgs=document.images,ok=0;"
             "for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;}"
             "var b=document.body;b.setAttribute('data-loaded', ok+'/'+imgs.length);"
             "function box(id){var r=document.getElementById(id).getBoundingClientRect();"
             "return [r.left,r.top,r.right,r.bottom].map(Math.round).join(',');}"
             "b.setAttribute('data-summary', box('summary'));"
             "b.setAttribute('data-wealth', box('fig-wealth_and_crises'));"
             "b.setAttribute('data-width', document.documentElement.scrollWidth+'/'+window.innerWidth);"
             "});</script>")
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe + "</body>"))
    result = _chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
                       profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    n = html.count("<img ")
    assert f'data-loaded="{n}/{n}"' in dom
    assert n >= 8

    def attr(name):
        import re

        return [int(v) for v in re.search(rf'{name}="([^"]+)"', dom).group(1).replace("/", ",")
                .split(",")]

    summary, wealth = attr("data-summary"), attr("data-wealth")
    assert 0 <= summary[1] < summary[3] <= 900, summary
    assert summary[3] <= wealth[1] < wealth[3] <= 900, wealth  # below the summary, whole on screen
    assert wealth[2] - wealth[0] >= 500  # a chart, not a thumbnail
    scroll, inner = attr("data-width")
    assert scroll <= inner, "the page overflows horizontally"
    # and a screenshot of that first screen: its size, and not blank
    from matplotlib.image import imread

    shot = tmp_path / "first_screen.png"
    result = _chromium("--virtual-time-budget=5000", f"--screenshot={shot}",
                       (out / "report.html").as_uri(), profile=tmp_path / "profile2")
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    image = imread(shot)
    assert image.shape[:2] == (900, 1280)
    assert image[..., :3].std() > 0.05


def test_layout_and_findings_count_crises_only(report):
    rep, tables, out, _ = report
    crisis = tables["crisis"]
    regimes = set(crisis.loc[~crisis["crisis"], "period"])
    assert {"Low Volatility Bull Market (pyfolio)", "Recovery (pyfolio)", "New Normal (pyfolio)",
            "Covid (pyfolio)"} <= regimes
    assert "GFC 2007-2009" not in regimes and "Lehman (pyfolio)" not in regimes
    n_crises = int(crisis["crisis"].sum())
    counted = crisis[crisis["crisis"]]
    wins = int((counted["active_return"] > 0).sum())
    assert rep.findings[0].startswith(f"Beat the benchmark in {wins} of {n_crises} crisis windows;"
                                      f" mean active return {counted['active_return'].mean():+.2%}")
    html = (out / "report.html").read_text()
    # the summary comes first, as percentages with a sign colour
    summary = tables["summary"]
    total = summary.loc["strategy", "total_return"]
    cls = "pos" if total > 0 else "neg"
    assert f'<span class="{cls}">{total * 100:.3g}%</span>' in html
    assert html.index('id="summary"') < html.index('id="fig-wealth_and_crises"') < html.index(
        "<h2>Tables</h2>") < html.index("<h2>pyfolio tear sheets</h2>")
    # every crisis window is numbered in the legend under the wealth chart
    for name in counted["period"]:
        assert name in html[html.index('class="legend"'):html.index("<h2>")]


# ---------------------------------------------------------------- bad input
def test_not_a_perf_pickle(tmp_path):
    path = tmp_path / "x.pickle"
    path.write_bytes(pickle.dumps({"returns": [0.1]}))
    with pytest.raises(PerfFileError, match="holds a dict, not zipline's perf DataFrame"):
        load_backtest(path)
    pd.DataFrame({"returns": [0.1]}).to_pickle(path)
    with pytest.raises(PerfFileError, match=r"missing column\(s\) \['portfolio_value', 'positions'"):
        load_backtest(path)
    text = tmp_path / "x.txt"
    text.write_text("hello")
    result = CliRunner().invoke(main, ["tearsheet", str(text), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "not a pickle written by `zipline run -o`" in result.output


def test_empty_backtest(sample_perf, tmp_path):
    path = tmp_path / "empty.pickle"
    pd.read_pickle(sample_perf).iloc[:0].to_pickle(path)
    result = CliRunner().invoke(main, ["tearsheet", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "the backtest has no sessions" in result.output


def test_unknown_benchmark_symbol(sample_perf, sample_root, tmp_path):
    result = CliRunner(env={"ZIPLINE_ROOT": str(sample_root)}).invoke(
        main, ["tearsheet", str(sample_perf), "--out", str(tmp_path / "o"), "--bundle",
               "factorarb-sample", "--benchmark", "NOPE"])
    assert result.exit_code == 1
    assert "symbol(s) ['NOPE'] not found in bundle 'factorarb-sample'" in result.output


def test_bad_crisis_files(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("name,start,end\nMy crash,2020-02-30,2020-03-10\n")
    with pytest.raises(PeriodsError, match="period 'My crash' has an unparsable date '2020-02-30'"):
        load_periods(bad)
    bad.write_text("name,start,end\nBackwards,2020-03-10,2020-02-10\n")
    with pytest.raises(PeriodsError, match=r"'Backwards' ends \(2020-02-10\) before it starts"):
        load_periods(bad)
    bad.write_text("name,begin,end\nX,2020-01-01,2020-02-01\n")
    with pytest.raises(PeriodsError, match="missing column"):
        load_periods(bad)
    good = tmp_path / "p.json"
    good.write_text('{"My crash": ["2020-02-20", "2020-03-20"]}')
    assert list(load_periods(good, mode="replace")) == ["My crash"]
    assert "My crash" in load_periods(good) and "COVID crash 2020" in load_periods(good)
