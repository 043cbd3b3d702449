"""The pair view: which analytics run on which data, split into a cheap live part (every
refresh) and an expensive part (cached on data version and parameters, recomputed at bar close).

What each figure uses (the README repeats this):

* hedge ratio (beta, alpha): the chosen method on the last ``lookback_bars`` aligned bars of the
  regression series (log prices by default);
* spread: ``y - (alpha + beta x)`` over all shown bars, with that one beta and alpha
  (for the Kalman method, the filtered beta_t, alpha_t of each bar of the lookback window,
  the filter starting from the OLS fit of the window's first 20 bars; NaN before the window);
* z-score: trailing ``z_window_bars`` mean and sample std of the spread;
* correlation: trailing ``corr_window_bars`` Pearson correlation of log returns (or prices);
* ADF and Engle-Granger p-values, half-life: the spread / the series over the lookback window;
* backtest: walk-forward over all shown bars: at each bar the trailing-OLS (or Kalman) beta
  and alpha of the lookback ending there, the spread from them and its trailing z-score; entry/
  exit thresholds, costs in bps. No decision uses a later bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backend import analytics as an
from backend.records import TIMEFRAMES_MS, Bars
from backend.resampling import align

REGRESSION_METHODS = ("ols", "huber", "theil-sen", "kalman")
BARS_PER_YEAR = {tf: 365 * 24 * 3600 * 1000 / ms for tf, ms in TIMEFRAMES_MS.items()}


@dataclass(frozen=True)
class PairParams:
    lookback_bars: int = 500
    z_window_bars: int = 60
    corr_window_bars: int = 60
    method: str = "ols"
    log_prices: bool = True
    corr_on_returns: bool = True
    z_threshold: float = 2.0
    kalman_delta: float = 1e-4
    cost_bps: float = 1.0

    def check(self) -> None:
        """Raise ``ValueError`` with a user-facing message for a bad setting."""
        if self.method not in REGRESSION_METHODS:
            raise ValueError(f"unknown regression method {self.method!r}")
        if self.lookback_bars < 20:
            raise ValueError("lookback must be at least 20 bars")
        if self.z_window_bars < 2 or self.corr_window_bars < 2:
            raise ValueError("rolling windows must be at least 2 bars")
        if not self.z_threshold > 0:
            raise ValueError("the z-score threshold must be greater than 0")


@dataclass(frozen=True)
class LiveStats:
    open_time: np.ndarray
    y: np.ndarray  # the regression series (log prices or prices)
    x: np.ndarray
    beta: float | np.ndarray
    alpha: float | np.ndarray
    spread: np.ndarray
    zscore: np.ndarray
    corr: np.ndarray
    latest_z: float
    latest_corr: float


@dataclass(frozen=True)
class SlowStats:
    adf_pvalue: float
    eg_pvalue: float
    half_life_bars: float
    kalman_beta: np.ndarray
    kalman_alpha: np.ndarray
    backtest: an.BacktestResult


def needed_bars(p: PairParams) -> int:
    """Aligned bars needed before the figures mean anything."""
    return max(p.z_window_bars, p.corr_window_bars, 20) + 1


def aligned_series(y_bars: Bars, x_bars: Bars, p: PairParams):
    ya, xa = align(y_bars, x_bars)
    to_series = np.log if p.log_prices else np.asarray
    return ya, xa, to_series(ya.close), to_series(xa.close)


def live_stats(
    y_bars: Bars, x_bars: Bars, p: PairParams, kalman: SlowStats | None = None
) -> LiveStats:
    """The per-refresh figures (closed forms and O(n) rolling sums)."""
    ya, xa, y, x = aligned_series(y_bars, x_bars, p)
    if p.method == "kalman" and kalman is not None and len(kalman.kalman_beta) == len(y):
        beta, alpha = kalman.kalman_beta, kalman.kalman_alpha
    else:
        method = "ols" if p.method == "kalman" else p.method
        beta, alpha = an.hedge_ratio(y[-p.lookback_bars :], x[-p.lookback_bars :], method)
    s = np.asarray(an.spread(y, x, beta, alpha))
    z = np.asarray(an.zscore(s, p.z_window_bars))
    if p.corr_on_returns:
        corr = an.rolling_corr(
            an.log_returns(ya.close), an.log_returns(xa.close), p.corr_window_bars
        )
    else:
        corr = an.rolling_corr(ya.close, xa.close, p.corr_window_bars)
    return LiveStats(ya.open_time, y, x, beta, alpha, s, z, np.asarray(corr), _last(z), _last(corr))


def slow_stats(y_bars: Bars, x_bars: Bars, p: PairParams, live: LiveStats) -> SlowStats:
    """The expensive figures, on the lookback window (ADF costs ~130 ms at 5k points)."""
    n = p.lookback_bars
    y, x = live.y, live.x
    kb, ka = np.full(len(y), np.nan), np.full(len(y), np.nan)
    if p.method == "kalman":
        kb[-n:], ka[-n:] = an.kalman_hedge(
            y[-n:], x[-n:], delta=p.kalman_delta, obs_var=_obs_var(y, x, n)
        )
    window_spread = live.spread[-n:]
    bt_beta, bt_z = walk_forward_signal(y, x, p, kb, ka)
    bt = an.backtest(
        y,
        x,
        bt_z,
        bt_beta,
        entry=p.z_threshold,
        exit=0.0,
        cost_bps=p.cost_bps,
        log_prices=p.log_prices,
        bars_per_year=BARS_PER_YEAR.get(y_bars.timeframe, 525_600),
    )
    return SlowStats(
        an.adf_pvalue(window_spread),
        an.engle_granger_pvalue(y[-n:], x[-n:]),
        an.half_life(window_spread),
        np.asarray(kb),
        np.asarray(ka),
        bt,
    )


def walk_forward_signal(y, x, p: PairParams, kalman_beta, kalman_alpha):
    """Per-bar ``(beta_t, z_t)`` for the backtest using only bars up to ``t``: trailing OLS over
    ``lookback_bars`` (the filtered Kalman state for that method), the spread from it, and the
    trailing z-score of that spread. The headline beta is fitted on the latest window, so a
    backtest on it would trade earlier bars with a hedge ratio from their future."""
    if p.method == "kalman":
        beta, alpha = np.asarray(kalman_beta), np.asarray(kalman_alpha)
    else:
        beta, alpha = (np.asarray(v) for v in an.rolling_hedge_ratio(y, x, p.lookback_bars))
    spread = np.asarray(y) - (alpha + beta * np.asarray(x))
    return beta, np.asarray(an.zscore(spread, p.z_window_bars))


def _obs_var(y: np.ndarray, x: np.ndarray, n: int) -> float:
    """Observation noise for the Kalman filter: the OLS residual variance on the lookback."""
    beta, alpha = an.hedge_ratio(y[-n:], x[-n:])
    if not math.isfinite(beta):
        return 1e-6
    resid = y[-n:] - (alpha + beta * x[-n:])
    return max(float(np.nanvar(resid)), 1e-12)


def _last(a) -> float:
    a = np.asarray(a)
    return float(a[-1]) if len(a) else math.nan
