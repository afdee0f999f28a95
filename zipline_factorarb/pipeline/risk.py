"""A factor risk model estimated inside a zipline Pipeline.

:class:`FactorRiskModel` is a multi-output ``CustomFactor``: for every asset of its
mask it regresses the asset's trailing daily returns on the returns of a set of
factors (time-series OLS with an intercept) and outputs the loadings, the
intercept (``alpha``) and the specific (residual) variance. Companion terms output
the factor moments of the same window (mean and covariance of the factor returns,
the same value for every asset), so that a single pipeline gives an algorithm
everything it needs to build a :class:`~zipline_factorarb.optimize.RiskModel` and
the expected factor returns for the optimiser::

    risk = FactorRiskModel(factor_assets=[symbol("MTUM"), symbol("VLUE")],
                           market=symbol("SP500"), window_length=252, mask=IsStock(),
                           frequency="month_start")   # estimated at month starts only
    columns = risk.pipeline_columns(into={"sector": Sector()})  # "risk:alpha", ...
    attach_pipeline(Pipeline(columns, screen=IsStock()), "risk")
    ...
    frame = pipeline_output("risk")
    model = risk.risk_model(frame)                 # RiskModel, per-day variances
    mu_f = risk.expected_factor_returns(frame)     # trailing daily factor means

Columns are named ``"risk:" + output`` (:data:`DEFAULT_PREFIX`), so that no column
of the user's (an ``alpha`` of their own, say) can replace one of the model's;
``pipeline_columns(into=...)`` refuses a clash. For large universes, the factor
moments can come from a one-row pipeline of their own
(:meth:`FactorRiskModel.moments_pipeline`) instead of K + K(K+1)/2 columns of
every asset.

Factors are given assets' returns, the market (an asset's returns or the
equal-weighted mean of the mask), sector means and characteristic factors: see the
parameters of :class:`FactorRiskModel`. Every factor's daily return is a one-column
pipeline term (an asset's ``Returns(window_length=2)[asset]`` slice, or an output of
one :class:`CrossSectionMeanReturns` term holding the equal-weighted market and all
the sector means), so it is computed once per day and read as a window by the terms
that need it. The window math is in :mod:`zipline_factorarb.kernels.factor_model`
(:func:`~zipline_factorarb.kernels.factor_model.stack_factor_returns`,
:func:`~zipline_factorarb.kernels.factor_model.estimate_factor_model`,
:func:`~zipline_factorarb.kernels.factor_model.factor_moments`), tested without an
engine (the pattern of zipline's ``SimpleBeta`` / ``vectorized_beta``).
"""

from __future__ import annotations

import numbers
import re

import numpy as np
import pandas as pd
from zipline.assets import Asset
from zipline.pipeline import CustomFactor, CustomFilter, Pipeline
from zipline.pipeline.classifiers import Classifier
from zipline.pipeline.downsample_helpers import select_sampling_indices
from zipline.pipeline.factors import Returns
from zipline.pipeline.factors.factor import RecarrayField
from zipline.pipeline.filters import StaticAssets
from zipline.pipeline.term import AssetExists
from zipline.utils.numpy_utils import float64_dtype

from ..checks import check_asset, check_filter, check_instance, check_number
from ..data.sectors import GICS_SECTORS
from ..kernels import factor_model as fm
from ..kernels.risk import check_shrinkage
from ..kernels.wls import characteristic_return
from ..kernels.wls_window import given_style_values
from ..optimize.risk_model import CONSTANT, RiskModel
from ._threads import one_blas_thread

__all__ = [
    "FactorRiskModel",
    "FactorMoments",
    "CrossSectionMeanReturns",
    "CharacteristicReturns",
    "factor_risk_model_for_algorithm",
    "FACTOR_SOURCES",
    "FREQUENCIES",
    "DEFAULT_PREFIX",
    "MARKET",
    "EQUAL_WEIGHT",
]

#: name of the market factor, whatever its source
MARKET = "market"
#: ``market=EQUAL_WEIGHT``: the equal-weighted mean return of the mask's assets
EQUAL_WEIGHT = "equal_weight"
#: prefix of the pipeline columns of :meth:`FactorRiskModel.pipeline_columns` and of
#: its read-backs (as ``"wls:"`` for ``WLSResidual``): a user's own ``alpha`` column
#: cannot replace the model's ``risk:alpha``
DEFAULT_PREFIX = "risk:"
#: ``frequency`` of :class:`FactorRiskModel`: zipline's downsampling frequencies
FREQUENCIES = ("week_start", "month_start", "quarter_start", "year_start")


# ----------------------------------------------------------------------------- pipeline terms


def _output_name(text):
    """A valid pipeline output name from a factor name ("Health Care" -> "Health_Care")."""
    return re.sub(r"\W+", "_", str(text)).strip("_") or "factor"


class _OutputField(RecarrayField):
    """One output of a multi-output term, copied out of the term's record array.

    zipline's engine hands a multi-output term's whole record array (every output,
    every day and asset of the chunk) to each of its output fields, copying it for
    every field but the last (the consumer might modify its input), and zipline's
    ``RecarrayField`` returns a view into that copy, which keeps the copy alive until
    the chunk ends: F outputs hold F whole copies, F^2 arrays of (days x assets)
    (3.6 GB for this model's 105 outputs over a 126-session chunk of 2,000 stocks).
    Copying the one field out lets each whole copy go at once: F arrays.

    The field of a one-column term (``ndim=1``: one value a day, such as the factor
    moments) is that column broadcast to every asset, a read-only view that costs
    no memory until the pipeline's output frame is built.
    """

    def _compute(self, windows, dates, assets, mask):
        values = windows[0][self._attribute]
        if self.inputs[0].ndim == 1:
            return np.broadcast_to(values, mask.shape)
        return np.ascontiguousarray(values)


