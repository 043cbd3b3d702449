"""The backtest's execution against hand-worked fills, fees, spreads and funding."""

import math

import numpy as np
import pandas as pd
import pytest

from backend.analytics import ExecutionConfig, LegData, backtest, zscore

MIN = 60_000
T = np.arange(6) * MIN  # bar open times
Z = np.array([0.0, -2.5, -2.8, -1.0, 0.5, 0.2])  # long decided at bar 1, exit decided at bar 4
Y_OPEN = np.array([100.0, 100, 100, 99, 100, 101])
Y_CLOSE = np.array([100.0, 100, 99, 98.5, 101, 101])
X = np.full(6, 50.0)


def legs(**y_extra):
    y = LegData("YUSDT", Y_OPEN, Y_CLOSE, quoted_spread_bps=np.full(6, 2.0), step=0.001, **y_extra)
    x = LegData("XUSDT", X, X, assumed_spread_bps=4.0, step=0.001)  # no quote recorded
    return [y, x]


CFG = ExecutionConfig(entry_z=2.0, exit_z=0.0, fee_bps=5.0, notional_usdt=2_000.0)
WEIGHTS = np.tile([1.0, -1.0], (6, 1))  # long 1 of y's notional, short 1 of x's


def test_a_round_trip_by_hand_fills_next_open_with_fees_and_half_spreads():
    r = backtest(T, MIN, Z, WEIGHTS, legs(), CFG)
    trip = r.trades.iloc[0]
    # Decided at bar 1's close, filled at bar 2's open (y 100, x 50): 1,000 USDT a leg.
    assert (trip["entry_bar"], trip["exit_bar"]) == (1, 4)
    assert trip["entry_time"] == pd.Timestamp(2 * MIN, unit="ms", tz="UTC")
    assert trip["exit_time"] == pd.Timestamp(5 * MIN, unit="ms", tz="UTC")
    assert (trip["qty_YUSDT"], trip["qty_XUSDT"]) == (10.0, -20.0)
    # Entry: y bought 1,000 at +1 bps (half of 2 bps): crossing 0.1, fee 5 bps of 1,000.1;
    # x sold 1,000 at -2 bps (half the assumed 4): crossing 0.2, fee 5 bps of 999.8.
    # Exit at bar 5's open (y 101): y sold 1,010 (crossing 0.101, fee of 1,009.899), x bought
    # back 1,000 (crossing 0.2, fee of 1,000.2).
    fees = (1000.1 + 999.8 + 1009.899 + 1000.2) * 5e-4
    crossing = 0.1 + 0.2 + 0.101 + 0.2
    assert trip["gross_usdt"] == pytest.approx(10.0)
    assert trip["fees_usdt"] == pytest.approx(fees, abs=1e-12)
    assert trip["spread_usdt"] == pytest.approx(crossing, abs=1e-12)
    assert trip["net_usdt"] == pytest.approx(10.0 - fees - crossing, abs=1e-12)
    assert trip["net_bps"] == pytest.approx((10.0 - fees - crossing) / 2000 * 1e4)
    assert trip["spread_assumed"] and trip["closed"] and trip["exit_reason"] == "signal"
    assert r.position.tolist() == [0, 0, 1, 1, 1, 0]
    entry_costs = 1000.1 * 5e-4 + 999.8 * 5e-4 + 0.3
    exit_costs = 1009.899 * 5e-4 + 1000.2 * 5e-4 + 0.301
    expected = [0, 0, 10 * (99 - 100) - entry_costs, 10 * -0.5, 10 * 2.5, -exit_costs]
    np.testing.assert_allclose(r.pnl_usdt, expected, atol=1e-12)
    s = r.summary
    assert (s.first_ms, s.last_ms, s.bars) == (0, 5 * MIN, 6)
    assert s.round_trips == 1 and s.net_usdt == pytest.approx(sum(expected))
    assert s.cost_share == pytest.approx((fees + crossing) / 10.0)
    assert s.break_even_bps == pytest.approx(10.0 / 2000 * 1e4)  # 50 bps a round trip
    assert s.time_in_market == pytest.approx(3 / 6)
    assert s.max_drawdown_usdt == pytest.approx(-(expected[2] + expected[3]))
    assert math.isnan(s.sharpe)  # minutes, not 30 days


