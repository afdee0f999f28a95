"""The Kalman residual-momentum and s-score algorithms through the real `zipline run`.

Backtests of two years on the real SPDR sector ETFs (``factorarb-csv``) and
on the sample's stocks with its factor ETFs. Holdings are checked against
signals computed here from the source prices and the kernels (momentum) or
against the pipeline factor and an independent implementation of the
bands (s-score).
"""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT, zipline_cli
from test_pipeline_kalman import SAMPLE_ETFS, SECTOR_ETFS, _assets, _run, _window

from zipline_factorarb.kernels.kalman import kalman_last
from zipline_factorarb.kernels.pca import pca_factors

MOMENTUM = REPO_ROOT / "algorithms" / "kalman_residual_momentum.py"
SSCORE = REPO_ROOT / "algorithms" / "sscore_statarb.py"
ETF_RANGE = ("2019-01-02", "2020-12-31")
SAMPLE_RANGE = ("2016-01-04", "2017-12-29")


def _backtest(root, algo, bundle, start, end, out_dir, params=None):
    out = out_dir / "perf.pickle"
    extra = {"FACTORARB_PARAMS": json.dumps(params)} if params else None
    result = zipline_cli(root, "run", "-f", str(algo), "-b", bundle, "-s", start, "-e", end,
                         "-o", str(out), extra_env=extra)
    assert result.returncode == 0, result.stderr[-3000:]
    perf = pd.read_pickle(out)
    perf.index = perf.index.tz_localize(None).normalize()
    return perf


def _book(perf):
    """Signed position amount per (session, symbol), after that session's fills."""
    rows = {day: {p["sid"].symbol: p["amount"] for p in pos if p["amount"]}
            for day, pos in perf["positions"].items()}
    return pd.DataFrame.from_dict(rows, orient="index").reindex(perf.index).fillna(0.0)


def _filled_orders(perf):
    latest = {}
    for orders in perf["orders"]:
        for o in orders:
            latest[o["id"]] = o
    return [o for o in latest.values() if o["filled"]]


def _transactions(perf):
    return [t for txns in perf["transactions"] for t in txns]


def _check_costs(perf, bps, dividends=True):
    """Every fill pays ``bps`` of its notional; without dividends, the P&L adds up."""
    prices = {t["order_id"]: t["price"] for t in _transactions(perf)}
    orders = _filled_orders(perf)
    assert len(orders) > 50
    for o in orders:
        expected = abs(o["filled"]) * prices[o["id"]] * bps / 1e4
        assert o["commission"] == pytest.approx(expected, rel=1e-9)
    total = sum(o["commission"] for o in orders)
    if dividends:
        return total
    pnl = perf["pnl"].sum()
    gross_pnl = sum(-t["amount"] * t["price"] for t in _transactions(perf))
    last = perf["positions"].iloc[-1]
    gross_pnl += sum(p["amount"] * p["last_sale_price"] for p in last)
    assert pnl == pytest.approx(gross_pnl - total, rel=1e-6, abs=1.0)
    return total


def _load_algorithm(path, monkeypatch, params=None):
    if params:
        monkeypatch.setenv("FACTORARB_PARAMS", json.dumps(params))
    else:
        monkeypatch.delenv("FACTORARB_PARAMS", raising=False)
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------
# decision rules, without a backtest
# --------------------------------------------------------------------------


