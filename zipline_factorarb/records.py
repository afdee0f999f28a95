"""The names algorithms ``record()`` and the report reads: one place for each.

An algorithm records its diagnostics with ``zipline.api.record``; the report
(:mod:`zipline_factorarb.analysis`) finds them in the perf frame by these
names. Both sides import them from here, so a name cannot drift on one side.
Names ending in ``_`` are prefixes: the recorded name appends a factor or
sector label (``FACTOR_EXPOSURE + "momentum"`` is ``"factor_exposure_momentum"``).

This module imports nothing, so any layer may use it.
"""

__all__ = [
    "BENCHMARK_SECTOR_WEIGHT",
    "EX_ANTE_TEV",
    "EXPECTED_BORROW_COST",
    "EXPECTED_COST",
    "FACTOR_EXPOSURE",
    "GROSS_EXPOSURE",
    "NET_EXPOSURE",
    "N_HOLDINGS",
    "N_LONG",
    "N_SHORT",
    "OPTIMIZER_FAILURE",
    "OPTIMIZER_FAILURE_REASON",
    "REALISED_COST",
    "RISK_CONTRIBUTION",
    "RISK_CONTRIBUTION_SPECIFIC",
    "SECTOR_WEIGHT",
    "TRACKED_BENCHMARK_RETURN",
]

# --------------------------------------------------------------------------- risk
#: ex-ante tracking error of the target against the benchmark (annualised)
EX_ANTE_TEV = "ex_ante_tev"
#: prefix: active (or net) exposure to a factor
FACTOR_EXPOSURE = "factor_exposure_"
#: prefix: the book's net weight in a sector
SECTOR_WEIGHT = "sector_weight_"
#: prefix: the benchmark's weight in a sector
BENCHMARK_SECTOR_WEIGHT = "benchmark_sector_weight_"
#: prefix: a factor's share of the active (or total) risk
RISK_CONTRIBUTION = "risk_contribution_"
#: the specific (idiosyncratic) share of the risk
RISK_CONTRIBUTION_SPECIFIC = RISK_CONTRIBUTION + "specific"

# --------------------------------------------------------------------------- book
#: number of names held
N_HOLDINGS = "n_holdings"
#: number of long / short names
N_LONG = "n_long"
N_SHORT = "n_short"
#: sum of |weight| and sum of weight, as fractions of the portfolio value
GROSS_EXPOSURE = "gross_exposure"
NET_EXPOSURE = "net_exposure"
#: the day's return of the benchmark weights held since the last rebalance
TRACKED_BENCHMARK_RETURN = "tracked_benchmark_return"

# --------------------------------------------------------------------------- optimiser
#: 1 when a rebalance failed, 0 when it solved
OPTIMIZER_FAILURE = "optimizer_failure"
#: why it failed (``"<reason>: <first line of the error>"``); None after a success
OPTIMIZER_FAILURE_REASON = "optimizer_failure_reason"

# --------------------------------------------------------------------------- costs
#: expected trading cost (linear + impact) and borrow cost of the rebalance, and the
#: realised cost, as fractions of the portfolio value
EXPECTED_COST = "expected_cost"
EXPECTED_BORROW_COST = "expected_borrow_cost"
REALISED_COST = "realised_cost"
