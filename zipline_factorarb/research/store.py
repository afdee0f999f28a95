"""The results folder of a sweep, written as runs finish.

Layout::

    OUT/
      runs/<run_id>.json     one finished run (its results row), written atomically
      perf/<run_id>.pickle   its perf DataFrame, when kept
      results.parquet        all runs of the spec, one row each (consolidated)
      results.csv            the same as CSV
      summary.csv            mean / std / count of the metric over folds per grid point
      fold_table.csv         grid point x fold table of the metric
      heatmap_<a>__<b>.png   mean metric over folds, param a x param b
      fold_table.png         the fold-by-fold table as an image
      spec.json              the resolved spec (folds, algorithm hash, ingestion)

A run's file appears only once the run is over, so an interrupted sweep
leaves complete files behind and ``--resume`` redoes only the missing ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from .spec import RESULT_COLUMNS

_DATE_COLUMNS = ("train_start", "train_end", "test_start", "test_end")
_FRONT = ("run_id", "status", "fold", *_DATE_COLUMNS)


def _atomic_write(path, data, mode="w"):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class RunStore:
    """Per-run files plus the consolidated tables of one sweep folder."""

    def __init__(self, out):
        self.out = Path(out)
        self.runs_dir = self.out / "runs"
        self.perf_dir = self.out / "perf"

    def prepare(self):
        """Create the folders."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)

    def run_path(self, run_id):
        return self.runs_dir / f"{run_id}.json"

    def perf_path(self, run_id):
        return self.perf_dir / f"{run_id}.pickle"

    def existing(self):
        """Rows of the runs already recorded here: ``{run_id: row}``."""
        rows = {}
        if not self.runs_dir.is_dir():
            return rows
        for path in sorted(self.runs_dir.glob("*.json")):
            try:
                row = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # a torn file from a crash: the run counts as missing
            if isinstance(row, dict) and row.get("run_id") == path.stem:
                rows[path.stem] = row
        return rows

    def write(self, row, perf=None):
        """Record one finished run (atomic: a reader sees all of it or nothing)."""
        self.prepare()
        if perf is not None:
            self.perf_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.perf_path(row["run_id"]), perf, mode="wb")
        _atomic_write(self.run_path(row["run_id"]), json.dumps(row, sort_keys=True, indent=1))

    def clear(self):
        """Remove the recorded runs and perf pickles (``--overwrite``)."""
        for folder, pattern in ((self.runs_dir, "*.json"), (self.perf_dir, "*.pickle")):
            if folder.is_dir():
                for path in folder.glob(pattern):
                    path.unlink()

    def write_json(self, name, obj):
        self.out.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.out / name, json.dumps(obj, sort_keys=True, indent=1, default=str))

    def consolidate(self, rows, param_names):
        """The results table in run order, written as Parquet and CSV.

        Parameters
        ----------
        rows : list of dict
            Results rows in the order of the spec's runs.
        param_names : list of str
            Grid parameter names (columns after the fold dates).

        Returns
        -------
        pandas.DataFrame
        """
        frame = results_frame(rows, param_names)
        self.out.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.out / "results.parquet", frame.to_parquet(index=False), mode="wb")
        _atomic_write(self.out / "results.csv", frame.to_csv(index=False))
        return frame


def _plain(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def results_frame(rows, param_names):
    """Rows -> DataFrame with dates as datetimes and a fixed column order."""
    param_names = list(param_names)
    columns = [*_FRONT, *param_names,
               *[c for c in RESULT_COLUMNS if c not in _FRONT]]
    frame = pd.DataFrame([{k: row.get(k) for k in columns} for row in rows], columns=columns)
    for name in param_names:
        frame[name] = frame[name].map(_plain)
        kinds = {_kind(v) for v in frame[name] if v is not None}
        if len(kinds) > 1:  # e.g. numbers and strings: one column type for Parquet
            frame[name] = frame[name].astype(object).map(
                lambda v: v if isinstance(v, str) else json.dumps(v))
    for col in _DATE_COLUMNS:
        frame[col] = pd.to_datetime(frame[col])
    for col in ("fold", "n_trades", "n_sessions", "seed"):
        frame[col] = frame[col].fillna(0).astype("int64")
    for col in ("error", "traceback", "worker", "ingestion"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame
