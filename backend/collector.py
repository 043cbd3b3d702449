"""The headless collector: live feed -> tick store -> SQLite, flushed every few seconds."""

from __future__ import annotations

import logging
import signal
import threading
import time

from backend.config import RESUME_MAX_AGE_S, FeedConfig
from backend.history import HistoryLoader, HistoryOptions
from backend.ingestion import Ingestor
from backend.records import TIMEFRAMES_MS
from backend.state import TickStore
from backend.storage import BarStore, StorageError

log = logging.getLogger(__name__)


class BarFlusher:
    """Writes the bars changed since the last successful flush, in all three timeframes.

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
        for symbol, since in self.store.take_dirty().items():
            self._pending[symbol] = min(since, self._pending.get(symbol, since))
        targets = dict.fromkeys(self.store.symbols) if everything else dict(self._pending)
        bars = [
            self.store.bars(symbol, tf, since_ms=since)
            for symbol, since in targets.items()
            for tf in TIMEFRAMES_MS
        ]
        try:
            written = self.db.upsert((b for b in bars if len(b)), points)
        except StorageError as exc:
            self.last_error = str(exc)
            log.error("%s", exc)
            return 0
        self._pending.clear()
        self.last_error = None
        self.rows_written += written
        return written


def resume_from_storage(
    store: TickStore, db: BarStore, max_age_s: float, history_s: float = 0.0
) -> dict[str, int]:
    """Seed ``store`` from the resume points saved within ``max_age_s``; returns, per symbol
    resumed, where its 1s bars now start (klines go before that). Their stored 1s bars from
    ``history_s`` before the point (from a 5-minute boundary, so that every derived 1m/5m bar
    is complete) are loaded, and the backfill fetches the trades from the point on. An older
    point is not used: the outage is too long to backfill cheaply, so ingestion starts afresh
    (the stored bars stay as they are)."""
    now_ms = time.time() * 1000
    resumed = {}
    for symbol, point in db.resume_points().items():
        if symbol not in store.symbols:
            continue
        age_s = (now_ms - point.saved_at_ms) / 1000
        if age_s > max_age_s:
            log.info("%s: last save %.0fs ago, too old to resume; starting afresh", symbol, age_s)
            continue
        start = (point.open_time_ms - int(history_s * 1000)) // 300_000 * 300_000
        history = db.load(symbol, "1s", since_ms=start, until_ms=point.open_time_ms - 1)
        store.resume(point, history)
        first = int(history.open_time[0]) if len(history) else point.open_time_ms
        resumed[symbol] = first // 300_000 * 300_000
        log.info(
            "%s: resuming from aggregate id %d (%d stored 1s bars loaded)",
            symbol,
            point.from_agg_id,
            len(history),
        )
    return resumed


def run_collector(
    cfg: FeedConfig,
    db_path: str,
    duration_s: float | None,
    flush_interval_s: float = 2.0,
    settle_s: float = 5.0,
    resume_max_age_s: float = RESUME_MAX_AGE_S,
    history: HistoryOptions | None = None,
) -> int:
    """Ingest until ``duration_s`` elapses or SIGINT/SIGTERM; returns the process exit code.

    History is loaded first (``backend.history``) and saved like every bar. A restart within
    ``resume_max_age_s`` of the last save resumes exactly where that save ended, so even a
    SIGKILL loses nothing the exchange still serves over REST.
    """
    history = history or HistoryOptions()
    db = BarStore(db_path)
    store = TickStore(cfg.symbols, cfg.tick_capacity)
    resumed = resume_from_storage(store, db, resume_max_age_s, history.seconds_1s)
    ingestor = Ingestor(store, cfg)
    loader = HistoryLoader(store, ingestor.rest, ingestor.backfiller, history, resumed)
    loader.start()
    ingestor.start()
    flusher = BarFlusher(store, db)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    deadline = None if duration_s is None else time.monotonic() + duration_s
    log.info("collecting %s into %s", ",".join(cfg.symbols), db_path)
    try:
        while not stop.is_set():
            wait = flush_interval_s
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            stop.wait(wait)
            flusher.flush()
        # Give open gaps a bounded chance to fill, then write everything, open bars included.
        ingestor.settle(settle_s)
    finally:
        loader.stop()
        ingestor.stop()
        flusher.flush()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        db.close()
    health = ingestor.health.snapshot()
    snap = store.snapshot()
    log.info(
        "collected %d ticks, %d rows written; reconnects %d, gaps %d found / %d filled, "
        "%d duplicates, %d malformed",
        snap.total_ticks,
        flusher.rows_written,
        health.reconnects,
        health.gaps_found,
        health.gaps_filled,
        sum(s.duplicates for s in snap.symbols.values()),
        health.malformed,
    )
    return 0 if flusher.last_error is None else 1