class _DailyField(RecarrayField):
    """One output of a one-column (``ndim=1``) multi-output term, itself one column.

    Window-safe like its parent, so that windowed terms can take it as an input
    (as they take ``Returns(...)[asset]``).
    """

    ndim = 1

    def _compute(self, windows, dates, assets, mask):
        return np.ascontiguousarray(windows[0][self._attribute])


class _Outputs(CustomFactor):
    """Base of the multi-output terms here: ``term.alpha`` is a ``_field`` of the term,
    an :class:`_OutputField` (a pipeline column) unless a subclass says otherwise."""

    _field = _OutputField

    def __getattribute__(self, name):
        outputs = object.__getattribute__(self, "outputs")
        if isinstance(outputs, tuple) and name in outputs:
            return type(self)._field(self, name)
        return super().__getattribute__(name)

    def __iter__(self):
        return (type(self)._field(self, name) for name in self.outputs)


class _DailyOutputs(_Outputs):
    """Base of the one-column terms of daily factor returns: their outputs are
    window-safe one-column inputs of the windowed terms (:class:`_DailyField`)."""

    window_safe = True
    dtype = float64_dtype
    _field = _DailyField


class _MultiOutputTerm(_Outputs):
    """Base of the model's terms (:class:`FactorRiskModel`, :class:`FactorMoments`): sampling.

    With the ``frequency`` parameter (``term.params["frequency"]``, one of
    :data:`FREQUENCIES`), :meth:`compute` runs only
    on the first session of each week / month / ... of a chunk, and the other
    sessions repeat that value, as zipline's ``Term.downsample`` does (which does not
    support multi-output terms): an algorithm that reads the term once a month
    pays for it once a month.
    """

    def compute_extra_rows(self, all_dates, start_date, end_date, min_extra_rows):
        """Reach back to the first session of the period holding the first row
        computed, so that results do not depend on where a chunk starts (as
        zipline's downsampled terms)."""
        freq = self.params["frequency"]
        if freq is None:
            return min_extra_rows
        start = all_dates.get_loc(start_date) - min_extra_rows
        candidates = all_dates[:start + 1]
        period_start = all_dates.get_loc(candidates[select_sampling_indices(candidates, freq)[-1]])
        return min_extra_rows + (start - period_start)

    def _compute(self, windows, dates, assets, mask):
        freq = self.params["frequency"]
        if freq is None:
            return super()._compute(windows, dates, assets, mask)
        sample = np.zeros(len(dates), dtype=bool)
        sample[select_sampling_indices(dates, freq)] = True
        out = self._allocate_output(windows, (len(mask), 1) if self.ndim == 1 else mask.shape)
        for i in range(len(dates)):
            if sample[i]:
                out[i] = super()._compute(windows, dates[i:i + 1], assets, mask[i:i + 1])[0]
            else:
                for window in windows:
                    next(window)
                out[i] = out[i - 1]
        return out


class _FirstOfMask(CustomFilter):
    """True for one asset a day: the first (lowest sid) of the mask.

    The screen of :meth:`FactorRiskModel.moments_pipeline`, whose columns hold the
    same value for every asset: one row a day is all of it.
    """

    inputs = ()
    window_length = 1

    def compute(self, today, assets, out):
        out[:] = False
        out[:1] = True


def _check_frequency(frequency):
    if frequency is not None and frequency not in FREQUENCIES:
        raise ValueError(f"frequency must be None (every session) or one of {FREQUENCIES}, "
                         f"got {frequency!r}")
    return frequency


class CrossSectionMeanReturns(_DailyOutputs):
    """One-column multi-output term: each day's equal-weighted mean returns of the mask.

    Outputs ``market`` (all the mask's assets; with ``market=True``) and
    ``sector_<code>`` (the assets of each of ``codes``), each
    :func:`~zipline_factorarb.kernels.factor_model.cross_section_mean`, computed by
    one term a day instead of one per factor (zipline copies a term's (sessions x
    assets) inputs for each term that reads them, so twelve sector terms would cost
    twelve copies of the returns). Its outputs are window-safe one-column terms
    (``term.sector_45``), the inputs of :class:`FactorRiskModel`.

    Parameters
    ----------
    returns : Factor
        Daily returns (``Returns(window_length=2)``).
    market : bool
    sectors : Classifier, optional
    codes : sequence of int
        Needs ``sectors``.
    mask : Filter, optional
    """

    window_length = 1
    params = ("with_market", "codes")

    def __new__(cls, returns, market=True, sectors=None, codes=(), mask=None):
        codes = tuple(int(c) for c in codes)
        if bool(codes) != (sectors is not None):
            raise ValueError("give sectors and codes together (or neither)")
        outputs = (["market"] if market else []) + [f"sector_{c}" for c in codes]
        if not outputs:
            raise ValueError("no outputs: give market=True or sector codes")
        return super().__new__(cls, inputs=[returns] + ([sectors] if codes else []),
                               outputs=outputs, window_length=1, ndim=1,
                               with_market=bool(market), codes=codes,
                               mask=check_filter("mask", mask))

    def compute(self, today, assets, out, returns, *labels, with_market, codes):
        r = returns[-1]
        if with_market:
            out["market"][:] = fm.cross_section_mean(r)
        for c in codes:
            out[f"sector_{c}"][:] = fm.cross_section_mean(r, labels[0][-1], c)


