r"""One session of the cross-sectional WLS recipe, from a returns window.

:func:`wls_window` is what :class:`~zipline_factorarb.pipeline.wls.WLSResidual`
computes each session, as a pure function of the window (numpy arrays in, a
named tuple out, no engine): weights, style loadings, principal-component
loadings and sector dummies are built from the rows of the window *before*
the regressed return, then
:func:`~zipline_factorarb.kernels.wls.wls_residuals` solves the regression.

The pieces are separate functions, each tested on its own:
:func:`raw_styles` (the style columns before standardisation),
:func:`~zipline_factorarb.kernels.pca.correlation_pca_loadings`
(standardised PCA), :func:`~zipline_factorarb.kernels.wls.scale_free_ridge`,
:func:`sector_factor_returns` and :func:`factor_neutrality`.

Vocabulary (``docs/glossary.md``): ``components`` is the number of
principal components, labelled ``pc1`` .. ``pcK``; loadings are ``(N, K)``
(assets by factors); ``ridge`` is scale-free here and absolute
(``penalty``) in :func:`~zipline_factorarb.kernels.wls.wls_residuals`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import NamedTuple

import numpy as np

from ..checks import check_array, check_bool, check_int, check_number
from .pca import correlation_pca_loadings
from .wls import (
    _known_styles,
    _log_positive,
    _names,
    inverse_variance_weights,
    scale_free_ridge,
    sector_loadings,
    standardize_styles,
    style_factors,
    wls_residuals,
)

__all__ = [
    "WLSSettings",
    "WLSWindowResult",
    "factor_neutrality",
    "given_style_values",
    "raw_styles",
    "sector_factor_returns",
    "wls_window",
]


@dataclasses.dataclass(frozen=True)
class WLSSettings:
    """Validated options of :func:`wls_window` (and of ``WLSResidual``).

    Frozen and hashable, so that it can be a pipeline parameter (two factors
    with equal settings and inputs are the same term). See
    :class:`~zipline_factorarb.pipeline.wls.WLSResidual` for the meaning of
    each field. ``pca_components`` is the former name of ``components``
    (accepted with a :class:`DeprecationWarning`).
    """

    sector: bool = True
    intercept: bool = True
    styles: tuple = ()
    components: int = 0
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
    given_styles: tuple = ()

    #: field -> (check, its keyword arguments); run in this order by __post_init__
    _CHECKS = {
        "sector": (check_bool, {}),
        "intercept": (check_bool, {}),
        "components": (check_int, {"low": 0}),
        "pca_window": (check_int, {"low": 2}),
        "equal_weights": (check_bool, {}),
        "volatility_lookback": (check_int, {"low": 2}),
        "beta_window": (check_int, {"low": 2}),
        "momentum_window": (check_int, {"low": 2}),
        "volatility_window": (check_int, {"low": 2}),
        "size_window": (check_int, {"low": 2}),
        "reversal_window": (check_int, {"low": 1}),
        "momentum_skip": (check_int, {"low": 0}),
        "market": (check_bool, {}),
        "volatility_halflife": (check_number, {"low": 0, "low_open": True, "allow_none": True}),
        "cap_quantile": (check_number, {"low": 0, "high": 1, "low_open": True,
                                        "allow_none": True}),
        "ridge": (check_number, {"low": 0}),
        "winsor": (check_number, {"low": 1, "low_open": True, "allow_none": True}),
        "max_condition": (check_number, {"low": 1, "low_open": True}),
    }

    def __post_init__(self):
        set_ = object.__setattr__
        for name, (check, options) in self._CHECKS.items():
            set_(self, name, check(name, getattr(self, name), **options))
        set_(self, "given_styles", _given_style_names(self.given_styles))
        set_(self, "styles", _style_names(self.styles, self.given_styles))
        if self.components and self.pca_window <= self.components:
            raise ValueError(
                f"pca_window ({self.pca_window}) must exceed components ({self.components})")
        if self.momentum_skip >= self.momentum_window:
            raise ValueError(
                f"momentum_skip ({self.momentum_skip}) must be smaller than "
                f"momentum_window ({self.momentum_window})")
        if not (self.sector or self.intercept or self.styles or self.components):
            raise ValueError(
                "the regression needs at least one loadings column: keep the intercept, "
                "a sector classifier, styles or components")

    @classmethod
    def from_options(cls, options, owner="wls_window"):
        """Settings from keyword options; ``pca_components`` is taken as ``components``.

        Raises :class:`TypeError` naming ``owner`` for an unknown keyword.
        """
        options = dict(options)
        if "pca_components" in options:
            warnings.warn(f"{owner}: pca_components is deprecated; use components",
                          DeprecationWarning, stacklevel=3)
            if "components" in options:
                raise TypeError(f"{owner}: give components or pca_components, not both")
            options["components"] = options.pop("pca_components")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise TypeError(f"{owner} got unexpected keyword argument(s) {unknown}")
        return cls(**options)

    @property
    def pca_components(self):
        """Former name of :attr:`components`."""
        return self.components

    @property
    def history_length(self):
        """Rows of returns before the regressed one that the options need."""
        windows = [] if self.equal_weights else [self.volatility_lookback]
        windows += [self.style_window(s) for s in self.styles]
        if self.components:
            windows.append(self.pca_window)
        return max(windows, default=0)

    def style_window(self, style):
        """History rows a style needs (1 for a given style: its previous value)."""
        if style in self.given_styles:
            return 1
        return getattr(self, f"{style}_window")

    @property
    def builtin_styles(self):
        """The styles computed from returns and volumes (not given as inputs)."""
        return tuple(s for s in self.styles if s not in self.given_styles)

    @property
    def factor_labels(self):
        """Names of the non-sector factor columns, in order."""
        labels = ["intercept"] if (self.intercept and not self.sector) else []
        labels += list(self.styles)
        labels += [f"pc{j + 1}" for j in range(self.components)]
        return tuple(labels)


def _reserved_style(name):
    """Whether ``name`` is one of the regression's own column names."""
    return (name in ("intercept", "sector") or name.startswith("sector_")
            or (name.startswith("pc") and name[2:].isdigit()))


