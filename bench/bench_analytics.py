"""Analytics refresh cost for the selected pair, ours against the naive approach, same run.

    python bench/bench_analytics.py [--repeat 7]

Cases: what the page holds after history at start (1,600 bars: the 1,000 of history plus the
lookback and windows, at 1s, 1m and 5m; the page's default parameters), then 1s bars over an
hour (3,600) and a day (86,400) with a 1,000-bar lookback.
  live   = the per-second part: walk-forward hedge path (trailing OLS of the bars before each
           bar), spread, z-score, rolling correlation, alerts (closed forms, O(n) rolling sums);
  full   = live + the cached part recomputed at bar close: ADF and Engle-Granger on the lookback
           window of closed bars, half-life, backtest over all closed bars;
  kalman = full with the Kalman hedge (one-step-ahead, noise by maximum likelihood), its block
           fits and whole blocks' states kept as the engine keeps them (so a bar close refits
           at most one new block; a pair's first view fits every block: bench_backtest.py);
  naive  = statsmodels everything, every rerun: RollingOLS for the walk-forward hedge, pandas
           rolling z and correlation, adfuller and coint on all bars.
Prints medians (ms) and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.regression.rolling import RollingOLS
from statsmodels.tsa.stattools import adfuller, coint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend import analytics as an  # noqa: E402
from backend.engine.pairs import PairParams, live_stats, slow_stats  # noqa: E402
from backend.store.records import Bars  # noqa: E402


def make_bars(n: int, timeframe: str, seed: int = 3) -> tuple[Bars, Bars]:
    rng = np.random.default_rng(seed)
    step = {"1s": 1_000, "1m": 60_000, "5m": 300_000}[timeframe]
    t = 1_765_000_000_000 + np.arange(n, dtype=np.int64) * step
    lx = np.log(90_000) + np.cumsum(rng.normal(0, 2e-4, n))
    u = np.zeros(n)
    shocks = rng.normal(0, 1e-4, n)
    for i in range(1, n):
        u[i] = 0.98 * u[i - 1] + shocks[i]
    ly = 0.5 + 0.8 * lx + u

    def bars(symbol, logp):
        c = np.exp(logp)
        ones = np.ones(n)
        return Bars(symbol, timeframe, t, c, c, c, c, ones, c, np.ones(n, np.int64), ones / 2)

    return bars("ETHUSDT", ly), bars("BTCUSDT", lx)


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def ours_live(yb, xb, p):
    live = live_stats(yb, xb, p)
    an.zscore_alerts(live.zscore, p.z_threshold)
    return live


def ours_full(yb, xb, p, memo=None):
    live = ours_live(yb, xb, p)
    slow_stats(yb, xb, p, live, memo=memo)


def naive(yb, xb, p):
    y, x = np.log(yb.close), np.log(xb.close)
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    alpha, beta = fit.params
    RollingOLS(y, sm.add_constant(x), window=p.lookback_bars).fit()
    s = pd.Series(y - alpha - beta * x)
    z = (s - s.rolling(p.z_window_bars).mean()) / s.rolling(p.z_window_bars).std()
    ry, rx = pd.Series(y).diff(), pd.Series(x).diff()
    ry.rolling(p.corr_window_bars).corr(rx)
    adfuller(s.to_numpy(), regression="c", autolag="AIC", result_object=False)
    coint(y, x)
    an.zscore_alerts(z.to_numpy(), p.z_threshold)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--naive-repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"# analytics refresh  (medians; ours x{args.repeat}, naive x{args.naive_repeat}; ms)")
    print(
        f"{'case':<22}{'bars':>8}{'live':>9}{'full':>9}{'kalman full':>13}{'naive':>10}{'naive/full':>12}"
    )
    for label, n, tf, lookback in (
        ("1s, history size", 1_600, "1s", 300),
        ("1m, history size", 1_600, "1m", 300),
        ("5m, history size", 1_600, "5m", 300),
        ("1s bars, one hour", 3_600, "1s", 1_000),
        ("1s bars, one day", 86_400, "1s", 1_000),
    ):
        yb, xb = make_bars(n, tf)
        p = PairParams(lookback_bars=lookback, z_window_bars=60, corr_window_bars=60)
        pk = PairParams(lookback_bars=lookback, method="kalman")
        live = timed(partial(ours_live, yb, xb, p), args.repeat)
        full = timed(partial(ours_full, yb, xb, p), args.repeat)
        memo: dict = {}
        ours_full(yb, xb, pk, memo)  # the engine keeps the Kalman's block fits between closes
        kfull = timed(partial(ours_full, yb, xb, pk, memo), args.repeat)
        slow = timed(partial(naive, yb, xb, p), args.naive_repeat)
        print(
            f"{label:<22}{n:>8,}{live:>9.2f}{full:>9.2f}{kfull:>13.2f}{slow:>10.1f}{slow / full:>11.1f}x"
        )


if __name__ == "__main__":
    main()