def test_funding_is_paid_only_at_funding_times_the_position_crosses():
    y_funding = {"funding_times_ms": np.array([3 * MIN, 5 * MIN]), "funding_rates": [1e-4, 1e-4]}
    lg = legs(**y_funding)
    x_times = np.array([2 * MIN, 4 * MIN, 7 * MIN])  # at the entry fill: not held yet
    lg[1] = LegData(
        "XUSDT", X, X, assumed_spread_bps=4.0, step=0.001,
        funding_times_ms=x_times, funding_rates=np.array([2e-4, -3e-4, 1e-4]),
    )  # fmt: skip
    r = backtest(T, MIN, Z, WEIGHTS, lg, CFG)
    # y long 10: pays 1e-4 x 10 x 99 (bar 3's open) and, at the exit fill's very time,
    # 1e-4 x 10 x 101. x short 20 with a negative rate pays 3e-4 x 20 x 50. Nothing at the
    # entry fill's time, nothing after the exit.
    assert r.trades["funding_usdt"].iloc[0] == pytest.approx(-0.099 - 0.101 - 0.3)
    assert r.summary.funding_events == 3
    flat = backtest(T, MIN, Z, WEIGHTS, legs(), CFG)
    np.testing.assert_allclose(
        r.pnl_usdt - flat.pnl_usdt, [0, 0, 0, -0.099, -0.3, -0.101], atol=1e-12
    )
    # Rates are known for both legs from the later of their first funding times (x: 2 min,
    # y: 3 min); with one leg's unknown, none is charged and the summary says so.
    assert r.summary.funding_known_from_ms == 3 * MIN
    assert flat.summary.funding_known_from_ms is None


def test_a_close_fill_is_one_bar_late_and_pays_the_book_at_that_close():
    cfg = ExecutionConfig(fill="next_close", notional_usdt=2_000.0)
    r = backtest(T, MIN, Z, WEIGHTS, legs(), cfg)
    trip = r.trades.iloc[0]
    # Decided at bar 1, filled at bar 2's close (y 99): 1,000 / 99 = 10.10101 -> 10.101.
    assert trip["qty_YUSDT"] == 10.101 and trip["entry_YUSDT"] == 99.0
    assert trip["entry_time"] == pd.Timestamp(3 * MIN, unit="ms", tz="UTC")  # the bar's end
    assert trip["exit_YUSDT"] == 101.0 and trip["gross_usdt"] == pytest.approx(10.101 * 2)
    assert trip["hedge_error"] == pytest.approx(1000 / (10.101 * 99) - 1)
    assert r.position.tolist() == [0, 0, 0, 1, 1, 1]


def test_lot_size_rounding_and_min_notional():
    y = LegData("YUSDT", np.full(6, 333.0), np.full(6, 333.0), step=0.01)
    x = LegData("XUSDT", X, X, step=1.0)
    r = backtest(T, MIN, Z, WEIGHTS, [y, x], CFG)
    # 1,000 / 333 = 3.003 -> 3.00 (step 0.01); 1,000 / 50 = 20 (step 1).
    assert (r.trades["qty_YUSDT"].iloc[0], r.trades["qty_XUSDT"].iloc[0]) == (3.0, -20.0)
    assert r.trades["hedge_error"].iloc[0] == pytest.approx(1000 / 999 - 1)
    small = LegData("YUSDT", np.full(6, 333.0), np.full(6, 333.0), step=0.01, min_notional=1500)
    refused = backtest(T, MIN, Z, WEIGHTS, [small, x], CFG)
    assert refused.trades.empty and refused.summary.refused == 1
    assert not refused.pnl_usdt.any()


def test_stops_and_maximum_holding():
    z = np.array([0.0, -2.5, -3.0, -4.2, -3.9, -2.5, -1.0, -2.6, 0.5, 1.0])
    t = np.arange(10) * MIN
    flat = np.full(10, 100.0)
    lg = [LegData("YUSDT", flat, flat), LegData("XUSDT", flat, flat)]
    w = np.tile([1.0, -1.0], (10, 1))
    stopped = backtest(t, MIN, z, w, lg, ExecutionConfig(stop_z=4.0))
    # Stopped at bar 3 (z -4.2); no entry while |z| stays beyond 2 (bars 4, 5); re-armed at
    # bar 6 (z -1.0), enters again at bar 7 and exits at bar 8 (z >= 0).
    got = stopped.trades[["entry_bar", "exit_bar", "exit_reason"]].values.tolist()
    assert got == [[1, 3, "stop z"], [7, 8, "signal"]]
    held = backtest(t, MIN, z, w, lg, ExecutionConfig(max_hold_bars=2))
    # Filled at bar 2's open, held bars 2 and 3: out at bar 3's close.
    assert held.trades[["entry_bar", "exit_bar", "exit_reason"]].values.tolist()[0] == [
        1, 3, "max hold"
    ]  # fmt: skip
    falling = flat.copy()
    falling[3:] = 97.0  # y down 3 %: -30 USDT on 1,000 of y, beyond a 100 bps loss stop on 2,000
    lg = [LegData("YUSDT", falling, falling), LegData("XUSDT", flat, flat)]
    cfg = ExecutionConfig(stop_loss_bps=100, notional_usdt=2_000)
    lost = backtest(t, MIN, z, w, lg, cfg)
    assert lost.trades[["entry_bar", "exit_bar", "exit_reason"]].values.tolist()[0] == [
        1, 3, "stop loss"
    ]  # fmt: skip


