r"""Pipeline factor: the Avellaneda-Lee (2010) s-score of factor residuals.

:class:`SScore` adapts :func:`zipline_factorarb.kernels.ou.sscore` to
zipline's Pipeline in the pattern of zipline's ``SimpleBeta``: arguments are
validated in ``__new__``, inputs (daily returns, and a ``returns[asset]``
slice per factor ETF) are wired there, and ``compute`` hands the window to
the kernel :func:`~zipline_factorarb.kernels.ou.sscore_window` (re-exported
here), tested without an engine.

Over the trailing ``window_length`` (60) daily returns of each asset, the
returns are regressed on the factor returns with an intercept, the residuals
are cumulated into :math:`X_k`, an AR(1) :math:`X_{k+1} = a + b X_k +
\zeta` is fitted (the discretised Ornstein-Uhlenbeck process
:math:`dX = \kappa(m - X)dt + \sigma dW`), and

.. math::

    \kappa = -252 \ln b, \quad m = \frac{a}{1-b}, \quad
    \sigma_{eq} = \sqrt{\frac{Var(\zeta)}{1 - b^2}}, \quad
    s = \frac{X_W - m}{\sigma_{eq}}.

Avellaneda and Lee trade only names whose mean reversion is fast,
:math:`1/\kappa` under 30 trading days (``max_mean_reversion_days``); the
``valid`` output is 1.0 for those and :meth:`SScore.mean_reverting` is the
matching filter. Their trading bands on ``s``: open long below -1.25, open
short above 1.25, close a short below 0.75, close a long above -0.5.
"""

from __future__ import annotations

import numpy as np
from zipline.pipeline import CustomFactor
from zipline.utils.numpy_utils import float64_dtype

from ..checks import check_bool, check_int, check_number
from ..kernels.ou import sscore_window
from ._threads import one_blas_thread
from .kalman import FactorSourceTerm, components_argument, resolve_factor_source

__all__ = ["SScore", "sscore_window"]

OUTPUTS = ("s_score", "kappa", "m", "sigma_eq", "mean_reversion_days", "valid")


class SScore(FactorSourceTerm, CustomFactor):
    r"""Avellaneda-Lee s-score: OU fit to cumulative factor-model residuals.

    Parameters
    ----------
    factors, components, mask, bundle
        The factor source and the assets, as in
        :class:`~zipline_factorarb.pipeline.KalmanInnovation`.
    window_length : int, default 60
        Estimation window in daily returns (60 in the paper).
    max_mean_reversion_days : float or None, default 30
        ``valid`` only where :math:`1/\kappa` is shorter than this many
        sessions (the paper's cut, :math:`\kappa > 252/30`); None: no cut.
    periods_per_year : float, default 252
        Annualisation of :math:`\kappa`.
    center_m : bool, default False
        Use :math:`m_i - \langle m \rangle` over the valid assets (the
        paper's centred variant).
    log_returns : bool, default False
        Simple returns as in the paper, or log returns.

    Outputs
    -------
    s_score, kappa, m, sigma_eq, mean_reversion_days
        As in :class:`~zipline_factorarb.kernels.ou.SScoreResult`; NaN where
        the OU fit is undefined (missing data, :math:`b \notin (0, 1)`).
    valid
        1.0 where the fit is defined and the reversion is faster than the
        cut, else 0.0. :meth:`mean_reverting` is the filter ``valid == 1``.

    Notes
    -----
    The value on session ``D`` uses returns up to the close of ``D - 1``
    and is a pure function of that window (independent of the backtest
    start and of chunking).

    References
    ----------
    Avellaneda, M. and Lee, J.-H. (2010). Statistical arbitrage in the US
    equities market. Quantitative Finance, 10(7), 761-782.
    """

    dtype = float64_dtype
    window_safe = True
    outputs = OUTPUTS
    params = ("k", "periods_per_year", "max_mean_reversion_days", "center_m")

    def __new__(cls, factors="pca", components=None, window_length=60,
                max_mean_reversion_days=30.0, periods_per_year=252, center_m=False,
                log_returns=False, mask=None, bundle=None, *, k=None):
        window_length = check_int("window_length", window_length, 3)
        components, name = components_argument(components, k, "SScore")
        assets, K = resolve_factor_source(factors, components, bundle, name=name)
        if window_length < K + 4:
            raise ValueError(
                f"window_length={window_length} is too short for {K} factors: the "
                f"regression and AR(1) fit need at least K + 4 = {K + 4} returns"
            )
        max_mean_reversion_days = check_number("max_mean_reversion_days",
                                               max_mean_reversion_days, 0, low_open=True,
                                               allow_none=True)
        periods_per_year = check_number("periods_per_year", periods_per_year, 0, low_open=True)
        center_m = check_bool("center_m", center_m)
        return cls._new_with_source(assets, K, log_returns, mask, window_length=window_length,
                                    periods_per_year=periods_per_year,
                                    max_mean_reversion_days=max_mean_reversion_days,
                                    center_m=center_m)

    def compute(self, today, assets, out, returns, *factor_returns, k,
                periods_per_year, max_mean_reversion_days, center_m):
        factors = np.hstack(factor_returns) if factor_returns else None
        with one_blas_thread():
            res = sscore_window(
                returns, factors, k=k, periods_per_year=periods_per_year,
                max_mean_reversion_days=max_mean_reversion_days, center_m=center_m,
            )
        out.s_score[:] = res.s_score
        out.kappa[:] = res.kappa
        out.m[:] = res.m
        out.sigma_eq[:] = res.sigma_eq
        out.mean_reversion_days[:] = res.mean_reversion_days
        out.valid[:] = res.valid.astype(np.float64)

    def mean_reverting(self):
        """Filter: the fit is valid and reverts faster than the cut (``valid``)."""
        return self.valid > 0.5

    def __repr__(self):
        return (
            f"{type(self).__name__}(factors={self.source_repr()}, "
            f"window_length={self.window_length}, "
            f"max_mean_reversion_days={self.params['max_mean_reversion_days']})"
        )