def _given_style_names(names):
    """Names of the styles whose raw values are given (``style_inputs``), checked."""
    names = _names("given_styles", names)
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"a given style needs a name that is a Python identifier (it names the "
                f"outputs loading_<name> and factor_return_<name>); got {name!r}")
        if _reserved_style(name):
            raise ValueError(
                f"style name {name!r} clashes with the regression's own columns "
                "(intercept, sector, sector_<code>, pc<j>); choose another name")
    if len(set(names)) != len(names):
        raise ValueError(f"given styles must not repeat a name; got {names}")
    return names


def _style_names(styles, given=()):
    styles = _known_styles(styles, given, " or give the style's values as an input "
                           "(WLSResidual(style_inputs={name: factor}))")
    missing = [g for g in given if g not in styles]
    if missing:
        raise ValueError(
            f"style input(s) {missing} are not in styles {styles}; list every given "
            "style in styles (its place there is its column's place)")
    return styles


class WLSWindowResult(NamedTuple):
    """What :func:`wls_window` computes for one session.

    The arrays ``(N,)`` and the session's numbers are the values of the
    outputs of :class:`~zipline_factorarb.pipeline.wls.WLSResidual` of the
    same name in the singular (see its Outputs; NaN for the assets left out
    of the regression): ``weighted_residuals``, ``residuals``, ``weights``,
    ``sector_returns``, ``sector_codes`` (None without sectors),
    ``condition_number``, ``n_assets``, ``neutrality`` and
    ``reference_sector``. ``loadings`` is ``Omega`` ``(N, K)`` (NaN rows for
    the assets left out), ``labels`` its column names (``intercept``,
    ``sector_<code>``, styles, ``pc1`` .. ``pcK``) and ``factor_returns``
    ``f`` ``(K,)``. ``valid``: the day was solved (enough assets, condition
    number not above ``max_condition``).
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


def given_style_values(name, values):
    """The raw style column of a given style: ``log`` of it for ``size``, else as given.

    A ``size`` input is a market capitalisation (any positive scale measure),
    so its raw style is the natural log of it, as the built-in ``size`` is the
    log of the mean dollar volume (non-positive or missing values give NaN,
    as in :func:`~zipline_factorarb.kernels.wls.style_factors`); any other
    given style (e.g. ``value`` from a book-to-market ratio) is used as
    given, NaN where missing or infinite.
    """
    v = np.asarray(values, dtype=np.float64)
    return _log_positive(v) if name == "size" else np.where(np.isfinite(v), v, np.nan)


def raw_styles(history, settings, dollar_volume=None, market_returns=None, mask=None,
               given=None):
    """Raw style columns ``(N, S)`` of ``settings.styles`` from the history rows.

    ``history`` is ``(H, N)`` returns (the rows before the regressed one);
    ``dollar_volume`` ``(H, N)`` for ``size`` (its last ``size_window``
    rows), ``market_returns`` ``(H,)`` for ``beta`` (default: the
    equal-weighted mean). ``given`` is ``(N, G)``, the values of
    ``settings.given_styles`` known before the regressed return, turned
    into raw styles by :func:`given_style_values`. Rows outside ``mask``
    are NaN.
    """
    s = settings
    others = tuple(name for name in s.builtin_styles if name != "size")
    raw = {}
    for j, name in enumerate(s.given_styles):
        raw[name] = given_style_values(name, given[:, j])
    if others:
        values = style_factors(
            history, market_returns=market_returns, styles=others,
            beta_window=s.beta_window, momentum_window=s.momentum_window,
            momentum_skip=s.momentum_skip, reversal_window=s.reversal_window,
            volatility_window=s.volatility_window,
        ).styles
        raw.update(zip(others, values.T))
    if "size" in s.builtin_styles:
        rows = slice(history.shape[0] - s.size_window, history.shape[0])
        raw["size"] = style_factors(history[rows], dollar_volume=dollar_volume[rows],
                                    styles=("size",)).styles[:, 0]
    out = np.column_stack([raw[name] for name in s.styles])
    if mask is not None:
        out[~mask] = np.nan
    return out


def sector_factor_returns(sector_codes, sector_block, factor_returns, mask):
    """The factor return of each asset's own sector, ``(N,)``.

    ``sector_block`` is the ``(N, S)`` intercept-and-dummy loadings of
    :func:`~zipline_factorarb.kernels.wls.sector_loadings` and
    ``factor_returns`` their ``(S,)`` factor returns: an asset's sector
    return is its row of the block times ``f`` (the intercept plus its
    sector's spread). Every asset whose code is that of a sector in the
    regression (``mask``) gets its sector's value, inside ``mask`` or not;
    the others NaN.
    """
    codes = np.asarray(sector_codes)
    out = np.full(codes.shape[0], np.nan)
    if not mask.any():
        return out
    level = sector_block[mask] @ factor_returns
    present, first = np.unique(codes[mask], return_index=True)
    for code, value in zip(present, level[first]):
        out[codes == code] = value
    return out


def _weights(history, s):
    """Regression weights from the last ``volatility_lookback`` history rows."""
    N = history.shape[1]
    if s.equal_weights:
        return np.ones(N)
    rows = history[history.shape[0] - s.volatility_lookback:]
    if s.volatility_halflife is None:
        return inverse_variance_weights(rows, lookback=s.volatility_lookback,
                                        cap_quantile=s.cap_quantile)
    return inverse_variance_weights(rows, halflife=s.volatility_halflife,
                                    cap_quantile=s.cap_quantile)


def solve_wls_window(returns, sector_codes, dollar_volume, market_returns, settings,
                     given=None):
    """:func:`wls_window` on arrays already checked (the pipeline factor's call).

    ``returns`` ``(W, N)`` with ``W = settings.history_length + 1`` (or more),
    ``sector_codes`` int ``(N,)`` (negative = unknown) or None,
    ``dollar_volume`` ``(W, N)`` or None, ``market_returns`` ``(W,)`` or None,
    ``given`` ``(N, G)`` values of ``settings.given_styles`` or None.
    """
    s = settings
    r = np.asarray(returns, dtype=np.float64)
    N = r.shape[1]
    R, history = r[-1], r[:-1]

    z = _weights(history, s)
    with np.errstate(invalid="ignore"):
        base = np.isfinite(R) & np.isfinite(z) & (z > 0)
    if s.sector:
        codes = np.asarray(sector_codes, dtype=np.int64)
        base &= codes >= 0

    columns = []
    if s.styles:
        raw = raw_styles(history, s,
                         None if dollar_volume is None else dollar_volume[:-1],
                         None if market_returns is None else market_returns[:-1], base,
                         given)
        columns.append(standardize_styles(raw, winsor=s.winsor))
    if s.components:
        columns.append(correlation_pca_loadings(history[-s.pca_window:], s.components, base))
    candidates = base.copy()
    for block in columns:
        candidates &= np.isfinite(block).all(axis=1)

    codes_out, reference_sector, n_sector = None, np.nan, 0
    labels = s.factor_labels  # with the intercept when there are no sectors
    if s.sector:
        sectors = sector_loadings(codes, intercept=s.intercept, reference="largest",
                                  mask=candidates)
        columns.insert(0, sectors.loadings)
        labels, n_sector = sectors.labels + labels, sectors.loadings.shape[1]
        codes_out = np.where(candidates, codes, np.nan)
        reference_sector = sectors.reference
    elif s.intercept:
        columns.insert(0, np.ones((N, 1)))
    loadings = np.column_stack(columns) if columns else np.empty((N, 0))
    loadings[~candidates] = np.nan
    weights = np.where(candidates, z, np.nan)

    penalty = scale_free_ridge(s.ridge, loadings[candidates], weights[candidates])
    result = wls_residuals(R, loadings, weights, penalty, max_condition=s.max_condition)

    f = result.factor_returns
    sector_returns = np.full(N, np.nan)
    neutrality = np.nan
    if result.valid:
        if s.sector:
            sector_returns = sector_factor_returns(codes, loadings[:, :n_sector],
                                                   f[:n_sector], candidates)
        neutrality = float(factor_neutrality(result.weighted_residuals, loadings)[1]
                           .max(initial=0.0))
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
        sector_codes=codes_out,
        reference_sector=reference_sector,
    )


def wls_window(returns, sector_codes=None, dollar_volume=None, market_returns=None,
               style_values=None, **options):
    r"""Cross-sectional WLS residuals of one session's window.

    What :class:`~zipline_factorarb.pipeline.wls.WLSResidual` computes for
    one session, without an engine. The last row of ``returns`` is
    regressed; the rows before it (``history``) give the weights, styles and
    principal components:

    1. weights :math:`z_i = 1/\sigma_i^2` from the last
       ``volatility_lookback`` history rows
       (:func:`~zipline_factorarb.kernels.wls.inverse_variance_weights`,
       optionally exponentially weighted with ``volatility_halflife``,
       capped at the ``cap_quantile`` quantile), or 1 with
       ``equal_weights``;
    2. assets with a return, a positive weight and (with sectors) a known
       sector are the candidates;
    3. style loadings (:func:`raw_styles`, then
       :func:`~zipline_factorarb.kernels.wls.standardize_styles` over the
       candidates, winsorised at ``winsor``; a style of ``style_values``
       enters as :func:`given_style_values` of its values); principal components of the
       correlation matrix of the last ``pca_window`` history rows of the
       candidates
       (:func:`~zipline_factorarb.kernels.pca.correlation_pca_loadings`);
       assets without every loading are dropped;
    4. intercept and sector dummies of the remaining candidates
       (:func:`~zipline_factorarb.kernels.wls.sector_loadings`, the largest
       sector as reference);
    5. :func:`~zipline_factorarb.kernels.wls.wls_residuals` with the
       penalty of the scale-free ``ridge``
       (:func:`~zipline_factorarb.kernels.wls.scale_free_ridge`).

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
    style_values : mapping of str to array_like of shape (N,), optional
        Raw values of styles given by the caller, known before the regressed
        return (e.g. the previous session's market cap for ``size``, a
        book-to-market ratio for ``value``); each name must be in
        ``styles``. A given ``size`` replaces the dollar-volume one and is
        its log; any other name is a new style used as given. NaN: the asset
        is left out of that day's regression.
    **options
        Fields of :class:`WLSSettings` (``sector`` defaults to whether
        ``sector_codes`` is given).

    Returns
    -------
    WLSWindowResult
    """
    options.setdefault("sector", sector_codes is not None)
    options.setdefault("market", market_returns is not None)
    if style_values is not None:
        if not hasattr(style_values, "keys"):
            raise TypeError(f"style_values must be a mapping of style name to values; "
                            f"got {type(style_values).__name__}")
        if "given_styles" in options:
            raise TypeError("give style_values or given_styles, not both")
        options["given_styles"] = tuple(style_values)
    settings = WLSSettings.from_options(options)
    r = check_array("returns", returns, ("W", "N"))
    if settings.sector and sector_codes is None:
        raise ValueError("sector_codes are needed with sector=True")
    if "size" in settings.builtin_styles and dollar_volume is None:
        raise ValueError("style 'size' needs dollar_volume")
    if r.shape[0] < settings.history_length + 1:
        raise ValueError(
            f"returns has {r.shape[0]} rows; these options need at least "
            f"{settings.history_length + 1} (history plus the regressed row)"
        )
    dv = None if dollar_volume is None else np.asarray(dollar_volume, dtype=np.float64)
    m = None if market_returns is None else np.asarray(market_returns, dtype=np.float64)
    given = None
    if settings.given_styles:
        given = np.column_stack([
            check_array(f"style_values[{name!r}]", style_values[name], (r.shape[1],),
                        context="one value per asset") for name in settings.given_styles])
    return solve_wls_window(r, sector_codes, dv, m, settings, given)
