"""Factor risk model and benchmark weights (pandas adapters over ``kernels.risk``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..kernels import risk as kr
from ._base import KeepsInputErrors, _lenient, as_frame, as_series, check_finite, short_list
from .errors import InvalidInput, UnknownAssets

__all__ = ["RiskModel", "RiskDecomposition", "DegenerateRiskWarning",
           "make_benchmark_weights", "proxy_benchmark_weights"]

#: per-period variance at or below which an asset counts as riskless in the model (a
#: daily volatility of 1e-7): an optimiser would treat it as free of risk
MIN_ASSET_VARIANCE = 1e-14


class DegenerateRiskWarning(UserWarning):
    """Some assets have (nearly) zero variance in the risk model."""

#: name of the intercept factor added by :meth:`RiskModel.from_returns`
CONSTANT = "const"


def _shared_dates(asset_returns, factor_returns):
    """The two DataFrames on their common dates; ValueError when they share fewer than 3."""
    dates = asset_returns.index.intersection(factor_returns.index)
    if len(dates) < 3:
        raise ValueError(
            f"asset_returns and factor_returns share only {len(dates)} dates; align them")
    return asset_returns.loc[dates], factor_returns.loc[dates]


class _RiskArrays(NamedTuple):
    F: np.ndarray  # (m, n) loadings on the universe
    E: np.ndarray  # (n,) specific variance
    G: np.ndarray  # (m, n) R @ F with R'R = factor covariance
    s: np.ndarray  # (n,) sqrt(E)


@dataclass(frozen=True)
class RiskDecomposition:
    """Euler risk decomposition of a portfolio's (active) variance.

    Attributes
    ----------
    by_factor : pandas.Series
        Variance contributions of each factor plus a final ``"specific"`` entry.
    by_asset : pandas.Series
        Variance contributions of each asset.
    total : float
        The variance; equals ``by_factor.sum()`` and ``by_asset.sum()``.
    periods_per_year : float
        Scale applied to the per-period variances (1: per period).
    """

    by_factor: pd.Series
    by_asset: pd.Series
    total: float
    periods_per_year: float

    @property
    def volatility(self):
        """``sqrt(total)``: the tracking error when computed on active weights."""
        return float(np.sqrt(max(self.total, 0.0)))


class RiskModel(KeepsInputErrors):
    """Factor risk model ``Sigma = F' Sigma_f F + diag(E)`` indexed by asset.

    Parameters
    ----------
    loadings : pandas.DataFrame
        Factor loadings, one row per asset, one column per factor (the research's F
        transposed). A constant column (intercepts) is allowed; give it a zero row and
        column in ``factor_covariance``.
    factor_covariance : pandas.DataFrame or array_like
        Per-period factor covariance; a DataFrame is reordered to the loadings' columns,
        an array must already follow them.
    specific_variance : pandas.Series
        Per-period idiosyncratic variance of every asset in ``loadings``.

    Raises
    ------
    TypeError
        An argument of the wrong type (not a DataFrame / Series, or not numbers).
    ValueError
        A ``factor_covariance`` whose shape or factor labels do not match the loadings'
        columns (a programming error: raised at once).

    Notes
    -----
    All variances are per period (daily, monthly, ...); annualise with
    ``periods_per_year`` where a method asks for it. Estimate the model from return
    histories with :meth:`from_returns`.

    A problem with the numbers themselves (NaN or infinity in any input, an empty or
    all-NaN loadings table, a duplicated asset, a specific variance missing for an
    asset of the loadings or negative, a factor covariance that is not symmetric or not
    positive semi-definite) does not raise when the model is built: the model keeps the
    first such problem, an :class:`~zipline_factorarb.optimize.errors.InvalidInput`
    naming the input and the asset or factor pair (a
    :class:`~zipline_factorarb.optimize.errors.NonFiniteInput` for NaN or infinity),
    and raises it whenever its risk numbers are used: when a term that uses the model
    is solved (so that ``order_optimal_portfolio(..., on_failure="hold")`` holds on
    it and records why) and in :meth:`covariance`, :meth:`variance`,
    :meth:`tracking_error`, :meth:`decompose` and :meth:`risk_contributions`.
    """

    def __init__(self, loadings, factor_covariance, specific_variance):
        loadings = self._checked(lambda: as_frame(loadings, "RiskModel.loadings"),
                                 lambda: _lenient(loadings, frame=True))
        loadings = loadings.loc[:, ~loadings.columns.duplicated()]
        factors = loadings.columns
        if isinstance(factor_covariance, pd.DataFrame):
            missing = factors.difference(factor_covariance.index).union(
                factors.difference(factor_covariance.columns)
            )
            if len(missing):
                raise ValueError(
                    f"factor_covariance lacks factors {short_list(missing)} of the loadings"
                )
            cov = factor_covariance.loc[factors, factors]
            if not (cov.index.is_unique and cov.columns.is_unique):
                raise ValueError("factor_covariance has duplicated factor labels")
        else:
            cov = factor_covariance
        try:
            cov = np.asarray(cov, dtype=float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"RiskModel.factor_covariance must hold numbers: {exc}") from None
        if cov.shape != (len(factors), len(factors)):
            raise ValueError(
                f"factor_covariance must be {len(factors)} x {len(factors)} to match the "
                f"loadings' columns, got shape {cov.shape}"
            )
        self._checked(lambda: check_finite(cov.ravel(), [(i, j) for i in factors for j in factors],
                                           "RiskModel.factor_covariance"))
        if self._input_error is None and not np.allclose(cov, cov.T, rtol=1e-8, atol=1e-14):
            self._defer(InvalidInput("RiskModel.factor_covariance must be symmetric",
                                     "RiskModel.factor_covariance"))
        self._R = np.zeros_like(cov)
        if self._input_error is None:
            try:
                self._R = kr.factor_root(cov)
            except ValueError as exc:  # not positive semi-definite
                self._defer(InvalidInput(f"RiskModel.{exc}", "RiskModel.factor_covariance"))
        spec = self._checked(
            lambda: as_series(specific_variance, "RiskModel.specific_variance", finite=False),
            lambda: _lenient(specific_variance))
        missing = loadings.index.difference(spec.index)
        if len(missing):
            self._defer(UnknownAssets(
                f"RiskModel.specific_variance has no entry for {len(missing)} assets of the "
                f"loadings: {short_list(missing)}", "RiskModel.specific_variance",
                list(missing)))
        spec = spec.reindex(loadings.index)
        self._checked(lambda: check_finite(spec.to_numpy(), spec.index,
                                           "RiskModel.specific_variance"))
        if (spec < 0).any():
            bad = spec.index[spec.to_numpy() < 0][0]
            self._defer(InvalidInput(
                f"RiskModel.specific_variance is negative for {bad!r}: {spec[bad]}",
                "RiskModel.specific_variance"))
        self.loadings = loadings
        self.factor_covariance = pd.DataFrame(cov, index=factors, columns=factors)
        self.specific_variance = spec
        self._F = loadings.to_numpy().T.copy()
        self._E = spec.to_numpy().copy()
        self._cov = cov
        self.fit = None
        if self._input_error is None:
            self._check_degenerate()

    def _check_degenerate(self):
        """Warn when assets have (near) zero variance in the model.

        A model whose every asset is riskless is not refused here (an algorithm builds
        its model outside the optimiser, where ``on_failure="hold"`` could not hold);
        :func:`~zipline_factorarb.optimize.run_optimization` refuses to optimise risk
        with it (:class:`~zipline_factorarb.optimize.errors.DegenerateRiskModel`).
        """
        if not len(self.loadings):
            return
        G = self._R @ self._F
        total = np.einsum("ij,ij->j", G, G) + self._E
        low = total <= MIN_ASSET_VARIANCE
        if low.all():
            warnings.warn(
                f"the risk model is degenerate: every one of its {len(total)} assets has a "
                f"variance of at most {MIN_ASSET_VARIANCE:g} per period (largest "
                f"{total.max():.3g}; zero factor covariance and specific variances?). The "
                "optimiser will refuse to optimise risk with it; check the returns it was "
                "estimated from (a constant price series, a window without data)",
                DegenerateRiskWarning, stacklevel=3)
        elif low.any():
            names = self.loadings.index[low]
            warnings.warn(
                f"{int(low.sum())} of {len(total)} assets have a variance of at most "
                f"{MIN_ASSET_VARIANCE:g} per period in the risk model, so they look "
                f"riskless: {short_list(names)}. Check their return history (stale prices?) "
                "or set specific_variance_floor", DegenerateRiskWarning, stacklevel=3)

    # ------------------------------------------------------------------ properties
    @property
    def assets(self):
        """The assets the model covers (an Index)."""
        return self.loadings.index

    @property
    def factors(self):
        """The factor names (an Index)."""
        return self.loadings.columns

    def __repr__(self):
        return f"RiskModel({len(self.assets)} assets, factors={list(self.factors)})"

    # ------------------------------------------------------------------ alignment
    def _arrays(self, universe):
        self._raise_input_error()
        pos = self.loadings.index.get_indexer(universe)
        if (pos < 0).any():
            missing = [universe[i] for i in np.flatnonzero(pos < 0)]
            raise ValueError(
                f"the risk model has no loadings for {len(missing)} assets of the "
                f"optimisation universe: {short_list(missing)}. Estimate the risk model on a "
                "universe that includes them, or remove them from the alphas, benchmark "
                "and current portfolio (close them before optimising)"
            )
        F = self._F[:, pos]
        E = self._E[pos]
        return _RiskArrays(F, E, self._R @ F, np.sqrt(E))

    def _weights_vectors(self, weights, benchmark_weights):
        w = as_series(weights, "weights")
        w = w[w.to_numpy() != 0]
        index = w.index
        if benchmark_weights is not None:
            b = as_series(benchmark_weights, "benchmark_weights")
            b = b[b.to_numpy() != 0]
            index = index.union(b.index, sort=False)
        arr = self._arrays(index)
        a = w.reindex(index, fill_value=0.0).to_numpy()
        if benchmark_weights is not None:
            a = a - b.reindex(index, fill_value=0.0).to_numpy()
        return index, a, arr

    # ------------------------------------------------------------------ risk
    def covariance(self, assets=None):
        """Per-period asset covariance ``F' Sigma_f F + diag(E)`` as a DataFrame."""
        index = self.assets if assets is None else pd.Index(assets)
        arr = self._arrays(index)
        cov = arr.G.T @ arr.G + np.diag(arr.E)
        return pd.DataFrame(cov, index=index, columns=index)

    def variance(self, weights, benchmark_weights=None):
        """Per-period variance of ``weights`` (active variance if a benchmark is given)."""
        _, a, arr = self._weights_vectors(weights, benchmark_weights)
        return kr.active_variance(a, arr.F.T, self._cov, arr.E)

    def tracking_error(self, weights, benchmark_weights, periods_per_year=252):
        """Annualised ex-ante tracking error of ``weights`` against ``benchmark_weights``.

        Parameters
        ----------
        weights, benchmark_weights : pandas.Series
            Indexed by asset; missing entries are zero.
        periods_per_year : float, default 252
            Periods of the risk model per year.

        Returns
        -------
        float
        """
        _, a, arr = self._weights_vectors(weights, benchmark_weights)
        return kr.tracking_error(a, arr.F.T, self._cov, arr.E, periods_per_year)

    def decompose(self, active_weights, assets):
        """Euler decomposition of the per-period variance of an array of weights.

        Parameters
        ----------
        active_weights : array_like, shape (n,)
            Weights (or active weights ``w - b``) aligned to ``assets``.
        assets : sequence
            n assets, all in the model.

        Returns
        -------
        zipline_factorarb.kernels.risk.RiskContributions
            By factor (in :attr:`factors` order), specific, by asset and total, from
            :func:`~zipline_factorarb.kernels.risk.risk_contributions`.
        """
        arr = self._arrays(pd.Index(assets, tupleize_cols=False))
        return kr.risk_contributions(np.asarray(active_weights, dtype=float), arr.F.T, self._cov,
                                     arr.E)

    def risk_contributions(self, weights, benchmark_weights=None, periods_per_year=1):
        """Euler decomposition of the (active) variance by factor, specific and asset.

        Parameters
        ----------
        weights : pandas.Series
        benchmark_weights : pandas.Series, optional
            Decompose the active variance ``w - b`` (the squared tracking error).
        periods_per_year : float, default 1
            Scale of the contributions (1: per period; 252: annualised from daily).

        Returns
        -------
        RiskDecomposition
        """
        index, a, _ = self._weights_vectors(weights, benchmark_weights)
        rc = self.decompose(a, index)
        ppy = float(periods_per_year)
        by_factor = pd.Series(
            np.append(rc.factor, rc.specific) * ppy,
            index=list(self.factors) + ["specific"],
        )
        by_asset = pd.Series(rc.asset * ppy, index=index)
        return RiskDecomposition(by_factor, by_asset, rc.total * ppy, ppy)

    # ------------------------------------------------------------------ estimation
    @classmethod
    def from_returns(cls, asset_returns, factor_returns, *, loadings=None, halflife=None,
                     shrinkage="ledoit_wolf", add_constant=True, min_observations=None,
                     specific_variance_floor=0.0, method="ols", lam=None, cv=5, grid=None,
                     l1_ratio=0.5):
        """Estimate a risk model from return histories.

        Without ``loadings``: ``FactorModel(...).fit(asset_returns,
        factor_returns).risk_model()``, the package's one factor-model estimator
        (:func:`~zipline_factorarb.kernels.factor_model.fit_factor_model`). With
        ``loadings`` (e.g. Kalman betas): the specific variances of their residuals and
        the factor covariance (:func:`~zipline_factorarb.kernels.risk.factor_covariance`).

        Parameters
        ----------
        asset_returns : pandas.DataFrame
            Dates x assets; NaN marks a missing return.
        factor_returns : pandas.DataFrame
            Dates x factors; dates are inner-joined with ``asset_returns``.
        loadings : pandas.DataFrame, optional
            Assets x factors to use instead of the regression. A column named
            ``"const"`` is read as the intercept (multiplies 1, not a factor return).
        halflife : float, optional
            Exponential weighting (in rows) of the factor covariance and the specific
            variances; None for equal weights. The regression itself is unweighted.
        shrinkage : {"ledoit_wolf"} or float or None, default "ledoit_wolf"
            See :func:`~zipline_factorarb.kernels.risk.factor_covariance`.
        add_constant : bool, default True
            Regress with an intercept; the model then has a first factor ``"const"``
            with zero variance, whose loadings are the assets' alphas (as in the
            research, where the expected factor return of the constant is 1).
        min_observations : int, optional
            Assets with fewer returns are dropped (default: parameters + 1).
        specific_variance_floor : float, default 0.0
            Lower bound of the specific variances.
        method, lam, cv, grid, l1_ratio
            As in :func:`~zipline_factorarb.kernels.factor_model.fit_factor_model`
            (``lam`` may also be a Series by asset).

        Returns
        -------
        RiskModel
            ``model.fit`` holds the kernel's
            :class:`~zipline_factorarb.kernels.factor_model.FactorModelFit` (penalties,
            diagnostics) when the loadings were estimated here.
        """
        if not isinstance(asset_returns, pd.DataFrame) or not isinstance(factor_returns, pd.DataFrame):
            raise TypeError("asset_returns and factor_returns must be DataFrames (dates x names)")
        R, X = _shared_dates(asset_returns, factor_returns)
        X = X[np.isfinite(X.to_numpy(dtype=float)).all(axis=1)]
        R = R.loc[X.index]
        if loadings is None:
            from .factor_model import FactorModel  # noqa: PLC0415 (imports scikit-learn)

            return FactorModel(method, lam, cv, grid, l1_ratio, add_constant, halflife, shrinkage,
                               min_observations, specific_variance_floor).fit(R, X).risk_model()
        L = as_frame(loadings, "loadings")
        has_const = CONSTANT in L.columns
        missing = [f for f in L.columns if f != CONSTANT and f not in X.columns]
        if missing:
            raise ValueError(f"loadings have factors {missing} missing from factor_returns")
        factor_names = [f for f in L.columns if f != CONSTANT]
        L = L.reindex(R.columns)
        B = L[factor_names].to_numpy(dtype=float)
        intercepts = L[CONSTANT].to_numpy(dtype=float) if has_const else None
        Xd = X[factor_names].to_numpy(dtype=float)
        residuals = kr.factor_residuals(R.to_numpy(dtype=float), Xd, B, intercepts)
        spec = kr.specific_variance(residuals, halflife=halflife, n_parameters=0,
                                    floor=specific_variance_floor)
        fcov = kr.factor_covariance(Xd, halflife=halflife, shrinkage=shrinkage)
        return cls.from_factor_model(R.columns, factor_names, B, fcov, spec, intercepts)

    @classmethod
    def from_factor_model(cls, assets, factors, loadings, factor_covariance, specific_variance,
                          intercepts=None, fit=None):
        """A risk model from factor-model arrays (the one place the constant is added).

        Assets whose loadings, intercept or specific variance are not finite are left
        out. With ``intercepts``, the model gets a first factor ``"const"`` of zero
        variance whose loadings are the intercepts (the assets' alphas).

        Parameters
        ----------
        assets : sequence
            n asset labels.
        factors : sequence of str
            k factor names.
        loadings : ndarray, shape (n, k)
        factor_covariance : ndarray, shape (k, k)
        specific_variance : ndarray, shape (n,)
        intercepts : ndarray, shape (n,), optional
        fit : FactorModelFit, optional
            Kept as ``model.fit``.

        Returns
        -------
        RiskModel
        """
        B = np.asarray(loadings, dtype=float)
        spec = np.asarray(specific_variance, dtype=float)
        names = [str(f) for f in factors]
        keep = np.isfinite(B).all(axis=1) & np.isfinite(spec)
        if intercepts is not None:
            a = np.asarray(intercepts, dtype=float)
            keep &= np.isfinite(a)
            B = np.column_stack([a, B])
            names = [CONSTANT, *names]
        if not keep.any():
            raise ValueError("no asset has enough observations to estimate its loadings")
        cov = np.zeros((len(names), len(names)))
        offset = 0 if intercepts is None else 1  # the constant's zero row and column
        cov[offset:, offset:] = np.asarray(factor_covariance, dtype=float)
        assets = pd.Index(assets)[keep]
        model = cls(
            pd.DataFrame(B[keep], index=assets, columns=names),
            pd.DataFrame(cov, index=names, columns=names),
            pd.Series(spec[keep], index=assets),
        )
        model.fit = fit
        return model


