"""Bar semantics on hand-worked ticks, and on the real recorded sample against pandas."""

import numpy as np
import pytest

from backend.store.records import TIMEFRAMES_MS, Bars
from backend.store.resampling import SecondBars, align, bars_from_trades, fold_bars
from tests.conftest import assert_bars_equal, reference_bars, trades_batch

S = "BTCUSDT"


def frame(bars):
    return bars.to_frame()


def test_boundaries_at_exact_multiples_belong_to_the_next_bar():
    # 59_999 ms is the last instant of minute 0; 60_000 opens minute 1.
    batch = trades_batch(S, [(1, 100.0, 1.0, 59_999), (2, 101.0, 2.0, 60_000)])
    one_minute = frame(bars_from_trades(batch, "1m"))
    assert one_minute["open_time"].tolist() == [0, 60_000]
    assert one_minute["close"].tolist() == [100.0, 101.0]
    seconds = frame(bars_from_trades(batch, "1s"))
    assert seconds["open_time"].iloc[0] == 59_000 and seconds["open_time"].iloc[-1] == 60_000
    assert len(seconds) == 2


def test_one_trade_bar_and_hand_worked_fields():
    # Two fills aggregated in trade 1 (f..l spans 3 trades); trade 2 is a taker sell (m=True).
    batch = trades_batch(S, [(1, 10.0, 2.0, 1_000, False, 3), (2, 12.0, 1.0, 1_500, True)])
    bar = frame(bars_from_trades(batch, "1s")).iloc[0]
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (10.0, 12.0, 10.0, 12.0)
    assert bar["volume"] == 3.0
    assert bar["quote_volume"] == 10.0 * 2.0 + 12.0 * 1.0
    assert bar["trades"] == 4  # (l - f + 1) summed: 3 + 1
    assert bar["taker_buy_volume"] == 2.0  # only the m == false trade

    single = frame(bars_from_trades(trades_batch(S, [(7, 5.5, 0.1, 7_250)]), "5m")).iloc[0]
    assert single["open_time"] == 0
    assert single[["open", "high", "low", "close"]].tolist() == [5.5] * 4


def test_empty_intervals_are_flat_at_the_previous_close():
    batch = trades_batch(S, [(1, 10.0, 1.0, 1_000), (2, 11.0, 1.0, 1_900), (3, 9.0, 1.0, 4_100)])
    bars = frame(bars_from_trades(batch, "1s"))
    assert bars["open_time"].tolist() == [1_000, 2_000, 3_000, 4_000]
    flat = bars.iloc[1:3]
    assert (flat[["open", "high", "low", "close"]] == 11.0).all().all()
    assert flat["volume"].tolist() == [0.0, 0.0] and flat["trades"].tolist() == [0, 0]
    # A whole empty minute between two traded minutes is flat too.
    gap = trades_batch(S, [(1, 10.0, 1.0, 1_000), (2, 20.0, 1.0, 125_000)])
    minutes = frame(bars_from_trades(gap, "1m"))
    assert minutes["open_time"].tolist() == [0, 60_000, 120_000]
    assert minutes.iloc[1][["open", "close", "volume"]].tolist() == [10.0, 10.0, 0.0]


def test_late_backfilled_trade_lands_in_its_closed_bar_in_id_order():
    live = SecondBars(S)
    # Trades 1, 2, 4, 5 arrive on the stream; 3 (in second 1, between 2 and 4) comes later.
    live.add(trades_batch(S, [(1, 10.0, 1.0, 1_100), (2, 11.0, 1.0, 1_200)]))
    live.add(trades_batch(S, [(4, 13.0, 1.0, 2_500), (5, 14.0, 1.0, 61_000)]))
    before = frame(live.bars("1s"))
    assert before.iloc[0]["close"] == 11.0
    live.add(trades_batch(S, [(3, 8.0, 2.0, 1_300)]))  # late: second 1 is long closed
    after = frame(live.bars("1s"))
    assert after.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [10, 11, 8, 8, 4]
    # Open/close follow the aggregate id, not arrival: a late *earlier* trade becomes the open.
    live.add(trades_batch(S, [(0, 9.0, 1.0, 1_050)]))
    assert frame(live.bars("1s")).iloc[0]["open"] == 9.0
    whole = trades_batch(
        S,
        [
            (0, 9.0, 1.0, 1_050),
            (1, 10.0, 1.0, 1_100),
            (2, 11.0, 1.0, 1_200),
            (3, 8.0, 2.0, 1_300),
            (4, 13.0, 1.0, 2_500),
            (5, 14.0, 1.0, 61_000),
        ],
    )
    for tf, tf_ms in TIMEFRAMES_MS.items():
        assert_bars_equal(frame(live.bars(tf)), reference_bars(whole, tf_ms), tf)


