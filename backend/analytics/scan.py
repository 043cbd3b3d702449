"""The market scan: every pair of many symbols at once; clustering for heatmaps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.analytics._arrays import _window
from backend.analytics.stationarity import _adf_t_no_constant, _ar1_half_life, mackinnon_pvalue

# --- pair scanner ------------------------------------------------------------------------------

SCAN_COLUMNS = ("y", "x", "beta", "alpha", "eg_pvalue", "half_life", "corr", "z")


def scan_pairs(log_prices: pd.DataFrame, lookback: int = 300, adf_lag: int = 1) -> pd.DataFrame:
    """Every pair of the frame's columns (symbols; rows aligned bars of log close), ranked by
    the Engle-Granger p-value, on the last ``lookback`` rows.

    One row per pair, ``y`` the symbol whose column comes first and ``x`` the other:

    * ``beta``, ``alpha``: OLS of y on x with intercept; the spread is ``y - alpha - beta x``.
    * ``eg_pvalue``: statsmodels ``coint(y, x, trend="c", maxlag=adf_lag, autolag=None)[1]``:
      the ADF t-statistic of the spread (no constant, ``adf_lag`` lagged differences) against
      MacKinnon's (1994) distribution for 2 variables; 0 when y and x are collinear.
    * ``half_life``: AR(1) half-life of the spread in bars, from ``ds_t = a + b s_{t-1}``:
      ``-ln 2 / ln(1 + b)``, ``inf`` when ``b >= 0`` (see ``half_life``).
    * ``corr``: Pearson correlation of the log returns (``lookback - 1`` of them).
    * ``z``: the last spread value less the window's mean, over its sample std. The fit saw
      the whole window, that bar included (hindsight within the window).

    Sorted by ``eg_pvalue`` ascending (NaN last). Columns with a non-finite value in the window
    are left out and named in ``result.attrs["skipped"]``. Vectorised over pairs: one batched
    least-squares solve for all the ADF regressions, no per-pair statsmodels call.
    """
    if not isinstance(log_prices, pd.DataFrame):
        raise ValueError("scan_pairs needs a DataFrame: columns symbols, rows aligned bars")
    if not log_prices.columns.is_unique:
        raise ValueError("scan_pairs: duplicate symbol columns")
    lag = int(adf_lag)
    if lag < 0:
        raise ValueError(f"adf_lag must be >= 0, got {adf_lag}")
    lookback = _window(lookback, minimum=lag + 4)  # the ADF regression keeps >= 1 dof
    if len(log_prices) < lookback:
        raise ValueError(f"scan_pairs needs {lookback} rows (lookback), has {len(log_prices)}")
    window = log_prices.iloc[-lookback:].to_numpy(dtype=np.float64)
    usable = np.isfinite(window).all(axis=0)
    symbols = log_prices.columns[usable]
    values = window[:, usable]
    iy, ix = np.triu_indices(len(symbols), 1)
    if not len(iy):
        return _scan_frame(symbols, iy, ix, {}, log_prices.columns[~usable])

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
    returns = np.diff(values, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(returns, rowvar=False)[iy, ix] if len(returns) > 1 else np.nan
        z = (spread[-1] - spread.mean(axis=0)) / spread.std(axis=0, ddof=1)
    columns = {
        "beta": beta,
        "alpha": alpha,
        "eg_pvalue": mackinnon_pvalue(stat, n_vars=2),
        "half_life": _ar1_half_life(spread),
        "corr": corr,
        "z": z,
    }
    return _scan_frame(symbols, iy, ix, columns, log_prices.columns[~usable])


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