def _factor_inputs(factor_assets, market, sectors, codes, mask):
    """The one-column factor-return terms, market first, and the returns input."""
    slice_assets = ([market] if isinstance(market, Asset) else []) + list(factor_assets)
    if slice_assets:
        daily_returns = Returns(window_length=2, mask=AssetExists() | StaticAssets(slice_assets))
    else:
        daily_returns = Returns(window_length=2)
    means = None
    if market == EQUAL_WEIGHT or codes:
        means = CrossSectionMeanReturns(daily_returns, market=market == EQUAL_WEIGHT,
                                        sectors=sectors if codes else None, codes=codes,
                                        mask=mask)
    terms = []
    if isinstance(market, Asset):
        terms.append(daily_returns[market])
    elif market == EQUAL_WEIGHT:
        terms.append(means.market)
    terms.extend(daily_returns[a] for a in factor_assets)
    terms.extend(getattr(means, f"sector_{c}") for c in codes)
    return daily_returns, terms


class CharacteristicReturns(_DailyOutputs):
    """One-column multi-output term: each day's characteristic factor returns.

    One output per characteristic (``size``, ``value``, ...): the day's
    :func:`~zipline_factorarb.kernels.wls.characteristic_return`, the slope of
    the mask's latest daily returns (close of ``D - 2`` to close of ``D - 1``)
    on the characteristic standardised across those assets, where the
    characteristic is the value of the *previous* session (known before that
    return) turned into a raw style as
    :func:`~zipline_factorarb.kernels.wls_window.given_style_values` does
    (``size``: natural log of a market cap; any other name: as given). An
    input of :class:`FactorRiskModel` (``characteristics=``); its outputs are
    window-safe one-column terms.

    Parameters
    ----------
    returns : Factor
        Daily returns (``Returns(window_length=2)``).
    characteristics : mapping of str to Factor
        Window-safe float factors (e.g. ``Fundamentals.market_cap``).
    winsor : float or None
    mask : Filter, optional
    """

    window_length = 2
    params = ("names", "winsor")

    def __new__(cls, returns, characteristics, winsor=3.0, mask=None):
        names = tuple(characteristics)
        return super().__new__(cls, inputs=[returns, *characteristics.values()],
                               outputs=names, window_length=2, ndim=1, names=names,
                               winsor=winsor, mask=check_filter("mask", mask))

    def compute(self, today, assets, out, returns, *characteristics, names, winsor):
        r = returns[-1]
        for name, values in zip(names, characteristics):
            out[name][:] = characteristic_return(r, given_style_values(name, values[-2]),
                                                 winsor=winsor)


class FactorMoments(_MultiOutputTerm):
    """Companion of :class:`FactorRiskModel`: its factor means and covariances.

    Built by :attr:`FactorRiskModel.moment_terms`. A one-column term (``ndim=1``,
    like a slice): one value a day per output, held once, not once per asset; its
    outputs (``moments.mean_market``, ...) are pipeline columns that hold that value
    for every asset (see :class:`_OutputField`). Not meant to be constructed
    directly.
    """

    dtype = float64_dtype
    params = ("has_market", "excess_of_market", "halflife", "shrinkage",
              "min_factor_coverage", "fields", "frequency", "n_characteristics")

    def compute(self, today, assets, out, *factors, has_market, excess_of_market, halflife,
                shrinkage, min_factor_coverage, fields, frequency, n_characteristics):
        X = fm.stack_factor_returns(factors, has_market, excess_of_market, n_characteristics)
        mean, cov = fm.factor_moments(X, halflife, shrinkage, min_factor_coverage)
        for name, i, j in fields:
            out[name][:] = mean[i] if j < 0 else cov[i, j]


