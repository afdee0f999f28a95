"""Sweep specs, walk-forward folds and run ids (no backtests here)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO_ROOT

from zipline_factorarb.research.errors import SpecError
from zipline_factorarb.research.runner import load_algorithm
from zipline_factorarb.research.spec import SweepSpec, declared_params, read_spec_file
from zipline_factorarb.research.walkforward import (
    Fold,
    calendar_sessions,
    single_period,
    walk_forward_folds,
)

ALGO = REPO_ROOT / "algorithms" / "sector_momentum.py"


@pytest.fixture(scope="module")
def sessions():
    return calendar_sessions("XNYS")


def d(text):
    return pd.Timestamp(text)


def test_kalman_study_layout(sessions):
    """Ten folds, 3 years train and 1 year test, tests 2015 .. 2024 as in the study."""
    folds = walk_forward_folds(sessions, train_years=3, test_years=1, n_folds=10,
                               start="2012-01-01")
    assert len(folds) == 10
    first, last = folds[0], folds[-1]
    assert (first.train_start, first.train_end) == (d("2012-01-03"), d("2014-12-31"))
    assert (first.test_start, first.test_end) == (d("2015-01-02"), d("2015-12-31"))
    assert (last.train_start, last.train_end) == (d("2021-01-04"), d("2023-12-29"))
    assert (last.test_start, last.test_end) == (d("2024-01-02"), d("2024-12-31"))
    # the same folds laid out backwards from the last test day
    assert walk_forward_folds(sessions, 3, 1, n_folds=10, end="2024-12-31") == folds
    # start and end without a count: as many as fit
    assert walk_forward_folds(sessions, 3, 1, start="2012-01-01", end="2024-12-31") == folds
    assert str(first) == "fold 0: train 2012-01-03 .. 2014-12-31, test 2015-01-02 .. 2015-12-31"


@settings(max_examples=60, deadline=None)
@given(
    start=st.dates(min_value=pd.Timestamp("1995-01-01").date(),
                   max_value=pd.Timestamp("2015-12-31").date()),
    train=st.integers(0, 36),
    test=st.integers(1, 12),
    n=st.integers(1, 8),
)
def test_folds_never_overlap_and_abut(sessions, start, train, test, n):
    folds = walk_forward_folds(sessions, n_folds=n, start=start, train_months=train,
                               test_months=test)
    assert [f.index for f in folds] == list(range(n))
    days = set(sessions)
    for f in folds:
        assert f.test_start in days and f.test_end in days
        if train == 0:
            assert f.train_start is None and f.train_end is None
            continue
        assert f.train_start in days and f.train_end in days
        assert f.train_start <= f.train_end < f.test_start
        # the test starts on the very next session after training ends
        assert sessions[sessions.get_loc(f.train_end) + 1] == f.test_start
    for a, b in zip(folds, folds[1:]):
        assert sessions[sessions.get_loc(a.test_end) + 1] == b.test_start


def test_fold_errors(sessions):
    with pytest.raises(SpecError, match="on or after the test start"):
        Fold(0, "2020-01-02", "2020-06-30", "2020-06-30", "2020-12-31")
    with pytest.raises(SpecError, match="lower `folds`"):
        walk_forward_folds(sessions, 3, 1, n_folds=5, start="2018-01-01", end="2020-12-31")
    with pytest.raises(SpecError, match="no complete fold"):
        walk_forward_folds(sessions, 3, 1, start="2018-01-01", end="2020-12-31")
    with pytest.raises(SpecError, match="give `start`"):
        walk_forward_folds(sessions, 3, 1, n_folds=2)
    (only,) = single_period(sessions, "2019-01-01", "2019-12-31")
    assert (only.test_start, only.test_end, only.train_start) == (d("2019-01-02"),
                                                                 d("2019-12-31"), None)


YAML = f"""
algorithm: {ALGO}
bundle: factorarb-sample
capital_base: 250000
walk_forward:
  train_years: 1
  test_years: 1
  folds: 2
  start: 2017-01-01
grid:
  n_long: [3, 5]
  lookback: [126, 252]
params: {{slippage_bps: 10.0}}
"""

TOML = f"""
algorithm = "{ALGO}"
bundle = "factorarb-sample"
capital_base = 250000
params = {{slippage_bps = 10.0}}

[walk_forward]
train_years = 1
test_years = 1
folds = 2
start = 2017-01-01

