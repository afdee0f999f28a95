"""The WLSResidual pipeline factor inside zipline's engine.

The reference for every session is computed here without the engine: the
bundle's own stored closes (and volumes) are read with its daily bar reader,
turned into close-to-close returns, and the kernels
(``inverse_variance_weights``, ``style_factors``, ``standardize_styles``,
``pca_loadings``, ``sector_loadings``, ``wls_residuals``) are called on each
session's window directly. Sector codes come from the source metadata, not
from the asset db. Both bundles store unadjusted prices here (the sample's
closes are already total-return closes; the 505-stock set has no splits or
dividends in the source), which the tests check, so the engine's adjusted
closes equal the stored ones.
"""

import logging

import numpy as np
import pandas as pd
import pytest

from conftest import zipline_environ

START, END = "2020-03-02", "2020-03-20"  # the sample around the COVID crash
STYLES = ("beta", "momentum", "reversal", "volatility")


# ---------------------------------------------------------------------------
# independent reference
# ---------------------------------------------------------------------------


def load_bundle(root, bundle, start, end, before):
    """Closes and volumes of every asset, ``before`` sessions ahead of ``start``.

    Also returns the sids alive on each session (start < session <= end, the
    rule the pipeline engine applies) and checks the bundle has no price
    adjustments.
    """
    from zipline.data import bundles

    from zipline_factorarb.data.register import register_bundles

    register_bundles()
    data = bundles.load(bundle, environ=zipline_environ(root))
    try:
        tables = data.adjustment_reader.unpack_db_to_component_dfs()
        for name in ("splits", "mergers", "dividends"):
            assert tables[name].empty, f"{bundle} has {name}: the reference would need them"
        reader = data.equity_daily_bar_reader
        sessions = reader.trading_calendar.sessions_in_range(
            reader.first_trading_day, pd.Timestamp(end))
        first = sessions.searchsorted(pd.Timestamp(start)) - before
        sessions = sessions[first:]
        sids = np.array(sorted(data.asset_finder.sids))
        close, volume = reader.load_raw_arrays(["close", "volume"], sessions[0], sessions[-1], sids)
        assets = data.asset_finder.retrieve_all(sids)
        starts = np.array([a.start_date for a in assets], dtype="datetime64[ns]")
        ends = np.array([a.end_date for a in assets], dtype="datetime64[ns]")
        symbols = [a.symbol for a in assets]
    finally:
        data.close()
    sessions = pd.DatetimeIndex(sessions).tz_localize(None)
    close = pd.DataFrame(close, index=sessions, columns=sids)
    volume = pd.DataFrame(volume, index=sessions, columns=sids)
    day = sessions.values[:, None]
    alive = (starts[None, :] < day) & (day <= ends[None, :])
    return close, volume, pd.DataFrame(alive, index=sessions, columns=sids), symbols


def reference_day(returns, codes, dollar_volume=None, *, sector=True, styles=(), pca=0,
                  equal_weights=False, lookback=60, ridge=0.0):
    """One session of the recipe, straight from the kernels."""
    from zipline_factorarb.kernels.pca import pca_loadings
    from zipline_factorarb.kernels.wls import (
        inverse_variance_weights,
        sector_loadings,
        standardize_styles,
        style_factors,
        wls_residuals,
    )

    R, history = returns[-1], returns[:-1]
    N = R.size
    z = np.ones(N) if equal_weights else inverse_variance_weights(
        history[-lookback:], lookback=lookback, cap_quantile=0.95)
    base = np.isfinite(R) & np.isfinite(z) & (z > 0)
    if sector:
        base &= codes >= 0
    blocks = []
    if styles:
        raw = []
        for name in styles:
            if name == "size":
                raw.append(style_factors(history[-63:], dollar_volume=dollar_volume[:-1][-63:],
                                         styles=("size",)).styles[:, 0])
            else:
                raw.append(style_factors(history, styles=(name,)).styles[:, 0])
        raw = np.column_stack(raw)
        raw[~base] = np.nan
        blocks.append(standardize_styles(raw, winsor=3.0))
    if pca:
        x = np.where(base, history[-252:], np.nan)
        x = x / x.std(axis=0, ddof=1)
        blocks.append(pca_loadings(x, pca))
    candidates = base & np.all([np.isfinite(b).all(axis=1) for b in blocks] or [True], axis=0)
    if sector:
        blocks.insert(0, sector_loadings(codes, mask=candidates).loadings)
    else:
        blocks.insert(0, np.ones((N, 1)))
    loadings = np.column_stack(blocks)
    loadings[~candidates] = np.nan
    weights = np.where(candidates, z, np.nan)
    lam = 0.0
    if ridge:
        lam = ridge * np.mean((weights[candidates, None] * loadings[candidates] ** 2).sum(axis=0))
    return wls_residuals(R, loadings, weights, lam), loadings


