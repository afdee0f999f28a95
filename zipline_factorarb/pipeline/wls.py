r"""Pipeline factor: cross-sectional weighted least squares residuals.

:class:`WLSResidual` adapts the kernel
:func:`zipline_factorarb.kernels.wls.wls_residuals` to zipline's Pipeline in
the pattern of zipline's ``SimpleBeta``: arguments are validated in
``__new__`` (errors at construction, not mid-backtest), inputs are wired
there (daily returns, the sector classifier, prices and volumes for the size
style, a ``returns[asset]`` slice for the market), and ``compute`` hands
each session's window to the module-level function :func:`wls_window`, which
is tested without an engine.

Each session ``D`` the cross-section of the latest one-day returns ``R``
(close of ``D - 2`` to close of ``D - 1``, adjusted) is regressed on factor
loadings ``Omega`` with the diagonal weight matrix ``Z`` (weighted regression
mean reversion; residual returns as in Avellaneda & Lee 2010):

.. math::

    f = (\Omega^\top Z \Omega)^{-1} \Omega^\top Z R, \qquad
    \varepsilon = R - \Omega f, \qquad \tilde R = Z \varepsilon,

with :math:`z_i = 1/\sigma_i^2` (capped at a cross-sectional quantile) or
:math:`z_i = 1`. The weighted residuals are orthogonal to every factor,
:math:`\sum_i \tilde R_i \Omega_{iA} = 0`, so a book sized by
:math:`-\tilde R` is neutral to all of them; the strategy shorts large
positive :math:`\tilde R` and buys large negative ones.

``Omega`` is built from, in this order: an intercept, GICS sector dummies
(one sector is the reference), standardised style exposures (beta, size,
momentum, reversal, volatility) and the top ``k`` principal components of
the trailing returns. The weights, styles and components use only the rows
of the window *before* the regressed return, so none of them contains it.

The four variants of the strategy are parameter choices:

=================  ==========================================================
industry-only      ``WLSResidual()`` (intercept + sector dummies)
multi-factor       ``WLSResidual(styles=("beta", "momentum", "reversal",
                   "volatility"))``
PCA-based          ``WLSResidual(sector=None, pca_components=5)``
equal-weighted     ``WLSResidual(equal_weights=True)``
=================  ==========================================================

References
----------
.. [1] Avellaneda, M. and Lee, J.-H. (2010). Statistical arbitrage in the US
   equities market. Quantitative Finance, 10(7), 761-782.
.. [2] Connor, G. and Korajczyk, R. A. (1988). Risk and return in an
   equilibrium APT. Journal of Financial Economics, 21(2), 255-289.
.. [3] Hoerl, A. E. and Kennard, R. W. (1970). Ridge regression: biased
   estimation for nonorthogonal problems. Technometrics, 12(1), 55-67.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import threading
from typing import NamedTuple

import numpy as np
import pandas as pd
from zipline.assets import Asset
from zipline.pipeline import CustomFactor
from zipline.pipeline.classifiers import Classifier
from zipline.pipeline.data import EquityPricing
from zipline.pipeline.factors import Returns
from zipline.pipeline.filters import Filter, SingleAsset
from zipline.pipeline.sentinels import NotSpecified
from zipline.pipeline.term import AssetExists
from zipline.utils.numpy_utils import float64_dtype

from ..kernels.pca import pca_loadings
from ..kernels.wls import (
    STYLE_NAMES,
    inverse_variance_weights,
    sector_loadings,
    standardize_styles,
    style_factors,
    wls_residuals,
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
# settings and validation
# --------------------------------------------------------------------------


def _check_int(name, value, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def _check_number(name, value, low=None, high=None, low_open=True, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value > high
    if bad:
        lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
        hi = "" if high is None else f"<= {high}"
        bounds = " and ".join(s for s in (lo, hi) if s)
        raise ValueError(f"{name} must be a finite number {bounds}; got {value!r}")
    return value


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


@dataclasses.dataclass(frozen=True)
class WLSSettings:
    """Validated options of :class:`WLSResidual` and :func:`wls_window`.

    Frozen and hashable, so that it can be a pipeline parameter (two factors
    with equal settings and inputs are the same term). See
    :class:`WLSResidual` for the meaning of each field.
    """

    sector: bool = True
    intercept: bool = True
    styles: tuple = ()
    pca_components: int = 0
    pca_window: int = 252
    equal_weights: bool = False
    volatility_lookback: int = 60
    volatility_halflife: float | None = None
    cap_quantile: float | None = 0.95
    ridge: float = 0.0
    winsor: float | None = 3.0
    beta_window: int = 252
    momentum_window: int = 252
    momentum_skip: int = 21
    reversal_window: int = 21
    volatility_window: int = 63
    size_window: int = 63
    max_condition: float = 1e10
    market: bool = False

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "sector", _check_bool("sector", self.sector))
        set_(self, "intercept", _check_bool("intercept", self.intercept))
        styles = self.styles
        if isinstance(styles, str):
            styles = (styles,)
        try:
            styles = tuple(styles)
        except TypeError:
            raise TypeError(f"styles must be a sequence of names; got {self.styles!r}") from None
        unknown = [s for s in styles if s not in STYLE_NAMES]
        if unknown:
            raise ValueError(f"unknown style name(s) {unknown}; choose from {STYLE_NAMES}")
        if len(set(styles)) != len(styles):
            raise ValueError(f"styles must not repeat a name; got {styles}")
        set_(self, "styles", styles)
        set_(self, "pca_components", _check_int("pca_components", self.pca_components, 0))
        set_(self, "pca_window", _check_int("pca_window", self.pca_window, 2))
        if self.pca_components and self.pca_window <= self.pca_components:
            raise ValueError(
                f"pca_window ({self.pca_window}) must exceed pca_components "
                f"({self.pca_components})"
            )
        set_(self, "equal_weights", _check_bool("equal_weights", self.equal_weights))
        set_(self, "volatility_lookback",
             _check_int("volatility_lookback", self.volatility_lookback, 2))
        set_(self, "volatility_halflife",
             _check_number("volatility_halflife", self.volatility_halflife, low=0,
                           allow_none=True))
        set_(self, "cap_quantile",
             _check_number("cap_quantile", self.cap_quantile, low=0, high=1, allow_none=True))
        set_(self, "ridge", _check_number("ridge", self.ridge, low=0, low_open=False))
        set_(self, "winsor", _check_number("winsor", self.winsor, low=1, allow_none=True))
        for name in ("beta_window", "momentum_window", "volatility_window", "size_window"):
            set_(self, name, _check_int(name, getattr(self, name), 2))
        set_(self, "reversal_window", _check_int("reversal_window", self.reversal_window, 1))
        set_(self, "momentum_skip", _check_int("momentum_skip", self.momentum_skip, 0))
        if self.momentum_skip >= self.momentum_window:
            raise ValueError(
                f"momentum_skip ({self.momentum_skip}) must be smaller than "
                f"momentum_window ({self.momentum_window})"
            )
        set_(self, "max_condition", _check_number("max_condition", self.max_condition, low=1))
        set_(self, "market", _check_bool("market", self.market))
        if not (self.sector or self.intercept or self.styles or self.pca_components):
            raise ValueError(
                "the regression needs at least one loadings column: keep the intercept, "
                "a sector classifier, styles or pca_components"
            )

    @property
    def history_length(self):
        """Rows of returns before the regressed one that the options need."""
        windows = [] if self.equal_weights else [self.volatility_lookback]
        by_style = {
            "beta": self.beta_window,
            "size": self.size_window,
            "momentum": self.momentum_window,
            "reversal": self.reversal_window,
            "volatility": self.volatility_window,
        }
        windows += [by_style[s] for s in self.styles]
        if self.pca_components:
            windows.append(self.pca_window)
        return max(windows, default=0)

    @property
    def factor_labels(self):
        """Names of the non-sector factor columns, in order."""
        labels = ["intercept"] if (self.intercept and not self.sector) else []
        labels += list(self.styles)
        labels += [f"pc{j + 1}" for j in range(self.pca_components)]
        return tuple(labels)


# --------------------------------------------------------------------------
# the window function (no engine)
# --------------------------------------------------------------------------


class WLSWindowResult(NamedTuple):
    """What :func:`wls_window` computes for one session (arrays of shape (N,)).

    Attributes
    ----------
    weighted_residuals : ndarray (N,)
        ``R~ = Z eps``; NaN for assets left out of the regression.
    residuals : ndarray (N,)
        ``eps = R - Omega f``.
    weights : ndarray (N,)
        ``z_i`` of the assets in the regression (NaN for the others).
    loadings : ndarray (N, K)
        ``Omega``; NaN rows for assets left out.
    labels : tuple of str
        Column names: ``intercept``, ``sector_<code>``, style names,
        ``pc1``.. ``pck``.
    factor_returns : ndarray (K,)
        ``f``.
    sector_returns : ndarray (N,)
        Factor return of each asset's own sector: the intercept plus its
        sector dummy's ``f`` (the reference sector has only the intercept);
        NaN without a sector classifier or for an unknown sector.
    condition_number : float
        Condition number of the unit-diagonal-scaled ``Omega' Z Omega``.
    n_assets : int
        Assets in the regression.
    neutrality : float
        Largest cosine between ``R~`` and a factor column
        (:func:`factor_neutrality`): zero up to rounding without a ridge
        penalty; NaN on an invalid day.
    valid : bool
        The day was solved (enough assets, condition number not above
        ``max_condition``).
    sector_codes : ndarray (N,) or None
        With sectors: the sector code of each asset with a loadings row
        (float; NaN for the assets left out). None without sectors.
    reference_sector : float
        With sectors and the intercept: the code of the reference sector
        (the one without a dummy column: the largest that day); NaN
        otherwise or when no asset qualifies.
    """

    weighted_residuals: np.ndarray
    residuals: np.ndarray
    weights: np.ndarray
    loadings: np.ndarray
    labels: tuple
    factor_returns: np.ndarray
    sector_returns: np.ndarray
    condition_number: float
    n_assets: int
    neutrality: float
    valid: bool
    sector_codes: np.ndarray | None = None
    reference_sector: float = np.nan


def factor_neutrality(weighted_residuals, loadings):
    r"""The factor-neutrality check of the weighted residuals.

    For every factor column ``A``, over the assets whose weighted residual
    and loadings are finite:

    .. math::

        e_A = \sum_i \tilde R_i \Omega_{iA}, \qquad
        c_A = \frac{|e_A|}{\lVert \tilde R \rVert_2 \, \lVert \Omega_A \rVert_2},

    :math:`c_A` being the cosine of the angle between the weighted residuals
    and the factor column (the Cauchy-Schwarz bound makes it at most 1).
    Without a ridge penalty the regression makes every :math:`e_A` zero up
    to rounding, so :math:`c_A` is of the order of the machine epsilon; a
    book sized by :math:`-\tilde R` then has no exposure to the factor.

    Parameters
    ----------
    weighted_residuals : array_like, shape (N,)
    loadings : array_like, shape (N, K)

    Returns
    -------
    exposures : ndarray (K,)
        :math:`e_A`.
    relative : ndarray (K,)
        :math:`c_A` (0 where a norm is zero).
    """
    r = np.asarray(weighted_residuals, dtype=np.float64)
    x = np.asarray(loadings, dtype=np.float64)
    use = np.isfinite(r) & np.isfinite(x).all(axis=1)
    r, x = r[use], x[use]
    exposures = r @ x
    scale = np.sqrt(r @ r) * np.sqrt((x * x).sum(axis=0))
    relative = np.divide(np.abs(exposures), scale, out=np.zeros_like(scale), where=scale > 0)
    return exposures, relative


def _correlation_pca_loadings(window, candidates, k):
    """Top-``k`` PCA loadings of the correlation matrix of ``window``.

    Columns outside ``candidates``, with a missing value or no variance are
    left out of the fit (NaN rows), as Avellaneda & Lee (2010) fit the
    components on standardised returns.
    """
    P, N = window.shape
    x = np.where(candidates[None, :], window, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.std(x, axis=0, ddof=1)
        x = x / np.where(std > 0, std, np.nan)
    complete = np.isfinite(x).all(axis=0)
    if complete.sum() <= k or P <= k:
        return np.full((N, k), np.nan)
    with one_blas_thread():
        return pca_loadings(x, k)


def _raw_styles(history, dollar_volume, market_returns, base, s):
    """Raw style columns from the history rows, NaN outside ``base``."""
    others = tuple(name for name in s.styles if name != "size")
    raw = {}
    if others:
        values = style_factors(
            history,
            market_returns=None if market_returns is None else market_returns[:-1],
            styles=others,
            beta_window=s.beta_window,
            momentum_window=s.momentum_window,
            momentum_skip=s.momentum_skip,
            reversal_window=s.reversal_window,
            volatility_window=s.volatility_window,
        ).styles
        raw.update(zip(others, values.T))
    if "size" in s.styles:
        rows = slice(history.shape[0] - s.size_window, history.shape[0])
        raw["size"] = style_factors(
            history[rows], dollar_volume=dollar_volume[:-1][rows], styles=("size",)
        ).styles[:, 0]
    out = np.column_stack([raw[name] for name in s.styles])
    out[~base] = np.nan
    return out


def _wls_window(returns, sector_codes, dollar_volume, market_returns, settings):
    r = np.asarray(returns, dtype=np.float64)
    W, N = r.shape
    R = r[-1]
    history = r[:-1]
    s = settings

    if s.equal_weights:
        z = np.ones(N)
    else:
        rows = history[W - 1 - s.volatility_lookback :]
        if s.volatility_halflife is None:
            z = inverse_variance_weights(rows, lookback=s.volatility_lookback,
                                         cap_quantile=s.cap_quantile)
        else:
            z = inverse_variance_weights(rows, halflife=s.volatility_halflife,
                                         cap_quantile=s.cap_quantile)
    with np.errstate(invalid="ignore"):
        base = np.isfinite(R) & np.isfinite(z) & (z > 0)
    if s.sector:
        codes = np.asarray(sector_codes, dtype=np.int64)
        base &= codes >= 0

    columns = []
    if s.styles:
        columns.append(standardize_styles(
            _raw_styles(history, dollar_volume, market_returns, base, s), winsor=s.winsor))
    if s.pca_components:
        window = history[W - 1 - s.pca_window :]
        columns.append(_correlation_pca_loadings(window, base, s.pca_components))
    candidates = base.copy()
    for block in columns:
        candidates &= np.isfinite(block).all(axis=1)

    sector_codes, reference_sector = None, np.nan
    if s.sector:
        sectors = sector_loadings(codes, intercept=s.intercept, reference="largest",
                                  mask=candidates)
        columns.insert(0, sectors.loadings)
        labels = sectors.labels
        known = candidates & (codes >= 0)
        sector_codes = np.where(known, codes, np.nan)
        if s.intercept and known.any():
            dummies = {int(label[len("sector_"):]) for label in labels
                       if label.startswith("sector_")}
            others = [c for c in np.unique(codes[known]) if int(c) not in dummies]
            reference_sector = float(others[0]) if others else np.nan
    elif s.intercept:
        columns.insert(0, np.ones((N, 1)))
        labels = ("intercept",)
    else:
        labels = ()
    labels += tuple(s.styles) + tuple(f"pc{j + 1}" for j in range(s.pca_components))
    loadings = np.column_stack(columns) if columns else np.empty((N, 0))
    loadings[~candidates] = np.nan
    weights = np.where(candidates, z, np.nan)

    ridge = 0.0
    if s.ridge > 0 and candidates.any():
        gram_diagonal = (weights[candidates, None] * loadings[candidates] ** 2).sum(axis=0)
        ridge = s.ridge * gram_diagonal.mean()
    result = wls_residuals(R, loadings, weights, ridge, max_condition=s.max_condition)

    f = result.factor_returns
    sector_returns = np.full(N, np.nan)
    if s.sector and result.valid:
        base_return = f[0] if s.intercept else 0.0
        by_code = {}
        for j, label in enumerate(labels):
            if label.startswith("sector_"):
                by_code[int(label[len("sector_"):])] = base_return + f[j]
        if s.intercept and candidates.any():  # the reference sector
            present = np.unique(codes[candidates])
            for code in present:
                by_code.setdefault(int(code), base_return)
        for code, value in by_code.items():
            sector_returns[codes == code] = value

    if result.valid:
        _, relative = factor_neutrality(result.weighted_residuals, loadings)
        neutrality = float(relative.max(initial=0.0))
    else:
        neutrality = np.nan
    used = np.isfinite(result.residuals)
    return WLSWindowResult(
        weighted_residuals=result.weighted_residuals,
        residuals=result.residuals,
        weights=np.where(used, weights, np.nan),
        loadings=loadings,
        labels=labels,
        factor_returns=f,
        sector_returns=sector_returns,
        condition_number=float(result.condition_number),
        n_assets=int(result.n_assets),
        neutrality=neutrality,
        valid=bool(result.valid),
        sector_codes=sector_codes,
        reference_sector=reference_sector,
    )


def wls_window(returns, sector_codes=None, dollar_volume=None, market_returns=None, **options):
    r"""Cross-sectional WLS residuals of one session's window.

    What :class:`WLSResidual` computes for one session, without an engine.
    The last row of ``returns`` is regressed; the rows before it
    (``history``) give the weights, styles and principal components:

    1. weights :math:`z_i = 1/\sigma_i^2` from the last
       ``volatility_lookback`` history rows
       (:func:`~zipline_factorarb.kernels.wls.inverse_variance_weights`,
       optionally exponentially weighted with ``volatility_halflife``,
       capped at the ``cap_quantile`` quantile), or 1 with
       ``equal_weights``;
    2. assets with a return, a positive weight and (with sectors) a known
       sector are the candidates;
    3. style exposures
       (:func:`~zipline_factorarb.kernels.wls.style_factors` on the history,
       then :func:`~zipline_factorarb.kernels.wls.standardize_styles` over
       the candidates, winsorised at ``winsor``); principal components of
       the correlation matrix of the last ``pca_window`` history rows of the
       candidates (:func:`~zipline_factorarb.kernels.pca.pca_loadings`);
       assets without every exposure are dropped;
    4. intercept and sector dummies of the remaining candidates
       (:func:`~zipline_factorarb.kernels.wls.sector_loadings`, the largest
       sector as reference);
    5. :func:`~zipline_factorarb.kernels.wls.wls_residuals` with the ridge
       penalty ``ridge * trace(Omega' Z Omega) / K`` (scale-free).

    Parameters
    ----------
    returns : array_like, shape (W, N)
        Daily returns, oldest first; the last row is regressed.
    sector_codes : array_like of int, shape (N,), optional
        Sector codes (negative = unknown); needed unless ``sector=False``.
    dollar_volume : array_like, shape (W, N), optional
        Close times volume, rows aligned with ``returns``; for ``size``.
    market_returns : array_like, shape (W,), optional
        Market returns for ``beta`` (default: the equal-weighted mean of the
        cross-section).
    **options
        Fields of :class:`WLSSettings` (``sector`` defaults to whether
        ``sector_codes`` is given).

    Returns
    -------
    WLSWindowResult
    """
    options.setdefault("sector", sector_codes is not None)
    options.setdefault("market", market_returns is not None)
    settings = WLSSettings(**options)
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"returns must have shape (W, N); got shape {r.shape}")
    if settings.sector and sector_codes is None:
        raise ValueError("sector_codes are needed with sector=True")
    if "size" in settings.styles and dollar_volume is None:
        raise ValueError("style 'size' needs dollar_volume")
    if r.shape[0] < settings.history_length + 1:
        raise ValueError(
            f"returns has {r.shape[0]} rows; these options need at least "
            f"{settings.history_length + 1} (history plus the regressed row)"
        )
    dv = None if dollar_volume is None else np.asarray(dollar_volume, dtype=np.float64)
    m = None if market_returns is None else np.asarray(market_returns, dtype=np.float64)
    return _wls_window(r, sector_codes, dv, m, settings)


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


def _check_market(market):
    if market is not None and not isinstance(market, Asset):
        raise TypeError(
            f"market must be a zipline Asset (e.g. symbol('SPY')) or None; got {market!r}"
        )
    return market


def _check_mask(mask):
    if mask is not NotSpecified and not isinstance(mask, Filter):
        raise TypeError(f"mask must be a pipeline Filter; got {mask!r}")
    return mask


class WLSResidual(CustomFactor):
    r"""Weighted least squares residuals of daily returns on factor loadings.

    Each session, the latest one-day returns of the assets in ``mask`` are
    regressed cross-sectionally on ``Omega`` = [intercept, sector dummies,
    standardised styles, principal components] with weights
    :math:`z_i = 1/\sigma_i^2` (capped) or 1 (see the module docstring for
    the formulas and :func:`wls_window` for each step). The signal is the
    ``weighted_residual`` output :math:`\tilde R = Z\varepsilon`: short the
    largest, buy the smallest.

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
        ``reversal`` and ``volatility``.
    pca_components : int, default 0
        Number of principal components of the trailing correlation matrix
        added as loadings (PCA variant: ``sector=None, pca_components=k``).
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
        With a sector classifier: the factor return of the asset's sector.
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
    input. Outputs are NaN
    on days that cannot be solved (fewer assets than factors, condition
    number above ``max_condition``). Use the outputs like any factor:
    ``wls.weighted_residual.rank(mask=...)``, ``.zscore()``,
    ``.demean(groupby=Sector())``.

    References
    ----------
    Avellaneda, M. and Lee, J.-H. (2010). Statistical arbitrage in the US
    equities market. Quantitative Finance, 10(7), 761-782.
    """

    dtype = float64_dtype
    window_safe = True
    params = ("wls_settings", "condition_warning", "condition_warning_every", "static_sector")

    def __new__(
        cls,
        sector=NotSpecified,
        styles=(),
        pca_components=0,
        pca_window=252,
        equal_weights=False,
        volatility_lookback=60,
        volatility_halflife=None,
        cap_quantile=0.95,
        ridge=0.0,
        intercept=True,
        winsor=3.0,
        beta_window=252,
        momentum_window=252,
        momentum_skip=21,
        reversal_window=21,
        volatility_window=63,
        size_window=63,
        market=None,
        max_condition=1e10,
        condition_warning=CONDITION_WARNING,
        condition_warning_every=250,
        window_length=None,
        mask=NotSpecified,
    ):
        if sector is NotSpecified:
            from .classifiers import Sector

            sector = Sector()
        if sector is not None and not isinstance(sector, Classifier):
            raise TypeError(f"sector must be a pipeline Classifier or None; got {sector!r}")
        if sector is not None and sector.dtype.kind not in "iu":
            raise TypeError(f"sector must be an integer classifier; got dtype {sector.dtype}")
        market = _check_market(market)
        mask = _check_mask(mask)
        settings = WLSSettings(
            sector=sector is not None,
            intercept=intercept,
            styles=styles,
            pca_components=pca_components,
            pca_window=pca_window,
            equal_weights=equal_weights,
            volatility_lookback=volatility_lookback,
            volatility_halflife=volatility_halflife,
            cap_quantile=cap_quantile,
            ridge=ridge,
            winsor=winsor,
            beta_window=beta_window,
            momentum_window=momentum_window,
            momentum_skip=momentum_skip,
            reversal_window=reversal_window,
            volatility_window=volatility_window,
            size_window=size_window,
            max_condition=max_condition,
            market=market is not None,
        )
        if "beta" not in settings.styles and market is not None:
            raise ValueError("market is only used by the 'beta' style; add it to styles")
        condition_warning = _check_number("condition_warning", condition_warning, low=1,
                                          allow_none=True)
        condition_warning_every = _check_int("condition_warning_every",
                                             condition_warning_every, 1)
        needed = settings.history_length + 1
        if window_length is None:
            window_length = needed
        window_length = _check_int("window_length", window_length, 1)
        if window_length < needed:
            raise ValueError(
                f"window_length={window_length} is too short for these options: they "
                f"need {needed} rows of returns ({needed - 1} of history plus the "
                "regressed day)"
            )

        # The package's Sector() is a static per-asset lookup: it is read for
        # the session's assets in compute instead of as a window input (which
        # would load and copy W rows of it every session).
        from .classifiers import Sector

        static_sector = sector if isinstance(sector, Sector) else None
        returns = _returns_input(market)
        inputs = [returns]
        if sector is not None and static_sector is None:
            inputs.append(sector)
        if "size" in settings.styles:
            inputs += [EquityPricing.close, EquityPricing.volume]
        if market is not None:
            inputs.append(returns[market])

        outputs = ["weighted_residual", "residual", "weight", "condition_number",
                   "n_assets", "neutrality"]
        if settings.sector:
            outputs += ["sector_return", "sector_code"]
            if settings.intercept:
                outputs.append("reference_sector")
        for label in settings.factor_labels:
            if label != "intercept":
                outputs.append(f"loading_{label}")
            outputs.append(f"factor_return_{label}")

        term = super().__new__(
            cls,
            inputs=inputs,
            outputs=tuple(outputs),
            window_length=window_length,
            mask=mask,
            wls_settings=settings,
            condition_warning=condition_warning,
            condition_warning_every=condition_warning_every,
            static_sector=static_sector,
        )
        if getattr(term, "_condition_log", None) is None:
            term._condition_log = ConditionLog(repr(term), threshold=condition_warning,
                                               every=condition_warning_every)
        return term

    def compute(self, today, assets, out, returns, *extra, wls_settings, condition_warning,
                condition_warning_every, static_sector):
        settings = wls_settings
        extra = list(extra)
        codes = None
        if static_sector is not None:
            codes = np.empty(len(assets), dtype=np.int64)
            static_sector.compute(today, assets, codes, None, **static_sector.params)
        elif settings.sector:
            codes = extra.pop(0)[-1]
        dollar_volume = None
        if "size" in settings.styles:
            close, volume = extra.pop(0), extra.pop(0)
            dollar_volume = close * volume
        market = extra.pop(0)[:, 0] if settings.market else None
        W = settings.history_length + 1
        result = _wls_window(
            returns[-W:], codes,
            None if dollar_volume is None else dollar_volume[-W:],
            None if market is None else market[-W:],
            settings,
        )
        # structured-array field views (the recarray attribute path is slow)
        field = np.ndarray.__getitem__
        field(out, "weighted_residual")[:] = result.weighted_residuals
        field(out, "residual")[:] = result.residuals
        field(out, "weight")[:] = result.weights
        field(out, "condition_number")[:] = result.condition_number
        field(out, "n_assets")[:] = result.n_assets
        field(out, "neutrality")[:] = result.neutrality
        if settings.sector:
            field(out, "sector_return")[:] = result.sector_returns
            field(out, "sector_code")[:] = result.sector_codes
            if settings.intercept:
                field(out, "reference_sector")[:] = result.reference_sector
        offset = len(result.labels) - len(settings.factor_labels)
        for j, label in enumerate(settings.factor_labels):
            if label != "intercept":
                field(out, f"loading_{label}")[:] = result.loadings[:, offset + j]
            field(out, f"factor_return_{label}")[:] = result.factor_returns[offset + j]
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

    def _in_regression(self, frame, date, prefix, method):
        """Assets of the day's regression (finite ``weight``); a clear error if none."""
        from ..optimize._base import empty_input_error

        field = f"the pipeline output read by WLSResidual.{method}"
        needs = (f"This factor needs window_length={self.window_length} sessions of "
                 "returns before its first value.")
        weight = self._values(frame, "weight", prefix, method)
        if not len(frame):
            raise empty_input_error(field, "has no rows", date, detail=needs)
        inside = np.isfinite(weight)
        if inside.any():
            return inside
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
        frame, date = self._one_day(frame, "loadings")
        inside = self._in_regression(frame, date, prefix, "loadings")
        s = self.settings
        columns = {}
        if s.intercept:
            columns["intercept"] = np.where(inside, 1.0, np.nan)
        if s.sector:
            codes = np.where(inside, self._values(frame, "sector_code", prefix, "loadings"),
                             np.nan)
            present = np.unique(codes[np.isfinite(codes)])
            if s.intercept:
                reference = self._first(
                    self._values(frame, "reference_sector", prefix, "loadings"))
                present = present[present != reference]
            for code in present:
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
        frame, date = self._one_day(frame, "factor_returns")
        inside = self._in_regression(frame, date, prefix, "factor_returns")
        s = self.settings
        f = {}
        if s.sector:
            codes = np.where(inside, self._values(frame, "sector_code", prefix,
                                                  "factor_returns"), np.nan)
            level = self._values(frame, "sector_return", prefix, "factor_returns")
            by_code = {code: self._first(level[codes == code])
                       for code in np.unique(codes[np.isfinite(codes)])}
            if s.intercept:
                reference = self._first(
                    self._values(frame, "reference_sector", prefix, "factor_returns"))
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
        if s.pca_components:
            parts.append(f"pca={s.pca_components}")
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

    _DEFAULT_WINDOWS = {"beta": 252, "size": 63, "momentum": 252, "reversal": 21,
                        "volatility": 63}

    def __new__(cls, style, standardize=False, winsor=3.0, market=None, window_length=None,
                momentum_skip=21, mask=NotSpecified):
        if style not in STYLE_NAMES:
            raise ValueError(f"unknown style {style!r}; choose from {STYLE_NAMES}")
        standardize = _check_bool("standardize", standardize)
        winsor = _check_number("winsor", winsor, low=1, allow_none=True)
        market = _check_market(market)
        if market is not None and style != "beta":
            raise ValueError("market is only used by style 'beta'")
        mask = _check_mask(mask)
        if window_length is None:
            window_length = cls._DEFAULT_WINDOWS[style]
        window_length = _check_int("window_length", window_length, 2)
        momentum_skip = _check_int("momentum_skip", momentum_skip, 0)
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
