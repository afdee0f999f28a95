"""The risk-model pipeline and the two tracking-error algorithms on real bundles.

* ``FactorRiskModel``: one day's pipeline output equals the kernels called on the
  same window of returns computed independently from the bundle's prices; its
  columns are prefixed (``risk:``) so that a user's ``alpha`` cannot replace the
  model's; estimated at period starts only (``frequency``) it equals the daily
  estimate on those sessions; its one-row moments pipeline equals the moment
  columns.
* ``algorithms/tev_factor_tilt.py`` and ``algorithms/sector_rotation_tev.py`` run
  through the real ``zipline run`` command line and ``run_algorithm`` on the sample
  bundle, the real SPDR sector ETFs (``factorarb-csv``) and the real 505 S&P 500
  stocks (``factorarb-csv-stocks``); the recorded diagnostics and the realised
  positions are checked.
"""

import importlib.util

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT, bundle_closes, zipline_cli, zipline_environ

TILT = REPO_ROOT / "algorithms" / "tev_factor_tilt.py"
ROTATION = REPO_ROOT / "algorithms" / "sector_rotation_tev.py"
FACTOR_ETFS = ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"]
TEV = 0.06


# ----------------------------------------------------------------------------- helpers
def _load(path, name, monkeypatch, params=None):
    if params is not None:
        import json

        monkeypatch.setenv("FACTORARB_PARAMS", json.dumps(params))
    else:
        monkeypatch.delenv("FACTORARB_PARAMS", raising=False)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(module, root, bundle, start, end):
    from zipline import run_algorithm

    from zipline_factorarb.data.register import register_bundles

    register_bundles()
    return run_algorithm(
        start=pd.Timestamp(start), end=pd.Timestamp(end), initialize=module.initialize,
        handle_data=module.handle_data, capital_base=1e7, data_frequency="daily", bundle=bundle,
        environ=zipline_environ(root),
    )


def _weights(perf, day):
    pv = perf.loc[day, "portfolio_value"]
    return pd.Series({p["sid"].symbol: p["amount"] * p["last_sale_price"] / pv
                      for p in perf.loc[day, "positions"]}, dtype=float)


def _rebalance_rows(perf):
    """Rows where the algorithm rebalanced (ex_ante_tev recorded that day)."""
    tev = perf["ex_ante_tev"]
    changed = tev.notna() & (tev.ne(tev.shift()) | perf.index.isin([tev.first_valid_index()]))
    return perf[changed]


def _columns(perf, prefix):
    return perf[[c for c in perf.columns if str(c).startswith(prefix)]]


