"""Which data each pair figure uses: the backtest is walk-forward (no figure uses later bars)."""

import numpy as np
import pandas as pd
import pytest

from backend.pairs import PairParams, live_stats, needs, slow_stats
from backend.records import Bars


def pair_bars(n=900, seed=3):
    rng = np.random.default_rng(seed)
    x = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    # y = 1.3 x with a mean-reverting AR(1) spread: the strategy trades often.
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = 0.8 * s[t - 1] + rng.normal(0, 2e-3)
    y = np.exp(0.5 + 1.3 * np.log(x) + s)
    t = 1_765_000_000_000 + np.arange(n) * 1000
    ones = np.ones(n)

    def bars(sym, c):
        return Bars(sym, "1s", t, c, c, c, c, ones, ones, np.ones(n, np.int64), ones)

    return bars("YYY", y), bars("XXX", x)


@pytest.mark.parametrize("method", ["ols", "huber"])
def test_backtest_decisions_do_not_change_when_later_bars_arrive(method):
    yb, xb = pair_bars()
    p = PairParams(lookback_bars=200, z_window_bars=40, method=method, z_threshold=1.5)
    cut = 700

    def run(n):
        y, x = yb.slice(0, n), xb.slice(0, n)
        live = live_stats(y, x, p)
        return slow_stats(y, x, p, live).backtest

    full, early = run(len(yb)), run(cut)
    assert full.summary["trades"] >= 3
    # The backtest runs on closed bars: the last bar of each run is the live one.
    np.testing.assert_array_equal(full.position[: cut - 1], early.position)
    np.testing.assert_allclose(full.pnl[: cut - 1], early.pnl, rtol=0, atol=1e-15)


def test_walk_forward_hedge_is_the_trailing_ols_of_the_bars_before_each_bar():
    """Independent: pandas rolling covariance / variance of the log prices, shifted one bar
    (the window ends at the previous bar); the spread and z-score from them."""
    yb, xb = pair_bars()
    p = PairParams(lookback_bars=200, z_window_bars=40)
    live = live_stats(yb, xb, p)
    ys, xs = pd.Series(np.log(yb.close)), pd.Series(np.log(xb.close))
    ref_beta = (ys.rolling(200).cov(xs) / xs.rolling(200).var()).shift(1)
    np.testing.assert_allclose(live.beta, ref_beta, rtol=1e-7, equal_nan=True)
    ref_alpha = (ys.rolling(200).mean() - ys.rolling(200).cov(xs) / xs.rolling(200).var()
                 * xs.rolling(200).mean()).shift(1)  # fmt: skip
    spread = ys - (ref_alpha + ref_beta * xs)
    ref_z = (spread - spread.rolling(40).mean()) / spread.rolling(40).std(ddof=1)
    np.testing.assert_allclose(live.zscore, ref_z, rtol=1e-6, atol=1e-9, equal_nan=True)
    assert np.isnan(live.beta[:200]).all() and np.isfinite(live.beta[200:]).all()
    assert needs(p)["β"] == 201 and needs(p)["z-score"] == 240


@pytest.mark.parametrize("method", ["ols", "huber", "kalman"])
def test_walk_forward_spread_does_not_change_when_later_bars_change(method):
    """Truncation: every figure on bar t is the same whatever comes after t."""
    yb, xb = pair_bars(n=700)
    p = PairParams(lookback_bars=150, z_window_bars=30, method=method)
    cut = 520

    def run(y, x):
        live = live_stats(y, x, p)
        slow = slow_stats(y, x, p, live)
        return live_stats(y, x, p, slow)

    full = run(yb, xb)
    early = run(yb.slice(0, cut), xb.slice(0, cut))
    for name in ("beta", "alpha", "spread", "zscore"):
        np.testing.assert_allclose(
            getattr(full, name)[:cut], getattr(early, name), rtol=1e-9, equal_nan=True
        )
    assert np.isfinite(full.zscore[-100:]).all()


def test_hindsight_applies_the_latest_window_to_every_bar():
    yb, xb = pair_bars()
    p = PairParams(lookback_bars=200, z_window_bars=40, hindsight=True)
    live = live_stats(yb, xb, p)
    y, x = np.log(yb.close), np.log(xb.close)
    ref = np.polyfit(x[-200:], y[-200:], 1)
    np.testing.assert_allclose(live.beta, ref[0], rtol=1e-9)
    np.testing.assert_allclose(live.spread, y - np.polyval(ref, x), rtol=1e-7, atol=1e-12)
