r"""Pipeline factor: cross-sectional weighted least squares residuals.

:class:`WLSResidual` adapts the kernel
:func:`zipline_factorarb.kernels.wls_window.wls_window` to zipline's Pipeline
in the pattern of zipline's ``SimpleBeta``: arguments are checked in
``__new__`` (:mod:`zipline_factorarb.checks` and
:class:`~zipline_factorarb.kernels.wls_window.WLSSettings`), inputs are wired
there, and ``compute`` hands each session's window to one kernel call.
``wls_window``, ``WLSSettings``, ``WLSWindowResult`` and
``factor_neutrality`` are re-exported here.

Each session ``D`` the cross-section of the latest one-day returns ``R``
(close of ``D - 2`` to close of ``D - 1``, adjusted) is regressed on factor
loadings ``Omega`` (intercept, GICS sector dummies, standardised styles,
principal components ``pc1`` .. ``pcK``) with weights ``Z``, as the
formulas of :mod:`zipline_factorarb.kernels.wls` say; the weighted residuals
``Z eps`` are orthogonal to every factor, so a book sized by their negative
is neutral to all of them. Loadings are ``(N, K)`` and ``ridge`` is
scale-free (see ``docs/glossary.md``). The weights, styles and components use
only the rows of the window *before* the regressed return.

The four variants of the strategy are parameter choices:

=================  ==========================================================
industry-only      ``WLSResidual()`` (intercept + sector dummies)
multi-factor       ``WLSResidual(styles=("beta", "momentum", "reversal",
                   "volatility"))``
PCA-based          ``WLSResidual(sector=None, components=5)``
equal-weighted     ``WLSResidual(equal_weights=True)``
=================  ==========================================================

The references (Avellaneda & Lee 2010, Hoerl & Kennard 1970, Connor &
Korajczyk 1988) are listed in :mod:`zipline_factorarb.kernels.wls` and
:mod:`zipline_factorarb.kernels.pca`.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pandas as pd
from zipline.pipeline import CustomFactor
from zipline.pipeline.data import EquityPricing
from zipline.pipeline.factors import Returns
from zipline.pipeline.filters import SingleAsset
from zipline.pipeline.sentinels import NotSpecified
from zipline.pipeline.term import AssetExists
from zipline.utils.numpy_utils import float64_dtype

from ..checks import (
    check_asset,
    check_bool,
    check_classifier,
    check_filter,
    check_int,
    check_number,
)
from ..kernels.wls import STYLE_NAMES, standardize_styles, style_factors
from ..kernels.wls_window import (
    WLSSettings,
    WLSWindowResult,
    factor_neutrality,
    solve_wls_window,
    wls_window,
)
from ._threads import one_blas_thread

__all__ = [
    "PIPELINE_PREFIX",
    "ConditionLog",
    "StyleLoading",
    "WLSResidual",
    "WLSSettings",
    "WLSWindowResult",
    "factor_neutrality",
    "wls_window",
]

log = logging.getLogger(__name__)

#: Condition number above which a day is reported (the usual rule of thumb).
CONDITION_WARNING = 1000.0

#: Default prefix of :meth:`WLSResidual.pipeline_columns` (a ``:`` keeps it apart from
#: the identifier-like names users give their own columns).
PIPELINE_PREFIX = "wls:"


# --------------------------------------------------------------------------
# rate-limited condition warnings
# --------------------------------------------------------------------------


class ConditionLog:
    """Count ill-conditioned days and warn about them without flooding the log.

    A day whose condition number exceeds ``threshold`` (or is infinite) is
    counted once, however often it is recomputed (pipeline chunks overlap).
    The first such day is logged as a warning, then one summary warning
    after every further ``every`` ill-conditioned days, with the counts and
    the worst day so far; :meth:`summary` gives the same numbers at any time.
    """

    def __init__(self, name, threshold=CONDITION_WARNING, every=250, logger=None):
        self.name = name
        self.threshold = threshold
        self.every = every
        self.logger = logger or log
        self._days = set()
        self._ill = {}
        self._lock = threading.Lock()

    def __getstate__(self):  # the lock does not pickle (e.g. for a process pool)
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def observe(self, date, condition_number):
        """Record one session's condition number (warns as described above)."""
        with self._lock:
            if date in self._days:
                return
            self._days.add(date)
            if not condition_number > self.threshold:
                return
            self._ill[date] = condition_number
            count = len(self._ill)
            if count != 1 and count % self.every:
                return
            worst = max(self._ill, key=self._ill.get)
            message = (
                "%s: condition number %.3g above %g on %s (%d of %d sessions so far; "
                "worst %.3g on %s)%s"
            )
            tail = (
                "; check for near-collinear loadings (tiny sectors, correlated styles) "
                "or raise ridge" if count == 1 else ""
            )
            self.logger.warning(message, self.name, condition_number, self.threshold,
                                _day(date), count, len(self._days), self._ill[worst],
                                _day(worst), tail)

    def summary(self):
        """``{'sessions', 'ill_conditioned', 'worst', 'worst_date'}`` so far."""
        with self._lock:
            worst = max(self._ill, key=self._ill.get) if self._ill else None
            return {
                "sessions": len(self._days),
                "ill_conditioned": len(self._ill),
                "worst": None if worst is None else self._ill[worst],
                "worst_date": worst,
            }


