"""A basket of 3-4 symbols: Johansen's test, the first cointegrating vector as weights, the
basket spread, its z-score, half-life, and the pair backtest's execution on every leg.

Conventions (the README repeats them):

* **Test** (hindsight within its window): statsmodels ``coint_johansen`` on the log closes of
  the last ``lookback_bars`` closed bars, a constant in the relations, one lagged difference:
  trace and maximum-eigenvalue statistics with 90/95/99 % critical values, and the rank.
* **Weights, walk-forward**: the first eigenvector, scaled so the first symbol's weight is 1,
  refitted at fixed UTC boundaries every ``ceil(lookback / 20)`` bars from the
  ``lookback_bars`` bars before the boundary (as the robust pair hedges): no bar's weights use
  it or a later bar, and none moves when bars arrive.
* **Spread** ``sum_i w_i,t log p_i,t - mu_t``, ``mu_t`` the mean of the weighted sum over the
  same fit window (the relation's constant: without it every refit would shift the spread's
  level); its z over ``z_window_bars`` (sample std); the decisions
  on closed bars; the ADF of its last ``lookback_bars`` closed bars on MacKinnon's k-variable
  Engle-Granger table; the half-life only where that rejects at 5 %.
* **Backtest**: ``analytics.execution`` with the weights as each leg's notional weight (a
  position of N USDT in the spread holds ``N * w_i / sum |w|`` of leg i).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backend import analytics as an
from backend.engine.pairs import (
    BACKTEST_ANCHOR_BARS,
    MEAN_REVERSION_P,
    NO_CONTEXT,
    ExecutionContext,
    PairParams,
    anchored_start,
    from_bar,
    leg_data,
    robust_stride,
)
from backend.store.records import TIMEFRAMES_MS, Bars
from backend.store.resampling import align_many

BASKET_SIZES = (3, 4)


@dataclass(frozen=True)
class BasketStats:
    symbols: tuple[str, ...]
    bars: tuple[Bars, ...]  # aligned on common open times
    open_time: np.ndarray
    closed: int  # bars closed (all but the newest while it forms)
    johansen: an.JohansenResult | None  # on the last lookback closed bars
    window: int  # closed bars the test used
    weights: np.ndarray  # (bars, k), walk-forward
    spread: np.ndarray
    zscore: np.ndarray
    adf: an.AdfResult
    half_life: an.HalfLife
    backtest: an.BacktestResult

    @property
    def latest_z(self) -> float:
        return float(self.zscore[self.closed - 1]) if self.closed else math.nan

    @property
    def forming_z(self) -> float:
        return float(self.zscore[-1]) if self.closed < len(self.zscore) else math.nan


def needs(p: PairParams) -> int:
    """Aligned bars before the basket's z is defined: a whole window before the first refit
    boundary, then the z window."""
    return p.lookback_bars + robust_stride(p.lookback_bars) + p.z_window_bars


def basket_stats(
    bars: list[Bars],
    p: PairParams,
    context: ExecutionContext = NO_CONTEXT,
    newest_is_open: bool = True,
) -> BasketStats:
    """Every figure of the basket (module docstring); ``ValueError`` for a bad basket."""
    if len(bars) not in BASKET_SIZES or len({b.symbol for b in bars}) != len(bars):
        raise ValueError(f"a basket is {' or '.join(map(str, BASKET_SIZES))} different symbols")
    aligned = align_many(bars)
    t = aligned[0].open_time
    n, k = len(t), len(aligned)
    closed = max(0, n - 1) if newest_is_open else n
    levels = np.column_stack([np.log(b.close) for b in aligned]) if n else np.empty((0, k))
    lo = max(0, closed - p.lookback_bars)
    test = an.johansen(levels[lo:closed]) if closed - lo >= p.lookback_bars else None
    bar_ms = TIMEFRAMES_MS[aligned[0].timeframe]
    weights, mu = _weights_path(levels, t, bar_ms, p.lookback_bars)
    spread = np.einsum("ij,ij->i", weights, levels) - mu if n else np.empty(0)
    z = np.asarray(an.zscore(spread, p.z_window_bars)) if n >= 2 else np.full(n, np.nan)
    window = spread[:closed][-p.lookback_bars :]
    window = window[np.isfinite(window)]
    adf = an.spread_adf(window, n_vars=k)
    half_life = (
        an.half_life_interval(window) if adf.pvalue <= MEAN_REVERSION_P else an.HALF_LIFE_NAN
    )
    bt = _backtest(aligned, t[:closed], weights[:closed], z[:closed], p, context, bar_ms)
    return BasketStats(
        tuple(b.symbol for b in aligned), tuple(aligned), t, closed, test, closed - lo,
        weights, spread, z, adf, half_life, bt,
    )  # fmt: skip


def _weights_path(levels: np.ndarray, t: np.ndarray, bar_ms: int, lookback: int):
    """Each anchored block's first cointegrating vector and the relation's constant (the
    weighted sum's mean), from the ``lookback`` bars before it."""
    n, k = levels.shape
    weights, mu = np.full((n, k), np.nan), np.full(n, np.nan)
    for start, stop in an.anchored_blocks(n, t, bar_ms, robust_stride(lookback), lookback):
        window = levels[start - lookback : start]
        fit = an.johansen(window)
        if fit is not None:
            weights[start:stop] = fit.weights
            mu[start:stop] = float((window @ fit.weights).mean())
    return weights, mu


def _backtest(aligned, t, weights, z, p: PairParams, context, bar_ms) -> an.BacktestResult:
    n = len(t)
    start = anchored_start(t, z, BACKTEST_ANCHOR_BARS * bar_ms)
    part = slice(start, n)
    legs = [leg_data(b.slice(0, n), p, context, part) for b in aligned]
    hedge = np.full(n - start, np.nan)  # a basket has weights, not one hedge ratio
    bt = an.backtest(t[part], bar_ms, z[part], weights[part], legs, p.execution(), hedge=hedge)
    return from_bar(bt, start)