def test_trade_before_the_origin_grows_the_array_backwards():
    live = SecondBars(S)
    live.add(trades_batch(S, [(10, 10.0, 1.0, 50_000)]))
    live.add(trades_batch(S, [(9, 9.0, 1.0, 20_000)]))
    bars = frame(live.bars("1s"))
    assert bars["open_time"].iloc[0] == 20_000 and len(bars) == 31
    assert bars["close"].iloc[1] == 9.0 and bars["close"].iloc[-1] == 10.0


def test_since_reads_only_the_tail_with_correct_flat_fill():
    batch = trades_batch(
        S, [(1, 10.0, 1.0, 1_000), (2, 11.0, 1.0, 65_000), (3, 12.0, 1.0, 400_000)]
    )
    live = SecondBars(S)
    live.add(batch)
    full = frame(live.bars("1s"))
    tail = frame(live.bars("1s", since_ms=300_000))
    assert tail["open_time"].iloc[0] == 300_000
    np.testing.assert_array_equal(tail.to_numpy(), full[full["open_time"] >= 300_000].to_numpy())
    tail5 = frame(live.bars("5m", since_ms=300_000))
    assert tail5["open_time"].tolist() == [300_000]
    assert tail5["open"].iloc[0] == 12.0


def test_dirty_range_covers_the_flat_seconds_a_new_trade_reveals():
    """A writer that saves only what changed must also save the flat bars between the old last
    trade and a new one: they did not exist before it arrived."""
    live = SecondBars(S)
    live.add(trades_batch(S, [(1, 10.0, 1.0, 1_000), (2, 11.0, 1.0, 2_500)]))
    assert live.take_dirty() == 1_000
    live.add(trades_batch(S, [(3, 12.0, 1.0, 6_200)]))  # seconds 3..5 become flat at 11.0
    since = live.take_dirty()
    assert since == 3_000
    assert frame(live.bars("1s", since_ms=since))["close"].tolist() == [11.0, 11.0, 11.0, 12.0]
    live.add(trades_batch(S, [(4, 13.0, 1.0, 6_900)]))  # same second: nothing new is flat
    assert live.take_dirty() == 6_000


def test_locate_finds_the_second_holding_an_id():
    live = SecondBars(S)
    live.add(trades_batch(S, [(5, 10.0, 1.0, 1_000), (6, 11.0, 1.0, 1_500), (7, 12.0, 1.0, 4_000)]))
    assert live.locate(6) == (1_000, 5)
    assert live.locate(7) == (4_000, 7)
    assert live.locate(8) is None
    assert live.locate(4) is None  # before every held id: no second starts at or below it


@pytest.mark.parametrize("tf", list(TIMEFRAMES_MS))
def test_real_sample_matches_pandas_reference(dec_trades, tf):
    for symbol, trades in dec_trades.items():
        assert_bars_equal(
            frame(bars_from_trades(trades, tf)),
            reference_bars(trades, TIMEFRAMES_MS[tf]),
            f"{symbol} {tf}",
        )


