r"""Avellaneda-Lee s-score: an Ornstein-Uhlenbeck fit to cumulative factor residuals.

Avellaneda, M. and Lee, J.-H. (2010), *Statistical Arbitrage in the US
Equities Market*, Quantitative Finance 10(7), 761-782, Appendix A. Over an
estimation window of ``W`` days (60 in the paper), for each asset:

1. Regress the asset's returns on the factor returns, with an intercept
   (ordinary least squares):

   .. math:: R_n = \beta_0 + \beta^\top F_n + \epsilon_n, \qquad n = 1..W.

2. Cumulate the residuals into the auxiliary process
   :math:`X_k = \sum_{j \le k} \epsilon_j` (:math:`k = 1..W`). Because the
   regression has an intercept, the residuals sum to zero and
   :math:`X_W = 0` (up to rounding).

3. Fit the AR(1) model (OLS with intercept, ``W - 1`` pairs)

   .. math:: X_{k+1} = a + b X_k + \zeta_{k+1},

   the discretisation of the OU process
   :math:`dX = \kappa (m - X) dt + \sigma dW`, and read off

   .. math::

       \kappa = -\ln(b) \cdot 252, \quad m = \frac{a}{1 - b}, \quad
       \sigma_{eq} = \sqrt{\frac{\operatorname{Var}(\zeta)}{1 - b^2}}.

4. The s-score is the distance of the current value of :math:`X` from its
   equilibrium in units of the equilibrium standard deviation:

   .. math:: s = \frac{X_W - m}{\sigma_{eq}} = -\frac{m}{\sigma_{eq}}
             \quad (X_W = 0).

This module implements this **standard** s-score. Two variants of the paper
are not applied by default: the cross-sectionally centred score, which
replaces :math:`m_i` by :math:`m_i - \langle m \rangle` (the mean over the
valid assets; ``center_m=True``), and the "modified" s-score of the paper's
section on drift, :math:`s - \alpha / (\kappa \sigma_{eq})` with
:math:`\alpha` the annualised drift :math:`252\,\beta_0` of the factor
regression (not implemented here).

Conventions
-----------
* :math:`\operatorname{Var}(\zeta)` is the sample variance of the AR(1)
  residuals with divisor ``W - 1`` (the number of residuals; numpy's
  ``var``), the plain variance of the fitted :math:`\zeta` series.
* ``mean_reversion_days`` is :math:`1/\kappa` expressed in sampling periods,
  i.e. :math:`-1/\ln b` (trading days for daily data). Avellaneda and Lee
  trade only names that revert fast, :math:`1/\kappa` under about half the
  estimation window; their cut of 30 days (:math:`\kappa > 252/30`) is the
  default ``max_mean_reversion_days``.
* ``valid`` is True where the window is complete, the fit is defined and
  ``0 < b < 1`` (a stationary, mean-reverting AR(1)) **and** the reversion is
  faster than ``max_mean_reversion_days``. ``s_score``, ``kappa``, ``m``,
  ``sigma_eq`` and ``mean_reversion_days`` are NaN where the fit is undefined
  or ``b`` is outside ``(0, 1)``; for names that only fail the speed cut they
  are reported (finite) but ``valid`` is False. Trade ``s_score`` where
  ``valid``.

The kernel is pure numpy and vectorised across assets: the factor regression
is one QR decomposition (or a stacked batch of them for per-asset factors)
and the AR(1) fit is closed form; there is no per-asset Python loop.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..checks import check_number
from .kalman import check_returns_and_factor_returns
from .pca import DEFAULT_COMPONENTS, pca_factor_returns
from .risk import regression_loadings

__all__ = ["SScoreResult", "sscore", "sscore_window"]


class SScoreResult(NamedTuple):
    """Output of :func:`sscore` (numpy arrays of shape (N,)).

    Attributes
    ----------
    s_score : ndarray
        :math:`(X_W - m)/\\sigma_{eq}`, NaN where the OU fit is undefined.
    kappa : ndarray
        Mean-reversion speed :math:`-\\ln(b) \\cdot` ``periods_per_year``.
    m : ndarray
        Equilibrium level :math:`a/(1-b)` of the cumulative residual.
    sigma_eq : ndarray
        Equilibrium standard deviation :math:`\\sqrt{Var(\\zeta)/(1-b^2)}`.
    mean_reversion_days : ndarray
        :math:`1/\\kappa` in sampling periods (:math:`-1/\\ln b`).
    valid : ndarray of bool
        Fit defined, ``0 < b < 1`` and reversion faster than the cut.
    """

    s_score: np.ndarray
    kappa: np.ndarray
    m: np.ndarray
    sigma_eq: np.ndarray
    mean_reversion_days: np.ndarray
    valid: np.ndarray


def _residuals(R, F):
    """OLS residuals of each column of R on [1, F], batched; plus a rank flag.

    Shared factors go through :func:`zipline_factorarb.kernels.risk.regression_loadings`
    (the time-series regression of the risk model); per-asset factors are solved by one
    stacked QR. The flag says whether ``[1, F]`` has full column rank.

    Parameters
    ----------
    R : ndarray (W, N), finite.
    F : ndarray (W, K) shared, or (W, N, K) per asset, finite.

    Returns
    -------
    eps : ndarray (W, N)
    full_rank : ndarray of bool (N,)
    """
    W, N = R.shape
    if F.ndim == 2:
        # shared factors: the package's one time-series regression
        fit = regression_loadings(R, F, add_constant=True, min_observations=1)
        d = np.linalg.svd(np.column_stack([np.ones(W), F]), compute_uv=False)
        full_rank = np.full(N, d.min() > d.max() * W * np.finfo(float).eps)
        return fit.residuals, full_rank
    X = np.concatenate([np.ones((N, W, 1)), F.transpose(1, 0, 2)], axis=2)  # (N, W, K+1)
    Qm, Rm = np.linalg.qr(X)  # stacked reduced QR
    y = R.T[:, :, None]  # (N, W, 1)
    eps = (y - Qm @ (Qm.transpose(0, 2, 1) @ y))[:, :, 0].T
    d = np.abs(np.diagonal(Rm, axis1=1, axis2=2))
    full_rank = d.min(axis=1) > d.max(axis=1) * W * np.finfo(float).eps
    return eps, full_rank


def sscore(returns_window, factor_returns_window, periods_per_year=252,
           max_mean_reversion_days=30.0, center_m=False):
    r"""Avellaneda-Lee s-score of each asset over one estimation window.

    Parameters
    ----------
    returns_window : array_like, shape (W, N)
        Asset returns over the window (60 days in the paper), oldest first.
    factor_returns_window : array_like, shape (W, K) or (W, N, K)
        Factor returns (e.g. ETF or PCA eigenportfolio returns), shared by
        all assets or one set per asset (e.g. each stock's sector ETF).
    periods_per_year : float
        Sampling periods per year used to annualise :math:`\kappa` (252).
    max_mean_reversion_days : float or None
        Keep (``valid``) only assets with :math:`1/\kappa` shorter than this
        many periods (30 days in the paper, :math:`\kappa > 252/30`). None
        disables the cut.
    center_m : bool
        If True, use :math:`m_i - \langle m \rangle` in the s-score, where
        :math:`\langle m \rangle` is the mean of ``m`` over the valid assets.
        The returned ``m`` is always the uncentred one.

    Returns
    -------
    SScoreResult
        ``s_score``, ``kappa``, ``m``, ``sigma_eq``, ``mean_reversion_days``
        and ``valid``, each of shape (N,).

    Notes
    -----
    An asset with any NaN in its returns or factor returns within the window
    (with shared factors: any NaN factor row invalidates every asset), a
    rank-deficient regression, a constant cumulative residual or an AR(1)
    coefficient ``b`` outside ``(0, 1)`` gets NaN outputs and ``valid`` False.

    References
    ----------
    Avellaneda, M. and Lee, J.-H. (2010). Statistical arbitrage in the US
    equities market. Quantitative Finance, 10(7), 761-782, Appendix A.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> f = rng.normal(0, 0.01, size=(60, 1))
    >>> r = 0.9 * f + rng.normal(0, 0.01, size=(60, 4))
    >>> res = sscore(r, f)
    >>> res.s_score.shape, res.valid.dtype
    ((4,), dtype('bool'))
    """
    R, F = check_returns_and_factor_returns(
        returns_window, factor_returns_window, ("returns_window", "factor_returns_window"), "W")
    W, N = R.shape
    K = F.shape[-1]
    if W < K + 4:
        raise ValueError(
            f"window of {W} rows is too short for {K} factors: need at least K + 4 = {K + 4}"
        )
    ppy = check_number("periods_per_year", periods_per_year, 0, low_open=True)
    max_mean_reversion_days = check_number("max_mean_reversion_days", max_mean_reversion_days,
                                           0, low_open=True, allow_none=True)

    # complete windows only
    finite = np.isfinite(R).all(axis=0)
    if F.ndim == 2:
        finite &= bool(np.isfinite(F).all())
    else:
        finite &= np.isfinite(F).all(axis=(0, 2))
    R0 = np.where(finite, R, 0.0)
    F0 = np.where(np.isfinite(F), F, 0.0)

    # 1. factor regression with intercept, 2. cumulative residuals
    eps, full_rank = _residuals(R0, F0)
    X = np.cumsum(eps, axis=0)  # (W, N)

    # 3. AR(1) with intercept, closed form: X_{k+1} = a + b X_k + zeta
    x, y = X[:-1], X[1:]
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    dx = x - xm
    sxx = np.einsum("ij,ij->j", dx, dx)
    sxy = np.einsum("ij,ij->j", dx, y - ym)
    ok = finite & full_rank & (sxx > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(ok, sxy / np.where(ok, sxx, 1.0), np.nan)
        a = ym - b * xm
        zeta = y - a - b * x
        var_zeta = zeta.var(axis=0)
        ok &= (b > 0) & (b < 1) & (var_zeta > 0)
        b = np.where(ok, b, np.nan)
        a = np.where(ok, a, np.nan)
        kappa = -np.log(b) * ppy
        m = a / (1.0 - b)
        sigma_eq = np.sqrt(var_zeta / (1.0 - b * b))
        mean_reversion_days = -1.0 / np.log(b)

    valid = ok.copy()
    if max_mean_reversion_days is not None:
        valid &= mean_reversion_days < float(max_mean_reversion_days)

    m_used = m
    if center_m and valid.any():
        m_used = m - m[valid].mean()
    s = (X[-1] - m_used) / sigma_eq
    return SScoreResult(s, kappa, m, sigma_eq, mean_reversion_days, valid)


def sscore_window(returns, factor_returns=None, k=DEFAULT_COMPONENTS, periods_per_year=252,
                  max_mean_reversion_days=30.0, center_m=False):
    """Avellaneda-Lee s-score of every asset over one returns window.

    What :class:`~zipline_factorarb.pipeline.sscore.SScore` computes for
    one session: the factor returns are the given ones or, when
    ``factor_returns`` is None, the scores of the top ``k`` principal
    components of ``returns`` (assets with a missing return left out of the
    fit); then :func:`sscore`.

    Parameters
    ----------
    returns : array_like, shape (W, N)
    factor_returns : array_like, shape (W, K), optional
    k : int
    periods_per_year, max_mean_reversion_days, center_m
        As in :func:`sscore`.

    Returns
    -------
    SScoreResult
        An asset with a missing return in the window (or any missing factor
        return) is not valid and has NaN outputs.
    """
    r = np.asarray(returns, dtype=np.float64)
    if factor_returns is None:
        f = pca_factor_returns(r, int(k))
    else:
        f = np.asarray(factor_returns, dtype=np.float64)
    return sscore(r, f, periods_per_year, max_mean_reversion_days, center_m)
