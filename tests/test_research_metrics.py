"""The per-run numbers of a sweep, on a real backtest, against empyrical."""

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_psr_of_a_real_backtest_matches_skfolio(sample_perf):
    from skfolio.measures import probabilistic_sharpe_ratio

    perf = pd.read_pickle(sample_perf)
    m = perf_metrics(perf)
    r = perf["returns"].astype(float).to_numpy()
    assert m["psr"] == pytest.approx(probabilistic_sharpe_ratio(r), rel=1e-10)
    assert m["daily_sharpe"] * np.sqrt(252) == pytest.approx(m["sharpe"], rel=1e-9)
    assert m["returns_kurtosis"] == pytest.approx(
        ((r - r.mean()) ** 4).mean() / r.var() ** 2, rel=1e-10)


def _results(series_by_fold):
    """A results frame as a sweep writes it, from return series per (fold, grid point)."""
    from zipline_factorarb.research.metrics import probabilistic_sharpe_ratio, return_moments

    rows = []
    for (fold, point), r in series_by_fold.items():
        mo = return_moments(r)
        rows.append(dict(status="ok", fold=fold, n=point, test_start=pd.Timestamp("2020-01-01"),
                         test_end=pd.Timestamp("2020-12-31"), n_sessions=len(r),
                         sharpe=mo["daily_sharpe"] * np.sqrt(252), **mo,
                         psr=probabilistic_sharpe_ratio(mo["daily_sharpe"], len(r),
                                                        mo["returns_skew"],
                                                        mo["returns_kurtosis"])))
    return pd.DataFrame(rows)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(30, 400), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_deflated_sharpe_matches_skfolio(n_points, n_obs, n_folds, seed):
    """Generated fat-tailed returns: each fold's best grid point, its PSR and DSR against
    skfolio's functions on the return series; SR0 against skfolio's expected maximum."""
    from skfolio.measures import (deflated_sharpe_ratio, expected_max_sharpe_ratio,
                                  probabilistic_sharpe_ratio)

    from zipline_factorarb.research.metrics import deflated_sharpe_table

    rng = np.random.default_rng(seed)
    series = {(f, p): rng.standard_t(5, size=n_obs) * 0.01 + rng.normal(0, 0.001)
              for f in range(n_folds) for p in range(n_points)}
    table = deflated_sharpe_table(_results(series), ["n"])
    assert table["fold"].tolist() == list(range(n_folds))
    for row in table.itertuples():
        srs = np.array([series[(row.fold, p)].mean() / series[(row.fold, p)].std(ddof=1)
                        for p in range(n_points)])
        best = int(np.argmax(srs))
        r = series[(row.fold, best)]
        assert row.best == f"n={best}" and row.trials == n_points
        assert row.psr == pytest.approx(probabilistic_sharpe_ratio(r), rel=1e-9, abs=1e-12)
        assert row.dsr == pytest.approx(deflated_sharpe_ratio(r, srs), rel=1e-9, abs=1e-12)
        sd = srs.std(ddof=1) if n_points > 1 else 0.0
        assert row.expected_max_sharpe == pytest.approx(
            expected_max_sharpe_ratio(n_points, sd) * np.sqrt(252), rel=1e-12, abs=1e-15)
        assert row.dsr <= row.psr + 1e-12  # selection can only deflate


def test_selection_table_is_a_plain_walk_forward_loop():
    from zipline_factorarb.research.metrics import selection_table

    rng = np.random.default_rng(5)
    sharpe = rng.normal(size=(6, 4))  # grid point x fold
    frame = pd.DataFrame([dict(status="ok", fold=f, n=p, sharpe=sharpe[p, f])
                          for p in range(6) for f in range(4)])
    table = selection_table(frame, ["n"])
    assert table["fold"].tolist() == [1, 2, 3]
    for row in table.itertuples():
        past = sharpe[:, :row.fold].mean(axis=1)
        chosen = int(np.argmax(past))
        assert row.selected == f"n={chosen}"
        assert row.in_sample == pytest.approx(past[chosen])
        assert row.out_of_sample == sharpe[chosen, row.fold]
        assert row.rank == 1 + int((sharpe[:, row.fold] > sharpe[chosen, row.fold]).sum())
        assert row.of == 6 and row.fold_best == sharpe[:, row.fold].max()
    assert selection_table(frame[frame["fold"] == 0], ["n"]).empty
