"""Rebalance periods and the pipeline sampling frequency of each.

The one map from a rebalance period (``"day"``, ``"week"``, ``"month"``,
``"quarter"``) to zipline's pipeline downsampling frequency
(``Term.downsample`` and ``FactorRiskModel(frequency=...)``): a term read only
on rebalance sessions needs computing only there. It lives in the pipeline
layer so that pipeline modules can use it without importing the algorithm
layer; :mod:`zipline_factorarb.algo` re-exports it for algorithm files.
"""

__all__ = ["SAMPLING_FREQUENCIES"]

#: zipline's pipeline sampling frequency of each rebalance period (None: every session)
SAMPLING_FREQUENCIES = {"day": None, "week": "week_start", "month": "month_start",
                        "quarter": "quarter_start"}
