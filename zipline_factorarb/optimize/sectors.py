"""Sector rotation: optimise sector weights, hold each sector at its cap weights.

The research's sector-rotation portfolio chooses k sector weights ``x``; a mapping ``W``
(assets x sectors, within-sector cap weights) turns them into asset weights ``W x``.
Its active factor exposure is ``B (x - x_b)`` with sector loadings ``B = F W`` and its
specific risk is ``||sqrt(E) W (x - x_b)||^2``. Because every asset belongs to one
sector, ``W' diag(E) W`` is diagonal, so the sector problem is an ordinary factor risk
model whose "assets" are the sectors: loadings ``B``, the same factor covariance, and
specific variances ``sum_{i in s} W_is^2 E_i``. Any objective and constraint of this
package then applies to sectors unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..kernels import risk as kr
from ._base import as_series, label_codes, short_list
from .risk_model import RiskModel

__all__ = ["SectorRotationModel", "sector_rotation_model", "expand_sector_weights"]


class SectorRotationModel(NamedTuple):
    """Sector-level view of an asset risk model (see :func:`sector_rotation_model`).

    Attributes
    ----------
    risk_model : RiskModel
        Indexed by sector: loadings ``(F W)'``, specific variances ``diag(W' E W)``.
    mapping : pandas.DataFrame
        ``W``: assets x sectors, each column the sector's within-sector cap weights.
    benchmark_weights : pandas.Series
        Sector cap weights ``x_b`` (``W x_b`` is the asset cap-weighted benchmark).
    """

    risk_model: RiskModel
    mapping: pd.DataFrame
    benchmark_weights: pd.Series

    def asset_weights(self, sector_weights):
        """Asset weights ``W x`` of sector weights ``x``."""
        return expand_sector_weights(sector_weights, self.mapping)


def sector_rotation_model(risk_model, labels, market_caps):
    """Build the sector-level risk model of the research's sector rotation.

    Parameters
    ----------
    risk_model : RiskModel
        Asset-level model covering every labelled asset.
    labels : pandas.Series
        Sector of each asset; unlabelled (NaN) assets are left out.
    market_caps : pandas.Series
        Positive market cap (or size proxy) of every labelled asset.

    Returns
    -------
    SectorRotationModel
    """
    if not isinstance(labels, pd.Series):
        raise TypeError("labels must be a pandas Series: asset -> sector")
    labels = labels.dropna()
    caps = as_series(market_caps, "market_caps", finite=False).reindex(labels.index)
    bad = ~np.isfinite(caps.to_numpy()) | (caps.to_numpy() <= 0)
    if bad.any():
        raise ValueError(
            f"market_caps is missing or not positive for {int(bad.sum())} labelled assets: "
            f"{short_list(labels.index[bad])}"
        )
    sectors, codes = label_codes(labels.to_numpy())
    W, xb = kr.sector_mapping(codes, caps.to_numpy(), len(sectors))
    arr = risk_model._arrays(labels.index)
    B = arr.F @ W
    spec = (W * W).T @ arr.E
    sector_index = pd.Index(sectors)
    model = RiskModel(
        pd.DataFrame(B.T, index=sector_index, columns=risk_model.factors),
        risk_model.factor_covariance,
        pd.Series(spec, index=sector_index),
    )
    return SectorRotationModel(
        model,
        pd.DataFrame(W, index=labels.index, columns=sector_index),
        pd.Series(xb, index=sector_index),
    )


def expand_sector_weights(sector_weights, mapping):
    """Asset weights ``W x`` from sector weights ``x`` (missing sectors count as zero).

    Parameters
    ----------
    sector_weights : pandas.Series
    mapping : pandas.DataFrame
        Assets x sectors, as in :class:`SectorRotationModel`.

    Returns
    -------
    pandas.Series
    """
    x = as_series(sector_weights, "sector_weights")
    extra = x.index.difference(mapping.columns)
    if len(extra):
        raise ValueError("sector_weights has sectors missing from the mapping: "
                         f"{short_list(extra)}")
    xv = x.reindex(mapping.columns, fill_value=0.0).to_numpy()
    return pd.Series(mapping.to_numpy() @ xv, index=mapping.index)
