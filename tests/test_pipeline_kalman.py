"""KalmanInnovation inside real pipeline runs, against the kernel on independent data.

The reference numbers are computed here from the source prices (skfolio's
files for the sample, the ETF CSV's adjusted closes for the real data) and
the kernels (``pca_factors``, ``kalman_last``) called directly, never through
the factor's own window function.
"""

import numpy as np
import pandas as pd
import pytest

from conftest import zipline_environ

from zipline_factorarb.kernels.kalman import kalman_last
from zipline_factorarb.kernels.pca import pca_factors

SECTOR_ETFS = ["XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY"]
SAMPLE_ETFS = ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"]
DELTA, V_E, P0 = 1e-5, 1e-4, 1.0


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _run(root, monkeypatch, columns, start, end, bundle="factorarb-sample", screen=None,
         chunksize=None):
    from zipline.pipeline import Pipeline

    from zipline_factorarb.pipeline.research import run_pipeline

    monkeypatch.setenv("ZIPLINE_ROOT", str(root))
    out = run_pipeline(Pipeline(columns, screen=screen), start, end, bundle=bundle,
                       chunksize=chunksize, environ=zipline_environ(root))
    out.index = out.index.set_levels(
        [out.index.levels[0].tz_localize(None) if out.index.levels[0].tz else out.index.levels[0],
         [a.symbol for a in out.index.levels[1]]])
    return out


def _assets(root, bundle, symbols):
    from zipline.data.bundles import load

    from zipline_factorarb.data.register import register_bundles

    register_bundles()
    finder = load(bundle, environ=zipline_environ(root)).asset_finder
    return [finder.lookup_symbol(s, as_of_date=None) for s in symbols]


@pytest.fixture(scope="module")
def sample_log_returns():
    """Log returns of the sample's source prices (as stored: 3 decimals)."""
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset

    prices = pd.concat([load_sp500_dataset(), load_factors_dataset()], axis=1)
    prices.index = pd.DatetimeIndex(prices.index).normalize()
    return np.log(prices.round(3)).diff()


@pytest.fixture(scope="module")
def etf_csv_frames(shared_data_dir):
    frame = pd.read_csv(shared_data_dir / "spdr_sector_etfs_daily.csv.gz", parse_dates=["date"])
    adj = frame.pivot(index="date", columns="symbol", values="adj_close")
    close = frame.pivot(index="date", columns="symbol", values="close")
    return np.log(adj).diff(), np.log(close).diff()


def _window(returns, day, length):
    """The ``length`` returns that end on the session before ``day``."""
    return returns.loc[: day - pd.Timedelta(days=1)].iloc[-length:]


def _reference(window, factors=None, k=3):
    """Kernel on an independent window: PCA scores (or given factors), then the filter."""
    r = window.to_numpy()
    f = pca_factors(r, k).scores if factors is None else factors.to_numpy()
    return kalman_last(r, f, DELTA, V_E, P0)


# --------------------------------------------------------------------------
# no engine: window function, parameters
# --------------------------------------------------------------------------