def _check_common(perf, benchmark_name=None, ex_post=(0.02, 0.14)):
    """What every TEV-budget run must satisfy."""
    rebalances = perf[perf["ex_ante_tev"].notna()]
    assert len(_rebalance_rows(perf)) >= 6
    tev = perf["ex_ante_tev"].dropna()
    assert tev.max() <= TEV + 1e-6
    assert tev.min() > 0.5 * TEV  # the budget is used: the tilt is a linear objective
    assert (perf["optimizer_failure"].dropna() == 0).all()
    contributions = _columns(rebalances, "risk_contribution_")
    assert "risk_contribution_specific" in contributions
    np.testing.assert_allclose(contributions.sum(axis=1), 1.0, atol=1e-6)
    exposures = _columns(rebalances, "factor_exposure_")
    assert len(exposures.columns) and np.isfinite(exposures.to_numpy()).all()
    sectors = _columns(rebalances, "sector_weight_")
    bench_sectors = _columns(rebalances, "benchmark_sector_weight_")
    np.testing.assert_allclose(sectors.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(bench_sectors.sum(axis=1), 1.0, atol=1e-6)
    assert (sectors.fillna(0.0).to_numpy() >= -1e-7).all()
    assert (rebalances["n_holdings"] >= 1).all()
    # realised positions: long only, fully invested, never the benchmark index
    first_fill = perf.index.get_loc(perf["ex_ante_tev"].first_valid_index()) + 1
    for day in perf.index[first_fill::10]:
        w = _weights(perf, day)
        assert (w >= 0).all(), day
        assert w.sum() == pytest.approx(1.0, abs=0.03), day
        if benchmark_name is not None:
            assert benchmark_name not in w.index
    # ex-post tracking error against the benchmark the budget refers to
    returns = perf["returns"].iloc[first_fill + 1:]
    tracked = perf["tracked_benchmark_return"].iloc[first_fill + 1:]
    assert tracked.notna().all()
    te = float((returns - tracked).std() * np.sqrt(252))
    assert ex_post[0] < te < ex_post[1], te
    return te


# ----------------------------------------------------------------------------- pipeline
@pytest.mark.slow
def test_factor_risk_model_equals_kernels_on_the_bundle_window(sample_root):
    from zipline.pipeline import Pipeline

    from zipline_factorarb.kernels import risk as kr
    from zipline_factorarb.pipeline.classifiers import IsStock
    from zipline_factorarb.pipeline.research import run_pipeline
    from zipline_factorarb.pipeline.risk import FactorRiskModel

    day = pd.Timestamp("2019-06-03")
    closes, finder = bundle_closes("factorarb-sample", sample_root, day, 253)
    returns = closes.pct_change().iloc[1:]
    assert len(returns) == 252
    symbol = {a.symbol: a for a in finder.retrieve_all(finder.sids)}
    risk = FactorRiskModel(factor_assets=[symbol[s] for s in FACTOR_ETFS], market=symbol["SP500"],
                           window_length=252, mask=IsStock())
    out = run_pipeline(Pipeline(risk.pipeline_columns(), screen=IsStock()), day, day,
                       bundle="factorarb-sample", environ=zipline_environ(sample_root)).xs(day)
    stocks = [a.symbol for a in out.index]
    assert len(stocks) == 20 and "SP500" not in stocks

    market = returns["SP500"].to_numpy()
    X = np.column_stack([market] + [returns[s].to_numpy() - market for s in FACTOR_ETFS])
    R = returns[stocks].to_numpy()
    reg = kr.regression_loadings(R, X, add_constant=True)
    spec = kr.specific_variance(reg.residuals, n_parameters=X.shape[1] + 1)
    cov = kr.factor_covariance(X, shrinkage="ledoit_wolf")

    assert risk.factors == ("market", *FACTOR_ETFS)
    np.testing.assert_allclose(out["risk:alpha"], reg.loadings[:, 0], rtol=1e-8, atol=1e-12)
    for k, name in enumerate(risk.factors):
        np.testing.assert_allclose(out[f"risk:loading_{name}"], reg.loadings[:, k + 1], rtol=1e-8,
                                   atol=1e-10)
    np.testing.assert_allclose(out["risk:specific_variance"], spec, rtol=1e-8)
    assert (out["risk:n_observations"] == 252).all()
    # factor moments: the same in every row, equal to the kernel's
    np.testing.assert_allclose(risk.factor_covariance(out).to_numpy(), cov, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(risk.expected_factor_returns(out).to_numpy(), X.mean(axis=0),
                               rtol=1e-8, atol=1e-14)
    assert out["risk:cov_0_0"].nunique() == 1
    # read back as a RiskModel: intercept first, zero variance for it
    model = risk.risk_model(out)
    assert list(model.factors) == ["const", "market", *FACTOR_ETFS]
    assert model.factor_covariance.loc["const"].abs().sum() == 0
    np.testing.assert_allclose(model.specific_variance.to_numpy(), spec, rtol=1e-8)
    mu = risk.expected_factor_returns(out, include_alpha=True)
    assert mu["const"] == 1.0 and list(mu.index) == list(model.factors)


def _sample_risk_model(root, **kwargs):
    from zipline.data import bundles

    from zipline_factorarb.pipeline.classifiers import IsStock
    from zipline_factorarb.pipeline.risk import FactorRiskModel

    data = bundles.load("factorarb-sample", environ=zipline_environ(root))
    try:
        finder = data.asset_finder
        symbol = {a.symbol: a for a in finder.retrieve_all(finder.sids)}
    finally:
        data.close()
    return FactorRiskModel(factor_assets=[symbol[s] for s in FACTOR_ETFS],
                           market=symbol["SP500"], window_length=126, mask=IsStock(), **kwargs)


def _sample_pipeline(root, columns, start, end, screen=None, chunksize=None):
    from zipline.pipeline import Pipeline

    from zipline_factorarb.pipeline.classifiers import IsStock
    from zipline_factorarb.pipeline.research import run_pipeline

    pipeline = columns if isinstance(columns, Pipeline) else \
        Pipeline(columns, screen=IsStock() if screen is None else screen)
    return run_pipeline(pipeline, start, end, bundle="factorarb-sample", chunksize=chunksize,
                        environ=zipline_environ(root))


@pytest.mark.slow
def test_a_user_alpha_column_leaves_the_models_intercepts_unchanged(sample_root):
    from zipline.pipeline.factors import Returns

    day = pd.Timestamp("2019-06-03")
    risk = _sample_risk_model(sample_root)
    user_alpha = Returns(window_length=21)
    alone = _sample_pipeline(sample_root, risk.pipeline_columns(), day, day).xs(day)
    model_alone = risk.risk_model(alone)
    # the user's "alpha" beside the model's columns, merged in either order
    for columns in ({"alpha": user_alpha, **risk.pipeline_columns()},
                    {**risk.pipeline_columns(), "alpha": user_alpha},
                    risk.pipeline_columns(into={"alpha": user_alpha})):
        out = _sample_pipeline(sample_root, columns, day, day).xs(day)
        np.testing.assert_array_equal(out["risk:alpha"], alone["risk:alpha"])
        assert not np.allclose(out["alpha"], out["risk:alpha"])  # the user's own column
        model = risk.risk_model(out)
        pd.testing.assert_frame_equal(model.loadings, model_alone.loadings)
        np.testing.assert_array_equal(model.loadings["const"], alone["risk:alpha"])
        pd.testing.assert_series_equal(risk.expected_factor_returns(out),
                                       risk.expected_factor_returns(alone))
    # a clash is refused, naming the column, whatever the prefix
    with pytest.raises(ValueError, match="'risk:alpha' is both one of yours"):
        risk.pipeline_columns(into={"risk:alpha": user_alpha})
    with pytest.raises(ValueError, match="'alpha' is both one of yours"):
        risk.pipeline_columns(prefix="", into={"alpha": user_alpha})
    # the read-backs take the same prefix, and see a replaced moment column
    bare = _sample_pipeline(sample_root, risk.pipeline_columns(prefix="m1:"), day, day).xs(day)
    np.testing.assert_array_equal(risk.loadings(bare, prefix="m1:").to_numpy(),
                                  risk.loadings(alone).to_numpy())
    with pytest.raises(KeyError, match="'risk:alpha' is missing"):
        risk.loadings(bare)
    replaced = alone.assign(**{"risk:cov_0_0": np.linspace(1e-4, 2e-4, len(alone))})
    with pytest.raises(ValueError, match="'risk:cov_0_0' should hold the same factor moment"):
        risk.risk_model(replaced)


@pytest.mark.slow
@pytest.mark.parametrize("frequency, period", [("month_start", "M"), ("week_start", "W")])
def test_sampled_model_equals_the_daily_model_at_period_starts(sample_root, frequency, period):
    start, end = pd.Timestamp("2019-05-15"), pd.Timestamp("2019-08-15")
    daily = _sample_risk_model(sample_root)
    sampled = _sample_risk_model(sample_root, frequency=frequency)
    assert sampled.params["frequency"] == frequency and daily.params["frequency"] is None
    assert daily.downsample(frequency) is sampled  # zipline's idiom, the same term
    # the daily model from the start of the first period, so the first sampled rows
    # (mid-period, before the first period start of the range) have their reference
    out_daily = _sample_pipeline(sample_root, daily.pipeline_columns(), "2019-04-29", end)
    # small chunks: the sampled values must not depend on where a chunk starts
    out_sampled = _sample_pipeline(sample_root, sampled.pipeline_columns(), start, end,
                                   chunksize=7)
    dates = out_sampled.index.get_level_values(0)
    sessions = dates.unique()
    period_start = pd.Series(sessions, index=sessions).groupby(
        sessions.tz_localize(None).to_period(period)).transform("first")
    first = out_daily.index.get_level_values(0).unique()
    first = pd.Series(first, index=first).groupby(
        first.tz_localize(None).to_period(period)).transform("first")
    for day in sessions:
        ref_day = first[period_start[day]]
        got = out_sampled.xs(day)
        want = out_daily.xs(ref_day).reindex(got.index)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=str(day.date()))
    n_starts = len(set(period_start))
    assert n_starts == (4 if frequency == "month_start" else 14)
    # and the moments through the read-backs on a period start
    day = sessions[sessions.tz_localize(None).to_period(period) != sessions[0].tz_localize(
        None).to_period(period)][0]
    pd.testing.assert_frame_equal(sampled.factor_covariance(out_sampled.xs(day)),
                                  daily.factor_covariance(out_daily.xs(day)))
    with pytest.raises(ValueError, match="frequency must be None .* or one of"):
        _sample_risk_model(sample_root, frequency="monthly")


@pytest.mark.slow
def test_moments_pipeline_is_one_row_of_the_moment_columns(sample_root):
    start, end = pd.Timestamp("2019-06-03"), pd.Timestamp("2019-06-28")
    risk = _sample_risk_model(sample_root, frequency="week_start")
    full = _sample_pipeline(sample_root, risk.pipeline_columns(), start, end)
    per_asset = _sample_pipeline(sample_root, risk.pipeline_columns(moments=False), start, end)
    moments = _sample_pipeline(sample_root, risk.moments_pipeline(), start, end)
    assert not any("mean_" in c or "cov_" in c for c in per_asset.columns)
    assert list(moments.columns) == list(risk.moment_columns())
    assert set(moments.columns) | set(per_asset.columns) == set(full.columns)
    sessions = full.index.get_level_values(0).unique()
    assert (moments.groupby(level=0).size() == 1).all() and len(moments) == len(sessions)
    for day in sessions:
        one = moments.xs(day)
        pd.testing.assert_frame_equal(risk.factor_covariance(one),
                                      risk.factor_covariance(full.xs(day)), check_exact=True)
        pd.testing.assert_series_equal(risk.expected_factor_returns(one, include_alpha=True),
                                       risk.expected_factor_returns(full.xs(day),
                                                                    include_alpha=True))
        a = risk.risk_model(per_asset.xs(day), moments=one)
        b = risk.risk_model(full.xs(day))
        pd.testing.assert_frame_equal(a.factor_covariance, b.factor_covariance)
        pd.testing.assert_frame_equal(a.loadings, b.loadings)
    # the moment columns are the same number in every row
    assert (full.groupby(level=0)["risk:cov_1_2"].nunique() == 1).all()


@pytest.mark.slow
def test_sector_factors_are_sector_mean_returns(sample_root):
    from zipline.pipeline import Pipeline

    from zipline_factorarb.data.sources import SAMPLE_SECTORS
    from zipline_factorarb.kernels import risk as kr
    from zipline_factorarb.pipeline.classifiers import IsStock, Sector
    from zipline_factorarb.pipeline.research import run_pipeline
    from zipline_factorarb.pipeline.risk import FactorRiskModel

    day = pd.Timestamp("2016-03-01")
    closes, _ = bundle_closes("factorarb-sample", sample_root, day, 127)
    returns = closes.pct_change().iloc[1:]
    codes = [10, 35, 45]  # Energy, Health Care, Information Technology
    risk = FactorRiskModel(market="equal_weight", sectors=Sector(), sector_codes=codes,
                           window_length=126, mask=IsStock())
    out = run_pipeline(Pipeline(risk.pipeline_columns(), screen=IsStock()), day, day,
                       bundle="factorarb-sample", environ=zipline_environ(sample_root)).xs(day)
    stocks = [a.symbol for a in out.index]
    R = returns[stocks]
    market = R.mean(axis=1)
    names = {10: "Energy", 35: "Health Care", 45: "Information Technology"}
    sectors = pd.Series(SAMPLE_SECTORS)[stocks]
    X = np.column_stack([market] + [R.loc[:, sectors == names[c]].mean(axis=1) - market
                                    for c in codes])
    reg = kr.regression_loadings(R.to_numpy(), X)
    assert risk.factors == ("market", "Energy", "Health Care", "Information Technology")
    np.testing.assert_allclose(out["risk:loading_Health_Care"], reg.loadings[:, 3], rtol=1e-7,
                               atol=1e-9)
    np.testing.assert_allclose(risk.expected_factor_returns(out).to_numpy(), X.mean(axis=0),
                               rtol=1e-8, atol=1e-14)


@pytest.mark.slow
def test_factor_risk_model_validates_its_arguments(sample_root):
    from zipline.data import bundles

    from zipline_factorarb.pipeline.classifiers import Sector
    from zipline_factorarb.pipeline.risk import FactorRiskModel

    data = bundles.load("factorarb-sample", environ=zipline_environ(sample_root))
    try:
        spy = data.asset_finder.lookup_symbol("SP500", None)
        mtum = data.asset_finder.lookup_symbol("MTUM", None)
    finally:
        data.close()
    with pytest.raises(ValueError, match="window_length must be an integer of at least 3"):
        FactorRiskModel(market=spy, window_length=2)
    with pytest.raises(ValueError, match="market must be an Asset, 'equal_weight' or None"):
        FactorRiskModel(market="spy")
    with pytest.raises(ValueError, match="needs a market factor"):
        FactorRiskModel(factor_assets=[mtum])
    with pytest.raises(TypeError, match="must be a zipline Asset"):
        FactorRiskModel(factor_assets=["MTUM"], market=spy)
    with pytest.raises(ValueError, match="both the market and a factor asset"):
        FactorRiskModel(factor_assets=[spy], market=spy)
    with pytest.raises(TypeError, match="sectors must be a Classifier"):
        FactorRiskModel(market=spy, sectors="gics")
    with pytest.raises(ValueError, match="min_observations must be an integer of at least 4"):
        FactorRiskModel(factor_assets=[mtum], market=spy, min_observations=3)
    with pytest.raises(ValueError, match="no factors"):
        FactorRiskModel()
    with pytest.raises(ValueError, match="sector_codes needs sectors"):
        FactorRiskModel(market=spy, sector_codes=[10])
    assert FactorRiskModel(market=spy, sectors=Sector(), sector_codes=[10]).factors == ("market", "Energy")


# ----------------------------------------------------------------------------- helpers' math
def test_risk_records_match_the_risk_model():
    from zipline_factorarb.optimize import RiskModel, risk_records

    assets = ["A", "B", "C", "D"]
    loadings = pd.DataFrame({"const": [1e-4, 0.0, -1e-4, 2e-4], "market": [1.2, 0.8, 1.0, 0.9],
                             "value": [0.3, -0.2, 0.1, 0.0]}, index=assets)
    cov = pd.DataFrame([[0, 0, 0], [0, 1e-4, 1e-5], [0, 1e-5, 4e-5]], index=loadings.columns,
                       columns=loadings.columns)
    model = RiskModel(loadings, cov, pd.Series([2e-4, 1e-4, 3e-4, 1.5e-4], index=assets))
    w = pd.Series({"A": 0.5, "B": 0.3, "C": 0.2})
    b = pd.Series(0.25, index=assets)
    sectors = pd.Series({"A": "Energy", "B": "Energy", "C": "Utilities", "D": "Utilities"})
    out = risk_records(w, b, model, sectors=sectors)
    assert out["ex_ante_tev"] == pytest.approx(model.tracking_error(w, b))
    active = (w.reindex(assets, fill_value=0) - b).to_numpy()
    assert out["factor_exposure_market"] == pytest.approx(loadings["market"].to_numpy() @ active)
    assert "factor_exposure_const" not in out and "risk_contribution_const" not in out
    shares = [v for k, v in out.items() if k.startswith("risk_contribution_")]
    assert sum(shares) == pytest.approx(1.0)
    assert out["sector_weight_Energy"] == pytest.approx(0.8)
    assert out["benchmark_sector_weight_Utilities"] == pytest.approx(0.5)
    assert out["n_holdings"] == 3


def test_proxy_benchmark_weights_and_tracker():
    from types import SimpleNamespace

    from zipline_factorarb.optimize import BenchmarkTracker, proxy_benchmark_weights

    assets = ["A", "B", "C"]
    dv = pd.Series({"A": 3e9, "B": 1e9, "C": 1e9})
    stand_in = pd.Series(1e9, index=assets)
    eq = proxy_benchmark_weights(assets, dv, stand_in)
    assert eq.attrs["source"] == "equal" and np.allclose(eq, 1 / 3)
    real = proxy_benchmark_weights(assets, dv, pd.Series({"A": 5e6, "B": 2e6, "C": 9e6}))
    assert real.attrs["source"] == "dollar_volume" and np.allclose(real, [0.6, 0.2, 0.2])
    with pytest.raises(ValueError, match="weighting must be one of"):
        proxy_benchmark_weights(assets, dv, weighting="cap")

    prices = {0: pd.DataFrame({"A": [10.0, 11.0], "B": [20.0, 19.0]}),
              1: pd.DataFrame({"A": [11.0, 11.0], "B": [19.0, 38.0]})}
    day = {"i": 0}
    data = SimpleNamespace(history=lambda assets, field, n, freq: prices[day["i"]][assets])
    tracker = BenchmarkTracker()
    assert tracker.update(data) is None
    tracker.reset(pd.Series({"A": 0.5, "B": 0.5}))
    assert tracker.update(data) is None  # the new weights take effect at this close
    day["i"] = 1
    assert tracker.update(data) == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)


