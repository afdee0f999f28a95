"""Factor evaluation statistics on (T, N) arrays (alphalens-style, NaN-aware)."""

from __future__ import annotations

import numpy as np


def _rank_rows(x):
    """Average ranks (1..n) along each row, NaN kept as NaN."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        row = x[t]
        ok = ~np.isnan(row)
        if ok.sum() == 0:
            continue
        vals = row[ok]
        order = np.argsort(vals, kind="mergesort")
        ranks = np.empty(vals.size)
        ranks[order] = np.arange(1, vals.size + 1)
        # average ranks of ties
        uniq, inv, counts = np.unique(vals, return_inverse=True, return_counts=True)
        if uniq.size < vals.size:
            sums = np.bincount(inv, weights=ranks)
            ranks = (sums / counts)[inv]
        out[t, ok] = ranks
    return out


def rank_ic(factor, forward_returns, min_assets=5):
    """Spearman correlation across assets, one per row (NaN if too few pairs)."""
    f = np.asarray(factor, dtype=float)
    r = np.asarray(forward_returns, dtype=float)
    both = ~np.isnan(f) & ~np.isnan(r)
    f = np.where(both, f, np.nan)
    r = np.where(both, r, np.nan)
    rf, rr = _rank_rows(f), _rank_rows(r)
    out = np.full(f.shape[0], np.nan)
    for t in range(f.shape[0]):
        ok = both[t]
        if ok.sum() < min_assets:
            continue
        a = rf[t, ok] - rf[t, ok].mean()
        b = rr[t, ok] - rr[t, ok].mean()
        den = np.sqrt((a * a).sum() * (b * b).sum())
        out[t] = (a * b).sum() / den if den > 0 else np.nan
    return out


def quantile_labels(factor, quantiles=5):
    """Quantile of each asset per row, 0 (lowest) .. quantiles-1; -1 for NaN.

    Equal-count buckets on ranks (ties by average rank), as alphalens'
    ``quantiles=`` does.
    """
    f = np.asarray(factor, dtype=float)
    ranks = _rank_rows(f)
    counts = np.sum(~np.isnan(f), axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.floor((ranks - 1) / counts * quantiles)
    return np.where(np.isnan(q), -1, np.clip(q, 0, quantiles - 1)).astype(np.int64)


def quantile_mean_returns(labels, forward_returns, quantiles=5):
    """Mean forward return of each quantile, per row: (T, quantiles)."""
    r = np.asarray(forward_returns, dtype=float)
    out = np.full((r.shape[0], quantiles), np.nan)
    for q in range(quantiles):
        mask = (labels == q) & ~np.isnan(r)
        n = mask.sum(axis=1)
        s = np.where(mask, r, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, q] = np.where(n > 0, s / n, np.nan)
    return out


def quantile_turnover(labels, quantile, lag=1):
    """Share of names in ``quantile`` at t that were not in it at t - lag."""
    now = labels == quantile
    out = np.full(labels.shape[0], np.nan)
    for t in range(lag, labels.shape[0]):
        n = now[t].sum()
        if n:
            out[t] = (now[t] & ~now[t - lag]).sum() / n
    return out


def rank_autocorrelation(factor, lag=1, min_assets=5):
    """Spearman correlation of each row's factor with the row ``lag`` before."""
    f = np.asarray(factor, dtype=float)
    out = np.full(f.shape[0], np.nan)
    if f.shape[0] > lag:
        out[lag:] = rank_ic(f[lag:], f[:-lag], min_assets=min_assets)
    return out
