"""SScore inside real pipeline runs, against the s-score kernel on independent data."""

import numpy as np
import pandas as pd
import pytest

from test_pipeline_kalman import SAMPLE_ETFS, SECTOR_ETFS, _assets, _run, _window

from zipline_factorarb.kernels.ou import sscore
from zipline_factorarb.kernels.pca import pca_factors

OUT = ["s_score", "kappa", "m", "sigma_eq", "mean_reversion_days"]


@pytest.fixture(scope="module")
def sample_simple_returns():
    """Simple returns of the sample's source prices (as stored: 3 decimals)."""
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset

    prices = pd.concat([load_sp500_dataset(), load_factors_dataset()], axis=1)
    prices.index = pd.DatetimeIndex(prices.index).normalize()
    prices = prices.round(3)
    return prices / prices.shift(1) - 1.0


def _compare(got, ref, prefix="", rtol=1e-8, atol=1e-10):
    np.testing.assert_array_equal(got[prefix + "valid"].to_numpy() == 1.0, ref.valid)
    for name in OUT:
        np.testing.assert_allclose(got[prefix + name].to_numpy(), getattr(ref, name), rtol=rtol,
                                   atol=atol, err_msg=name)


def test_bad_parameters():
    from zipline_factorarb import SScore

    cases = [
        (dict(window_length=2), ValueError, "window_length must be >= 3"),
        (dict(window_length=6), ValueError, "need at least K \\+ 4 = 7"),
        (dict(k=-1), ValueError, "k must be >= 1"),
        (dict(max_mean_reversion_days=0), ValueError, "max_mean_reversion_days must be > 0"),
        (dict(periods_per_year=float("inf")), ValueError, "periods_per_year must be finite"),
        (dict(center_m=1), TypeError, "center_m must be True or False"),
        (dict(factors="etf"), ValueError, "factors must be 'pca' or a list"),
        (dict(factors=["SPY"]), ValueError, "no algorithm is running"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            SScore(**kwargs)
    term = SScore(max_mean_reversion_days=None)
    assert term.outputs == ("s_score", "kappa", "m", "sigma_eq", "mean_reversion_days", "valid")


def test_sample_sscore_equals_kernel(sample_root, sample_simple_returns, monkeypatch):
    from zipline_factorarb import SScore
    from zipline_factorarb.data.sources import SAMPLE_SECTORS
    from zipline_factorarb.pipeline.classifiers import IsStock

    stocks = sorted(SAMPLE_SECTORS)
    etfs = _assets(sample_root, "factorarb-sample", SAMPLE_ETFS)
    pca = SScore(mask=IsStock())  # 60 days, k=3
    etf = SScore(factors=etfs, mask=IsStock(), max_mean_reversion_days=20)
    columns = {**{n: getattr(pca, n) for n in OUT + ["valid"]},
               **{f"etf_{n}": getattr(etf, n) for n in OUT + ["valid"]},
               "fast": pca.mean_reverting()}
    out = _run(sample_root, monkeypatch, columns, "2020-03-16", "2020-03-20", screen=IsStock())
    chunked = _run(sample_root, monkeypatch, columns, "2020-03-18", "2020-03-20",
                   screen=IsStock(), chunksize=1)
    pd.testing.assert_frame_equal(chunked, out.loc["2020-03-18":], check_exact=True)
    n_valid = 0
    for day in out.index.get_level_values(0).unique():
        got = out.loc[day].reindex(stocks)
        window = _window(sample_simple_returns, day, 60)
        r = window[stocks].to_numpy()
        _compare(got, sscore(r, pca_factors(r, 3).scores))
        np.testing.assert_array_equal(got["fast"].to_numpy(), got["valid"].to_numpy() == 1.0)
        ref = sscore(r, window[SAMPLE_ETFS].to_numpy(), max_mean_reversion_days=20)
        _compare(got, ref, prefix="etf_")
        n_valid += int(got["etf_valid"].sum())
    # the 20-day cut drops some names, not most
    assert 0.5 * len(out) < n_valid < len(out)
    slow = out[out["etf_valid"] == 0.0]
    assert (slow["etf_mean_reversion_days"].dropna() >= 20).all()


def test_sector_etfs_sscore_against_spy(shared_csv_root, shared_data_dir, monkeypatch):
    """Sector ETFs scored against SPY (one ETF factor), on the real adjusted closes."""
    from zipline.pipeline.filters import StaticAssets

    from zipline_factorarb import SScore

    root = shared_csv_root["root"]
    frame = pd.read_csv(shared_data_dir / "spdr_sector_etfs_daily.csv.gz", parse_dates=["date"])
    adj = frame.pivot(index="date", columns="symbol", values="adj_close")
    returns = adj / adj.shift(1) - 1.0
    assets = _assets(root, "factorarb-csv", SECTOR_ETFS + ["SPY"])
    universe = StaticAssets(assets[:9])
    term = SScore(factors=[assets[9]], mask=universe)
    out = _run(root, monkeypatch, {n: getattr(term, n) for n in OUT + ["valid"]},
               "2018-10-01", "2018-10-05", bundle="factorarb-csv", screen=universe)
    for day in out.index.get_level_values(0).unique():
        got = out.loc[day].reindex(SECTOR_ETFS)
        window = _window(returns, day, 60)
        ref = sscore(window[SECTOR_ETFS].to_numpy(), window[["SPY"]].to_numpy())
        np.testing.assert_array_equal(got["valid"].to_numpy() == 1.0, ref.valid)
        ok = ref.valid
        assert ok.sum() >= 3
        # adjusted closes vs zipline's derived dividends: returns agree to ~5e-7
        np.testing.assert_allclose(got["s_score"].to_numpy()[ok], ref.s_score[ok], atol=5e-3)
        np.testing.assert_allclose(got["kappa"].to_numpy()[ok], ref.kappa[ok], rtol=5e-3)