def test_style_weights_recover_a_fund_mix(monkeypatch):
    rotation = _load(ROTATION, "rotation_style", monkeypatch)
    rng = np.random.default_rng(3)
    funds = rng.normal(0, 0.01, (252, 5))
    truth = np.array([0.5, 0.3, 0.2, 0.0, 0.0])
    target = funds @ truth + rng.normal(0, 1e-5, 252)
    w = rotation.style_weights(funds, target)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    np.testing.assert_allclose(w, truth, atol=0.01)


# ----------------------------------------------------------------------------- sample bundle
@pytest.mark.slow
def test_tev_factor_tilt_cli_on_the_sample(sample_root, tmp_path, monkeypatch):
    out = tmp_path / "tilt.pickle"
    result = zipline_cli(sample_root, "run", "-f", str(TILT), "-b", "factorarb-sample",
                         "-s", "2019-01-02", "-e", "2021-12-31", "-o", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    perf = pd.read_pickle(out)
    te = _check_common(perf, benchmark_name="SP500")
    rebalances = _rebalance_rows(perf)
    assert len(rebalances) == 36
    # factors: the market (the S&P 500 index) and the five factor ETFs
    assert {f"factor_exposure_{f}" for f in ["market", *FACTOR_ETFS]} <= set(perf.columns)
    # the documented benchmark proxy on the sample: equal weights over the 20 stocks
    bench = _columns(rebalances, "benchmark_sector_weight_")
    np.testing.assert_allclose(bench["benchmark_sector_weight_Energy"], 3 / 20, atol=1e-12)
    np.testing.assert_allclose(bench["benchmark_sector_weight_Health Care"], 5 / 20, atol=1e-12)
    assert rebalances["n_holdings"].between(5, 20).all()
    # the crisis report reads these recordings
    from zipline_factorarb.analysis.perf import load_backtest
    from zipline_factorarb.analysis.risk import risk_through_time

    report = risk_through_time(load_backtest(out))
    assert report.ex_ante_tev.max() <= TEV + 1e-6
    assert len(report.risk_shares.columns) == 7 and len(report.benchmark_sector_weights.columns)
    # effective bets from the recorded shares: exp(entropy) of |share|, by hand
    row = report.risk_shares.dropna(how="all").iloc[-1]
    p = row.abs() / row.abs().sum()
    p = p[p > 0]
    bets = report.diversification["effective_bets"].loc[row.name]
    assert bets == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-12)
    assert 1.0 <= bets <= 7.0
    # with the bundle, sector shares estimated from the positions come beside the
    # recorded factor shares
    monkeypatch.setenv("ZIPLINE_ROOT", str(sample_root))
    both = risk_through_time(load_backtest(out), bundle="factorarb-sample",
                             benchmark_symbol="SP500")
    assert list(both.risk_shares.columns) == list(report.risk_shares.columns)
    assert "Energy" in both.sector_risk_shares.columns
    np.testing.assert_allclose(both.sector_risk_shares.sum(axis=1), 1.0, atol=1e-10)
    assert 0.03 < te < 0.12


