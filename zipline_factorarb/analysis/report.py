"""The crisis report: tables and figures for any zipline perf pickle.

:func:`build_report` returns figures and DataFrames; :func:`write_report`
writes them (PNG/PDF figures, CSV tables, one self-contained HTML page,
``timings.json``). Everything runs headless; nothing is shown or displayed.

The HTML page opens with a first screen: the summary (percentages, gains in
green and losses in red) and the key pictures (wealth and drawdown against
the benchmark with every crisis window shaded and numbered, the active return
in each crisis, the shares of risk through time); then the attribution, the
formatted tables and pyfolio's tear sheets.

The output folder is checked before any work (:func:`check_output`) and
written atomically: everything goes into a temporary folder beside it, which
then replaces it, so a reader never sees old and new files mixed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..kernels import performance as pk
from ..records import EX_ANTE_TEV, N_HOLDINGS
from .crisis import MIN_SESSIONS_ANNUALISED, crisis_table, summary_table
from .perf import (CASH, PerfFileError, book_exposure, is_dollar_neutral, load_backtest,
                   read_benchmark_file, with_benchmark)
from .periods import periods_of
from .progress import Phases
from .risk import around_crises, risk_through_time
from .tearsheet import headless, tear_sheet_figures

FORMATS = ("html", "pdf", "png")

#: What a report folder holds; a folder holding anything else is not replaced.
REPORT_ENTRIES = frozenset({"report.html", "report.pdf", "tables", "figures", "timings.json"})


class ReportOutputError(ValueError):
    """The output folder or format cannot be used."""


@dataclass
class Report:
    tables: dict
    figures: dict
    findings: list
    notes: list = field(default_factory=list)
    title: str = "Crisis report"
    benchmark: str = ""  # what the benchmark is, in words
    timings: dict = field(default_factory=dict)
    short: bool = False  # fewer sessions than the report annualises


def _benchmark_from_bundle(bundle, symbol, index, environ=None):
    from .bundle_data import adjusted_returns

    try:  # tz-naive sessions: load_backtest puts them on the backtest's UTC sessions
        return adjusted_returns(bundle, [symbol], index[0], index[-1], environ=environ)[symbol]
    except LookupError as exc:
        raise PerfFileError(f"benchmark: {exc}") from None


def build_report(source, bundle=None, benchmark=None, benchmark_returns=None, periods=None,
                 periods_mode="extend", pyfolio_sheets=True, environ=None, progress=None):
    """Compute every table and figure of the report.

    Parameters
    ----------
    source : path or DataFrame
        The perf pickle written by ``zipline run -o`` (any algorithm).
    bundle : str, optional
        Bundle the backtest ran on: enables benchmark symbols, sector weights,
        risk contributions estimated from the positions and the attribution's
        factor and sector returns.
    benchmark : str, optional
        A symbol in ``bundle``, or ``"cash"`` (zero returns). Default: the perf
        frame's benchmark, or cash when the book is dollar-neutral
        (:func:`~.perf.is_dollar_neutral`); the report says which.
    benchmark_returns : path or Series, optional
        Daily benchmark returns (CSV ``date,return``, fractions).
    periods : path or mapping, optional
        Crisis windows file (see :func:`~.periods.load_periods`) or mapping.
    progress : Phases, optional
        Receives the phases' timings (default: a :class:`~.progress.Phases`
        announcing them on stderr).
    """
    phases = progress if progress is not None else Phases("report")
    notes = []
    with phases("load backtest and benchmark"):
        if isinstance(benchmark_returns, (str, Path)):
            benchmark_returns = read_benchmark_file(benchmark_returns)
        crisis_periods = periods_of(periods, periods_mode)
        if benchmark is not None and bundle is None and str(benchmark).lower() != CASH:
            raise PerfFileError("--benchmark SYMBOL needs --bundle NAME to read its prices")
        # a benchmark given replaces the perf frame's, which is then neither read nor checked
        backtest = load_backtest(source, benchmark_returns=(
            CASH if benchmark is not None else benchmark_returns))
        bench_label = None
        if benchmark is not None and str(benchmark).lower() == CASH:
            bench_label = "cash (zero returns), as asked"
        elif benchmark is not None:
            bench = _benchmark_from_bundle(bundle, benchmark,
                                           backtest.returns.index.tz_convert(None), environ=environ)
            backtest = with_benchmark(backtest, bench)
            bench_label = f"{benchmark} (from bundle {bundle})"
        elif benchmark_returns is not None:
            bench_label = f"returns file {benchmark_returns.name}"
        elif is_dollar_neutral(backtest):
            net, gross = book_exposure(backtest)
            backtest = with_benchmark(backtest, CASH)
            bench_label = (f"cash (zero returns): the book is dollar-neutral (median net "
                           f"exposure {net:+.1%} of a gross {gross:.0%}), so the perf frame's "
                           "equity benchmark is not used")
            notes.append(f"benchmark: {bench_label}")
        elif backtest.benchmark_returns is not None:
            bench_label = "the perf frame's benchmark (zipline's benchmark_period_return)"
        else:
            bench_label = "none (the perf frame has no benchmark returns)"
    returns, bench = backtest.returns, backtest.benchmark_returns
    short = len(returns) < MIN_SESSIONS_ANNUALISED
    if short:
        notes.append(f"the backtest has {len(returns)} sessions, fewer than "
                     f"{MIN_SESSIONS_ANNUALISED}: annualised statistics (annual return and "
                     "volatility, Sharpe, Sortino, tracking error, information ratio, alpha) are "
                     "not computed (n/a)")
    with phases("risk through time"):
        risk = risk_through_time(backtest, bundle=bundle,
                                 benchmark_symbol=benchmark if benchmark != CASH else None,
                                 environ=environ)
    sessions = risk.diversification.index

    def around(frame):
        return around_crises(frame, crisis_periods, sessions=sessions)

    with phases("tables"):
        tables = {
            "summary": summary_table(returns, bench, backtest.weights),
            "crisis": crisis_table(returns, bench, crisis_periods),
            "diversification": risk.diversification,
            "diversification_around_crises": around(risk.diversification),
        }
        if len(risk.risk_shares.columns):
            tables["risk_shares"] = risk.risk_shares
            tables["risk_shares_around_crises"] = around(risk.risk_shares)
        if len(risk.sector_risk_shares.columns):
            tables["sector_risk_shares"] = risk.sector_risk_shares
            tables["sector_risk_shares_around_crises"] = around(risk.sector_risk_shares)
        active = None
        if len(risk.sector_weights.columns):
            tables["sector_weights"] = risk.sector_weights
            active = risk.sector_weights
            if len(risk.benchmark_sector_weights.columns):
                tables["benchmark_sector_weights"] = risk.benchmark_sector_weights
                active = risk.sector_weights.sub(risk.benchmark_sector_weights, fill_value=0.0)
                tables["active_sector_weights"] = active
            tables["sector_weights_around_crises"] = around(active)
        if len(risk.factor_exposures.columns):
            tables["factor_exposures"] = risk.factor_exposures
            tables["factor_exposures_around_crises"] = around(risk.factor_exposures)
        if not risk.ex_ante_tev.empty:
            tables[EX_ANTE_TEV] = risk.ex_ante_tev.rename(EX_ANTE_TEV).to_frame()
    with phases("attribution"):
        from .attribution import attribution_of

        attribution, more = attribution_of(backtest, crisis_periods, bundle=bundle,
                                           sector_weights=active, environ=environ)
        notes.extend(more)
        if attribution is not None:
            tables["attribution"] = attribution.windows
            tables["attribution_daily"] = attribution.daily
    notes.extend(risk.notes)
    figures = {}
    with phases("figures"), headless():
        figures.update(_own_figures(backtest, risk, tables, crisis_periods))
    if pyfolio_sheets:
        with phases("pyfolio tear sheets"):
            sheets, skipped = tear_sheet_figures(backtest)
        figures.update({f"pyfolio_{k}": v for k, v in sheets.items()})
        notes.extend(f"pyfolio {k} tear sheet skipped: {v}" for k, v in skipped.items())
    return Report(tables=tables, figures=figures, findings=_findings(tables), notes=notes,
                  title=f"Crisis report: {Path(backtest.source).name}", benchmark=bench_label,
                  timings=phases.timings, short=short)


# ---------------------------------------------------------------- figures
def _crises(crisis):
    """The crisis table's rows that are crises (not regimes)."""
    return crisis[crisis["crisis"]] if len(crisis) and "crisis" in crisis else crisis


