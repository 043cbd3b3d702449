"""Which data each pair figure uses: the backtest is walk-forward (no figure uses later bars)."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.stattools import coint

from backend.analytics import scan_pairs
from backend.engine.pairs import (
    SCAN_MIN_CORR,
    PairParams,
    live_stats,
    needs,
    scan_market,
    slow_stats,
)
from backend.exchange.sources import Simulator
from backend.store.records import BAR_COLUMNS, Bars
from backend.store.resampling import bars_from_trades
from tests.conftest import pair_bars, reference_bars


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
    assert len(full.trades) >= 3
    # The backtest runs on closed bars: the last bar of each run is the live one.
    np.testing.assert_array_equal(full.position[: cut - 1], early.position)
    np.testing.assert_allclose(full.pnl_usdt[: cut - 1], early.pnl_usdt, rtol=0, atol=1e-9)


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
    n, cut = (1400, 1150) if method == "kalman" else (700, 520)  # a Kalman fits 800 bars
    yb, xb = pair_bars(n=n)
    p = PairParams(lookback_bars=150, z_window_bars=30, method=method)

    def run(y, x):
        live = live_stats(y, x, p)
        slow = slow_stats(y, x, p, live)
        return live_stats(y, x, p, slow)

    full = run(yb, xb)
    early = run(yb.slice(0, cut), xb.slice(0, cut))
    for name in ("beta", "alpha", "spread", "zscore"):
        np.testing.assert_allclose(
            getattr(full, name)[:cut], getattr(early, name), rtol=1e-9, atol=1e-12, equal_nan=True
        )
    assert np.isfinite(full.zscore[-100:]).all()


def test_hindsight_applies_the_latest_closed_window_to_every_bar():
    yb, xb = pair_bars()
    p = PairParams(lookback_bars=200, z_window_bars=40, hindsight=True)
    live = live_stats(yb, xb, p)
    y, x = np.log(yb.close), np.log(xb.close)
    ref = np.polyfit(x[-201:-1], y[-201:-1], 1)  # the newest bar is forming: not in the fit
    np.testing.assert_allclose(live.beta, ref[0], rtol=1e-9)
    np.testing.assert_allclose(live.spread, y - np.polyval(ref, x), rtol=1e-7, atol=1e-12)
    # That spread over its window is coint's own residual: its ADF p is coint's p exactly.
    slow = slow_stats(yb, xb, p, live)
    assert slow.window == 200
    assert slow.adf.pvalue == pytest.approx(coint(y[-201:-1], x[-201:-1])[1], rel=1e-10)
    assert slow.adf.table == "two-variable Engle-Granger"
    # A file's newest bar is closed: the fit then takes it.
    closed = live_stats(yb, xb, p, newest_is_open=False)
    np.testing.assert_allclose(closed.beta, np.polyfit(x[-200:], y[-200:], 1)[0], rtol=1e-9)
    assert closed.latest_z == closed.zscore[-1] and np.isnan(closed.forming_z)
    assert live.latest_z == live.zscore[-2] and live.forming_z == live.zscore[-1]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ols", "huber", "kalman"])
def test_a_past_bar_stays_put_when_bars_arrive_and_the_window_slides(method):
    """Item 6: beta, alpha, spread and z of a past bar, and the backtest's trades, are the same
    after 150 more bars arrive and the first 150 leave the window (refits at fixed times)."""
    yb, xb = pair_bars(n=2600, seed=5)
    t = 1_765_000_000_000 - 1_765_000_000_000 % 3_600_000  # a whole hour
    yb = Bars(
        yb.symbol, "1s", t + np.arange(2600) * 1000, *(yb.columns()[c] for c in BAR_COLUMNS[1:])
    )
    xb = Bars(
        xb.symbol, "1s", t + np.arange(2600) * 1000, *(xb.columns()[c] for c in BAR_COLUMNS[1:])
    )
    p = PairParams(lookback_bars=150, z_window_bars=30, method=method)

    def run(lo, hi):
        y, x = yb.slice(lo, hi), xb.slice(lo, hi)
        live = live_stats(y, x, p)
        slow = slow_stats(y, x, p, live)
        return live_stats(y, x, p, slow), slow

    (before, slow_before), (after, slow_after) = run(0, 2400), run(150, 2550)
    common = slice(150, 2399)  # bars both runs hold closed, indexed as the first run
    shifted = slice(0, 2399 - 150)
    defined = np.isfinite(after.beta[shifted])
    assert defined.sum() > 800
    for name in ("beta", "alpha", "spread"):
        a, b = getattr(before, name)[common], getattr(after, name)[shifted]
        np.testing.assert_allclose(b[defined], a[defined], rtol=1e-9, atol=1e-12)
    z_ok = np.isfinite(after.zscore[shifted]) & defined
    np.testing.assert_allclose(after.zscore[shifted][z_ok], before.zscore[common][z_ok], rtol=1e-7)
    # Trades decided after the later run's first anchor, and closed in both, are the same.
    late = slow_after.backtest.trades
    early = slow_before.backtest.trades
    start = slow_after.backtest.summary.first_ms
    both_closed = early[
        early["closed"] & (early["entry_decided"] >= pd.Timestamp(start, unit="ms", tz="UTC"))
    ]
    cols = ["entry_decided", "exit_decided", "side", "net_usdt"]
    merged = both_closed[cols].merge(
        late[late["closed"]][cols], on=["entry_decided", "exit_decided", "side"]
    )
    assert len(both_closed) >= 3 and len(merged) >= len(both_closed) - 1
    np.testing.assert_allclose(merged["net_usdt_x"], merged["net_usdt_y"], rtol=1e-9)


def test_scan_market_uses_closed_bars_fills_quiet_bars_and_ranks_the_known_pairs():
    """The market scan against pandas: bars from the simulation's trades, the newest (open)
    bar left out, a minute without trades at the previous close."""
    symbols = [f"S{i:02d}USDT" for i in range(8)]
    sim = Simulator(symbols, seed=4)
    trades = sim.history(1_765_000_000_000, 6 * 3600)
    quiet = trades["S07USDT"]  # no trade in one minute of the window
    keep = (quiet.trade_time_ms // 60_000) != (1_765_000_000_000 // 60_000 - 40)
    trades["S07USDT"] = quiet.take(np.flatnonzero(keep))
    bars = {s: bars_from_trades(t, "1m") for s, t in trades.items()}
    scan = scan_market(bars, "1m", lookback=300)

    ref = {s: reference_bars(t, 60_000).set_index("open_time") for s, t in trades.items()}
    closes = pd.DataFrame({s: r["close"] for s, r in ref.items()}).sort_index()
    quiet_bar = ref["S07USDT"].loc[(1_765_000_000_000 // 60_000 - 40) * 60_000]
    assert quiet_bar["trades"] == 0  # an empty bar at the previous close, as Binance's klines
    window = closes.iloc[:-1].ffill().iloc[-300:]
    expected = scan_pairs(np.log(window), lookback=300)
    pd.testing.assert_frame_equal(scan.table[expected.columns], expected)
    assert scan.last_closed_ms == window.index[-1] and scan.waiting is None
    quote = {
        s: r["quote_volume"].loc[window.index[0] : window.index[-1]].sum() for s, r in ref.items()
    }
    row = scan.table.iloc[0]
    assert row["volume_usdt"] == pytest.approx(min(quote[row["y"]], quote[row["x"]]), rel=1e-9)
    truth = {frozenset(p) for p in sim.cointegrated_pairs()}
    assert {
        frozenset(p) for p in zip(scan.table["y"][:3], scan.table["x"][:3], strict=True)
    } == truth


def test_scan_market_says_what_it_waits_for():
    sim = Simulator(["AUSDT", "BUSDT", "CUSDT"], seed=1)
    trades = sim.history(1_765_000_000_000, 30 * 60)
    bars = {s: bars_from_trades(t, "1m") for s, t in trades.items()}
    scan = scan_market(bars, "1m", lookback=300)
    minutes = set().union(*(reference_bars(t, 60_000)["open_time"] for t in trades.values()))
    closed = len(minutes) - 1  # the newest minute is still open
    assert scan.table.empty and scan.waiting == f"{closed} closed 1m bars of the 300 the scan uses"
    one = scan_market({"AUSDT": bars["AUSDT"]}, "1m", lookback=20)
    assert one.waiting == "the scan needs two symbols with bars, has 1"


def test_uploaded_bars_scan_the_same_with_their_last_bar_closed():
    from backend.engine.uploads import UploadedData, UploadedSymbol

    sim = Simulator(["AUSDT", "BUSDT", "CUSDT", "DUSDT"], seed=2)
    bars = {
        s: bars_from_trades(t, "1m") for s, t in sim.history(1_765_000_000_000, 3 * 3600).items()
    }
    uploaded = UploadedData({s: UploadedSymbol(s, bars=b) for s, b in bars.items()}, key=("t",))
    scan = uploaded.scan("1m", 100)
    closes = pd.DataFrame({s: pd.Series(b.close, index=b.open_time) for s, b in bars.items()})
    expected = scan_pairs(np.log(closes.ffill().iloc[-100:]), lookback=100)
    pd.testing.assert_frame_equal(scan.table[expected.columns], expected)
    assert scan.last_closed_ms == int(closes.index[-1])  # nothing is still open in a file


def test_planted_pairs_pass_at_q_and_unrelated_pairs_do_not():
    """40 simulated symbols (14 cointegrated pairs among 780): on raw Engle-Granger p <= 0.05
    unrelated pairs pass too; on BH q <= 0.05 and the default minimum correlation exactly the
    planted pairs pass, each cointegrated in most of its sub-windows."""
    symbols = [f"S{i:02d}USDT" for i in range(40)]
    sim = Simulator(symbols, seed=11)
    trades = sim.history(1_765_000_000_000, 6 * 3600)
    bars = {s: bars_from_trades(t, "1m") for s, t in trades.items()}
    table = scan_market(bars, "1m", lookback=300).table
    planted = {frozenset(p) for p in sim.cointegrated_pairs()}
    assert len(planted) == 14 and len(table) == 780
    pairs = [frozenset(p) for p in zip(table["y"], table["x"], strict=True)]
    raw = {p for p, v in zip(pairs, table["eg_pvalue"], strict=True) if v <= 0.05}
    assert planted <= raw and len(raw - planted) >= 5  # what a raw p lets through
    passed = (table["eg_qvalue"] <= 0.05) & (table["corr"] >= SCAN_MIN_CORR)
    assert {p for p, ok in zip(pairs, passed, strict=True) if ok} == planted
    chosen = table[passed]
    assert (chosen["coint_share"] >= 0.6).all() and (chosen["hurst"] < 0.5).all()
