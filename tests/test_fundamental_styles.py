"""WLSResidual styles from pipeline factors (point-in-time fundamentals).

A CSV bundle of 60 real stocks from ../shared/data is ingested with a
stand-in fundamentals folder (``market_cap`` = the close times a fixed,
made-up share count per symbol; ``book_to_market`` a made-up month-end value,
missing for three symbols). ``WLSResidual(style_inputs=...)`` run by zipline's
engine is compared, session by session, with a statsmodels WLS whose design
matrix is built here from the source files with pandas alone: returns from
the source closes, sector dummies from the source metadata, ``size`` = log of
the previous session's market cap, ``value`` = the latest book-to-market
dated before the previous session, z-scored over the day's candidates.
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from conftest import ingest, zipline_environ
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from zipline_factorarb.kernels.wls_window import WLSSettings, wls_window

START, END = "2014-01-02", "2015-06-30"
TEST_START, TEST_END = "2015-03-02", "2015-03-13"
N_STOCKS = 60
NO_BOOK = 3  # symbols without any book-to-market value: never in the regression


def write_folder(shared, dest):
    """Price folder of N_STOCKS complete real stocks with a stand-in fundamentals/."""
    px = pd.read_csv(shared / "sp500_stocks_daily_2013_2018.csv.gz")
    px = px[px["date"].between(START, END)]
    days = px["date"].nunique()
    counts = px.groupby("symbol")["date"].count()
    symbols = sorted(counts.index[counts == days])[:: 7][:N_STOCKS]
    assert len(symbols) == N_STOCKS
    px = px[px["symbol"].isin(symbols)].reset_index(drop=True)
    # the bundle stores prices in thousandths: round here so that the source
    # closes are the stored ones and the reference can use them
    ohlc = ["open", "high", "low", "close"]
    px[ohlc] = px[ohlc].round(3)
    rng = np.random.default_rng(12)
    shares = dict(zip(symbols, np.exp(rng.normal(20.0, 1.0, len(symbols)))))
    caps = px[["date", "symbol"]].assign(market_cap=px["close"] * px["symbol"].map(shares))
    month_ends = pd.date_range(START, END, freq="ME").strftime("%Y-%m-%d")
    btm = pd.DataFrame([dict(date=d, symbol=s, book_to_market=round(rng.lognormal(-0.7, 0.5), 6))
                        for d in month_ends for s in symbols[NO_BOOK:]])
    dest.mkdir(parents=True)
    (dest / "fundamentals").mkdir()
    px[["date", "symbol", "open", "high", "low", "close", "volume"]].to_csv(
        dest / "prices.csv", index=False)
    caps.to_csv(dest / "fundamentals" / "market_cap.csv", index=False)
    btm.to_csv(dest / "fundamentals" / "book_to_market.csv", index=False)
    gics = pd.read_csv(shared / "sp500_stocks_gics_sectors_2018.csv").set_index("symbol")
    sectors = pd.Series({s: gics.loc[s, "gics_sector"] for s in symbols})
    pd.DataFrame({"symbol": symbols, "name": symbols, "sector": sectors.values,
                  "asset_type": "stock"}).to_csv(dest / "metadata.csv", index=False)
    close = px.pivot(index="date", columns="symbol", values="close")
    close.index = pd.to_datetime(close.index)
    return close, caps, btm, sectors


@pytest.fixture(scope="module")
def styled(shared_data_dir, tmp_path_factory):
    from zipline_factorarb.data.register import register_csv_bundle

    base = tmp_path_factory.mktemp("fundstyles")
    root = base / "zipline"
    root.mkdir()
    close, caps, btm, sectors = write_folder(shared_data_dir, base / "src")
    # a few source rows have an open outside [low, high] (see the data README)
    register_csv_bundle("fundstyles", base / "src", ohlc="repair")
    ingest("fundstyles", root)
    return dict(env=zipline_environ(root), close=close, caps=caps, btm=btm, sectors=sectors)


def run(styled, factor):
    from zipline.pipeline import Pipeline

    from zipline_factorarb.pipeline.research import run_pipeline

    out = run_pipeline(Pipeline(factor.pipeline_columns()), TEST_START, TEST_END,
                       bundle="fundstyles", environ=styled["env"])
    out.index = out.index.set_levels([a.symbol for a in out.index.levels[1]], level=1)
    return out


def as_of(source, column, day):
    """Latest value of each symbol dated strictly before ``day`` (point in time)."""
    src = source.assign(date=pd.to_datetime(source["date"]))
    src = src[src["date"] < day].sort_values("date")
    return src.groupby("symbol")[column].last()


def zscore(column):
    return (column - column.mean()) / column.std(ddof=0)


def reference_day(styled, day, *, sector, equal_weights, reversal=False, lookback=60):
    """statsmodels WLS of session ``day``: (fit, R, weights, design) on the used assets."""
    close = styled["close"]
    ret = close.pct_change()  # ret.loc[s] = close[s] / close[s - 1] - 1
    i = close.index.get_loc(pd.Timestamp(day))
    R = ret.iloc[i - 1]  # what Returns(window_length=2) gives on session `day`
    previous = close.index[i - 1]  # styles: values the previous session's pipeline saw
    if equal_weights:
        z = pd.Series(1.0, index=close.columns)
    else:
        var = ret.iloc[i - 1 - lookback:i - 1].var(ddof=1)
        z = 1.0 / var
        z = np.minimum(z, np.quantile(z.dropna(), 0.95))
    candidates = R.index[R.notna() & (z > 0)]
    styles = pd.DataFrame(index=candidates)
    if reversal:  # cumulative return of the last 21 history rows
        styles["reversal"] = (1 + ret.iloc[i - 22:i - 1][candidates]).prod() - 1
    styles["size"] = np.log(as_of(styled["caps"], "market_cap", previous))
    styles["value"] = as_of(styled["btm"], "book_to_market", previous)
    styles = styles.apply(zscore).dropna()
    used = styles.index
    X = styles.copy()
    X.insert(0, "intercept", 1.0)
    if sector:
        names = styled["sectors"][used]
        largest = names.value_counts()
        reference = sorted(largest.index[largest == largest.max()])[0]
        for name in sorted(set(names) - {reference}):
            X[f"sector {name}"] = (names == name).astype(float)
    fit = sm.WLS(R[used], X, weights=z[used]).fit()
    return fit, R[used], z[used], X


VARIANTS = {
    "sectors, inverse-variance weights": dict(
        kwargs=dict(styles=("size", "value"), winsor=None),
        ref=dict(sector=True, equal_weights=False)),
    "intercept only, equal weights, with reversal": dict(
        kwargs=dict(sector=None, styles=("reversal", "size", "value"), winsor=None,
                    equal_weights=True),
        ref=dict(sector=False, equal_weights=True, reversal=True)),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fundamental_styles_match_statsmodels_on_the_day_design(styled, variant):
    from zipline_factorarb.pipeline import Fundamentals, WLSResidual

    spec = VARIANTS[variant]
    wls = WLSResidual(style_inputs={"size": Fundamentals.market_cap,
                                    "value": Fundamentals.book_to_market}, **spec["kwargs"])
    out = run(styled, wls)
    days = out.index.get_level_values(0).unique()
    assert len(days) == 10
    for day in days:
        frame = out.xs(day)
        fit, R, z, X = reference_day(styled, day.tz_localize(None), **spec["ref"])
        inside = frame.index[np.isfinite(frame["wls:weight"])]
        assert sorted(inside) == sorted(X.index), day
        # the three symbols without a book value are left out, as a NaN style is
        assert len(inside) == N_STOCKS - NO_BOOK
        f = frame.loc[X.index]
        np.testing.assert_allclose(f["wls:residual"], fit.resid, rtol=0, atol=1e-8)
        np.testing.assert_allclose(f["wls:weighted_residual"], z * fit.resid, rtol=0,
                                   atol=1e-8 * z.max())
        np.testing.assert_allclose(f["wls:weight"], z, rtol=1e-12)
        for style in ("size", "value"):
            np.testing.assert_allclose(f[f"wls:loading_{style}"], X[style], rtol=0, atol=1e-10)
            assert f[f"wls:factor_return_{style}"].iloc[0] == pytest.approx(
                fit.params[style], abs=1e-8)
        if spec["ref"]["sector"]:
            # each asset's sector return = intercept + its sector's dummy
            level = X.drop(columns=[c for c in X if not c.startswith(("intercept", "sector"))])
            expected = level @ fit.params[level.columns]
            np.testing.assert_allclose(f["wls:sector_return"], expected, rtol=0, atol=1e-8)
        else:
            assert f["wls:factor_return_intercept"].iloc[0] == pytest.approx(
                fit.params["intercept"], abs=1e-8)
            assert f["wls:factor_return_reversal"].iloc[0] == pytest.approx(
                fit.params["reversal"], abs=1e-8)


def test_a_given_size_replaces_dollar_volume_and_winsor_applies(styled):
    """Default winsor: the loadings are the kernel's standardisation of log(cap)."""
    from zipline_factorarb.kernels.wls import standardize_styles
    from zipline_factorarb.pipeline import Fundamentals, WLSResidual

    given = WLSResidual(styles=("size",), style_inputs={"size": Fundamentals.market_cap})
    builtin = WLSResidual(styles=("size",))
    assert builtin.window_length > given.window_length  # no 63-row dollar-volume window
    out = run(styled, given)
    other = run(styled, builtin)
    for day in out.index.get_level_values(0).unique()[:3]:
        frame = out.xs(day)
        previous = styled["close"].index[
            styled["close"].index.get_loc(day.tz_localize(None)) - 1]
        inside = frame.index[np.isfinite(frame["wls:weight"])]
        raw = np.log(as_of(styled["caps"], "market_cap", previous)[inside])
        expected = standardize_styles(raw.to_numpy()[:, None], winsor=3.0)[:, 0]
        np.testing.assert_allclose(frame.loc[inside, "wls:loading_size"], expected,
                                   rtol=0, atol=1e-12)
        assert np.abs(expected).max() <= 3.0 + 1e-8
        assert not np.allclose(other.xs(day).loc[inside, "wls:loading_size"], expected)