def _crisis_windows(crisis):
    """The crisis table's rows that are crises, numbered from 1 in date order."""
    if not len(crisis):
        return crisis
    rows = _crises(crisis).sort_values("start").reset_index(drop=True)
    rows.insert(0, "number", np.arange(1, len(rows) + 1))
    return rows


def _shade_windows(ax, windows, label=False):
    """Shade every window; numbers on top, staggered on three rows so they do not overlap."""
    import matplotlib.transforms as mtransforms

    trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
    for i, row in windows.iterrows():
        start, end = pd.Timestamp(row["start"]), pd.Timestamp(row["end"])
        ax.axvspan(start, end + pd.Timedelta(hours=20), color="tab:red", alpha=0.13, lw=0)
        if label:
            ax.text(start + (end - start) / 2, 1.005 + 0.045 * (i % 3), str(row["number"]),
                    transform=trans, ha="center", va="bottom", fontsize=7, color="tab:red")


def _percent_axis(axis):
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(xmax=1.0))


def _window_bars(ax, title):
    """The look of a horizontal bar chart of percentages, one bar per crisis window."""
    ax.invert_yaxis()
    ax.axvline(0, color="0.3", lw=0.6)
    _percent_axis(ax.xaxis)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=9)


def _own_figures(backtest, risk, tables, periods):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    figs = {}
    r = backtest.returns
    idx = r.index.tz_convert(None)
    windows = _crisis_windows(tables["crisis"])
    fig, (ax, ax_dd) = plt.subplots(2, 1, figsize=(8, 5.2), sharex=True,
                                    gridspec_kw={"height_ratios": [2.2, 1]})
    ax.plot(idx, pk.wealth(r.to_numpy()), label="strategy", lw=1.2, color="tab:blue")
    ax_dd.plot(idx, pk.drawdown(r.to_numpy()), lw=1.0, color="tab:blue")
    if backtest.benchmark_returns is not None:
        b = backtest.benchmark_returns.to_numpy()
        ax.plot(idx, pk.wealth(b), label="benchmark", lw=1.0, color="0.35")
        ax_dd.plot(idx, pk.drawdown(b), lw=0.9, color="0.35")
    for axis in (ax, ax_dd):
        _shade_windows(axis, windows, label=axis is ax)
    low, high = ax.get_ylim()
    if high / max(low, 1e-9) > 3:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("wealth (log scale)")
    else:
        ax.set_ylabel("wealth")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title("Wealth and drawdown; shaded and numbered: crisis windows", fontsize=9, pad=30)
    ax_dd.set_ylabel("drawdown")
    _percent_axis(ax_dd.yaxis)
    figs["wealth_and_crises"] = fig

    if len(windows):
        col = "active_return" if "active_return" in windows else "return"
        fig, ax = plt.subplots(figsize=(8, max(2.6, 0.28 * len(windows) + 0.9)))
        values = windows[col].to_numpy(dtype=float)
        labels = [f"{n}. {p}" for n, p in zip(windows["number"], windows["period"])]
        ax.barh(labels, values, color=np.where(values >= 0, "tab:green", "tab:red"))
        what = "Active return" if col == "active_return" else "Return"
        _window_bars(ax, f"{what} in each crisis window")
        figs["crisis_returns"] = fig

    shares = tables.get("risk_shares")
    if shares is not None and len(shares.columns):
        fig, ax = plt.subplots(figsize=(8, 3.4))
        clean = shares.dropna(how="all").fillna(0.0)
        ax.stackplot(clean.index, clean.clip(lower=0).T.to_numpy(), labels=list(clean.columns),
                     alpha=0.85)
        _shade_windows(ax, windows)
        ax.set_ylim(0, 1)
        _percent_axis(ax.yaxis)
        ax.set_title("Shares of (active) variance through time", fontsize=9)
        ax.legend(fontsize=7, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.1),
                  frameon=False)
        figs["risk_shares"] = fig

    attribution = tables.get("attribution")
    if attribution is not None and len(attribution):
        rows = attribution[attribution["crisis"]].sort_values("start")
        if len(rows):
            parts = [c for c in rows.columns if c.startswith("factor_")] + ["sector", "specific"]
            fig, ax = plt.subplots(figsize=(8, max(2.6, 0.3 * len(rows) + 1.2)))
            labels = list(rows["period"])
            pos_left = np.zeros(len(rows))
            neg_left = np.zeros(len(rows))
            cmap = plt.get_cmap("tab10")
            for k, part in enumerate(parts):
                v = rows[part].to_numpy(dtype=float)
                left = np.where(v >= 0, pos_left, neg_left)
                ax.barh(labels, v, left=left, color=cmap(k % 10),
                        label=part.removeprefix("factor_"))
                pos_left += np.where(v >= 0, v, 0)
                neg_left += np.where(v < 0, v, 0)
            ax.scatter(rows["active_return"], labels, color="black", zorder=3, s=14,
                       label="active return")
            _window_bars(ax, "Attribution of the active return in each crisis window")
            ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                      frameon=False)
            figs["attribution"] = fig

    div = risk.diversification
    fig, ax = plt.subplots(figsize=(8, 3))
    for column in [c for c in (N_HOLDINGS, "effective_holdings", "effective_bets") if c in div]:
        series = div[column].dropna()
        ax.plot(series.index, series.to_numpy(), label=column.replace("_", " "), lw=1.0)
    ax.set_title("Diversification: holdings, effective holdings (entropy of weights), "
                 "effective bets (entropy of risk contributions)", fontsize=8)
    ax.legend(fontsize=7)
    figs["diversification"] = fig

    for key, title in (("sector_risk_shares",
                        "Share of (active) variance by sector, estimated from the positions"),
                       ("sector_weights", "Sector weights"),
                       ("factor_exposures", "Factor exposures")):
        frame = tables.get(key)
        if frame is None or not len(frame.columns):
            continue
        fig, ax = plt.subplots(figsize=(8, 3.2))
        frame.plot(ax=ax, lw=0.9)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6, ncol=3)
        figs[key] = fig
    if EX_ANTE_TEV in tables:
        fig, ax = plt.subplots(figsize=(8, 2.8))
        tables[EX_ANTE_TEV][EX_ANTE_TEV].plot(ax=ax)
        ax.set_title("Ex-ante tracking error (annualised)", fontsize=9)
        figs[EX_ANTE_TEV] = fig
    for fig in figs.values():
        fig.tight_layout()
    return figs


