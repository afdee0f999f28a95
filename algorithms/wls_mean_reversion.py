"""Weighted-regression mean reversion: trade factor-neutral residuals.

Each rebalance, the latest one-day returns of the stocks are regressed
cross-sectionally on an intercept, their GICS sector dummies and (by
variant) style exposures or principal components, with inverse-variance
weights ``z_i = 1/sigma_i**2`` (``WLSResidual``; Avellaneda & Lee 2010). The
weighted residuals ``R~ = Z eps`` are orthogonal to every factor. The book
shorts the top ``quantile`` of ``R~`` (names that rose more than their
factors explain), buys the bottom ``quantile``, and is dollar neutral:

* ``sizing='rank'``: weight proportional to the rank within each side (the
  most extreme name gets the most), ``'residual'``: proportional to
  ``|R~|``, ``'equal'``: equal weights;
* with ``quantile=0.5`` (every name, split at ``R~ = 0``) and
  ``sizing='residual'`` every name is held in proportion to ``-R~``: that
  book is exactly neutral to every factor of the regression
  (``sum_i R~_i Omega_iA = 0``) when it is formed. A decile book is only
  nearly so: with ``neutralize`` (the default) it is projected onto zero
  exposure to the intercept, the sectors and the styles or components of
  the regression over the same names (the nearest such book, see
  ``neutral_book``), then rescaled to ``gross_leverage``; on a universe too
  small for that (fewer than three names per factor, e.g. the 20-stock
  sample) the raw book is traded and counted in
  ``unneutralized_rebalances``.

Every day at the close it records ``gross_exposure``, ``net_exposure``,
``n_holdings``, ``n_long``, ``n_short``; the book's exposure to each factor
of the regression: ``factor_exposure_market`` (net weight),
``factor_exposure_<style>`` and ``factor_exposure_pc<j>`` (``sum_i w_i *
loading_i``), ``sector_weight_<GICS sector>`` (net weight of each sector);
its market beta, ``factor_exposure_market_beta`` (``sum_i w_i beta_i`` with
each stock's beta to the equal-weighted market over 252 sessions, whether
or not beta is a regression factor); and the regression's diagnostics
(``condition_number``, ``n_regression``, ``signal_neutrality``,
``ill_conditioned_days``: sessions so far whose condition number exceeded
``condition_warning``). The loadings are those of the session the book was
formed on: with daily bars an order fills at the next session's close, and
that session's loadings would already contain the return that triggered
the trade (which a 21-day reversal style, for one, picks up by
construction).

Run::

    zipline run -f algorithms/wls_mean_reversion.py -b factorarb-sample \\
        -s 2016-01-04 -e 2022-12-28 -o out.pickle
    FACTORARB_PARAMS='{"variant": "multi_factor"}' zipline run \\
        -f algorithms/wls_mean_reversion.py -b factorarb-csv-stocks \\
        -s 2015-01-02 -e 2015-12-31 --no-benchmark -o out.pickle

The benchmark is the first of ``benchmarks`` found in the bundle (``SP500``
in the sample); a bundle without one (the 505-stock CSV set) needs
``--no-benchmark``. Index assets are never traded. Short sales are
simulated without borrow fees.
"""

import numpy as np
import pandas as pd
from zipline.api import attach_pipeline, pipeline_output, record
from zipline.pipeline import Pipeline

from zipline_factorarb.algo import (algorithm_params, book_exposures, first_session_of,
                                    initialize_trading, order_target_book, per_share_costs)
from zipline_factorarb.kernels import neutralize_weights
from zipline_factorarb.pipeline import IsStock, Sector, StyleLoading, WLSResidual
from zipline_factorarb.records import FACTOR_EXPOSURE, NET_EXPOSURE, SECTOR_WEIGHT

PARAMS = algorithm_params(
    {
        "variant": "industry",  # industry | multi_factor | pca | equal_weight
        "styles": ["beta", "momentum", "reversal", "volatility"],  # multi_factor
        "components": 3,  # pca: number of principal components
        "volatility_lookback": 60,  # sessions for sigma_i
        "cap_quantile": 0.95,  # weights capped at this quantile of z
        "ridge": 0.0,  # scale-free ridge penalty
        "quantile": 0.1,  # fraction of the names on each side (0.1 = deciles)
        "sizing": "rank",  # rank | residual | equal
        "rebalance": "daily",  # daily | weekly
        "gross_leverage": 1.0,  # sum of |weights| at each rebalance
        "neutralize": True,  # project the book onto zero exposure to every regression factor
        "neutralize_min_kept": 0.75,  # keep the raw book if less of its gross survives
        "commission_per_share": 0.005,
        "min_trade_cost": 1.0,
        "slippage_bps": 5.0,
        "condition_warning": 1000.0,
        "benchmarks": ["SP500", "SPY"],  # first one found in the bundle
    }
)