def test_kernel_style_values_equal_the_builtin_size_from_market_cap():
    """wls_window(style_values={'size': cap}) uses log(cap), new names as given."""
    from zipline_factorarb.kernels.wls import standardize_styles

    rng = np.random.default_rng(3)
    W, N = 80, 50
    r = rng.normal(0, 0.01, (W, N))
    cap = np.exp(rng.normal(22, 1, N))
    cap[4] = -1.0  # non-positive: missing
    value = rng.normal(0.5, 0.2, N)
    value[7] = np.nan
    codes = rng.integers(0, 5, N)
    res = wls_window(r, codes, styles=("size", "value"), equal_weights=True, winsor=None,
                     style_values={"size": cap, "value": value})
    used = np.isfinite(res.weights)
    assert not used[4] and not used[7] and used.sum() == N - 2
    # each column is standardised over its own finite values, then rows with a
    # missing style are dropped (as the built-in styles are)
    log_cap = np.where(cap > 0, np.log(np.abs(cap)), np.nan)
    expected = standardize_styles(np.column_stack([log_cap, value]), winsor=None)[used]
    labels = list(res.labels)
    got = res.loadings[used][:, [labels.index("size"), labels.index("value")]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    X = res.loadings[used]
    fit = sm.WLS(r[-1, used], X).fit()
    np.testing.assert_allclose(res.factor_returns, fit.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res.residuals[used], fit.resid, rtol=0, atol=1e-12)


class NotAFactor:
    pass


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(styles=("size",), style_inputs={"size": 3.0}), TypeError,
     r"style_inputs\['size'\] must be a pipeline Factor"),
    (dict(styles=("size",), style_inputs=[("size", None)]), TypeError,
     "style_inputs must be a mapping"),
    (dict(styles=("value",)), ValueError, r"unknown style name\(s\) \['value'\]"),
    (dict(styles=("size",), style_inputs={"value": "book"}), TypeError,
     r"style_inputs\['value'\] must be a pipeline Factor"),
    (dict(styles=("pc1",), style_inputs={"pc1": "F"}), ValueError, "clashes"),
    (dict(styles=("intercept",), style_inputs={"intercept": "F"}), ValueError, "clashes"),
    (dict(styles=("sector_45",), style_inputs={"sector_45": "F"}), ValueError, "clashes"),
    (dict(styles=("book value",), style_inputs={"book value": "F"}), ValueError,
     "identifier"),
    (dict(styles=("size",), style_inputs={"size": "F", "value": "F"}), ValueError,
     r"style input\(s\) \['value'\] are not in styles"),
    (dict(styles=("size",), given_styles=("size",)), TypeError, "given_styles"),
    (dict(styles=("size", "size"), style_inputs={"size": "F"}), ValueError, "repeat"),
])
def test_bad_style_inputs_fail_at_construction(kwargs, error, match):
    from zipline_factorarb.pipeline import Fundamentals, WLSResidual

    inputs = kwargs.get("style_inputs")
    if isinstance(inputs, dict):
        kwargs = dict(kwargs, style_inputs={
            k: (Fundamentals.market_cap if v == "F" else v) for k, v in inputs.items()})
    with pytest.raises(error, match=match):
        WLSResidual(**kwargs)