def _findings(tables):
    """Findings over the windows flagged as crises only (regimes are not counted)."""
    out = []
    crisis = _crises(tables["crisis"])
    regimes = len(tables["crisis"]) - len(crisis)
    if len(crisis) and "active_return" in crisis:
        wins = int((crisis["active_return"] > 0).sum())
        out.append(f"Beat the benchmark in {wins} of {len(crisis)} crisis windows; mean active "
                   f"return {crisis['active_return'].mean():+.2%}, median "
                   f"{crisis['active_return'].median():+.2%}"
                   + (f" ({regimes} whole-period regime windows shown but not counted)."
                      if regimes else "."))
        better = int((crisis["max_drawdown"] > crisis["benchmark_max_drawdown"]).sum())
        out.append(f"Shallower drawdown than the benchmark in {better} of {len(crisis)} crisis "
                   "windows.")
    around = tables.get("diversification_around_crises")
    if around is not None and len(around) and "effective_holdings" in around:
        counted = around[around["period"].isin(set(crisis["period"]))] if len(crisis) else around
        phase = counted.groupby("phase")["effective_holdings"].mean()
        if {"before", "during"} <= set(phase.index):
            out.append(f"Effective holdings: {phase['before']:.1f} before crises, "
                       f"{phase['during']:.1f} during.")
    shares = tables.get("risk_shares_around_crises")
    if shares is not None and len(shares) and len(crisis):
        shares = shares[shares["period"].isin(set(crisis["period"]))]
        groups = [c for c in shares.columns if c not in ("period", "phase")]
        spread = shares.groupby("phase")[groups].mean()
        if "during" in spread.index and "before" in spread.index:
            shift = (spread.loc["during"] - spread.loc["before"]).abs().max()
            out.append(f"Largest change of a group's share of risk from before to during "
                       f"crises: {shift:.1%} (small = consistent risk contributions).")
    attribution = tables.get("attribution")
    if attribution is not None and len(attribution):
        rows = attribution[attribution["crisis"]]
        if len(rows):
            means = rows[["factor", "sector", "specific"]].mean()
            out.append("Mean attribution of the crisis active return: factors "
                       f"{means['factor']:+.2%}, sectors {means['sector']:+.2%}, specific "
                       f"{means['specific']:+.2%}.")
    return out