def make_benchmark_weights(market_caps=None, *, shares_outstanding=None, prices=None,
                           dollar_volume=None, assets=None):
    """Benchmark weights b from the best size information available.

    The rule, applied to the whole universe (never mixed within it):

    1. market-cap weights when a positive market cap is known for every asset
       (``market_caps``, or ``shares_outstanding * prices``);
    2. otherwise dollar-volume weights (``dollar_volume``, e.g. a trailing average of
       price x volume: a liquidity proxy for size) when known for every asset;
    3. otherwise equal weights over ``assets`` (or over the index of whatever was given).

    For an ETF universe benchmarked on one fund, pass the weights directly instead,
    e.g. ``pd.Series({spy: 1.0})``.

    Parameters
    ----------
    market_caps : pandas.Series, optional
    shares_outstanding, prices : pandas.Series, optional
        Multiplied to market caps when ``market_caps`` is None.
    dollar_volume : pandas.Series, optional
    assets : sequence, optional
        The universe; defaults to the index of the first input given.

    Returns
    -------
    pandas.Series
        Weights summing to one; ``result.attrs["source"]`` is ``"market_cap"``,
        ``"dollar_volume"`` or ``"equal"``.
    """
    if market_caps is None and shares_outstanding is not None and prices is not None:
        market_caps = (as_series(shares_outstanding, "shares_outstanding", finite=False)
                       * as_series(prices, "prices", finite=False)).abs()
    candidates = [("market_cap", market_caps), ("dollar_volume", dollar_volume)]
    if assets is None:
        given = [s for _, s in candidates if s is not None]
        if not given:
            raise ValueError("give market_caps, dollar_volume or assets")
        assets = given[0].index
    index = pd.Index(assets)
    for source, s in candidates:
        if s is None:
            continue
        vals = as_series(s, source, finite=False).reindex(index)
        ok = np.isfinite(vals.to_numpy()) & (vals.to_numpy() > 0)
        if ok.all():
            out = pd.Series(kr.cap_weights(vals.to_numpy()), index=index)
            out.attrs["source"] = source
            return out
        warnings.warn(
            f"{source} is missing or not positive for {int((~ok).sum())} of {len(index)} "
            f"assets (e.g. {index[~ok][0]!r}); falling back to the next benchmark proxy",
            stacklevel=2,
        )
    out = pd.Series(np.full(len(index), 1.0 / len(index)), index=index)
    out.attrs["source"] = "equal"
    return out


