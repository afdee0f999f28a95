"""Attribution through crises: factor, sector and specific parts of the active return."""

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zipline_factorarb.analysis.attribution import daily_attribution, window_attribution
from zipline_factorarb.analysis.periods import Periods
from zipline_factorarb.kernels import performance as pk

from conftest import run_algorithm_file


def generated(seed, n=160, k=3, sectors=4, cash=False):
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2020-01-02", periods=n, tz="UTC")
    r = pd.Series(rng.normal(0.0005, 0.015, n), index=index)
    b = pd.Series(0.0 if cash else rng.normal(0.0003, 0.012, n), index=index)
    factors = [f"F{i}" for i in range(k)]
    # exposures recorded on rebalance days only (NaN between), as zipline's record() leaves them
    exposures = pd.DataFrame(rng.normal(0, 0.5, (n, k)), index=index, columns=factors)
    exposures.iloc[np.flatnonzero(np.arange(n) % 5 != 0)] = np.nan
    factor_returns = pd.DataFrame(rng.normal(0, 0.01, (n, k)), index=index.tz_convert(None),
                                  columns=factors)
    names = [f"S{i}" for i in range(sectors)]
    weights = pd.DataFrame(rng.dirichlet(np.ones(sectors), n) - 1 / sectors, index=index,
                           columns=names)
    sector_returns = pd.DataFrame(rng.normal(0, 0.012, (n, sectors)), index=index.tz_convert(None),
                                  columns=names)
    days = index.tz_convert(None)
    periods = Periods([("crash", (days[20], days[60])), ("second", (days[90], days[97])),
                       ("whole", (days[0], days[-1]))], regimes={"whole"})
    return r, b, exposures, factor_returns, weights, sector_returns, periods


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 4), st.booleans())
def test_parts_sum_to_the_active_return(seed, k, cash):
    r, b, e, f, w, s, periods = generated(seed, k=k, cash=cash)
    daily = daily_attribution(r, b, e, f, w, s)
    np.testing.assert_allclose(daily.sum(axis=1), r - b, atol=1e-15)
    windows = window_attribution(daily, r, b, periods).set_index("period")
    assert list(windows.index) == ["crash", "second", "whole"]
    assert list(windows["crisis"]) == [True, True, False]
    for name, (start, end) in periods.items():
        rw = r[(r.index.tz_convert(None) >= start) & (r.index.tz_convert(None) <= end)]
        bw = b.loc[rw.index]
        active = empyrical.cum_returns_final(rw) - empyrical.cum_returns_final(bw)
        row = windows.loc[name]
        assert row["active_return"] == pytest.approx(active, abs=1e-12)
        parts = row["factor"] + row["sector"] + row["specific"]
        assert abs(parts - active) < 1e-10
        by_factor = sum(row[f"factor_{c}"] for c in e.columns)
        assert abs(by_factor - row["factor"]) < 1e-12


def test_factor_part_by_hand():
    r, b, e, f, w, s, periods = generated(7)
    daily = daily_attribution(r, b, e, f, w, s, lag=2)
    row = window_attribution(daily, r, b, periods).set_index("period").loc["crash"]
    start, end = periods["crash"]
    days = list(r.index.tz_convert(None))
    first, last = days.index(start), days.index(end)
    # the exposure held on day t is the last one recorded at or before day t - 2
    held = []
    for t in range(len(days)):
        value = 0.0
        for u in range(t - 2, -1, -1):
            if not math.isnan(e["F1"].iloc[u]):
                value = e["F1"].iloc[u]
                break
        held.append(value)
    R = math.prod(1 + x for x in r.iloc[first:last + 1]) - 1
    B = math.prod(1 + x for x in b.iloc[first:last + 1]) - 1
    k = (math.log(1 + R) - math.log(1 + B)) / (R - B)
    total = 0.0
    for t in range(first, last + 1):
        rt, bt = r.iloc[t], b.iloc[t]
        kt = (math.log(1 + rt) - math.log(1 + bt)) / (rt - bt)
        total += kt / k * held[t] * f["F1"].iloc[t]
    assert row["factor_F1"] == pytest.approx(total, rel=1e-12, abs=1e-15)


