"""History at start against the local exchange: klines before the seam, 1s bars from aggregate
trades after it, every trade once, rate limits honoured; and the store's seam bookkeeping."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from backend.config import FeedConfig
from backend.engine import Engine, EngineOptions
from backend.exchange.server import FaultPlan
from backend.exchange.sources import Simulator
from backend.feed.history import HistoryLoader, HistoryOptions, seconds_start_ms
from backend.feed.streams import Ingestor
from backend.storage import BarStore
from backend.storage.persistence import BarFlusher
from backend.store.records import TIMEFRAMES_MS
from backend.store.tick_store import TickStore
from backend.store.timeframes import KLINE_TIMEFRAMES
from tests.conftest import assert_bars_equal, reference_bars, trades_batch, wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@contextlib.contextmanager
def feed_with_history(ex, opts: HistoryOptions, symbols=SYMBOLS):
    """Stream + backfill + history loader on one store; everything stopped on exit."""
    store = TickStore(symbols)
    ingestor = Ingestor(
        store,
        FeedConfig(
            symbols=symbols, ws_url=ex.ws_url, rest_url=ex.rest_url, funding=False, quotes=False
        ),
    )
    loader = HistoryLoader(store, ingestor.rest, ingestor.backfiller, opts)
    loader.start()
    ingestor.start()
    try:
        yield store, ingestor, loader
    finally:
        loader.stop()
        ingestor.stop()
        loader.join(5)


def _complete(store, loader) -> bool:
    return loader.done.is_set() and all(
        store.history_status(s).seconds_filled == 1.0 and not store.gaps(s) for s in store.symbols
    )


def test_replay_history_equals_bars_built_from_the_same_trades(exchange_factory, dec_trades):
    """The recording's first 200 s are history (REST only), the rest streams as fast as we read.
    1m/5m: klines before the seam then bars built from trades, equal to the reference over the
    whole recording; 1s from the seam on; each trade once across the seam."""
    ex = exchange_factory(trades=dec_trades, history_s=200)
    opts = HistoryOptions(bars=1000, seconds_1s=60)
    with feed_with_history(ex, opts) as (store, ingestor, loader):
        wait_for(ex.done.is_set, 30, "the replay to end")
        wait_for(lambda: _complete(store, loader), 30, "the history to be in")
        assert ingestor.settle(10)
        for symbol in SYMBOLS:
            trades = ex.published(symbol)
            status = store.history_status(symbol)
            seam = status.seconds_from_ms
            assert seam % 300_000 == 0 and seam < int(trades.trade_time_ms.max())
            # Every kline timeframe that has a bar before its seam; 15m and longer are folded
            # from 1m bars after it (the recording starts mid-hour: its first hour is whole).
            assert {"1m", "5m"} <= set(status.klines_from_ms) <= set(KLINE_TIMEFRAMES)
            for tf in KLINE_TIMEFRAMES:
                assert_bars_equal(
                    store.bars(symbol, tf).to_frame(), reference_bars(trades, TIMEFRAMES_MS[tf]), tf
                )
            after = trades.take(trades.trade_time_ms >= seam)
            expected_1s = reference_bars(after, 1000)
            mine = store.bars(symbol, "1s").to_frame()
            assert mine.open_time.iloc[0] == int(after.trade_time_ms.min()) // 1000 * 1000
            assert_bars_equal(mine, expected_1s, "1s")
            snap = store.snapshot().symbols[symbol]
            assert (snap.ticks, snap.duplicates, snap.open_gaps) == (len(after), 0, 0)


def test_simulation_opens_with_a_thousand_bars_of_each_timeframe(exchange_factory):
    """Days of simulated history before now, the default options: >= 1000 1m and 5m bars and
    the 1s history, equal to bars built from the exchange's trades, with no gap or double count
    at the seam. The start is wherever the clock is (in the middle of a minute)."""
    days = 1000 * 300 + 900 + 600
    ex = exchange_factory(simulator=Simulator(SYMBOLS, seed=11), history_s=days)
    with feed_with_history(ex, HistoryOptions()) as (store, _ingestor, loader):
        wait_for(lambda: _complete(store, loader), 60, "the history to be in")
        for symbol in SYMBOLS:
            snap = store.snapshot().symbols[symbol]
            held = store.ticks(symbol)
            bars = {tf: store.bars(symbol, tf).to_frame() for tf in TIMEFRAMES_MS}
            trades = ex.published(symbol)  # read last: a superset of what the store holds
            assert snap.duplicates == 0 and snap.open_gaps == 0
            assert len(bars["1m"]) >= 1000 and len(bars["5m"]) >= 1000
            assert len(bars["1s"]) >= 900
            done_ms = snap.last_trade_time_ms // 1000 * 1000  # bars closed before this are whole
            for tf, tf_ms in TIMEFRAMES_MS.items():
                mine = bars[tf][bars[tf].open_time + tf_ms <= done_ms]
                ref = reference_bars(trades, tf_ms)
                ref = ref[
                    (ref.open_time >= mine.open_time.iloc[0]) & (ref.open_time + tf_ms <= done_ms)
                ]
                assert_bars_equal(mine, ref, f"{symbol} {tf}")
            seam = store.history_status(symbol).seconds_from_ms
            # Every trade from the seam on is held exactly once; none before it.
            expected = trades.agg_id[(trades.trade_time_ms >= seam)]
            np.testing.assert_array_equal(np.sort(held.agg_id), expected[: len(held)])


def test_rate_limits_during_history_are_honoured(exchange_factory):
    """429s with Retry-After on the first data requests: the client waits at least that long
    before asking again (every thread of it), then loads everything."""
    faults = FaultPlan(rest_429=3, retry_after_s=1)
    ex = exchange_factory(simulator=Simulator(SYMBOLS, seed=5), history_s=9000, faults=faults)
    with feed_with_history(ex, HistoryOptions(bars=20, seconds_1s=60)) as (store, _i, loader):
        wait_for(lambda: _complete(store, loader), 30, "the history to be in")
        for symbol in SYMBOLS:
            assert len(store.bars(symbol, "5m")) >= 20
    data = [(t, status) for t, path, status in ex.rest_log if path != "/fapi/v1/time"]
    limited = [t for t, status in data if status == 429]
    assert len(limited) == 3
    after = [t for t, status in data if status != 429 and t > limited[0]]
    assert after and after[0] - limited[-1] >= 0.95  # nothing asked inside Retry-After


def test_history_is_saved_with_the_bars_and_saving_twice_writes_nothing(exchange_factory, tmp_path):
    ex = exchange_factory(simulator=Simulator(SYMBOLS, seed=2), history_s=20_000)
    db = BarStore(tmp_path / "h.db")
    try:
        with feed_with_history(ex, HistoryOptions(bars=50, seconds_1s=60)) as (store, ing, loader):
            wait_for(lambda: _complete(store, loader), 30, "the history to be in")
            ing.stop()  # freeze the store
            flusher = BarFlusher(store, db)
            flusher.flush()
            assert flusher.flush(everything=True) == 0
            for symbol in SYMBOLS:
                for tf in TIMEFRAMES_MS:
                    assert_bars_equal(
                        db.load(symbol, tf).to_frame(), store.bars(symbol, tf).to_frame(), tf
                    )
                assert len(db.load(symbol, "5m")) >= 50
            (point,) = [p for p in db.resume_points().values() if p.symbol == "BTCUSDT"]
            assert point.from_agg_id in set(store.ticks("BTCUSDT").agg_id.tolist())
    finally:
        db.close()


def test_extend_back_below_the_stream_opens_one_gap_and_counts_overlap_apart():
    """The stream delivered ids 100..104 first; the history starts at id 90. Ids 90..99 are a
    gap; a REST page 90..104 fills it, its five repeats are overlap, not duplicates."""
    store = TickStore(["ETHUSDT"])
    stream = [(100 + i, 10.0 + i, 1.0, 61_000 + 100 * i) for i in range(5)]
    store.ingest(trades_batch("ETHUSDT", stream))
    assert store.extend_back("ETHUSDT", 60_000, 90) == (90, 99)
    assert store.history_status("ETHUSDT").seconds_filled == 0.0
    page = [(90 + i, 9.0, 1.0, 60_000 + 50 * i) for i in range(10)] + stream
    store.ingest(trades_batch("ETHUSDT", page), backfill=True)
    snap = store.snapshot().symbols["ETHUSDT"]
    assert (snap.duplicates, snap.backfill_overlap, snap.open_gaps) == (0, 5, 0)
    assert store.history_status("ETHUSDT").seconds_filled == 1.0
    store.ingest(trades_batch("ETHUSDT", stream[-1:]))  # the stream repeating itself
    assert store.snapshot().symbols["ETHUSDT"].duplicates == 1
    everything = trades_batch("ETHUSDT", page)
    assert_bars_equal(
        store.bars("ETHUSDT", "1s").to_frame(), reference_bars(everything, 1000), "1s"
    )


def test_seam_is_the_five_minute_boundary_before_the_1s_window():
    now = 1_765_788_437_123  # 08:47:17.123
    assert seconds_start_ms(now, 900) == 1_765_787_400_000  # 08:30:00
    assert seconds_start_ms(now, 0) == 1_765_788_300_000  # the current 5-minute period
    with pytest.raises(ValueError):
        HistoryOptions(bars=-1).check()


def test_a_restart_on_a_filled_store_asks_rest_only_for_the_missing_tail(
    exchange_factory, tmp_path
):
    """The database is the memory: a second engine on it loads the klines it holds and asks the
    exchange only for the bars since (and the one the first saved while it formed)."""
    ex = exchange_factory(simulator=Simulator(SYMBOLS, seed=4), history_s=86_400, deep_days=30)
    opts = EngineOptions(
        source="live", symbols=tuple(SYMBOLS), ws_url=ex.ws_url, rest_url=ex.rest_url,
        db=str(tmp_path / "market.db"), history_bars=200, history_1s_s=60,
    )  # fmt: skip

    def run() -> tuple[int, dict]:
        before = len(ex.kline_log)
        engine = Engine(opts)
        try:
            wait_for(engine.history.done.is_set, 60, "the history to be in")
            engine.save()
            bars = {(s, tf): engine.bars(s, tf) for s in SYMBOLS for tf in KLINE_TIMEFRAMES}
        finally:
            engine.stop()
        return sum(n for *_, n in list(ex.kline_log)[before:]), bars

    first, _ = run()
    assert first >= len(SYMBOLS) * 5 * 200  # 5 timeframes reach 200 bars; 1d has 31
    second, bars = run()
    # Per symbol and timeframe: the bar saved while it formed, and any that opened since.
    assert second <= len(SYMBOLS) * len(KLINE_TIMEFRAMES) * 3, second
    for (symbol, tf), mine in bars.items():
        ref = ex._pub[symbol].bars(tf, int(mine.open_time[0]))
        done = mine.slice(0, len(mine) - 1)  # the last bar may still be forming
        assert_bars_equal(done.to_frame(), ref.slice(0, len(done)).to_frame(), f"{symbol} {tf}")
