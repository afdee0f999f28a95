"""Factor evaluation through alphalens-reloaded, over a bundle and dates.

The factor is computed by zipline's pipeline engine on the bundle (as in a
backtest); prices and returns come from the bundle's adjusted closes, and the
sectors of the bundle's asset database are alphalens' groups. alphalens
(``alphalens.utils.get_clean_factor_and_forward_returns`` and
``alphalens.performance``) computes the information coefficients, the returns
by quantile, the factor-weighted long-short returns, the turnover of every
quantile and the rank autocorrelation; its tear sheets are drawn headless and
saved as PNG files. This module adds the IC by lag and the way in: factor
registry, parameter checks, universe, sign.

Timing (in full, with zipline's code, in ``docs/signals.md``). The pipeline
value of session D is computed from data up to the close of D - 1 (its *own
close*). Horizon ``h`` (alphalens' ``1D``, ``5D``... columns, ``ic``,
``ic_summary``) is the return from the close of D to the close of D + h; lag
``k`` (``ic_lag``, ``ic_by_lag``) the one-session return from the close of
D - 2 + k to the close of D - 1 + k (lag 0: the last return the factor saw;
lag 2 equals the 1-day horizon). A daily zipline backtest fills an order
placed on D at the close of D + 1, so it first earns lag
:data:`FIRST_EARNED_LAG` (3).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..kernels import evaluation as ev
from ..research.errors import ParameterError, check_names
from .periods import naive_sessions
from .progress import Phases
from .risk import sector_label


def _integer(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or (
            isinstance(value, float) and not value.is_integer()) or int(value) < minimum:
        raise ParameterError(f"{name}={value!r}: must be an integer >= {minimum}", param=name)
    return int(value)


def _momentum(lookback=252, skip=21):
    """``lookback``-session return skipping the last ``skip`` sessions."""
    from zipline.pipeline.factors import Returns

    lookback = _integer("lookback", lookback, 2)
    skip = _integer("skip", skip, 1)
    if skip >= lookback:
        raise ParameterError(f"skip={skip}: must be smaller than lookback={lookback}",
                             param="skip")
    return (Returns(window_length=lookback) + 1.0) / (Returns(window_length=skip) + 1.0) - 1.0


def _term_class(term_name):
    import zipline_factorarb

    return getattr(zipline_factorarb, term_name)


def _output(term_name, output, options=None):
    def make(**params):
        term = _term_class(term_name)(**params)
        return getattr(term, output) if output else term
    make.term_name = term_name
    make.options = options  # names the term takes through **options, if it does
    return make


def _wls_options():
    import dataclasses

    from ..kernels.wls_window import WLSSettings

    return [f.name for f in dataclasses.fields(WLSSettings)] + ["pca_components"]


#: Built-in factors by name: callables(**params) -> pipeline Factor.
FACTORS = {
    "momentum": _momentum,
    "wls_residual": _output("WLSResidual", "weighted_residual", _wls_options),
    "kalman_innovation": _output("KalmanInnovation", "standardized_innovation"),
    "sscore": _output("SScore", "s_score"),
}


def _maker(name):
    if name in FACTORS:
        return FACTORS[name]
    if ":" in name:
        module, attr = name.split(":", 1)
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import factor {name!r}: {exc}") from None
    raise ValueError(f"unknown factor {name!r}; use one of {sorted(FACTORS)} or "
                     "'package.module:callable' returning a pipeline Factor")


def factor_parameters(name):
    """The parameter names factor ``name`` takes, or ``None`` if it takes any keyword."""
    maker = _maker(name)
    target = _term_class(maker.term_name) if hasattr(maker, "term_name") else maker
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):  # a builtin without a signature: not checked
        return None
    names = [n for n, p in sig.parameters.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        options = getattr(maker, "options", None)
        if options is None:
            return None
        try:
            names += [n for n in options() if n not in names]
        except (ImportError, AttributeError, TypeError):
            return None
    return names


def resolve_factor(name, **params):
    """A factor by registry name or as ``package.module:callable``.

    Every parameter name is checked against what the factor takes (a
    misspelt name is a :class:`ParameterError` naming the closest valid
    one); a value the factor refuses is a :class:`ParameterError` naming the
    parameters given.
    """
    maker = _maker(name)
    valid = factor_parameters(name)
    if valid is not None:
        check_names(params, valid, f"factor {name!r}")
    try:
        return maker(**params)
    except ParameterError as exc:
        raise ParameterError(f"factor {name!r}: {exc}", param=exc.param) from None
    except (AttributeError, ImportError) as exc:
        raise ValueError(f"factor {name!r} is not available: {exc}") from None
    except Exception as exc:  # the term's own checks (TypeError, ValueError, zipline's)
        given = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no parameters"
        raise ParameterError(f"factor {name!r} refuses {given}: {exc}",
                             param=next(iter(params), None)) from None


#: ``--universe`` choices: pipeline filters by asset type.
UNIVERSES = ("all", "stocks", "etfs")


def resolve_universe(universe, bundle=None):
    """The pipeline screen of ``universe``.

    ``all`` (stocks and ETFs, :func:`~zipline_factorarb.pipeline.classifiers.IsTradable`),
    ``stocks``, ``etfs``, or ``package.module:callable`` returning a pipeline
    Filter (called with no argument).
    """
    from zipline.pipeline.filters import Filter

    from ..pipeline.classifiers import IsETF, IsStock, IsTradable

    if isinstance(universe, Filter):
        return universe
    if universe is None or universe == "all":
        return IsTradable()
    if universe == "stocks":
        return IsStock()
    if universe == "etfs":
        return IsETF()
    if isinstance(universe, str) and ":" in universe:
        module, attr = universe.split(":", 1)
        try:
            make = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ParameterError(f"universe={universe!r}: cannot import it: {exc}",
                                 param="universe") from None
        screen = make() if callable(make) else make
        if not isinstance(screen, Filter):
            raise ParameterError(f"universe={universe!r}: gave {type(screen).__name__}, not a "
                                 "pipeline Filter", param="universe")
        return screen
    raise ParameterError(f"universe={universe!r}: use one of {list(UNIVERSES)} or "
                         "'package.module:callable' returning a pipeline Filter",
                         param="universe")


#: Default lags of ``ic_by_lag``.
LAGS = (0, 1, 2, 3, 4, 5)

#: The first lag a daily zipline backtest earns: the pipeline value of D
#: (own close D - 1) is ordered on D and filled at the close of D + 1.
FIRST_EARNED_LAG = 3

#: Fewest assets with a factor value and a return for a day's IC.
MIN_ASSETS = 5


def check_options(horizons=(1, 5, 21), quantiles=5, lags=LAGS, nw_lags=None, sign=1,
                  max_loss=0.35):
    """Validate the evaluation options; return them normalised.

    Raises :class:`ParameterError` naming the option at fault.
    """
    hs = [_integer("horizons", h, 1) for h in (horizons or ())]
    if not hs:
        raise ParameterError("horizons: give at least one horizon (sessions >= 1)",
                             param="horizons")
    if len(set(hs)) != len(hs):
        raise ParameterError(f"horizons={list(horizons)}: a horizon is repeated",
                             param="horizons")
    quantiles = _integer("quantiles", quantiles, 2)
    lags = sorted({_integer("lags", k, 0) for k in (lags if lags is not None else ())})
    if nw_lags is not None:
        nw_lags = _integer("nw_lags", nw_lags, 0)
    if isinstance(sign, bool) or sign not in (1, -1):
        raise ParameterError(f"sign={sign!r}: must be +1 or -1", param="sign")
    if isinstance(max_loss, bool) or not isinstance(max_loss, (int, float)) \
            or not 0 <= max_loss <= 1:
        raise ParameterError(f"max_loss={max_loss!r}: must be a share between 0 and 1",
                             param="max_loss")
    return dict(horizons=tuple(sorted(hs)), quantiles=quantiles, lags=tuple(lags),
                nw_lags=nw_lags, sign=int(sign), max_loss=float(max_loss))


def lag_window(k):
    """The return of lag ``k`` in terms of the pipeline session D."""
    def close(offset):
        return "D" if offset == 0 else f"D{offset:+d}"
    return f"close {close(k - 2)} -> close {close(k - 1)}"


def lag_role(k):
    """What a daily zipline backtest makes of lag ``k``."""
    if k <= 0:
        return "seen by the factor"
    if k < FIRST_EARNED_LAG:
        return "before the fill (not earned)"
    if k == FIRST_EARNED_LAG:
        return "first earned (fill at close D+1)"
    return "earned if still held"


@dataclass
class FactorEvaluation:
    """Tables (name -> DataFrame), figures (name -> matplotlib Figure),
    alphalens' ``factor_data``, the share of factor values left out of it
    (infinite, no forward return, or not binned) and the phases' wall times
    in seconds."""

    tables: dict
    figures: dict
    factor_data: pd.DataFrame | None = None
    dropped: float = 0.0
    timings: dict = field(default_factory=dict)


def prices_from_returns(returns):
    """Price index of each asset from daily returns: NaN where the return is NaN."""
    growth = np.exp(np.log1p(returns.fillna(0.0)).cumsum())
    return growth.where(returns.notna())


def factor_data_of(factor_values, returns, groups=None, horizons=(1, 5, 21), quantiles=5,
                   max_loss=0.35):
    """alphalens' ``factor_data`` from a (dates x assets) factor frame and daily returns.

    Forward returns of horizon ``h`` run from the close of the factor's date
    to the close ``h`` sessions later, from prices compounded from
    ``returns``. No z-score filter; ``max_loss`` as alphalens'. Returns
    ``(factor_data, dropped share)``: the share of the factor's values (not
    NaN) that are not in ``factor_data`` (infinite, a missing price in the
    forward window, no forward return, or not binned).
    """
    import alphalens as al

    prices = prices_from_returns(returns.reindex(columns=factor_values.columns))
    # alphalens forward-fills missing prices (a stale price, a zero return); a value
    # whose window D .. D + max(h) holds a missing price after the first one is left
    # out instead, as alphalens leaves out values with any horizon missing
    listed = prices.notna().cummax()
    gap = (prices.isna() & listed).astype(float)
    reach = max(horizons) + 1
    gap_ahead = gap.iloc[::-1].rolling(reach, min_periods=1).max().iloc[::-1] > 0
    gap_ahead = gap_ahead.reindex(factor_values.index).fillna(False).astype(bool)
    factor = factor_values.stack().astype(float)
    given = len(factor)  # NaN are not values; +-inf are, and are counted as left out
    factor = factor[np.isfinite(factor)]
    factor.index = factor.index.set_names(["date", "asset"])
    factor = factor[~gap_ahead.stack().reindex(factor.index, fill_value=False).to_numpy()]
    groupby = None
    if groups is not None:
        groupby = {a: (groups.get(a) if pd.notna(groups.get(a)) else "Unknown")
                   for a in factor_values.columns}
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            data = al.utils.get_clean_factor_and_forward_returns(
                factor, prices, groupby=groupby, quantiles=quantiles,
                periods=tuple(horizons), filter_zscore=None, max_loss=max_loss)
    except al.utils.MaxLossExceededError as exc:
        raise ValueError(f"alphalens dropped too many factor values (max_loss={max_loss}): "
                         f"{exc}") from None
    dropped = 1.0 - len(data) / max(given, 1)
    return data, dropped


def _ic_summary(ic):
    from scipy import stats

    rows = {}
    for col in ic.columns:
        x = ic[col].dropna()
        n = int(x.size)
        sd = x.std() if n > 1 else np.nan
        t, p = stats.ttest_1samp(x, 0.0) if n > 1 else (np.nan, np.nan)
        rows[col] = {"mean_ic": x.mean(), "ic_std": sd, "risk_adjusted_ic": x.mean() / sd,
                     "t_stat": t, "p_value": p, "ic_skew": stats.skew(x) if n > 2 else np.nan,
                     "ic_kurtosis": stats.kurtosis(x) if n > 3 else np.nan,
                     "hit_rate": (x > 0).mean() if n else np.nan, "days": n}
    return pd.DataFrame(rows).T.astype({"days": "int64"})


def _masked_ic(frame, group_neutral, dates):
    """alphalens' daily IC, NaN on days with fewer than MIN_ASSETS assets."""
    import alphalens as al

    ic = al.performance.factor_information_coefficient(frame, group_adjust=group_neutral)
    counts = frame.groupby(level="date").size()
    ic = ic.where(counts.reindex(ic.index) >= MIN_ASSETS)
    ic = ic.reindex(dates)
    ic.index.name = "date"
    return ic