def test_style_input_must_be_a_window_safe_factor():
    from zipline.pipeline.data import EquityPricing

    from zipline_factorarb.pipeline import Fundamentals, WLSResidual

    with pytest.raises(TypeError, match="must be a pipeline Factor"):
        WLSResidual(styles=("size",), style_inputs={"size": EquityPricing.close.latest > 0})
    # a price is not window-safe (past rows need adjusting): a clear error, not
    # zipline's NonWindowSafeInput from deep inside the term graph
    with pytest.raises(ValueError, match=r"style_inputs\['size'\].*not window-safe"):
        WLSResidual(styles=("size",), style_inputs={"size": EquityPricing.close.latest * 1e6})
    # a window-safe transform of a fundamental is accepted
    term = WLSResidual(styles=("value",), style_inputs={"value": Fundamentals.market_cap.rank()})
    assert term.settings.given_styles == ("value",)


def test_settings_of_given_styles():
    s = WLSSettings(styles=("beta", "size", "value"), given_styles=("size", "value"))
    assert s.builtin_styles == ("beta",)
    assert s.style_window("size") == 1 and s.history_length == 252
    assert s.factor_labels == ("beta", "size", "value")
    with pytest.raises(ValueError, match="not in styles"):
        WLSSettings(styles=("beta",), given_styles=("value",))
    with pytest.raises(ValueError, match="style_values"):
        wls_window(np.zeros((5, 3)), style_values={"value": np.ones(4)}, styles=("value",),
                   sector=False, equal_weights=True)