class FactorRiskModel(_MultiOutputTerm):
    """Per-asset factor loadings, alpha and specific variance (plus factor moments).

    Each day, for every asset of ``mask``, regresses its trailing ``window_length``
    daily returns on the factor returns of the same rows,
    ``r_it = alpha_i + sum_k F_ik x_kt + eps_it`` (the time-series regressions of a
    factor model with observed factor returns: OLS by default, or ridge / lasso /
    elastic net with ``method``, estimated by
    :func:`~zipline_factorarb.kernels.factor_model.fit_factor_model`), and outputs

    ``alpha``
        The intercept (only with ``add_constant=True``).
    ``loading_<factor>``
        One output per factor (names from :attr:`factors`, made identifier-safe).
    ``specific_variance``
        Residual variance per day, ``sum eps^2 / (T_i - p)``.
    ``n_observations``
        Rows used.

    Its :attr:`moment_terms` output ``mean_<factor>`` and ``cov_<i>_<j>``: mean and
    covariance (Ledoit-Wolf shrunk by default) of the factor returns over the same
    rows, the same number in every row. :meth:`pipeline_columns` gives all of them
    for a Pipeline, named ``"risk:" + output`` (:data:`DEFAULT_PREFIX`);
    :meth:`risk_model` and :meth:`expected_factor_returns` read one day's output
    back as a :class:`~zipline_factorarb.optimize.RiskModel` and a Series.

    Parameters
    ----------
    factor_assets : sequence of Asset, optional
        Assets whose returns are factors (e.g. factor ETFs), named by symbol. Each must
        have prices throughout the pipeline's date range and look-back window
        (zipline raises ``NonExistentAssetInTimeFrame`` otherwise; see
        :func:`factor_risk_model_for_algorithm`, which checks this).
    market : Asset or "equal_weight" or None, default None
        The market factor (named ``"market"``): an asset's returns (an index or a
        broad ETF), or the equal-weighted mean return of the mask's assets.
    sectors : Classifier, optional
        E.g. ``Sector()``: adds one factor per code of ``sector_codes``, the
        equal-weighted mean return of that day's mask assets in the sector, named by
        GICS sector name.
    sector_codes : sequence of int, optional
        Default: the eleven GICS sector codes.
    excess_of_market : bool, default True
        Factor-asset and sector factors in excess of the market (needs ``market``).
    window_length : int, default 252
        Daily returns in the regression window (at least 3).
    add_constant : bool, default True
        Regress with an intercept (the ``alpha`` output).
    min_observations : int, optional
        Fewer usable rows give NaN for that asset. Default: three quarters of the
        window.
    halflife : float, optional
        Exponential weighting (in rows) of specific variances and factor covariance.
    shrinkage : {"ledoit_wolf"} or float or None, default "ledoit_wolf"
        Factor covariance shrinkage (see :func:`~zipline_factorarb.kernels.risk.factor_covariance`).
    min_factor_coverage : float, default 0.9
        Share of the window's rows on which a factor needs a return to be used (see
        :func:`~zipline_factorarb.kernels.factor_model.usable_factor_rows`).
    specific_variance_floor : float, default 0.0
    mask : Filter, optional
        The universe: the assets regressed, and those averaged into the
        equal-weighted market and sector factors.
    frequency : {None, "week_start", "month_start", "quarter_start", "year_start"}
        Estimate only on the first session of each week / month / ... and repeat
        that estimate on the other sessions (zipline's downsampling; its
        ``Term.downsample`` does not take multi-output terms, so it is a parameter
        here, and :meth:`downsample` returns the model with it). Match it to the
        algorithm's rebalance schedule: a monthly rebalance that reads the model
        once a month then pays for 12 estimates a year, not 252. Default None:
        every session.
    method : {"ols", "ridge", "lasso", "elasticnet"}, default "ols"
        How the loadings are estimated. A penalty tames the offsetting betas of
        nearly collinear factors (SPY with the sector ETFs, say): the term warns once,
        naming the factors, when their condition number or variance inflation exceeds
        the limits of :func:`~zipline_factorarb.kernels.factor_model.collinearity_message`.
    lam : float, optional
        The penalty (scikit-learn's ``alpha``) for every asset; None (a penalised
        ``method``): chosen per asset, each estimate, by ``cv``-fold walk-forward
        cross-validation over ``grid`` (default grids: see
        :mod:`zipline_factorarb.kernels.factor_model`).
    cv : int, default 5
    grid : sequence of float, optional
    l1_ratio : float, default 0.5
        Elastic-net mixing (``method="elasticnet"``).
    characteristics : mapping of str to Factor, optional
        Characteristic factors, e.g. ``{"size": Fundamentals.market_cap,
        "value": Fundamentals.book_to_market}`` (float64, window-safe
        factors; the names are the factors' names, after the sectors). Each
        session's factor return is the cross-sectional slope of the mask's
        daily returns on the previous session's characteristic, standardised
        (:class:`CharacteristicReturns`, the return of a factor-mimicking
        portfolio; ``size`` is the log of its input, any other name is used
        as given). They are long-short returns, never taken in excess of the
        market. An asset without a value that day is left out of that day's
        slope.
    characteristic_winsor : float or None, default 3.0
        Winsorise the standardised characteristics at this many standard
        deviations (as ``WLSResidual``'s styles).

    Notes
    -----
    As zipline's ``SimpleBeta``: arguments are validated here (errors at
    construction, not mid-backtest), and :meth:`compute` hands the stacked window to
    :func:`~zipline_factorarb.kernels.factor_model.estimate_factor_model`. The factor
    moments, one value a day, still fill K + K(K+1)/2 columns of a per-asset frame
    (90 for 12 factors): with many assets take them from :meth:`moments_pipeline`
    (as ``algorithms/tev_factor_tilt.py`` does).
    """

    dtype = float64_dtype
    params = (
        "factor_names",
        "has_market",
        "excess_of_market",
        "add_constant",
        "min_observations",
        "halflife",
        "shrinkage",
        "min_factor_coverage",
        "specific_variance_floor",
        "frequency",
        "method",
        "lam",
        "cv",
        "grid",
        "l1_ratio",
        "n_characteristics",
    )

    def __new__(cls, factor_assets=(), market=None, sectors=None, sector_codes=None,
                excess_of_market=True, window_length=252, add_constant=True,
                min_observations=None, halflife=None, shrinkage="ledoit_wolf",
                min_factor_coverage=0.9, specific_variance_floor=0.0, mask=None,
                frequency=None, method="ols", lam=None, cv=5, grid=None, l1_ratio=0.5,
                characteristics=None, characteristic_winsor=3.0):
        # for downsample (terms are immutable and cached): the arguments as given
        # (``__class__`` is the cell of ``super()``)
        arguments = {k: v for k, v in locals().items()
                     if k not in ("cls", "frequency", "__class__")}
        from .wls import _check_style_inputs

        characteristics = _check_style_inputs(characteristics, "characteristics")
        characteristic_winsor = check_number("characteristic_winsor", characteristic_winsor,
                                             1, low_open=True, allow_none=True)
        grid = fm.check_penalty(method, cv, grid, l1_ratio)
        lam = check_number("lam", lam, 0, allow_none=True)
        l1_ratio = check_number("l1_ratio", l1_ratio, 0, 1, low_open=True)
        if method != "ols" and lam is None and window_length // (cv + 1) < 2:
            raise ValueError(f"window_length {window_length} is too short for {cv}-fold "
                             "walk-forward cross-validation; lengthen it, lower cv or give lam")
        _check_frequency(frequency)
        factor_assets = tuple(check_asset("each of factor_assets", a, allow_none=False)
                              for a in factor_assets)
        if len(set(factor_assets)) != len(factor_assets):
            raise ValueError("factor_assets lists an asset twice; give each factor once")
        if market is not None and not isinstance(market, Asset) and market != EQUAL_WEIGHT:
            raise ValueError(f"market must be an Asset, {EQUAL_WEIGHT!r} or None, got {market!r}")
        if isinstance(market, Asset) and market in factor_assets:
            raise ValueError(f"{market!r} is both the market and a factor asset; drop it "
                             "from factor_assets")
        check_instance("sectors", sectors, Classifier, allow_none=True)
        if sectors is None:
            if sector_codes is not None:
                raise ValueError("sector_codes needs sectors (e.g. sectors=Sector())")
            codes = ()
        else:
            codes = tuple(int(c) for c in (GICS_SECTORS if sector_codes is None else sector_codes))
            if not codes:
                raise ValueError("sector_codes is empty; give at least one code or drop sectors")
            if len(set(codes)) != len(codes):
                raise ValueError("sector_codes lists a code twice")
        excess_of_market = bool(excess_of_market)
        if excess_of_market and market is None and (factor_assets or codes):
            raise ValueError(
                "excess_of_market=True needs a market factor: pass market=<asset> or "
                f"market={EQUAL_WEIGHT!r}, or set excess_of_market=False")
        if not isinstance(window_length, numbers.Integral) or isinstance(window_length, bool) \
                or window_length < 3:
            raise ValueError(f"window_length must be an integer of at least 3, got {window_length!r}")
        names = ([MARKET] if market is not None else []) \
            + [str(a.symbol) for a in factor_assets] \
            + [GICS_SECTORS.get(c, f"sector_{c}") for c in codes] \
            + list(characteristics)
        if not names:
            raise ValueError("no factors: give factor_assets, a market, sectors or "
                             "characteristics")
        if len(set(names)) != len(names):
            raise ValueError(f"factor names collide: {names}; a factor asset may not be "
                             f"called {MARKET!r}")
        safe = [_output_name(n) for n in names]
        if len(set(safe)) != len(safe):
            raise ValueError(f"factor names {names} collide once made identifier-safe ({safe})")
        n_params = len(names) + (1 if add_constant else 0)
        if min_observations is None:
            min_observations = max(n_params + 1, int(0.75 * window_length))
        if not isinstance(min_observations, numbers.Integral) or min_observations < n_params + 1:
            raise ValueError(
                f"min_observations must be an integer of at least {n_params + 1} (the "
                f"{n_params} regression parameters plus one), got {min_observations!r}")
        if min_observations > window_length:
            raise ValueError(f"min_observations {min_observations} exceeds window_length "
                             f"{window_length}; lower it or lengthen the window")
        halflife = check_number("halflife", halflife, 0, low_open=True, allow_none=True)
        shrinkage = check_shrinkage(shrinkage)
        min_factor_coverage = check_number("min_factor_coverage", min_factor_coverage, 0, 1,
                                           low_open=True)
        specific_variance_floor = check_number("specific_variance_floor",
                                               specific_variance_floor, 0)
        mask = check_filter("mask", mask)

        daily_returns, factor_terms = _factor_inputs(factor_assets, market, sectors, codes, mask)
        if characteristics:
            char_returns = CharacteristicReturns(daily_returns, characteristics,
                                                 winsor=characteristic_winsor, mask=mask)
            factor_terms += [getattr(char_returns, name) for name in characteristics]
        outputs = (["alpha"] if add_constant else []) + [f"loading_{s}" for s in safe] \
            + ["specific_variance", "n_observations"]
        term = super().__new__(
            cls, inputs=[daily_returns, *factor_terms], outputs=outputs,
            window_length=int(window_length), mask=mask, factor_names=tuple(names),
            has_market=market is not None, excess_of_market=excess_of_market,
            add_constant=bool(add_constant), min_observations=int(min_observations),
            halflife=halflife, shrinkage=shrinkage, min_factor_coverage=min_factor_coverage,
            specific_variance_floor=specific_variance_floor, frequency=frequency,
            method=method, lam=lam, cv=int(cv), grid=grid, l1_ratio=l1_ratio,
            n_characteristics=len(characteristics))
        term._arguments = arguments
        return term

    def downsample(self, frequency):
        """This model estimated only on the first session of each period.

        zipline's ``Term.downsample`` does not take multi-output terms; this returns
        ``FactorRiskModel(..., frequency=frequency)`` with the same arguments (and
        its :attr:`moment_terms` are sampled alike).

        Parameters
        ----------
        frequency : {"week_start", "month_start", "quarter_start", "year_start"}
        """
        if frequency is None:
            raise ValueError(f"frequency must be one of {FREQUENCIES}, got None")
        return type(self)(**self._arguments, frequency=_check_frequency(frequency))

    def compute(self, today, assets, out, returns, *factors, factor_names, has_market,
                excess_of_market, add_constant, min_observations, halflife, shrinkage,
                min_factor_coverage, specific_variance_floor, frequency, method, lam, cv, grid,
                l1_ratio, n_characteristics):
        X = fm.stack_factor_returns(factors, has_market, excess_of_market, n_characteristics)
        with one_blas_thread():
            est = fm.estimate_factor_model(
                returns, X, add_constant, min_observations, halflife, min_factor_coverage,
                specific_variance_floor, method, lam, cv, grid, l1_ratio)
        # rows with a non-finite value are dropped there: the rows of the estimate
        fm.warn_collinear_once(self, X[:, est.usable],
                               [n for n, u in zip(factor_names, est.usable) if u], est.collinearity)
        if add_constant:
            out["alpha"][:] = est.alpha
        for k, name in enumerate(factor_names):
            out[f"loading_{_output_name(name)}"][:] = est.loadings[:, k]
        out["specific_variance"][:] = est.specific_variance
        out["n_observations"][:] = est.n_observations

    # ------------------------------------------------------------------ outputs
    @property
    def factors(self):
        """The factors, in output order (``"market"``, asset symbols, sector names,
        characteristics)."""
        return self.params["factor_names"]

    @property
    def moment_terms(self):
        """``[FactorMoments]``: the term whose outputs are ``mean_<factor>`` and
        ``cov_<i>_<j>`` (a list, for the pipelines built with earlier versions)."""
        safe = [_output_name(n) for n in self.factors]
        m = len(safe)
        fields = [(f"mean_{s}", k, -1) for k, s in enumerate(safe)]
        fields += [(f"cov_{i}_{j}", i, j) for i in range(m) for j in range(i, m)]
        shared = {k: self.params[k] for k in FactorMoments.params if k != "fields"}
        return [FactorMoments(inputs=self.inputs[1:], outputs=[name for name, _, _ in fields],
                              window_length=self.window_length, mask=self.mask, ndim=1,
                              fields=tuple(fields), **shared)]

    def moment_columns(self, prefix=DEFAULT_PREFIX):
        """``{prefix + "mean_<factor>" / prefix + "cov_<i>_<j>": term}``: the factor moments."""
        check_instance("prefix", prefix, str)
        return {prefix + name: getattr(term, name)
                for term in self.moment_terms for name in term.outputs}

    def moments_pipeline(self, prefix=DEFAULT_PREFIX):
        """A Pipeline of the factor moments alone, one row a day.

        The factor means and covariances are the same for every asset: as columns of
        the per-asset pipeline they cost K + K(K+1)/2 columns (90 for 12 factors) for
        every asset and session of each chunk (measured on a 126-session chunk of
        2,000 stocks: a 208 MB output frame instead of 35 MB, and 0.7 GB more peak
        memory while it is built). Here they come once a day (the screen keeps one
        asset of the mask). Pair it with ``pipeline_columns(moments=False)``::

            attach_pipeline(Pipeline(risk.pipeline_columns(moments=False), screen=universe), "risk")
            attach_pipeline(risk.moments_pipeline(), "risk_moments")
            ...
            out, moments = pipeline_output("risk"), pipeline_output("risk_moments")
            model = risk.risk_model(out, moments=moments)
            mu_f = risk.expected_factor_returns(moments)

        The factor returns the moments are computed from are computed again for this
        pipeline (zipline shares no terms between pipelines): the market and sector
        means cost one more read of the daily returns per chunk.

        Parameters
        ----------
        prefix : str, default ``"risk:"``
        """
        return Pipeline(self.moment_columns(prefix), screen=_FirstOfMask(mask=self.mask))

    def pipeline_columns(self, prefix=DEFAULT_PREFIX, moments=True, into=None):
        """``{prefix + output: term}`` for every output, for ``Pipeline(columns=...)``.

        The read-backs (:meth:`loadings`, :meth:`risk_model`,
        :meth:`factor_covariance`, :meth:`expected_factor_returns`) find their
        columns by the same prefix. With your own columns, pass them as ``into``
        (a name of yours that is also one of the model's is refused, not silently
        replaced), or merge with the model's columns last::

            columns = risk.pipeline_columns(into={"sector": Sector(), "alpha": my_alpha})
            columns = {**my_columns, **risk.pipeline_columns()}

        Parameters
        ----------
        prefix : str, default ``"risk:"``
            Give each model of a pipeline its own prefix.
        moments : bool, default True
            Include the factor means and covariances (:attr:`moment_terms`).
        into : mapping, optional
            Existing ``{name: term}`` columns; the result is a new dict holding them
            and the model's.

        Returns
        -------
        dict

        Raises
        ------
        ValueError
            If a name of ``into`` is also a name of the model's columns.
        """
        check_instance("prefix", prefix, str)
        columns = {prefix + name: getattr(self, name) for name in self.outputs}
        if moments:
            columns.update(self.moment_columns(prefix))
        if into is None:
            return columns
        clash = [name for name in columns if name in into]
        if clash:
            raise ValueError(
                f"pipeline column {clash[0]!r} is both one of yours and one of the risk "
                f"model's ({len(clash)} such name(s)); rename yours or give the model "
                f"another prefix (pipeline_columns(prefix=...), now {prefix!r})")
        return {**into, **columns}

    # ------------------------------------------------------------------ read back
    @staticmethod
    def _day(frame):
        if isinstance(frame.index, pd.MultiIndex):
            dates = frame.index.get_level_values(0).unique()
            if len(dates) != 1:
                raise ValueError(
                    f"the frame holds {len(dates)} dates; pass one day's output "
                    "(pipeline_output(name), or frame.xs(date))")
            frame = frame.xs(dates[0])
        return frame

    @staticmethod
    def _column(frame, name, prefix):
        col = prefix + name
        if col not in frame.columns:
            raise KeyError(f"column {col!r} is missing from the pipeline output; add the "
                           "columns with FactorRiskModel.pipeline_columns(prefix) and read "
                           f"them back with the same prefix (now {prefix!r})")
        return frame[col]

    def _scalar(self, frame, name, prefix):
        v = self._column(frame, name, prefix).to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if not len(v):
            return np.nan
        if v.min() != v.max():
            raise ValueError(
                f"column {prefix + name!r} should hold the same factor moment in every "
                "row but does not: another pipeline column of that name replaced the "
                "model's (build the columns with pipeline_columns(into=your_columns), "
                "which refuses such a clash)")
        return float(v[0])

    def factor_covariance(self, frame, prefix=DEFAULT_PREFIX):
        """The factor covariance of one day's output (a DataFrame, per-day units)."""
        frame = self._day(frame)
        names = list(self.factors)
        m = len(names)
        cov = np.zeros((m, m))
        for i in range(m):
            for j in range(i, m):
                cov[i, j] = cov[j, i] = self._scalar(frame, f"cov_{i}_{j}", prefix)
        return pd.DataFrame(cov, index=names, columns=names)

    def expected_factor_returns(self, frame, prefix=DEFAULT_PREFIX, include_alpha=False):
        """Trailing mean daily factor returns of one day's output (a Series).

        Parameters
        ----------
        frame : pandas.DataFrame
            One day's pipeline output (``pipeline_output(name)``).
        prefix : str, default ``"risk:"``
            As given to :meth:`pipeline_columns`.
        include_alpha : bool, default False
            Add ``"const": 1.0``, so that a risk model with intercepts counts the
            assets' alphas in the expected return (the research's formulation).
        """
        frame = self._day(frame)
        out = pd.Series([self._scalar(frame, f"mean_{_output_name(n)}", prefix)
                         for n in self.factors], index=list(self.factors), dtype=float)
        if include_alpha:
            if not self.params["add_constant"]:
                raise ValueError("include_alpha needs add_constant=True")
            out = pd.concat([pd.Series({CONSTANT: 1.0}), out])
        return out

    def loadings(self, frame, prefix=DEFAULT_PREFIX, dropna=True):
        """Loadings (assets x factors, with ``"const"`` first when there is an intercept).

        With ``dropna`` (default), assets without a complete estimate are left out.
        """
        frame = self._day(frame)
        cols = {}
        if self.params["add_constant"]:
            cols[CONSTANT] = self._column(frame, "alpha", prefix)
        for name in self.factors:
            cols[name] = self._column(frame, f"loading_{_output_name(name)}", prefix)
        out = pd.DataFrame(cols, index=frame.index)
        if dropna:
            spec = self._column(frame, "specific_variance", prefix)
            keep = np.isfinite(out.to_numpy(dtype=float)).all(axis=1) & np.isfinite(spec.to_numpy())
            out = out[keep]
        return out

    def risk_model(self, frame, prefix=DEFAULT_PREFIX, factor_covariance=None, moments=None):
        """A :class:`~zipline_factorarb.optimize.RiskModel` from one day's output.

        Assets with NaN loadings or specific variance (too short a history) are left
        out. With an intercept the model has a first factor ``"const"`` of zero
        variance whose loadings are the alphas (as ``RiskModel.from_returns``).

        Parameters
        ----------
        frame : pandas.DataFrame
            One day's pipeline output.
        prefix : str, default ``"risk:"``
            As given to :meth:`pipeline_columns`.
        factor_covariance : pandas.DataFrame, optional
            Use this instead of the ``cov_*`` outputs of ``frame``.
        moments : pandas.DataFrame, optional
            One day's output of :meth:`moments_pipeline` (with the same prefix):
            the factor covariance comes from it (for a ``frame`` built with
            ``pipeline_columns(moments=False)``).

        Returns
        -------
        RiskModel
        """
        frame = self._day(frame)
        load = self.loadings(frame, prefix)
        if load.empty:
            raise ValueError(
                "no asset has a complete factor-model estimate on this day (too little "
                "history in the window?): start the backtest later or lower window_length "
                "/ min_observations")
        if factor_covariance is None:
            factor_covariance = self.factor_covariance(frame if moments is None else moments,
                                                       prefix)
        names = list(self.factors)
        # a covariance with missing values (too little factor history in the
        # window) is kept by RiskModel and raised when it is solved, so that
        # order_optimal_portfolio(on_failure="hold") can hold on it
        cov = pd.DataFrame(factor_covariance).reindex(index=names, columns=names)
        spec = self._column(frame, "specific_variance", prefix).reindex(load.index)
        return RiskModel.from_factor_model(
            load.index, names, load[names].to_numpy(dtype=float), cov.to_numpy(dtype=float),
            spec.to_numpy(dtype=float),
            load[CONSTANT].to_numpy(dtype=float) if self.params["add_constant"] else None)