[grid]
n_long = [3, 5]
lookback = [126, 252]
"""


def test_yaml_and_toml_specs_agree(tmp_path, sessions):
    (tmp_path / "s.yaml").write_text(YAML)
    (tmp_path / "s.toml").write_text(TOML)
    a = SweepSpec.from_file(tmp_path / "s.yaml", sessions=sessions)
    b = SweepSpec.from_file(tmp_path / "s.toml", sessions=sessions)
    assert a.folds == b.folds and a.grid == b.grid and a.params == b.params
    assert a.capital_base == b.capital_base == 250000.0
    stamp = "2026-01-01T00:00:00"
    runs_a, runs_b = a.runs(ingestion=stamp), b.runs(ingestion=stamp)
    assert [r["run_id"] for r in runs_a] == [r["run_id"] for r in runs_b]
    assert len(runs_a) == 8 and len({r["run_id"] for r in runs_a}) == 8
    first = runs_a[0]
    assert first["params"] == {"n_long": 3, "lookback": 126, "slippage_bps": 10.0}
    assert (first["fold"]["test_start"], first["fold"]["test_end"]) == ("2018-01-02",
                                                                        "2018-12-31")


def test_run_ids_are_stable_and_track_what_matters(tmp_path, sessions):
    algo = tmp_path / "algo.py"
    algo.write_text(ALGO.read_text())
    raw = dict(algorithm=str(algo), start="2019-01-01", end="2019-12-31",
               grid={"n_long": [3]})
    ids = lambda spec, ing="i1": [r["run_id"] for r in spec.runs(ingestion=ing)]  # noqa: E731
    base = ids(SweepSpec.from_dict(raw, sessions=sessions))
    assert base == ids(SweepSpec.from_dict(dict(raw), sessions=sessions))
    assert base != ids(SweepSpec.from_dict({**raw, "grid": {"n_long": [4]}}, sessions=sessions))
    assert base != ids(SweepSpec.from_dict({**raw, "end": "2019-06-28"}, sessions=sessions))
    assert base != ids(SweepSpec.from_dict({**raw, "capital_base": 5e5}, sessions=sessions))
    assert base != ids(SweepSpec.from_dict(raw, sessions=sessions), ing="i2")
    algo.write_text(ALGO.read_text() + "\n# edited\n")
    assert base != ids(SweepSpec.from_dict(raw, sessions=sessions))


def test_spec_errors_name_the_fix(tmp_path, sessions):
    base = dict(algorithm=str(ALGO), start="2019-01-01", end="2019-12-31")
    with pytest.raises(SpecError, match=r"unknown parameter 'n_lnog' \(did you mean 'n_long'\?\)"):
        SweepSpec.from_dict({**base, "grid": {"n_lnog": [3]}}, sessions=sessions)
    with pytest.raises(SpecError, match=r"unknown spec key 'gird' \(did you mean 'grid'\?\)"):
        SweepSpec.from_dict({**base, "gird": {"n_long": [3]}}, sessions=sessions)
    with pytest.raises(SpecError, match="has no values"):
        SweepSpec.from_dict({**base, "grid": {"n_long": []}}, sessions=sessions)
    with pytest.raises(SpecError, match="either `walk_forward` or `start`/`end`"):
        SweepSpec.from_dict({**base, "walk_forward": {"folds": 2, "start": "2012-01-01"}},
                            sessions=sessions)
    with pytest.raises(SpecError, match="algorithm file 'nope.py' not found"):
        SweepSpec.from_dict({**base, "algorithm": "nope.py"}, sessions=sessions)
    with pytest.raises(SpecError, match="walk_forward: unknown key 'fold'"):
        SweepSpec.from_dict({"algorithm": str(ALGO), "walk_forward": {"fold": 2}},
                            sessions=sessions)
    (tmp_path / "s.ini").write_text("x")
    with pytest.raises(SpecError, match="use .yaml, .yml, .toml"):
        read_spec_file(tmp_path / "s.ini")
    (tmp_path / "bad.yaml").write_text("grid: [1, 2\n")
    with pytest.raises(SpecError, match="cannot parse"):
        read_spec_file(tmp_path / "bad.yaml")


_BASE = dict(start="2019-01-02", end="2019-12-31")
_WF = dict(train_years=1, test_years=1, start="2014-01-01")


@pytest.mark.parametrize("extra, message", [
    (dict(start="yesterday"), r"^start: 'yesterday' is not a date; write YYYY-MM-DD"),
    (dict(start="2015-02-30"), r"^start: '2015-02-30' is not a valid date \(day is out of range"),
    (dict(end=20191231), r"^end: 20191231 is not a date"),
    (dict(start="2019-01-02T00:00+09:00"), r"^start: .* is not a date"),
    (dict(end="2018-12-31"), r"^end: 2018-12-31 is before start 2019-01-02"),
    (dict(start=None, end=None, walk_forward={**_WF, "start": "soon"}),
     r"^walk_forward: start: 'soon' is not a date"),
    (dict(start=None, end=None, walk_forward={**_WF, "train_years": "x"}),
     r"^walk_forward: train_years: 'x' is not an integer"),
    (dict(start=None, end=None, walk_forward={**_WF, "folds": 2.5}),
     r"^walk_forward: folds: 2.5 is not an integer"),
    (dict(start=None, end=None, walk_forward={**_WF, "folds": 0}),
     r"^walk_forward: folds: 0 must be at least 1"),
    (dict(seed="abc"), r"^seed: 'abc' is not an integer"),
    (dict(seed=True), r"^seed: True is not an integer"),
    (dict(keep_perf="no"), r"^keep_perf: 'no' is not true or false"),
    (dict(capital_base="1e6"), r"^capital_base: '1e6' is not a positive number"),
    (dict(capital_base=float("nan")), r"^capital_base: nan is not a positive number"),
    (dict(calendar="XNYZ"), r"^calendar: 'XNYZ' is not a trading calendar"),
    (dict(bundle=["factorarb-sample"]), r"^bundle: \['factorarb-sample'\] is not a non-empty"),
    (dict(algorithm=5), r"^algorithm: 5 is not a non-empty text"),
    (dict(zipline_root=3), r"^zipline_root: 3 is not a non-empty text"),
    (dict(out=["x"]), r"^out: \['x'\] is not a non-empty text"),
    (dict(extensions=[1]), r"^extensions: \[1\] is not a file or module name"),
    (dict(grid=[1, 2]), r"^grid: must map parameter names"),
    (dict(params={1: 2}), r"^params: parameter name 1 is not text"),
    (dict(report={"metrc": "sharpe"}),
     r"^report: unknown key 'metrc' \(did you mean 'metric'\?\)"),
    (dict(report={"metric": "sharp"}),
     r"^report: metric 'sharp' is not a numeric results column \(did you mean 'sharpe'\?\)"),
    (dict(report={"heatmaps": "n_long"}), r"^report: heatmaps 'n_long' must be a list"),
])
def test_every_spec_problem_names_its_key(sessions, extra, message):
    raw = {"algorithm": str(ALGO), **_BASE, **extra}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(SpecError, match=message):
        SweepSpec.from_dict(raw, sessions=sessions)


def test_spec_files_that_are_not_text_or_bad_dates(tmp_path):
    binary = tmp_path / "spec.yaml"
    binary.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(SpecError, match=r"spec.yaml: not a text file"):
        SweepSpec.from_file(binary)
    nul = tmp_path / "nul.json"
    nul.write_bytes(b'{"algorithm": "a.py"}\x00')
    with pytest.raises(SpecError, match=r"nul.json: not a text file"):
        read_spec_file(nul)
    yaml_spec = tmp_path / "dates.yaml"
    yaml_spec.write_text(f"algorithm: {ALGO}\nstart: yesterday\nend: 2019-12-31\n")
    with pytest.raises(SpecError, match=r"^start: 'yesterday' is not a date"):
        SweepSpec.from_file(yaml_spec)
    toml_spec = tmp_path / "dates.toml"
    toml_spec.write_text(f'algorithm = "{ALGO}"\nstart = 2019-01-02\nend = "2019-02-30"\n')
    with pytest.raises(SpecError, match=r"^end: '2019-02-30' is not a valid date"):
        SweepSpec.from_file(toml_spec)
    # YAML and TOML dates are read as dates
    ok = tmp_path / "ok.toml"
    ok.write_text(f'algorithm = "{ALGO}"\nstart = 2019-01-02\nend = 2019-03-29\n')
    spec = SweepSpec.from_file(ok)
    assert (spec.folds[0].test_start, spec.folds[0].test_end) == (d("2019-01-02"),
                                                                  d("2019-03-29"))


def test_fold_helpers_refuse_loose_dates(sessions):
    with pytest.raises(SpecError, match="walk_forward: start: 20150101 is not a date"):
        walk_forward_folds(sessions, 1, 1, n_folds=1, start=20150101)
    with pytest.raises(SpecError, match="end: 'tomorrow' is not a date"):
        single_period(sessions, "2015-01-02", "tomorrow")


def test_fold_parameters_reach_algorithms_that_declare_them(tmp_path, sessions):
    algo = tmp_path / "fitted.py"
    algo.write_text(
        "from zipline_factorarb.algo import algorithm_params\n"
        "PARAMS = algorithm_params({'train_start': '', 'train_end': '', 'fold': -1, 'k': 2})\n"
        "def initialize(context):\n    pass\n"
    )
    spec = SweepSpec.from_dict(dict(algorithm=str(algo), grid={"k": [1]},
                                    walk_forward=dict(train_years=2, test_years=1, folds=2,
                                                      start="2015-01-01")), sessions=sessions)
    runs = spec.runs()
    assert [r["params"] for r in runs] == [
        {"k": 1, "train_start": "2015-01-02", "train_end": "2016-12-30", "fold": 0},
        {"k": 1, "train_start": "2016-01-04", "train_end": "2017-12-29", "fold": 1},
    ]
    module = load_algorithm(algo.read_text(), str(algo), runs[1]["params"])
    assert module.PARAMS == {"train_start": "2016-01-04", "train_end": "2017-12-29",
                             "fold": 1, "k": 1}
    with pytest.raises(SpecError, match="set from each fold"):
        SweepSpec.from_dict(dict(algorithm=str(algo), grid={"train_start": ["2015-01-01"]},
                                 start="2019-01-01", end="2019-12-31"), sessions=sessions)


def test_load_algorithm_is_fresh_per_run_and_restores_the_environment(monkeypatch):
    monkeypatch.setenv("FACTORARB_PARAMS", '{"n_long": 7}')
    source = ALGO.read_text()
    a = load_algorithm(source, str(ALGO), {"n_long": 3})
    b = load_algorithm(source, str(ALGO), {"lookback": 126})
    c = load_algorithm(source, str(ALGO))
    assert (a.PARAMS["n_long"], a.PARAMS["lookback"]) == (3, 252)
    assert (b.PARAMS["n_long"], b.PARAMS["lookback"]) == (5, 126)
    assert c.PARAMS["n_long"] == 5
    assert a is not b and a.make_pipeline is not b.make_pipeline
    assert os.environ["FACTORARB_PARAMS"] == '{"n_long": 7}'
    assert not [m for m in sys.modules if m.startswith("_factorarb_algorithm_")]


def test_declared_params_without_a_literal_dict(tmp_path):
    assert declared_params(ALGO.read_text())["n_long"] == 5
    source = ("from zipline_factorarb.algo import algorithm_params\n"
              "DEFAULTS = dict(alpha=0.5, beta=[1, 2])\n"
              "PARAMS = algorithm_params(DEFAULTS)\n")
    assert declared_params(source) == {"alpha": 0.5, "beta": [1, 2]}
    assert declared_params("x = 1\n") is None


def test_declared_params_of_a_module_with_a_dataclass():
    # dataclasses look their module up in sys.modules while the file runs
    source = (
        "from __future__ import annotations\n"
        "from dataclasses import dataclass\n"
        "from zipline_factorarb.algo import algorithm_params\n"
        "@dataclass\n"
        "class Book:\n"
        "    size: int = 3\n"
        "PARAMS = algorithm_params(dict(size=Book().size, cut=0.1))\n"
    )
    assert declared_params(source) == {"size": 3, "cut": 0.1}


def test_importing_research_has_no_side_effects():
    code = ("import sys, os; before = dict(os.environ); import zipline_factorarb.research as r; "
            "heavy = [m for m in ('zipline', 'dask', 'distributed', 'matplotlib') "
            "if m in sys.modules]; print(heavy, os.environ == before, 'run_sweep' in dir(r))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[] True True"


def test_cli_dry_run_lists_folds_and_grid(tmp_path):
    from click.testing import CliRunner

    from zipline_factorarb.research.cli import sweep

    (tmp_path / "s.yaml").write_text(YAML)
    result = CliRunner().invoke(sweep, [str(tmp_path / "s.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "4 grid point(s) x 2 fold(s) = 8 run(s)" in result.output
    assert "fold 1: train 2018-01-02 .. 2018-12-31, test 2019-01-02 .. 2019-12-31" in result.output
    bad = CliRunner().invoke(sweep, [str(tmp_path / "s.yaml"), "--serial",
                                     "--scheduler", "tcp://127.0.0.1:1"])
    assert bad.exit_code != 0 and "--serial runs without Dask" in bad.output
    (tmp_path / "t.yaml").write_text(YAML.replace("n_long:", "n_lnog:"))
    bad = CliRunner().invoke(sweep, [str(tmp_path / "t.yaml"), "--dry-run"])
    assert bad.exit_code == 1 and "unknown parameter 'n_lnog'" in bad.output
    json.loads(json.dumps(bad.output))  # printable