VARIANTS = ("industry", "multi_factor", "pca", "equal_weight")
SIZINGS = ("rank", "residual", "equal")


def _check_params(params):
    if params["variant"] not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {params['variant']!r}")
    if params["sizing"] not in SIZINGS:
        raise ValueError(f"sizing must be one of {SIZINGS}; got {params['sizing']!r}")
    if params["rebalance"] not in ("daily", "weekly"):
        raise ValueError(f"rebalance must be 'daily' or 'weekly'; got {params['rebalance']!r}")
    if not 0 < params["quantile"] <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5]; got {params['quantile']!r}")
    if not 0 <= params["neutralize_min_kept"] <= 1:
        raise ValueError(
            f"neutralize_min_kept must be in [0, 1]; got {params['neutralize_min_kept']!r}")
    if not params["gross_leverage"] > 0:
        raise ValueError(f"gross_leverage must be positive; got {params['gross_leverage']!r}")


def make_factor(params=PARAMS):
    """The ``WLSResidual`` of the chosen variant, over the bundle's stocks."""
    common = {name: params[name]
              for name in ("volatility_lookback", "cap_quantile", "ridge", "condition_warning")}
    common["mask"] = IsStock()
    variant = params["variant"]
    if variant == "multi_factor":
        return WLSResidual(styles=tuple(params["styles"]), **common)
    if variant == "pca":
        return WLSResidual(sector=None, components=params["components"], **common)
    if variant == "equal_weight":
        return WLSResidual(equal_weights=True, **common)
    return WLSResidual(**common)


def make_pipeline(params=PARAMS):
    """Every output of the factor (unprefixed, so ``WLSResidual.loadings`` reads them
    back with ``prefix=""``), the GICS sector and each stock's market beta."""
    wls = make_factor(params)
    universe = IsStock() & wls.weighted_residual.notnull()
    columns = wls.pipeline_columns(prefix="")
    columns.update({"sector": Sector(), "market_beta": StyleLoading("beta", mask=IsStock())})
    return Pipeline(columns, screen=universe)


def target_weights(signal, quantile, sizing, gross_leverage):
    """Dollar-neutral weights: short the top ``quantile`` of ``signal``, buy the bottom.

    ``quantile=0.5`` takes every name, split at zero (buy negative ``R~``,
    short positive). Returns a dict asset -> weight: the long side sums to
    ``gross_leverage / 2``, the short side to ``-gross_leverage / 2``. With
    ``sizing='residual'`` and ``quantile=0.5`` the weights are proportional
    to ``-R~`` (the weighted residuals of a regression with an intercept sum
    to zero, so both sides have the same total).
    """
    signal = signal.dropna().sort_values()
    if quantile >= 0.5:  # every name: split at R~ = 0
        longs = signal[signal < 0]
        shorts = signal[signal > 0].iloc[::-1]
        if longs.empty or shorts.empty:
            return {}
    else:
        n = int(len(signal) * quantile)
        if n < 1:
            return {}
        longs = signal.iloc[:n]  # most negative R~ first
        shorts = signal.iloc[::-1].iloc[:n]  # most positive R~ first
    half = gross_leverage / 2.0

    def sizes(side):
        if sizing == "equal":
            raw = side * 0.0 + 1.0
        elif sizing == "rank":
            raw = side * 0.0 + list(range(len(side), 0, -1))
        else:
            raw = side.abs()
        total = raw.sum()
        if not total > 0:
            raw = side * 0.0 + 1.0
            total = raw.sum()
        return raw / total * half

    weights = {asset: w for asset, w in sizes(longs).items()}
    for asset, w in sizes(shorts).items():
        weights[asset] = weights.get(asset, 0.0) - w
    return weights


