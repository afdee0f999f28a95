"""Shared test fixtures.

Real price files live in ``../shared/data`` beside the checkout (override with
``FACTORARB_SHARED_DATA``). They are test data, never copied into the
repository; tests that need them skip with a reason when the folder is absent.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_path():
    """Folder of the real price files, or None when it is not there."""
    env = os.environ.get("FACTORARB_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data_dir():
    path = shared_data_path()
    if path is None:
        pytest.skip(
            "real price data not found: expected ../shared/data beside the "
            "checkout or FACTORARB_SHARED_DATA pointing to it"
        )
    return path


def zipline_environ(root, **extra):
    """An environment mapping for zipline calls that use ``root``."""
    env = {k: v for k, v in os.environ.items() if k not in ("FACTORARB_CSV_DIR", "FACTORARB_PARAMS")}
    env["ZIPLINE_ROOT"] = str(root)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def ingest(name, root, **extra):
    """Ingest bundle ``name`` into the zipline root ``root`` (real zipline)."""
    from zipline.data.bundles import ingest as zipline_ingest

    from zipline_factorarb.data.register import register_bundles

    register_bundles()
    zipline_ingest(name, environ=zipline_environ(root, **extra), show_progress=False)


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory):
    """A zipline root with the embedded sample ingested once per session."""
    root = tmp_path_factory.mktemp("zipline_sample")
    ingest("factorarb-sample", root)
    return root


def write_shared_csv_dirs(shared, dest):
    """Folders in our CSV layout over the real files (links + metadata).

    ``dest/etfs``: the SPDR sector ETFs and SPY; ``dest/stocks``: the 505
    S&P 500 stocks with their GICS sectors.
    """
    import pandas as pd

    etfs = dest / "etfs"
    stocks = dest / "stocks"
    etfs.mkdir(parents=True, exist_ok=True)
    stocks.mkdir(parents=True, exist_ok=True)
    (etfs / "prices.csv.gz").symlink_to(shared / "spdr_sector_etfs_daily.csv.gz")
    (stocks / "prices.csv.gz").symlink_to(shared / "sp500_stocks_daily_2013_2018.csv.gz")
    etf_sectors = {
        "XLB": "Materials", "XLE": "Energy", "XLF": "Financials", "XLI": "Industrials",
        "XLK": "Information Technology", "XLP": "Consumer Staples", "XLU": "Utilities",
        "XLV": "Health Care", "XLY": "Consumer Discretionary", "XLC": "Communication Services",
        "XLRE": "Real Estate", "SPY": "",
    }
    pd.DataFrame({
        "symbol": list(etf_sectors), "name": list(etf_sectors),
        "sector": list(etf_sectors.values()), "asset_type": "etf",
    }).to_csv(etfs / "metadata.csv", index=False)
    gics = pd.read_csv(shared / "sp500_stocks_gics_sectors_2018.csv")
    pd.DataFrame({
        "symbol": gics["symbol"], "name": gics["name"], "sector": gics["gics_sector"],
        "asset_type": "stock",
    }).to_csv(stocks / "metadata.csv", index=False)
    return etfs, stocks


@pytest.fixture(scope="session")
def shared_csv_root(shared_data_dir, tmp_path_factory):
    """A zipline root with the real ETF and stock data ingested.

    ``factorarb-csv`` holds the sector ETFs (adjusted closes -> dividends);
    ``factorarb-csv-stocks`` the 505 stocks, registered with
    ``ohlc='repair'`` because the source has a dozen rows whose open lies
    outside [low, high] (see the data README).
    """
    from zipline_factorarb.data.register import register_csv_bundle

    base = tmp_path_factory.mktemp("shared_csv")
    etfs, stocks = write_shared_csv_dirs(shared_data_dir, base / "src")
    root = base / "zipline"
    root.mkdir()
    ingest("factorarb-csv", root, FACTORARB_CSV_DIR=etfs)
    register_csv_bundle("factorarb-csv-stocks", stocks, ohlc="repair")
    ingest("factorarb-csv-stocks", root)
    # an extension so that `zipline run` subprocesses see the stock bundle too
    (root / "extension.py").write_text(
        "from zipline_factorarb import register_csv_bundle\n"
        f"register_csv_bundle('factorarb-csv-stocks', {str(stocks)!r}, ohlc='repair')\n"
    )
    return dict(root=root, etfs=etfs, stocks=stocks)


def zipline_cli(root, *args, extra_env=None):
    """Run the real `zipline` command line with our extension file."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "zipline", "-e", str(REPO_ROOT / "bundles" / "extension.py"), *args]
    env = zipline_environ(root, **(extra_env or {}))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def sample_perf(sample_root, tmp_path_factory):
    """Perf pickle of the main algorithm over the whole demo range (2005-2022)."""
    return run_algorithm_file(sample_root, "sector_momentum", "2005-01-03", "2022-12-28",
                              tmp_path_factory.mktemp("run") / "perf.pickle")