def _day(date):
    try:
        return date.date().isoformat()
    except AttributeError:
        return str(date)


# --------------------------------------------------------------------------
# the pipeline factors
# --------------------------------------------------------------------------


def _returns_input(mask_asset):
    """``Returns(window_length=2)``, computed for ``mask_asset`` too."""
    if mask_asset is None:
        return Returns(window_length=2)
    return Returns(window_length=2, mask=AssetExists() | SingleAsset(asset=mask_asset))


def _check_style_inputs(style_inputs, what="style_inputs"):
    """``{name: Factor}`` of ``WLSResidual(style_inputs=...)`` (or of ``what``), checked."""
    from zipline.pipeline import Factor

    if style_inputs is None:
        return {}
    if not hasattr(style_inputs, "items"):
        raise TypeError(
            f"{what} must be a mapping of style name to pipeline Factor, e.g. "
            f"{{'size': Fundamentals.market_cap}}; got {type(style_inputs).__name__}")
    checked = {}
    for name, term in style_inputs.items():
        if not isinstance(name, str):
            raise TypeError(f"{what}: a style name must be a string; got {name!r}")
        if not name.isidentifier():
            raise ValueError(
                f"{what}: a style needs a name that is a Python identifier (it names "
                f"pipeline outputs); got {name!r}")
        if not isinstance(term, Factor):
            raise TypeError(
                f"{what}[{name!r}] must be a pipeline Factor (e.g. "
                f"Fundamentals.market_cap); got {type(term).__name__} {term!r}")
        if term.dtype != float64_dtype:
            raise TypeError(
                f"{what}[{name!r}] must be a float64 Factor; {term!r} has dtype "
                f"{term.dtype}; convert it (e.g. with .astype or a CustomFactor)")
        if not term.window_safe:
            raise ValueError(
                f"{what}[{name!r}]: {term!r} is not window-safe (e.g. a price, "
                "whose past rows need adjusting), so it cannot be a window input; give a "
                "window-safe factor such as a Fundamentals column")
        checked[name] = term
    return checked


def _output_names(settings):
    """The factor's outputs for these settings, in order."""
    outputs = ["weighted_residual", "residual", "weight", "condition_number", "n_assets",
               "neutrality"]
    if settings.sector:
        outputs += ["sector_return", "sector_code"]
        if settings.intercept:
            outputs.append("reference_sector")
    for label in settings.factor_labels:
        if label != "intercept":
            outputs.append(f"loading_{label}")
        outputs.append(f"factor_return_{label}")
    return tuple(outputs)