# ----------------------------------------------------------------------------- in an algorithm
#: factor sources understood by :func:`factor_risk_model_for_algorithm`
FACTOR_SOURCES = ("auto", "assets", "market", "market_sector")
#: the most sessions a sampled model reaches back before a chunk's first session
_PERIOD_SESSIONS = {"week_start": 5, "month_start": 23, "quarter_start": 66, "year_start": 253}


def _covers(asset, first_needed, last_needed):
    start = pd.Timestamp(asset.start_date).tz_localize(None).normalize()
    end = pd.Timestamp(asset.end_date).tz_localize(None).normalize()
    return start <= first_needed and end >= last_needed


def factor_risk_model_for_algorithm(factor_source="auto", factor_symbols=(), market_symbols=(),
                                    window_length=252, mask=None, sectors=None, **kwargs):
    """Build a :class:`FactorRiskModel` from symbols, inside a running algorithm.

    Call it from ``initialize``. Symbols are looked up in the algorithm's bundle; a
    factor asset is used only if it has prices from ``window_length + 1`` sessions
    before the simulation's start to its end (a pipeline slice of an asset that does
    not exist fails), and the ones left out are reported.

    Parameters
    ----------
    factor_source : {"auto", "assets", "market", "market_sector"}, default "auto"
        ``"assets"``: the market plus the returns of ``factor_symbols`` (e.g. factor
        ETFs); ``"market"``: the market only; ``"market_sector"``: the market plus
        one factor per GICS sector of the bundle's stocks (the sector's mean return)
        except the most populous one, whose factor would be a combination of the
        others and the market (unless ``sector_codes`` is passed); ``"auto"``:
        ``"assets"`` when at least one factor symbol is usable, else
        ``"market_sector"``.
    factor_symbols : sequence of str
        Factor assets for ``"assets"``.
    market_symbols : sequence of str
        The first one found in the bundle (and alive throughout) is the market
        factor; when none is, the market is the equal-weighted mean return of the
        mask's assets.
    window_length : int, default 252
    mask : Filter, optional
        The universe.
    sectors : Classifier, optional
        For ``"market_sector"``; default ``Sector()``.
    **kwargs
        Passed to :class:`FactorRiskModel` (e.g. ``halflife``, ``excess_of_market``,
        ``frequency``).

    Returns
    -------
    term : FactorRiskModel
    info : dict
        ``source`` (the resolved source), ``market`` (an Asset or ``"equal_weight"``),
        ``factor_assets`` and ``left_out`` (``{symbol: reason}``).
    """
    from zipline.api import symbol  # noqa: PLC0415
    from zipline.errors import SymbolNotFound  # noqa: PLC0415
    from zipline.utils.algo_instance import get_algo_instance  # noqa: PLC0415

    if factor_source not in FACTOR_SOURCES:
        raise ValueError(f"factor_source must be one of {FACTOR_SOURCES}, got {factor_source!r}")
    algo = get_algo_instance()
    if algo is None:
        raise RuntimeError("factor_risk_model_for_algorithm must be called from initialize")
    calendar = algo.trading_calendar
    sessions = calendar.sessions
    start = pd.Timestamp(algo.sim_params.start_session).tz_localize(None).normalize()
    end = pd.Timestamp(algo.sim_params.end_session).tz_localize(None).normalize()
    # a sampled model (frequency) first reaches back to the start of the period
    # holding the backtest's first session
    back = int(window_length) + 1 + _PERIOD_SESSIONS.get(kwargs.get("frequency"), 0)
    pos = max(int(sessions.searchsorted(start)) - back, 0)
    first_needed = pd.Timestamp(sessions[pos]).tz_localize(None).normalize()

    left_out = {}

    def usable(name):
        try:
            asset = symbol(name)
        except SymbolNotFound:
            left_out[name] = "not in this bundle"
            return None
        if not _covers(asset, first_needed, end):
            left_out[name] = (f"prices {pd.Timestamp(asset.start_date).date()}.."
                              f"{pd.Timestamp(asset.end_date).date()} do not cover "
                              f"{first_needed.date()}..{end.date()} (the backtest and its "
                              f"{window_length}-session window)")
            return None
        return asset

    # the first usable market symbol (looked up no further), else the equal-weighted market
    market = next((a for a in map(usable, market_symbols) if a is not None), EQUAL_WEIGHT)
    factor_assets = [a for a in (usable(s) for s in factor_symbols) if a is not None]
    factor_assets = [a for a in factor_assets if isinstance(market, str) or a.sid != market.sid]
    source = factor_source
    if source == "auto":
        source = "assets" if factor_assets else "market_sector"
    if source == "assets" and not factor_assets:
        reasons = "; ".join(f"{k}: {v}" for k, v in left_out.items()) or "none given"
        raise ValueError(
            f"factor_source='assets' but no factor symbol is usable ({reasons}). Give "
            "factor_symbols that the bundle holds over the whole backtest, start the "
            "backtest later, or use factor_source='market_sector'")
    if source != "assets":
        factor_assets = []
    if source == "market_sector" and sectors is None:
        from .classifiers import Sector  # noqa: PLC0415

        sectors = Sector()
        if "sector_codes" not in kwargs:
            kwargs["sector_codes"] = _sector_factor_codes(algo.asset_finder)
    term = FactorRiskModel(
        factor_assets=factor_assets,
        market=market,
        sectors=sectors if source == "market_sector" else None,
        window_length=window_length,
        mask=mask,
        **kwargs,
    )
    info = {"source": source, "market": market, "factor_assets": factor_assets,
            "left_out": left_out, "sector_codes": kwargs.get("sector_codes")}
    return term, info


