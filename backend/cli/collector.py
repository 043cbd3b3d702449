"""The headless collector: live feed -> tick store -> database (SQLite or PostgreSQL), flushed
every few seconds, as the one writer of its symbols."""

from __future__ import annotations

import logging
import threading
import time

from backend.config import RESUME_MAX_AGE_S, FeedConfig
from backend.feed.build import build_feed
from backend.feed.history import HistoryOptions
from backend.signals import stop_on_signals
from backend.storage import ClaimLost, open_store
from backend.storage.persistence import BarFlusher, resume_from_storage

log = logging.getLogger(__name__)


def run_collector(
    cfg: FeedConfig,
    db_path: str,
    duration_s: float | None,
    flush_interval_s: float = 2.0,
    settle_s: float = 5.0,
    resume_max_age_s: float = RESUME_MAX_AGE_S,
    history: HistoryOptions | None = None,
    rules: str | None = None,
) -> int:
    """Ingest until ``duration_s`` elapses or SIGINT/SIGTERM; returns the process exit code.

    History is loaded first (``backend.feed.history``) and saved like every bar. A restart within
    ``resume_max_age_s`` of the last save resumes exactly where that save ended, so even a
    SIGKILL loses nothing the exchange still serves over REST.

    ``rules``: an alert rules file evaluated on the bars this collector stores (``RulesWatch``),
    as ``python -m backend watch --source db`` would, in this process.
    """
    history = history or HistoryOptions()
    db = open_store(db_path)
    try:
        db.claim(cfg.symbols)  # one writer per symbol (PostgreSQL); refused: a one-line error
        watch = RulesWatch(rules, db_path, cfg.symbols, db) if rules else None
    except BaseException:
        db.close()
        raise
    feed = build_feed(
        cfg,
        history,
        lambda s: resume_from_storage(s, db, resume_max_age_s, history.seconds_1s, history.bars),
        stored=db.load,  # klines the database holds are not downloaded again
    ).start()
    store, ingestor = feed.store, feed.ingestor
    flusher = BarFlusher(store, db)
    stop = threading.Event()
    restore_signals = stop_on_signals(stop)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    log.info("collecting %s into %s", ",".join(cfg.symbols), db.path)
    lost: str | None = None
    try:
        lost = _flush_until_stopped(db, flusher, stop, deadline, flush_interval_s, watch)
        if lost is None:
            # Give open gaps a bounded chance to fill, then write everything, open bars included.
            ingestor.settle(settle_s)
    finally:
        if watch is not None:
            watch.stop()
        feed.stop()
        if lost is None and _holds_claims(db):
            flusher.flush()
        restore_signals()
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
    if lost is not None:
        log.error("stopped: %s", lost)
        return 2
    return 0 if flusher.last_error is None else 1


def _flush_until_stopped(db, flusher, stop, deadline, flush_interval_s, watch) -> str | None:
    """Flush every ``flush_interval_s`` while this process holds its symbols; the reason it
    must stop writing if another collector took one, else None at the deadline or a signal."""
    while not stop.is_set():
        wait = flush_interval_s
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                return None
        stop.wait(wait)
        try:
            held = db.check_claims()  # no write without the symbols' locks
        except ClaimLost as exc:  # another collector took a symbol: it is the writer now
            return str(exc)
        if held:
            flusher.flush()
            if watch is not None:
                watch.start_once_stored()
    return None


def _holds_claims(db) -> bool:
    try:
        return db.check_claims()
    except ClaimLost as exc:
        log.error("final save skipped: %s", exc)
        return False


class RulesWatch:
    """``collect --rules``: the rule set claimed with the symbols (refused before anything
    streams), then evaluated once the first bars are stored, on an engine reading them back
    (``--source db``): the figures the page computes, a flush interval after each close."""

    def __init__(self, rules: str, db_path: str, symbols: list[str], db) -> None:
        from backend.alerts.rules import load_rules

        self.rules, self.db_path, self.symbols = rules, db_path, list(symbols)
        db.claim_rules(load_rules(rules).name)
        self.engine = self.service = None

    def start_once_stored(self) -> None:
        if self.engine is not None:
            return
        from backend.engine import Engine, EngineOptions
        from backend.engine.alerting import AlertService

        try:
            opts = EngineOptions(source="db", db=self.db_path, symbols=tuple(self.symbols))
            self.engine = Engine(opts)
            self.service = AlertService(self.engine, self.engine.db, self.rules)
            self.service.start(claim="held")
        except Exception as exc:  # no bars stored yet: the next flush tries again
            log.warning("alert rules not started yet: %s", exc)
            self.stop()
            self.engine = None
            return
        log.info("evaluating %d alert rules of %s", len(self.service.rules.rules), self.rules)

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None
        if self.engine is not None:
            self.engine.stop()
