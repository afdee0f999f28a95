"""The crisis report: tables and figures for any zipline perf pickle.

:func:`build_report` returns figures and DataFrames; :func:`write_report`
writes them (PNG/PDF figures, CSV tables, one self-contained HTML page).
Everything runs headless; nothing is shown or displayed.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..kernels import performance as pk
from .crisis import crisis_table, summary_table
from .perf import PerfFileError, load_backtest, read_benchmark_file
from .periods import EXTRA_PERIODS, default_periods, load_periods
from .risk import around_crises, risk_through_time
from .tearsheet import headless, tear_sheet_figures


@dataclass
class Report:
    tables: dict
    figures: dict
    findings: list
    notes: list = field(default_factory=list)
    title: str = "Crisis report"


def _benchmark_from_bundle(bundle, symbol, index, environ=None):
    from .bundle_data import adjusted_returns

    try:
        rets = adjusted_returns(bundle, [symbol], index[0], index[-1], environ=environ)
    except LookupError as exc:
        raise PerfFileError(f"benchmark: {exc}") from None
    series = rets[symbol]
    series.index = pd.DatetimeIndex(series.index).tz_localize("UTC")
    return series


def build_report(source, bundle=None, benchmark=None, benchmark_returns=None, periods=None,
                 periods_mode="extend", pyfolio_sheets=True, environ=None):
    """Compute every table and figure of the report.

    Parameters
    ----------
    source : path or DataFrame
        The perf pickle written by ``zipline run -o`` (any algorithm).
    bundle : str, optional
        Bundle the backtest ran on: enables benchmark symbols, sector weights
        and risk contributions estimated from the positions.
    benchmark : str, optional
        Benchmark symbol in ``bundle`` (overrides the perf frame's benchmark).
    benchmark_returns : path or Series, optional
        Daily benchmark returns (CSV ``date,return``).
    periods : path or mapping, optional
        Crisis windows file (see :func:`~.periods.load_periods`) or mapping.
    """
    if isinstance(benchmark_returns, (str, Path)):
        benchmark_returns = read_benchmark_file(benchmark_returns)
    backtest = load_backtest(source, benchmark_returns=benchmark_returns)
    if benchmark is not None:
        if bundle is None:
            raise PerfFileError("--benchmark SYMBOL needs --bundle NAME to read its prices")
        bench = _benchmark_from_bundle(bundle, benchmark, backtest.returns.index.tz_convert(None),
                                       environ=environ)
        source_name = backtest.source
        backtest = load_backtest(backtest.perf, benchmark_returns=bench)
        backtest.source = source_name
    if periods is None:
        crisis_periods = default_periods()
    elif isinstance(periods, (str, Path)):
        crisis_periods = load_periods(periods, mode=periods_mode)
    else:
        from .periods import validate_periods

        crisis_periods = validate_periods(periods)
        if periods_mode == "extend":
            crisis_periods = {**default_periods(), **crisis_periods}

    returns, bench = backtest.returns, backtest.benchmark_returns
    risk = risk_through_time(backtest, bundle=bundle, benchmark_symbol=benchmark, environ=environ)
    sessions = risk.diversification.index

    def around(frame):
        return around_crises(frame, crisis_periods, sessions=sessions)

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
        tables["ex_ante_tev"] = risk.ex_ante_tev.rename("ex_ante_tev").to_frame()

    figures = {}
    notes = list(risk.notes)
    with headless():
        figures.update(_own_figures(backtest, risk, tables, crisis_periods))
    if pyfolio_sheets:
        sheets, skipped = tear_sheet_figures(backtest)
        figures.update({f"pyfolio_{k}": v for k, v in sheets.items()})
        notes.extend(f"pyfolio {k} tear sheet skipped: {v}" for k, v in skipped.items())
    return Report(tables=tables, figures=figures, findings=_findings(tables), notes=notes,
                  title=f"Crisis report: {Path(backtest.source).name}")


# ---------------------------------------------------------------- figures
def _own_figures(backtest, risk, tables, periods):
    import matplotlib.pyplot as plt

    figs = {}
    r = backtest.returns
    idx = r.index.tz_convert(None)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot(idx, pk.wealth(r.to_numpy()), label="strategy", lw=1.2)
    if backtest.benchmark_returns is not None:
        ax.plot(idx, pk.wealth(backtest.benchmark_returns.to_numpy()), label="benchmark", lw=1.0)
    for name, (start, end) in periods.items():
        if name in EXTRA_PERIODS and start <= idx[-1] and end >= idx[0]:
            ax.axvspan(max(start, idx[0]), min(end, idx[-1]), color="red", alpha=0.12)
    ax.set_yscale("log")
    ax.set_title("Wealth (log scale); shaded: crisis windows")
    ax.legend()
    figs["wealth_and_crises"] = fig

    crisis = tables["crisis"]
    if len(crisis):
        fig, ax = plt.subplots(figsize=(11, max(3, 0.35 * len(crisis))))
        col = "active_return" if "active_return" in crisis else "return"
        colors = np.where(crisis[col] >= 0, "tab:green", "tab:red")
        ax.barh(crisis["period"], crisis[col], color=colors)
        ax.invert_yaxis()
        ax.set_title(f"{col.replace('_', ' ')} in each crisis window")
        fig.tight_layout()
        figs["crisis_returns"] = fig

    div = risk.diversification
    fig, ax = plt.subplots(figsize=(11, 4))
    for column in [c for c in ("n_holdings", "effective_holdings", "effective_bets") if c in div]:
        series = div[column].dropna()
        ax.plot(series.index, series.to_numpy(), label=column.replace("_", " "), lw=1.0)
    ax.set_title("Diversification: holdings, effective holdings (entropy of weights), "
                 "effective bets (entropy of risk contributions)", fontsize=9)
    ax.legend()
    figs["diversification"] = fig

    for key, title in (("risk_shares", "Share of (active) variance by group"),
                       ("sector_risk_shares",
                        "Share of (active) variance by sector, estimated from the positions"),
                       ("sector_weights", "Sector weights"),
                       ("factor_exposures", "Factor exposures")):
        frame = tables.get(key)
        if frame is None or not len(frame.columns):
            continue
        fig, ax = plt.subplots(figsize=(11, 4.5))
        frame.plot(ax=ax, lw=0.9)
        ax.set_title(title)
        ax.legend(fontsize=7, ncol=3)
        figs[key] = fig
    if "ex_ante_tev" in tables:
        fig, ax = plt.subplots(figsize=(11, 3.5))
        tables["ex_ante_tev"]["ex_ante_tev"].plot(ax=ax)
        ax.set_title("Ex-ante tracking error (annualised)")
        figs["ex_ante_tev"] = fig
    return figs


def _findings(tables):
    out = []
    crisis = tables["crisis"]
    if len(crisis) and "active_return" in crisis:
        wins = int((crisis["active_return"] > 0).sum())
        out.append(f"Beat the benchmark in {wins} of {len(crisis)} crisis windows; mean active "
                   f"return {crisis['active_return'].mean():+.2%}.")
        better = int((crisis["max_drawdown"] > crisis["benchmark_max_drawdown"]).sum())
        out.append(f"Shallower drawdown than the benchmark in {better} of {len(crisis)} windows.")
    around = tables.get("diversification_around_crises")
    if around is not None and len(around) and "effective_holdings" in around:
        phase = around.groupby("phase")["effective_holdings"].mean()
        if {"before", "during"} <= set(phase.index):
            out.append(f"Effective holdings: {phase['before']:.1f} before crises, "
                       f"{phase['during']:.1f} during.")
    shares = tables.get("risk_shares_around_crises")
    if shares is not None and len(shares):
        groups = [c for c in shares.columns if c not in ("period", "phase")]
        spread = shares.groupby("phase")[groups].mean()
        if "during" in spread.index and "before" in spread.index:
            shift = (spread.loc["during"] - spread.loc["before"]).abs().max()
            out.append(f"Largest change of a group's share of risk from before to during "
                       f"crises: {shift:.1%} (small = consistent risk contributions).")
    return out


# ---------------------------------------------------------------- writing
def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def _table_html(frame, max_rows=60, index=True):
    if len(frame) > max_rows:
        frame = frame.iloc[-max_rows:]
    return frame.to_html(float_format=lambda x: f"{x:.4g}", border=0, classes="tbl", index=index)


def _around_html(frame):
    """Mean over all crises by phase, then the dated windows one by one."""
    values = [c for c in frame.columns if c not in ("period", "phase")]
    by_phase = frame.groupby("phase")[values].mean().reindex(["before", "during", "after"])
    dated = frame[frame["period"].isin(EXTRA_PERIODS)]
    return ("<p>Mean over all crisis windows:</p>" + _table_html(by_phase)
            + "<p>Dated crisis windows:</p>" + _table_html(dated, max_rows=200, index=False))


def write_report(report, out_dir, formats=("html", "png")):
    """Write figures, CSV tables and the HTML report; return the paths written."""
    formats = tuple(f.strip().lower() for f in formats)
    bad = [f for f in formats if f not in ("html", "pdf", "png")]
    if bad:
        raise ValueError(f"unknown format(s) {bad}; use html, pdf, png")
    out = Path(out_dir)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in report.tables.items():
        path = out / "tables" / f"{name}.csv"
        frame.to_csv(path)
        written.append(path)
    pngs = {name: _png(fig) for name, fig in report.figures.items()}
    if "png" in formats:
        (out / "figures").mkdir(exist_ok=True)
        for name, data in pngs.items():
            path = out / "figures" / f"{name}.png"
            path.write_bytes(data)
            written.append(path)
    if "pdf" in formats:
        from matplotlib.backends.backend_pdf import PdfPages

        path = out / "report.pdf"
        with PdfPages(path) as pdf:
            for fig in report.figures.values():
                pdf.savefig(fig)
        written.append(path)
    if "html" in formats:
        path = out / "report.html"
        path.write_text(_html(report, pngs))
        written.append(path)
    import matplotlib.pyplot as plt

    for fig in report.figures.values():
        plt.close(fig)
    return written


def _html(report, pngs):
    order = ["summary", "crisis", "risk_shares_around_crises",
             "sector_risk_shares_around_crises", "sector_weights_around_crises",
             "factor_exposures_around_crises", "diversification_around_crises"]
    parts = [f"<h1>{html.escape(report.title)}</h1>"]
    if report.findings:
        parts.append("<h2>Findings</h2><ul>" + "".join(
            f"<li>{html.escape(f)}</li>" for f in report.findings) + "</ul>")
    for name in order:
        if name in report.tables and len(report.tables[name]):
            parts.append(f"<h2>{html.escape(name.replace('_', ' ').capitalize())}</h2>")
            table = report.tables[name]
            if name.endswith("_around_crises"):
                parts.append(_around_html(table))
            else:
                parts.append(_table_html(table, index=name != "crisis"))
    parts.append("<h2>Figures</h2>")
    for name, data in pngs.items():
        b64 = base64.b64encode(data).decode()
        parts.append(f"<h3>{html.escape(name.replace('_', ' '))}</h3>"
                     f'<img alt="{html.escape(name)}" src="data:image/png;base64,{b64}">')
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(
            f"<li>{html.escape(n)}</li>" for n in report.notes) + "</ul>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}"
             ".tbl{border-collapse:collapse;font-size:12px}.tbl td,.tbl th{padding:2px 8px;"
             "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(report.title)}</title><style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
