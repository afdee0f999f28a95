"""Daily returns from consecutive closes: the package's one definition.

Every daily return of the package (the pipeline's
:class:`~zipline_factorarb.pipeline.kalman.DailyReturns`, the fixed-PCA fit,
the research helpers) is :func:`daily_returns` of adjusted closes, with the
choice between log and simple returns made explicitly by the caller
(``log=``); see ``docs/glossary.md``.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_bool

__all__ = ["daily_returns"]


def daily_returns(prices, log):
    r"""Returns between consecutive rows of ``prices`` (oldest first).

    Parameters
    ----------
    prices : array_like, shape (T, ...)
        Adjusted closes; NaN (or a non-positive price) gives a NaN or
        infinite return, never an error.
    log : bool
        True: :math:`\ln(p_t / p_{t-1})`; False: :math:`p_t / p_{t-1} - 1`.
        No default: the caller says which.

    Returns
    -------
    ndarray, shape (T - 1, ...)
    """
    log = check_bool("log", log)
    p = np.asarray(prices, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = p[1:] / p[:-1]
        return np.log(ratio) if log else ratio - 1.0