def test_momentum_target_weights_and_switch(monkeypatch):
    algo = _load_algorithm(MOMENTUM, monkeypatch, {"cut": 0.2, "mean_reversion": True})
    assert algo.PARAMS["cut"] == 0.2 and algo.PARAMS["mean_reversion"] is True
    signal = pd.Series([0.3, -0.1, np.nan, 0.2, -0.4, 0.0, 0.1, -0.2, 0.5],
                       index=list("abcdefghi"))
    momentum = algo.target_weights(signal, 0.1, 1.0)
    assert momentum == {"i": 0.5, "e": -0.5}  # 8 names, 10%: one per side
    reversal = algo.target_weights(signal, 0.1, 1.0, mean_reversion=True)
    assert reversal == {"e": 0.5, "i": -0.5}
    wide = algo.target_weights(signal, 0.25, 2.0)  # two per side
    assert wide == {"i": 0.5, "a": 0.5, "e": -0.5, "h": -0.5}
    assert sum(wide.values()) == 0.0 and sum(map(abs, wide.values())) == 2.0
    assert algo.target_weights(signal.iloc[:1], 0.1, 1.0) == {}


def test_momentum_study_rules_and_parameter_errors(monkeypatch):
    signal = pd.Series(np.arange(10.0), index=list("abcdefghij"))
    # the study's rule with ten names: rank > 0.9 long, rank < 0.1 short (never)
    algo = _load_algorithm(MOMENTUM, monkeypatch, {"rule": "percentile"})
    assert algo.rule_weights(signal) == {"j": 1.0}
    algo = _load_algorithm(MOMENTUM, monkeypatch, {"rule": "percentile", "mean_reversion": True})
    assert algo.rule_weights(signal) == {"j": -1.0}
    algo = _load_algorithm(MOMENTUM, monkeypatch,
                           {"rule": "count", "n_long": 2, "n_short": 1, "gross_exposure": 1.5})
    weights = algo.rule_weights(signal)
    assert weights == pytest.approx({"j": 0.5, "i": 0.5, "a": -0.5})
    assert algo.rule_weights(signal.iloc[:2]) == {}  # fewer names than the rule holds
    algo = _load_algorithm(MOMENTUM, monkeypatch)  # the default rule is unchanged
    assert algo.rule_weights(signal) == algo.target_weights(signal, 0.1, 1.0)
    for params, message in [
        ({"rule": "top"}, "rule must be one of"),
        ({"book": "monthly"}, "book must be one of"),
        ({"signal_close": "current"}, "signal_close='current' needs factors"),
        ({"centre": True}, "centre=True needs factors='fixed_pca'"),
        ({"trade": ["XLK", "QQQ"]}, "must be symbols of the universe"),
        ({"factors": "rolling_pca", "universe": "etfs"}, "needs a list of symbols"),
        ({"book": "weekly_beta_neutral", "factors": "fixed_pca", "train_start": "2012-01-03",
          "train_end": "2014-12-31"}, "the market"),
    ]:
        algo = _load_algorithm(MOMENTUM, monkeypatch, params)
        with pytest.raises(ValueError, match=message):
            algo._check_params()


def test_sscore_bands(monkeypatch):
    algo = _load_algorithm(SSCORE, monkeypatch)
    step = algo.next_side
    assert [step(0, s, True) for s in (-1.3, -1.2, 1.2, 1.3)] == [1, 0, 0, -1]
    assert [step(1, s, True) for s in (-0.6, -0.4, 2.0)] == [1, 0, 0]
    assert [step(-1, s, True) for s in (0.8, 0.7, -2.0)] == [-1, 0, 0]
    assert step(1, -2.0, False) == 0 and step(-1, float("nan"), True) == 0
    assert step(0, -3.0, False) == 0  # slow names are never opened


# --------------------------------------------------------------------------
# momentum on the real sector ETFs
# --------------------------------------------------------------------------


def _reference_sides(returns, days, window):
    """Expected (long, short) ETF per session from the kernels, or None on near ties."""
    out = {}
    for day in days:
        r = _window(returns, day, window)[SECTOR_ETFS].to_numpy()
        f = pca_factors(r, 3).scores
        e = kalman_last(r, f, 1e-5, 1e-4, 1.0).innovations
        e = pd.Series(e, index=SECTOR_ETFS).sort_values()
        gaps = np.diff(e.to_numpy())
        out[day] = None if min(gaps[0], gaps[-1]) < 1e-5 else (e.index[-1], e.index[0])
    return out