def neutral_book(weights, out, gross_leverage, factor, min_kept=0.75):
    """The decile book made exactly neutral to the regression's factors.

    ``weights`` (asset -> weight) is projected onto zero exposure to every
    column of the day's regression loadings, ``factor.loadings(out)`` (the
    intercept, hence dollar neutrality, the GICS sector dummies, the styles or
    principal components), over the same names
    (:func:`zipline_factorarb.kernels.wls.neutralize_weights`), then rescaled
    to ``gross_leverage``. Returns ``(weights, kept)``: ``kept`` is the
    fraction of the gross exposure the projection kept. The book is returned
    unchanged (``kept`` 0) when it has fewer than three names per factor
    (on the 20-stock sample a decile book has four names, and neutrality
    would leave a pair within one sector), or when ``kept`` is below
    ``min_kept``.
    """
    w0 = pd.Series(weights, dtype=float)
    if w0.empty:
        return weights, 0.0
    names = w0.index
    loadings = factor.loadings(out, prefix="").reindex(names).fillna(0.0).to_numpy()
    if len(names) < 3 * np.linalg.matrix_rank(loadings):
        return weights, 0.0
    w = neutralize_weights(w0.to_numpy(), loadings)
    gross = np.abs(w).sum()
    kept = float(gross / np.abs(w0.to_numpy()).sum())
    if not kept >= min_kept:
        return weights, kept
    w *= gross_leverage / gross
    return {asset: x for asset, x in zip(names, w) if x != 0.0}, kept


def initialize(context):
    _check_params(PARAMS)
    # a bundle without a benchmark (the 505-stock CSV set) runs with --no-benchmark
    initialize_trading(context, PARAMS["benchmarks"],
                       **per_share_costs(PARAMS["commission_per_share"], PARAMS["slippage_bps"],
                                         PARAMS["min_trade_cost"]))
    attach_pipeline(make_pipeline(), "wls")
    context.output = None
    context.placed_from = None  # pipeline output of the rebalance whose orders are open
    context.held_from = None  # pipeline output the current positions were formed from
    context.sector_of = {}
    context.ill_conditioned = 0
    context.raw_books = 0  # rebalances whose book could not be neutralised
    context.factor = make_factor()


def before_trading_start(context, data):
    # Daily bars: orders placed on one session fill at the next one's close,
    # so from today on the book is the one formed from that rebalance.
    if context.placed_from is not None:
        context.held_from, context.placed_from = context.placed_from, None
    context.output = pipeline_output("wls")
    context.sector_of.update(context.output["sector"].items())
    if not context.output.empty:
        condition = float(context.output["condition_number"].iloc[0])
        if condition > PARAMS["condition_warning"]:
            context.ill_conditioned += 1


def handle_data(context, data):
    # every session, or the week's first (like date_rules.week_start()), run
    # from handle_data: see zipline_factorarb.algo.first_session_of
    if first_session_of(context, "day" if PARAMS["rebalance"] == "daily" else "week"):
        rebalance(context, data)
    record_book(context, data)


def rebalance(context, data):
    out = context.output
    if out is None or out.empty:
        return
    weights = target_weights(out["weighted_residual"], PARAMS["quantile"], PARAMS["sizing"],
                             PARAMS["gross_leverage"])
    if PARAMS["neutralize"] and weights:
        weights, kept = neutral_book(weights, out, PARAMS["gross_leverage"], context.factor,
                                     PARAMS["neutralize_min_kept"])
        context.raw_books += kept < PARAMS["neutralize_min_kept"]
        record(neutralized_gross_kept=kept)
    context.placed_from = out
    order_target_book(context, data, weights)


def record_book(context, data):
    value = context.portfolio.portfolio_value
    weights = {asset: p.amount * p.last_sale_price / value
               for asset, p in context.portfolio.positions.items() if p.amount}
    records = book_exposures(context.portfolio)
    records.update({
        FACTOR_EXPOSURE + "market": records[NET_EXPOSURE],
        "ill_conditioned_days": context.ill_conditioned,
        "unneutralized_rebalances": context.raw_books,
    })
    out = context.output
    if out is not None and not out.empty:
        records["condition_number"] = float(out["condition_number"].iloc[0])
        records["n_regression"] = float(out["n_assets"].iloc[0])
        records["signal_neutrality"] = float(out["neutrality"].iloc[0])
    formed = context.held_from
    if formed is not None:
        # exposures with the loadings the book was formed against (a name without a
        # loading counts as zero exposure)
        columns = [c for c in formed.columns if c.startswith("loading_") or c == "market_beta"]
        w = pd.Series(weights, dtype=float)
        loadings = formed.reindex(w.index)[columns].fillna(0.0).to_numpy()
        for column, value in zip(columns, loadings.T @ w.to_numpy()):
            name = column[len("loading_"):] if column.startswith("loading_") else column
            records[FACTOR_EXPOSURE + name] = float(value)
    by_sector = {Sector.name_of(code): 0.0 for code in set(context.sector_of.values())
                 if code >= 0}
    for asset, w in weights.items():
        code = context.sector_of.get(asset, -1)
        if code >= 0:
            by_sector[Sector.name_of(code)] += w
    for name, w in by_sector.items():
        records[SECTOR_WEIGHT + name] = w
    record(**records)
