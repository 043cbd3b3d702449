"""The market scan: every pair of many symbols at once; clustering for heatmaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.analytics._arrays import _window
from backend.analytics.stationarity import _adf_t_no_constant, _ar1_half_life, mackinnon_pvalue

# --- pair scanner ------------------------------------------------------------------------------

SCAN_COLUMNS = ("y", "x", "beta", "alpha", "eg_pvalue", "eg_qvalue", "half_life", "corr", "z",
                "coint_share", "beta_drift", "hurst")  # fmt: skip
SUBWINDOWS = 5  # rolling sub-windows of half the lookback for the stability share
COINT_LEVEL = 0.05  # a sub-window counts as cointegrated at this Engle-Granger p
HURST_MAX_LAG = 20


def scan_pairs(log_prices: pd.DataFrame, lookback: int = 300, adf_lag: int = 1) -> pd.DataFrame:
    """Every pair of the frame's columns (symbols; rows aligned bars of log close), ranked by
    the Engle-Granger p-value, on the last ``lookback`` rows.

    One row per pair, ``y`` the symbol whose column comes first and ``x`` the other:

    * ``beta``, ``alpha``: OLS of y on x with intercept; the spread is ``y - alpha - beta x``.
    * ``eg_pvalue``: statsmodels ``coint(y, x, trend="c", maxlag=adf_lag, autolag=None)[1]``:
      the ADF t-statistic of the spread (no constant, ``adf_lag`` lagged differences) against
      MacKinnon's (1994) distribution for 2 variables; 0 when y and x are collinear.
    * ``eg_qvalue``: ``eg_pvalue`` adjusted for testing every pair scanned, Benjamini-Hochberg
      (statsmodels ``multipletests(p, method="fdr_bh")``): selecting pairs with ``q <= 0.05``
      keeps the expected share of unrelated pairs among them at 5 % or less. A raw p of 0.05
      over 780 pairs would pass ~39 unrelated ones.
    * ``half_life``: AR(1) half-life of the spread in bars, from ``ds_t = a + b s_{t-1}``:
      ``-ln 2 / ln(1 + b)``, ``inf`` when ``b >= 0`` (see ``half_life``).
    * ``corr``: Pearson correlation of the log returns (``lookback - 1`` of them).
    * ``z``: the last spread value less the window's mean, over its sample std. The fit saw
      the whole window, that bar included (hindsight within the window).
    * ``coint_share``: the share of ``SUBWINDOWS`` rolling sub-windows (half the lookback each,
      evenly spaced from the window's start to its end) whose own Engle-Granger p is at most
      ``COINT_LEVEL``: a relation that holds throughout, not in one stretch.
    * ``beta_drift``: ``(beta_last - beta_first) / |beta|``, OLS on the window's last and first
      thirds: how far the hedge moved.
    * ``hurst``: the spread's Hurst exponent from the scaling of its lagged differences,
      ``std(s_{t+k} - s_t) ~ k^H`` for ``k = 1 .. min(20, lookback // 10)`` (least squares on
      logs): below 0.5 mean-reverting, 0.5 a random walk, above trending.

    Sorted by ``eg_pvalue`` ascending (NaN last). Columns with a non-finite value in the window
    are left out and named in ``result.attrs["skipped"]``. Vectorised over pairs: one batched
    least-squares solve for all the ADF regressions of a window, no per-pair statsmodels call.
    """
    if not isinstance(log_prices, pd.DataFrame):
        raise ValueError("scan_pairs needs a DataFrame: columns symbols, rows aligned bars")
    if not log_prices.columns.is_unique:
        raise ValueError("scan_pairs: duplicate symbol columns")
    lag = int(adf_lag)
    if lag < 0:
        raise ValueError(f"adf_lag must be >= 0, got {adf_lag}")
    # The ADF regression keeps >= 1 dof in each sub-window (half the lookback).
    lookback = _window(lookback, minimum=2 * (lag + 4))
    if len(log_prices) < lookback:
        raise ValueError(f"scan_pairs needs {lookback} rows (lookback), has {len(log_prices)}")
    window = log_prices.iloc[-lookback:].to_numpy(dtype=np.float64)
    usable = np.isfinite(window).all(axis=0)
    symbols = log_prices.columns[usable]
    values = window[:, usable]
    iy, ix = np.triu_indices(len(symbols), 1)
    if not len(iy):
        return _scan_frame(symbols, iy, ix, {}, log_prices.columns[~usable])

    beta, alpha, spread, pvalue = _engle_granger(values, iy, ix, lag)
    returns = np.diff(values, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(returns, rowvar=False)[iy, ix] if len(returns) > 1 else np.nan
        z = (spread[-1] - spread.mean(axis=0)) / spread.std(axis=0, ddof=1)
    columns = {
        "beta": beta,
        "alpha": alpha,
        "eg_pvalue": pvalue,
        "eg_qvalue": bh_qvalues(pvalue),
        "half_life": _ar1_half_life(spread),
        "corr": corr,
        "z": z,
        "coint_share": _coint_share(values, iy, ix, lag),
        "beta_drift": _beta_drift(values, iy, ix, beta),
        "hurst": hurst_exponent(spread),
    }
    return _scan_frame(symbols, iy, ix, columns, log_prices.columns[~usable])


def bh_qvalues(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values over the finite ones (statsmodels
    ``multipletests(method="fdr_bh")``); NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def _engle_granger(values: np.ndarray, iy, ix, lag: int):
    """OLS of every pair (columns ``iy`` on ``ix``) and the Engle-Granger p of its residual:
    ``(beta, alpha, spread, p)``, the spread one column a pair."""
    centred = values - values.mean(axis=0)
    moments = centred.T @ centred  # sums of centred cross products, every column pair at once
    sxx, sxy, syy = moments[ix, ix], moments[iy, ix], moments[iy, iy]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = sxy / sxx
        rsquared = sxy * sxy / (sxx * syy)
    alpha = values.mean(axis=0)[iy] - beta * values.mean(axis=0)[ix]
    spread = centred[:, iy] - centred[:, ix] * beta  # y - alpha - beta x, one column a pair
    # coint's own guard: a fit this close to perfect has no residual to test.
    collinear = rsquared >= 1 - 100 * np.sqrt(np.finfo(float).eps)
    stat = np.where(collinear, -np.inf, _adf_t_no_constant(spread, lag))
    return beta, alpha, spread, mackinnon_pvalue(stat, n_vars=2)


def subwindow_starts(lookback: int) -> tuple[int, np.ndarray]:
    """The sub-windows of ``coint_share``: their length and first rows."""
    length = lookback // 2
    return length, np.linspace(0, lookback - length, SUBWINDOWS).round().astype(int)


def _coint_share(values, iy, ix, lag: int) -> np.ndarray:
    length, starts = subwindow_starts(len(values))
    hits = np.zeros(len(iy))
    for a in starts:
        p = _engle_granger(values[a : a + length], iy, ix, lag)[3]
        hits += np.nan_to_num(p, nan=1.0) <= COINT_LEVEL
    return hits / len(starts)


def _beta_drift(values, iy, ix, beta) -> np.ndarray:
    third = len(values) // 3
    first = _engle_granger_beta(values[:third], iy, ix)
    last = _engle_granger_beta(values[-third:], iy, ix)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (last - first) / np.abs(beta)


def _engle_granger_beta(values, iy, ix) -> np.ndarray:
    centred = values - values.mean(axis=0)
    moments = centred.T @ centred
    with np.errstate(divide="ignore", invalid="ignore"):
        return moments[iy, ix] / moments[ix, ix]


def hurst_exponent(series) -> np.ndarray:
    """The Hurst exponent of each column (or of one series): the least-squares slope of
    ``log std(s_{t+k} - s_t)`` on ``log k``, ``k = 1 .. min(HURST_MAX_LAG, len // 10)``
    (at least 2 lags). NaN for a constant or too short series."""
    s = np.asarray(series, dtype=np.float64)
    one = s.ndim == 1
    s = s[:, None] if one else s
    lags = np.arange(1, max(2, min(HURST_MAX_LAG, len(s) // 10)) + 1)
    if len(s) <= lags[-1] + 1:
        out = np.full(s.shape[1], np.nan)
        return float(out[0]) if one else out
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.stack([np.std(s[k:] - s[:-k], axis=0) for k in lags]))
        lk = np.log(lags) - np.log(lags).mean()
        out = (lk @ (logs - logs.mean(axis=0))) / (lk @ lk)
    out = np.where(np.isfinite(out), out, np.nan)
    return float(out[0]) if one else out


def _scan_frame(symbols, iy, ix, columns: dict, skipped) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"y": np.asarray(symbols)[iy], "x": np.asarray(symbols)[ix]}
        | {name: columns.get(name, np.empty(0)) for name in SCAN_COLUMNS[2:]}
    )
    frame = frame.sort_values("eg_pvalue", kind="stable", na_position="last")
    frame = frame.reset_index(drop=True)
    frame.attrs["skipped"] = [str(s) for s in skipped]
    return frame


def cluster_order(corr: pd.DataFrame) -> list:
    """The symbols of a correlation matrix in the leaf order of an average-linkage hierarchical
    clustering on the distance ``1 - corr`` (scipy, with optimal leaf ordering), so that
    correlated symbols sit next to each other in a heatmap. A NaN correlation (a constant
    series) counts as uncorrelated."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    labels = list(corr.columns)
    if len(labels) < 3:
        return labels
    distance = 1.0 - np.nan_to_num(corr.to_numpy(dtype=np.float64), nan=0.0)
    distance = np.clip((distance + distance.T) / 2, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), "average", optimal_ordering=True)
    return [labels[i] for i in leaves_list(tree)]
