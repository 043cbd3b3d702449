"""Which data each pair figure uses: the backtest is walk-forward (no figure uses later bars)."""

import numpy as np
import pandas as pd
import pytest

from backend.pairs import PairParams, live_stats, slow_stats
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
    np.testing.assert_array_equal(full.position[:cut], early.position)
    np.testing.assert_allclose(full.pnl[:cut], early.pnl, rtol=0, atol=1e-15)


def test_walk_forward_beta_is_the_trailing_ols_of_each_window():
    """Independent: pandas rolling covariance / variance of the log prices."""
    from backend.pairs import walk_forward_signal

    yb, xb = pair_bars()
    p = PairParams(lookback_bars=200, z_window_bars=40)
    y, x = np.log(yb.close), np.log(xb.close)
    beta, z = walk_forward_signal(y, x, p, None, None)
    ys, xs = pd.Series(y), pd.Series(x)
    ref_beta = ys.rolling(200).cov(xs) / xs.rolling(200).var()
    np.testing.assert_allclose(beta, ref_beta, rtol=1e-7, equal_nan=True)
    ref_alpha = ys.rolling(200).mean() - ref_beta * xs.rolling(200).mean()
    spread = ys - (ref_alpha + ref_beta * xs)
    ref_z = (spread - spread.rolling(40).mean()) / spread.rolling(40).std(ddof=1)
    np.testing.assert_allclose(z, ref_z, rtol=1e-6, atol=1e-9, equal_nan=True)
