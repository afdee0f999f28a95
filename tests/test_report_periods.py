"""Crisis windows and regimes: the flag each window carries."""

import pytest

from zipline_factorarb.analysis.periods import PeriodsError, default_periods, load_periods


def test_pyfolio_regimes_are_not_crises():
    periods = default_periods()
    regimes = {name for name in periods if not periods.is_crisis(name)}
    assert regimes == {"Low Volatility Bull Market (pyfolio)", "Recovery (pyfolio)",
                       "New Normal (pyfolio)", "Covid (pyfolio)"}
    assert periods.is_crisis("GFC Crash (pyfolio)") and periods.is_crisis("COVID crash 2020")


def test_flag_from_files(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("name,start,end,crisis\nMy crash,2020-02-20,2020-03-20,true\n"
                   "Calm years,2016-01-01,2019-12-31,false\nCOVID crash 2020,2020-02-19,2020-03-23,no\n")
    periods = load_periods(csv)
    assert periods.is_crisis("My crash") and not periods.is_crisis("Calm years")
    assert not periods.is_crisis("COVID crash 2020")  # a file overrides a default's flag too
    assert not periods.is_crisis("Recovery (pyfolio)")
    js = tmp_path / "p.json"
    js.write_text('{"A": ["2020-01-01", "2020-02-01"], "B": ["2020-01-01", "2021-01-01", false]}')
    replaced = load_periods(js, mode="replace")
    assert list(replaced) == ["A", "B"] and replaced.regimes == {"B"}
    csv.write_text("name,start,end,crisis\nX,2020-01-01,2020-02-01,maybe\n")
    with pytest.raises(PeriodsError, match="period 'X' has a crisis flag 'maybe'; use true or false"):
        load_periods(csv)
