"""Static PCA residuals: the rolling Pipeline factor and the fixed-loadings fit.

The rolling factor is checked inside a real pipeline run on the real SPDR
sector ETFs against ``pca_factors`` applied here to a window of returns
computed from the source file's adjusted closes. The fixed fit is checked
for look-ahead: its loadings depend only on prices inside the training
window. One short backtest runs the fixed-PCA strategies through the real
``zipline run`` and compares its holdings with residuals computed here.
"""

import numpy as np
import pandas as pd
import pytest

from test_kalman_algorithms import MOMENTUM, _backtest, _book, _load_algorithm
from test_pipeline_kalman import SECTOR_ETFS, _assets, _run, _window

from zipline_factorarb.kernels.kalman import kalman_filter, kalman_last
from zipline_factorarb.kernels.pca import pca_factors
from zipline_factorarb.pipeline.pca_residual import (
    PCAResidual,
    fit_fixed_pca,
    fixed_pca_residuals,
    pca_residual_window,
)

TRAIN = ("2016-01-04", "2018-12-31")


@pytest.fixture(scope="module")
def etf_adjusted(shared_data_dir):
    frame = pd.read_csv(shared_data_dir / "spdr_sector_etfs_daily.csv.gz", parse_dates=["date"])
    return frame.pivot(index="date", columns="symbol", values="adj_close")[SECTOR_ETFS]


# --------------------------------------------------------------------------
# no engine
# --------------------------------------------------------------------------


def test_window_residual_is_the_pca_residual_of_the_last_day():
    rng = np.random.default_rng(7)
    r = rng.normal(0, 0.01, (60, 3)) @ rng.normal(1, 0.5, (3, 9)) + rng.normal(0, 0.003, (60, 9))
    fit = pca_factors(r, 3)
    W, mu = fit.loadings, fit.mean
    expected = r[-1] - ((r[-1] - mu) @ W @ W.T + mu)
    np.testing.assert_allclose(pca_residual_window(r, 3), expected, rtol=1e-12, atol=1e-15)
    # the residual is orthogonal to the loadings
    np.testing.assert_allclose(pca_residual_window(r, 3) @ W, 0.0, atol=1e-15)
    # fixed loadings reproduce the in-sample residual of every day
    scores, residuals = fixed_pca_residuals(r, W, mu)
    np.testing.assert_allclose(scores, fit.scores, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(residuals[-1], expected, rtol=1e-12, atol=1e-15)
    # an asset with a missing return is left out of the fit
    r[10, 2] = np.nan
    out = pca_residual_window(r, 3)
    assert np.isnan(out[2]) and np.isfinite(np.delete(out, 2)).all()
    assert np.isnan(pca_residual_window(r[:, :2], 3)).all()


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="window longer than k"):
        PCAResidual(k=3, window_length=3)
    with pytest.raises(TypeError, match="log_returns"):
        PCAResidual(log_returns="yes")
    prices = pd.DataFrame(np.exp(np.cumsum(np.full((10, 4), 0.01), axis=0)),
                          index=pd.bdate_range("2020-01-01", periods=10))
    with pytest.raises(ValueError, match="set train_start and train_end"):
        fit_fixed_pca(prices, "", "2020-01-10")
    with pytest.raises(ValueError, match="holds 2 daily returns"):
        fit_fixed_pca(prices, "2020-01-01", "2020-01-03", components=3)


# --------------------------------------------------------------------------
# rolling PCA inside a real pipeline, against the kernel on independent data
# --------------------------------------------------------------------------


def test_rolling_residual_in_pipeline_matches_kernel(shared_csv_root, monkeypatch, etf_adjusted):
    from zipline.pipeline.filters import StaticAssets

    root = shared_csv_root["root"]
    universe = StaticAssets(_assets(root, "factorarb-csv", SECTOR_ETFS))
    term = PCAResidual(k=3, window_length=60, mask=universe)
    out = _run(root, monkeypatch, {"eps": term}, "2020-03-02", "2020-04-30",
               bundle="factorarb-csv", screen=universe)
    returns = np.log(etf_adjusted).diff()
    days = out.index.get_level_values(0).unique()
    assert len(days) > 35
    for day in days:
        r = _window(returns, day, 60).to_numpy()
        fit = pca_factors(r, 3)
        expected = r[-1] - (fit.scores[-1] @ fit.loadings.T + fit.mean)
        got = out.loc[day, "eps"].reindex(SECTOR_ETFS).to_numpy()
        # adjusted closes from the bundle's dividends vs the source's adj_close
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


# --------------------------------------------------------------------------
# fixed PCA: no look-ahead, and the backtest trades what it should
# --------------------------------------------------------------------------


