"""What a user reads back on a day: empty days, and RiskModelExposure.

* A day whose pipeline output is empty (what zipline's ``pipeline_output``
  returns when no asset passed the screen: an object-dtype frame without
  rows) or all NaN (a backtest that starts before the windows are full)
  gives a ``ValueError`` that names the input, the date and the usual cause,
  from the optimizer's inputs and from ``WLSResidual``'s read-backs, instead
  of numpy's ``TypeError: ufunc 'isfinite' not supported``.
* ``RiskModelExposure``: Quantopian's per-factor exposure bounds, on the same
  linear-bounds machinery as ``FactorExposure``.

The WLS loadings read-back against the kernel is tested in
``test_pipeline_wls.py`` (it shares that file's reference).
"""

import numpy as np
import pandas as pd
import pytest

from conftest import zipline_environ

EMPTY_DAY_CAUSE = "windows are full"


def zipline_empty_day(columns):
    """What ``pipeline_output`` returns for a day without rows (zipline 3.2)."""
    return pd.DataFrame(index=[], columns=columns)


# ---------------------------------------------------------------------------
# empty inputs of the optimizer
# ---------------------------------------------------------------------------


def test_optimizer_inputs_explain_an_empty_pipeline_day():
    from zipline_factorarb.optimize import (
        DollarNeutral,
        FactorExposure,
        LongOnly,
        MaxGrossExposure,
        MaximizeAlpha,
        NonFiniteInput,
        RiskModelExposure,
        TargetWeights,
        calculate_optimal_portfolio,
    )

    def solve(term):
        """Data problems are raised when a term is solved (so that on_failure="hold"
        can hold on them), not when it is built."""
        if isinstance(term, (MaximizeAlpha, TargetWeights)):
            return calculate_optimal_portfolio(term, [LongOnly(), MaxGrossExposure(1.0)])
        return calculate_optimal_portfolio(TargetWeights(pd.Series({"A": 1.0})),
                                           [term, LongOnly()])

    day = zipline_empty_day(["alpha", "beta", "size"])
    assert (day.dtypes == object).all()
    # numpy itself cannot test this frame: the failure users used to get
    with pytest.raises(TypeError, match="isfinite"):
        np.isfinite(day["alpha"].to_numpy())

    with pytest.raises(ValueError, match=r"MaximizeAlpha\.alphas is empty") as info:
        solve(MaximizeAlpha(day["alpha"]))
    message = str(info.value)
    assert EMPTY_DAY_CAUSE in message and "window_length" in message
    assert "start the backtest later" in message.lower()
    assert " on 20" not in message  # no algorithm is running: no date to name
    with pytest.raises(ValueError, match=r"TargetWeights\.weights is empty"):
        solve(TargetWeights(day["alpha"]))
    for constraint in (FactorExposure, RiskModelExposure):
        with pytest.raises(ValueError, match=rf"{constraint.__name__}\.loadings has no rows "
                                             r"\(columns \['beta', 'size'\]\)"):
            solve(constraint(day[["beta", "size"]], -0.1, 0.1))

    # every value NaN (an unscreened day before the windows are full): still a
    # NonFiniteInput (a ValueError), now with the cause
    assets = ["A", "B", "C"]
    nan_day = pd.DataFrame(np.nan, index=assets, columns=["alpha", "beta"])
    with pytest.raises(NonFiniteInput, match=r"MaximizeAlpha\.alphas has only NaN values "
                                             r"\(3 entries\)") as info:
        solve(MaximizeAlpha(nan_day["alpha"]))
    assert EMPTY_DAY_CAUSE in str(info.value) and info.value.field == "MaximizeAlpha.alphas"
    with pytest.raises(NonFiniteInput, match=r"FactorExposure\.loadings has only NaN values"):
        solve(FactorExposure(nan_day[["beta"]], 0, 0))
    none_day = pd.DataFrame({"alpha": [None, None, None]}, index=assets)  # object dtype
    with pytest.raises(ValueError, match="only NaN values"):
        solve(MaximizeAlpha(none_day["alpha"]))
    # one NaN among numbers keeps the old message
    partial = pd.Series([0.1, np.nan, 0.2], index=assets)
    with pytest.raises(NonFiniteInput, match="non-finite value .* for 'B'"):
        solve(MaximizeAlpha(partial))
    with pytest.raises(TypeError, match="must hold numbers"):
        MaximizeAlpha(pd.Series(["x", "y"], index=["A", "B"]))

    # an empty float Series still means "no entries" (e.g. no current positions)
    alphas = pd.Series([0.02, -0.01, 0.005], index=assets)
    weights = calculate_optimal_portfolio(
        MaximizeAlpha(alphas), [DollarNeutral(), MaxGrossExposure(1.0)],
        current_weights=pd.Series(dtype=float))
    assert weights["A"] == pytest.approx(0.5, abs=1e-4)  # DollarNeutral's tolerance