def test_momentum_on_sector_etfs(shared_csv_root, shared_data_dir, tmp_path):
    root = shared_csv_root["root"]
    perf = _backtest(root, MOMENTUM, "factorarb-csv", *ETF_RANGE, tmp_path)
    book = _book(perf)
    days = perf.index

    # only the nine sector ETFs are ever traded; SPY (benchmark) never
    traded = {t["sid"].symbol for t in _transactions(perf)}
    assert traded <= set(SECTOR_ETFS) and len(traded) == 9
    assert "SPY" not in book.columns

    # one long and one short, equal weight, dollar neutral, every session
    live = perf.iloc[2:]
    assert (live["n_holdings"] == 2).all()
    assert (live["n_long"] == 1).all() and (live["n_short"] == 1).all()
    assert live["net_exposure"].abs().max() < 0.05
    assert live["net_exposure"].abs().mean() < 0.01
    # orders are sized at one close and filled at the next: a day's move of drift
    assert live["gross_exposure"].between(0.85, 1.25).all()
    assert abs(live["gross_exposure"].mean() - 1.0) < 0.02

    # the held names are the top / bottom innovations computed from adj_close
    frame = pd.read_csv(shared_data_dir / "spdr_sector_etfs_daily.csv.gz", parse_dates=["date"])
    adj = np.log(frame.pivot(index="date", columns="symbol", values="adj_close")).diff()
    expected = _reference_sides(adj, days[:-1], 252)
    checked = 0
    for i, day in enumerate(days[:-1]):
        if expected[day] is None:
            continue
        held = book.loc[days[i + 1]]  # ordered on `day`, filled at the next close
        long, short = expected[day]
        assert held[long] > 0 and held[short] < 0, day
        checked += 1
    assert checked > 0.95 * (len(days) - 1)

    # 2 bp per side on every fill, taken out of the P&L
    total = _check_costs(perf, 2.0)
    assert total > 0.01 * 1e7  # daily turnover: costs are material

    # the benchmark is SPY's total return
    cum = 1.0 + perf["benchmark_period_return"]
    spy = frame[frame.symbol == "SPY"].set_index("date")["adj_close"].pct_change()
    np.testing.assert_allclose((cum / cum.shift(1) - 1.0).iloc[1:],
                               spy.reindex(days[1:]).to_numpy(), atol=1e-4)


# --------------------------------------------------------------------------
# momentum on the sample: stocks against the factor ETFs
# --------------------------------------------------------------------------


def test_momentum_on_sample_stocks_with_factor_etfs(sample_root, tmp_path):
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset

    params = {"universe": "stocks", "factors": SAMPLE_ETFS, "state_noise": 2e-5}
    perf = _backtest(sample_root, MOMENTUM, "factorarb-sample", *SAMPLE_RANGE, tmp_path, params)
    book = _book(perf)
    stocks = list(load_sp500_dataset().columns)
    traded = {t["sid"].symbol for t in _transactions(perf)}
    assert traded <= set(stocks) and len(traded) > 10  # never SP500, never a factor ETF
    live = perf.iloc[2:]
    assert (live["n_long"] == 2).all() and (live["n_short"] == 2).all()  # 20 names, 10%
    assert live["net_exposure"].abs().mean() < 0.02
    assert live["gross_exposure"].between(0.85, 1.3).all()
    _check_costs(perf, 2.0, dividends=False)

    prices = pd.concat([load_sp500_dataset(), load_factors_dataset()], axis=1).round(3)
    prices.index = pd.DatetimeIndex(prices.index).normalize()
    returns = np.log(prices).diff()
    days = perf.index
    sample_days = days[::25][:-1]
    for day in sample_days:
        win = _window(returns, day, 252)
        e = kalman_last(win[stocks].to_numpy(), win[SAMPLE_ETFS].to_numpy(), 2e-5, 1e-4,
                        1.0).innovations
        ranked = pd.Series(e, index=stocks).sort_values()
        held = book.loc[days[days.get_loc(day) + 1]]
        assert set(held[held > 0].index) == set(ranked.index[-2:]), day
        assert set(held[held < 0].index) == set(ranked.index[:2]), day