def test_fixed_fit_reads_only_the_training_window(etf_adjusted):
    full = etf_adjusted.loc["2015-06-01":"2020-12-31"]
    truncated = full.loc[: TRAIN[1]]
    # prices after the training window replaced by noise, before it too
    rng = np.random.default_rng(0)
    noisy = full.copy()
    outside = (noisy.index > TRAIN[1]) | (noisy.index < TRAIN[0])
    noisy.loc[outside] = rng.lognormal(4, 0.5, (outside.sum(), len(SECTOR_ETFS)))
    fits = [fit_fixed_pca(p, *TRAIN, components=3) for p in (full, truncated, noisy)]
    for fit in fits[1:]:
        np.testing.assert_array_equal(fit.loadings.to_numpy(), fits[0].loadings.to_numpy())
        np.testing.assert_array_equal(fit.mean.to_numpy(), fits[0].mean.to_numpy())
    fit = fits[0]
    assert list(fit.loadings.columns) == ["pc1", "pc2", "pc3"]  # docs/glossary.md
    with pytest.warns(DeprecationWarning, match="k is deprecated"):
        old_name = fit_fixed_pca(full, *TRAIN, k=3)
    np.testing.assert_array_equal(old_name.loadings.to_numpy(), fit.loadings.to_numpy())
    assert fit.train_start == pd.Timestamp("2016-01-05")  # first return of the window
    assert fit.train_end == pd.Timestamp(TRAIN[1]) and fit.n_returns == 753
    # the kernel on the window's log returns, called directly
    window = np.log(full.loc[TRAIN[0]:TRAIN[1]]).diff().iloc[1:].to_numpy()
    ref = pca_factors(window, 3)
    np.testing.assert_allclose(fit.loadings.to_numpy(), ref.loadings, rtol=1e-12, atol=1e-14)
    assert fit.explained_variance_ratio.sum() > 0.8


def test_fixed_pca_requires_the_training_window(monkeypatch):
    algo = _load_algorithm(MOMENTUM, monkeypatch, {"factors": "fixed_pca"})
    with pytest.raises(ValueError, match="set train_start and train_end"):
        algo._check_params()
    algo = _load_algorithm(MOMENTUM, monkeypatch, {"factors": "fixed_pca", "universe": "etfs",
                                                   "train_start": TRAIN[0],
                                                   "train_end": TRAIN[1]})
    with pytest.raises(ValueError, match="list of symbols"):
        algo._check_params()
    algo = _load_algorithm(MOMENTUM, monkeypatch, {"signal": "residual"})
    with pytest.raises(ValueError, match="signal must be one of"):
        algo._check_params()
    algo = _load_algorithm(MOMENTUM, monkeypatch, {"filter_state": "carried"})
    with pytest.raises(ValueError, match="filter_state='carried' needs factors='fixed_pca'"):
        algo._check_params()
    algo = _load_algorithm(MOMENTUM, monkeypatch, {"filter_state": "kept"})
    with pytest.raises(ValueError, match="filter_state must be"):
        algo._check_params()


@pytest.mark.parametrize("signal", ["pca_residual", "kalman", "kalman_carried"])
def test_fixed_pca_backtest_holds_the_extreme_residuals(signal, shared_csv_root, etf_adjusted,
                                                        tmp_path):
    params = {"factors": "fixed_pca", "signal": signal.replace("_carried", ""),
              "train_start": TRAIN[0], "train_end": TRAIN[1]}
    if signal == "kalman_carried":
        params["filter_state"] = "carried"
    perf = _backtest(shared_csv_root["root"], MOMENTUM, "factorarb-csv", "2019-01-02",
                     "2019-04-30", tmp_path, params)
    book = _book(perf)
    fit = fit_fixed_pca(etf_adjusted, *TRAIN, components=3)
    W, mu = fit.loadings.loc[SECTOR_ETFS].to_numpy(), fit.mean.loc[SECTOR_ETFS].to_numpy()
    returns = np.log(etf_adjusted).diff()
    checked = 0
    days = perf.index
    for i, day in enumerate(days[:-1]):
        # the signal of `day` (returns to its previous close) is filled at the next close
        r = _window(returns, day, 1 if signal == "pca_residual" else 252).to_numpy()
        if signal == "kalman":
            e = kalman_last(r, (r - mu) @ W, 1e-5, 1e-4, 1.0).innovations
        elif signal == "kalman_carried":
            # one filter over every return since the training window's first close
            # (the return into train_start's close is not part of it)
            r = returns.loc[TRAIN[0]:day - pd.Timedelta(days=1)].iloc[1:].to_numpy()
            e = kalman_filter(r, (r - mu) @ W, 1e-5, 1e-4).innovations[-1]
        else:
            e = (r[-1] - mu) - (r[-1] - mu) @ W @ W.T
        e = pd.Series(e, index=SECTOR_ETFS).sort_values()
        gaps = np.diff(e.to_numpy())
        if min(gaps[0], gaps[-1]) < 1e-5:
            continue
        held = book.loc[days[i + 1]]
        assert held[e.index[-1]] > 0 and held[e.index[0]] < 0, day
        assert (held.drop([e.index[-1], e.index[0]]) == 0).all(), day
        checked += 1
    assert checked > 60
    assert perf["net_exposure"].iloc[2:].abs().max() < 0.05