def test_empty_day_in_a_backtest_names_the_date(sample_root):
    """Inside a running algorithm the error names the session; the factor's read-back
    says how many sessions it needs (the factor ETFs of the sample start 2014-01-02)."""
    from zipline import run_algorithm
    from zipline.api import attach_pipeline, pipeline_output, symbols
    from zipline.pipeline import Pipeline
    from zipline.pipeline.filters import StaticAssets

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.optimize import (LongOnly, MaximizeAlpha, NetExposure,
                                            calculate_optimal_portfolio)
    from zipline_factorarb.pipeline.wls import PIPELINE_PREFIX

    def solve(alphas):  # the data problem is raised when the objective is solved
        return calculate_optimal_portfolio(MaximizeAlpha(alphas), [LongOnly(), NetExposure(1, 1)])

    errors = []

    def initialize(context):
        etfs = StaticAssets(symbols("MTUM", "QUAL", "SIZE", "USMV", "VLUE"))
        context.wls = WLSResidual(sector=None, mask=etfs)
        columns = context.wls.pipeline_columns()
        attach_pipeline(Pipeline(columns, screen=context.wls.weighted_residual.notnull()),
                        "screened")
        attach_pipeline(Pipeline(columns, screen=etfs), "unscreened")

    def before_trading_start(context, data):
        screened = pipeline_output("screened")
        unscreened = pipeline_output("unscreened")
        for name, read in (
            ("loadings", lambda: context.wls.loadings(screened)),
            ("factor_returns", lambda: context.wls.factor_returns(screened)),
            ("alphas", lambda: solve(screened[PIPELINE_PREFIX + "weighted_residual"])),
            ("all_nan", lambda: context.wls.loadings(unscreened)),
            ("all_nan_alphas",
             lambda: solve(unscreened[PIPELINE_PREFIX + "weighted_residual"])),
        ):
            try:
                read()
            except ValueError as exc:
                errors.append((name, str(exc)))
            else:
                errors.append((name, None))

    run_algorithm(start=pd.Timestamp("2014-01-13"), end=pd.Timestamp("2014-01-14"),
                  initialize=initialize, before_trading_start=before_trading_start,
                  capital_base=1e6, bundle="factorarb-sample",
                  environ=zipline_environ(sample_root))
    assert len(errors) == 10
    by_name = {}
    for name, message in errors:
        assert message is not None, name
        by_name.setdefault(name, []).append(message)
    for name, messages in by_name.items():
        assert "on 2014-01-13" in messages[0] and "on 2014-01-14" in messages[1], name
        assert all(EMPTY_DAY_CAUSE in m for m in messages), name
    assert by_name["loadings"][0].startswith(
        "the pipeline output read by WLSResidual.loadings has no rows on 2014-01-13.")
    assert "window_length=61 sessions" in by_name["loadings"][0]
    assert "WLSResidual.factor_returns" in by_name["factor_returns"][0]
    assert by_name["alphas"][0].startswith("MaximizeAlpha.alphas is empty on 2014-01-13")
    assert "has no asset in the regression on 2014-01-13 (the weight of each of its 5 rows " \
           "is NaN)" in by_name["all_nan"][0]
    assert "MaximizeAlpha.alphas has only NaN values (5 entries) on 2014-01-13" \
        in by_name["all_nan_alphas"][0]