# ---------------------------------------------------------------------------
# FactorRiskModel: characteristic factors
# ---------------------------------------------------------------------------
def characteristic_returns_loop(styled, session):
    """Plain loop: the day's size and value factor returns and the market mean."""
    close = styled["close"]
    ret = close.pct_change()
    i = close.index.get_loc(session)
    R = ret.iloc[i - 1]  # the return the pipeline of `session` sees
    previous = close.index[i - 1]
    out = {"market": R.mean()}
    for name, source, column in (("size", styled["caps"], "market_cap"),
                                 ("value", styled["btm"], "book_to_market")):
        x = as_of(source, column, previous)
        if name == "size":
            x = np.log(x)
        both = pd.concat([R, x], axis=1, keys=["r", "x"]).dropna()
        z = (both["x"] - both["x"].mean()) / both["x"].std(ddof=0)
        slope, _ = np.polyfit(z.to_numpy(), both["r"].to_numpy(), 1)
        out[name] = slope
    return pd.Series(out), R


def test_risk_model_characteristic_factors_match_a_plain_loop(styled):
    from zipline.pipeline import Pipeline

    from zipline_factorarb.pipeline import Fundamentals
    from zipline_factorarb.pipeline.research import run_pipeline
    from zipline_factorarb.pipeline.risk import FactorRiskModel

    window = 40
    risk = FactorRiskModel(market="equal_weight", window_length=window,
                           characteristics={"size": Fundamentals.market_cap,
                                            "value": Fundamentals.book_to_market},
                           characteristic_winsor=None, shrinkage=None)
    assert risk.factors == ("market", "size", "value")
    out = run_pipeline(Pipeline(risk.pipeline_columns()), "2015-03-10", "2015-03-12",
                       bundle="fundstyles", environ=styled["env"])
    out.index = out.index.set_levels([a.symbol for a in out.index.levels[1]], level=1)
    close = styled["close"]
    for day in out.index.get_level_values(0).unique():
        frame = out.xs(day)
        i = close.index.get_loc(day.tz_localize(None))
        rows = [characteristic_returns_loop(styled, close.index[j])
                for j in range(i - window + 1, i + 1)]
        F = pd.DataFrame([f for f, _ in rows])
        assets = pd.DataFrame([r for _, r in rows])
        np.testing.assert_allclose(frame["risk:mean_size"].iloc[0], F["size"].mean(),
                                   rtol=1e-10)
        np.testing.assert_allclose(frame["risk:mean_value"].iloc[0], F["value"].mean(),
                                   rtol=1e-10)
        np.testing.assert_allclose(frame["risk:cov_1_2"].iloc[0],
                                   np.cov(F["size"], F["value"])[0, 1], rtol=1e-8)
        X = sm.add_constant(F[["market", "size", "value"]].to_numpy())
        for symbol in assets.columns:
            fit = sm.OLS(assets[symbol].to_numpy(), X).fit()
            got = frame.loc[symbol, ["risk:alpha", "risk:loading_market", "risk:loading_size",
                                     "risk:loading_value"]].to_numpy(dtype=float)
            np.testing.assert_allclose(got, fit.params, rtol=0, atol=1e-8)