def _write_outputs(out, result, settings):
    """Copy a :class:`WLSWindowResult` into the factor's output fields."""
    r = result
    values = {"weighted_residual": r.weighted_residuals, "residual": r.residuals,
              "weight": r.weights, "condition_number": r.condition_number,
              "n_assets": r.n_assets, "neutrality": r.neutrality,
              "sector_return": r.sector_returns, "sector_code": r.sector_codes,
              "reference_sector": r.reference_sector}
    offset = len(r.labels) - len(settings.factor_labels)
    for j, label in enumerate(settings.factor_labels):
        values[f"loading_{label}"] = r.loadings[:, offset + j]
        values[f"factor_return_{label}"] = r.factor_returns[offset + j]
    for name in out.dtype.names:  # structured-array field views (recarray attributes are slow)
        np.ndarray.__getitem__(out, name)[:] = values[name]


class WLSResidual(CustomFactor):
    r"""Weighted least squares residuals of daily returns on factor loadings.

    Each session, the latest one-day returns of the assets in ``mask`` are
    regressed cross-sectionally on ``Omega`` = [intercept, sector dummies,
    standardised styles, principal components] with weights
    :math:`z_i = 1/\sigma_i^2` (capped) or 1 (formulas in
    :mod:`zipline_factorarb.kernels.wls`, each step in :func:`wls_window`). The signal is the
    ``weighted_residual`` output :math:`\tilde R = Z\varepsilon`: short the
    largest, buy the smallest.

    Every parameter but ``sector`` is keyword-only. The regression options
    (from ``styles`` to ``max_condition``) are the fields of
    :class:`~zipline_factorarb.kernels.wls_window.WLSSettings`, which checks
    them; an unknown keyword raises ``TypeError``.

    Parameters
    ----------
    sector : zipline.pipeline.Classifier or None, optional
        Integer sector classifier (default
        :class:`~zipline_factorarb.pipeline.classifiers.Sector`, GICS codes;
        negative = unknown, left out). ``None``: no sector dummies.
    styles : sequence of str, default ()
        Style columns from :data:`~zipline_factorarb.kernels.wls.STYLE_NAMES`:
        ``beta`` (to ``market``, default the equal-weighted mean return of
        the mask), ``size`` (log mean dollar volume; meaningless on bundles
        with a stand-in volume such as the sample), ``momentum`` (12-1),
        ``reversal`` and ``volatility``; or the name of a style given in
        ``style_inputs``.
    style_inputs : mapping of str to zipline.pipeline.Factor, optional
        Styles from any float64, window-safe pipeline factor, e.g.
        ``{"size": Fundamentals.market_cap, "value":
        Fundamentals.book_to_market}``; every name must also be in
        ``styles`` (which sets the column order). The raw style is the
        factor's value of the *previous* session (known before the regressed
        return, like the other styles' history rows): for ``size`` its
        natural log (it replaces the dollar-volume ``size``; non-positive
        values count as missing), for any other name the value as given
        (:func:`~zipline_factorarb.kernels.wls_window.given_style_values`).
        It is then standardised like every style (equal-weighted z-score
        over the day's candidates, winsorised at ``winsor``). An asset whose
        value is missing (NaN) is left out of that day's regression, as with
        the built-in styles. A given style needs one history row.
    components : int, default 0
        Number of principal components of the trailing correlation matrix
        added as loadings, labelled ``pc1`` .. ``pcK`` (PCA variant:
        ``sector=None, components=5``). ``pca_components`` is its former
        name (deprecated).
    pca_window : int, default 252
        Rows of returns the components are fitted on.
    equal_weights : bool, default False
        ``z_i = 1`` for every asset (equal-weighted variant).
    volatility_lookback : int, default 60
        Rows of returns for :math:`\sigma_i` (the seed suggests 20-60).
    volatility_halflife : float, optional
        Exponentially weighted :math:`\sigma_i` with this half-life (in
        sessions) over the ``volatility_lookback`` rows.
    cap_quantile : float or None, default 0.95
        Cap the weights at this cross-sectional quantile of :math:`z`.
    ridge : float, default 0.0
        Scale-free ridge penalty: :math:`\lambda = \text{ridge} \cdot
        \text{tr}(\Omega^\top Z\Omega)/K` on every column but the intercept
        (Hoerl & Kennard 1970). With a ridge the neutrality is no longer
        exact.
    intercept : bool, default True
        Include the intercept (market) column; with sectors one sector is
        then the reference.
    winsor : float or None, default 3.0
        Winsorise the standardised styles at this many standard deviations.
    beta_window, momentum_window, momentum_skip : int
        Style windows in sessions (252, 252, 21).
    reversal_window, volatility_window, size_window : int
        Style windows in sessions (21, 63, 63).
    market : zipline.assets.Asset, optional
        Asset whose returns are the market for ``beta`` (wired as
        ``returns[market]``, as ``SimpleBeta`` does).
    max_condition : float, default 1e10
        Days whose condition number exceeds this are not solved (NaN).
    condition_warning : float or None, default 1000
        Log a warning when a day's condition number exceeds this (the first
        such day, then a summary every ``condition_warning_every`` such
        days); None: never. Counts: :meth:`condition_summary`.
    condition_warning_every : int, default 250
    window_length : int, optional
        Default: one more than the longest window the options need. A longer
        window is allowed (only its last rows are used).
    mask : zipline.pipeline.Filter, optional
        The cross-section (e.g. ``IsStock()``); assets outside it are not in
        the regression and get NaN.

    Outputs
    -------
    weighted_residual
        :math:`\tilde R_i = z_i \varepsilon_i` (the signal).
    residual
        :math:`\varepsilon_i`.
    weight
        :math:`z_i` of the assets in the regression.
    condition_number, n_assets, neutrality
        Per-session diagnostics, the same value for every asset of the mask:
        condition number of the unit-diagonal-scaled
        :math:`\Omega^\top Z\Omega`, number of assets in the regression, and
        the largest cosine between :math:`\tilde R` and a factor column
        (:func:`factor_neutrality`; about 1e-16 without a ridge).
    sector_return
        With a sector classifier: the factor return of the asset's sector
        (the intercept's plus its sector dummy's; the reference sector has
        only the intercept).
    sector_code
        With a sector classifier: the asset's sector code, for the assets in
        the regression (NaN for the others).
    reference_sector
        With a sector classifier and the intercept: the code of the sector
        without a dummy column that day (the largest), the same value for
        every asset.
    factor_return_intercept
        Without sectors: the intercept's factor return (market).
    loading_<style>, factor_return_<style>
        Each style's standardised exposure and factor return.
    loading_pc<j>, factor_return_pc<j>
        Each principal component's loading and factor return.

    Read-backs
    ----------
    :meth:`pipeline_columns` gives every output as pipeline columns (names
    prefixed with ``"wls:"`` by default); on one day's output,
    :meth:`loadings` returns the regression's loadings :math:`\Omega`
    (assets x factors: ``intercept``, ``sector_<code>``, styles, ``pc<j>``)
    and :meth:`factor_returns` its factor returns :math:`f`::

        wls = WLSResidual(styles=("beta", "momentum"), mask=IsStock())
        attach_pipeline(Pipeline(wls.pipeline_columns(), screen=IsStock()), "wls")
        ...
        out = pipeline_output("wls")
        loadings = wls.loadings(out)                  # DataFrame, assets x factors
        alphas = -out["wls:weighted_residual"].reindex(loadings.index)
        FactorExposure(loadings, 0, 0)                # neutral to every factor

    Notes
    -----
    A session's values are a pure function of its window, so they do not
    depend on the backtest start or the pipeline's chunking. The package's
    ``Sector()`` (a static per-asset lookup) is read for the session's
    assets inside ``compute``; any other classifier is an ordinary window
    input. Outputs are NaN on days that cannot be solved (fewer assets than
    factors, condition number above ``max_condition``). Use the outputs like any factor:
    ``wls.weighted_residual.rank(mask=...)``, ``.zscore()``,
    ``.demean(groupby=Sector())``.
    """

    dtype = float64_dtype
    window_safe = True
    params = ("wls_settings", "condition_warning", "condition_warning_every", "static_sector")

    def __new__(cls, sector=NotSpecified, *, market=None, style_inputs=None,
                condition_warning=CONDITION_WARNING, condition_warning_every=250,
                window_length=None, mask=None, **options):
        from .classifiers import Sector

        sector = check_classifier("sector", Sector() if sector is NotSpecified else sector)
        market = check_asset("market", market)
        if "given_styles" in options:
            raise TypeError("WLSResidual got unexpected keyword argument(s) ['given_styles']; "
                            "give the styles' factors as style_inputs={name: factor}")
        style_inputs = _check_style_inputs(style_inputs)
        settings = WLSSettings.from_options(
            dict(options, sector=sector is not None, market=market is not None,
                 given_styles=tuple(style_inputs)), "WLSResidual")
        if "beta" not in settings.styles and market is not None:
            raise ValueError("market is only used by the 'beta' style; add it to styles")
        needed = settings.history_length + 1
        window_length = check_int("window_length", needed if window_length is None
                                  else window_length, 1)
        if window_length < needed:
            raise ValueError(
                f"window_length={window_length} is too short for these options: they "
                f"need {needed} rows of returns ({needed - 1} of history plus the "
                "regressed day)")
        # The package's Sector() is a static per-asset lookup: it is read for
        # the session's assets in compute instead of as a window input (which
        # would load and copy W rows of it every session).
        static_sector = sector if isinstance(sector, Sector) else None
        returns = _returns_input(market)
        inputs = [returns] + ([sector] if sector is not None and static_sector is None else [])
        if "size" in settings.builtin_styles:
            inputs += [EquityPricing.close, EquityPricing.volume]
        if market is not None:
            inputs.append(returns[market])
        inputs += [style_inputs[name] for name in settings.given_styles]
        condition_warning = check_number("condition_warning", condition_warning, 1,
                                         allow_none=True)
        condition_warning_every = check_int("condition_warning_every", condition_warning_every, 1)
        term = super().__new__(
            cls, inputs=inputs, outputs=_output_names(settings), window_length=window_length,
            mask=check_filter("mask", mask), wls_settings=settings,
            condition_warning=condition_warning, condition_warning_every=condition_warning_every,
            static_sector=static_sector,
        )
        if getattr(term, "_condition_log", None) is None:
            term._condition_log = ConditionLog(repr(term), threshold=condition_warning,
                                               every=condition_warning_every)
        return term

    def compute(self, today, assets, out, returns, *extra, wls_settings, condition_warning,
                condition_warning_every, static_sector):
        s = wls_settings
        W = s.history_length + 1
        extra = [x[-W:] for x in extra]
        codes = None
        if static_sector is not None:
            codes = np.empty(len(assets), dtype=np.int64)
            static_sector.compute(today, assets, codes, None, **static_sector.params)
        elif s.sector:
            codes = extra.pop(0)[-1]
        dollar_volume = extra.pop(0) * extra.pop(0) if "size" in s.builtin_styles else None
        market = extra.pop(0)[:, 0] if s.market else None
        # a given style's value of the previous session (row -2): known before
        # the regressed return, as the built-in styles' history rows are
        given = np.column_stack([x[-2] for x in extra]) if s.given_styles else None
        with one_blas_thread():
            result = solve_wls_window(returns[-W:], codes, dollar_volume, market, s, given)
        _write_outputs(out, result, s)
        if condition_warning is not None:
            # a day without any asset (windows not yet full) is not ill-conditioned
            self._condition_log.observe(
                today, result.condition_number if result.n_assets else np.nan)

    # -- conveniences ------------------------------------------------------

    @property
    def settings(self):
        """The :class:`WLSSettings` of this factor."""
        return self.params["wls_settings"]

    @property
    def factor_names(self):
        """Factors whose return :meth:`factor_return` gives (``'sector'`` included)."""
        names = ("sector",) if self.settings.sector else ()
        return names + self.settings.factor_labels

    def factor_return(self, name):
        """The factor return of ``name`` as a pipeline factor.

        ``'sector'`` gives each asset its own sector's factor return; a style
        or ``pc<j>`` (or ``'intercept'`` without sectors) gives that factor's
        return, the same value for every asset of the session.
        """
        if name == "sector" and self.settings.sector:
            return self.sector_return
        if name in self.settings.factor_labels:
            return getattr(self, f"factor_return_{name}")
        raise ValueError(f"no factor {name!r} in this regression; choose from {self.factor_names}")

    def loading(self, name):
        """The (standardised) exposure to a style or ``pc<j>`` as a pipeline factor."""
        if name in self.settings.factor_labels and name != "intercept":
            return getattr(self, f"loading_{name}")
        choices = tuple(x for x in self.settings.factor_labels if x != "intercept")
        raise ValueError(f"no loading {name!r} in this regression; choose from {choices}")

    # -- read-backs of one day's pipeline output -----------------------------

    def pipeline_columns(self, prefix=PIPELINE_PREFIX):
        """``{prefix + output: term}`` for every output, for ``Pipeline(columns=...)``.

        The read-backs (:meth:`loadings`, :meth:`factor_returns`) find their
        columns by the same prefix. Give each factor of a pipeline its own
        prefix (``"wls_multi:"``, ...).

        Parameters
        ----------
        prefix : str, default ``"wls:"``
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string; got {prefix!r}")
        return {prefix + name: getattr(self, name) for name in self.outputs}

    def _one_day(self, frame, method):
        """One day's rows (asset index) and its date (None when unknown)."""
        from ..optimize._base import current_session

        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"WLSResidual.{method} needs one day's pipeline output (a "
                            f"DataFrame); got {type(frame).__name__}")
        date = None
        if isinstance(frame.index, pd.MultiIndex):
            dates = frame.index.get_level_values(0).unique()
            if len(dates) > 1:
                raise ValueError(
                    f"WLSResidual.{method}: the frame holds {len(dates)} dates; pass one "
                    "day's output (pipeline_output(name), or frame.xs(date))")
            if len(dates) == 1:
                date = dates[0]
                frame = frame.xs(date)
        return frame, (date if date is not None else current_session())

    def _values(self, frame, name, prefix, method):
        column = prefix + name
        if column not in frame.columns:
            raise KeyError(
                f"WLSResidual.{method}: column {column!r} is missing from the pipeline "
                f"output; add the columns with {self!r}.pipeline_columns(prefix={prefix!r}) "
                "and read them back with the same prefix")
        return frame[column].to_numpy(dtype=np.float64)

    @staticmethod
    def _first(values):
        finite = values[np.isfinite(values)]
        return float(finite[0]) if finite.size else np.nan

    def _in_regression(self, frame, prefix, method):
        """One day's rows, its date and its assets in the regression (finite ``weight``).

        A clear error when no asset is in the regression.
        """
        from ..optimize._base import empty_input_error

        frame, date = self._one_day(frame, method)
        field = f"the pipeline output read by WLSResidual.{method}"
        needs = (f"This factor needs window_length={self.window_length} sessions of "
                 "returns before its first value.")
        weight = self._values(frame, "weight", prefix, method)
        if not len(frame):
            raise empty_input_error(field, "has no rows", date, detail=needs)
        inside = np.isfinite(weight)
        if inside.any():
            return frame, date, inside
        condition = self._first(self._values(frame, "condition_number", prefix, method))
        n_assets = self._first(self._values(frame, "n_assets", prefix, method))
        max_condition = self.settings.max_condition
        on = "" if date is None else f" on {_day(date)}"
        if n_assets > 0 and np.isfinite(condition) and condition > max_condition:
            raise ValueError(
                f"{field}: the regression was not solved{on}: its condition number "
                f"{condition:.3g} is above max_condition={max_condition:g} (near-collinear "
                "loadings: tiny sectors, correlated styles); raise ridge or max_condition, "
                "or drop a style")
        if n_assets > 0:
            raise ValueError(
                f"{field}: the regression was not solved{on}: {int(n_assets)} assets had "
                "loadings, fewer than its loadings columns or with a singular "
                "Omega' Z Omega; widen the mask or drop factors")
        raise empty_input_error(
            field, "has no asset in the regression", date,
            note=f"the weight of each of its {len(frame)} rows is NaN", detail=needs)

    def _sectors(self, frame, inside, prefix, method):
        """The codes of the assets in the regression, the codes present and the reference.

        The reference sector (without a dummy column) is NaN without the intercept.
        """
        codes = np.where(inside, self._values(frame, "sector_code", prefix, method), np.nan)
        reference = np.nan
        if self.settings.intercept:
            reference = self._first(self._values(frame, "reference_sector", prefix, method))
        return codes, np.unique(codes[np.isfinite(codes)]), reference

    def loadings(self, frame, prefix=PIPELINE_PREFIX, dropna=True):
        r"""The day's regression loadings :math:`\Omega` (assets x factors).

        One column per column of the regression, named as in
        :attr:`WLSWindowResult.labels`: ``intercept`` (1), ``sector_<code>``
        (0/1 dummies of the sectors present that day, all but the reference
        sector with the intercept), each style (standardised) and ``pc<j>``.
        These are the loadings the regression used, so a book ``w`` with
        ``loadings.T @ w == 0`` (``FactorExposure(loadings, 0, 0)``) has no
        exposure to any factor of the regression.

        Parameters
        ----------
        frame : pandas.DataFrame
            One day's output of a pipeline holding
            :meth:`pipeline_columns` (``pipeline_output(name)``, or one date
            of ``run_pipeline``'s frame).
        prefix : str, default ``"wls:"``
            As given to :meth:`pipeline_columns`.
        dropna : bool, default True
            Keep only the assets in the day's regression (the others have
            NaN rows).

        Returns
        -------
        pandas.DataFrame
            Indexed by asset, float columns.

        Raises
        ------
        ValueError
            The day has no rows or no asset in the regression (windows not
            yet full, or the day was not solved); the message says which.
        """
        frame, _, inside = self._in_regression(frame, prefix, "loadings")
        s = self.settings
        columns = {}
        if s.intercept:
            columns["intercept"] = np.where(inside, 1.0, np.nan)
        if s.sector:
            codes, present, reference = self._sectors(frame, inside, prefix, "loadings")
            for code in present[present != reference]:
                columns[f"sector_{int(code)}"] = np.where(inside, (codes == code) * 1.0, np.nan)
        for label in s.factor_labels:
            if label != "intercept":
                columns[label] = np.where(
                    inside, self._values(frame, f"loading_{label}", prefix, "loadings"), np.nan)
        out = pd.DataFrame(columns, index=frame.index, dtype=np.float64)
        if dropna:
            out = out[np.isfinite(out.to_numpy()).all(axis=1)]
        return out

    def factor_returns(self, frame, prefix=PIPELINE_PREFIX):
        """The day's estimated factor returns :math:`f` (a Series by factor).

        Indexed like the columns of :meth:`loadings`, so that
        ``loadings @ factor_returns`` is each asset's fitted return and
        ``R = loadings @ f + residual``. With sectors and the intercept,
        ``intercept`` is the reference sector's return and ``sector_<code>``
        the spread of that sector over it (from the ``sector_return``
        output); NaN where the day's output lacks the reference sector's
        assets (a screen that removed them).

        Parameters
        ----------
        frame : pandas.DataFrame
            One day's pipeline output (see :meth:`loadings`).
        prefix : str, default ``"wls:"``
        """
        frame, date, inside = self._in_regression(frame, prefix, "factor_returns")
        s = self.settings
        f = {}
        if s.sector:
            codes, present, reference = self._sectors(frame, inside, prefix, "factor_returns")
            level = self._values(frame, "sector_return", prefix, "factor_returns")
            by_code = {code: self._first(level[codes == code]) for code in present}
            if s.intercept:
                base = by_code.get(reference, np.nan)
                f["intercept"] = base
                for code, value in by_code.items():
                    if code != reference:
                        f[f"sector_{int(code)}"] = value - base
            else:
                f.update({f"sector_{int(code)}": value for code, value in by_code.items()})
        for label in s.factor_labels:
            f[label] = self._first(
                self._values(frame, f"factor_return_{label}", prefix, "factor_returns"))
        return pd.Series(f, dtype=np.float64, name=date)

    def condition_summary(self):
        """Sessions seen and ill-conditioned so far (see :class:`ConditionLog`)."""
        return self._condition_log.summary()

    def __repr__(self):
        s = self.settings
        parts = []
        if s.sector:
            parts.append("sector")
        if s.styles:
            parts.append("styles=" + "/".join(s.styles))
        if s.components:
            parts.append(f"pca={s.components}")
        parts.append("equal_weights" if s.equal_weights else f"vol={s.volatility_lookback}")
        if s.ridge:
            parts.append(f"ridge={s.ridge:g}")
        return f"{type(self).__name__}({', '.join(parts)}, window_length={self.window_length})"

    def graph_repr(self):
        return repr(self)


