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

    return dict(
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
