"""A generated stock bundle for speed and memory benchmarks at any number of stocks.

:func:`build_generated_bundle` writes random-walk daily prices for ``n_stocks``
stocks in the eleven GICS sectors plus a market fund (``SPY``, an ETF that is
the cap-free average of the stocks' common moves), ingests them through the
package's own CSV/Parquet bundle (:func:`~zipline_factorarb.register_csv_bundle`)
into a zipline root, and writes ``<root>/extension.py`` so that the real command
line finds the bundle::

    from benchmarks._generated import build_generated_bundle
    bundle, extension = build_generated_bundle("/tmp/zroot", 2000, "2017-06-01", "2020-12-31")
    # ZIPLINE_ROOT=/tmp/zroot zipline -e <extension> run -f algo.py -b <bundle> \
    #     -s 2019-01-02 -e 2020-12-31

Returns follow a one-factor-plus-sectors model, ``r_it = beta_i m_t + s_{g(i),t} +
sigma_i e_it``, so that factor risk models find structure in them; volumes are
random and vary by day and stock (real-looking, so dollar-volume benchmark
proxies are used). Nothing is written outside ``root``.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["build_generated_bundle", "generated_prices", "GeneratedBundle", "MARKET_SYMBOL"]

#: symbol of the market fund of the generated bundle (an ETF with no sector)
MARKET_SYMBOL = "SPY"

_SECTORS = ("Energy", "Materials", "Industrials", "Consumer Discretionary", "Consumer Staples",
            "Health Care", "Financials", "Information Technology", "Communication Services",
            "Utilities", "Real Estate")


class GeneratedBundle(NamedTuple):
    """What :func:`build_generated_bundle` returns (unpacks as ``name, extension``)."""

    #: the bundle name, for ``zipline run -b``
    name: str
    #: the extension file registering it, for ``zipline -e`` (``<root>/extension.py``,
    #: which zipline also loads by itself with ``ZIPLINE_ROOT=root``)
    extension: str


def _sessions(start, end):
    import exchange_calendars as xcals

    sessions = xcals.get_calendar("XNYS").sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
    return pd.DatetimeIndex(sessions).tz_localize(None)


def generated_prices(n_stocks, start, end, seed=0):
    """The generated prices and metadata (no I/O).

    Returns
    -------
    prices : DataFrame
        Long format ``date, symbol, open, high, low, close, volume``.
    metadata : DataFrame
        ``symbol, name, sector, asset_type``.
    """
    sessions = _sessions(start, end)
    T, N = len(sessions), int(n_stocks)
    if N < 1 or T < 2:
        raise ValueError(f"need at least one stock and two sessions, got {N} and {T}")
    rng = np.random.default_rng(seed)
    sector = np.arange(N) % len(_SECTORS)
    market = rng.normal(0.0003, 0.01, T)
    sector_moves = rng.normal(0.0, 0.005, (T, len(_SECTORS)))
    beta = rng.uniform(0.6, 1.4, N)
    sigma = rng.uniform(0.008, 0.025, N)
    r = (beta * market[:, None] + sector_moves[:, sector]
         + sigma * rng.standard_normal((T, N)))
    r[0] = 0.0
    close = rng.uniform(20.0, 200.0, N) * np.exp(np.cumsum(r, axis=0))
    # the market fund: the average stock move (beta 1), with a little noise
    m_close = 300.0 * np.exp(np.cumsum(np.r_[0.0, market[1:] + rng.normal(0, 5e-4, T - 1)]))
    close = np.column_stack([close, m_close])
    symbols = [f"S{i:04d}" for i in range(N)] + [MARKET_SYMBOL]
    gap = rng.normal(0.0, 0.003, close.shape)
    open_ = close * np.exp(gap)
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = top * (1.0 + rng.uniform(0.0, 0.01, close.shape))
    low = bottom * (1.0 - rng.uniform(0.0, 0.01, close.shape))
    volume = np.round(rng.uniform(2e5, 5e6, close.shape[1]) * rng.lognormal(0.0, 0.3, close.shape))
    n_cols = close.shape[1]
    prices = pd.DataFrame({
        "date": np.repeat(sessions.to_numpy(), n_cols),
        "symbol": np.tile(np.array(symbols, dtype=object), T),
        "open": open_.reshape(-1).round(3),
        "high": high.reshape(-1).round(3),
        "low": low.reshape(-1).round(3),
        "close": close.reshape(-1).round(3),
        "volume": volume.reshape(-1),
    })
    metadata = pd.DataFrame({
        "symbol": symbols,
        "name": symbols,
        "sector": [_SECTORS[s] for s in sector] + [""],
        "asset_type": ["stock"] * N + ["etf"],
    })
    return prices, metadata


def _ingested(root, name):
    folder = Path(root) / "data" / name
    return folder.is_dir() and any(
        p.is_dir() and any(p.iterdir()) for p in folder.iterdir())


def build_generated_bundle(root, n_stocks, start, end, seed=0, name=None):
    """Write, register and ingest a generated bundle into the zipline root ``root``.

    Parameters
    ----------
    root : str or path
        A zipline root (``ZIPLINE_ROOT``); created if missing. The price files go
        to ``<root>/generated_src/<name>``; ``<root>/extension.py`` gets a line
        registering the bundle, so ``zipline run`` with ``ZIPLINE_ROOT=root`` (or
        ``-e <root>/extension.py``) finds it.
    n_stocks : int
        Stocks, named ``S0000``, ``S0001``, ..., in the eleven GICS sectors in turn;
        the market fund ``SPY`` (an ETF) comes on top.
    start, end : date-like
        First and last session of the data (XNYS sessions). A backtest with a
        252-session risk window needs data from about 13 months before its start.
    seed : int, default 0
    name : str, optional
        Bundle name; default ``factorarb-generated-<n_stocks>-<seed>``.

    Returns
    -------
    GeneratedBundle
        ``(name, extension)``: the bundle name and the path of the extension file
        that registers it. A bundle of that name already ingested into ``root`` is
        reused (registered again, not regenerated).
    """
    from zipline.data import bundles

    from zipline_factorarb import register_csv_bundle

    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    name = name or f"factorarb-generated-{int(n_stocks)}-{int(seed)}"
    src = root / "generated_src" / name
    register_csv_bundle(name, src)
    line = (f"register_csv_bundle({name!r}, {str(src)!r})  # benchmarks/_generated.py\n")
    ext = root / "extension.py"
    text = ext.read_text() if ext.exists() else "from zipline_factorarb import register_csv_bundle\n"
    if line not in text:
        ext.write_text(text + line)
    result = GeneratedBundle(name, str(ext))
    if _ingested(root, name):
        return result
    src.mkdir(parents=True, exist_ok=True)
    prices, metadata = generated_prices(n_stocks, start, end, seed)
    prices.to_parquet(src / "prices.parquet", index=False)
    metadata.to_csv(src / "metadata.csv", index=False)
    environ = {**os.environ, "ZIPLINE_ROOT": str(root)}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        bundles.ingest(name, environ=environ, show_progress=False)
    return result


if __name__ == "__main__":  # pragma: no cover - manual use
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("n_stocks", type=int)
    parser.add_argument("start")
    parser.add_argument("end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name")
    args = parser.parse_args()
    print(*build_generated_bundle(args.root, args.n_stocks, args.start, args.end, args.seed,
                                  args.name))
