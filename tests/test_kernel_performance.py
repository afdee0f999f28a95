"""Performance kernels against empyrical and closed forms."""

import empyrical
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from zipline_factorarb.kernels import performance as pk
from zipline_factorarb.kernels import risk as kr

returns_arrays = arrays(np.float64, st.integers(5, 300),
                        elements=st.floats(-0.2, 0.2, allow_nan=False, allow_subnormal=False))


@settings(max_examples=60, deadline=None)
@given(returns_arrays, st.integers(0, 2**31 - 1))
def test_against_empyrical(r, seed):
    b = np.random.default_rng(seed).normal(0, 0.01, r.size)
    assert pk.total_return(r) == pytest.approx(empyrical.cum_returns_final(r), rel=1e-10, abs=1e-12)
    assert pk.max_drawdown(r) == pytest.approx(empyrical.max_drawdown(r), rel=1e-10, abs=1e-12)
    assert pk.annual_return(r) == pytest.approx(empyrical.annual_return(r), rel=1e-9, abs=1e-12)
    if np.std(r) > 1e-12:
        assert pk.annual_volatility(r) == pytest.approx(empyrical.annual_volatility(r), rel=1e-10)
        assert pk.sharpe_ratio(r) == pytest.approx(empyrical.sharpe_ratio(r), rel=1e-9)
    assert pk.tracking_error(r, b) == pytest.approx(empyrical.annual_volatility(r - b), rel=1e-10)
    assert pk.information_ratio(r, b) == pytest.approx(
        empyrical.excess_sharpe(r, b) * np.sqrt(252), rel=1e-9)


def test_days_to_recover_closed_form():
    # wealth after each return: 1.1, 1.045, 1.1495, 0.57475
    r = np.array([0.10, -0.05, 0.10, -0.5])
    assert pk.days_to_recover(r, 1) == 2  # peak 1.1 regained on the second session
    assert np.isnan(pk.days_to_recover(r, 0))  # falls below 1.0 only in the final crash
    assert pk.days_to_recover(np.array([0.1, 0.05]), 0) == 0  # never below the start


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12), st.integers(0, 2**31 - 1))
def test_euler_contributions_sum_and_gradient(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    cov = a @ a.T / n + 1e-3 * np.eye(n)
    w = rng.normal(size=n)
    c = kr.risk_contributions(w, covariance=cov).asset
    total = w @ cov @ w
    assert c.sum() == pytest.approx(total, rel=1e-10)
    # direct computation: w_i * d(w'Sw)/dw_i / 2 with a central finite difference
    eps = 1e-6
    for i in range(n):
        e = np.zeros(n)
        e[i] = eps
        grad = ((w + e) @ cov @ (w + e) - (w - e) @ cov @ (w - e)) / (2 * eps)
        assert c[i] == pytest.approx(w[i] * grad / 2, rel=1e-6, abs=1e-9)
    groups = rng.integers(0, 3, n)
    by_group = pk.group_contributions(c, groups, [0, 1, 2])
    assert by_group.sum() == pytest.approx(total, rel=1e-10)


def test_diversification_measures():
    assert pk.herfindahl([0.25] * 4) == pytest.approx(0.25)
    assert pk.effective_number_of_bets([0.25] * 4) == pytest.approx(4.0)
    assert pk.effective_number_of_bets([1.0, 0, 0]) == pytest.approx(1.0)
    assert 1.0 < pk.effective_number_of_bets([0.7, 0.2, 0.1]) < 3.0


@settings(max_examples=40, deadline=None)
@given(returns_arrays, st.integers(0, 2**31 - 1))
def test_sortino_tail_alpha_beta_closed_forms(r, seed):
    """The statistics delegated to empyrical, against their formulas written out."""
    b = np.random.default_rng(seed).normal(0, 0.01, r.size)
    if (r < 0).any() and np.std(r) > 1e-12:
        downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * np.sqrt(252)
        assert pk.sortino_ratio(r) == pytest.approx(np.mean(r) * 252 / downside, rel=1e-9)
    if np.percentile(r, 5) != 0:
        expected = abs(np.percentile(r, 95)) / abs(np.percentile(r, 5))
        assert pk.tail_ratio(r) == pytest.approx(expected, rel=1e-12)
    alpha, beta = pk.alpha_beta(r, b)
    slope = np.polyfit(b, r, 1)[0]  # least squares, an independent route to beta
    assert beta == pytest.approx(slope, rel=1e-7, abs=1e-10)
    assert alpha == pytest.approx((1 + np.mean(r - beta * b)) ** 252 - 1, rel=1e-9, abs=1e-12)


def test_statistics_edge_cases():
    assert np.isnan(pk.sharpe_ratio([0.01, 0.01, 0.01]))  # no variation
    assert np.isnan(pk.sortino_ratio([0.01, 0.02]))  # no downside
    assert np.isnan(pk.tail_ratio(np.zeros(30)))  # a cash benchmark
    assert all(np.isnan(pk.alpha_beta([0.01, -0.01, 0.02], [0.0, 0.0, 0.0])))
    assert np.isnan(pk.total_return([])) and np.isnan(pk.max_drawdown([]))
    # NaN returns are dropped before a statistic, as before the move to empyrical
    r = np.array([0.01, np.nan, -0.02, 0.015])
    assert pk.annual_return(r) == pytest.approx(empyrical.annual_return(r[~np.isnan(r)]))