def run_algorithm_file(root, name, start, end, out, bundle="factorarb-sample"):
    """``zipline run -f algorithms/<name>.py`` on ``bundle`` in ``root``; the perf pickle ``out``."""
    result = zipline_cli(root, "run", "-f", str(REPO_ROOT / "algorithms" / f"{name}.py"),
                         "-b", bundle, "-s", start, "-e", end, "-o", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def run_in_sample(sample_root, initialize, start, end, capital_base=1e6):
    """zipline's ``run_algorithm`` of an ``initialize`` function on the embedded sample."""
    import pandas as pd
    from zipline import run_algorithm

    from zipline_factorarb.data.register import register_bundles

    register_bundles()
    return run_algorithm(
        start=pd.Timestamp(start), end=pd.Timestamp(end), initialize=initialize,
        capital_base=capital_base, data_frequency="daily", bundle="factorarb-sample",
        environ=zipline_environ(sample_root),
    )


def bundle_closes(bundle, root, end, sessions_back):
    """Closes of every asset for the ``sessions_back`` sessions before ``end``
    (excluded), read straight from the bundle's daily bars: (frame, asset finder)."""
    import pandas as pd
    from zipline.data import bundles

    data = bundles.load(bundle, environ=zipline_environ(root))
    try:
        reader = data.equity_daily_bar_reader
        sessions = reader.sessions
        sessions = sessions[sessions < pd.Timestamp(end)][-sessions_back:]
        finder = data.asset_finder
        assets = finder.retrieve_all(finder.sids)
        close = reader.load_raw_arrays(["close"], sessions[0], sessions[-1],
                                       [a.sid for a in assets])[0]
        return pd.DataFrame(close, index=sessions, columns=[a.symbol for a in assets]), finder
    finally:
        data.close()


def break_clarabel(monkeypatch):
    """Make every Clarabel solve raise a real cvxpy ``SolverError``."""
    import cvxpy as cp
    from cvxpy.reductions.solvers.conic_solvers import clarabel_conif

    def broken(self, *args, **kwargs):
        raise cp.error.SolverError("simulated Clarabel failure")

    monkeypatch.setattr(clarabel_conif.CLARABEL, "solve_via_data", broken)


def clarabel_inaccurate(monkeypatch, shift=0.0):
    """Flag Clarabel's solutions ``OPTIMAL_INACCURATE``, each primal value moved by ``shift``."""
    import cvxpy as cp
    import numpy as np
    from cvxpy.reductions.solvers.conic_solvers import clarabel_conif

    real_invert = clarabel_conif.CLARABEL.invert

    def inaccurate(self, solution, inverse_data):
        out = real_invert(self, solution, inverse_data)
        out.status = cp.OPTIMAL_INACCURATE
        for key in out.primal_vars:
            out.primal_vars[key] = np.asarray(out.primal_vars[key]) + shift
        return out

    monkeypatch.setattr(clarabel_conif.CLARABEL, "invert", inaccurate)


def reference_filter(r, f, delta, v_e, beta0=None, p0=1.0):
    """Kalman filter of the seed's equations, asset by asset, step by step.

    The independent reference of the Kalman kernels: returns the innovations and
    their variances (T, N), the betas (T, N, K) and the final beta (N, K) and P
    (N, K, K). A missing return or factor row predicts only.
    """
    import numpy as np

    T, N = r.shape
    K = f.shape[-1]
    innov = np.full((T, N), np.nan)
    qvar = np.full((T, N), np.nan)
    betas = np.empty((T, N, K))
    beta_T = np.empty((N, K))
    P_T = np.empty((N, K, K))
    eye = np.eye(K)
    for i in range(N):
        beta = np.zeros(K) if beta0 is None else np.array(beta0[i], dtype=float)
        P = p0 * eye if np.ndim(p0) == 0 else np.array(p0[i], dtype=float)
        for t in range(T):
            f_t = f[t] if f.ndim == 2 else f[t, i]
            P_pred = P + delta * eye  # predict
            if np.isnan(r[t, i]) or np.isnan(f_t).any():
                P = P_pred  # no observation: predict only
            else:
                e = r[t, i] - f_t @ beta
                Q = f_t @ P_pred @ f_t + v_e
                gain = P_pred @ f_t / Q
                beta = beta + gain * e
                P = P_pred - np.outer(gain, f_t) @ P_pred
                innov[t, i] = e
                qvar[t, i] = Q
            betas[t, i] = beta
        beta_T[i] = beta
        P_T[i] = P
    return innov, qvar, betas, beta_T, P_T