def _sector_factor_codes(finder):
    """The sectors of the bundle's stocks, less the most populous one.

    The sector factors are sector means in excess of the market; with the
    equal-weighted market of the same stocks their size-weighted sum is exactly
    zero, and even against an index nearly so. Regressions on all of them have
    no unique loadings, and the shrunk factor covariance then puts variance on
    the arbitrary part (ex-ante risks of 20-100% for a book whose realised
    volatility was 5%, on the 505 stocks). Leaving out the largest sector, as
    the WLS regression leaves out its reference sector, removes the dependence.
    """
    from ..data.sectors import ASSET_TYPE_CODES  # noqa: PLC0415
    from .classifiers import _encode_asset_type, _encode_sector, supplementary_codes  # noqa: PLC0415

    sectors = supplementary_codes(finder, "sector", _encode_sector)
    types = supplementary_codes(finder, "asset_type", _encode_asset_type)
    n = min(len(sectors), len(types))
    stock = (types[:n] == ASSET_TYPE_CODES["stock"]) & (sectors[:n] >= 0)
    codes, counts = np.unique(sectors[:n][stock], return_counts=True)
    if len(codes) < 2:
        return tuple(int(c) for c in codes)
    reference = codes[np.argmax(counts)]
    return tuple(int(c) for c in codes if c != reference)
