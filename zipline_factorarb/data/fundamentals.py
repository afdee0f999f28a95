"""Point-in-time fundamentals: read, validate and store them with an ingestion.

Fundamentals are numeric values per (date, symbol) other than prices: market
capitalisation, shares outstanding, book-to-market, or any column the user
names. They come from

- the files of the ``fundamentals/`` sub-folder of a CSV bundle's price folder
  (or the file or folder given as ``register_csv_bundle(..., fundamentals=PATH)``):
  CSV or Parquet, long, with ``date,symbol`` and one column per value;
- extra columns of the price files themselves, when named in
  ``register_csv_bundle(..., fundamental_columns=[...])``.

A value dated D is the one known at the end of day D: the pipeline first sees
it on the session after D (see :mod:`zipline_factorarb.pipeline.fundamentals`).
Empty cells are missing values; anything else that is not a finite number, a
(date, symbol) given twice for a column, or a symbol without prices is refused
with a :class:`~.errors.BundleDataError` naming the file, line, symbol, date and
column. The validated values are written as :data:`FUNDAMENTALS_FILE` into the
ingestion's working folder before zipline moves it into place, so each
ingestion carries its own copy and a later ingestion never changes it.
"""

from __future__ import annotations

import keyword
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BundleDataError
from .parsing import parse_numbers, parse_rows
from .sources import _price_files, _read_frame, _table_files, file_stem
from .validation import _first_bad, check_no_duplicates

#: Stored beside the asset db and the bars in each ingestion folder.
FUNDAMENTALS_FILE = "fundamentals.parquet"
#: Sub-folder of a CSV bundle's price folder read for fundamentals by default.
FUNDAMENTALS_DIR = "fundamentals"
#: Names that cannot be fundamentals: the keys, the price columns, and the
#: attributes of the pipeline's ``Fundamentals`` namespace.
RESERVED_NAMES = frozenset({
    "date", "symbol", "sid", "open", "high", "low", "close", "volume", "adj_close",
    "dividend", "split", "column", "columns", "has",
})


def _check_name(name, where):
    if (not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_")
            or name in RESERVED_NAMES):
        raise BundleDataError(
            f"fundamental column {name!r} cannot be used: a name must be a Python identifier "
            "(letters, digits, underscores; not starting with one), not a keyword and not one "
            f"of {sorted(RESERVED_NAMES)}", file=where)


def _files_in(path):
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BundleDataError("fundamentals file or folder not found", file=str(path))
    files = _table_files(path)
    if not files:
        raise BundleDataError("no fundamentals files (*.csv, *.csv.gz, *.parquet) in the folder",
                              file=str(path))
    return files


def _long_frame(df, path, value_columns, symbol_hint=None):
    """``date, symbol, <value_columns>, _file, _row`` from one normalised table.

    Cells are parsed by the same strict rules as prices
    (:mod:`~zipline_factorarb.data.parsing`).
    """
    df = df.copy()
    if "symbol" not in df.columns:
        if symbol_hint is None:
            raise BundleDataError(f"missing column 'symbol'; found columns {list(df.columns)}",
                                  file=str(path))
        df["symbol"] = symbol_hint
    if "date" not in df.columns:
        raise BundleDataError(f"missing column 'date'; found columns {list(df.columns)}",
                              file=str(path))
    parse_rows(df, path, symbol_hint)
    out = df[["date", "symbol", "_file", "_row"]].copy()
    for col in value_columns:
        out[col] = parse_numbers(df, col, symbol_hint,
                                 what="a plain number (leave the cell empty when unknown)")
    return out


def read_fundamentals_files(path):
    """Read a fundamentals file, or every CSV/Parquet file of a folder.

    Each file is long: ``date, symbol`` and one or more value columns (any
    names; normalised to lower case with underscores, like price columns).
    Returns the long frame ``date, symbol, <columns>, _file, _row``.
    """
    frames = []
    for file in _files_in(path):
        df = _read_frame(file)
        values = [c for c in df.columns if c not in ("date", "symbol")]
        if not values:
            raise BundleDataError(
                f"no value columns: a fundamentals file has date, symbol and at least one "
                f"column of values; found columns {list(df.columns)}", file=str(file))
        for col in values:
            _check_name(col, str(file))
        frames.append(_long_frame(df, file, values))
    return pd.concat(frames, ignore_index=True, sort=False)