def test_characteristic_return_is_the_cross_sectional_slope():
    from zipline_factorarb.kernels.wls import characteristic_return

    rng = np.random.default_rng(5)
    x = rng.lognormal(size=200)
    r = 0.01 * rng.normal(size=200)
    x[3], r[8] = np.nan, np.nan
    use = np.isfinite(x) & np.isfinite(r)
    z = (x[use] - x[use].mean()) / x[use].std()
    fit = sm.OLS(r[use], sm.add_constant(z)).fit()
    assert characteristic_return(r, x, winsor=None) == pytest.approx(fit.params[1], abs=1e-14)
    # the factor-mimicking portfolio: zero cost, unit exposure, its return is f
    w = z / (z @ z)
    assert abs(w.sum()) < 1e-12 and w @ z == pytest.approx(1.0)
    assert w @ r[use] == pytest.approx(fit.params[1], abs=1e-14)
    assert np.isnan(characteristic_return(r[:1], x[:1]))


def test_risk_model_characteristic_errors():
    from zipline_factorarb.pipeline import Fundamentals
    from zipline_factorarb.pipeline.risk import FactorRiskModel

    with pytest.raises(TypeError, match=r"characteristics\['size'\] must be a pipeline Factor"):
        FactorRiskModel(characteristics={"size": 1.0})
    with pytest.raises(TypeError, match="characteristics must be a mapping"):
        FactorRiskModel(characteristics=[Fundamentals.market_cap])
    with pytest.raises(ValueError, match="factor names collide"):
        FactorRiskModel(market="equal_weight",
                        characteristics={"market": Fundamentals.market_cap})
    with pytest.raises(ValueError, match="characteristic_winsor"):
        FactorRiskModel(characteristics={"size": Fundamentals.market_cap},
                        characteristic_winsor=0.5)
    risk = FactorRiskModel(characteristics={"size": Fundamentals.market_cap})
    assert risk.factors == ("size",)
    assert risk.downsample("month_start").factors == ("size",)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 60), seed=st.integers(0, 2**31 - 1), missing=st.floats(0.0, 0.3))
def test_given_styles_match_statsmodels_on_generated_data(n, seed, missing):
    """Generated cross-sections with missing values: kernel == statsmodels WLS."""
    rng = np.random.default_rng(seed)
    W = 30
    r = rng.normal(0, 0.02, (W, n))
    r[-1, rng.random(n) < missing / 2] = np.nan
    cap = np.exp(rng.normal(22, 1.5, n))
    cap[rng.random(n) < missing / 2] = np.nan
    value = rng.lognormal(-0.7, 0.5, n)
    value[rng.random(n) < missing] = np.nan
    res = wls_window(r, styles=("size", "value"), sector=False, winsor=None,
                     volatility_lookback=20, style_values={"size": cap, "value": value})
    # independent: pandas z-scores over the candidates, statsmodels WLS
    var = pd.DataFrame(r[:-1]).iloc[-20:].var(ddof=1).to_numpy()
    z = 1 / var
    z = np.minimum(z, np.quantile(z, 0.95))
    frame = pd.DataFrame({"size": np.log(cap), "value": value})
    frame = frame[np.isfinite(r[-1])]
    frame = ((frame - frame.mean()) / frame.std(ddof=0)).dropna()
    assume(len(frame) > 4)  # more assets than the three columns, with a residual
    X = sm.add_constant(frame, has_constant="add")
    fit = sm.WLS(r[-1, frame.index], X, weights=z[frame.index]).fit()
    assert res.valid and res.n_assets == len(frame)
    np.testing.assert_allclose(res.factor_returns, fit.params, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.residuals[frame.index], fit.resid, rtol=0, atol=1e-12)
    assert np.isnan(np.delete(res.residuals, frame.index)).all()
