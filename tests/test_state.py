"""The tick store: packed buffers, exactly-once ingest, immutable snapshots under concurrency."""

import threading

import numpy as np
import pytest

from backend.store.records import TRADE_COLUMNS, TradeBatch
from backend.store.tick_store import TICK_DTYPE, TickBuffer, TickStore
from tests.conftest import assert_bars_equal, reference_bars, trades_batch


def batch_equal(a: TradeBatch, b: TradeBatch) -> None:
    for name in TRADE_COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), name)


def test_packed_tick_is_30_bytes_and_round_trips(dec_trades):
    assert TICK_DTYPE.itemsize == 30
    trades = dec_trades["BTCUSDT"]
    buf = TickBuffer(capacity=len(trades))
    buf.append(trades)
    assert buf.nbytes == 30 * len(trades)
    batch_equal(buf.read(), trades)


def test_ring_keeps_the_newest_ticks_in_arrival_order():
    rows = [(i, 100.0 + i, 1.0, 1_000 * i, i % 2 == 0) for i in range(1, 26)]
    batch = trades_batch("X", rows)
    buf = TickBuffer(capacity=10)
    for start in range(0, 25, 7):
        buf.append(batch.take(slice(start, start + 7)))
    assert len(buf) == 10 and buf.total == 25
    batch_equal(buf.read(), batch.take(slice(15, 25)))
    batch_equal(buf.read(last=3), batch.take(slice(22, 25)))


def test_wide_fill_spans_survive_packing():
    batch = trades_batch("X", [(1, 1.0, 1.0, 1_000, True, 40_000), (2, 2.0, 1.0, 2_000)])
    buf = TickBuffer(capacity=100)
    buf.append(batch)
    got = buf.read()
    batch_equal(got, batch)
    assert got.last_trade_id[0] - got.first_trade_id[0] == 39_999


def test_values_below_the_base_rebase_without_loss():
    buf = TickBuffer(capacity=100)
    first = trades_batch("X", [(50, 5.0, 1.0, 50_000)])
    older = trades_batch("X", [(40, 4.0, 1.0, 40_000)])  # a late trade older than the base
    buf.append(first)
    buf.append(older)
    batch_equal(buf.read(), TradeBatch.concat("X", [first, older]))


def test_values_beyond_the_uint32_window_keep_the_newest():
    buf = TickBuffer(capacity=100)
    old = trades_batch("X", [(1, 1.0, 1.0, 1_000)])
    new = trades_batch("X", [(5_000_000_001, 3.0, 1.0, 6_000_000_000)])
    buf.append(old)
    buf.append(new)  # ~70 days later: the old tick cannot share the window and is dropped
    batch_equal(buf.read(), new)
    assert buf.total == 2