def ic_by_lag(factor_values, returns, lags=LAGS, groups=None, group_neutral=False, nw_lags=None):
    """Daily rank IC by lag (see the module docstring) and its summary.

    ``returns`` row s is the return from the close of the session before s to
    the close of s, on its calendar
    (:func:`zipline_factorarb.kernels.evaluation.lag_ic`). With
    ``group_neutral`` each day's return is first demeaned within its group
    over the assets that have a factor value, as alphalens' ``group_adjust``
    does. Days with fewer than :data:`MIN_ASSETS` assets have no IC.
    """
    dates = factor_values.index
    assets = factor_values.columns
    rets = returns.reindex(columns=assets)
    f = factor_values.to_numpy(dtype=float)
    f = np.where(np.isfinite(f), f, np.nan)
    r = rets.to_numpy(dtype=float)
    pos = rets.index.get_indexer(dates)
    # own close of D = the session before D in the returns' calendar
    own = np.where(pos >= 0, pos - 1, np.iinfo(np.int64).min // 4)
    lags = [int(k) for k in lags]
    labels = None
    if group_neutral and groups is not None:
        labels = groups.reindex(assets).fillna("Unknown").to_numpy()
    daily = ev.lag_ic(f, r, own, lags, min_assets=MIN_ASSETS, groups=labels)
    daily = pd.DataFrame(daily, index=dates, columns=[f"lag_{k}" for k in lags])
    daily.index.name = "date"
    stats = ev.ic_statistics(daily.to_numpy(), max_lag=nw_lags)
    summary = pd.DataFrame({
        "return": [lag_window(k) for k in lags],
        "mean_ic": stats["mean_ic"], "t_stat": stats["t_stat"], "nw_t_stat": stats["nw_t_stat"],
        "nw_lags": stats["nw_lags"], "ic_std": stats["ic_std"], "hit_rate": stats["hit_rate"],
        "days": stats["days"], "zipline_daily": [lag_role(k) for k in lags],
    }, index=pd.Index(lags, name="lag"))
    return daily, summary


def evaluate(factor_values, prices_returns, sectors=None, horizons=(1, 5, 21), quantiles=5,
             lags=LAGS, nw_lags=None, group_neutral=False, long_short=True, sign=1,
             max_loss=0.35, figures=True, progress=None):
    """Evaluate a (dates x assets) factor frame with alphalens and by lag.

    Parameters
    ----------
    factor_values : DataFrame
        Factor value per pipeline session D (rows) and asset (columns); the
        value of D saw data up to the close of the session before D.
    prices_returns : DataFrame
        Daily total returns on every session of the calendar (row s: close
        of the previous session to close of s), same columns, from the
        session before the first factor date (for lag 0) to at least
        max(horizons, lags) sessions after the last one.
    sectors : Series, optional
        Asset -> sector label: alphalens' groups (IC and returns by group,
        group-neutral analysis).
    horizons : sequence of int
        alphalens' periods: forward returns from the close of D to the
        close of D + h.
    quantiles : int
        Equal-count factor quantiles per day (alphalens ``quantiles=``).
    lags : sequence of int
        Lags of ``ic_by_lag`` (see the module docstring).
    nw_lags : int, optional
        Newey-West lags for ``nw_t_stat``; default ``floor(4 (n/100)^(2/9))``.
    group_neutral : bool
        Demean forward returns within each group and day (alphalens'
        ``group_adjust`` / ``group_neutral``), for every table and the IC by lag.
    long_short : bool
        Demean returns across the day's universe for the quantile returns
        and weight the factor portfolio long-short (alphalens' ``long_short``).
    sign : +1 or -1
        Multiplies the factor before anything else (-1 for a factor traded
        against its sign).
    figures : bool
        Draw alphalens' tear sheets and the IC-by-lag chart.
    progress : zipline_factorarb.analysis.progress.Phases, optional
        Times the phases (and announces them if it has a stream).
    """
    import alphalens as al

    opts = check_options(horizons, quantiles, lags, nw_lags, sign, max_loss)
    progress = progress if progress is not None else Phases("evaluate-factor", stream=None)
    perf = al.performance
    values = factor_values.astype(float) * opts["sign"]
    groups = sectors.reindex(values.columns).fillna("Unknown") if sectors is not None else None
    gn = bool(group_neutral and groups is not None)
    if group_neutral and groups is None:
        raise ParameterError("group_neutral needs sectors (groups)", param="group_neutral")
    tables = {}
    with progress("alphalens factor data"):
        data, dropped = factor_data_of(values, prices_returns, groups, opts["horizons"],
                                       opts["quantiles"], opts["max_loss"])
    with progress("alphalens tables"), warnings.catch_warnings():
        # pandas' FutureWarnings inside alphalens; scipy's ConstantInputWarning for a
        # day whose factor or returns are all equal (its IC is NaN)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        ic = _masked_ic(data, gn, values.index)
        ic = ic.dropna(how="all")
        tables["ic"] = ic
        tables["ic_summary"] = _ic_summary(ic)
        if groups is not None:
            tables["ic_by_group"] = perf.mean_information_coefficient(
                data, group_adjust=gn, by_group=True)
        mean_q, se_q = perf.mean_return_by_quantile(data, demeaned=long_short, group_adjust=gn)
        tables["quantile_returns"] = mean_q
        tables["quantile_returns_std_err"] = se_q
        if groups is not None:
            tables["quantile_returns_by_group"] = perf.mean_return_by_quantile(
                data, by_group=True, demeaned=long_short, group_adjust=gn)[0]
        by_date, se_by_date = perf.mean_return_by_quantile(
            data, by_date=True, demeaned=long_short, group_adjust=gn)
        spread, _ = perf.compute_mean_returns_spread(
            by_date, data["factor_quantile"].max(), data["factor_quantile"].min(), se_by_date)
        tables["quantile_spread"] = spread
        factor_rets = perf.factor_returns(data, long_short, gn)
        tables["factor_returns"] = factor_rets
        tables["alpha_beta"] = perf.factor_alpha_beta(data, factor_rets, long_short, gn)
        q = data["factor_quantile"]
        tables["quantile_turnover"] = pd.DataFrame({
            f"q{int(k)}_{h}D": perf.quantile_turnover(q, k, h)
            for h in opts["horizons"] for k in sorted(q.unique())})
        tables["rank_autocorrelation"] = pd.DataFrame({
            f"{h}D": perf.factor_rank_autocorrelation(data, h) for h in opts["horizons"]})
    if opts["lags"]:
        with progress("IC by lag"):
            tables["ic_lag"], tables["ic_by_lag"] = ic_by_lag(
                values, prices_returns, opts["lags"], groups=groups, group_neutral=gn,
                nw_lags=opts["nw_lags"])
    figs = {}
    if figures:
        with progress("alphalens tear sheets"):
            figs = _figures(data, tables, long_short, gn, groups is not None)
    return FactorEvaluation(tables=tables, figures=figs, factor_data=data, dropped=dropped,
                            timings=dict(progress.timings))


def format_ic_by_lag(table):
    """The ``ic_by_lag`` table as printed by ``factorarb evaluate-factor``."""
    shown = table[["return", "mean_ic", "t_stat", "nw_t_stat", "days", "zipline_daily"]].copy()
    shown["mean_ic"] = shown["mean_ic"].map(lambda v: f"{v:+.4f}" if np.isfinite(v) else "nan")
    for col in ("t_stat", "nw_t_stat"):
        shown[col] = shown[col].map(lambda v: f"{v:+.2f}" if np.isfinite(v) else "nan")
    note = (
        "lag k: rank IC of the pipeline value of session D (computed from closes up to D-1)\n"
        "with the return from close D-2+k to close D-1+k; lag 0 is the last return the factor saw.\n"
        "A daily zipline backtest orders on D and is filled at the close of D+1, so it first earns\n"
        f"lag {FIRST_EARNED_LAG}. nw_t_stat: Newey-West (Bartlett) t-statistic of the mean IC.")
    return shown.to_string() + "\n" + note


@contextlib.contextmanager
def _collected_figures(plt, into):
    """Collect the figures alphalens' tear sheets show (they close them after showing).

    ``plt.show`` is replaced for the duration only; figures opened meanwhile
    and left open are closed at the end (kept by reference in ``into``), and
    empty ones (no axes) are not collected.
    """
    original = plt.show
    before = set(plt.get_fignums())

    def show(*args, **kwargs):
        for num in plt.get_fignums():
            fig = plt.figure(num)
            if num not in before and fig.axes and all(fig is not f for f in into):
                into.append(fig)

    plt.show = show
    try:
        yield into
    finally:
        plt.show = original
        for num in set(plt.get_fignums()) - before:
            plt.close(num)


def _figures(data, tables, long_short, group_neutral, by_group):
    import alphalens.tears as tears

    from .tearsheet import headless

    figs = {}
    with headless() as plt:
        for name, draw in (
            ("returns", lambda: tears.create_returns_tear_sheet(
                data, long_short=long_short, group_neutral=group_neutral, by_group=by_group)),
            ("information", lambda: _information_tear_sheet(
                plt, tables["ic"], tables.get("ic_by_group"))),
            ("turnover", lambda: tears.create_turnover_tear_sheet(data)),
        ):
            shown = []
            with _collected_figures(plt, shown):
                draw()
            for i, fig in enumerate(shown):
                figs[f"{name}_tear_sheet" + ("" if i == 0 else f"_{i + 1}")] = fig
        if "ic_by_lag" in tables and len(tables["ic_by_lag"]):
            figs["ic_by_lag"] = _ic_by_lag_figure(plt, tables["ic_by_lag"])
    return figs


def _information_tear_sheet(plt, ic, ic_by_group=None):
    """alphalens' information tear sheet, drawn by alphalens' plotting functions from
    the IC already computed (``create_information_tear_sheet`` would compute the daily
    IC twice more: for itself and for the monthly means or the groups).

    The panels are the tear sheet's: the IC series per horizon, histogram and
    Q-Q plot, the monthly mean IC heatmaps, and the mean IC by group.
    """
    from alphalens import plotting

    def draw():
        cols = len(ic.columns)
        rows = 2 * cols + (cols + 1) // 2 + (1 if ic_by_group is not None else 0)
        fig = plt.figure(figsize=(14, rows * 5))
        grid = fig.add_gridspec(rows, 2, wspace=0.4, hspace=0.3)
        plotting.plot_ic_ts(ic, ax=[fig.add_subplot(grid[i, :]) for i in range(cols)])
        row = cols
        cells = [fig.add_subplot(grid[row + i // 2, i % 2]) for i in range(cols * 2)]
        row += cols
        plotting.plot_ic_hist(ic, ax=cells[::2])
        plotting.plot_ic_qq(ic, ax=cells[1::2])
        monthly = ic.groupby(pd.Grouper(freq="ME")).mean()
        heat = [fig.add_subplot(grid[row + i // 2, i % 2]) for i in range(cols)]
        row += (cols - 1) // 2 + 1
        plotting.plot_monthly_ic_heatmap(monthly, ax=heat)
        if ic_by_group is not None:
            plotting.plot_ic_by_group(ic_by_group, ax=fig.add_subplot(grid[row, :]))
        plt.show()

    plotting.customize(draw)()


def _ic_by_lag_figure(plt, lag):
    title = "Mean rank IC by lag (±2 Newey-West s.e.)"
    if (lag.index > 0).any():
        # lag 0 (the return the factor saw) would dwarf the others: named in the title
        if 0 in lag.index:
            title += f"; lag 0 (seen by the factor): {lag.loc[0, 'mean_ic']:+.3f}"
        lag = lag[lag.index > 0]
    fig, ax = plt.subplots(figsize=(8, 4))
    se = (lag["mean_ic"] / lag["nw_t_stat"]).abs()
    colors = ["tab:gray" if k < FIRST_EARNED_LAG else "tab:blue" for k in lag.index]
    ax.bar([str(k) for k in lag.index], lag["mean_ic"], yerr=2 * se, color=colors, capsize=3)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel(f"lag (blue: earned by a daily zipline backtest, from lag {FIRST_EARNED_LAG})")
    ax.set_title(title, fontsize=10)
    plt.close(fig)  # kept by reference, out of pyplot's list
    return fig


def evaluate_factor(name, bundle, start, end, horizons=(1, 5, 21), quantiles=5, params=None,
                    universe="all", environ=None, lags=LAGS, nw_lags=None, sign=1,
                    group_neutral=False, long_short=True, max_loss=0.35, figures=True,
                    progress=None):
    """Run factor ``name`` on ``bundle`` over ``start``..``end`` and evaluate it.

    Every option and factor parameter is checked before the pipeline runs
    (:class:`ParameterError` names the one at fault). ``universe`` is the
    pipeline screen: ``all`` (stocks and ETFs), ``stocks``, ``etfs``, or
    ``package.module:callable`` returning a Filter. See :func:`evaluate`.
    """
    from zipline.pipeline import Pipeline
    from zipline.data.bundles import bundles
    from zipline.utils.calendar_utils import get_calendar

    from ..pipeline.classifiers import Sector
    from ..pipeline.research import run_pipeline
    from .bundle_data import adjusted_returns

    progress = progress if progress is not None else Phases("evaluate-factor", stream=None)
    opts = check_options(horizons, quantiles, lags, nw_lags, sign, max_loss)
    start_ts, end_ts = _day("start", start), _day("end", end)
    if end_ts < start_ts:
        raise ParameterError(f"end={end}: before start={start}", param="end")
    factor = resolve_factor(name, **(params or {}))
    screen = resolve_universe(universe)
    with progress(f"pipeline ({name} on {bundle}, {start_ts.date()} .. {end_ts.date()})"):
        out = run_pipeline(Pipeline({"factor": factor, "sector": Sector()}, screen=screen),
                           start_ts, end_ts, bundle=bundle, environ=environ)
    if out.empty:
        raise ValueError(f"factor {name!r} produced no values on {bundle} between {start} and "
                         f"{end} (universe {universe!r})")
    values = out["factor"].unstack()
    values.columns = [a.symbol for a in values.columns]
    values.index = naive_sessions(values.index)
    sectors = out["sector"].groupby(level=1).last()
    sectors.index = [a.symbol for a in sectors.index]
    sectors = sectors.map(sector_label)

    reach = max(max(opts["horizons"]), max(opts["lags"], default=0))
    last = values.index[-1] + pd.Timedelta(days=int(reach * 1.6) + 5)
    # from a few sessions before the first factor date: lag 0 ends at the close before it
    first = max(values.index[0] - pd.Timedelta(days=10),
                pd.Timestamp(get_calendar(bundles[bundle].calendar_name).first_session)
                .tz_localize(None))
    with progress("adjusted returns from the bundle"):
        rets = adjusted_returns(bundle, list(values.columns), first, last, environ=environ)
    evaluation = evaluate(values, rets, sectors=sectors, horizons=opts["horizons"],
                          quantiles=opts["quantiles"], lags=opts["lags"],
                          nw_lags=opts["nw_lags"], group_neutral=group_neutral,
                          long_short=long_short, sign=opts["sign"], max_loss=opts["max_loss"],
                          figures=figures, progress=progress)
    evaluation.timings = dict(progress.timings)
    return evaluation


def _day(name, value):
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"{name}={value!r}: not a date (use YYYY-MM-DD): {exc}",
                             param=name) from None
    if ts is pd.NaT:
        raise ParameterError(f"{name}={value!r}: not a date (use YYYY-MM-DD)", param=name)
    return (ts.tz_localize(None) if ts.tzinfo else ts).normalize()


def write_evaluation(evaluation, out_dir):
    """Write the tables as CSV and the figures as PNG; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in evaluation.tables.items():
        path = out / f"{name}.csv"
        frame.to_csv(path)
        written.append(path)
    for name, fig in evaluation.figures.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=80, bbox_inches="tight")
        written.append(path)
    return written