#: weightings understood by :func:`proxy_benchmark_weights`
BENCHMARK_WEIGHTINGS = ("auto", "dollar_volume", "equal")


def proxy_benchmark_weights(assets, dollar_volume=None, volume=None, weighting="auto"):
    """Benchmark weights when market caps are unknown (no shares outstanding in the bundle).

    Parameters
    ----------
    assets : sequence
        The benchmark's universe.
    dollar_volume : pandas.Series, optional
        Trailing average of price x volume by asset (a liquidity proxy for size),
        e.g. zipline's ``AverageDollarVolume``.
    volume : pandas.Series, optional
        Latest volume by asset. With ``weighting="auto"``, a volume that is the same
        for every asset (a stand-in, such as the sample bundle's) carries no size
        information, and equal weights are used instead.
    weighting : {"auto", "dollar_volume", "equal"}, default "auto"
        ``"auto"``: dollar-volume weights when they are informative and known for
        every asset, else equal weights.

    Returns
    -------
    pandas.Series
        Weights summing to one; ``attrs["source"]`` is ``"dollar_volume"`` or
        ``"equal"``.
    """
    if weighting not in BENCHMARK_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {BENCHMARK_WEIGHTINGS}, got {weighting!r}")
    index = pd.Index(assets)
    if len(index) == 0:
        raise ValueError("the benchmark universe is empty")
    if weighting == "auto":
        informative = dollar_volume is not None
        if informative and volume is not None:
            v = pd.Series(volume).reindex(index).to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            informative = len(v) > 1 and np.ptp(v) > 0
        weighting = "dollar_volume" if informative else "equal"
    if weighting == "dollar_volume":
        if dollar_volume is None:
            raise ValueError("weighting='dollar_volume' needs dollar_volume")
        return make_benchmark_weights(dollar_volume=pd.Series(dollar_volume).reindex(index),
                                      assets=index)
    return make_benchmark_weights(assets=index)