def test_ingest_is_exactly_once_and_bars_follow(dec_trades):
    trades = dec_trades["ETHUSDT"]
    store = TickStore(["ETHUSDT"], tick_capacity=100_000)
    idx = np.arange(len(trades))
    first, second = idx[: len(idx) // 2], idx[len(idx) // 2 :]
    r1 = store.ingest(trades.take(first[::2]))  # every other trade: many one-id gaps
    assert r1.accepted == len(first[::2]) and len(r1.new_gaps) > 0
    store.ingest(trades.take(first))  # the rest arrives (and duplicates are dropped)
    store.ingest(trades.take(second))
    store.ingest(trades.take(second[:100]))  # replayed again
    snap = store.snapshot().symbols["ETHUSDT"]
    assert snap.ticks == len(trades) and snap.open_gaps == 0
    assert snap.duplicates == len(first[::2]) + 100
    assert snap.last_price == trades.price[-1]
    for tf, ms in (("1s", 1_000), ("1m", 60_000), ("5m", 300_000)):
        assert_bars_equal(store.bars("ETHUSDT", tf).to_frame(), reference_bars(trades, ms), tf)


def test_readers_never_see_torn_state_while_a_writer_ingests(dec_trades):
    trades = dec_trades["ETHUSDT"]
    store = TickStore(["ETHUSDT"])
    chunks = np.array_split(np.arange(len(trades)), 300)
    done = threading.Event()
    errors: list[str] = []

    def reader() -> None:
        while not done.is_set():
            snap = store.snapshot().symbols["ETHUSDT"]
            bars = store.bars("ETHUSDT", "1s")
            ticks = store.ticks("ETHUSDT")
            if snap.ticks and len(ticks) < 1:
                errors.append("ticks missing")
            # Each bar set must be internally consistent: trades in bars == ticks held then.
            total = int(bars.trades.sum())
            held = store.ticks("ETHUSDT")
            if total > int((held.last_trade_id - held.first_trade_id + 1).sum()):
                errors.append("bars ahead of ticks")
            if len(bars) and bars.close.flags.writeable:
                errors.append("snapshot arrays are writable")

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    for chunk in chunks:
        store.ingest(trades.take(chunk))
    done.set()
    for t in readers:
        t.join(10)
    assert not errors, errors[:3]
    assert store.snapshot().symbols["ETHUSDT"].ticks == len(trades)


def test_snapshot_arrays_are_read_only():
    store = TickStore(["X"])
    store.ingest(trades_batch("X", [(1, 1.0, 1.0, 1_000)]))
    bars = store.bars("X", "1m")
    with pytest.raises(ValueError):
        bars.close[0] = 2.0


def test_the_last_n_bars_are_the_tail_of_all_bars_klines_included(dec_trades):
    """A slice read under the lock equals the tail of the whole read, across the kline seam."""
    from backend.store.records import TIMEFRAMES_MS
    from backend.store.resampling import bars_from_trades

    tape = dec_trades["ETHUSDT"]
    cut = int(tape.trade_time_ms[0]) // 300_000 * 300_000 + 300_000
    before, after = tape.take(tape.trade_time_ms < cut), tape.take(tape.trade_time_ms >= cut)
    store = TickStore(["ETHUSDT"])
    for tf in ("1m", "5m"):
        store.load_klines("ETHUSDT", bars_from_trades(before, tf))
    store.ingest(after)
    for tf in TIMEFRAMES_MS:
        whole = store.bars("ETHUSDT", tf).to_frame()
        for n in (1, 3, len(whole) - 1, len(whole), len(whole) + 5):
            tail = store.bars("ETHUSDT", tf, last=n).to_frame()
            expected = whole.tail(n).reset_index(drop=True)
            assert tail.equals(expected), (tf, n)


def _simulated_hours(hours: int, symbols=("BTCUSDT", "ETHUSDT")):
    from backend.exchange.sources import Simulator

    t0 = 1_765_000_000_000
    return Simulator(list(symbols)).history(t0 + hours * 3_600_000, hours * 3600)


def test_keep_1s_folds_old_seconds_into_exact_1m_and_5m_bars():
    tapes = _simulated_hours(4)
    store = TickStore(list(tapes), keep_1s_s=3600)
    for tape in tapes.values():
        for i in range(0, len(tape), 2000):  # batches as the stream delivers them
            store.ingest(tape.take(slice(i, i + 2000)))
    for symbol, tape in tapes.items():
        for tf, ms in (("1m", 60_000), ("5m", 300_000)):
            assert_bars_equal(store.bars(symbol, tf).to_frame(), reference_bars(tape, ms), tf)
        seconds = store.bars(symbol, "1s").to_frame()
        # At most keep + one trim period of 1s bars, starting on a 5-minute boundary ...
        assert 3600 <= len(seconds) <= 3600 + 1800 + 300
        assert seconds["open_time"].iloc[0] % 300_000 == 0
        # ... and each of them exactly the bar built from every trade.
        ref = reference_bars(tape, 1000)
        assert_bars_equal(seconds, ref[ref["open_time"] >= seconds["open_time"].iloc[0]], "1s")


def test_keep_1s_never_folds_a_second_whose_trades_are_not_all_held():
    tape = _simulated_hours(3, ("BTCUSDT",))["BTCUSDT"]
    hole = (tape.trade_time_ms >= tape.trade_time_ms[0] + 600_000) & (
        tape.trade_time_ms < tape.trade_time_ms[0] + 610_000
    )
    store = TickStore(["BTCUSDT"], keep_1s_s=1800)
    store.ingest(tape.take(~hole))  # a gap ten minutes in, open
    first_1s = int(store.bars("BTCUSDT", "1s").open_time[0])
    assert first_1s <= int(tape.trade_time_ms[hole][0])  # the gap's seconds are still 1s bars
    store.ingest(tape.take(hole), backfill=True)  # the backfill fills it: now it may fold
    seconds = store.bars("BTCUSDT", "1s")
    assert len(seconds) <= 1800 + 1800 + 300
    assert_bars_equal(store.bars("BTCUSDT", "1m").to_frame(), reference_bars(tape, 60_000), "1m")


def test_keep_1s_must_hold_a_whole_5_minutes():
    with pytest.raises(ValueError, match="5 minutes"):
        TickStore(["BTCUSDT"], keep_1s_s=60)