def test_never_filled_at_the_deciding_bar_and_no_look_ahead():
    rng = np.random.default_rng(4)
    n = 2_000
    y = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    x = 50 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    z = np.asarray(zscore(np.log(y) - np.log(x), 30))
    t = np.arange(n) * MIN
    w = np.tile([1.0, -1.0], (n, 1))
    for fill in ("next_open", "next_close"):
        lg = [LegData("Y", y * (1 + 1e-4), y), LegData("X", x * (1 - 1e-4), x)]
        r = backtest(t, MIN, z, w, lg, ExecutionConfig(fill=fill))
        assert len(r.trades) > 20
        fill_offset = 0 if fill == "next_open" else MIN
        decided = r.trades["entry_bar"].to_numpy()
        filled = np.array([ts.value // 10**6 for ts in r.trades["entry_time"]]) - fill_offset
        np.testing.assert_array_equal(filled, t[decided + 1])
        assert np.isclose(r.pnl_usdt.sum(), r.trades["net_usdt"].sum())
        # The future changed from bar 1,500 on: nothing before it moves.
        y2 = y.copy()
        y2[1500:] *= 1.05
        z2 = np.asarray(zscore(np.log(y2) - np.log(x), 30))
        lg2 = [LegData("Y", y2 * (1 + 1e-4), y2), LegData("X", x * (1 - 1e-4), x)]
        other = backtest(t, MIN, z2, w, lg2, ExecutionConfig(fill=fill))
        np.testing.assert_array_equal(r.position[:1500], other.position[:1500])
        np.testing.assert_allclose(r.pnl_usdt[:1499], other.pnl_usdt[:1499], atol=1e-9)


def test_an_open_trip_is_marked_at_the_last_close_and_flagged():
    z = np.array([0.0, 0.0, 0.0, 0.0, -2.5, -2.6])
    r = backtest(T, MIN, z, WEIGHTS, legs(), CFG)
    trip = r.trades.iloc[0]
    assert not trip["closed"] and r.summary.open_trip and r.summary.round_trips == 0
    # Filled at bar 5's open (y 101), marked at its close (101): gross 0, entry costs only.
    assert trip["gross_usdt"] == 0.0 and pd.isna(trip["exit_time"])
    assert r.summary.net_usdt == pytest.approx(-(trip["fees_usdt"] + trip["spread_usdt"]))


def test_sharpe_only_from_daily_returns_over_thirty_days():
    n = 31 * 24 * 12  # 31 days of 5m bars
    rng = np.random.default_rng(9)
    y = 100 * np.exp(np.cumsum(rng.normal(0, 2e-3, n)))
    x = np.full(n, 50.0)
    t = 1_765_000_000_000 - 1_765_000_000_000 % 86_400_000 + np.arange(n) * 300_000
    z = np.asarray(zscore(np.log(y), 50))
    lg = [LegData("Y", y, y), LegData("X", x, x)]
    w = np.tile([1.0, -1.0], (n, 1))
    r = backtest(t, 300_000, z, w, lg)
    daily = pd.Series(r.pnl_usdt / 10_000).groupby(t // 86_400_000).sum()
    assert len(daily) == 31 and r.summary.days == pytest.approx(31.0)
    assert r.summary.sharpe == pytest.approx(daily.mean() / daily.std() * math.sqrt(365))
    first, second = r.summary.halves
    assert first["net_usdt"] + second["net_usdt"] == pytest.approx(r.summary.net_usdt)
    assert first["round_trips"] + second["round_trips"] == r.summary.round_trips
    short = backtest(t[:8000], 300_000, z[:8000], w[:8000], [LegData("Y", y[:8000], y[:8000]),
                     LegData("X", x[:8000], x[:8000])])  # fmt: skip
    assert math.isnan(short.summary.sharpe)  # 27.8 days


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(entry_z=1.0, exit_z=2.0), "entry z > exit z"),
        (dict(entry_z=math.nan), "entry z"),
        (dict(fill="same_close"), "fill"),
        (dict(fee_bps=-1.0), "fee"),
        (dict(fee_bps=math.inf), "entry z"),
        (dict(notional_usdt=0.0), "notional"),
        (dict(stop_z=1.0), "z stop"),
        (dict(stop_loss_bps=-5.0), "loss stop"),
        (dict(max_hold_bars=0), "holding"),
    ],
)
def test_bad_settings_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        backtest(T, MIN, Z, WEIGHTS, legs(), ExecutionConfig(**bad))


def test_misaligned_inputs_are_refused():
    with pytest.raises(ValueError, match="misaligned"):
        backtest(T, MIN, Z[:5], WEIGHTS, legs(), CFG)


def test_an_empty_period_is_an_empty_backtest():
    r = backtest(T[:0], MIN, Z[:0], WEIGHTS[:0], [LegData(g.symbol, g.open[:0], g.close[:0])
                 for g in legs()], CFG)  # fmt: skip
    assert r.trades.empty and r.summary.bars == 0 and r.summary.first_ms is None
    assert r.summary.net_usdt == 0 and not len(r.equity_usdt)
