"""The headless collector: live feed -> tick store -> SQLite, flushed every few seconds."""

from __future__ import annotations

import logging
import signal
import threading
import time

from backend.config import RESUME_MAX_AGE_S, FeedConfig, tick_capacity
from backend.history import HistoryLoader, HistoryOptions
from backend.ingestion import Ingestor
from backend.persistence import BarFlusher, resume_from_storage
from backend.state import TickStore
from backend.storage import open_store

log = logging.getLogger(__name__)


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
    db = open_store(db_path)
    try:
        db.claim(cfg.symbols)  # one writer per symbol (PostgreSQL); refused: a one-line error
    except BaseException:
        db.close()
        raise
    store = TickStore(
        cfg.symbols, tick_capacity(len(cfg.symbols), cfg.tick_capacity), cfg.keep_1s_s
    )
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