def test_bad_parameters_fail_at_construction():
    from zipline_factorarb import KalmanInnovation

    cases = [
        (dict(window_length=1), ValueError, "window_length must be >= 2"),
        (dict(window_length=25.0), TypeError, "window_length must be an integer"),
        (dict(k=0), ValueError, "k must be >= 1"),
        (dict(k=10, window_length=10), ValueError, "need a window longer than k"),
        (dict(state_noise=-1e-5), ValueError, "state_noise must be >= 0"),
        (dict(state_noise=float("nan")), ValueError, "state_noise must be finite"),
        (dict(obs_noise=0.0), ValueError, "obs_noise must be > 0"),
        (dict(obs_noise="1e-4"), TypeError, "obs_noise must be a number"),
        (dict(p0=0), ValueError, "p0 must be > 0"),
        (dict(min_observations=300), ValueError, "min_observations must be between 1 and 252"),
        (dict(factors="ica"), ValueError, "factors must be 'pca' or a list"),
        (dict(factors=[]), ValueError, "factors is an empty list"),
        (dict(factors=[3.5]), TypeError, "must be zipline Assets or symbols"),
        (dict(factors=["MTUM"]), ValueError, "no algorithm is running"),
        (dict(log_returns="yes"), TypeError, "log_returns must be True or False"),
        (dict(mask="stocks"), TypeError, "mask must be a zipline Filter"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            KalmanInnovation(**kwargs)


def test_symbols_resolve_in_a_bundle_and_k_must_match(sample_root, monkeypatch):
    from zipline_factorarb import KalmanInnovation

    monkeypatch.setenv("ZIPLINE_ROOT", str(sample_root))
    term = KalmanInnovation(factors=["MTUM", "USMV"], bundle="factorarb-sample")
    assert [a.symbol for a in term.factor_assets] == ["MTUM", "USMV"]
    assert term.n_factors == 2 and len(term.betas) == 2
    assert term.outputs[-2:] == ("beta_0", "beta_1")
    with pytest.raises(ValueError, match="k=3 does not match the 2 factor assets"):
        KalmanInnovation(factors=["MTUM", "USMV"], k=3, bundle="factorarb-sample")
    with pytest.raises(ValueError, match="must be distinct"):
        KalmanInnovation(factors=["MTUM", "MTUM"], bundle="factorarb-sample")
    with pytest.raises(ValueError, match="'NOPE' not found in bundle"):
        KalmanInnovation(factors=["NOPE"], bundle="factorarb-sample")


# --------------------------------------------------------------------------
# sample bundle: the factor equals the kernel on skfolio's prices
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_run(sample_root):
    """One pipeline run on the sample with the PCA and the ETF factor sources."""
    from zipline_factorarb import KalmanInnovation
    from zipline_factorarb.pipeline.classifiers import IsStock, IsTradable

    etfs = _assets(sample_root, "factorarb-sample", SAMPLE_ETFS)
    pca = KalmanInnovation(factors="pca", k=3, mask=IsStock())
    etf = KalmanInnovation(factors=etfs, mask=IsStock())
    # stocks and ETFs: the ETFs start on 2014-01-02, inside the window
    mixed = KalmanInnovation(factors="pca", k=3, mask=IsTradable(), min_observations=20)
    etf_new = KalmanInnovation(factors=etfs, mask=IsStock(), min_observations=20)
    columns = {
        "e": pca.innovation, "z": pca.standardized_innovation, "Q": pca.innovation_variance,
        "n": pca.n_observations, **{f"b{j}": b for j, b in enumerate(pca.betas)},
        "etf_e": etf.innovation, "etf_z": etf.standardized_innovation,
        "etf_n": etf.n_observations, **{f"etf_b{j}": b for j, b in enumerate(etf.betas)},
        "mixed_e": mixed.innovation, "mixed_z": mixed.standardized_innovation,
        "mixed_n": mixed.n_observations,
        "etf_new_e": etf_new.innovation, "etf_new_z": etf_new.standardized_innovation,
        "etf_new_b0": etf_new.beta_0,
    }
    with pytest.MonkeyPatch.context() as mp:
        late = _run(sample_root, mp, columns, "2016-03-01", "2016-03-04")
        new = _run(sample_root, mp, columns, "2014-03-03", "2014-03-04")
    return late, new


def test_pca_source_equals_kernel_on_source_prices(sample_run, sample_log_returns):
    late, _ = sample_run
    from zipline_factorarb.data.sources import SAMPLE_SECTORS

    stocks = sorted(SAMPLE_SECTORS)
    days = late.index.get_level_values(0).unique()
    assert len(days) == 4
    for day in days:
        got = late.loc[day].reindex(stocks)
        window = _window(sample_log_returns[stocks], day, 252)
        assert window.notna().all().all()
        ref = _reference(window)
        np.testing.assert_allclose(got["e"], ref.innovations, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(got["z"], ref.standardized_innovations, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(got["Q"], ref.innovation_variance, rtol=1e-9)
        for j in range(3):
            np.testing.assert_allclose(got[f"b{j}"], ref.betas[:, j], rtol=1e-8, atol=1e-12)
        assert (got["n"] == 252).all()
    # the index and the ETFs are outside IsStock(): no values
    assert np.isnan(late.loc[(days[0], "SP500"), "e"])
    assert np.isnan(late.loc[(days[0], "MTUM"), "e"])


def test_etf_source_equals_kernel_on_source_prices(sample_run, sample_log_returns):
    late, new = sample_run
    from zipline_factorarb.data.sources import SAMPLE_SECTORS

    stocks = sorted(SAMPLE_SECTORS)
    for day in late.index.get_level_values(0).unique():
        got = late.loc[day].reindex(stocks)
        window = _window(sample_log_returns, day, 252)
        ref = _reference(window[stocks], window[SAMPLE_ETFS])
        np.testing.assert_allclose(got["etf_e"], ref.innovations, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(got["etf_z"], ref.standardized_innovations, rtol=1e-9,
                                   atol=1e-11)
        for j in range(5):
            np.testing.assert_allclose(got[f"etf_b{j}"], ref.betas[:, j], rtol=1e-8, atol=1e-12)

    # 2014-03-03: the factor ETFs have 39 returns in the 252-day window; the
    # filter skips the steps before they exist and, below min_observations
    # (252 // 4 = 63 by default), reports NaN
    day = pd.Timestamp("2014-03-03")
    got = new.loc[day].reindex(stocks)
    window = _window(sample_log_returns, day, 252)
    observed = int(window[SAMPLE_ETFS].notna().all(axis=1).sum())
    assert observed == 39
    assert (got["etf_n"] == observed).all()
    assert got["etf_e"].isna().all()
    # with min_observations=20 the same window is reported: the kernel with
    # NaN factor rows (skipped steps) gives the same numbers
    ref = _reference(window[stocks], window[SAMPLE_ETFS])
    np.testing.assert_allclose(got["etf_new_e"], ref.innovations, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(got["etf_new_z"], ref.standardized_innovations, rtol=1e-9,
                               atol=1e-11)
    np.testing.assert_allclose(got["etf_new_b0"], ref.betas[:, 0], rtol=1e-8, atol=1e-12)
    assert np.isfinite(ref.innovations).all()


def test_asset_listed_mid_window(sample_run, sample_log_returns):
    """ETFs listed inside the window: left out of the PCA fit, filtered on their own days."""
    _, new = sample_run
    from zipline_factorarb.data.sources import SAMPLE_SECTORS

    stocks = sorted(SAMPLE_SECTORS)
    names = stocks + SAMPLE_ETFS
    for day in new.index.get_level_values(0).unique():
        got = new.loc[day].reindex(names)
        window = _window(sample_log_returns[names], day, 252)
        missing = window[SAMPLE_ETFS].isna().sum()
        assert (missing > 200).all()  # listed 2014-01-02
        # PCA fitted on the complete (stock) columns only; ETFs filtered
        # against those scores over the steps where they have returns
        scores = pca_factors(window[stocks].to_numpy(), 3).scores
        np.testing.assert_allclose(pca_factors(window.to_numpy(), 3).scores, scores, rtol=1e-12)
        ref = kalman_last(window.to_numpy(), scores, DELTA, V_E, P0)
        np.testing.assert_allclose(got["mixed_e"], ref.innovations, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(got["mixed_z"], ref.standardized_innovations, rtol=1e-9,
                                   atol=1e-11)
        np.testing.assert_array_equal(got["mixed_n"].to_numpy(),
                                      window.notna().sum().to_numpy())
        assert got.loc[SAMPLE_ETFS, "mixed_z"].notna().all()


def test_same_value_whatever_the_start_or_chunksize(sample_root, monkeypatch):
    from zipline_factorarb import KalmanInnovation
    from zipline_factorarb.pipeline.classifiers import IsStock

    etfs = _assets(sample_root, "factorarb-sample", SAMPLE_ETFS)
    pca = KalmanInnovation(factors="pca", k=3, mask=IsStock(), window_length=126)
    etf = KalmanInnovation(factors=etfs, mask=IsStock(), window_length=126)
    columns = {"pca_z": pca.standardized_innovation, "pca_b": pca.beta_0,
               "etf_z": etf.standardized_innovation, "etf_b": etf.beta_4}
    whole = _run(sample_root, monkeypatch, columns, "2019-01-02", "2019-02-28", screen=IsStock())
    chunked = _run(sample_root, monkeypatch, columns, "2019-01-02", "2019-02-28",
                   screen=IsStock(), chunksize=7)
    later = _run(sample_root, monkeypatch, columns, "2019-02-11", "2019-02-28",
                 screen=IsStock(), chunksize=3)
    assert len(whole) == 20 * 40 and whole.notna().all().all()
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
    pd.testing.assert_frame_equal(later, whole.loc["2019-02-11":], check_exact=True)


# --------------------------------------------------------------------------
# real SPDR sector ETFs (dividends): the factor equals the kernel on adj_close
# --------------------------------------------------------------------------


def test_sector_etfs_equal_kernel_on_adjusted_closes(shared_csv_root, etf_csv_frames,
                                                     monkeypatch):
    from zipline.pipeline.filters import StaticAssets

    from zipline_factorarb import KalmanInnovation

    root = shared_csv_root["root"]
    adj_returns, raw_returns = etf_csv_frames
    assets = _assets(root, "factorarb-csv", SECTOR_ETFS + ["SPY"])
    universe = StaticAssets(assets[:9])
    pca = KalmanInnovation(mask=universe)  # the study's setup: k=3, 252 days, log returns
    spy = KalmanInnovation(factors=[assets[9]], mask=universe, window_length=126)
    columns = {"e": pca.innovation, "z": pca.standardized_innovation,
               **{f"b{j}": b for j, b in enumerate(pca.betas)},
               "spy_e": spy.innovation, "spy_b": spy.beta_0}
    out = _run(root, monkeypatch, columns, "2020-03-09", "2020-03-13", bundle="factorarb-csv",
               screen=universe, chunksize=2)
    days = out.index.get_level_values(0).unique()
    assert len(days) == 5
    for day in days:
        got = out.loc[day].reindex(SECTOR_ETFS)
        window = _window(adj_returns[SECTOR_ETFS], day, 252)
        ref = _reference(window)
        # zipline's dividend adjustments reproduce adj_close returns to ~5e-7
        np.testing.assert_allclose(got["e"], ref.innovations, atol=2e-6)
        np.testing.assert_allclose(got["z"], ref.standardized_innovations, atol=2e-4)
        for j in range(3):
            np.testing.assert_allclose(got[f"b{j}"], ref.betas[:, j], atol=1e-3)
        short = _window(adj_returns, day, 126)
        ref = _reference(short[SECTOR_ETFS], short[["SPY"]])
        np.testing.assert_allclose(got["spy_e"], ref.innovations, atol=2e-6)
        np.testing.assert_allclose(got["spy_b"], ref.betas[:, 0], atol=1e-3)
        # without the dividend adjustments the numbers would be visibly off
        raw = _reference(_window(raw_returns[SECTOR_ETFS], day, 252))
        ref = _reference(window)
        off = np.abs(raw.innovations - got["e"].to_numpy()).max()
        assert off > 20 * np.abs(ref.innovations - got["e"].to_numpy()).max()


def test_returns_choice_is_explicit_and_old_keywords_warn():
    from zipline_factorarb.pipeline import DailyReturns, KalmanInnovation, PCAResidual, SScore

    with pytest.raises(TypeError, match="DailyReturns needs log=True"):
        DailyReturns()
    with pytest.warns(DeprecationWarning, match="use log="):
        assert DailyReturns(log_returns=False) is DailyReturns(log=False)
    with pytest.raises(TypeError, match="log must be True or False"):
        DailyReturns(log="yes")
    for term in (KalmanInnovation, SScore, PCAResidual):
        with pytest.warns(DeprecationWarning, match="k is deprecated; use components"):
            old = term(k=2)
        assert old is term(components=2)
        with pytest.raises(TypeError, match="not both"):
            term(components=2, k=2)
        with pytest.raises(ValueError, match="components must be >= 1"):
            term(components=0)


def test_fixed_pca_signal_against_sklearn_and_a_plain_loop(shared_data_dir):
    """The fixed-PCA signal of the Kalman study's algorithm, on the real SPDR closes.

    References: the loadings and mean of scikit-learn's PCA fitted on the
    training returns, and the random-walk-beta filter written as a loop.
    """
    from sklearn.decomposition import PCA

    from zipline_factorarb.pipeline import fit_fixed_pca, fixed_pca_signal

    frame = pd.read_csv(shared_data_dir / "spdr_sector_etfs_daily.csv.gz", parse_dates=["date"])
    closes = frame.pivot(index="date", columns="symbol", values="adj_close")[
        ["SPY"] + SECTOR_ETFS].loc["2012-01-03":"2015-12-31"]
    fixed = fit_fixed_pca(closes, "2012-01-03", "2014-12-31", components=3)
    train = np.log(closes.loc[:"2014-12-31"]).diff().iloc[1:].to_numpy()
    pca = PCA(3).fit(train)
    window = closes.loc["2015-01-02":"2015-06-30"]
    returns = np.log(window).diff().iloc[1:].to_numpy()
    np.testing.assert_allclose(fixed.mean.to_numpy(), pca.mean_, atol=1e-14)
    # each component's sign is arbitrary: align sklearn's to the package's
    signs = np.sign(np.sum(fixed.loadings.to_numpy() * pca.components_.T, axis=0))
    W = pca.components_.T * signs
    np.testing.assert_allclose(fixed.loadings.to_numpy(), W, atol=1e-10)
    F = (returns - pca.mean_) @ W
    for centre in (False, True):
        y = returns - pca.mean_ if centre else returns
        n = y.shape[1]
        beta, P = np.zeros((n, 3)), np.stack([np.eye(3)] * n)
        e, z = np.empty(n), np.empty(n)
        for t in range(len(y)):
            for i in range(n):
                P_pred = P[i] + 1e-5 * np.eye(3)
                e[i] = y[t, i] - F[t] @ beta[i]
                Q = F[t] @ P_pred @ F[t] + 1e-4
                gain = P_pred @ F[t] / Q
                beta[i] = beta[i] + gain * e[i]
                P[i] = P_pred - np.outer(gain, F[t] @ P_pred)
                z[i] = e[i] / np.sqrt(Q)
        for signal, want in (("innovation", e), ("standardized_innovation", z)):
            got = fixed_pca_signal(window, fixed, signal, state_noise=1e-5, obs_noise=1e-4,
                                   centre=centre)
            assert list(got.index) == ["SPY"] + SECTOR_ETFS
            np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-8, atol=1e-12)
    got = fixed_pca_signal(window, fixed, "pca_residual")
    want = returns[-1] - ((returns[-1] - pca.mean_) @ W @ W.T + pca.mean_)
    np.testing.assert_allclose(got.to_numpy(), want, atol=1e-12)