def test_carino_equal_returns_limit():
    # r_t == b_t on some days (e.g. a cash benchmark and a flat day): the limit 1/(1+r)
    r = np.array([0.01, 0.0, -0.02, 0.03])
    b = np.array([0.0, 0.0, 0.01, 0.03])
    weights = pk.carino_weights(r, b)
    assert np.all(np.isfinite(weights))
    total = np.prod(1 + r) - np.prod(1 + b)
    assert weights @ (r - b) == pytest.approx(total, abs=1e-15)


# ------------------------------------------------------------ a real backtest
@pytest.fixture(scope="module")
def flagship_perf(sample_root, tmp_path_factory):
    """The long-only flagship on the sample over 2015 (records factor exposures)."""
    return run_algorithm_file(sample_root, "benchmark_relative", "2015-02-02", "2015-12-31",
                              tmp_path_factory.mktemp("flagship") / "perf.pickle")


def test_attribution_of_the_flagship(flagship_perf, sample_root, monkeypatch):
    from skfolio.datasets import load_factors_dataset, load_sp500_index

    from zipline_factorarb.analysis.report import build_report

    monkeypatch.setenv("ZIPLINE_ROOT", str(sample_root))
    report = build_report(flagship_perf, bundle="factorarb-sample", benchmark="SP500",
                          pyfolio_sheets=False)
    att = report.tables["attribution"].set_index("period")
    crisis = report.tables["crisis"].set_index("period")
    assert "China/oil 2015-2016" in att.index and "attribution" in report.figures
    for name, row in att.iterrows():
        assert abs(row["factor"] + row["sector"] + row["specific"] - row["active_return"]) < 1e-10
        assert row["active_return"] == pytest.approx(crisis.loc[name, "active_return"], abs=1e-12)
    # the MTUM part of the China/oil window from skfolio's own prices (not the bundle's):
    # exposure recorded at D applies to D+2; MTUM's factor return is in excess of the market
    perf = pd.read_pickle(flagship_perf)
    days = perf.index.tz_convert(None).normalize()
    exposure = perf["factor_exposure_MTUM"].astype(float).ffill().shift(2).fillna(0.0).to_numpy()
    etf = load_factors_dataset()["MTUM"].pct_change()
    market = load_sp500_index().iloc[:, 0].pct_change()
    f = (etf - market).reindex(days).to_numpy()
    r = perf["returns"].to_numpy()
    b = (market.reindex(days).fillna(0.0)).to_numpy()
    start, end = att.loc["China/oil 2015-2016", ["start", "end"]]
    inside = (days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))
    weights = pk.carino_weights(r[inside], b[inside])
    direct = float(np.sum(weights * exposure[inside] * f[inside]))
    assert att.loc["China/oil 2015-2016", "factor_MTUM"] == pytest.approx(direct, rel=2e-3,
                                                                          abs=2e-5)
    assert any("Mean attribution of the crisis active return" in x for x in report.findings)


def test_market_neutral_book_is_compared_with_cash(sample_root, tmp_path, monkeypatch):
    """A real dollar-neutral backtest: cash benchmark chosen and said; parts still add up."""
    from zipline_factorarb.analysis.report import build_report

    out = run_algorithm_file(sample_root, "market_neutral", "2015-02-02", "2015-10-30",
                             tmp_path / "neutral.pickle")
    monkeypatch.setenv("ZIPLINE_ROOT", str(sample_root))
    report = build_report(out, bundle="factorarb-sample", pyfolio_sheets=False)
    assert report.benchmark.startswith("cash (zero returns): the book is dollar-neutral")
    summary = report.tables["summary"]
    assert summary.loc["benchmark", "total_return"] == 0.0
    r = pd.read_pickle(out)["returns"]
    assert summary.loc["strategy", "information_ratio"] == pytest.approx(
        empyrical.sharpe_ratio(r), rel=1e-12)
    att = report.tables["attribution"]
    assert len(att)
    for _, row in att.iterrows():
        assert abs(row["factor"] + row["sector"] + row["specific"] - row["active_return"]) < 1e-10