# ---------------------------------------------------------------- formatting
#: Columns shown as percentages (fractions in the tables and CSV files).
_PERCENT = frozenset("""total_return annual_return annual_volatility max_drawdown tracking_error
alpha return benchmark_return active_return volatility benchmark_max_drawdown worst_day factor
sector specific ex_ante_tev hhi""".split())
_RATIO = frozenset("sharpe_ratio sortino_ratio information_ratio tail_ratio beta".split())
_COUNT = frozenset("sessions days_to_recover n_holdings number".split())


def fmt_percent(x):
    """A fraction as a percentage with three significant digits ("12.3%", "-0.456%")."""
    if x is None or not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0%"
    return f"{x * 100:.3g}%"


def fmt_ratio(x):
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.2f}"


def _signed(text, x):
    if x is None or not isinstance(x, (int, float, np.floating)) or not np.isfinite(x) or x == 0:
        return html.escape(text)
    return f'<span class="{"pos" if x > 0 else "neg"}">{html.escape(text)}</span>'


def _cell(column, x, percent_default=False, default=None):
    if default is not None and column not in _COUNT and isinstance(
            x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)):
        return default(float(x))
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if not isinstance(x, (int, float, np.integer, np.floating)):
        return html.escape(str(x))
    x = float(x)
    if column in _COUNT:
        return "n/a" if not np.isfinite(x) else f"{x:.0f}"
    if column in _RATIO:
        return _signed(fmt_ratio(x), x)
    if column in _PERCENT or column.startswith("factor_") or percent_default:
        signed = column not in ("annual_volatility", "volatility", "tracking_error",
                                EX_ANTE_TEV, "hhi")
        return _signed(fmt_percent(x), x) if signed else fmt_percent(x)
    if column in ("average_holdings", "effective_holdings", "effective_bets"):
        return "n/a" if not np.isfinite(x) else f"{x:.1f}"
    return "n/a" if not np.isfinite(x) else f"{x:.3g}"


