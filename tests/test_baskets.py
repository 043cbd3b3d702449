"""A basket of three symbols: Johansen on the window, walk-forward weights, spread, backtest."""

import math
from dataclasses import replace

import numpy as np
import pytest
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from backend.engine.baskets import basket_stats, needs
from backend.engine.pairs import PairParams
from backend.store.records import Bars
from tests.conftest import basket_levels

T0 = 1_765_000_000_000 - 1_765_000_000_000 % 3_600_000


def basket_bars(n=1_500, seed=1):
    """The conftest basket (weights [1, -0.5, -0.3] on log prices) as 1m bars, open = the
    previous close; walks of 4e-3 a bar, so that 300 bars pin the weights down."""
    levels = basket_levels(seed, n, walk_sd=4e-3)
    t = T0 + np.arange(n) * 60_000
    ones = np.ones(n)

    def bars(symbol, log_close):
        c = np.exp(log_close)
        o = np.r_[c[0], c[:-1]]
        return Bars(
            symbol,
            "1m",
            t,
            o,
            np.maximum(o, c),
            np.minimum(o, c),
            c,
            ones,
            c,
            ones.astype(np.int64),
            ones,
        )

    return [bars(s, levels[:, i]) for i, s in enumerate(("ZZZUSDT", "AAAUSDT", "BBBUSDT"))]


P = PairParams(lookback_bars=300, z_window_bars=60, z_threshold=2.0)


def test_the_basket_test_weights_spread_and_backtest():
    bars = basket_bars()
    stats = basket_stats(bars, P)
    levels = np.column_stack([np.log(b.close) for b in bars])
    window = levels[-301:-1]  # the last 300 closed bars: the newest is forming
    ref = coint_johansen(window, 0, 1)
    np.testing.assert_allclose(stats.johansen.trace, ref.lr1)
    assert stats.johansen.rank_trace == 1 and stats.window == 300
    np.testing.assert_allclose(stats.johansen.weights, [1, -0.5, -0.3], atol=0.06)
    # Walk-forward: each bar's weights are the test of the 300 bars before its refit boundary
    # (every 15 bars, at whole quarter-hours here).
    last = stats.weights[-1]
    boundary = int(np.flatnonzero((stats.open_time // 60_000) % 15 == 0)[-1])
    fit = coint_johansen(levels[boundary - 300 : boundary], 0, 1).evec[:, 0]
    np.testing.assert_allclose(last, fit / fit[0], rtol=1e-9)
    # The spread is the weighted sum less its mean over the same fit window.
    mu = (levels[boundary - 300 : boundary] @ last).mean()
    np.testing.assert_allclose(stats.spread[boundary:], levels[boundary:] @ last - mu, atol=1e-12)
    assert stats.adf.pvalue < 0.01 and stats.adf.table == "3-variable Engle-Granger"
    assert 3 < stats.half_life.bars < 15  # phi 0.9: 6.6 bars
    bt = stats.backtest
    assert len(bt.trades) >= 5 and {"qty_ZZZUSDT", "qty_AAAUSDT", "qty_BBBUSDT"} <= set(bt.trades)
    assert bt.summary.net_usdt == pytest.approx(bt.pnl_usdt.sum())
    # A long basket is long ZZZ and short the others (weights 1, -0.5, -0.3).
    long = bt.trades[bt.trades["side"] == "long"].iloc[0]
    assert long["qty_ZZZUSDT"] > 0 > long["qty_AAAUSDT"] and long["qty_BBBUSDT"] < 0


def test_the_basket_uses_no_later_bar():
    bars = basket_bars(n=1_200)
    full = basket_stats(bars, P)
    cut = [b.slice(0, 1_000) for b in bars]
    early = basket_stats(cut, P)
    np.testing.assert_allclose(full.weights[:1000], early.weights, equal_nan=True)
    np.testing.assert_allclose(full.zscore[:1000], early.zscore, rtol=1e-9, equal_nan=True)
    assert needs(P) == 300 + 15 + 60
    assert math.isnan(early.zscore[: 300 + 14].max())  # nothing before the first refit


@pytest.mark.parametrize("count", [1, 2, 5])
def test_a_basket_is_three_or_four_different_symbols(count):
    bars = basket_bars(n=400)
    more = bars + [replace(b, symbol=f"{b.symbol}2") for b in bars]
    with pytest.raises(ValueError, match="3 or 4 different symbols"):
        basket_stats(more[:count], P)
    with pytest.raises(ValueError, match="3 or 4 different symbols"):
        basket_stats([bars[0], bars[0], bars[1]], P)