def test_wls_read_backs_check_their_frame(sample_root, monkeypatch, caplog):
    from zipline.pipeline import Pipeline
    from zipline.pipeline.filters import StaticAssets

    from zipline_factorarb import WLSResidual
    from zipline_factorarb.pipeline.classifiers import IsStock
    from zipline_factorarb.pipeline.research import run_pipeline

    monkeypatch.setenv("ZIPLINE_ROOT", str(sample_root))
    wls = WLSResidual(styles=("reversal",), mask=IsStock())
    columns = wls.pipeline_columns()
    assert set(columns) == {"wls:" + name for name in wls.outputs}
    assert columns["wls:loading_reversal"] is wls.loading_reversal
    assert "mine:weight" in wls.pipeline_columns("mine:")
    with pytest.raises(TypeError, match="prefix must be a string"):
        wls.pipeline_columns(None)

    frame = run_pipeline(Pipeline(columns, screen=IsStock()), "2021-06-01", "2021-06-02",
                         environ=zipline_environ(sample_root))
    with pytest.raises(ValueError, match="holds 2 dates; pass one day's output"):
        wls.loadings(frame)
    day = frame.xs(frame.index[0][0])
    with pytest.raises(KeyError, match=r"column 'x:weight' is missing.*"
                                       r"pipeline_columns\(prefix='x:'\)"):
        wls.loadings(day, prefix="x:")
    with pytest.raises(TypeError, match="needs one day's pipeline output"):
        wls.loadings(day["wls:weight"])
    empty = zipline_empty_day(day.columns)
    for read in (wls.loadings, wls.factor_returns):
        with pytest.raises(ValueError, match=rf"WLSResidual\.{read.__name__} has no rows\. "
                                             ".*window_length=61 sessions"):
            read(empty)
    loadings = wls.loadings(day)
    assert loadings.columns[0] == "intercept" and loadings.columns[-1] == "reversal"
    assert loadings.columns[1:-1].str.startswith("sector_").all()
    assert len(loadings) == 20 and np.isfinite(loadings.to_numpy()).all()

    # the factor ETFs start on 2014-01-02: before 61 sessions, no asset has a weight
    etf_assets = StaticAssets(_etfs(sample_root))
    etfs = WLSResidual(sector=None, mask=etf_assets)
    with caplog.at_level("WARNING", logger="zipline_factorarb.pipeline.wls"):
        early = run_pipeline(Pipeline(etfs.pipeline_columns(), screen=etf_assets),
                             "2014-01-13", "2014-01-13", environ=zipline_environ(sample_root))
    assert len(early) == 5 and early["wls:weight"].isna().all()
    # a day without assets is not reported as ill-conditioned
    assert not [r for r in caplog.records if "condition number" in r.getMessage()]
    with pytest.raises(ValueError, match=r"has no asset in the regression on 2014-01-13 "
                                         r"\(the weight of each of its 5 rows is NaN\)"):
        etfs.loadings(early)


def test_wls_read_back_of_an_unsolved_day_says_why():
    """A day with assets but no solution: the condition number, or too few assets."""
    from zipline_factorarb import WLSResidual

    wls = WLSResidual(sector=None, styles=("volatility",), max_condition=100.0)
    rows = pd.Index(["A", "B", "C"])
    day = pd.DataFrame({"wls:" + name: np.nan for name in wls.outputs}, index=rows)
    day["wls:n_assets"] = 3.0
    day["wls:condition_number"] = 5e3
    with pytest.raises(ValueError, match=r"not solved: its condition number 5e\+03 is above "
                                         r"max_condition=100"):
        wls.loadings(day)
    day["wls:condition_number"] = np.inf
    with pytest.raises(ValueError, match="not solved: 3 assets had loadings"):
        wls.factor_returns(day)


def _etfs(root):
    from zipline.data import bundles

    data = bundles.load("factorarb-sample", environ=zipline_environ(root))
    try:
        return [data.asset_finder.lookup_symbol(s, None)
                for s in ("MTUM", "QUAL", "SIZE", "USMV", "VLUE")]
    finally:
        data.close()


# ---------------------------------------------------------------------------
# RiskModelExposure
# ---------------------------------------------------------------------------


def _solve(*constraints, alphas=None, **kwargs):
    from zipline_factorarb.optimize import MaximizeAlpha, calculate_optimal_portfolio

    if alphas is None:
        alphas = pd.Series([1.0, 0.5], index=["A", "B"])
    return calculate_optimal_portfolio(MaximizeAlpha(alphas), list(constraints), **kwargs)