def compare_with_reference(frame, close, volume, alive, universe, codes_of, variants, days):
    """Check each variant's pipeline columns against :func:`reference_day`."""
    returns = close.pct_change(fill_method=None)
    for name, (options, window) in variants.items():
        for day in days:
            t = returns.index.get_loc(day)
            cols = [sid for sid in universe if alive.at[day, sid]]
            window_returns = returns.iloc[t - window : t][cols].to_numpy()
            dollar_volume = (close * volume).iloc[t - window : t][cols].to_numpy()
            codes = np.array([codes_of.get(sid, -1) for sid in cols])
            expected, loadings = reference_day(window_returns, codes, dollar_volume, **options)
            got = frame.xs(day, level=0).reindex(cols)
            for column, values in (("weighted_residual", expected.weighted_residuals),
                                   ("residual", expected.residuals)):
                actual = got[f"{name}_{column}"].to_numpy()
                np.testing.assert_array_equal(np.isnan(actual), np.isnan(values), err_msg=name)
                scale = np.nanmax(np.abs(values))
                np.testing.assert_allclose(actual, values, rtol=1e-10, atol=1e-12 * scale,
                                           err_msg=f"{name} {column} {day.date()}")
            assert got[f"{name}_n_assets"].iloc[0] == expected.n_assets
            np.testing.assert_allclose(got[f"{name}_condition_number"].iloc[0],
                                       expected.condition_number, rtol=1e-9)
            if options.get("ridge"):  # the penalty trades exactness for stability
                assert got[f"{name}_neutrality"].min() > 1e-6
            else:
                assert got[f"{name}_neutrality"].max() < 1e-12
            if options.get("styles"):
                k = len(options["styles"])
                np.testing.assert_allclose(got[f"{name}_loading_{options['styles'][0]}"],
                                           loadings[:, -k], rtol=1e-10, atol=1e-13)
                np.testing.assert_allclose(
                    got[f"{name}_factor_return_{options['styles'][-1]}"].iloc[0],
                    expected.factor_returns[-1], rtol=1e-9, atol=1e-14)


def wls_columns(prefix, factor):
    columns = {f"{prefix}_{out}": getattr(factor, out)
               for out in ("weighted_residual", "residual", "n_assets", "condition_number",
                           "neutrality")}
    for label in factor.factor_names:
        if label not in ("sector", "intercept"):
            columns[f"{prefix}_loading_{label}"] = factor.loading(label)
            columns[f"{prefix}_factor_return_{label}"] = factor.factor_return(label)
    return columns


def run(pipeline, start, end, root, monkeypatch, bundle="factorarb-sample", chunksize=None):
    from zipline_factorarb.pipeline.research import run_pipeline

    monkeypatch.setenv("ZIPLINE_ROOT", str(root))
    return run_pipeline(pipeline, start, end, bundle=bundle, chunksize=chunksize,
                        environ=zipline_environ(root))


# ---------------------------------------------------------------------------
# the four variants against the reference
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_data(sample_root):
    close, volume, alive, symbols = load_bundle(sample_root, "factorarb-sample", START, END, 300)
    return close, volume, alive, symbols