@pytest.mark.slow
def test_tev_factor_tilt_risk_aversion_form_is_calibrated(sample_root, monkeypatch):
    module = _load(TILT, "tilt_risk_aversion", monkeypatch, {"objective": "risk_aversion"})
    perf = _run(module, sample_root, "factorarb-sample", "2020-06-01", "2021-05-28")
    rebalances = perf[perf["risk_aversion"].notna()]
    rebalances = rebalances[rebalances["risk_aversion"].ne(rebalances["risk_aversion"].shift())]
    assert len(rebalances) == 12
    # calibrated: the ex-ante tracking error is the 6% target at every rebalance
    np.testing.assert_allclose(rebalances["ex_ante_tev"], TEV, rtol=1e-3)
    assert (rebalances["risk_aversion"] > 0).all() and rebalances["risk_aversion"].nunique() > 1
    contributions = _columns(rebalances, "risk_contribution_")
    np.testing.assert_allclose(contributions.sum(axis=1), 1.0, atol=1e-6)
    w = _weights(perf, perf.index[-1])
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=0.03) and "SP500" not in w


@pytest.mark.slow
def test_sector_rotation_on_sample_stocks(sample_root, monkeypatch):
    from zipline_factorarb.data.sources import SAMPLE_SECTORS

    module = _load(ROTATION, "rotation_sample", monkeypatch)
    perf = _run(module, sample_root, "factorarb-sample", "2019-01-02", "2020-12-31")
    _check_common(perf, benchmark_name="SP500")
    # W maps sector weights to within-sector benchmark (equal) weights: every stock
    # of a sector with a meaningful weight is held, all for the same amount of money
    # at the prices the orders were sized with
    sectors = pd.Series(SAMPLE_SECTORS)
    closes, _ = bundle_closes("factorarb-sample", sample_root, "2021-01-01", 520)
    for day, row in _rebalance_rows(perf).iloc[:8].iterrows():
        fill = perf.index[perf.index.get_loc(day) + 1]
        amounts = pd.Series({p["sid"].symbol: p["amount"] for p in perf.loc[fill, "positions"]})
        value = amounts * closes.loc[day.tz_localize(None).normalize(), amounts.index]
        pv = value.sum()
        for sector, members in sectors.groupby(sectors):
            x = row[f"sector_weight_{sector}"]
            if x < 0.01:
                continue
            held = value.reindex(members.index) / pv
            assert held.notna().all(), (fill, sector, x)
            np.testing.assert_allclose(held, held.mean(), rtol=0.01, atol=2e-4)
            assert held.sum() == pytest.approx(x, abs=0.01)


