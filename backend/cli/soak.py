"""Soak run: the local exchange (its own process) replaying the recorded sample in a loop at a
fixed message rate, and the collector's loop (feed -> tick store -> SQLite every 2 s) in this
process. Prints memory, lag and counters every ``report_every_s``; ends by itself.

    python -m backend soak --minutes 30 --rate 1000 [--db PATH] [--report-every 60]
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from backend.config import SHARED_SAMPLE, FeedConfig
from backend.exchange.sources import load_files
from backend.feed.build import build_feed
from backend.feed.streams import Ingestor
from backend.signals import die_with_parent
from backend.storage import open_store
from backend.storage.persistence import BarFlusher
from backend.store.tick_store import TickStore

log = logging.getLogger(__name__)
_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 30.0
    rate_msgs_per_s: float = 1_000.0
    db: str | None = None  # None: a temporary file, removed at the end
    report_every_s: float = 60.0
    flush_interval_s: float = 2.0
    tick_capacity: int = 2_000_000


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        line = next(x for x in fh if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def replay_speed(rate_msgs_per_s: float) -> float:
    """The ×real-time speed at which the sample yields ``rate_msgs_per_s`` messages."""
    tapes = load_files([str(SHARED_SAMPLE)])
    trades = sum(len(b) for b in tapes.values())
    first = min(int(b.trade_time_ms.min()) for b in tapes.values())
    last = max(int(b.trade_time_ms.max()) for b in tapes.values())
    return rate_msgs_per_s * (last - first) / 1000 / trades


def start_exchange(speed: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--speed", f"{speed:.4f}", "--cycles", "0"],
        cwd=_ROOT,
        env={**os.environ, "PYTHONPATH": str(_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=die_with_parent,  # the exchange ends with the soak, even a killed one
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("LOCAL_EXCHANGE_PORT="):
        proc.kill()
        raise RuntimeError(f"local exchange did not start: {line!r}")
    return proc, int(line.split("=")[1])


def run_soak(opts: SoakOptions, out=sys.stdout, stop: threading.Event | None = None) -> int:
    """The soak of ``opts``; ``stop`` (set by a signal) ends it early, with its last report."""
    tmp = None
    if opts.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="soak-")
    db_path = opts.db or str(Path(tmp.name) / "soak.db")
    symbols = ["BTCUSDT", "ETHUSDT"]
    try:  # the store first: a bad --db fails before any process starts
        db = open_store(db_path)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    try:
        db.claim(symbols)  # the soak is these symbols' writer, as a collector is
        speed = replay_speed(opts.rate_msgs_per_s)
        exchange, port = start_exchange(speed)
    except BaseException:
        db.close()
        if tmp is not None:
            tmp.cleanup()
        raise
    cfg = FeedConfig(
        symbols=symbols,
        ws_url=f"ws://127.0.0.1:{port}/market",
        rest_url=f"http://127.0.0.1:{port}",
        tick_capacity=opts.tick_capacity,
        funding=False,  # the soak measures the trade feed and its bars
        quotes=False,
        keep_1s_s=None,  # every 1s bar kept: the soak measures memory as it grows
    )
    feed = build_feed(cfg).start()  # no history: the replay starts the store
    store, ingestor = feed.store, feed.ingestor
    flusher = BarFlusher(store, db)
    stop = stop or threading.Event()
    started = time.monotonic()
    end = started + opts.minutes * 60
    next_report = started + opts.report_every_s
    print(
        f"# soak: {opts.rate_msgs_per_s:,.0f} msg/s target (replay x{speed:.1f}), "
        f"{opts.minutes:g} min, db {db.path}",  # a PostgreSQL URL without its password
        file=out,
        flush=True,
    )
    print(
        "minute  rss_MiB  ticks_total  msgs_per_s  lag_ms  last_msg_age_s  rows_written  "
        "gaps_open  reconnects  flush_error",
        file=out,
        flush=True,
    )
    try:
        while time.monotonic() < end and not stop.is_set():
            stop.wait(min(opts.flush_interval_s, max(0.0, end - time.monotonic())))
            flusher.flush()
            if time.monotonic() >= next_report:
                next_report += opts.report_every_s
                _report(started, store, ingestor, flusher, out)
    finally:
        ingestor.stop()
        flusher.flush()
        _report(started, store, ingestor, flusher, out)
        db.close()
        exchange.terminate()
        exchange.wait(15)
        if tmp is not None:
            tmp.cleanup()
    return 0 if flusher.last_error is None else 1


def _report(started: float, store: TickStore, ingestor: Ingestor, flusher, out) -> None:
    h = ingestor.health.snapshot()
    snap = store.snapshot()
    gaps = sum(s.open_gaps for s in snap.symbols.values())
    lag = "—" if h.feed_latency_ms is None else f"{h.feed_latency_ms:.1f}"
    age = "—" if h.last_message_age_s is None else f"{h.last_message_age_s:.2f}"
    print(
        f"{(time.monotonic() - started) / 60:6.1f}  {rss_mib():7.1f}  {snap.total_ticks:11,}  "
        f"{h.msgs_per_s:10,.0f}  {lag:>6}  {age:>14}  {flusher.rows_written:12,}  "
        f"{gaps:9}  {h.reconnects:10}  {flusher.last_error or '-'}",
        file=out,
        flush=True,
    )
