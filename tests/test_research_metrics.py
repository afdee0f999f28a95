"""The per-run numbers of a sweep, on a real backtest, against empyrical."""

import empyrical
import numpy as np
import pandas as pd
import pytest

from zipline_factorarb.research.metrics import perf_metrics


def test_perf_metrics_match_empyrical(sample_perf):
    perf = pd.read_pickle(sample_perf)
    m = perf_metrics(perf)
    r = perf["returns"].astype(float)
    cum = 1.0 + perf["benchmark_period_return"].astype(float)
    b = cum / cum.shift(1, fill_value=1.0) - 1.0
    assert m["n_sessions"] == len(r) > 4000
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(r), rel=1e-9)
    assert m["total_return"] == pytest.approx(empyrical.cum_returns_final(r), rel=1e-9)
    assert m["annual_return"] == pytest.approx(empyrical.annual_return(r), rel=1e-9)
    assert m["annual_volatility"] == pytest.approx(empyrical.annual_volatility(r), rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(empyrical.max_drawdown(r), rel=1e-9)
    assert m["tracking_error"] == pytest.approx(empyrical.annual_volatility(r - b), rel=1e-9)
    assert m["information_ratio"] == pytest.approx(
        empyrical.excess_sharpe(r, b) * np.sqrt(252), rel=1e-9)
    assert m["benchmark_total_return"] == pytest.approx(empyrical.cum_returns_final(b), rel=1e-9)
    fills = [t for day in perf["transactions"] for t in day]
    assert m["n_trades"] == len(fills) > 100
    notional = sum(abs(t["amount"] * t["price"]) for t in fills)
    expected = notional / perf["portfolio_value"].mean() * 252 / len(r)
    assert m["annual_turnover"] == pytest.approx(expected, rel=1e-12)
