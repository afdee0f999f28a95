r"""The Kalman residual study, reproduced from what its code does.

The study ("Dynamic Factor Arbitrage: Isolating Residual Momentum in Sector
ETFs", public repository ``micyiucm/Dynamic-Factor-Arbitrage-Isolating-
Residual-Momentum-in-Sector-ETFs``) reports two tables from two versions of
its backtester. This module reruns both as vectorised walk-forwards on our
kernels (no zipline), and the same strategies through zipline
(:func:`run_zipline`), so that the two paths can be set side by side.

What its code does, step by step, is written in ``docs/research.md`` ("The
Kalman study as its code runs it" and "The study's newer results"). In
short: the *original* version ranks the residuals of the nine SPDR sector
ETFs and SPY (fixed PCA with 3 components fitted on each fold's three
training years; the Kalman filter runs on the centred returns through
training and test without restarting) and holds the names above the 0.9
percentile rank, with the log-return accounting of
:func:`~zipline_factorarb.kernels.study.study_pnl`; the *newer* version
trades the sector ETFs on Fridays, dollar and SPY-beta neutral
(:func:`~zipline_factorarb.algo.newer_rebalance_weights`), with simple
returns (:func:`~zipline_factorarb.kernels.study.simple_pnl`), and holds its
book over one session a week. :data:`ORIGINAL` and :data:`NEWER` are the
rows of the two tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from zipline_factorarb.algo import NEWER_BOOK_SETTINGS, newer_rebalance_weights
from zipline_factorarb.kernels import study as kstudy
from zipline_factorarb.kernels.kalman import kalman_filter, kalman_last
from zipline_factorarb.kernels.pca import pca_factors, pca_residuals
from zipline_factorarb.kernels.returns import daily_returns
from zipline_factorarb.kernels.performance import max_drawdown, sharpe_ratio

__all__ = [
    "SECTOR_ETFS",
    "STUDY_UNIVERSE",
    "StudyConfig",
    "StudyFold",
    "StudyRun",
    "load_study_returns",
    "null_model",
    "run_study",
    "study_folds",
    "study_table",
    "walk_table",
]

SECTOR_ETFS = ("XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU", "XLV", "XLY")
#: the study's universe, in the column order of its yfinance download (sorted)
STUDY_UNIVERSE = ("SPY",) + SECTOR_ETFS
#: the study's download window (yfinance's end is exclusive)
STUDY_START, STUDY_END = "2012-01-01", "2026-01-01"
ETF_FILE = "spdr_sector_etfs_daily.csv.gz"


# --------------------------------------------------------------------------
# data and folds
# --------------------------------------------------------------------------


def load_study_returns(data_dir, symbols=STUDY_UNIVERSE, start=STUDY_START, end=STUDY_END):
    """Daily log returns of the adjusted closes, as the study's data loader.

    Parameters
    ----------
    data_dir : path-like
        Folder holding ``spdr_sector_etfs_daily.csv.gz`` (columns ``date,
        symbol, ..., adj_close``).
    symbols : sequence of str
    start, end : date-like
        Prices on ``[start, end)``; rows with any missing price are dropped,
        then the first return row.

    Returns
    -------
    pandas.DataFrame
        Log returns, one column per symbol in the given order.
    """
    path = Path(data_dir) / ETF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the SPDR ETF price file is not there")
    frame = pd.read_csv(path, parse_dates=["date"], usecols=["date", "symbol", "adj_close"])
    missing = sorted(set(symbols) - set(frame["symbol"]))
    if missing:
        raise ValueError(f"{path}: no prices for {', '.join(missing)}")
    prices = frame.pivot(index="date", columns="symbol", values="adj_close")[list(symbols)]
    prices = prices.loc[(prices.index >= pd.Timestamp(start)) & (prices.index < pd.Timestamp(end))]
    prices = prices.dropna(how="any").sort_index()
    return pd.DataFrame(daily_returns(prices.to_numpy(), log=True), index=prices.index[1:],
                        columns=prices.columns)


class StudyFold(NamedTuple):
    """One fold: first and last dates (inclusive) of its training and test windows."""

    fold: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def study_folds(dates, train_years=3, test_years=1):
    """The study's calendar walk-forward folds over a date index.

    From the first date ``d0``: fold ``i`` (numbered from 1) trains on
    ``[d0 + i*test, d0 + i*test + train)`` and tests on the following
    ``test`` years (calendar offsets, ``[start, end)``), each window shrunk to
    the dates present; folds stop when a test window's end passes the last
    date. (The study's ``generate_walk_forward_validation_split``.)
    """
    dates = pd.DatetimeIndex(dates)
    if len(dates) == 0:
        raise ValueError("study_folds: no dates")
    folds, start, number = [], dates[0], 1
    while True:
        train_end = start + pd.DateOffset(years=train_years)
        test_end = train_end + pd.DateOffset(years=test_years)
        if test_end > dates[-1]:
            break
        train = dates[(dates >= start) & (dates < train_end)]
        test = dates[(dates >= train_end) & (dates < test_end)]
        if len(train) and len(test):
            folds.append(StudyFold(number, train[0], train[-1], test[0], test[-1]))
            number += 1
        start = start + pd.DateOffset(years=test_years)
    return folds


# --------------------------------------------------------------------------
# configurations
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyConfig:
    """One strategy of the vectorised walk-forward.

    Attributes
    ----------
    name : str
    universe : tuple of str
        Assets in the PCA, the filter and the ranking.
    residual : str
        ``"kalman"`` (fixed PCA factors, Kalman innovations), ``"fixed_pca"``
        (static residual) or ``"rolling_pca"`` (60-day rolling PCA residual).
    components : int
        Principal components of the fixed and the rolling PCA.
    delta, ve, p0 : float
        The filter's state noise, observation noise and prior variance.
    centre : bool
        Filter the returns less their training mean (the study) or raw.
    filter_state : str
        ``"carried"``: one filter from the training start through the test
        year (the study); ``"window"``: restarted from the prior over the
        trailing ``window`` returns each day (our algorithm's default).
    window : int
        Window length for ``filter_state="window"`` and ``"rolling_pca"``.
    rule : str
        ``"percentile"`` (``upper``/``lower``, the study) or ``"count"``
        (``n_long``/``n_short``).
    mean_reversion : bool
    lag : int
        Sessions between the signal's last return and the first return the
        position earns: 1 is the study's; zipline fills at the next close,
        2 with a signal that includes the order day's close, 3 without.
    cost : float
        Per unit of sum |dw| (2 bp = ``2e-4``).
    accounting : str
        ``"log"`` (the original backtester) or ``"newer"`` (the newer
        backtester: weekly, beta neutral, simple returns).
    trade : tuple of str, optional
        Assets that may be held (default: the universe); the others are
        only ranked out. The newer backtester trades the sector ETFs only.
    """

    name: str = "Fixed PCA + Kalman (Momentum)"
    universe: tuple = STUDY_UNIVERSE
    residual: str = "kalman"
    components: int = 3
    delta: float = 1e-2
    ve: float = 1e-4
    p0: float = 1.0
    centre: bool = True
    filter_state: str = "carried"
    window: int = 252
    rule: str = "percentile"
    upper: float = 0.9
    lower: float = 0.1
    n_long: int = 1
    n_short: int = 1
    mean_reversion: bool = False
    lag: int = 1
    cost: float = 2e-4
    accounting: str = "log"
    trade: tuple = field(default=None)
    # newer backtester settings
    long_q: float = 0.7
    short_q: float = 0.3
    rebalance: str = "W-FRI"
    beta_window: int = 60
    vol_halflife: int = 20
    mom_lookback: int = 20
    z_clip: float = 5.0
    min_beta_obs: int = 10
    market: str = "SPY"

    def check(self):
        """Raise ValueError naming the first invalid setting."""
        choices = dict(residual=("kalman", "fixed_pca", "rolling_pca"),
                       filter_state=("carried", "window"), rule=("percentile", "count"),
                       accounting=("log", "newer"))
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{self.name}: {name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}")
        if self.lag < 1 and self.accounting == "log":
            raise ValueError(f"{self.name}: lag must be >= 1 (a signal cannot earn the "
                             f"return it was computed from), got {self.lag}")
        return self


#: the three rows of the seed's table (original backtester)
ORIGINAL = (
    StudyConfig(),
    StudyConfig(name="Fixed PCA (Momentum)", residual="fixed_pca"),
    StudyConfig(name="Rolling PCA (Mean Reversion)", residual="rolling_pca", window=60,
                mean_reversion=True),
)
#: the study's published numbers (Sharpe, total return, max drawdown)
ORIGINAL_PUBLISHED = {
    "Fixed PCA + Kalman (Momentum)": (0.16, 0.372, -0.441),
    "Fixed PCA (Momentum)": (-0.03, -0.052, -0.488),
    "Rolling PCA (Mean Reversion)": (-0.85, -0.817, -0.827),
}
_NEWER = dict(accounting="newer", trade=SECTOR_ETFS)
#: the four rows of the newer version's table
NEWER = (
    StudyConfig(name="Fixed PCA + Kalman (MeanRev, delta=1e-4, ve=1e-4)", delta=1e-4, ve=1e-4,
                mean_reversion=True, **_NEWER),
    StudyConfig(name="Fixed PCA (MeanRev)", residual="fixed_pca", mean_reversion=True, **_NEWER),
    StudyConfig(name="Rolling PCA (MeanRev)", residual="rolling_pca", window=60,
                mean_reversion=True, **_NEWER),
    StudyConfig(name="Fixed PCA (Momentum)", residual="fixed_pca", **_NEWER),
)
NEWER_PUBLISHED = {
    NEWER[0].name: (0.56, 0.1582, -0.0374),
    NEWER[1].name: (0.40, 0.1060, -0.0343),
    NEWER[2].name: (-0.24, -0.0621, -0.1340),
    NEWER[3].name: (-0.73, -0.1656, -0.1958),
}


# --------------------------------------------------------------------------
# residuals
# --------------------------------------------------------------------------


def _fold_residuals(returns, fold, config, rolling=None):
    """Test-window residuals (DataFrame) of one fold under ``config``."""
    cols = list(config.universe)
    train = returns.loc[fold.train_start:fold.train_end, cols]
    test = returns.loc[fold.test_start:fold.test_end, cols]
    if config.residual == "rolling_pca":
        return rolling.loc[test.index, cols]
    fit = pca_factors(train.to_numpy(), config.components)
    W, mu = fit.loadings, fit.mean
    if config.residual == "fixed_pca":
        _, e = pca_residuals(test.to_numpy(), W, mu)
        return pd.DataFrame(e, index=test.index, columns=cols)
    combined = returns.loc[fold.train_start:fold.test_end, cols]
    R = combined.to_numpy()
    F, _ = pca_residuals(R, W, mu)
    Y = R - mu if config.centre else R
    n_test = len(test)
    if config.filter_state == "carried":
        e = kalman_filter(Y, F, config.delta, config.ve, p0=config.p0).innovations[-n_test:]
    else:
        w = config.window
        first = len(R) - n_test
        if first + 1 < w:
            raise ValueError(f"fold {fold.fold}: fewer than window={w} returns before the test")
        e = np.vstack([
            kalman_last(Y[t + 1 - w:t + 1], F[t + 1 - w:t + 1], config.delta, config.ve,
                        config.p0).innovations
            for t in range(first, len(R))
        ])
    return pd.DataFrame(e, index=test.index, columns=cols)


def _rolling(returns, config):
    cols = list(config.universe)
    values = kstudy.rolling_pca_residuals(returns[cols].to_numpy(), config.window,
                                          config.components)
    return pd.DataFrame(values, index=returns.index, columns=cols)


# --------------------------------------------------------------------------
# the two backtesters
# --------------------------------------------------------------------------


def _weights(config, scores):
    s = scores.to_numpy()
    if config.rule == "percentile":
        w = kstudy.percentile_rule_weights(s, config.upper, config.lower, config.mean_reversion)
    else:
        w = kstudy.count_rule_weights(s, config.n_long, config.n_short, config.mean_reversion)
    return pd.DataFrame(w, index=scores.index, columns=scores.columns)


def _original_fold(config, test_returns, residuals):
    tradable = list(config.trade or config.universe)
    weights = _weights(config, residuals[tradable])
    positions = kstudy.lag_positions(weights.to_numpy(), config.lag)
    net, gross, turnover = kstudy.study_pnl(positions, test_returns[tradable].to_numpy(),
                                            config.cost)
    return (pd.DataFrame(positions, index=weights.index, columns=tradable), net, gross, turnover)


def newer_tradables(config):
    """Names the newer backtester trades: ``config.trade``, else the universe less the market."""
    return list(config.trade or [c for c in config.universe if c != config.market])


def _newer_targets(config, returns, residuals):
    """The newer backtester's target weights (non-zero on rebalance days only)."""
    tradable = newer_tradables(config)
    X = residuals[tradable]
    reb = X.resample(config.rebalance).last().index.intersection(X.index)
    targets = pd.DataFrame(0.0, index=X.index, columns=tradable)
    settings = {name: getattr(config, name) for name in NEWER_BOOK_SETTINGS}
    for day in reb:
        i = X.index.get_loc(day) + 1
        w = newer_rebalance_weights(X.iloc[:i], returns[tradable].iloc[:i],
                                    returns[config.market].iloc[:i], **settings)
        if w is not None:
            targets.loc[day] = w
    return targets


def _newer_fold(config, test_returns, residuals):
    targets = _newer_targets(config, test_returns, residuals)
    positions = kstudy.lag_positions(targets.to_numpy(), config.lag)
    net, gross, turnover = kstudy.simple_pnl(positions, test_returns[targets.columns].to_numpy(),
                                             config.cost)
    return (pd.DataFrame(positions, index=targets.index, columns=targets.columns), net, gross,
            turnover)


# --------------------------------------------------------------------------
# the walk-forward
# --------------------------------------------------------------------------


@dataclass
class StudyRun:
    """The chained test years of one configuration.

    ``net``, ``gross`` (daily log returns), ``turnover`` (Series) and
    ``positions`` (DataFrame, the weights held over each day's return).
    """

    config: StudyConfig
    net: pd.Series
    gross: pd.Series
    turnover: pd.Series
    positions: pd.DataFrame
    folds: list

    def metrics(self, which="net"):
        """Sharpe, total return and max drawdown of the chained log returns."""
        return _metrics(getattr(self, which))


def _metrics(log_returns):
    r = np.asarray(log_returns, dtype=float)
    simple = np.expm1(r)
    return dict(sharpe=sharpe_ratio(r), total_return=float(np.expm1(r.sum())),
                max_drawdown=max_drawdown(simple))


def run_study(returns, config, folds=None):
    """Run one configuration over the folds (default: :func:`study_folds`).

    Parameters
    ----------
    returns : pandas.DataFrame
        Daily log returns (:func:`load_study_returns`), holding every symbol
        of ``config.universe`` and ``config.trade``.
    config : StudyConfig
    folds : list of StudyFold, optional

    Returns
    -------
    StudyRun
    """
    config.check()
    missing = sorted((set(config.universe) | set(config.trade or ())) - set(returns.columns))
    if missing:
        raise ValueError(f"{config.name}: returns have no column for {', '.join(missing)}")
    folds = study_folds(returns.index) if folds is None else folds
    rolling = _rolling(returns, config) if config.residual == "rolling_pca" else None
    nets, grosses, turnovers, positions = [], [], [], []
    for fold in folds:
        test = returns.loc[fold.test_start:fold.test_end]
        residuals = _fold_residuals(returns, fold, config, rolling)
        run = _newer_fold if config.accounting == "newer" else _original_fold
        pos, net, gross, turnover = run(config, test, residuals)
        nets.append(pd.Series(net, index=test.index))
        grosses.append(pd.Series(gross, index=test.index))
        turnovers.append(pd.Series(turnover, index=test.index))
        positions.append(pos)
    return StudyRun(config, pd.concat(nets), pd.concat(grosses), pd.concat(turnovers),
                    pd.concat(positions).fillna(0.0), list(folds))


def study_table(returns, version="original", folds=None):
    """The study's table, reproduced: one row per strategy of ``version``.

    Columns: ``strategy``, ``sharpe``, ``total_return``, ``max_drawdown``,
    ``avg_turnover``, ``sharpe_before_costs``, and the study's published
    ``study_sharpe``, ``study_total_return``, ``study_max_drawdown``.
    """
    configs, published = {"original": (ORIGINAL, ORIGINAL_PUBLISHED),
                          "newer": (NEWER, NEWER_PUBLISHED)}[_version(version)]
    rows = []
    for config in configs:
        run = run_study(returns, config, folds)
        m = run.metrics()
        s, t, d = published[config.name]
        rows.append(dict(strategy=config.name, sharpe=m["sharpe"],
                         total_return=m["total_return"], max_drawdown=m["max_drawdown"],
                         avg_turnover=float(run.turnover.mean()),
                         sharpe_before_costs=run.metrics("gross")["sharpe"],
                         study_sharpe=s, study_total_return=t, study_max_drawdown=d))
    return pd.DataFrame(rows)


def _version(version):
    if version not in ("original", "newer"):
        raise ValueError(f"version must be 'original' or 'newer', got {version!r}")
    return version


#: the walk from the study's headline to our default configuration, one change at a time
WALK = (
    ("the study (fixed PCA + Kalman momentum, as its code runs it)", {}),
    ("rule: long the top, short the bottom, half each (dollar neutral)",
     dict(rule="count", n_long=1, n_short=1)),
    ("universe: the nine sector ETFs (SPY left out)", dict(universe=SECTOR_ETFS)),
    ("noise: delta = 1e-5, v_e = 1e-4 (our defaults)", dict(delta=1e-5, ve=1e-4)),
    ("centring: raw returns into the filter", dict(centre=False)),
    ("filter restarts: from the prior over the trailing 252 returns, every session",
     dict(filter_state="window", window=252)),
    ("lag: signal to the previous close, filled at the next close (3 sessions)",
     dict(lag=3)),
)


def walk_table(returns, folds=None):
    """Sharpe and total return at each step of :data:`WALK` (cumulative changes).

    Each row applies its change on top of all the rows above it. The last
    row is our zipline default's configuration (``factors: fixed_pca,
    signal: kalman``) in the vectorised accounting; the ``*_before_costs``
    columns are the same books without the 2 bp.
    """
    config, rows = ORIGINAL[0], []
    for label, change in WALK:
        config = replace(config, **change)
        run = run_study(returns, config, folds)
        m, g = run.metrics(), run.metrics("gross")
        rows.append(dict(step=label, sharpe=m["sharpe"], total_return=m["total_return"],
                         max_drawdown=m["max_drawdown"], sharpe_before_costs=g["sharpe"],
                         total_return_before_costs=g["total_return"],
                         avg_turnover=float(run.turnover.mean())))
    return pd.DataFrame(rows)


def lag_table(returns, lags=(1, 2, 3), configs=ORIGINAL, folds=None):
    """Sharpe and total return of ``configs`` with the position lagged by ``lags``."""
    rows = []
    for config in configs:
        for lag in lags:
            m = run_study(returns, replace(config, lag=lag), folds).metrics()
            rows.append(dict(strategy=config.name, lag=lag, sharpe=m["sharpe"],
                             total_return=m["total_return"]))
    return pd.DataFrame(rows)


def null_model(returns, run, n_books=1000, seed=0):
    """Sharpe ratios of random single-asset long books matched to ``run``.

    Each book holds one asset of ``run.config.universe`` at a time over the
    same chained test days, switching to a different, uniformly drawn asset
    with the daily probability at which ``run``'s book changes (so the same
    mean holding period and the same turnover), costs as the study (2 bp per
    unit of ``sum |dw|``, a switch being 2).

    Returns
    -------
    dict
        ``sharpes`` (ndarray), ``switch_probability``, ``percentile`` (of
        the run's Sharpe among the books), ``mean``, ``std``, ``quantiles``
        (5%, 50%, 95%), and the Sharpe of holding each asset throughout
        (``buy_and_hold``, no costs).
    """
    cols = list(run.config.trade or run.config.universe)
    r = returns.loc[run.net.index, cols].to_numpy()
    p = kstudy.switch_probability(run.positions[cols].to_numpy())
    rng = np.random.default_rng(seed)
    held = kstudy.random_single_asset_books(len(r), len(cols), p, n_books, rng)
    pnl = kstudy.single_asset_book_pnl(held, r, run.config.cost)
    sharpes = pnl.mean(axis=1) / pnl.std(axis=1, ddof=1) * np.sqrt(252)
    own = run.metrics()["sharpe"]
    return dict(sharpes=sharpes, switch_probability=p, n_books=n_books, seed=seed,
                percentile=float((sharpes < own).mean()), mean=float(sharpes.mean()),
                std=float(sharpes.std(ddof=1)),
                quantiles=tuple(float(q) for q in np.quantile(sharpes, [0.05, 0.5, 0.95])),
                buy_and_hold={c: sharpe_ratio(r[:, j]) for j, c in enumerate(cols)})


# --------------------------------------------------------------------------
# the same strategies through zipline
# --------------------------------------------------------------------------

#: the algorithm file that runs the study's strategies in zipline
ALGORITHM = Path(__file__).resolve().parents[2] / "algorithms" / "kalman_residual_momentum.py"
#: zipline fills an order at the next session's close; with the signal taken
#: at the close of the session the order is placed in, that is two sessions
ZIPLINE_LAG = 2


def zipline_params(config, fold):
    """``FACTORARB_PARAMS`` of ``kalman_residual_momentum.py`` for one fold of ``config``.

    The algorithm fits its loadings on the closes of ``[train_start,
    train_end]``, whose first return is that of the day after
    ``train_start``; ``train_start`` is therefore the session before the
    study's first training return. The signal includes the close of the
    session the order is placed in (``signal_close="current"``): the fill,
    at the next close, is ``ZIPLINE_LAG = 2`` sessions after the signal's
    last return, against the study's 1.
    """
    from zipline.utils.calendar_utils import get_calendar

    closes = {ZIPLINE_LAG: "current", ZIPLINE_LAG + 1: "previous"}
    if config.lag not in closes:
        raise ValueError(f"{config.name}: zipline fills at the next close, so lag must be "
                         f"{ZIPLINE_LAG} (signal to the order's close) or {ZIPLINE_LAG + 1} "
                         f"(to the previous close), got {config.lag}; the study's lag 1 "
                         "is run with lag 2")
    before = get_calendar("XNYS").previous_session(pd.Timestamp(fold.train_start))
    factors = {"kalman": "fixed_pca", "fixed_pca": "fixed_pca",
               "rolling_pca": "rolling_pca"}[config.residual]
    params = dict(
        universe=list(config.universe), factors=factors,
        signal="kalman" if config.residual == "kalman" else "pca_residual",
        components=config.components, window_length=config.window, state_noise=config.delta,
        obs_noise=config.ve, p0=config.p0, centre=bool(config.centre and factors == "fixed_pca"),
        filter_state=config.filter_state if config.residual == "kalman" else "window",
        signal_close=closes[config.lag], rule=config.rule, n_long=config.n_long,
        n_short=config.n_short, upper=config.upper, lower=config.lower,
        mean_reversion=config.mean_reversion, gross_exposure=1.0,
        # the newer backtester charges its rate on half the traded notional
        cost_bps=config.cost * 1e4 * (0.5 if config.accounting == "newer" else 1.0),
        trade=list(config.trade or []),
        book="weekly_beta_neutral" if config.accounting == "newer" else "daily",
        benchmarks=[config.market],
        train_start=before.date().isoformat(), train_end=fold.train_end.date().isoformat(),
    )
    return params


def run_zipline_fold(config, fold, bundle="factorarb-csv", zipline_root=None,
                     capital_base=1e6, start=None, end=None):
    """One fold of ``config`` as a zipline backtest of ``kalman_residual_momentum.py``.

    Parameters
    ----------
    config : StudyConfig
    fold : StudyFold
    bundle : str
        A bundle holding the universe's daily prices (``factorarb-csv``
        with the SPDR ETFs, dividends included).
    zipline_root : path-like, optional
        Default: ``$ZIPLINE_ROOT``, else ``~/.zipline``.
    start, end : date-like, optional
        A part of the test window (default: all of it).

    Returns
    -------
    pandas.DataFrame
        zipline's perf frame, indexed by session (tz-naive).
    """
    import os

    from zipline import run_algorithm
    from zipline.utils.calendar_utils import get_calendar

    from zipline_factorarb.data.register import load_user_extensions

    from .runner import environ_set, load_algorithm

    if config.lag < ZIPLINE_LAG:
        config = replace(config, lag=ZIPLINE_LAG)
    params = zipline_params(config, fold)
    environ = dict(os.environ)
    if zipline_root is not None:
        environ["ZIPLINE_ROOT"] = str(zipline_root)
    with environ_set({"ZIPLINE_ROOT": environ["ZIPLINE_ROOT"]} if "ZIPLINE_ROOT" in environ
                     else {}):
        load_user_extensions((), environ=environ, strict=True)
        module = load_algorithm(ALGORITHM.read_text(), str(ALGORITHM), params)
        ns = module.__dict__
        perf = run_algorithm(
            start=pd.Timestamp(start or fold.test_start), end=pd.Timestamp(end or fold.test_end),
            initialize=ns["initialize"], handle_data=ns["handle_data"],
            before_trading_start=ns["before_trading_start"], capital_base=capital_base,
            data_frequency="daily", bundle=bundle, trading_calendar=get_calendar("XNYS"),
            default_extension=False, environ=environ,
        )
    perf.index = pd.DatetimeIndex(perf.index).tz_localize(None).normalize()
    return perf


def run_zipline(config, returns, folds=None, **kwargs):
    """All folds of ``config`` through zipline, chained like :func:`run_study`.

    Returns
    -------
    StudyRun
        ``net``: zipline's daily returns as log returns; ``gross``: the same
        with the day's commissions added back; ``turnover``: traded notional
        over the portfolio value; ``positions``: the weights held over each
        day's return (the previous session's end-of-day positions over its
        portfolio value).
    """
    folds = study_folds(returns.index) if folds is None else folds
    if config.lag < ZIPLINE_LAG:
        config = replace(config, lag=ZIPLINE_LAG)
    nets, grosses, turnovers, weights = [], [], [], []
    for fold in folds:
        perf = run_zipline_fold(config, fold, **kwargs)
        w, commission, traded = zipline_book(perf)
        value = perf["portfolio_value"].shift(1).fillna(perf["starting_cash"].iloc[0])
        simple = perf["returns"].astype(float)
        nets.append(np.log1p(simple))
        grosses.append(np.log1p(simple + commission / value))
        turnovers.append(traded / value)
        weights.append(w)
    positions = pd.concat(weights).fillna(0.0)
    return StudyRun(config, pd.concat(nets), pd.concat(grosses), pd.concat(turnovers),
                    positions, list(folds))


def zipline_book(perf):
    """Weights held over each session's return, commissions and traded notional.

    Returns
    -------
    weights : pandas.DataFrame
        Row ``t``: the positions at the end of session ``t - 1`` valued at
        that close, over that session's portfolio value (0 on the first).
    commission, traded : pandas.Series
        Commissions paid and notional traded (|shares| x price) per session.
    """
    rows = {}
    for day, positions in perf["positions"].items():
        rows[day] = {p["sid"].symbol: p["amount"] * p["last_sale_price"]
                     for p in positions if p["amount"]}
    held = pd.DataFrame.from_dict(rows, orient="index").reindex(perf.index).fillna(0.0)
    weights = held.div(perf["portfolio_value"], axis=0).shift(1).fillna(0.0)
    paid = {}  # order id -> commission (an order's latest state holds its total)
    for orders in perf["orders"]:
        for o in orders:
            paid[o["id"]] = o["commission"] or 0.0
    commission = pd.Series(0.0, index=perf.index)
    traded = pd.Series(0.0, index=perf.index)
    for day, txns in perf["transactions"].items():
        traded[day] = sum(abs(t["amount"]) * t["price"] for t in txns)
        commission[day] = sum(paid.get(t["order_id"], 0.0) for t in txns)
    return weights, commission, traded


def zipline_table(returns, version="original", folds=None, **kwargs):
    """The study's strategies in zipline next to the vectorised path.

    For each strategy of ``version``: the vectorised result with the study's
    timing (``lag=1``), with zipline's (``lag=ZIPLINE_LAG``), and zipline's
    own (:func:`run_zipline`; ``kwargs`` go to :func:`run_zipline_fold`).
    Also the share of sessions on which zipline holds the same names as the
    vectorised path at zipline's timing.
    """
    configs = {"original": ORIGINAL, "newer": NEWER}[_version(version)]
    rows = []
    for config in configs:
        study = run_study(returns, config, folds)
        same_timing = run_study(returns, replace(config, lag=ZIPLINE_LAG), folds)
        zl = run_zipline(config, returns, folds, **kwargs)
        a = (zl.positions.reindex(columns=same_timing.positions.columns).fillna(0.0)
             .loc[same_timing.positions.index])
        same = (np.sign(a.round(2)) == np.sign(same_timing.positions.round(2))).all(axis=1)
        row = dict(strategy=config.name)
        for label, run in (("study_timing", study), ("zipline_timing", same_timing),
                           ("zipline", zl)):
            m = run.metrics()
            row.update({f"{label}_sharpe": m["sharpe"],
                        f"{label}_total_return": m["total_return"],
                        f"{label}_max_drawdown": m["max_drawdown"]})
        row["same_holdings"] = float(same.mean())
        rows.append(row)
    return pd.DataFrame(rows)
