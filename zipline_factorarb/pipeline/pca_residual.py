r"""Static PCA residuals: rolling (a Pipeline factor) and with fixed loadings.

The static factor model of the dynamic factor-arbitrage study of the SPDR
sector ETFs: with loadings :math:`W` (the top ``k`` eigenvectors of the
sample covariance of a returns window, :func:`~zipline_factorarb.kernels.pca.pca_factors`)
and the per-asset mean :math:`\mu` of that window, the factor scores and the
residual of a day's returns :math:`R_t` (a row vector) are

.. math::

    F_t = (R_t - \mu) W, \qquad
    \varepsilon_t = R_t - (F_t W^\top + \mu) = (R_t - \mu)(I - W W^\top).

Two ways to choose :math:`W` and :math:`\mu`:

- **rolling** (:class:`PCAResidual`): refitted every session on the
  trailing ``window_length`` (60) daily returns, and the residual of the
  window's last day is reported (:func:`pca_residual_window`);
- **fixed** (:func:`fit_fixed_pca`, :func:`fixed_pca_residuals`): fitted once
  on a training window and applied unchanged to every later day, as the
  study's walk-forward folds do. The fit reads only the rows of the training
  window, whatever data it is handed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from zipline.pipeline import CustomFactor
from zipline.utils.numpy_utils import float64_dtype

from ..checks import check_bool, check_filter, check_int
from ..kernels.pca import pca_factors, pca_residual_window, pca_residuals
from ..kernels.returns import daily_returns
from ._threads import one_blas_thread
from .kalman import DEFAULT_K, DailyReturns, components_argument

__all__ = [
    "FixedPCA",
    "PCAResidual",
    "fit_fixed_pca",
    "fixed_pca_residuals",
    "pca_residual_window",
]


# --------------------------------------------------------------------------
# window functions (no engine)
# --------------------------------------------------------------------------


class FixedPCA(NamedTuple):
    """Loadings and mean fitted once on a training window (:func:`fit_fixed_pca`).

    Attributes
    ----------
    loadings : pandas.DataFrame, shape (N, k)
        :math:`W`, indexed by the columns of the prices it was fitted on.
    mean : pandas.Series, shape (N,)
        :math:`\\mu`, the training window's mean daily return per asset.
    explained_variance_ratio : ndarray, shape (k,)
    train_start, train_end : pandas.Timestamp
        First and last training return actually used.
    n_returns : int
        Number of daily returns in the fit.
    """

    loadings: pd.DataFrame
    mean: pd.Series
    explained_variance_ratio: np.ndarray
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    n_returns: int


def _naive_days(index):
    index = pd.DatetimeIndex(index)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.normalize()


def fit_fixed_pca(prices, train_start, train_end, components=None, log_returns=True, *, k=None):
    r"""Fit the fixed loadings :math:`W` and mean :math:`\mu` on a training window.

    Only the rows of ``prices`` dated within ``[train_start, train_end]``
    are read: the returns are those between consecutive closes of the
    training window (the first training close starts the first return), so
    the result does not depend on anything outside the window.

    Parameters
    ----------
    prices : pandas.DataFrame
        Daily closes (adjusted), one column per asset, indexed by session.
    train_start, train_end : date-like
        The training window, both ends included.
    components : int, optional
        Number of principal components (default 3); the loadings' columns
        are ``pc1`` .. ``pcK``. ``k`` is its former name (keyword only,
        deprecated).
    log_returns : bool, default True
        :math:`\ln(p_t/p_{t-1})` (as the study) or :math:`p_t/p_{t-1} - 1`.

    Returns
    -------
    FixedPCA

    Raises
    ------
    ValueError
        When the window is empty or reversed, holds fewer than ``k + 1``
        returns, or an asset has a missing return in it.
    """
    if train_start in (None, "") or train_end in (None, ""):
        raise ValueError(
            "fixed PCA needs a training window: set train_start and train_end "
            f"(got train_start={train_start!r}, train_end={train_end!r})"
        )
    start = pd.Timestamp(train_start).tz_localize(None).normalize()
    end = pd.Timestamp(train_end).tz_localize(None).normalize()
    if end < start:
        raise ValueError(f"train_end {end.date()} is before train_start {start.date()}")
    components, name = components_argument(components, k, "fit_fixed_pca")
    k = check_int(name, DEFAULT_K if components is None else components, 1)
    days = _naive_days(prices.index)
    window = prices.loc[(days >= start) & (days <= end)].astype(np.float64)
    returns = pd.DataFrame(daily_returns(window.to_numpy(), log=check_bool("log_returns",
                                                                          log_returns)),
                           index=window.index[1:], columns=window.columns)
    if len(returns) <= k:
        raise ValueError(
            f"training window {start.date()} .. {end.date()} holds {len(returns)} daily "
            f"returns; fitting {name}={k} components needs more than {name}"
        )
    missing = [str(c) for c in returns.columns if not np.isfinite(returns[c]).all()]
    if missing:
        raise ValueError(f"missing returns in the training window for: {', '.join(missing)}")
    with one_blas_thread():
        fit = pca_factors(returns.to_numpy(), k)
    columns = [f"pc{j + 1}" for j in range(k)]
    return FixedPCA(
        loadings=pd.DataFrame(fit.loadings, index=returns.columns, columns=columns),
        mean=pd.Series(fit.mean, index=returns.columns),
        explained_variance_ratio=fit.explained_variance_ratio,
        train_start=_naive_days(returns.index)[0],
        train_end=_naive_days(returns.index)[-1],
        n_returns=len(returns),
    )


#: Scores and residuals of returns against fixed loadings and mean: the kernel
#: :func:`~zipline_factorarb.kernels.pca.pca_residuals` (``F_t = (R_t - mu) W``,
#: ``eps_t = R_t - (F_t W' + mu)``; NaN on a day with a missing return).
fixed_pca_residuals = pca_residuals


# --------------------------------------------------------------------------
# the Pipeline factor (rolling PCA)
# --------------------------------------------------------------------------


class PCAResidual(CustomFactor):
    r"""Residual of the last day of a trailing window against the window's PCA.

    Every session the top ``components`` principal components of the trailing
    ``window_length`` daily returns of the assets in ``mask`` are fitted
    (:func:`~zipline_factorarb.kernels.pca.pca_factors`) and the residual
    :math:`\varepsilon_T = R_T - (F_T W^\top + \mu)` of the window's last day
    is reported (:func:`~zipline_factorarb.kernels.pca.pca_residual_window`):
    the rolling-PCA signal of the
    sector-ETF study (60-day window).

    Parameters
    ----------
    components : int, optional
        Number of principal components (default 3); ``k`` is its former
        name (keyword only, deprecated).
    window_length : int, default 60
        Daily returns in the window (``window_length + 1`` closes).
    log_returns : bool, default True
        Log returns (as the study) or simple returns.
    mask : zipline.pipeline.Filter, optional
        The assets to compute and the cross-section the components are
        fitted on. Pass one: without it (or with None) every asset of the
        bundle enters.

    Notes
    -----
    The value on session ``D`` uses the returns up to the close of ``D - 1``
    and is a pure function of that window. Assets with a missing return in
    the window are left out of the fit and get NaN.
    """

    dtype = float64_dtype
    window_safe = True
    params = ("k",)

    def __new__(cls, components=None, window_length=60, log_returns=True, mask=None, *,
                k=None):
        window_length = check_int("window_length", window_length, 2)
        components, name = components_argument(components, k, "PCAResidual")
        k = check_int(name, DEFAULT_K if components is None else components, 1)
        if k >= window_length:
            raise ValueError(
                f"{name}={k} principal components need a window longer than {name}; got "
                f"window_length={window_length}"
            )
        return super().__new__(
            cls,
            inputs=(DailyReturns(log=check_bool("log_returns", log_returns)),),
            window_length=window_length,
            mask=check_filter("mask", mask),
            k=k,
        )

    def compute(self, today, assets, out, returns, k):
        with one_blas_thread():
            out[:] = pca_residual_window(returns, k)

    def __repr__(self):
        return f"{type(self).__name__}(k={self.params['k']}, window_length={self.window_length})"

    def graph_repr(self):
        return repr(self)
