"""The numbers a sweep records for each backtest, from zipline's perf frame.

Conventions (as empyrical and pyfolio): simple daily returns, 252 sessions a
year, sample standard deviation, no risk-free rate. The benchmark's daily
returns are recovered from zipline's cumulative ``benchmark_period_return``.

- ``sharpe``: mean / std of daily returns x sqrt(252);
- ``total_return``: compounded return over the test window;
- ``max_drawdown``: most negative wealth / running peak - 1 (<= 0);
- ``annual_turnover``: traded notional (buys plus sells) over the window,
  divided by the mean portfolio value, per year: rebuilding the whole book
  once counts 2;
- ``tracking_error``: annualised std of daily active returns (strategy minus
  benchmark); ``information_ratio``: annualised mean active return /
  tracking error;
- ``n_trades``: number of fills (zipline transactions).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PERIODS_PER_YEAR = 252


def _float(x):
    x = float(x)
    return x if math.isfinite(x) else float("nan")


def _sharpe(r):
    r = r[~np.isnan(r)]
    if r.size < 2:
        return float("nan")
    sd = np.std(r, ddof=1)
    return _float(np.mean(r) / sd * math.sqrt(PERIODS_PER_YEAR)) if sd > 0 else float("nan")


def _max_drawdown(r):
    wealth = np.cumprod(1.0 + np.nan_to_num(r))
    peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    return _float((wealth / peak - 1.0).min()) if r.size else float("nan")


def benchmark_returns(perf):
    """Daily benchmark returns from zipline's cumulative benchmark return."""
    if "benchmark_period_return" not in perf:
        return None
    cum = 1.0 + perf["benchmark_period_return"].astype(float)
    return cum / cum.shift(1, fill_value=1.0) - 1.0


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
    growth = float(np.prod(1.0 + np.nan_to_num(returns))) if n else float("nan")
    total = growth - 1.0
    annual = growth ** (PERIODS_PER_YEAR / n) - 1.0 if n and growth > 0 else float("nan")
    vol = float(np.std(returns, ddof=1) * math.sqrt(PERIODS_PER_YEAR)) if n > 1 else float("nan")

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
        active = returns - b
        te = float(np.std(active, ddof=1) * math.sqrt(PERIODS_PER_YEAR)) if n > 1 else float("nan")
        ir = (float(np.mean(active)) * PERIODS_PER_YEAR / te) if te and te > 0 else float("nan")
        bench_total = float(np.prod(1.0 + np.nan_to_num(b)) - 1.0)
    else:
        te = ir = bench_total = float("nan")

    return dict(
        sharpe=_sharpe(returns),
        total_return=_float(total),
        annual_return=_float(annual),
        annual_volatility=_float(vol),
        max_drawdown=_max_drawdown(returns),
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
