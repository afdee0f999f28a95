"""Transaction and holding cost kernels (cvxportfolio / Almgren forms).

Pure numpy, no pandas and no zipline. Two unit systems:

* **weights**: trades ``z = w - w0`` and weights ``w`` are fractions of portfolio value
  ``PV``; costs are fractions of ``PV`` too (what the optimiser sees);
* **dollars**: a trade of ``x`` dollars costs dollars (what zipline charges).

The costs, per asset ``i``:

* linear (half-spread plus commission): ``c_i |z_i|``, in dollars ``c_i |x_i|``;
* market impact: ``b_i sigma_i |x_i|^{3/2} / sqrt(V_i)`` dollars for a dollar trade
  ``x_i`` (``sigma``: daily return volatility, ``V``: average daily dollar volume,
  ``b``: impact coefficient, 1 by default as in cvxportfolio); with ``x = PV z`` this is
  ``k_i |z_i|^{3/2}`` of ``PV`` with ``k_i = b_i sigma_i sqrt(PV / V_i)``;
* borrow: ``f_i max(-w_i, 0)`` with ``f_i = r_i * holding_periods / periods_per_year``
  for an annual borrow rate ``r_i``.

The same numbers price a fill: a dollar trade ``x`` fills ``s(x) = half_spread +
b sigma sqrt(|x| / V)`` away from the close, adverse to the trader, so its slippage is
``s(x) |x| = half_spread |x| + b sigma |x|^{3/2} / sqrt(V)`` dollars.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "linear_cost",
    "impact_coefficient",
    "impact_cost",
    "borrow_fraction",
    "borrow_cost",
    "dollar_impact",
    "slippage_fraction",
]


def linear_cost(trades, rate):
    """Per-asset linear cost ``rate * |trades|`` (array, or scalar ``rate``)."""
    return np.asarray(rate, dtype=float) * np.abs(np.asarray(trades, dtype=float))


def impact_coefficient(coefficient, volatility, dollar_volume, portfolio_value):
    """Impact coefficient in weight units, ``k = b sigma sqrt(PV / V)``.

    Parameters
    ----------
    coefficient : float or ndarray
        ``b`` (dimensionless).
    volatility : ndarray
        ``sigma``, daily return volatility.
    dollar_volume : ndarray
        ``V``, average daily dollar volume (positive).
    portfolio_value : float
        ``PV`` (positive).
    """
    return (np.asarray(coefficient, dtype=float) * np.asarray(volatility, dtype=float)
            * np.sqrt(float(portfolio_value) / np.asarray(dollar_volume, dtype=float)))


def impact_cost(trades, k):
    """Per-asset market-impact cost ``k |trades|^{3/2}`` (weights, with ``k`` from
    :func:`impact_coefficient`)."""
    return np.asarray(k, dtype=float) * np.abs(np.asarray(trades, dtype=float)) ** 1.5


def borrow_fraction(annual_rate, holding_periods=21, periods_per_year=252):
    """Borrow charge per unit of short weight over the holding period,
    ``annual_rate * holding_periods / periods_per_year``."""
    return np.asarray(annual_rate, dtype=float) * (holding_periods / periods_per_year)


def borrow_cost(weights, fraction):
    """Per-asset borrow cost ``fraction * max(-weights, 0)`` of the short positions."""
    return np.asarray(fraction, dtype=float) * np.maximum(-np.asarray(weights, dtype=float), 0.0)


def dollar_impact(dollars, coefficient, volatility, dollar_volume):
    """Market impact in dollars of dollar trades ``x``: ``b sigma |x|^{3/2} / sqrt(V)``,
    the impact part of :func:`slippage_fraction` times ``|x|``."""
    x = np.abs(np.asarray(dollars, dtype=float))
    return slippage_fraction(x, 0.0, coefficient, volatility, dollar_volume) * x


def slippage_fraction(dollars, half_spread, coefficient=0.0, volatility=0.0, dollar_volume=np.inf):
    """Fractional distance of the fill price from the close, ``half_spread + b sigma
    sqrt(|x| / V)``, for dollar trades ``x`` (``V = inf`` or ``sigma = 0``: the spread
    only)."""
    x = np.abs(np.asarray(dollars, dtype=float))
    return half_spread + (np.asarray(coefficient, dtype=float) * np.asarray(volatility, dtype=float)
                          * np.sqrt(x / np.asarray(dollar_volume, dtype=float)))
