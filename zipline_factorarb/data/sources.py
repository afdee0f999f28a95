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
def _read_table(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={"symbol": str}, keep_default_na=True)
    except Exception as exc:  # pragma: no cover - message depends on the reader
        raise BundleDataError(f"cannot read the file: {exc}", file=str(path)) from exc


def _normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    df = df.rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
    aliases = {"adjclose": "adj_close", "adjusted_close": "adj_close", "ticker": "symbol",
               "dividends": "dividend", "stock_splits": "split", "splits": "split"}
    return df.rename(columns={k: v for k, v in aliases.items() if k in df.columns and v not in df.columns})


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


def _price_files(directory: Path):
    files = []
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        lower = path.name.lower()
        if not lower.endswith(PRICE_SUFFIXES):
            continue
        if file_stem(path).lower() in METADATA_STEMS:
            continue
        files.append(path)
    return files


def _metadata_file(directory: Path):
    found = [
        p for p in sorted(directory.iterdir())
        if p.is_file() and file_stem(p).lower() in METADATA_STEMS
        and p.name.lower().endswith(PRICE_SUFFIXES)
    ]
    if len(found) > 1:
        raise BundleDataError(
            f"more than one metadata file: {[p.name for p in found]}; keep one", file=str(directory)
        )
    return found[0] if found else None


def _parse_dates(df: pd.DataFrame, path: Path, symbol_hint=None) -> pd.Series:
    raw = df["date"]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
    else:
        parsed = pd.to_datetime(raw, errors="coerce")
        bad = parsed.isna() & raw.notna()
        bad |= raw.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            sym = df["symbol"].iloc[i] if "symbol" in df.columns else symbol_hint
            raise BundleDataError(
                f"unparsable date {raw.iloc[i]!r} ({int(bad.sum())} such row(s)); use YYYY-MM-DD",
                file=str(path), row=int(df["_row"].iloc[i]), symbol=sym,
            )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.dt.normalize()


def read_price_file(path: Path) -> pd.DataFrame:
    """Read one price file (long with a ``symbol`` column, or one symbol)."""
    path = Path(path)
    df = _normalise_columns(_read_table(path))
    if "date" not in df.columns and df.index.name and str(df.index.name).lower() == "date":
        df = df.reset_index().rename(columns=str.lower)
    symbol_hint = None
    if "symbol" not in df.columns:
        symbol_hint = file_stem(path).upper()
        df["symbol"] = symbol_hint
    required = ("date", "symbol", *PRICE_COLUMNS)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise _missing_columns_error(path, list(df.columns), missing)
    df["_row"] = np.arange(len(df)) + 2
    df["_file"] = str(path)
    df["symbol"] = df["symbol"].astype("string").str.strip().str.upper()
    if df["symbol"].isna().any() or (df["symbol"] == "").any():
        i = int(np.flatnonzero((df["symbol"].isna() | (df["symbol"] == "")).to_numpy())[0])
        raise BundleDataError("empty symbol", file=str(path), row=int(df["_row"].iloc[i]))
    df["symbol"] = df["symbol"].astype(object)
    df["date"] = _parse_dates(df, path, symbol_hint)
    keep = ["date", "symbol", *PRICE_COLUMNS,
            *[c for c in OPTIONAL_PRICE_COLUMNS if c in df.columns], "_file", "_row"]
    out = df[keep].copy()
    for col in (*PRICE_COLUMNS, *[c for c in OPTIONAL_PRICE_COLUMNS if c in out.columns]):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    return out


def read_metadata_file(path: Path) -> pd.DataFrame:
    """Read ``symbol,name,sector,asset_type[,exchange]``."""
    path = Path(path)
    df = _normalise_columns(_read_table(path))
    missing = [c for c in METADATA_COLUMNS if c not in df.columns]
    if missing:
        raise _missing_columns_error(path, list(df.columns), missing)
    df["_row"] = np.arange(len(df)) + 2
    df["_file"] = str(path)
    if "exchange" not in df.columns:
        df["exchange"] = None
    df["symbol"] = df["symbol"].astype("string").str.strip().str.upper().astype(object)
    dup = df["symbol"].duplicated(keep=False)
    if dup.any():
        rows = df.loc[dup, "_row"].tolist()
        raise BundleDataError(
            f"symbol listed more than once (lines {rows})", file=str(path),
            symbol=df.loc[dup, "symbol"].iloc[0], row=rows[1],
        )
    return df[["symbol", "name", "sector", "asset_type", "exchange", "_file", "_row"]]


def load_directory(directory) -> PriceData:
    """Read every price file and the optional metadata file of a folder.

    Price files are ``*.csv``, ``*.csv.gz`` or ``*.parquet``. A file with a
    ``symbol`` column is a long file (any number of symbols); a file without
    one holds a single symbol named by the file (``AAPL.csv`` -> ``AAPL``).
    Columns: ``date,open,high,low,close,volume`` and optionally ``adj_close``,
    ``dividend`` (cash per share on the ex-date) and ``split`` (new shares
    per old share on the effective date, e.g. 2 for a 2-for-1 split). The
    metadata file is ``metadata.csv`` (or ``.parquet``) with
    ``symbol,name,sector,asset_type[,exchange]``.
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
    return PriceData(prices=prices, metadata=metadata, source=str(directory))