def test_risk_model_exposure_closed_form():
    """max w_A + w_B / 2 with |w_A| + |w_B| <= 1 and the exposure to f = w_A + w_B
    within [lo, hi]: w = ((1 + hi) / 2, -(1 - hi) / 2)."""
    from zipline_factorarb.optimize import MaxGrossExposure, RiskModel, RiskModelExposure

    loadings = pd.DataFrame({"f": [1.0, 1.0]}, index=["A", "B"])
    gross = MaxGrossExposure(1.0)
    cases = [
        (RiskModelExposure(loadings), 0.18),  # the default: +-0.18
        (RiskModelExposure(loadings, default_bound=0.3), 0.3),
        (RiskModelExposure(loadings, -0.1, 0.25), 0.25),
        (RiskModelExposure(loadings, max_exposure={"f": 0.4}), 0.4),
        (RiskModelExposure(loadings, bounds={"f": (None, 0.05)}, max_exposure=0.5), 0.05),
        (RiskModelExposure(loadings, 0, 0), 0.0),
    ]
    for constraint, hi in cases:
        w = _solve(gross, constraint)
        np.testing.assert_allclose(w[["A", "B"]], [(1 + hi) / 2, -(1 - hi) / 2], atol=1e-6,
                                   err_msg=repr(constraint))
    # a RiskModel is read through its loadings
    model = RiskModel(loadings, pd.DataFrame([[1e-4]], index=["f"], columns=["f"]),
                      pd.Series([1e-4, 1e-4], index=["A", "B"]))
    w = _solve(gross, RiskModelExposure(model, bounds={"f": (-0.5, 0.1)}))
    np.testing.assert_allclose(w[["A", "B"]], [0.55, -0.45], atol=1e-6)
    # unbounded on one side: the gross exposure alone binds
    w = _solve(gross, RiskModelExposure(loadings, bounds={"f": (-0.2, np.inf)}))
    np.testing.assert_allclose(w[["A", "B"]], [1.0, 0.0], atol=1e-6)
    # the active exposure loadings' (w - b)
    b = pd.Series([0.1, 0.1], index=["A", "B"])
    w = _solve(gross, RiskModelExposure(loadings, 0, 0.1, benchmark_weights=b))
    np.testing.assert_allclose(w[["A", "B"]], [0.65, -0.35], atol=1e-6)


def test_risk_model_exposure_bounds_precedence_and_validation():
    from zipline_factorarb.optimize import RiskModelExposure

    loadings = pd.DataFrame(np.ones((3, 4)), index=list("XYZ"),
                            columns=["sector_10", "sector_45", "momentum", "pc1"])
    c = RiskModelExposure(loadings, min_exposure=pd.Series({"momentum": -0.3}),
                          max_exposure=0.25, bounds={"pc1": (None, 0.01),
                                                     "sector_45": (-np.inf, np.inf)},
                          default_bound=0.1)
    expected = pd.DataFrame({"min": [-0.1, -np.inf, -0.3, -0.1],
                             "max": [0.25, np.inf, 0.25, 0.01]}, index=loadings.columns)
    pd.testing.assert_frame_equal(c.exposure_bounds, expected)
    assert repr(c) == ("RiskModelExposure(factors=['sector_10', 'sector_45', 'momentum', "
                       "'pc1'], default_bound=0.1)")
    unbounded = RiskModelExposure(loadings, default_bound=None, bounds={"pc1": (0, 0)})
    assert np.isinf(unbounded.exposure_bounds.drop("pc1").to_numpy()).all()
    assert RiskModelExposure.DEFAULT_BOUND == 0.18
    assert (RiskModelExposure(loadings).exposure_bounds["max"] == 0.18).all()

    with pytest.raises(ValueError, match=r"bounds names unknown factors \['value'\]"):
        RiskModelExposure(loadings, bounds={"value": (-1, 1)})
    with pytest.raises(ValueError, match=r"max_exposure names unknown factors \['size'\]"):
        RiskModelExposure(loadings, max_exposure={"size": 0.1})
    with pytest.raises(ValueError, match="min exposure exceeds max exposure for factor "
                                         "'momentum'"):
        RiskModelExposure(loadings, bounds={"momentum": (0.2, 0.1)})
    with pytest.raises(ValueError, match="min exposure exceeds max exposure for factor "
                                         "'sector_10'"):
        RiskModelExposure(loadings, min_exposure=0.2)  # above the default max of 0.18
    with pytest.raises(ValueError, match="default_bound must be non-negative"):
        RiskModelExposure(loadings, default_bound=-0.1)
    with pytest.raises(ValueError, match="min_exposure is NaN"):
        RiskModelExposure(loadings, min_exposure=np.nan)
    with pytest.raises(TypeError, match=r"bounds\['pc1'\] must be a pair"):
        RiskModelExposure(loadings, bounds={"pc1": 0.1})
    with pytest.raises(TypeError, match="bounds must be a dict"):
        RiskModelExposure(loadings, bounds=[("pc1", (0, 1))])
    with pytest.raises(TypeError, match="loadings must be a pandas DataFrame"):
        RiskModelExposure(np.ones((3, 2)))