def test_sample_variants_match_the_kernel_on_the_bundle_closes(sample_root, sample_data,
                                                               monkeypatch):
    from skfolio.datasets import load_sp500_dataset
    from zipline.pipeline import Pipeline

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.data.sectors import sector_code
    from zipline_factorarb.data.sources import SAMPLE_SECTORS
    from zipline_factorarb.pipeline.classifiers import IsStock

    close, volume, alive, symbols = sample_data
    # the bundle's closes are the source's, stored to 3 decimals
    source = load_sp500_dataset()
    stocks = [sid for sid, sym in zip(close.columns, symbols) if sym in source.columns]
    assert len(stocks) == 20
    src = source.reindex(close.index)[[symbols[list(close.columns).index(s)] for s in stocks]]
    np.testing.assert_allclose(close[stocks].to_numpy(), src.to_numpy(), atol=5.1e-4)

    factors = {
        "industry": WLSResidual(mask=IsStock()),
        "multi": WLSResidual(styles=STYLES, mask=IsStock()),
        "pca": WLSResidual(sector=None, components=3, mask=IsStock()),
        "equal": WLSResidual(equal_weights=True, mask=IsStock()),
        "ridge": WLSResidual(ridge=0.05, volatility_lookback=20, mask=IsStock()),
    }
    columns = {}
    for name, factor in factors.items():
        columns.update(wls_columns(name, factor))
    frame = run(Pipeline(columns), START, END, sample_root, monkeypatch)
    days = frame.index.get_level_values(0).unique().tz_localize(None)
    assert len(days) == 15
    assert factors["multi"].window_length == 253 and factors["equal"].window_length == 1

    codes_of = {sid: sector_code(SAMPLE_SECTORS[sym]) for sid, sym in zip(close.columns, symbols)
                if sym in SAMPLE_SECTORS}
    frame.index = frame.index.set_levels(frame.index.levels[0].tz_localize(None), level=0)
    frame.index = frame.index.set_levels([a.sid for a in frame.index.levels[1]], level=1)
    variants = {
        "industry": ({}, 61),
        "multi": ({"styles": STYLES}, 253),
        "pca": ({"sector": False, "pca": 3}, 253),
        "equal": ({"equal_weights": True}, 1),
        "ridge": ({"ridge": 0.05, "lookback": 20}, 21),
    }
    compare_with_reference(frame, close, volume, alive, stocks, codes_of, variants, days)
    # the index, the ETFs and the single-name sectors' members are not traded signals
    industry = frame["industry_weighted_residual"].unstack()
    etfs = [sid for sid, sym in zip(close.columns, symbols) if sym not in SAMPLE_SECTORS]
    assert industry[etfs].isna().all().all()
    assert industry[stocks].notna().all().all()


@pytest.mark.shared_data
def test_real_stocks_match_the_kernel_on_the_bundle_closes(shared_csv_root, monkeypatch):
    from zipline.pipeline import Pipeline

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.data.sectors import sector_code
    from zipline_factorarb.pipeline.classifiers import IsStock

    root = shared_csv_root["root"]
    start, end = "2016-06-20", "2016-06-28"  # around the Brexit vote
    close, volume, alive, symbols = load_bundle(root, "factorarb-csv-stocks", start, end, 300)
    assert close.shape[1] == 505
    # the stored closes are the source file's, to 3 decimals
    source = pd.read_csv(shared_csv_root["stocks"] / "prices.csv.gz", parse_dates=["date"],
                         usecols=["date", "symbol", "close"])
    source = source.pivot(index="date", columns="symbol", values="close")
    source = source.reindex(index=close.index, columns=symbols)
    present = source.notna().to_numpy()
    np.testing.assert_allclose(close.to_numpy()[present], source.to_numpy()[present], atol=5.1e-4)

    factors = {
        "industry": WLSResidual(mask=IsStock()),
        "multi": WLSResidual(styles=STYLES + ("size",), mask=IsStock()),
    }
    columns = {}
    for name, factor in factors.items():
        columns.update(wls_columns(name, factor))
    frame = run(Pipeline(columns), start, end, root, monkeypatch, bundle="factorarb-csv-stocks")
    frame.index = frame.index.set_levels(frame.index.levels[0].tz_localize(None), level=0)
    frame.index = frame.index.set_levels([a.sid for a in frame.index.levels[1]], level=1)
    days = frame.index.get_level_values(0).unique()
    gics = pd.read_csv(shared_csv_root["stocks"] / "metadata.csv").set_index("symbol")["sector"]
    codes_of = {sid: sector_code(gics.get(sym)) for sid, sym in zip(close.columns, symbols)}
    variants = {"industry": ({}, 61), "multi": ({"styles": STYLES + ("size",)}, 253)}
    compare_with_reference(frame, close, volume, alive, list(close.columns), codes_of, variants,
                           days)
    assert frame["multi_n_assets"].min() > 450


