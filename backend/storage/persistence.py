"""Persistence of the live store, one module for the engine, the collector and the soak: the
periodic flush of changed bars, the manual "save everything", and the resume after a restart.
Every write puts bars and the resume points that go with them in one transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from backend.storage import BarStore, StorageError
from backend.store.records import TIMEFRAMES_MS, GapStatus
from backend.store.tick_store import TickStore
from backend.store.timeframes import FOLD_MS, KLINE_TIMEFRAMES, floor_ms, kline_span

log = logging.getLogger(__name__)

SAVE_CHUNK_ROWS = 20_000  # rows per progress step of a full save


class BarFlusher:
    """Writes the bars changed since the last successful flush, in every timeframe.

    A failed write (database locked, disk full) keeps the changes pending for the next try, so a
    transient error loses nothing.
    """

    def __init__(self, store: TickStore, db: BarStore) -> None:
        self.store, self.db = store, db
        self._pending: dict[str, int] = {}
        self.rows_written = 0
        self.last_error: str | None = None

    def flush(self, everything: bool = False) -> int:
        # Resume points first, bars after: the bars read then hold every trade the points claim.
        points = self.store.resume_points()
        snap = self.store.snapshot()
        gaps = [GapStatus(s.symbol, s.open_gaps, s.missing_ids) for s in snap.symbols.values()]
        for symbol, since in self.store.take_dirty().items():
            self._pending[symbol] = min(since, self._pending.get(symbol, since))
        targets = dict.fromkeys(self.store.symbols) if everything else dict(self._pending)
        bars = [
            self.store.bars(symbol, tf, since_ms=since)
            for symbol, since in targets.items()
            for tf in TIMEFRAMES_MS
        ]
        try:
            written = self.db.upsert((b for b in bars if len(b)), points, gaps=gaps)
        except StorageError as exc:
            self.last_error = str(exc)
            log.error("%s", exc)
            return 0
        self._pending.clear()
        self.last_error = None
        self.rows_written += written
        return written


def resume_from_storage(
    store: TickStore,
    db: BarStore,
    max_age_s: float,
    history_s: float = 0.0,
    history_bars: int = 1000,
) -> dict[str, int]:
    """Seed ``store`` from the resume points saved within ``max_age_s``; returns, per symbol
    resumed, where its 1s bars now start (klines go before that). Their stored 1s bars from
    ``history_s`` before the point (from a 5-minute boundary, so that every derived 1m/5m bar
    is complete) are loaded, and the backfill fetches the trades from the point on. An older
    point is not used: the outage is too long to backfill cheaply, so ingestion starts afresh
    (the stored bars stay as they are). Before the 1s bars, up to ``history_bars`` stored bars
    of each kline timeframe are loaded as its klines (as ``HistoryLoader`` would from REST),
    so the longer bars holding the seam are whole."""
    now_ms = time.time() * 1000
    resumed = {}
    for symbol, point in db.resume_points().items():
        if symbol not in store.symbols:
            continue
        age_s = (now_ms - point.saved_at_ms) / 1000
        if age_s > max_age_s:
            log.info("%s: last save %.0fs ago, too old to resume; starting afresh", symbol, age_s)
            continue
        start = floor_ms(point.open_time_ms - int(history_s * 1000), FOLD_MS)
        history = db.load(symbol, "1s", since_ms=start, until_ms=point.open_time_ms - 1)
        store.resume(point, history)
        first = int(history.open_time[0]) if len(history) else point.open_time_ms
        resumed[symbol] = floor_ms(first, FOLD_MS)
        _stored_klines(store, db, symbol, resumed[symbol], history_bars)
        log.info(
            "%s: resuming from aggregate id %d (%d stored 1s bars loaded)",
            symbol,
            point.from_agg_id,
            len(history),
        )
    return resumed


def _stored_klines(store: TickStore, db: BarStore, symbol: str, seam_ms: int, bars: int) -> None:
    for tf in KLINE_TIMEFRAMES:
        end_ms, n = kline_span(tf, seam_ms, bars)
        if n:
            since = end_ms - n * TIMEFRAMES_MS[tf]
            stored = db.load(symbol, tf, since_ms=since, until_ms=end_ms - 1)
            # Fewer than asked: the store holds all it ever saw of the symbol, from its start.
            store.load_klines(symbol, stored, from_listing=len(stored) < n)


def save_all(
    store: TickStore,
    db: BarStore,
    progress: Callable[[float, str], None] | None = None,
    resume: bool = True,
) -> int:
    """Every bar of every symbol and timeframe, and the resume points, in one transaction
    (``progress(share, what)`` is called between chunks); returns the rows inserted or changed.
    A failure rolls everything back and raises ``StorageError``."""
    points = store.resume_points() if resume else []  # first: the bars read later cover them
    chunks = []
    for symbol in store.symbols:
        for tf in TIMEFRAMES_MS:
            bars = store.bars(symbol, tf)
            chunks += [
                (f"{symbol} {tf}", bars.slice(i, i + SAVE_CHUNK_ROWS))
                for i in range(0, len(bars), SAVE_CHUNK_ROWS)
            ]
    labels = [label for label, _ in chunks]

    def step(done: int) -> None:
        if progress is not None and chunks:
            progress(done / len(chunks), labels[min(done, len(chunks) - 1)])

    return db.upsert([b for _, b in chunks], points, on_chunk=step)