def test_risk_model_exposure_equals_factor_exposure():
    from zipline_factorarb.optimize import (
        DollarNeutral,
        FactorExposure,
        MaxGrossExposure,
        NetExposure,
        PositionConcentration,
        RiskModelExposure,
    )

    rng = np.random.default_rng(11)
    assets = [f"S{i}" for i in range(40)]
    factors = ["intercept", "sector_10", "sector_20", "beta", "momentum"]
    loadings = pd.DataFrame(rng.standard_normal((40, 5)), index=assets, columns=factors)
    loadings["intercept"] = 1.0
    loadings["sector_10"] = (np.arange(40) % 3 == 0) * 1.0
    loadings["sector_20"] = (np.arange(40) % 3 == 1) * 1.0
    alphas = pd.Series(rng.standard_normal(40) * 0.01, index=assets)
    benchmark = pd.Series(1 / 40, index=assets)
    neutral = [DollarNeutral(), MaxGrossExposure(1.0),
               PositionConcentration.with_equal_bounds(-0.08, 0.08)]
    invested = [NetExposure(1.0, 1.0), MaxGrossExposure(1.5),
                PositionConcentration.with_equal_bounds(-0.08, 0.08)]
    cases = [
        (neutral,
         RiskModelExposure(loadings, bounds={"beta": (-0.02, 0.05), "momentum": (0, 0.01)},
                           default_bound=0.1),
         FactorExposure(loadings, pd.Series([-0.1, -0.1, -0.1, -0.02, 0.0], index=factors),
                        pd.Series([0.1, 0.1, 0.1, 0.05, 0.01], index=factors))),
        (neutral, RiskModelExposure(loadings, 0, 0), FactorExposure(loadings, 0, 0)),
        # active exposures loadings' (w - b) of a fully invested book
        (invested, RiskModelExposure(loadings, default_bound=0.05, benchmark_weights=benchmark),
         FactorExposure(loadings, -0.05, 0.05, benchmark_weights=benchmark)),
    ]
    for common, ours, theirs in cases:
        pd.testing.assert_frame_equal(ours.exposure_bounds, theirs.exposure_bounds)
        w1 = _solve(*common, ours, alphas=alphas)
        w2 = _solve(*common, theirs, alphas=alphas)
        assert np.abs(w1).sum() > 0.5
        np.testing.assert_allclose(w1.to_numpy(), w2.reindex(w1.index).to_numpy(), atol=1e-6)
        b = np.zeros(40) if ours.benchmark_weights is None else benchmark.to_numpy()
        exposure = loadings.T @ (w1.reindex(assets).to_numpy() - b)
        bounds = ours.exposure_bounds
        assert (exposure >= bounds["min"] - 1e-7).all() and (exposure <= bounds["max"] + 1e-7).all()


def test_risk_model_exposure_infeasible_names_the_factor_and_unbounded_check():
    from zipline_factorarb.optimize import (
        InfeasibleConstraints,
        MaxGrossExposure,
        RiskModelExposure,
        UnboundedObjective,
    )

    loadings = pd.DataFrame({"market": [1.0, 1.0, 1.0], "momentum": [0.2, -0.1, 0.1]},
                            index=["A", "B", "C"])
    alphas = pd.Series([0.01, 0.02, 0.03], index=loadings.index)
    # gross <= 1 allows a momentum exposure of at most 0.2: 0.5 is out of reach
    tight = RiskModelExposure(loadings, bounds={"momentum": (0.5, 1.0)})
    with pytest.raises(InfeasibleConstraints) as info:
        _solve(MaxGrossExposure(1.0), tight, alphas=alphas)
    message = str(info.value)
    assert "exposure to 'momentum' 0 outside [0.5, 1]" in message
    assert "RiskModelExposure(factors=['market', 'momentum'], default_bound=0.18): widen the " \
           "bounds of the factors named above" in message
    assert repr(tight) in info.value.removable

    # exposure bounds alone do not bound the book (three assets, two factors) ...
    with pytest.raises(UnboundedObjective):
        _solve(RiskModelExposure(loadings), alphas=alphas)
    # ... but do when the loadings have full rank
    square = pd.DataFrame(np.eye(3), index=loadings.index, columns=["f1", "f2", "f3"])
    w = _solve(RiskModelExposure(square, default_bound=0.2), alphas=alphas)
    np.testing.assert_allclose(w.to_numpy(), [0.2, 0.2, 0.2], atol=1e-6)
