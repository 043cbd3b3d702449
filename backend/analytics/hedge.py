"""Hedge ratios, the spread, rolling moments, correlation and per-bar tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from backend.analytics._arrays import (
    _as_array,
    _finite_pairs,
    _pair,
    _rolling_sums,
    _tiny,
    _window,
    _wrap,
)

HEDGE_METHODS = ("ols", "huber", "theil-sen")
MIN_REGRESSION_POINTS = 3


# --- regression --------------------------------------------------------------------------------


def hedge_ratio(y, x, method: str = "ols") -> tuple[float, float]:
    """``(beta, alpha)`` for ``y = alpha + beta * x + e``.

    Methods: ``"ols"`` (closed form: ``beta = cov(x, y) / var(x)``), ``"huber"`` (statsmodels
    RLM with Huber's T norm: robust to outlier bars), ``"theil-sen"`` (median of pairwise slopes,
    scipy; O(n^2) memory, so keep the window to a few thousand points). Pairs with a NaN are
    dropped; fewer than 3 points left, or a constant ``x``, gives ``(nan, nan)``.
    """
    if method not in HEDGE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(HEDGE_METHODS)}")
    y, x = _finite_pairs(*_pair(y, x))
    if len(y) < MIN_REGRESSION_POINTS or np.ptp(x) == 0:
        return math.nan, math.nan
    if method == "ols":
        xm, ym = x.mean(), y.mean()
        dx = x - xm
        beta = float(dx @ (y - ym) / (dx @ dx))
        return beta, float(ym - beta * xm)
    if method == "huber":
        import statsmodels.api as sm

        fit = sm.RLM(y, sm.add_constant(x, has_constant="add"), M=sm.robust.norms.HuberT()).fit()
        alpha, beta = fit.params
        return float(beta), float(alpha)
    from scipy.stats import theilslopes

    slope, intercept, _, _ = theilslopes(y, x)
    return float(slope), float(intercept)


def spread(y, x, beta, alpha=0.0):
    """``y - (alpha + beta * x)``; ``beta`` and ``alpha`` are scalars or per-bar arrays."""
    ya, xa = _pair(y, x)
    return _wrap(y, ya - (np.asarray(alpha, dtype=np.float64) + np.asarray(beta) * xa))


def rolling_mean_std(s, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean and sample std over ``window`` points (NaN until full)."""
    a = _as_array(s)
    window = _window(window)
    finite = np.isfinite(a)
    offset = a[finite].mean() if finite.any() else 0.0
    (mean,), (var,) = _rolling_sums([a], [(0, 0)], window)
    return mean + offset, np.sqrt(np.maximum(var, 0.0))


def zscore(s, window: int):
    """``(s - trailing mean) / trailing sample std`` over the last ``window`` points including the
    current one; NaN until the window is full, where it holds a NaN, or where the std is 0."""
    a = _as_array(s)
    mean, std = rolling_mean_std(a, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > _tiny(a), (a - mean) / std, np.nan)
    return _wrap(s, z)


def rolling_corr(a, b, window: int):
    """Trailing Pearson correlation of ``a`` and ``b`` over ``window`` points; NaN until full
    and where either side is constant. Pass returns, not price levels."""
    av, bv = _pair(a, b)
    window = _window(window)
    _, (vaa, vbb, vab) = _rolling_sums([av, bv], [(0, 0), (1, 1), (0, 1)], window)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (vaa > _tiny(av) ** 2) & (vbb > _tiny(bv) ** 2)
        r = np.where(ok, vab / np.sqrt(vaa * vbb), np.nan)
    return _wrap(a, np.clip(r, -1.0, 1.0))


def rolling_hedge_ratio(y, x, window: int):
    """Trailing OLS ``(beta, alpha)`` per bar over ``window`` points, in closed form:
    ``beta = cov_w(x, y) / var_w(x)``, ``alpha = mean_w(y) - beta * mean_w(x)``."""
    ya, xa = _pair(y, x)
    window = _window(window, MIN_REGRESSION_POINTS)
    offsets = [v[np.isfinite(v)].mean() if np.isfinite(v).any() else 0.0 for v in (ya, xa)]
    (my, mx), (vxx, vxy) = _rolling_sums([ya, xa], [(1, 1), (1, 0)], window)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(vxx > _tiny(xa) ** 2, vxy / vxx, np.nan)
    alpha = (my + offsets[0]) - beta * (mx + offsets[1])
    return _wrap(y, beta), _wrap(y, alpha)


# --- tables ------------------------------------------------------------------------------------


def log_returns(prices) -> np.ndarray:
    """``ln(p_t / p_{t-1})``; the first value is NaN."""
    p = _as_array(prices)
    if len(p) == 0:
        return np.empty(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.concatenate(([np.nan], np.diff(np.log(p))))


def correlation_matrix(returns_by_symbol: dict[str, np.ndarray], window: int) -> pd.DataFrame:
    """Pearson correlations of the symbols' returns over the last ``window`` bars (aligned,
    rows with a NaN dropped); NaN where a symbol is constant in the window."""
    window = _window(window)
    frame = pd.DataFrame({s: _as_array(r, s) for s, r in returns_by_symbol.items()})
    return frame.tail(window).dropna().corr()


def bar_stats_table(
    open_time_ms,
    y_close,
    x_close,
    y_volume,
    x_volume,
    spread_values,
    z,
    vol_window: int,
    names: tuple[str, str] = ("y", "x"),
) -> pd.DataFrame:
    """Per-bar table for export: time, closes, log returns, trailing return vol (sample std over
    ``vol_window``), volumes, spread and z-score."""
    ny, nx = names
    ry, rx = log_returns(y_close), log_returns(x_close)
    return pd.DataFrame(
        {
            "time": pd.to_datetime(np.asarray(open_time_ms), unit="ms", utc=True),
            f"{ny}_close": _as_array(y_close),
            f"{nx}_close": _as_array(x_close),
            f"{ny}_log_return": ry,
            f"{nx}_log_return": rx,
            f"{ny}_vol": rolling_mean_std(ry, vol_window)[1],
            f"{nx}_vol": rolling_mean_std(rx, vol_window)[1],
            f"{ny}_volume": _as_array(y_volume),
            f"{nx}_volume": _as_array(x_volume),
            "spread": _as_array(spread_values),
            "zscore": _as_array(z),
        }
    )