# ---------------------------------------------------------------------------
# behaves like a built-in factor
# ---------------------------------------------------------------------------


def test_chunked_runs_give_the_same_numbers(sample_root, monkeypatch):
    from zipline.pipeline import Pipeline

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.pipeline.classifiers import IsStock

    factor = WLSResidual(styles=("beta", "reversal"), mask=IsStock())
    pipeline = Pipeline(wls_columns("w", factor))
    whole = run(pipeline, "2018-01-02", "2018-02-28", sample_root, monkeypatch)
    chunked = run(pipeline, "2018-01-02", "2018-02-28", sample_root, monkeypatch, chunksize=7)
    shifted = run(pipeline, "2018-01-19", "2018-02-28", sample_root, monkeypatch, chunksize=4)
    pd.testing.assert_frame_equal(whole, chunked)
    pd.testing.assert_frame_equal(whole.loc["2018-01-19":], shifted)


def test_rank_zscore_demean_masks_and_screens(sample_root, monkeypatch):
    from zipline.pipeline import Pipeline

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.pipeline.classifiers import IsStock, Sector

    sector = Sector()
    universe = IsStock()
    wls = WLSResidual(mask=universe)
    signal = wls.weighted_residual
    not_tech = universe & ~sector.eq(Sector.INFORMATION_TECHNOLOGY)
    subset = WLSResidual(mask=not_tech)
    pipeline = Pipeline(
        {
            "signal": signal,
            "rank": signal.rank(mask=universe),
            "zscore": signal.zscore(),
            "demeaned": signal.demean(groupby=sector),
            "sector_zscore": wls.residual.zscore(groupby=sector),
            "top": signal.top(3),
            "bottom": signal.bottom(3, mask=universe),
            "subset": subset.weighted_residual,
            "sector": sector,
            "sector_return": wls.sector_return,
        },
        screen=signal.notnull() & universe,
    )
    frame = run(pipeline, "2020-03-09", "2020-03-13", sample_root, monkeypatch)
    assert len(frame) == 5 * 20  # the 20 stocks, nothing else passes the screen
    by_day = frame.groupby(level=0)
    np.testing.assert_array_equal(frame["rank"], by_day["signal"].rank(method="first"))
    expected = by_day["signal"].transform(lambda x: (x - x.mean()) / x.std(ddof=0))
    np.testing.assert_allclose(frame["zscore"], expected, rtol=1e-12, atol=1e-12)
    group_mean = frame.groupby([frame.index.get_level_values(0), frame["sector"]])["signal"]
    np.testing.assert_allclose(frame["demeaned"], frame["signal"] - group_mean.transform("mean"),
                               atol=1e-9)
    # R~ sums to zero within each sector already (sector dummies + intercept):
    # demeaning by sector changes nothing
    np.testing.assert_allclose(frame["demeaned"], frame["signal"], atol=1e-9)
    assert (by_day["top"].sum() == 3).all() and (by_day["bottom"].sum() == 3).all()
    top = frame[frame["top"]]
    assert (top["rank"] >= 18).all()
    # the mask defines the regression's cross-section
    tech = frame["sector"] == 45
    assert frame.loc[tech, "subset"].isna().all() and frame.loc[~tech, "subset"].notna().all()
    assert not np.allclose(frame.loc[~tech, "subset"], frame.loc[~tech, "signal"])
    # every member of a sector gets that sector's factor return
    spread = frame.groupby([frame.index.get_level_values(0), "sector"])["sector_return"].nunique()
    assert (spread == 1).all()