# ----------------------------------------------------------------------------- real data
@pytest.mark.shared_data
@pytest.mark.slow
def test_sector_rotation_cli_on_sector_etfs(shared_csv_root, tmp_path):
    out = tmp_path / "rotation_etfs.pickle"
    result = zipline_cli(shared_csv_root["root"], "run", "-f", str(ROTATION), "-b", "factorarb-csv",
                         "-s", "2016-01-04", "-e", "2018-12-31", "-o", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    perf = pd.read_pickle(out)
    te = _check_common(perf, benchmark_name="SPY")
    # SPY is the benchmark of the tracking error too: the tracked benchmark is SPY's
    # total return, every session (half days included), as zipline's benchmark
    # (which carries ~5e-6 of rounding noise)
    cum = 1.0 + perf["benchmark_period_return"]
    spy = (cum / cum.shift(1) - 1.0).iloc[2:]
    np.testing.assert_allclose(perf["tracked_benchmark_return"].iloc[2:], spy, atol=1e-5)
    held = set().union(*[set(_weights(perf, d).index) for d in perf.index[::5]])
    assert held and held <= {"XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY", "XLRE"}
    # factors: the market and the sector ETFs trading through the whole window
    assert "factor_exposure_market" in perf and "factor_exposure_XLK" in perf
    assert "factor_exposure_XLC" not in perf  # listed in 2018: not a factor here
    # SPY's style weights: technology and financials are its largest sectors
    bench = _columns(_rebalance_rows(perf), "benchmark_sector_weight_").mean()
    assert set(bench.nlargest(2).index) <= {"benchmark_sector_weight_Information Technology",
                                            "benchmark_sector_weight_Financials",
                                            "benchmark_sector_weight_Health Care"}
    assert 0.03 < te < 0.10


@pytest.mark.shared_data
@pytest.mark.filterwarnings("ignore:Overwriting bundle")  # run_algorithm reloads extension.py
@pytest.mark.slow
def test_tev_factor_tilt_on_sp500_stocks(shared_csv_root, monkeypatch):
    module = _load(TILT, "tilt_stocks", monkeypatch)
    perf = _run(module, shared_csv_root["root"], "factorarb-csv-stocks", "2015-01-02", "2015-12-31")
    _check_common(perf)
    rebalances = _rebalance_rows(perf)
    assert len(rebalances) == 12
    # no factor ETFs in this bundle: an equal-weighted market plus GICS sector factors
    assert {"factor_exposure_market", "factor_exposure_Energy",
            "factor_exposure_Information Technology"} <= set(perf.columns)
    assert not any(f"factor_exposure_{f}" in perf for f in FACTOR_ETFS)
    # real volumes: the benchmark proxy is dollar-volume weighted, not equal weighted
    bench = _columns(rebalances, "benchmark_sector_weight_").iloc[0]
    assert bench["benchmark_sector_weight_Information Technology"] > 0.15
    assert rebalances["n_holdings"].min() >= 20


@pytest.mark.shared_data
@pytest.mark.filterwarnings("ignore:Overwriting bundle")  # run_algorithm reloads extension.py
@pytest.mark.slow
def test_sector_rotation_on_sp500_stocks(shared_csv_root, monkeypatch):
    module = _load(ROTATION, "rotation_stocks", monkeypatch)
    perf = _run(module, shared_csv_root["root"], "factorarb-csv-stocks", "2015-06-01",
                "2015-12-31")
    rebalances = _rebalance_rows(perf)
    assert len(rebalances) == 7
    tev = perf["ex_ante_tev"].dropna()
    assert tev.max() <= TEV + 1e-6
    np.testing.assert_allclose(_columns(rebalances, "risk_contribution_").sum(axis=1), 1.0,
                               atol=1e-6)
    np.testing.assert_allclose(_columns(rebalances, "sector_weight_").sum(axis=1), 1.0, atol=1e-6)
    # whole sectors are held: many names
    assert rebalances["n_holdings"].min() >= 30
    w = _weights(perf, perf.index[-1])
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=0.03)