def read_price_file_columns(directory, columns):
    """The ``columns`` of the price files of ``directory`` as a long frame.

    A column may be in some files and not others; a column found in no price
    file raises.
    """
    columns = [str(c).strip().lower().replace(" ", "_") for c in columns]
    for col in columns:
        _check_name(col, str(directory))
    frames, found = [], set()
    for file in _price_files(Path(directory).expanduser()):
        df = _read_frame(file)
        present = [c for c in columns if c in df.columns]
        if not present:
            continue
        found.update(present)
        hint = None if "symbol" in df.columns else file_stem(file).upper()
        frames.append(_long_frame(df, file, present, symbol_hint=hint))
    missing = [c for c in columns if c not in found]
    if missing:
        raise BundleDataError(f"fundamental column(s) {missing} are in none of the price files",
                              file=str(directory))
    return pd.concat(frames, ignore_index=True, sort=False)


def validate_fundamentals(frame, symbols):
    """Check a long fundamentals frame; return one row per (symbol, date).

    Parameters
    ----------
    frame : DataFrame
        ``date, symbol, <columns>, _file, _row`` (from the readers above).
    symbols : sequence of str
        The bundle's symbols (those with prices).

    Returns
    -------
    DataFrame
        ``symbol, date`` and the value columns (float64), sorted by symbol and
        date; rows without any value are dropped.
    """
    values = [c for c in frame.columns if c not in ("date", "symbol", "_file", "_row")]
    unknown = ~frame["symbol"].isin(pd.Index(symbols)).to_numpy()
    others = sorted(set(frame.loc[unknown, "symbol"]))
    _first_bad(frame, unknown, lambda r: (
        f"symbol has no prices in the bundle ({len(others)} such symbol(s): "
        f"{', '.join(others[:10])}{' ...' if len(others) > 10 else ''})"), count_hint=False)

    for col in values:
        check_no_duplicates(frame[frame[col].notna()],
                            f"column {col!r}: (date, symbol) given twice,", "values")
    out = (frame[["symbol", "date", *values]]
           .groupby(["symbol", "date"], sort=True).first()  # first non-missing value per column
           .reset_index())
    out = out[out[values].notna().any(axis=1)].reset_index(drop=True)
    return out.astype({c: np.float64 for c in values})


def write_fundamentals(table, assets, folder):
    """Write the validated ``table`` as :data:`FUNDAMENTALS_FILE` in ``folder``.

    ``assets`` is the bundle's asset frame in sid order (sid = position), as
    the writer numbers them. The file holds ``sid, date`` and the value
    columns, sorted by sid and date.
    """
    sids = pd.Index(pd.Series(assets["symbol"]).reset_index(drop=True))
    stored = table.assign(sid=sids.get_indexer(table["symbol"]).astype(np.int64))
    stored = stored[["sid", "date", *[c for c in table.columns if c not in ("symbol", "date")]]]
    stored = stored.sort_values(["sid", "date"], kind="stable").reset_index(drop=True)
    path = Path(folder, FUNDAMENTALS_FILE)
    stored.to_parquet(path, index=False)
    return path


def fundamentals_step(folder_of, fundamentals=None, columns=()):
    """The ``extra_step`` of :func:`~.writer.make_ingest` for a CSV bundle.

    ``folder_of()`` gives the price folder at ingest time. The step reads and
    validates the fundamentals against the prepared bundle's symbols and
    returns the function that writes them, or ``None`` when there is nothing
    to read (no ``fundamentals`` path, no ``fundamentals/`` sub-folder, no
    ``columns``).
    """
    def step(prepared):
        folder = Path(folder_of()).expanduser()
        source = Path(fundamentals).expanduser() if fundamentals else folder / FUNDAMENTALS_DIR
        frames, sources = [], []
        if fundamentals or source.is_dir():
            frames.append(read_fundamentals_files(source))
            sources.append(str(source))
        if columns:
            frames.append(read_price_file_columns(folder, columns))
            sources.append(f"price files of {folder}")
        if not frames:
            return None
        table = validate_fundamentals(pd.concat(frames, ignore_index=True, sort=False),
                                      list(prepared.assets["symbol"]))
        names = [c for c in table.columns if c not in ("symbol", "date")]
        info = dict(columns=names, rows=int(len(table)), symbols=int(table["symbol"].nunique()),
                    first_date=str(table["date"].min().date()) if len(table) else None,
                    last_date=str(table["date"].max().date()) if len(table) else None,
                    sources=sources, file=FUNDAMENTALS_FILE)
        prepared.report["fundamentals"] = info

        def write(working_dir):
            write_fundamentals(table, prepared.assets, working_dir)
            print(f"fundamentals: {', '.join(names)}; {info['rows']} rows for "
                  f"{info['symbols']} symbols, {info['first_date']} .. {info['last_date']}")

        return write

    return step


def read_stored(folder):
    """The stored fundamentals of an ingestion folder (``None`` when it has none)."""
    path = Path(folder, FUNDAMENTALS_FILE)
    if not path.exists():
        return None
    return pd.read_parquet(path)
