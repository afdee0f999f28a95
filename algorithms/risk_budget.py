"""Risk budgeting on penalised factor loadings (the procedure of the research's seed 003).

At each rebalance (``rebalance``: week or month), the five steps:

1. **factors that span the assets**: the market (``market_symbols``, the S&P 500
   index on the sample) and the factor ETFs of ``factor_symbols`` (the market and
   one factor per GICS sector on a stock bundle without them), in excess of the
   market;
2. **a regularised regression over a historical window**: every stock's last
   ``window`` daily returns are regressed on the factor returns with a ridge
   (``method="ridge"``) or lasso (``"lasso"``) penalty, by ``FactorRiskModel``
   (``method="ols"`` for the unpenalised model);
3. **the penalty chosen by cross-validation**: per stock, by ``cv``-fold walk-forward
   cross-validation inside the window (each fold trains only on the rows before it);
   give ``lam`` to fix it instead;
4. **loadings with that penalty**: refitted on the whole window; with the factor
   covariance (exponentially weighted, Ledoit-Wolf shrunk) and the specific variances
   they make the risk model;
5. **risk allocation**: long-only weights whose contributions to total risk match
   ``budgets`` by sector (``{"Energy": 2, ...}``; equal for the sectors not named, so
   the default is sector risk parity), or per stock (``budget_by="asset"``: equal risk
   contributions), by the ``RiskBudgeting`` objective.

The benchmark (``benchmark_symbols``; the documented equal-weight proxy for the
ex-ante tracking error) is what the portfolio is measured against. Recorded at each
rebalance: ``risk_contribution_<sector>`` (each sector's share of the portfolio's
ex-ante variance: the crisis report's risk tables read these, so they show the
budgets held), ``risk_budget_<sector>`` (the targets), ``risk_budget_gap`` (the
largest difference between a stock's risk share and its budget, from the
optimiser), ``ex_ante_tev`` against the benchmark weights, ``factor_exposure_<f>``,
``sector_weight_<s>`` / ``benchmark_sector_weight_<s>``, ``n_holdings``; and
``optimizer_failure``.

Run::

    zipline run -f algorithms/risk_budget.py -b factorarb-sample \\
        -s 2019-01-02 -e 2021-12-31 -o risk_budget.pickle
    FACTORARB_PARAMS='{"method": "lasso", "budgets": {"Energy": 0.5}}' zipline run ...
"""

import pandas as pd
from zipline.api import attach_pipeline, pipeline_output, record
from zipline.pipeline import Pipeline

from zipline_factorarb.algo import (algorithm_params, algorithm_risk_model, first_session_of,
                                    initialize_trading)
from zipline_factorarb.optimize import (LongOnly, RiskBudgeting, order_optimal_portfolio,
                                        proxy_benchmark_weights, risk_records)
from zipline_factorarb.pipeline import IsStock, Sector
from zipline_factorarb.records import RISK_CONTRIBUTION

PARAMS = algorithm_params({
    "method": "ridge",  # loadings: "ols", "ridge", "lasso" or "elasticnet"
    "lam": None,  # the penalty; None: chosen per stock by walk-forward cross-validation
    "cv": 5,  # walk-forward folds
    "budget_by": "sector",  # "sector" or "asset"
    "budgets": {},  # by sector (relative; sectors not named get 1); empty: equal
    "rebalance": "month",  # "week" or "month"
    "window": 252,  # sessions of the regression window
    "factor_symbols": ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"],
    "market_symbols": ["SP500", "SPY"],
    "benchmark_symbols": ["SP500", "SPY"],
    "on_failure": "hold",
})

if PARAMS["budget_by"] not in ("sector", "asset"):
    raise ValueError(f"budget_by must be 'sector' or 'asset', got {PARAMS['budget_by']!r}")
if PARAMS["rebalance"] not in ("week", "month"):
    raise ValueError(f"rebalance must be 'week' or 'month', got {PARAMS['rebalance']!r}")


def initialize(context):
    initialize_trading(context, PARAMS["benchmark_symbols"])
    universe = IsStock() & Sector().notnull()
    risk, _ = algorithm_risk_model(PARAMS, universe, method=PARAMS["method"], lam=PARAMS["lam"],
                                   cv=PARAMS["cv"])
    attach_pipeline(Pipeline(risk.pipeline_columns(into={"sector": Sector()}), screen=universe),
                    "risk_budget")
    context.risk = risk


def sector_budgets(sectors, given):
    """Budgets by sector (summing to one): ``given`` where named, 1 elsewhere."""
    unknown = set(given) - set(sectors)
    if unknown:
        raise ValueError(f"budgets name sectors with no stock in the universe: {sorted(unknown)}")
    names = sorted(set(sectors))
    b = pd.Series({s: float(given.get(s, 1.0)) for s in names})
    return b / b.sum()


def rebalance(context, data):
    out = pipeline_output("risk_budget")
    model = context.risk.risk_model(out)
    sectors = out.loc[model.assets, "sector"].map(Sector.name_of)
    if PARAMS["budget_by"] == "sector":
        budgets = sector_budgets(sectors, PARAMS["budgets"])
        objective = RiskBudgeting(model, group_budgets=budgets, groups=sectors)
    else:
        objective = RiskBudgeting(model)
        budgets = (objective.budgets.groupby(sectors).sum())
    result = order_optimal_portfolio(objective, [LongOnly()], on_failure=PARAMS["on_failure"],
                                     data=data)
    if result.action != "rebalance":
        return
    w = result.result.new_weights
    benchmark = proxy_benchmark_weights(model.assets, weighting="equal")
    names = sorted(set(sectors))
    records = {k: v for k, v in risk_records(w, benchmark, model, sectors=sectors,
                                             sector_names=names).items()
               if not k.startswith(RISK_CONTRIBUTION)}
    by_asset = result.result.diagnostics["risk_contributions_by_asset"]  # total risk
    shares = (by_asset / by_asset.sum()).groupby(sectors.reindex(by_asset.index)).sum()
    for name in names:
        records[RISK_CONTRIBUTION + str(name)] = float(shares.get(name, 0.0))
        records[f"risk_budget_{name}"] = float(budgets.get(name, 0.0))
    record(risk_budget_gap=float(result.result.objective_value), **records)


def handle_data(context, data):
    if first_session_of(context, PARAMS["rebalance"]):
        rebalance(context, data)
