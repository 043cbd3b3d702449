"""The headless watcher: a live feed (or the bars collectors store) -> the engine's pair service
-> alert rules -> webhooks, Telegram, e-mail; with the page closed."""

from __future__ import annotations

import logging
import threading
import time

from backend.alerts.rules import load_rules
from backend.engine import Engine, EngineOptions
from backend.engine.alerting import AlertService
from backend.signals import stop_on_signals
from backend.storage import ClaimLost, StorageError, open_store

log = logging.getLogger(__name__)

CLAIM_CHECK_S = 5.0


def run_watch(opts: EngineOptions, rules_path: str, duration_s: float | None) -> int:
    """Evaluate ``rules_path`` on an engine of ``opts`` until ``duration_s`` elapses or
    SIGINT/SIGTERM; 0 at the end, 2 if another watcher holds (or takes) the rule set.

    The rule set is claimed first, on a connection of its own, so a second watcher is refused
    before it streams anything."""
    guard = open_store(opts.db_path)
    try:
        guard.claim_rules(load_rules(rules_path).name)
    except BaseException:
        guard.close()
        raise
    stop = threading.Event()
    restore_signals = stop_on_signals(stop)
    engine = service = None
    try:
        engine = Engine(opts)
        service = AlertService(engine, engine.db, rules_path).start(claim="held")
        log.info(
            "watching %d rules of %r (%s) on %s; alerts recorded in %s",
            len(service.rules.rules), service.ruleset, rules_path, ",".join(engine.symbols),
            engine.db.path,
        )  # fmt: skip
        return _until_stopped(guard, stop, duration_s)
    finally:
        if service is not None:
            service.stop()
            log.info("%d evaluations, %d deliveries made", service.evaluations,
                     service.courier.sent)  # fmt: skip
        if engine is not None:
            engine.stop()
        guard.close()
        restore_signals()


def _until_stopped(guard, stop: threading.Event, duration_s: float | None) -> int:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while not stop.is_set():
        wait = CLAIM_CHECK_S
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                break
        stop.wait(wait)
        try:
            guard.check_claims()  # PostgreSQL: the rule set's lock lives with a connection
        except ClaimLost as exc:
            log.error("stopped: %s", exc)
            return 2
        except StorageError as exc:
            log.warning("%s", exc)
    return 0
