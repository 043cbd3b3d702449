"""The collector's flush and resume: resume points saved with the bars, exact restarts, SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

import numpy as np
import pytest

from backend.storage import BarStore
from backend.storage.persistence import BarFlusher, resume_from_storage
from backend.store.records import TIMEFRAMES_MS
from backend.store.tick_store import TickStore
from tests.conftest import (
    ROOT,
    assert_bars_equal,
    collect_argv,
    reference_bars,
    trades_batch,
    wait_for,
)
from tests.test_ingestion import SYMBOLS


def test_resume_point_is_the_second_of_the_last_gap_free_id():
    store = TickStore(["BTCUSDT"])
    store.ingest(
        trades_batch("BTCUSDT", [(1, 10.0, 1, 500), (2, 11.0, 1, 1_200), (3, 12, 1, 1_900)])
    )
    (point,) = store.resume_points()
    # Id 3 is the last held; its second (1,000 ms) starts with id 2.
    assert (point.open_time_ms, point.from_agg_id) == (1_000, 2)
    # A gap (4..5) opens: the point stays before it, however far the stream runs ahead.
    store.ingest(trades_batch("BTCUSDT", [(6, 13.0, 1, 2_100), (7, 14.0, 1, 3_500)]))
    (point,) = store.resume_points()
    assert (point.open_time_ms, point.from_agg_id) == (1_000, 2)
    store.ingest(trades_batch("BTCUSDT", [(4, 12.5, 1, 2_000), (5, 12.7, 1, 2_050)]))
    (point,) = store.resume_points()
    assert (point.open_time_ms, point.from_agg_id) == (3_000, 7)


def test_restart_from_a_flush_rebuilds_exactly_the_same_bars(dec_trades, tmp_path):
    """Flush part of the tape, restart from the database, feed the tape again from the resume
    point (as the backfill would): bars equal the reference, nothing doubled."""
    symbol = "ETHUSDT"
    tape = dec_trades[symbol]
    cut = len(tape) // 2
    db = BarStore(tmp_path / "market.db")
    first = TickStore([symbol])
    first.ingest(tape.take(slice(0, cut)))
    BarFlusher(first, db).flush()
    # Trades after the flush are lost with the process (as with SIGKILL).
    first.ingest(tape.take(slice(cut, cut + 500)))

    second = TickStore([symbol])
    assert list(resume_from_storage(second, db, max_age_s=60)) == [symbol]
    (point,) = db.resume_points().values()
    assert point.open_time_ms % 1000 == 0 and point.from_agg_id <= int(tape.agg_id[cut - 1])
    # The backfill fetches from the resume point on; replays of older ids would be duplicates.
    again = tape.take(tape.agg_id >= point.from_agg_id - 50)
    result = second.ingest(again)
    assert result.duplicates == 50
    flusher = BarFlusher(second, db)
    flusher.flush()
    assert flusher.flush(everything=True) == 0  # the whole store is already saved
    for tf, tf_ms in TIMEFRAMES_MS.items():
        expected = reference_bars(tape, tf_ms)
        mine = second.bars(symbol, tf).to_frame()  # from the 5m bar before the point on
        tail = expected[expected.open_time >= mine.open_time.iloc[0]]
        assert_bars_equal(mine, tail, tf)
        assert_bars_equal(db.load(symbol, tf).to_frame(), expected, f"db {tf}")
    db.close()


def test_an_old_resume_point_is_not_used(dec_trades, tmp_path):
    db = BarStore(tmp_path / "market.db")
    store = TickStore(["BTCUSDT"])
    store.ingest(dec_trades["BTCUSDT"].take(slice(0, 100)))
    BarFlusher(store, db).flush()
    assert resume_from_storage(TickStore(["BTCUSDT"]), db, max_age_s=0) == {}
    assert resume_from_storage(TickStore(["ETHUSDT"]), db, max_age_s=60) == {}
    db.close()


def _collector(ex, db_path) -> subprocess.Popen:
    return subprocess.Popen(
        collect_argv(ex, db_path, "--flush-interval", "0.5"),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stored_trades(db_path) -> dict[str, int]:
    try:
        conn = sqlite3.connect(db_path, timeout=5)
        rows = conn.execute(
            "SELECT symbol, SUM(trades) FROM bars WHERE timeframe = '1s' GROUP BY symbol"
        ).fetchall()
        conn.close()
    except sqlite3.OperationalError:  # the collector has not created the table yet
        return {}
    return {s: int(n) for s, n in rows}


@pytest.mark.slow
def test_sigkilled_collector_restarts_from_the_database_without_loss_or_duplicates(
    exchange_factory, dec_trades, tmp_path
):
    """Kill -9 mid-run, trades keep coming while it is down, restart: the database ends
    exactly equal to the reference. Without a resume point (first run) the bound is the bars
    since the last flush; with one, the restart backfills them from the exchange."""
    ex = exchange_factory(trades=dec_trades, speed=12.0)  # the tape in ~34 s: room under load
    db_path = tmp_path / "market.db"
    total = {s: len(dec_trades[s]) for s in SYMBOLS}
    first = _collector(ex, db_path)
    try:
        wait_for(lambda: _stored_trades(db_path).get("ETHUSDT", 0) > 3_000, 30, "a first flush")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = {s: len(ex.published(s)) for s in SYMBOLS}
    stored_at_kill = _stored_trades(db_path)
    assert 0 < stored_at_kill["ETHUSDT"] < total["ETHUSDT"]
    assert at_kill["ETHUSDT"] + 1_000 < total["ETHUSDT"], "the tape ran out before the kill"
    # Down for a while: the exchange publishes trades no stream delivers to us.
    wait_for(
        lambda: len(ex.published("ETHUSDT")) > at_kill["ETHUSDT"] + 1_000,
        30,
        lambda: (
            f"trades (at kill {at_kill}, now {len(ex.published('ETHUSDT'))}; exchange "
            f"clock {ex.clock_ms()}, subscribers {len(ex._subs)}, error {ex.publish_error})"
        ),
    )

    second = _collector(ex, db_path)
    try:
        wait_for(ex.done.is_set, 60, "the tape to end")
        expected_trades = {
            s: int((ex.published(s).last_trade_id - ex.published(s).first_trade_id + 1).sum())
            for s in SYMBOLS
        }
        wait_for(lambda: _stored_trades(db_path) == expected_trades, 30, "every trade stored")
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, stderr[-2000:]
    assert "resuming from aggregate id" in stderr
    db = BarStore(db_path)
    try:
        for symbol in SYMBOLS:
            published = ex.published(symbol)
            assert len(published) == total[symbol]
            for tf, tf_ms in TIMEFRAMES_MS.items():
                assert_bars_equal(
                    db.load(symbol, tf).to_frame(), reference_bars(published, tf_ms), tf
                )
        points = db.resume_points()
        assert {p.from_agg_id for p in points.values()} <= set(
            np.concatenate([ex.published(s).agg_id for s in SYMBOLS]).tolist()
        )
    finally:
        db.close()
    assert time.time() * 1000 - min(p.saved_at_ms for p in points.values()) < 120_000