class StyleLoading(CustomFactor):
    r"""One style exposure per asset from its trailing daily returns.

    A building block (and a diagnostic for books whose regression does not
    include the style): :func:`~zipline_factorarb.kernels.wls.style_factors`
    over the window, optionally standardised across the mask
    (:func:`~zipline_factorarb.kernels.wls.standardize_styles`). With
    ``style='beta'`` and ``standardize=False`` this is each asset's market
    beta, :math:`\text{cov}(r_i, m)/\text{var}(m)`, so ``sum_i w_i beta_i``
    is a book's beta.

    Parameters
    ----------
    style : str
        One of :data:`~zipline_factorarb.kernels.wls.STYLE_NAMES`.
    standardize : bool, default False
        Cross-sectional z-score, winsorised at ``winsor``.
    winsor : float or None, default 3.0
    market : zipline.assets.Asset, optional
        Market for ``beta`` (default: equal-weighted mean of the mask).
    window_length : int, optional
        Rows of returns (default: the style's usual window: 252 for beta and
        momentum, 21 reversal, 63 volatility and size).
    momentum_skip : int, default 21
    mask : zipline.pipeline.Filter, optional
    """

    dtype = float64_dtype
    window_safe = True
    params = ("style", "standardize", "winsor", "market_given", "momentum_skip")

    def __new__(cls, style, standardize=False, winsor=3.0, market=None, window_length=None,
                momentum_skip=21, mask=None):
        if style not in STYLE_NAMES:
            raise ValueError(f"unknown style {style!r}; choose from {STYLE_NAMES}")
        standardize = check_bool("standardize", standardize)
        winsor = check_number("winsor", winsor, 1, low_open=True, allow_none=True)
        market = check_asset("market", market)
        if market is not None and style != "beta":
            raise ValueError("market is only used by style 'beta'")
        mask = check_filter("mask", mask)
        if window_length is None:  # the style's window in WLSResidual's defaults
            window_length = getattr(WLSSettings, f"{style}_window")
        window_length = check_int("window_length", window_length, 2)
        momentum_skip = check_int("momentum_skip", momentum_skip, 0)
        if style == "momentum" and momentum_skip >= window_length:
            raise ValueError(
                f"momentum_skip ({momentum_skip}) must be smaller than window_length "
                f"({window_length})"
            )
        returns = _returns_input(market)
        inputs = [returns]
        if style == "size":
            inputs += [EquityPricing.close, EquityPricing.volume]
        if market is not None:
            inputs.append(returns[market])
        return super().__new__(
            cls, inputs=inputs, window_length=window_length, mask=mask, style=style,
            standardize=standardize, winsor=winsor, market_given=market is not None,
            momentum_skip=momentum_skip,
        )

    def compute(self, today, assets, out, returns, *extra, style, standardize, winsor,
                market_given, momentum_skip):
        extra = list(extra)
        dollar_volume = None
        if style == "size":
            close, volume = extra.pop(0), extra.pop(0)
            dollar_volume = close * volume
        market = extra.pop(0)[:, 0] if market_given else None
        W = returns.shape[0]
        raw = style_factors(
            returns, market_returns=market, dollar_volume=dollar_volume, styles=(style,),
            beta_window=W, momentum_window=W, momentum_skip=momentum_skip,
            reversal_window=W, volatility_window=W,
        ).styles
        out[:] = standardize_styles(raw, winsor=winsor)[:, 0] if standardize else raw[:, 0]