def test_any_integer_classifier_can_be_the_sector(sample_root, monkeypatch):
    from zipline.pipeline import CustomClassifier, Pipeline
    from zipline.pipeline.data import EquityPricing
    from zipline.utils.numpy_utils import int64_dtype

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.pipeline.classifiers import IsStock, Sector

    class SectorBySid(CustomClassifier):
        """The sample's GICS codes from a table (a window input of the factor)."""

        inputs = (EquityPricing.close,)
        window_length = 1
        dtype = int64_dtype
        missing_value = -1
        window_safe = True
        params = {"table": None}

        def compute(self, today, assets, out, close, table):
            codes = dict(table)
            out[:] = [codes.get(int(a), -1) for a in assets]

    frame = run(Pipeline({"sector": Sector()}), "2021-06-01", "2021-06-01", sample_root,
                monkeypatch)
    table = tuple((a.sid, int(c)) for (_, a), c in frame["sector"].items())
    custom = WLSResidual(sector=SectorBySid(table=table), mask=IsStock())
    default = WLSResidual(mask=IsStock())
    assert len(custom.inputs) == 2 and len(default.inputs) == 1
    out = run(Pipeline({"custom": custom.weighted_residual, "default": default.weighted_residual}),
              "2021-06-01", "2021-06-10", sample_root, monkeypatch)
    np.testing.assert_allclose(out["custom"], out["default"], rtol=1e-13, atol=1e-12)
    assert out["default"].notna().sum() == 8 * 20


def test_market_asset_and_window_slices(sample_root, monkeypatch):
    from zipline.data import bundles
    from zipline.pipeline import Pipeline

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.pipeline.classifiers import IsStock
    from zipline_factorarb.pipeline.wls import StyleLoading

    data = bundles.load("factorarb-sample", environ=zipline_environ(sample_root))
    sp500 = data.asset_finder.lookup_symbol("SP500", None)
    data.close()
    with_market = WLSResidual(styles=("beta",), market=sp500, mask=IsStock())
    equal_market = WLSResidual(styles=("beta",), mask=IsStock())
    raw_beta = StyleLoading("beta", market=sp500, mask=IsStock())
    frame = run(Pipeline({"a": with_market.loading_beta, "b": equal_market.loading_beta,
                          "beta": raw_beta, "sig": with_market.weighted_residual}),
                "2021-06-01", "2021-06-04", sample_root, monkeypatch)
    assert frame["a"].notna().sum() == 4 * 20
    assert not np.allclose(frame["a"], frame["b"])
    # the standardised beta loading is a monotone map of the raw beta
    for _, day in frame.dropna().groupby(level=0):
        assert day["a"].rank().corr(day["beta"].rank()) > 0.95
    assert frame["beta"].dropna().between(0.0, 2.5).all()


# ---------------------------------------------------------------------------
# construction, diagnostics, helpers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"styles": ("value",)}, ValueError, "unknown style"),
        ({"styles": ("beta", "beta")}, ValueError, "must not repeat"),
        ({"pca_components": 5, "pca_window": 5}, ValueError, "pca_window"),
        ({"sector": None, "intercept": False}, ValueError, "at least one loadings column"),
        ({"sector": "GICS"}, TypeError, "sector must be a pipeline Classifier"),
        ({"ridge": -1.0}, ValueError, "ridge must be >= 0"),
        ({"cap_quantile": 1.5}, ValueError, "cap_quantile"),
        ({"volatility_lookback": 1}, ValueError, "volatility_lookback"),
        ({"volatility_halflife": 0}, ValueError, "volatility_halflife"),
        ({"window_length": 30}, ValueError, "window_length=30 is too short"),
        ({"market": "SPY", "styles": ("beta",)}, TypeError, "market must be a zipline Asset"),
        ({"mask": True}, TypeError, "mask must be a zipline Filter"),
        ({"equal_weights": 1}, TypeError, "equal_weights must be True or False"),
        ({"momentum_skip": 300, "styles": ("momentum",)}, ValueError, "momentum_skip"),
        ({"condition_warning": 0.5}, ValueError, "condition_warning"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, error, match):
    from zipline_factorarb import WLSResidual

    with pytest.raises(error, match=match):
        WLSResidual(**kwargs)