def test_real_sample_in_random_batches_with_late_trades_equals_reference(dec_trades):
    rng = np.random.default_rng(3)
    trades = dec_trades["ETHUSDT"]
    order = np.arange(len(trades))
    # Hold back 5% of the trades and deliver them at the end, as a backfill would.
    late = rng.random(len(trades)) < 0.05
    live = SecondBars("ETHUSDT")
    on_time = order[~late]
    for chunk in np.array_split(on_time, 37):
        live.add(trades.take(chunk))
    live.add(trades.take(order[late][::-1]))
    for tf, tf_ms in TIMEFRAMES_MS.items():
        assert_bars_equal(frame(live.bars(tf)), reference_bars(trades, tf_ms), tf)


def test_align_keeps_common_open_times():
    a = bars_from_trades(trades_batch("A", [(1, 1.0, 1.0, 1_000), (2, 2.0, 1.0, 5_000)]), "1s")
    b = bars_from_trades(trades_batch("B", [(1, 3.0, 1.0, 3_000), (2, 4.0, 1.0, 9_000)]), "1s")
    xa, xb = align(a, b)
    assert xa.open_time.tolist() == xb.open_time.tolist() == [3_000, 4_000, 5_000]
    assert xb.close.tolist() == [3.0, 3.0, 3.0]


def test_align_of_irregular_bars_uses_the_common_times():
    from backend.store.records import Bars

    def bars(times):
        t = np.array(times, np.int64)
        f = np.arange(len(t), dtype=float) + 1
        return Bars("S", "1s", t, f, f, f, f, f, f, np.ones(len(t), np.int64), f)

    a, b = bars([0, 500, 2_000, 3_000]), bars([0, 1_000, 2_000, 3_000])
    xa, xb = align(a, b)
    assert xa.open_time.tolist() == [0, 2_000, 3_000] and xb.close.tolist() == [1.0, 3.0, 4.0]


@pytest.mark.parametrize("timeframe", ["15m", "1h", "4h", "1d"])
def test_longer_bars_folded_from_1m_equal_bars_built_from_the_trades(dec_trades, timeframe):
    """Folding 1m bars (quiet minutes flat at the close before them) gives what the trades give
    directly: quiet minutes set no open, high or low."""
    for trades in dec_trades.values():
        minutes = bars_from_trades(trades, "1m")
        assert_bars_equal(
            fold_bars(minutes, timeframe, first_is_whole=True).to_frame(),
            reference_bars(trades, TIMEFRAMES_MS[timeframe]),
            timeframe,
        )


def test_folding_skips_quiet_minutes_and_a_partial_first_bar():
    # 1h bars from 1m bars by hand: hour 0 starts at minute 58 (partial), hour 1 has a quiet
    # first minute (flat at 10.0, the close before) then trades at 12, 9 and 11.
    h = 3_600_000
    t = np.array([h - 120_000, h - 60_000, h, h + 60_000, h + 120_000])
    o = np.array([10.0, 10.0, 10.0, 12.0, 9.0])
    hi = np.array([10.5, 10.0, 10.0, 12.5, 11.0])
    lo = np.array([9.5, 10.0, 10.0, 8.0, 9.0])
    c = np.array([10.0, 10.0, 10.0, 9.0, 11.0])
    trades = np.array([3, 0, 0, 2, 4])
    vol = np.array([1.0, 0.0, 0.0, 2.0, 3.0])
    m = Bars("X", "1m", t, o, hi, lo, c, vol, vol * 10, trades, vol / 2)
    out = fold_bars(m, "1h")
    assert out.open_time.tolist() == [h]  # the partial hour 0 is left out
    assert (out.open[0], out.high[0], out.low[0], out.close[0]) == (12.0, 12.5, 8.0, 11.0)
    assert (out.volume[0], out.trades[0], out.taker_buy_volume[0]) == (5.0, 6, 2.5)
    both = fold_bars(m, "1h", first_is_whole=True)
    assert both.open_time.tolist() == [0, h] and both.open[0] == 10.0 and both.high[0] == 10.5
    quiet = fold_bars(m.slice(1, 3), "1h", first_is_whole=True)  # no trade at all: flat
    assert (quiet.open.tolist(), quiet.high.tolist(), quiet.trades.tolist()) == (
        [10.0, 10.0], [10.0, 10.0], [0, 0])  # fmt: skip
