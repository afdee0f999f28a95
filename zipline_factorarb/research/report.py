"""Figures and tables of a finished sweep, written to files (never shown).

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas,
so nothing here touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import _grid_labels, deflated_sharpe_table, fold_summary, selection_table

MAX_TABLE_ROWS = 40


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _annotated(ax, table, metric, fmt="{:.2f}", rotate=True):
    data = table.to_numpy(dtype=float)
    finite = data[np.isfinite(data)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    bound = bound or 1.0
    image = ax.imshow(np.ma.masked_invalid(data), cmap="RdYlGn", vmin=-bound, vmax=bound,
                      aspect="auto")
    ax.set_xticks(range(data.shape[1]))
    if rotate:
        ax.set_xticklabels([str(c) for c in table.columns], rotation=45, ha="right", fontsize=8)
    else:
        ax.set_xticklabels([str(c).replace(" (", "\n").replace(" .. ", "\n").rstrip(")")
                            for c in table.columns], fontsize=7)
    ax.set_yticks(range(data.shape[0]))
    ax.set_yticklabels([str(i) for i in table.index], fontsize=8)
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, "n/a" if not np.isfinite(v) else fmt.format(v), ha="center",
                va="center", fontsize=7)
    return image


def metric_heatmap(results, param_a, param_b, metric="sharpe"):
    """Mean of ``metric`` over folds (and other parameters), ``param_a`` x ``param_b``.

    Returns
    -------
    (matplotlib.figure.Figure, pandas.DataFrame)
        The figure and the table it shows (rows ``param_a``, columns ``param_b``).
    """
    ok = results[results["status"] == "ok"]
    table = ok.groupby([param_a, param_b])[metric].mean().unstack(param_b)
    table = table.sort_index().sort_index(axis=1)
    fig = _figure(1.6 + 0.9 * max(len(table.columns), 2), 1.4 + 0.6 * max(len(table), 2))
    ax = fig.add_subplot(1, 1, 1)
    image = _annotated(ax, table, metric)
    ax.set_xlabel(param_b)
    ax.set_ylabel(param_a)
    n_folds = ok["fold"].nunique()
    ax.set_title(f"mean {metric} over {n_folds} fold(s)", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig, table


def metric_profile(results, param, metric="sharpe"):
    """Mean and std over folds of ``metric`` against one parameter."""
    ok = results[results["status"] == "ok"]
    stats = ok.groupby(param)[metric].agg(["mean", "std"]).sort_index()
    fig = _figure(5.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(stats))
    ax.errorbar(x, stats["mean"], yerr=stats["std"].fillna(0.0), marker="o", capsize=3)
    ax.set_xticks(x)
    ax.set_xticklabels([str(v) for v in stats.index])
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} across folds (mean +- std)", fontsize=9)
    fig.tight_layout()
    return fig, stats


def fold_table(results, params, metric="sharpe"):
    """Grid point x fold table of ``metric`` plus the mean over folds.

    Columns are ``fold N (test start year ..)``; rows are grid points,
    sorted by the mean, best first.
    """
    frame = results.copy()
    frame["grid_point"] = _grid_labels(frame, params)
    years = frame.groupby("fold")["test_start"].min()
    ends = frame.groupby("fold")["test_end"].max()
    names = {f: f"fold {f} ({pd.Timestamp(years[f]).date()} .. {pd.Timestamp(ends[f]).date()})"
             for f in years.index}
    values = frame[metric].where(frame["status"] == "ok")
    table = frame.assign(value=values).pivot_table(index="grid_point", columns="fold",
                                                   values="value", aggfunc="mean",
                                                   dropna=False)
    table = table.rename(columns=names)
    table["mean"] = table.mean(axis=1)
    return table.sort_values("mean", ascending=False)


def fold_table_figure(table, metric="sharpe", selection=None):
    """The fold table as an annotated image (the best rows when it is long).

    With ``selection`` (:func:`~.metrics.selection_table`), the cell of the
    grid point chosen on the earlier folds is boxed in each fold and labelled
    with its rank there.
    """
    shown = table.head(MAX_TABLE_ROWS)
    fig = _figure(3.0 + 1.0 * len(shown.columns), 1.8 + 0.4 * max(len(shown), 2))
    ax = fig.add_subplot(1, 1, 1)
    _annotated(ax, shown, metric, rotate=False)
    note = f" (best {MAX_TABLE_ROWS} of {len(table)})" if len(table) > len(shown) else ""
    title = f"{metric} by fold{note}"
    if selection is not None and len(selection):
        from matplotlib.patches import Rectangle

        columns = list(shown.columns)
        rows = list(shown.index)
        for sel in selection.itertuples():
            col = next((j for j, c in enumerate(columns) if str(c).startswith(
                f"fold {sel.fold} (")), None)
            if col is None or sel.selected not in rows:
                continue
            i = rows.index(sel.selected)
            ax.add_patch(Rectangle((col - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="black"))
            ax.text(col + 0.45, i - 0.45, f"#{sel.rank}/{sel.of}", ha="right", va="top",
                    fontsize=6)
        title += "\nboxed: best on the earlier folds, #rank among the fold's grid points"
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def write_report(results, params, out, metric="sharpe", heatmaps=None):
    """Write the summary tables and figures of a sweep into ``out``.

    Parameters
    ----------
    results : pandas.DataFrame
        The consolidated results (one row per run).
    params : list of str
        Grid parameter names.
    out : path
        Results folder.
    metric : str
        Column to summarise (default ``sharpe``).
    heatmaps : list of (str, str), optional
        Parameter pairs to draw; default every pair of parameters that take
        two or more values (at most six pairs).

    Returns
    -------
    dict
        Name -> path of each file written.
    """
    out = Path(out)
    files = {}

    def save(name, filename, write, **kwargs):
        files[name] = out / filename
        write(files[name], **kwargs)

    if metric not in results.columns:
        raise ValueError(f"report metric {metric!r} is not a results column; use one of "
                         "sharpe, total_return, max_drawdown, information_ratio, ...")
    varying = [p for p in params if results[p].nunique(dropna=False) > 1]
    save("summary", "summary.csv", fold_summary(results, params, metric).to_csv)
    if (results["status"] != "ok").all():
        return files
    if "daily_sharpe" in results.columns:
        save("deflated_sharpe", "deflated_sharpe.csv",
             deflated_sharpe_table(results, params).to_csv, index=False)
    table = fold_table(results, params, metric)
    save("fold_table", "fold_table.csv", table.to_csv)
    selection = selection_table(results, params, metric)
    if len(selection):
        save("selection", "selection.csv", selection.to_csv, index=False)
    save("fold_table_png", "fold_table.png", fold_table_figure(table, metric, selection).savefig)

    pairs = [tuple(p) for p in heatmaps] if heatmaps else \
        list(itertools.combinations(varying, 2))[:6]
    for a, b in pairs:
        for name in (a, b):
            if name not in results.columns:
                raise ValueError(f"report.heatmaps: {name!r} is not a grid parameter; "
                                 f"use names from {params}")
        fig, _ = metric_heatmap(results, a, b, metric)
        save(f"heatmap_{a}__{b}", f"heatmap_{a}__{b}.png", fig.savefig)
    if len(varying) == 1:
        fig, _ = metric_profile(results, varying[0], metric)
        save(f"profile_{varying[0]}", f"profile_{varying[0]}.png", fig.savefig)
    return files