# --------------------------------------------------------------------------
# s-score bands on the real sector ETFs and on the sample's stocks
# --------------------------------------------------------------------------


def _expected_book(scores, algo_params):
    """Independent replay of the band rule over the pipeline's s-scores."""
    p = algo_params
    side, rows = {}, {}
    for day, frame in scores.groupby(level=0):
        frame = frame.droplevel(0)
        for name in sorted(set(frame.index) | set(side)):
            s = frame["s_score"].get(name, np.nan)
            ok = frame["valid"].get(name, 0.0) == 1.0 and np.isfinite(s)
            cur = side.get(name, 0)
            if not ok:
                new = 0
            elif cur == 0:
                new = 1 if s < p["open_long"] else (-1 if s > p["open_short"] else 0)
            elif cur == 1:
                new = 0 if s > p["close_long"] else 1
            else:
                new = 0 if s < p["close_short"] else -1
            if new:
                side[name] = new
            else:
                side.pop(name, None)
        rows[day] = dict(side)
    return rows


BANDS = {"open_long": -1.25, "open_short": 1.25, "close_short": 0.75, "close_long": -0.5}


def _check_sscore_backtest(perf, scores, universe, weight, dividends):
    book = _book(perf)
    traded = {t["sid"].symbol for t in _transactions(perf)}
    assert traded <= set(universe) and len(traded) >= 5
    expected = _expected_book(scores, BANDS)
    days = perf.index
    for i, day in enumerate(days[:-1]):
        held = book.loc[days[i + 1]]
        got = {name: int(np.sign(v)) for name, v in held.items() if v}
        assert got == expected[day], day
    # each position is opened at `weight` of the portfolio value
    live = perf[perf["n_holdings"] > 0]
    per_name = live["gross_exposure"] / live["n_holdings"]
    assert per_name.between(0.5 * weight, 1.6 * weight).all()
    assert (perf["n_long"] > 0).any() and (perf["n_short"] > 0).any()
    _check_costs(perf, 5.0, dividends)


def test_sscore_on_sector_etfs(shared_csv_root, tmp_path, monkeypatch):
    from zipline.pipeline.filters import StaticAssets

    from zipline_factorarb import SScore

    root = shared_csv_root["root"]
    perf = _backtest(root, SSCORE, "factorarb-csv", *ETF_RANGE, tmp_path)
    assets = _assets(root, "factorarb-csv", SECTOR_ETFS)
    universe = StaticAssets(assets)
    term = SScore(mask=universe)
    scores = _run(root, monkeypatch, {"s_score": term.s_score, "valid": term.valid},
                  *ETF_RANGE, bundle="factorarb-csv", screen=universe)
    _check_sscore_backtest(perf, scores, SECTOR_ETFS, 0.1, dividends=True)
    assert (perf["n_valid"] <= 9).all() and perf["n_valid"].iloc[1:].min() > 0


def test_sscore_on_sample_stocks(sample_root, tmp_path, monkeypatch):
    from zipline_factorarb import SScore
    from zipline_factorarb.data.sources import SAMPLE_SECTORS
    from zipline_factorarb.pipeline.classifiers import IsStock

    params = {"universe": "stocks", "position_weight": 0.05}
    perf = _backtest(sample_root, SSCORE, "factorarb-sample", *SAMPLE_RANGE, tmp_path, params)
    term = SScore(mask=IsStock())
    scores = _run(sample_root, monkeypatch, {"s_score": term.s_score, "valid": term.valid},
                  *SAMPLE_RANGE, screen=IsStock())
    _check_sscore_backtest(perf, scores, sorted(SAMPLE_SECTORS), 0.05, dividends=False)