# ----------------------------------------------------------------------------- parameters
def test_bad_parameters_are_named(monkeypatch):
    tilt = _load(TILT, "tilt_bad", monkeypatch, {"objective": "sharpe"})
    with pytest.raises(ValueError, match="objective must be one of"):
        tilt._check_params()
    tilt = _load(TILT, "tilt_bad_tev", monkeypatch, {"tev_budget": 6})
    with pytest.raises(ValueError, match=r"tev_budget is annualised \(0.06 for 6%\)"):
        tilt._check_params()
    tilt = _load(TILT, "tilt_bad_rebalance", monkeypatch, {"rebalance": "quarter"})
    with pytest.raises(ValueError, match="rebalance must be one of"):
        tilt._check_params()
    rotation = _load(ROTATION, "rotation_bad", monkeypatch, {"mode": "sectors"})
    with pytest.raises(ValueError, match="mode must be one of"):
        rotation._check_params()
    rotation = _load(ROTATION, "rotation_bad_rebalance", monkeypatch, {"rebalance": "hourly"})
    with pytest.raises(ValueError, match="rebalance must be one of"):
        rotation._check_params()
    with pytest.raises(ValueError, match="unknown parameter 'tev'"):
        _load(ROTATION, "rotation_unknown", monkeypatch, {"tev": 0.05})