def test_outputs_windows_and_accessors():
    from zipline_factorarb import WLSResidual
    from zipline_factorarb.pipeline.wls import WLSResidual as Direct

    assert WLSResidual is Direct
    default = WLSResidual()
    assert default.window_length == 61
    assert default.outputs[:2] == ("weighted_residual", "residual")
    assert default.factor_names == ("sector",)
    assert WLSResidual() is default  # same settings, same term
    multi = WLSResidual(styles=("beta", "size"), volatility_halflife=10.0)
    # returns, close and volume; the package's Sector() is looked up per session
    assert multi.window_length == 253 and len(multi.inputs) == 3
    assert multi.factor_return("beta") is multi.factor_return_beta
    assert multi.loading("size") is multi.loading_size
    with pytest.raises(ValueError, match="no factor 'momentum'"):
        multi.factor_return("momentum")
    pca = WLSResidual(sector=None, components=2, pca_window=60)
    with pytest.warns(DeprecationWarning, match="pca_components is deprecated"):
        assert WLSResidual(sector=None, pca_components=2, pca_window=60) is pca
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['window'\]"):
        WLSResidual(window=5)
    # mask=None is "no mask", as in every term of the package
    assert WLSResidual(mask=None) is WLSResidual()
    assert pca.window_length == 61
    assert pca.factor_names == ("intercept", "pc1", "pc2")
    assert "factor_return_intercept" in pca.outputs and "loading_intercept" not in pca.outputs
    assert WLSResidual(window_length=100).window_length == 100
    assert "styles=beta/size" in repr(multi)


def test_condition_log_warns_once_then_every_n_and_counts_days_once(caplog):
    from zipline_factorarb.pipeline.wls import ConditionLog

    monitor = ConditionLog("WLSResidual(test)", threshold=1000.0, every=3)
    days = pd.date_range("2020-01-01", periods=12)
    with caplog.at_level(logging.WARNING, logger="zipline_factorarb.pipeline.wls"):
        for i, day in enumerate(days):
            monitor.observe(day, 5000.0 if i % 2 else 10.0)
        for day in days:  # an overlapping chunk recomputes the same sessions
            monitor.observe(day, 1e9)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3  # the first ill-conditioned day, then the 3rd and 6th
    assert "condition number 5e+03 above 1000 on 2020-01-02 (1 of 2 sessions" in messages[0]
    assert "raise ridge" in messages[0]
    assert "(3 of 6 sessions so far" in messages[1]
    assert "(6 of 12 sessions so far; worst 5e+03 on 2020-01-02)" in messages[2]
    summary = monitor.summary()
    assert summary["sessions"] == 12 and summary["ill_conditioned"] == 6
    assert summary["worst"] == 5000.0


def test_condition_warnings_from_a_pipeline_run(sample_root, monkeypatch, caplog):
    from zipline.pipeline import Pipeline

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.pipeline.classifiers import IsStock

    strict = WLSResidual(mask=IsStock(), condition_warning=2.0, condition_warning_every=10)
    quiet = WLSResidual(mask=IsStock(), condition_warning=None)
    with caplog.at_level(logging.WARNING, logger="zipline_factorarb.pipeline.wls"):
        frame = run(Pipeline({"c": strict.condition_number, "q": quiet.weighted_residual}),
                    "2019-01-02", "2019-02-28", sample_root, monkeypatch, chunksize=10)
    n_days = frame.index.get_level_values(0).nunique()
    assert n_days == 40
    warnings = [r for r in caplog.records if "condition number" in r.getMessage()]
    assert len(warnings) == 1 + n_days // 10
    summary = strict.condition_summary()
    assert summary["sessions"] == n_days and summary["ill_conditioned"] == n_days
    stocks = frame["q"].notna()
    assert frame.loc[stocks, "c"].between(2.0, 1000.0).all()
    assert frame.loc[~stocks, "c"].isna().all()  # outside the mask
    assert quiet.condition_summary()["sessions"] == 0


# ---------------------------------------------------------------------------
# read-backs: the day's loadings and factor returns, and a neutral book
# ---------------------------------------------------------------------------