def table_html(frame, index=True, percent=False, max_rows=None, caption=None, default=None):
    """A DataFrame as a formatted HTML table (percent, 2-3 significant digits).

    Columns are formatted by name (percentages, ratios, counts); ``percent``
    shows the other numeric columns as percentages, ``default`` (a function of
    the value returning HTML) formats them instead.
    """
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.iloc[-max_rows:]
    head = ([f"<th>{html.escape(str(frame.index.name or ''))}</th>"] if index else []) + [
        f"<th>{html.escape(str(c).removeprefix('factor_').replace('_', ' '))}</th>"
        for c in frame.columns]
    rows = []
    for label, row in frame.iterrows():
        cells = ([f"<th>{html.escape(str(label))}</th>"] if index else [])
        cells += [f"<td>{_cell(str(c), v, percent, default)}</td>" for c, v in row.items()]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<div class="wrap"><table class="tbl">{cap}<thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


#: How the values of each around-crises table read: shares (unsigned percent),
#: weights (signed percent), exposures (signed, two decimals).
_AROUND_FORMATS = {
    "risk_shares_around_crises": lambda x: fmt_percent(x),
    "sector_risk_shares_around_crises": lambda x: fmt_percent(x),
    "sector_weights_around_crises": lambda x: _signed(fmt_percent(x), x),
    "factor_exposures_around_crises": lambda x: _signed(fmt_ratio(x), x),
}


def _around_html(frame, crisis_names, name):
    """Mean over the crisis windows by phase, then the crisis windows one by one."""
    values = [c for c in frame.columns if c not in ("period", "phase")]
    counted = frame[frame["period"].isin(crisis_names)]
    by_phase = counted.groupby("phase")[values].mean().reindex(["before", "during", "after"])
    by_phase.index.name = "phase"
    default = _AROUND_FORMATS.get(name)
    return (table_html(by_phase, default=default,
                       caption="Mean over the crisis windows (63 sessions before and after)")
            + "<details><summary>Each crisis window</summary>"
            + table_html(counted, index=False, default=default) + "</details>")


