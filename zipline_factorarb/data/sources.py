"""Readers that turn price files into one long frame plus metadata.

Every reader returns a :class:`PriceData`: a long frame with one row per
(date, symbol) and the file/line it came from, so that validation errors can
name the exact place at fault. Nothing here writes anything.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BundleDataError
from .parsing import MISSING_NUMBER_CELLS, parse_numbers, parse_rows, parse_text

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
OPTIONAL_PRICE_COLUMNS = ("adj_close", "dividend", "split")
METADATA_COLUMNS = ("symbol", "name", "sector", "asset_type")
OPTIONAL_METADATA_COLUMNS = ("exchange",)
METADATA_STEMS = ("metadata", "meta", "symbols")
PRICE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")

#: Volume written for the embedded sample, whose source has closes only.
#: It is a stand-in, large enough that zipline's volume-share slippage never
#: binds; volume-based factors (dollar volume, liquidity screens) carry no
#: information on the sample.
SAMPLE_VOLUME = 1_000_000_000

#: GICS sectors of the sample's 20 stocks (current classification).
SAMPLE_SECTORS = {
    "AAPL": "Information Technology",
    "AMD": "Information Technology",
    "BAC": "Financials",
    "BBY": "Consumer Discretionary",
    "CVX": "Energy",
    "GE": "Industrials",
    "HD": "Consumer Discretionary",
    "JNJ": "Health Care",
    "JPM": "Financials",
    "KO": "Consumer Staples",
    "LLY": "Health Care",
    "MRK": "Health Care",
    "MSFT": "Information Technology",
    "PEP": "Consumer Staples",
    "PFE": "Health Care",
    "PG": "Consumer Staples",
    "RRC": "Energy",
    "UNH": "Health Care",
    "WMT": "Consumer Staples",
    "XOM": "Energy",
}

SAMPLE_ETF_NAMES = {
    "MTUM": "iShares MSCI USA Momentum Factor ETF",
    "QUAL": "iShares MSCI USA Quality Factor ETF",
    "SIZE": "iShares MSCI USA Size Factor ETF",
    "USMV": "iShares MSCI USA Min Vol Factor ETF",
    "VLUE": "iShares MSCI USA Value Factor ETF",
}

#: The sample's benchmark: the S&P 500 price index. Algorithms use it as the
#: benchmark and must not trade it (its asset type is ``index``).
SAMPLE_BENCHMARK = "SP500"


@dataclass
class PriceData:
    """Prices in long form plus per-symbol metadata, before validation.

    ``prices`` has columns ``date, symbol, open, high, low, close, volume``,
    optionally ``adj_close, dividend, split``, and ``_file, _row`` (where the
    row came from). ``metadata`` has ``symbol, name, sector, asset_type,
    exchange`` (``None`` when no metadata was given), with ``_file, _row``.
    """

    prices: pd.DataFrame
    metadata: pd.DataFrame | None
    source: str
    notes: list = field(default_factory=list)
    #: 'raise' or 'quarantine': what validation does with implausible
    #: splits, dividends and adj_close moves (None: 'raise').
    adjustments: str | None = None
    #: How the user switches this bundle to ``ohlc='repair'`` or
    #: ``adjustments='quarantine'``, named in the errors (None: the Python
    #: argument of the registration).
    ohlc_switch: str | None = None
    adjustments_switch: str | None = None


# --------------------------------------------------------------------------
# embedded sample
# --------------------------------------------------------------------------
def load_sample() -> PriceData:
    """The embedded sample: skfolio's bundled datasets, read from disk.

    20 US large caps (1990-2022), the S&P 500 index and five MSCI factor ETFs
    (2014-2022), adjusted closes only. Open, high and low are set to the close
    and volume to :data:`SAMPLE_VOLUME`. skfolio ships these files inside its
    wheel; these loaders read them with ``importlib.resources`` and never touch
    the network.
    """
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset, load_sp500_index

    frames = []
    meta = []
    for loader, asset_type in (
        (load_sp500_dataset, "stock"),
        (load_sp500_index, "index"),
        (load_factors_dataset, "etf"),
    ):
        wide = loader()
        label = f"skfolio.datasets.{loader.__name__}"
        wide.index = pd.DatetimeIndex(wide.index).normalize()
        long = wide.rename_axis("date").reset_index().melt(
            id_vars="date", var_name="symbol", value_name="close"
        )
        long = long.dropna(subset=["close"])
        long["_file"] = label
        long["_row"] = np.arange(len(long)) + 2
        frames.append(long)
        for symbol in wide.columns:
            if asset_type == "stock":
                name, sector = symbol, SAMPLE_SECTORS.get(symbol)
            elif asset_type == "index":
                name, sector = "S&P 500 index", None
            else:
                name, sector = SAMPLE_ETF_NAMES.get(symbol, symbol), None
            meta.append(
                dict(symbol=symbol, name=name, sector=sector, asset_type=asset_type,
                     exchange="INDEX" if asset_type == "index" else "NYSE",
                     _file=label, _row=None)
            )
    prices = pd.concat(frames, ignore_index=True)
    for col in ("open", "high", "low"):
        prices[col] = prices["close"]
    prices["volume"] = float(SAMPLE_VOLUME)
    prices = prices[["date", "symbol", *PRICE_COLUMNS, "_file", "_row"]]
    return PriceData(prices=prices, metadata=pd.DataFrame(meta), source="skfolio sample datasets")


# --------------------------------------------------------------------------
# user CSV / Parquet files
# --------------------------------------------------------------------------
def _read_table(path: Path, numeric=()) -> pd.DataFrame:
    """Read a file for strict parsing; Parquet columns keep their types.

    CSV cells are read as text, except in the ``numeric`` columns (names
    after :func:`_normalise_columns`), which pandas reads as numbers when
    every cell is a plain number or a missing marker (NA, null...) and as
    text otherwise. No other cell becomes a missing value, so tickers such
    as ``NA`` or ``NULL`` stay tickers.
    """
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        header = pd.read_csv(path, nrows=0).columns
        names = dict(zip(header, _normalise_columns(pd.DataFrame(columns=header)).columns))
        numbers = [raw for raw, norm in names.items() if norm in numeric]
        return pd.read_csv(
            path, keep_default_na=False, float_precision="round_trip",
            dtype={raw: str for raw in header if raw not in numbers},
            na_values={raw: MISSING_NUMBER_CELLS for raw in numbers})
    except Exception as exc:  # pragma: no cover - message depends on the reader
        raise BundleDataError(f"cannot read the file: {exc}", file=str(path)) from exc


def _normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    df = df.rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
    aliases = {"adjclose": "adj_close", "adjusted_close": "adj_close", "ticker": "symbol",
               "dividends": "dividend", "stock_splits": "split", "splits": "split"}
    return df.rename(columns={k: v for k, v in aliases.items() if k in df.columns and v not in df.columns})


def _read_frame(path, numeric=()):
    """:func:`_read_table` with normalised column names; a ``date`` index becomes a column."""
    df = _normalise_columns(_read_table(Path(path), numeric))
    if "date" not in df.columns and df.index.name and str(df.index.name).lower() == "date":
        df = df.reset_index().rename(columns=str.lower)
    return df


def _missing_columns_error(path, found, missing):
    hints = []
    for col in missing:
        close = difflib.get_close_matches(col, found, n=1, cutoff=0.6)
        hints.append(f"{col!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return BundleDataError(
        f"missing column(s) {', '.join(hints)}; found columns {list(found)}",
        file=str(path),
    )


def file_stem(path) -> str:
    """The file name without its price-file suffix: ``BRK.B.csv.gz`` -> ``BRK.B``."""
    name = Path(path).name
    lower = name.lower()
    for suffix in sorted(PRICE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name.split(".")[0]


def _table_files(directory):
    """The visible CSV / Parquet files of a folder (:data:`PRICE_SUFFIXES`), sorted by name."""
    return [p for p in sorted(Path(directory).iterdir()) if p.is_file()
            and not p.name.startswith(".") and p.name.lower().endswith(PRICE_SUFFIXES)]


def _price_files(directory: Path):
    return [p for p in _table_files(directory) if file_stem(p).lower() not in METADATA_STEMS]


def _metadata_file(directory: Path):
    found = [p for p in _table_files(directory) if file_stem(p).lower() in METADATA_STEMS]
    if len(found) > 1:
        raise BundleDataError(
            f"more than one metadata file: {[p.name for p in found]}; keep one", file=str(directory)
        )
    return found[0] if found else None


def read_price_file(path: Path) -> pd.DataFrame:
    """Read one price file (long with a ``symbol`` column, or one symbol)."""
    path = Path(path)
    df = _read_frame(path, numeric=(*PRICE_COLUMNS, *OPTIONAL_PRICE_COLUMNS))
    symbol_hint = None
    if "symbol" not in df.columns:
        symbol_hint = file_stem(path).upper()
        df["symbol"] = symbol_hint
    required = ("date", "symbol", *PRICE_COLUMNS)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise _missing_columns_error(path, list(df.columns), missing)
    parse_rows(df, path, symbol_hint)
    keep = ["date", "symbol", *PRICE_COLUMNS,
            *[c for c in OPTIONAL_PRICE_COLUMNS if c in df.columns], "_file", "_row"]
    out = df[keep].copy()
    for col in (*PRICE_COLUMNS, *[c for c in OPTIONAL_PRICE_COLUMNS if c in out.columns]):
        what = ("a plain number of new shares per old share (2 for a 2-for-1 split)"
                if col == "split" else "a plain number")
        out[col] = parse_numbers(out, col, symbol_hint, what=what)
    return out


def read_metadata_file(path: Path) -> pd.DataFrame:
    """Read ``symbol,name,sector[,asset_type][,exchange]``.

    Without an ``asset_type`` column every symbol is a stock (the frame's
    ``attrs["notes"]`` says so); an empty ``asset_type`` cell is an error.
    """
    path = Path(path)
    df = _read_frame(path)
    notes = []
    if "asset_type" not in df.columns and "symbol" in df.columns:
        df["asset_type"] = "stock"
        notes.append(f"{path.name} has no asset_type column: every symbol is a stock")
    missing = [c for c in METADATA_COLUMNS if c not in df.columns]
    if missing:
        raise _missing_columns_error(path, list(df.columns), missing)
    df["_row"] = np.arange(len(df)) + 2
    df["_file"] = str(path)
    if "exchange" not in df.columns:
        df["exchange"] = ""
    for col in ("symbol", "name", "sector", "asset_type", "exchange"):
        df[col] = parse_text(df, col).astype(object)
    df["symbol"] = df["symbol"].str.upper()
    for col, what in (("symbol", "symbol is empty"),
                      ("asset_type", "asset_type is empty; use one of stock, etf, index "
                                     "(without an asset_type column every symbol is a stock)")):
        empty = (df[col] == "").to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise BundleDataError(what, file=str(path), row=int(df["_row"].iloc[i]),
                                  symbol=df["symbol"].iloc[i] or None)
    dup = df["symbol"].duplicated(keep=False)
    if dup.any():
        rows = df.loc[dup, "_row"].tolist()
        raise BundleDataError(
            f"symbol listed more than once (lines {rows})", file=str(path),
            symbol=df.loc[dup, "symbol"].iloc[0], row=rows[1],
        )
    out = df[["symbol", "name", "sector", "asset_type", "exchange", "_file", "_row"]].copy()
    out.attrs["notes"] = notes
    return out


def load_directory(directory, adjustments=None, ohlc_switch=None,
                   adjustments_switch=None) -> PriceData:
    """Read every price file and the optional metadata file of a folder.

    Price files are ``*.csv``, ``*.csv.gz`` or ``*.parquet``. A file with a
    ``symbol`` column is a long file (any number of symbols); a file without
    one holds a single symbol named by the file (``AAPL.csv`` -> ``AAPL``).
    Columns: ``date,open,high,low,close,volume`` and optionally ``adj_close``,
    ``dividend`` (cash per share on the ex-date) and ``split`` (new shares
    per old share on the effective date, e.g. 2 for a 2-for-1 split). The
    metadata file is ``metadata.csv`` (or ``.parquet``) with
    ``symbol,name,sector[,asset_type][,exchange]`` (no ``asset_type``
    column: every symbol is a stock).

    Every cell is parsed strictly (see :mod:`~.parsing`): dates as
    ``YYYY-MM-DD``, numbers as plain decimals; anything else is a
    :class:`~.errors.BundleDataError` naming the file, line and symbol.
    ``adjustments``, ``ohlc_switch`` and ``adjustments_switch`` are passed
    on to validation (see :class:`PriceData`).
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise BundleDataError(
            "price folder not found; set FACTORARB_CSV_DIR or pass directory= to "
            "register_csv_bundle", file=str(directory),
        )
    files = _price_files(directory)
    if not files:
        raise BundleDataError(
            "no price files (*.csv, *.csv.gz, *.parquet) in the folder", file=str(directory)
        )
    frames = [read_price_file(p) for p in files]
    prices = pd.concat(frames, ignore_index=True, sort=False)
    meta_path = _metadata_file(directory)
    metadata = read_metadata_file(meta_path) if meta_path is not None else None
    notes = list(metadata.attrs.get("notes", [])) if metadata is not None else []
    return PriceData(prices=prices, metadata=metadata, source=str(directory), notes=notes,
                     adjustments=adjustments, ohlc_switch=ohlc_switch,
                     adjustments_switch=adjustments_switch)