def test_loadings_read_back_are_the_kernels_and_give_a_neutral_book(sample_root, sample_data,
                                                                    monkeypatch):
    """``loadings(frame)`` is the kernel's Omega for every variant; a book with
    ``FactorExposure(loadings, 0, 0)`` has no exposure to any factor of it."""
    from zipline.pipeline import Pipeline

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.data.sectors import sector_code
    from zipline_factorarb.data.sources import SAMPLE_SECTORS
    from zipline_factorarb.kernels.wls import sector_loadings
    from zipline_factorarb.optimize import (
        DollarNeutral,
        FactorExposure,
        MaxGrossExposure,
        MaximizeAlpha,
        calculate_optimal_portfolio,
    )
    from zipline_factorarb.pipeline.classifiers import IsStock

    close, volume, alive, symbols = sample_data
    factors = {
        "industry": (WLSResidual(mask=IsStock()), {}, 61),
        "multi": (WLSResidual(styles=STYLES, mask=IsStock()), {"styles": STYLES}, 253),
        "pca": (WLSResidual(sector=None, components=3, mask=IsStock()),
                {"sector": False, "pca": 3}, 253),
        "equal": (WLSResidual(equal_weights=True, mask=IsStock()), {"equal_weights": True}, 1),
        "ridge": (WLSResidual(ridge=0.05, volatility_lookback=20, mask=IsStock()),
                  {"ridge": 0.05, "lookback": 20}, 21),
    }
    columns = {}
    for name, (factor, _, _) in factors.items():
        columns.update(factor.pipeline_columns(prefix=f"{name}:"))
    assert "industry:sector_code" in columns and "industry:reference_sector" in columns
    assert "pca:sector_code" not in columns and "pca:loading_pc3" in columns
    start, end = "2020-03-09", "2020-03-13"
    frame = run(Pipeline(columns, screen=IsStock()), start, end, sample_root, monkeypatch)
    frame.index = frame.index.set_levels(frame.index.levels[0].tz_localize(None), level=0)
    frame.index = frame.index.set_levels([a.sid for a in frame.index.levels[1]], level=1)
    days = frame.index.get_level_values(0).unique()
    assert len(days) == 5

    returns = close.pct_change(fill_method=None)
    codes_of = {sid: sector_code(SAMPLE_SECTORS[sym]) for sid, sym in zip(close.columns, symbols)
                if sym in SAMPLE_SECTORS}
    stocks = sorted(codes_of)
    for name, (factor, options, window) in factors.items():
        for day in days[::2]:
            t = returns.index.get_loc(day)
            cols = [sid for sid in stocks if alive.at[day, sid]]
            expected, omega = reference_day(returns.iloc[t - window : t][cols].to_numpy(),
                                            np.array([codes_of[sid] for sid in cols]), **options)
            used = np.isfinite(omega).all(axis=1)
            labels = ["intercept"]
            if options.get("sector", True):
                labels = list(sector_loadings(np.array([codes_of[sid] for sid in cols]),
                                              mask=used).labels)
            labels += list(options.get("styles", ())) + [f"pc{j + 1}"
                                                         for j in range(options.get("pca", 0))]

            one_day = frame.xs(day, level=0)
            loadings = factor.loadings(one_day, prefix=f"{name}:")
            assert list(loadings.columns) == labels, name
            assert list(loadings.index) == [sid for sid, u in zip(cols, used) if u]
            np.testing.assert_allclose(loadings.to_numpy(), omega[used], rtol=1e-10,
                                       atol=1e-13, err_msg=f"{name} {day.date()}")
            # the multi-day frame works too, and dropna=False keeps every row
            everything = factor.loadings(frame.loc[[day]], prefix=f"{name}:", dropna=False)
            assert len(everything) == len(one_day)

            f = factor.factor_returns(one_day, prefix=f"{name}:")
            assert list(f.index) == labels
            np.testing.assert_allclose(f.to_numpy(), expected.factor_returns, rtol=1e-9,
                                       atol=1e-14, err_msg=f"{name} {day.date()}")
            # R = Omega f + eps for every asset of the regression
            fitted = loadings @ f + one_day[f"{name}:residual"].reindex(loadings.index)
            realised = returns.iloc[t - 1][loadings.index]
            np.testing.assert_allclose(fitted, realised, rtol=1e-9, atol=1e-13)

            alphas = -one_day[f"{name}:weighted_residual"].reindex(loadings.index)
            weights = calculate_optimal_portfolio(
                MaximizeAlpha(alphas),
                [DollarNeutral(), MaxGrossExposure(1.0), FactorExposure(loadings, 0, 0)])
            exposure = loadings.T @ weights.reindex(loadings.index, fill_value=0.0)
            assert np.abs(exposure).max() < 1e-6, (name, day, exposure)
            assert np.abs(weights).sum() > 0.5  # a real book, not the empty portfolio