# ---------------------------------------------------------------- writing
def _png(fig, dpi=90):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def check_output(out_dir, formats):
    """Check, before any work, that the report can be written to ``out_dir``.

    ``formats`` must be among :data:`FORMATS`; ``out_dir``'s parent must be
    (or become) a writable folder; an existing ``out_dir`` must be a folder
    holding nothing but a previous report (:data:`REPORT_ENTRIES`), since it
    is replaced as a whole. Raises :class:`ReportOutputError` naming the
    problem. Returns the normalised formats.
    """
    formats = tuple(f.strip().lower() for f in formats if f.strip())
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ReportOutputError(f"unknown format(s) {bad or list(formats)}; use "
                                f"{', '.join(FORMATS)} (comma-separated)")
    out = Path(out_dir).absolute()
    if out.exists():
        if not out.is_dir():
            raise ReportOutputError(f"{out_dir}: exists and is not a folder")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in REPORT_ENTRIES)
        if foreign:
            raise ReportOutputError(
                f"{out_dir}: holds files that are not a report's ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}); the report replaces its folder as a "
                "whole: choose an empty or new folder")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}.check-", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise ReportOutputError(f"{out_dir}: cannot write the report there "
                                f"({exc.strerror or exc})") from None
    return formats


def _replace_folder(tmp, out):
    """Put the finished ``tmp`` folder in place of ``out`` (two renames)."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_report(report, out_dir, formats=("html", "png"), progress=None):
    """Write figures, CSV tables, ``timings.json`` and the HTML report; return the paths.

    Everything is written to a temporary folder beside ``out_dir`` which then
    replaces ``out_dir``: an interrupted or failed write leaves the previous
    report whole.
    """
    formats = check_output(out_dir, formats)
    phases = progress if progress is not None else Phases("report", stream=None)
    out = Path(out_dir).absolute()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        with phases("write"):
            names = _write_into(report, tmp, formats)
        timings = {**report.timings, **phases.timings}
        (tmp / "timings.json").write_text(json.dumps(
            {"phases_s": {k: round(v, 3) for k, v in timings.items()},
             "total_s": round(sum(timings.values()), 3)}, indent=2))
        names.append("timings.json")
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        import matplotlib.pyplot as plt

        for fig in report.figures.values():
            plt.close(fig)
    return [Path(out_dir) / name for name in names]


def _write_into(report, out, formats):
    names = []
    (out / "tables").mkdir()
    for name, frame in report.tables.items():
        frame.to_csv(out / "tables" / f"{name}.csv")
        names.append(f"tables/{name}.csv")
    pngs = {name: _png(fig) for name, fig in report.figures.items()}
    if "png" in formats:
        (out / "figures").mkdir()
        for name, data in pngs.items():
            (out / "figures" / f"{name}.png").write_bytes(data)
            names.append(f"figures/{name}.png")
    if "pdf" in formats:
        from matplotlib.backends.backend_pdf import PdfPages

        with PdfPages(out / "report.pdf") as pdf:
            for fig in report.figures.values():
                pdf.savefig(fig)
        names.append("report.pdf")
    if "html" in formats:
        (out / "report.html").write_text(_html(report, pngs))
        names.append("report.html")
    return names


def _img(name, pngs, cls="fig"):
    if name not in pngs:
        return ""
    b64 = base64.b64encode(pngs[name]).decode()
    return (f'<figure class="{cls}" id="fig-{html.escape(name)}"><img alt="{html.escape(name)}" '
            f'src="data:image/png;base64,{b64}"></figure>')


def _summary_html(report):
    summary = report.tables["summary"]
    columns = [c for c in ("total_return", "annual_return", "annual_volatility", "sharpe_ratio",
                           "max_drawdown", "tracking_error", "information_ratio", "beta")
               if c in summary.columns]
    return table_html(summary[columns], caption=None)


_TABLES = [
    ("crisis", "Crisis and regime windows",
     "One row per window overlapping the backtest; 'crisis: no' marks pyfolio's whole-period "
     "regimes, shown but not counted in the findings. Volatility, tracking error and "
     "information ratio are annualised from the window's daily returns."),
    ("risk_shares_around_crises", "Shares of risk around crises", None),
    ("sector_risk_shares_around_crises", "Sector shares of risk around crises", None),
    ("sector_weights_around_crises", "(Active) sector weights around crises", None),
    ("factor_exposures_around_crises", "Factor exposures around crises", None),
    ("diversification_around_crises", "Diversification around crises", None),
]


def _html(report, pngs):
    crisis = report.tables["crisis"]
    crisis_names = set(_crises(crisis).get("period", []))
    parts = [f"<h1>{html.escape(report.title)}</h1>",
             f'<p class="bench">Benchmark: {html.escape(report.benchmark or "none")}'
             + (" &middot; <b>short backtest: annualised statistics not computed</b>"
                if report.short else "") + "</p>",
             '<section id="summary">' + _summary_html(report)]
    if report.findings:
        parts.append("<ul class='findings'>" + "".join(
            f"<li>{html.escape(f)}</li>" for f in report.findings) + "</ul>")
    parts.append("</section>")
    parts.append('<section id="key" class="grid">'
                 + _img("wealth_and_crises", pngs) + _img("crisis_returns", pngs)
                 + _img("risk_shares", pngs) + _img("attribution", pngs) + "</section>")
    windows = _crisis_windows(crisis)
    if len(windows):
        legend = ", ".join(f"{n}. {p}" for n, p in zip(windows["number"], windows["period"]))
        parts.append(f'<p class="legend">Crisis windows: {html.escape(legend)}.</p>')
    if "attribution" in report.tables:
        att = report.tables["attribution"]
        shown = att[[c for c in att.columns if c not in ("start", "end")]].copy()
        parts.append("<h2>Attribution through crises</h2>"
                     "<p>Active return of each window split into factor (recorded exposures "
                     "times factor returns), sector (active sector weights times sector returns "
                     "in excess of the benchmark) and specific parts, linked over the window so "
                     "that they add up to the active return. The shares of risk before, during "
                     "and after are in the next tables.</p>")
        parts.append(table_html(shown[shown["crisis"]].drop(columns="crisis"), index=False))
    parts.append("<h2>Tables</h2>")
    for name, title, text in _TABLES:
        table = report.tables.get(name)
        if table is None or not len(table):
            continue
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if text:
            parts.append(f"<p>{html.escape(text)}</p>")
        if name == "crisis":
            parts.append(table_html(table.drop(columns=["start", "end"]), index=False))
        else:
            parts.append(_around_html(table, crisis_names, name))
    parts.append("<h3>Summary, all statistics</h3>" + table_html(report.tables["summary"]))
    rest = [n for n in pngs if n not in ("wealth_and_crises", "crisis_returns", "risk_shares",
                                         "attribution") and not n.startswith("pyfolio_")]
    if rest:
        parts.append('<h2>More figures</h2><section class="grid">'
                     + "".join(_img(n, pngs) for n in rest) + "</section>")
    pyfolio = [n for n in pngs if n.startswith("pyfolio_")]
    if pyfolio:
        parts.append("<h2>pyfolio tear sheets</h2>" + "".join(
            f"<h3>{html.escape(n.removeprefix('pyfolio_').replace('_', ' '))}</h3>"
            + _img(n, pngs, cls="sheet") for n in pyfolio))
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(
            f"<li>{html.escape(n)}</li>" for n in report.notes) + "</ul>")
    if report.timings:
        parts.append("<h2>Phases</h2>" + table_html(
            pd.DataFrame({"seconds": report.timings}).rename_axis("phase")))
    style = (
        "body{font-family:system-ui,sans-serif;margin:12px 18px;max-width:1240px;color:#222}"
        "h1{font-size:19px;margin:0 0 2px}h2{font-size:16px;margin:18px 0 6px}"
        "h3{font-size:14px;margin:12px 0 4px}p{font-size:13px;margin:4px 0}"
        ".bench{color:#555;font-size:12px}.legend{font-size:11px;color:#555}"
        ".findings{font-size:12.5px;margin:4px 0;padding-left:18px}"
        ".wrap{max-width:100%;overflow-x:auto}"
        ".tbl{border-collapse:collapse;font-size:12px;margin:2px 0}"
        ".tbl td,.tbl th{padding:1px 7px;border-bottom:1px solid #ddd;text-align:right;"
        "white-space:nowrap}.tbl thead th{white-space:normal;max-width:90px;vertical-align:bottom}"
        ".tbl tbody th{text-align:left}caption{text-align:left;font-size:12px;color:#555}"
        ".pos{color:#1a7f37}.neg{color:#c62828}"
        ".grid{display:grid;grid-template-columns:1fr 1fr;gap:4px 10px}"
        "figure{margin:0}figure img{width:100%;height:auto}"
        ".sheet img{max-width:100%}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width'><title>"
            f"{html.escape(report.title)}</title><style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
