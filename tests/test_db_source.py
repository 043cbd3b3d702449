"""``--source db``: a dashboard without a feed shows the bars collectors write, in SQLite or
PostgreSQL, picking up new ones as they land."""

from __future__ import annotations

import csv
import io
import os
import socket

import numpy as np
import pytest

from backend.engine import Engine, EngineOptions
from backend.storage import open_store
from backend.storage.persistence import BarFlusher
from backend.store.records import TIMEFRAMES_MS
from backend.store.tick_store import TickStore
from tests.conftest import wait_for


def _db_engine(target, **kw) -> Engine:
    return Engine(EngineOptions(source="db", db=str(target), **kw))


def _rows(db, symbols, tf):
    return sum(len(db.load(s, tf)) for s in symbols)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_db_dashboard_shows_what_a_collector_writes_as_it_lands(
    backend, dec_trades, tmp_path, request
):
    target = tmp_path / "m.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    db = open_store(target)
    symbols = sorted(dec_trades)
    db.claim(symbols)  # the writer names itself, as a collector does
    writer = TickStore(symbols)
    flusher = BarFlusher(writer, db)
    halves = {s: len(t) // 2 for s, t in dec_trades.items()}
    for s, tape in dec_trades.items():  # a collector has saved the first half ...
        writer.ingest(tape.take(slice(0, halves[s])))
    flusher.flush()
    engine = _db_engine(target)  # 6 h of 1s bars back from the newest stored (2025's)
    try:
        assert engine.symbols == symbols and engine.unknown_symbols == []
        for s in symbols:
            for tf in TIMEFRAMES_MS:  # the page opens with every stored bar
                assert engine.bars(s, tf).to_frame().equals(db.load(s, tf).to_frame()), (s, tf)
        lost = {}  # ... and goes on writing, three trades of each lost: the page follows
        for s, tape in dec_trades.items():
            held = np.r_[halves[s] : halves[s] + 10, halves[s] + 13 : len(tape)]
            lost[s] = int(tape.agg_id[halves[s] + 13] - tape.agg_id[halves[s] + 9] - 1)
            writer.ingest(tape.take(held))
        flusher.flush()
        wait_for(
            lambda: all(
                engine.bars(s, "1s").to_frame().equals(db.load(s, "1s").to_frame()) for s in symbols
            ),
            10,
            "the new bars on the page",
        )
        h = engine.health()
        assert h.source == "db" and h.feed.state == "connected" and h.mark_feed is None
        # Each collected symbol's health: who, complete to its resume point (before the lost
        # trades), and the gap they left.
        points = db.resume_points()
        wait_for(
            lambda: [c.open_gaps for c in engine.health().collectors] == [1, 1],
            5,
            "the collectors' health as of the last save",
        )
        for c in engine.health().collectors:
            assert c.complete_to_ms == points[c.symbol].open_time_ms
            assert c.complete_to_ms <= int(
                dec_trades[c.symbol].trade_time_ms[halves[c.symbol] + 10]
            )
            assert c.saved_at_ms == points[c.symbol].saved_at_ms
            assert (c.host, c.pid) == (socket.gethostname(), os.getpid())
            assert (c.open_gaps, c.missing_ids) == (1, lost[c.symbol]) and lost[c.symbol] >= 3
        # The CSV holds exactly the database's rows.
        rows = list(csv.DictReader(io.StringIO(engine.csv("1m").decode())))
        assert len(rows) == _rows(db, symbols, "1m")
        first = db.load(symbols[0], "1m")
        assert int(rows[0]["open_time"]) == int(first.open_time[0])
        assert float(rows[0]["close"]) == float(first.close[0])
        assert engine.save() == 0  # nothing to save: the bars came from there
    finally:
        engine.stop()
        db.close()


def test_named_symbols_the_database_lacks_are_named_and_an_empty_one_refused(dec_trades, tmp_path):
    from backend.config import ConfigError

    with pytest.raises(ConfigError, match="holds no bars yet: start a collector first"):
        _db_engine(tmp_path / "empty.db")
    db = open_store(tmp_path / "m.db")
    writer = TickStore(["BTCUSDT"])
    writer.ingest(dec_trades["BTCUSDT"].take(slice(0, 500)))
    BarFlusher(writer, db).flush()
    engine = _db_engine(tmp_path / "m.db", symbols=("BTCUSDT", "SOLUSDT"))
    try:
        assert engine.unknown_symbols == ["SOLUSDT"]  # named on the page, shown empty
        assert len(engine.bars("BTCUSDT", "1s")) == len(db.load("BTCUSDT", "1s")) > 0
    finally:
        engine.stop()
        db.close()


def test_bars_a_collector_fills_late_reach_the_reader(dec_trades, tmp_path):
    """A gap filled after later bars were saved changes bars before the newest one: the reader
    reads again from the collector's resume point (before it, bars are final)."""
    tape = dec_trades["ETHUSDT"]
    t0 = int(tape.trade_time_ms[0])
    hole = (tape.trade_time_ms >= t0 + 60_000) & (tape.trade_time_ms < t0 + 70_000)
    db = open_store(tmp_path / "m.db")
    writer = TickStore(["ETHUSDT"])
    flusher = BarFlusher(writer, db)
    writer.ingest(tape.take(~hole))  # the stream's trades, a gap ten seconds long inside
    flusher.flush()
    engine = _db_engine(tmp_path / "m.db")
    try:
        writer.ingest(tape.take(hole), backfill=True)  # the backfill fills it, later
        flusher.flush()
        wait_for(
            lambda: (
                engine.bars("ETHUSDT", "1s").to_frame().equals(db.load("ETHUSDT", "1s").to_frame())
            ),
            10,
            "the filled seconds on the reader",
        )
        for tf in ("1m", "5m"):
            assert engine.bars("ETHUSDT", tf).to_frame().equals(db.load("ETHUSDT", tf).to_frame())
    finally:
        engine.stop()
        db.close()
