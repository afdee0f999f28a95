r"""Pipeline factor: Kalman-filter innovations against PCA or ETF factor returns.

:class:`KalmanInnovation` adapts the random-walk-beta Kalman filter of
:mod:`zipline_factorarb.kernels.kalman` (a time-varying-parameter regression
in state-space form; Kalman 1960; Durbin & Koopman 2012, ch. 4) to zipline's
Pipeline, following the pattern of zipline's own ``SimpleBeta``: arguments
are validated in ``__new__``, inputs are wired there (including single
factor assets through ``returns[asset]`` slices), and ``compute`` hands the
window to the kernel
:func:`~zipline_factorarb.kernels.kalman.kalman_innovation_window`
(re-exported here), tested without an engine.

For every asset, the random-walk-beta filter of the kernel's module
docstring runs over the ``window_length`` daily returns that end on the
previous session, from the prior :math:`\beta_0 = 0, P_0 = p_0 I`, and the
last step is reported, so a session's value is a pure function of its
window (whatever the backtest start or the pipeline chunking). This is the
residual signal of the dynamic factor-arbitrage study of the SPDR sector
ETFs, whose factors are the top ``components`` principal components
(``docs/glossary.md``: ``factors`` names the source of the factor returns,
``factor_returns`` the ``(T, K)`` array).

Returns
-------
Daily returns come from :class:`DailyReturns`: the adjusted
``EquityPricing.close`` of two consecutive sessions, so dividends and splits
of the bundle are accounted for (total returns), by the one definition
:func:`~zipline_factorarb.kernels.returns.daily_returns`. The terms take
log returns :math:`\ln(p_t/p_{t-1})` by default, as in the study;
``log_returns=False`` gives simple returns :math:`p_t/p_{t-1} - 1`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from zipline.assets import Asset
from zipline.pipeline import CustomFactor
from zipline.pipeline.data import EquityPricing
from zipline.utils.numpy_utils import float64_dtype

from ..checks import check_bool, check_choice, check_filter, check_int, check_number
from ..kernels.factor_model import warn_collinear_once
from ..kernels.kalman import KalmanWindowResult, kalman_innovation_window
from ..kernels.pca import DEFAULT_COMPONENTS as DEFAULT_K
from ..kernels.pca import pca_factor_returns, pca_residuals
from ..kernels.returns import daily_returns
from ._threads import one_blas_thread

__all__ = [
    "DailyReturns",
    "KalmanInnovation",
    "KalmanWindowResult",
    "fixed_pca_signal",
    "kalman_innovation_window",
    "one_blas_thread",
    "pca_factor_returns",
]


# --------------------------------------------------------------------------
# daily returns (the window-safe input)
# --------------------------------------------------------------------------


class DailyReturns(CustomFactor):
    r"""One-session return from the adjusted close: log or simple, said explicitly.

    The value on session ``D`` is the return from the close of ``D-2`` to
    the close of ``D-1``, both adjusted as of ``D`` (so a dividend or split
    on ``D-1`` does not show up as a price jump), computed by the package's
    one definition,
    :func:`~zipline_factorarb.kernels.returns.daily_returns`. The factor is
    window safe: a window of it holds the same numbers as the returns of an
    adjusted close window one session longer.

    Parameters
    ----------
    log : bool
        :math:`\ln(p_t/p_{t-1})` if True, :math:`p_t/p_{t-1} - 1` if False.
        Required (``log_returns=`` is its deprecated former name, which
        defaulted to True).
    mask : zipline.pipeline.Filter, optional
        Assets to compute (default, or None: all assets that exist).
    """

    inputs = (EquityPricing.close,)
    window_length = 2
    window_safe = True
    dtype = float64_dtype
    params = ("log_returns",)  # not "log": a factor already has a .log() method

    def __new__(cls, log=None, mask=None, log_returns=None, **kwargs):
        if log_returns is not None:
            warnings.warn("DailyReturns(log_returns=...) is deprecated; use log=",
                          DeprecationWarning, stacklevel=2)
            if log is not None:
                raise TypeError("DailyReturns: give log, not both log and log_returns")
            log = log_returns
        if log is None:
            raise TypeError("DailyReturns needs log=True (log returns) or log=False "
                            "(simple returns)")
        return super().__new__(cls, log_returns=check_bool("log", log),
                               mask=check_filter("mask", mask), **kwargs)

    def compute(self, today, assets, out, close, log_returns):
        out[:] = daily_returns(close, log=log_returns)[-1]


# --------------------------------------------------------------------------
# factor sources shared with the s-score factor
# --------------------------------------------------------------------------


def components_argument(components, k, owner):
    """``components``, or the deprecated ``k`` (named in errors as given)."""
    if k is None:
        return components, "components"
    warnings.warn(f"{owner}: k is deprecated; use components", DeprecationWarning,
                  stacklevel=3)
    if components is not None:
        raise TypeError(f"{owner}: give components, not both components and k")
    return k, "k"


def _resolve_symbols(names, bundle):
    """Assets for symbols: from the running algorithm, else from ``bundle``."""
    from zipline.utils.algo_instance import get_algo_instance

    algo = get_algo_instance()
    if algo is not None:
        return [algo.symbol(name) for name in names]
    if bundle is None:
        raise ValueError(
            f"factor assets {names} are symbols, but no algorithm is running to look them "
            "up: pass zipline Asset objects (e.g. from symbol() in initialize, or "
            "asset_finder.lookup_symbol) or bundle='BUNDLE' to look symbols up there"
        )
    from zipline.data.bundles import load

    from ..data.register import load_user_extensions

    load_user_extensions()  # our bundles and those of $ZIPLINE_ROOT/extension.py
    data = load(bundle)
    try:
        assets = []
        for name in names:
            try:
                assets.append(data.asset_finder.lookup_symbol(name, as_of_date=None))
            except Exception as exc:  # SymbolNotFound, MultipleSymbolsFound
                raise ValueError(
                    f"factor asset {name!r} not found in bundle {bundle!r}: {exc}"
                ) from None
        return assets
    finally:
        data.close()


def resolve_factor_source(factors, k, bundle=None, default_k=DEFAULT_K, name="k"):
    """Validate the factor source; return ``(assets or None, K)``.

    ``factors`` is ``'pca'`` (then ``k`` principal components) or a non-empty
    sequence of distinct zipline Assets (or symbols, see ``bundle``) whose
    daily returns are the factors (then ``k`` must be None or their count).
    ``name`` is the keyword ``k`` came in as (``components`` or ``k``).
    """
    if isinstance(factors, str):
        if factors.lower() != "pca":
            raise ValueError(
                f"factors must be 'pca' or a list of factor assets (e.g. ETFs), got {factors!r}"
            )
        k = default_k if k is None else check_int(name, k, 1)
        return None, k
    try:
        items = list(factors)
    except TypeError:
        raise TypeError(
            f"factors must be 'pca' or a list of factor assets, got {type(factors).__name__}"
        ) from None
    if not items:
        raise ValueError("factors is an empty list: give at least one factor asset, or 'pca'")
    for item in items:
        if not isinstance(item, (Asset, str)):
            raise TypeError(
                f"factor assets must be zipline Assets or symbols, got {type(item).__name__} "
                f"{item!r}"
            )
    names = [item for item in items if isinstance(item, str)]
    found = iter(_resolve_symbols(names, bundle) if names else [])
    assets = [item if isinstance(item, Asset) else next(found) for item in items]
    sids = [a.sid for a in assets]
    if len(set(sids)) != len(sids):
        raise ValueError(f"factor assets must be distinct, got {[a.symbol for a in assets]}")
    if k is not None and check_int(name, k, 1) != len(assets):
        raise ValueError(
            f"{name}={k} does not match the {len(assets)} factor assets; leave {name} out "
            f"with factor assets ({name} is the number of principal components for "
            "factors='pca')"
        )
    return tuple(assets), len(assets)


def factor_inputs(returns, assets):
    """Inputs of a factor: the returns term, then one slice per factor asset."""
    inputs = [returns]
    if assets:
        inputs.extend(returns[asset] for asset in assets)
    return inputs


class FactorSourceTerm:
    """What the terms with a factor source (``'pca'`` or factor assets) share."""

    @property
    def factor_assets(self):
        """The factor assets (empty for the 'pca' source)."""
        return tuple(term.asset for term in self.inputs[1:])

    def source_repr(self):
        """``pca(components=K)`` or the factor symbols, for ``__repr__``."""
        if not self.factor_assets:
            return f"pca(components={self.params['k']})"
        return "[" + ", ".join(str(a.symbol) for a in self.factor_assets) + "]"

    def graph_repr(self):
        return repr(self)

    @classmethod
    def _new_with_source(cls, assets, K, log_returns, mask, **kwargs):
        """``CustomFactor.__new__`` with the inputs of a factor source (last checks here)."""
        log_returns = check_bool("log_returns", log_returns)
        mask = check_filter("mask", mask)
        return super().__new__(cls, inputs=factor_inputs(DailyReturns(log=log_returns), assets),
                               mask=mask, k=K if assets is None else None, **kwargs)


# --------------------------------------------------------------------------
# the pipeline factor
# --------------------------------------------------------------------------


class KalmanInnovation(FactorSourceTerm, CustomFactor):
    r"""Kalman-filter innovation of each asset's return against factor returns.

    Runs the random-walk-beta Kalman filter (Kalman 1960; Durbin & Koopman
    2012) over the trailing ``window_length`` daily returns of every asset,
    from the prior :math:`\beta_0 = 0, P_0 = p_0 I`, against factor returns
    that are either the top ``components`` principal components of the
    window's cross-section or the returns of given factor assets (ETFs), and reports
    the last step (:func:`kalman_innovation_window`). The innovation
    :math:`e_t` is the residual-momentum signal of the dynamic
    factor-arbitrage study of the sector ETFs.

    Parameters
    ----------
    factors : 'pca' or sequence of zipline.assets.Asset or str
        ``'pca'`` (default): the factor returns are the scores of the top
        ``components`` principal components fitted on the window's returns of the
        assets in ``mask`` (assets with a missing return in the window are
        left out of the fit). A sequence of assets: their daily returns,
        wired as ``returns[asset]`` slices (like ``SimpleBeta``'s target), so
        they need not be in ``mask``. Symbols (str) are looked up in the
        running algorithm or, outside one, in ``bundle``.
    components : int, optional
        Number of principal components (``factors='pca'``, default 3). With
        factor assets leave it out (or give their number). ``k`` is its
        former name (keyword only, deprecated).
    window_length : int, default 252
        Number of daily returns in the window (``window_length + 1``
        closes).
    state_noise : float, default 1e-5
        :math:`\delta \ge 0`, variance of each beta's daily random-walk step
        (small: slowly moving betas; large: fast adaptation).
    obs_noise : float, default 1e-4
        :math:`v_e > 0`, observation noise variance (a daily return
        variance).
    p0 : float, default 1.0
        Prior variance of each beta.
    min_observations : int, optional
        Assets with fewer observed returns in the window (e.g. listed
        mid-window) get NaN. Default ``window_length // 4``.
    log_returns : bool, default True
        Log returns (as the study) or simple returns.
    mask : zipline.pipeline.Filter, optional
        The assets to compute and, with ``'pca'``, the cross-section the
        components are fitted on (e.g. ``IsStock()`` or a fixed ETF list);
        None (the default): every asset that exists.
    bundle : str, optional
        Bundle to look factor symbols up in outside an algorithm.

    Outputs
    -------
    innovation : :math:`e_t`
    standardized_innovation : :math:`e_t / \sqrt{Q_t}`
    innovation_variance : :math:`Q_t`
    n_observations : observed steps in the window
    beta_0 ... beta_{K-1} : filtered betas :math:`\hat\beta_{t|t}` on each
        factor, by 0-based position in the factor list (factor assets in the
        order given; with ``'pca'``, ``beta_j`` is the beta on component
        ``pc{j+1}``, by decreasing variance).

    Notes
    -----
    The value on session ``D`` uses returns up to the close of ``D - 1``
    (a pure function of that window). A missing return (or factor return)
    skips that update; an asset with fewer than ``min_observations`` updates
    gets NaN. Factor assets must exist somewhere in every pipeline chunk's
    date range (zipline's ``Slice`` raises
    ``NonExistentAssetInTimeFrame`` otherwise); before a factor asset is
    listed its returns are NaN and the filter skips those steps.

    Examples
    --------
    >>> from zipline_factorarb.pipeline.classifiers import IsStock
    >>> kf = KalmanInnovation(factors="pca", components=3, mask=IsStock())  # doctest: +SKIP
    >>> Pipeline({"signal": kf.standardized_innovation, "beta_mkt": kf.beta_0})  # doctest: +SKIP
    """

    dtype = float64_dtype
    window_safe = True
    params = ("k", "state_noise", "obs_noise", "p0", "min_observations")

    def __new__(cls, factors="pca", components=None, window_length=252, state_noise=1e-5,
                obs_noise=1e-4, p0=1.0, min_observations=None, log_returns=True, mask=None,
                bundle=None, *, k=None):
        window_length = check_int("window_length", window_length, 2)
        components, name = components_argument(components, k, "KalmanInnovation")
        assets, K = resolve_factor_source(factors, components, bundle, name=name)
        if assets is None and K >= window_length:
            raise ValueError(
                f"{name}={K} principal components need a window longer than {name}; got "
                f"window_length={window_length}"
            )
        state_noise = check_number("state_noise", state_noise, 0)
        obs_noise = check_number("obs_noise", obs_noise, 0, low_open=True)
        p0 = check_number("p0", p0, 0, low_open=True)
        if min_observations is None:
            min_observations = max(1, window_length // 4)
        min_observations = check_int("min_observations", min_observations, 1, window_length)
        outputs = ("innovation", "standardized_innovation", "innovation_variance",
                   "n_observations") + tuple(f"beta_{j}" for j in range(K))
        return cls._new_with_source(assets, K, log_returns, mask, outputs=outputs,
                                    window_length=window_length, state_noise=state_noise,
                                    obs_noise=obs_noise, p0=p0, min_observations=min_observations)

    def compute(self, today, assets, out, returns, *factor_returns, k,
                state_noise, obs_noise, p0, min_observations):
        factors = np.hstack(factor_returns) if factor_returns else None
        if factors is not None and factors.shape[1] > 1:  # ETF factors: say if collinear
            warn_collinear_once(self, factors, [str(a.symbol) for a in self.factor_assets])
        with one_blas_thread():
            res = kalman_innovation_window(
                returns, factors, k=k, state_noise=state_noise, obs_noise=obs_noise,
                p0=p0, min_observations=min_observations,
            )
        out.innovation[:] = res.innovations
        out.standardized_innovation[:] = res.standardized_innovations
        out.innovation_variance[:] = res.innovation_variance
        out.n_observations[:] = res.n_observations
        for j in range(res.betas.shape[1]):
            out[f"beta_{j}"][:] = res.betas[:, j]

    @property
    def n_factors(self):
        """K, the number of factors (and of ``beta_j`` outputs)."""
        return len(self.outputs) - 4

    @property
    def betas(self):
        """The ``beta_j`` outputs, in factor order."""
        return [getattr(self, f"beta_{j}") for j in range(self.n_factors)]

    def __repr__(self):
        return (
            f"{type(self).__name__}(factors={self.source_repr()}, "
            f"window_length={self.window_length}, state_noise={self.params['state_noise']}, "
            f"obs_noise={self.params['obs_noise']}, p0={self.params['p0']})"
        )


#: the ``signal`` of :func:`fixed_pca_signal`
FIXED_PCA_SIGNALS = ("pca_residual", "innovation", "kalman", "standardized_innovation")


def fixed_pca_signal(closes, fixed, signal="innovation", state_noise=1e-5, obs_noise=1e-4,
                     p0=1.0, log_returns=True, min_observations=1, centre=False):
    """One session's signal against fixed PCA loadings, from a window of closes.

    Parameters
    ----------
    closes : pandas.DataFrame
        Adjusted closes of the universe, oldest first, ending on the last
        close the signal may use.
    fixed : zipline_factorarb.pipeline.FixedPCA
        Loadings ``W`` (N, K) and mean ``mu`` fitted on the training window
        (:func:`~zipline_factorarb.pipeline.fit_fixed_pca`).
    signal : str
        ``"pca_residual"``: the residual ``eps_t = R_t - (F_t W' + mu)`` of
        the last day. ``"innovation"`` / ``"kalman"`` /
        ``"standardized_innovation"``: the Kalman filter on the factor
        returns ``F_t = (R_t - mu) W`` over the window's returns
        (:func:`kalman_innovation_window`).
    state_noise, obs_noise, p0, min_observations : float, int
        The filter's settings.
    log_returns : bool
        Log or simple returns (as the loadings were fitted).
    centre : bool
        Filter ``R_t - mu`` (the Kalman study) rather than ``R_t``.

    Returns
    -------
    pandas.Series
        The signal per asset (the columns of ``fixed.loadings``' index).
    """
    signal = check_choice("signal", signal, FIXED_PCA_SIGNALS)
    closes = closes[list(fixed.loadings.index)]
    returns = daily_returns(closes.to_numpy(dtype=np.float64), log=log_returns)
    mean = fixed.mean.to_numpy()
    scores, residuals = pca_residuals(returns, fixed.loadings.to_numpy(), mean)
    if signal == "pca_residual":
        values = residuals[-1]
    else:
        res = kalman_innovation_window(returns - mean if centre else returns, scores,
                                       state_noise=state_noise, obs_noise=obs_noise, p0=p0,
                                       min_observations=min_observations)
        values = (res.standardized_innovations if signal == "standardized_innovation"
                  else res.innovations)
    return pd.Series(values, index=closes.columns)
