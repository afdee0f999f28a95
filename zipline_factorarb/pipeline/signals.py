"""Residual signals as alphas: the pipeline columns and the day's scores.

The flagship algorithms choose their alpha by name: ``"wls"`` (the WLS weighted
residual ``Z eps``), ``"kalman"`` (the Kalman filter's standardised innovation
``e_t / sqrt(Q_t)``), ``"sscore"`` (the Avellaneda-Lee s-score), or several of
them blended. :func:`signal_columns` builds the pipeline columns (every name
prefixed ``"signal:"``, so they cannot collide with a user's columns);
:func:`alpha_scores` turns one day's output into comparable scores (sector-
demeaned, winsorised z-scores, signed so that a high score means "expected to
rise") and :func:`expected_alphas` into per-period expected returns with
Grinold's rule. The arithmetic is :mod:`zipline_factorarb.kernels.signals`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..checks import check_choice, check_number
from ..kernels.signals import blend_scores, expected_returns_from_scores, standardize_scores
from .sampling import SAMPLING_FREQUENCIES

__all__ = ["SIGNALS", "DEFAULT_SIGNS", "PREFIX", "HORIZONS", "signal_columns", "alpha_scores",
           "expected_alphas", "market_inputs"]

#: the residual signals a flagship can use
SIGNALS = ("wls", "kalman", "sscore")

#: residuals mean-revert: a name that rose more than its factors explain is
#: expected to fall back, so every raw signal enters with a minus sign
DEFAULT_SIGNS = {"wls": -1.0, "kalman": -1.0, "sscore": -1.0}

PREFIX = "signal:"

_REBALANCE_DOWNSAMPLE = SAMPLING_FREQUENCIES


def _signal_names(signals):
    """``signals`` as a list of names, each one of :data:`SIGNALS`."""
    names = [signals] if isinstance(signals, str) else list(signals)
    if not names:
        raise ValueError(f"signals must be one or more of {SIGNALS}; got {signals!r}")
    return [check_choice("signals", name, SIGNALS) for name in names]


def signal_columns(signals, mask, *, wls=None, rebalance="day", volatility_window=63,
                   dollar_volume_window=21, kalman_options=None, sscore_options=None):
    """Pipeline columns for the chosen residual signals and the cost inputs.

    Parameters
    ----------
    signals : str or sequence of str
        Among :data:`SIGNALS`.
    mask : Filter
        The universe (e.g. ``IsStock() & Sector().notnull()``).
    wls : WLSResidual, optional
        The regression to read ``"wls"`` from (default: ``WLSResidual(mask=mask)``,
        industry variant); pass yours to share it with other columns (e.g. its
        loadings).
    rebalance : {"day", "week", "month"}
        The single-output columns (volatility, dollar volume) are computed only on
        the sessions the algorithm rebalances on (``downsample``); zipline cannot
        downsample the residual terms, which have several outputs.
    volatility_window, dollar_volume_window : int
        Sessions for the daily volatility (``signal:volatility``, the standard
        deviation of daily returns) and the average dollar volume
        (``signal:dollar_volume``): the market-impact inputs and Grinold's sigma.
    kalman_options, sscore_options : dict, optional
        Keyword arguments of :class:`KalmanInnovation` and :class:`SScore`.

    Returns
    -------
    dict
        ``{"signal:<name>": term, "signal:volatility": ..., "signal:dollar_volume":
        ..., "signal:volume": the latest volume, "signal:sector": Sector()}``.
    """
    from zipline.pipeline.data import EquityPricing
    from zipline.pipeline.factors import AnnualizedVolatility, AverageDollarVolume

    from .classifiers import Sector

    names = _signal_names(signals)
    frequency = _REBALANCE_DOWNSAMPLE[check_choice("rebalance", rebalance,
                                                   sorted(_REBALANCE_DOWNSAMPLE))]

    def every(term):
        return term if frequency is None else term.downsample(frequency)

    columns = {}
    for name in names:
        # zipline cannot downsample terms with several outputs: the residual terms
        # are computed every session (about a millisecond each at 500 assets)
        if name == "wls":
            if wls is None:
                from .wls import WLSResidual

                wls = WLSResidual(mask=mask)
            columns[PREFIX + name] = wls.weighted_residual
        elif name == "kalman":
            from .kalman import KalmanInnovation

            term = KalmanInnovation(mask=mask, **(kalman_options or {}))
            columns[PREFIX + name] = term.standardized_innovation
        else:
            from .sscore import SScore

            columns[PREFIX + name] = SScore(mask=mask, **(sscore_options or {})).s_score
    columns[PREFIX + "volatility"] = every(AnnualizedVolatility(
        window_length=volatility_window, annualization_factor=1, mask=mask))
    columns[PREFIX + "dollar_volume"] = every(AverageDollarVolume(
        window_length=dollar_volume_window, mask=mask))
    columns[PREFIX + "volume"] = EquityPricing.volume.latest
    columns[PREFIX + "sector"] = Sector()
    return columns


def market_inputs(frame):
    """``(volatility, dollar_volume)`` for the market-impact cost, or ``(None, None)``.

    None when the day's volumes are the same for every asset: a stand-in (the
    sample bundle's), which says nothing about liquidity, so only the linear costs
    apply (:meth:`~zipline_factorarb.optimize.CostModel.terms` says so once).
    """
    frame = _one_day(frame)
    volume = frame[PREFIX + "volume"].to_numpy(dtype=float)
    volume = volume[np.isfinite(volume)]
    if volume.size < 2 or np.ptp(volume) == 0:
        return None, None
    return frame[PREFIX + "volatility"], frame[PREFIX + "dollar_volume"]


def alpha_scores(frame, signals, signs=None, weights=None, winsor=3.0):
    """One day's comparable alpha scores from :func:`signal_columns` output.

    Each signal is signed (``signs``, default :data:`DEFAULT_SIGNS`), demeaned within
    sectors, z-scored and winsorised at ``winsor``; several are blended with
    ``weights`` (default equal) and re-standardised.

    Returns
    -------
    pandas.Series
        Scores by asset (mean 0, standard deviation 1), assets without any signal
        dropped.

    Raises
    ------
    ValueError
        When the frame has no rows or no signal values (e.g. the first sessions of
        a backtest, before the signal's window is full), naming the date.
    """
    names = _signal_names(signals)
    signs = {**DEFAULT_SIGNS, **(signs or {})}
    when = _date_of(frame)
    frame = _one_day(frame)
    missing = [PREFIX + n for n in names if PREFIX + n not in frame.columns]
    if missing:
        raise KeyError(f"pipeline output has no column {missing[0]!r}: build the pipeline "
                       f"with signal_columns({names!r}, ...)")
    if frame.empty:
        raise ValueError(f"the pipeline output{when} is empty: no asset passed the screen "
                         "(too early in the data for the signals' windows? start the "
                         "backtest later or shorten the windows)")
    sectors = frame[PREFIX + "sector"].to_numpy() if PREFIX + "sector" in frame else None
    rows = []
    for n in names:
        raw = pd.to_numeric(frame[PREFIX + n], errors="coerce").to_numpy(dtype=float)
        rows.append(standardize_scores(signs[n] * raw, sectors, winsor))
    w = None if weights is None else np.array([float(weights.get(n, 0.0)) for n in names])
    z = rows[0] if len(rows) == 1 else blend_scores(np.vstack(rows), w)
    out = pd.Series(z, index=frame.index).dropna()
    if out.empty:
        raise ValueError(f"no asset has a value of {', '.join(names)} in the pipeline "
                         f"output{when} (too early for the signals' windows? start the "
                         "backtest later or shorten the windows)")
    return out


def expected_alphas(frame, scores, information_coefficient, horizon=1):
    """Expected returns over ``horizon`` sessions of ``scores`` (Grinold's rule).

    ``IC * sigma * sqrt(horizon) * z``: ``sigma`` is the ``signal:volatility`` column
    (daily volatility), scaled to the holding period, so that the alpha of a
    weekly book (``horizon=5``) is weighed against a rebalance's one-off costs at
    the right size; ``information_coefficient`` is the IC at that horizon. Assets
    without a volatility are dropped.
    """
    frame = _one_day(frame)
    horizon = check_number("horizon", horizon, 1)  # sessions
    sigma = frame[PREFIX + "volatility"].reindex(scores.index).to_numpy(dtype=float)
    alpha = expected_returns_from_scores(scores.to_numpy(dtype=float),
                                         sigma * np.sqrt(horizon), information_coefficient)
    out = pd.Series(alpha, index=scores.index)
    return out[np.isfinite(out.to_numpy())]


#: sessions between rebalances, for :func:`expected_alphas`' horizon
HORIZONS = {"day": 1, "week": 5, "month": 21, "quarter": 63}


def _one_day(frame):
    if isinstance(frame.index, pd.MultiIndex):
        last = frame.index.get_level_values(0).max()
        frame = frame.xs(last, level=0)
    return frame


def _date_of(frame):
    if isinstance(frame.index, pd.MultiIndex) and len(frame):
        return f" on {pd.Timestamp(frame.index.get_level_values(0).max()).date()}"
    try:
        from zipline.api import get_datetime

        return f" on {get_datetime().date()}"
    except Exception:  # noqa: BLE001 - outside an algorithm
        return ""
