"""A scikit-learn-style factor-model estimator for research (wraps the kernel)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..kernels import factor_model as fm
from .risk_model import RiskModel, _shared_dates

__all__ = ["FactorModel"]


class FactorModel(BaseEstimator):
    """Time-series factor model with OLS, ridge, lasso or elastic-net loadings.

    The parameters (``method``, ``lam``: one penalty, one per asset or None to choose
    it per asset by walk-forward cross-validation, ``cv``, ``grid``, ``l1_ratio``,
    ``add_constant``, ``halflife``, ``shrinkage``, ``min_observations``,
    ``specific_variance_floor``) are those of
    :func:`~zipline_factorarb.kernels.factor_model.fit_factor_model` (see that module
    for the objectives, the cross-validation and the default grids); ``get_params`` /
    ``set_params`` / ``sklearn.base.clone`` work as for any scikit-learn estimator.

    Attributes
    ----------
    loadings_ : pandas.DataFrame, shape (n_assets, n_factors)
    intercepts_ : pandas.Series
    lambda_ : pandas.Series
        The penalty used for each asset (0 for OLS).
    specific_variances_ : pandas.Series
    factor_covariance_ : pandas.DataFrame
    n_observations_ : pandas.Series
    diagnostics_ : dict
        Condition number, variance inflation factors (a Series by factor), the grid
        searched and its cross-validated mean squared errors.
    fit_ : FactorModelFit
        The kernel's arrays.

    Examples
    --------
    >>> model = FactorModel(method="ridge").fit(stock_returns, etf_returns)  # doctest: +SKIP
    >>> model.loadings_["SPY"].median(), model.lambda_.median()              # doctest: +SKIP
    >>> risk = model.risk_model()   # a RiskModel for the optimiser          # doctest: +SKIP
    """

    def __init__(self, method="ols", lam=None, cv=5, grid=None, l1_ratio=0.5, add_constant=True,
                 halflife=None, shrinkage="ledoit_wolf", min_observations=None,
                 specific_variance_floor=0.0):
        self.method = method
        self.lam = lam
        self.cv = cv
        self.grid = grid
        self.l1_ratio = l1_ratio
        self.add_constant = add_constant
        self.halflife = halflife
        self.shrinkage = shrinkage
        self.min_observations = min_observations
        self.specific_variance_floor = specific_variance_floor

    def fit(self, asset_returns, factor_returns):
        """Estimate the model.

        Parameters
        ----------
        asset_returns : pandas.DataFrame or array_like, shape (T, n)
            Dates x assets; NaN marks a missing return.
        factor_returns : pandas.DataFrame or array_like, shape (T, k)
            Dates x factors. With two DataFrames the dates are inner-joined.

        Returns
        -------
        self
        """
        if isinstance(asset_returns, pd.DataFrame) and isinstance(factor_returns, pd.DataFrame):
            R, X = _shared_dates(asset_returns, factor_returns)
            assets, factors = R.columns, X.columns
        else:
            R, X = np.asarray(asset_returns, dtype=float), np.asarray(factor_returns, dtype=float)
            if R.ndim != 2 or X.ndim != 2:
                raise ValueError("asset_returns and factor_returns must be 2-d")
            assets = pd.RangeIndex(R.shape[1])
            factors = pd.Index([f"factor_{j}" for j in range(X.shape[1])])
        lam = self.lam
        if isinstance(lam, pd.Series):
            lam = lam.reindex(assets).to_numpy(dtype=float)
        fit = fm.fit_factor_model(
            np.asarray(R, dtype=float), np.asarray(X, dtype=float), self.method, lam,
            cv=self.cv, grid=self.grid, l1_ratio=self.l1_ratio, add_constant=self.add_constant,
            min_observations=self.min_observations, halflife=self.halflife,
            shrinkage=self.shrinkage, specific_variance_floor=self.specific_variance_floor)
        self.fit_ = fit
        self.assets_ = assets
        self.factors_ = factors
        self.loadings_ = pd.DataFrame(fit.loadings, index=assets, columns=factors)
        self.intercepts_ = pd.Series(fit.intercepts, index=assets)
        self.lambda_ = pd.Series(fit.lambdas, index=assets)
        self.specific_variances_ = pd.Series(fit.specific_variance, index=assets)
        self.factor_covariance_ = pd.DataFrame(fit.factor_covariance, index=factors,
                                               columns=factors)
        self.n_observations_ = pd.Series(fit.n_observations, index=assets)
        diag = dict(fit.diagnostics)
        diag["vif"] = pd.Series(diag["vif"], index=factors)
        self.diagnostics_ = diag
        return self

    def predict(self, factor_returns):
        """Fitted asset returns ``c + X B'`` for factor returns (dates x factors)."""
        self._check_fitted()
        X = np.asarray(factor_returns, dtype=float)
        out = X @ self.loadings_.to_numpy().T + self.intercepts_.to_numpy()
        if isinstance(factor_returns, pd.DataFrame):
            return pd.DataFrame(out, index=factor_returns.index, columns=self.assets_)
        return out

    def risk_model(self):
        """The fitted model as a :class:`~zipline_factorarb.optimize.RiskModel`."""
        self._check_fitted()
        f = self.fit_
        return RiskModel.from_factor_model(
            self.assets_, list(self.factors_), f.loadings, f.factor_covariance,
            f.specific_variance, f.intercepts if self.add_constant else None, fit=f)

    def _check_fitted(self):
        if not hasattr(self, "fit_"):
            raise AttributeError("this FactorModel is not fitted yet: call fit first")
