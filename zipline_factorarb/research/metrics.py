"""The numbers a sweep records for each backtest, from zipline's perf frame.

Conventions (as empyrical and pyfolio, through
:mod:`zipline_factorarb.kernels.performance`): simple daily returns, 252
sessions a year, sample standard deviation, no risk-free rate; the benchmark's
daily returns are recovered from zipline's cumulative
``benchmark_period_return``. ``docs/research.md`` defines each column of the
results table. The selection statistics (:func:`probabilistic_sharpe_ratio`,
:func:`expected_max_sharpe`, :func:`deflated_sharpe_ratio`, Bailey and Lopez de
Prado 2012 and 2014) use the same formulas as skfolio's (checked against them
in the tests), on stored per-run moments rather than return series.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..analysis.perf import benchmark_returns_of as benchmark_returns
from ..kernels import performance as pk

PERIODS_PER_YEAR = pk.PERIODS_PER_YEAR


def _float(x):
    x = float(x)
    return x if math.isfinite(x) else float("nan")


def perf_metrics(perf):
    """Scalar metrics of one backtest.

    Parameters
    ----------
    perf : pandas.DataFrame
        What ``zipline.run_algorithm`` returns.

    Returns
    -------
    dict
        ``sharpe, total_return, annual_return, annual_volatility,
        max_drawdown, annual_turnover, tracking_error, information_ratio,
        benchmark_total_return, n_trades, n_sessions`` as plain Python numbers
        (NaN where undefined).
    """
    returns = perf["returns"].astype(float).to_numpy()
    n = returns.size
    total = pk.total_return(returns)
    # no growth rate once the wealth is gone
    annual = pk.annual_return(returns) if n and total > -1.0 else float("nan")

    notional = 0.0
    n_trades = 0
    if "transactions" in perf:
        for day in perf["transactions"]:
            for txn in day or ():
                notional += abs(float(txn["amount"]) * float(txn["price"]))
                n_trades += 1
    mean_value = float(perf["portfolio_value"].astype(float).mean()) if n else float("nan")
    turnover = (notional / mean_value * PERIODS_PER_YEAR / n) if n and mean_value > 0 \
        else float("nan")

    bench = benchmark_returns(perf)
    if bench is not None:
        b = bench.to_numpy()
        te = pk.tracking_error(returns, b)
        ir = pk.information_ratio(returns, b)
        bench_total = pk.total_return(b)
    else:
        te = ir = bench_total = float("nan")

    moments = return_moments(returns)
    return dict(
        **moments,
        psr=_float(probabilistic_sharpe_ratio(moments["daily_sharpe"], n, moments["returns_skew"],
                                              moments["returns_kurtosis"])),
        sharpe=_float(pk.sharpe_ratio(returns)),
        total_return=_float(total),
        annual_return=_float(annual),
        annual_volatility=_float(pk.annual_volatility(returns)),
        max_drawdown=_float(pk.max_drawdown(returns)),
        annual_turnover=_float(turnover),
        tracking_error=_float(te),
        information_ratio=_float(ir),
        benchmark_total_return=_float(bench_total),
        n_trades=int(n_trades),
        n_sessions=int(n),
    )


def fold_summary(results, params, metric="sharpe"):
    """Mean, std and count of ``metric`` over folds, per grid point."""
    ok = results[results["status"] == "ok"]
    if not params:
        g = ok[metric]
        return pd.DataFrame({"mean": [g.mean()], "std": [g.std()], "folds": [g.count()]})
    grouped = ok.groupby(params, dropna=False)[metric]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(), "folds": grouped.count()})


def return_moments(returns):
    """``daily_sharpe`` (mean / sample std), ``returns_skew`` and ``returns_kurtosis``
    (population standardised third and fourth moments; kurtosis 3 for a normal)."""
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    nan = float("nan")
    if r.size < 3:
        return dict(daily_sharpe=nan, returns_skew=nan, returns_kurtosis=nan)
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    sd = float(r.std(ddof=1))
    if not (m2 > 0 and sd > 0):
        return dict(daily_sharpe=nan, returns_skew=nan, returns_kurtosis=nan)
    return dict(daily_sharpe=float(r.mean() / sd),
                returns_skew=float(np.mean(d ** 3) / m2 ** 1.5),
                returns_kurtosis=float(np.mean(d ** 4) / m2 ** 2))


def probabilistic_sharpe_ratio(sharpe, n, skew, kurtosis, benchmark=0.0):
    """P(true Sharpe > ``benchmark``) from an observed per-period Sharpe ratio.

    ``Z[(SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2)]``
    (Bailey and Lopez de Prado 2012) with ``kurtosis`` Pearson's (3 for a
    normal). NaN with fewer than 3 observations or a non-positive variance
    term.
    """
    from scipy.stats import norm

    sharpe, skew, kurtosis, benchmark = (float(x) for x in (sharpe, skew, kurtosis, benchmark))
    n = int(n)
    if n < 3 or not all(map(math.isfinite, (sharpe, skew, kurtosis, benchmark))):
        return float("nan")
    var = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe ** 2
    if not var > 0:
        return float("nan")
    return float(norm.cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(var)))


def expected_max_sharpe(n_trials, trial_sharpe_std, trial_sharpe_mean=0.0):
    """Expected maximum of ``n_trials`` independent normal Sharpe ratios (Bailey and
    Lopez de Prado 2014): ``mean + std [(1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e))]``."""
    from scipy.stats import norm

    n_trials = int(n_trials)
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if n_trials == 1 or trial_sharpe_std == 0:
        return float(trial_sharpe_mean)
    g = np.euler_gamma
    return float(trial_sharpe_mean + trial_sharpe_std * (
        (1 - g) * norm.ppf(1 - 1 / n_trials) + g * norm.ppf(1 - 1 / (n_trials * np.e))))


def deflated_sharpe_ratio(sharpe, n, skew, kurtosis, trial_sharpes):
    """PSR of the selected run against the expected maximum Sharpe ratio of the trials.

    ``trial_sharpes``: the per-period Sharpe ratios of every trial (the
    selected one included); NaN ones are not counted.
    """
    trials = np.asarray(trial_sharpes, dtype=float)
    trials = trials[np.isfinite(trials)]
    if trials.size == 0:
        return float("nan")
    std = float(trials.std(ddof=1)) if trials.size > 1 else 0.0
    return probabilistic_sharpe_ratio(sharpe, n, skew, kurtosis,
                                      benchmark=expected_max_sharpe(trials.size, std))


def _grid_labels(frame, params):
    if not params:
        return pd.Series("all", index=frame.index)
    return pd.Series([", ".join(f"{p}={v}" for p, v in zip(params, vals))
                      for vals in zip(*(frame[p] for p in params))], index=frame.index)


def deflated_sharpe_table(results, params):
    """Per fold: the best grid point by Sharpe ratio, its PSR and its deflated Sharpe ratio.

    Columns: ``fold, test_start, test_end, trials`` (grid points with a
    Sharpe ratio in the fold), ``best`` (the grid point), ``sharpe``
    (annualised), ``psr``, ``trial_sharpe_std`` and ``expected_max_sharpe``
    (annualised, the best Sharpe ratio expected from ``trials`` runs with no
    skill), ``dsr``.
    """
    ok = results[(results["status"] == "ok") & results["daily_sharpe"].notna()].copy()
    ok["grid_point"] = _grid_labels(ok, params)
    ann = math.sqrt(PERIODS_PER_YEAR)
    rows = []
    for fold, group in ok.groupby("fold", sort=True):
        best = group.loc[group["daily_sharpe"].idxmax()]
        trials = group["daily_sharpe"].to_numpy(dtype=float)
        std = float(trials.std(ddof=1)) if trials.size > 1 else 0.0
        rows.append(dict(
            fold=int(fold), test_start=best["test_start"], test_end=best["test_end"],
            trials=int(trials.size), best=best["grid_point"],
            sharpe=float(best["daily_sharpe"]) * ann, psr=float(best["psr"]),
            trial_sharpe_std=std * ann,
            expected_max_sharpe=expected_max_sharpe(trials.size, std) * ann,
            dsr=deflated_sharpe_ratio(best["daily_sharpe"], best["n_sessions"],
                                      best["returns_skew"], best["returns_kurtosis"], trials)))
    return pd.DataFrame(rows, columns=["fold", "test_start", "test_end", "trials", "best",
                                       "sharpe", "psr", "trial_sharpe_std",
                                       "expected_max_sharpe", "dsr"])


def selection_table(results, params, metric="sharpe"):
    """How the grid point chosen on earlier folds ranks on the next fold.

    For each fold k >= 1: ``selected`` is the grid point with the best mean
    ``metric`` over folds 0..k-1 (in-sample), ``in_sample`` that mean,
    ``out_of_sample`` its ``metric`` on fold k, ``rank`` its rank there among
    the fold's grid points (1 = best; ties share the best rank), ``of`` their
    number, ``fold_best`` and ``fold_median`` the fold's best and median.
    Empty with fewer than two folds.
    """
    ok = results[(results["status"] == "ok") & results[metric].notna()].copy()
    ok["grid_point"] = _grid_labels(ok, params)
    table = ok.pivot_table(index="grid_point", columns="fold", values=metric, aggfunc="mean")
    folds = sorted(table.columns)
    rows = []
    for i, fold in enumerate(folds[1:], start=1):
        past = table[folds[:i]].mean(axis=1).dropna()
        now = table[fold].dropna()
        past = past[past.index.isin(now.index)]
        if past.empty:
            continue
        chosen = past.idxmax()
        ranks = now.rank(ascending=False, method="min")
        rows.append(dict(fold=int(fold), selected=chosen, in_sample=float(past[chosen]),
                         out_of_sample=float(now[chosen]), rank=int(ranks[chosen]),
                         of=int(now.size), fold_best=float(now.max()),
                         fold_median=float(now.median())))
    return pd.DataFrame(rows, columns=["fold", "selected", "in_sample", "out_of_sample", "rank",
                                       "of", "fold_best", "fold_median"])
