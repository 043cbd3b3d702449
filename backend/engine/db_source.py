"""``--source db``: a dashboard without a feed of its own, showing the bars collectors write.

Polled, not pushed (LISTEN/NOTIFY): one code path for SQLite and PostgreSQL alike, and it costs
little. Collectors flush every 2 s; a poll each second (``POLL_S``) adds at most a second, and
is one indexed range read per symbol and timeframe, from the bar holding the collector's resume
point (everything before it is final) or the newest bar held, whichever is older. ``StoredBars`` holds what was read behind one lock and
answers the engine's reads as the tick store does; ``DbPoller`` is the thread.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from backend.feed.streams import FeedHealth
from backend.storage import StorageError
from backend.store.records import TIMEFRAMES_MS, Bars, ResumePoint
from backend.store.tick_store import HistoryStatus, MarkBook, StoreSnapshot, SymbolSnapshot
from backend.store.timeframes import BASE, FOLDED, FROM_MINUTES

log = logging.getLogger(__name__)

POLL_S = 1.0
REREAD_WITHOUT_POINT_MS = 5_000


class StoredBars:
    """The bars of the watched symbols as read from the database, per timeframe."""

    def __init__(self, symbols: list[str]) -> None:
        self._lock = threading.Lock()
        self._bars = {(s, tf): Bars.empty(s, tf) for s in symbols for tf in TIMEFRAMES_MS}
        self._first_price: dict[str, float] = {}
        self._version = 0
        self.symbols = list(symbols)

    def newest_ms(self, symbol: str, timeframe: str) -> int | None:
        with self._lock:
            held = self._bars[(symbol, timeframe)]
            return int(held.open_time[-1]) if len(held) else None

    def merge(self, fresh: Bars) -> None:
        """``fresh`` replaces the held bars from its first open time on."""
        if not len(fresh):
            return
        with self._lock:
            key = (fresh.symbol, fresh.timeframe)
            held = self._bars[key]
            keep = int(np.searchsorted(held.open_time, fresh.open_time[0], "left"))
            self._bars[key] = Bars.concat([held.slice(0, keep), fresh]) if keep else fresh
            if fresh.timeframe == "1s" and fresh.symbol not in self._first_price:
                self._first_price[fresh.symbol] = float(fresh.open[0])
            self._version += 1

    def bars(self, symbol: str, timeframe: str, last: int | None = None) -> Bars:
        with self._lock:
            held = self._bars[(symbol, timeframe)]
        return held if last is None or len(held) <= last else held.slice(len(held) - last)

    def snapshot(self) -> StoreSnapshot:
        """Per symbol: trades in the 1s bars held, the last close and its time."""
        with self._lock:
            out = {}
            for s in self.symbols:
                b = self._bars[(s, "1s")]
                has = len(b) > 0
                out[s] = SymbolSnapshot(
                    s,
                    int(b.trades.sum()) if has else 0,
                    float(b.close[-1]) if has else None,
                    int(b.open_time[-1]) if has else None,
                    self._first_price.get(s),
                    None,
                    0,
                    0,
                    0,
                    0,
                )
            return StoreSnapshot(self._version, out)

    def history_status(self, symbol: str) -> HistoryStatus:
        with self._lock:
            reach = {
                tf: int(self._bars[(symbol, tf)].open_time[0])
                for tf in (*FOLDED, *FROM_MINUTES)
                if len(self._bars[(symbol, tf)])
            }
            seconds = self._bars[(symbol, "1s")]
        return HistoryStatus(reach, int(seconds.open_time[0]) if len(seconds) else None, None)

    def resume_points(self) -> list[ResumePoint]:
        return []  # the collectors own them


class _NoHistory:
    """The engine's history loader, for a source that loads nothing."""

    clock_offset_ms = None
    error = None
    status: dict[str, str] = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class DbPoller(threading.Thread):
    """Reads new bars from ``db`` into ``stored`` every ``POLL_S``; its health says when the
    newest bar landed and whether the database answered. 1s bars are read back at most
    ``keep_1s_s`` (1m and 5m: all)."""

    def __init__(self, stored: StoredBars, db, keep_1s_s: int | None) -> None:
        super().__init__(name="db-poller", daemon=True)
        self._stored, self._db, self._keep_1s_s = stored, db, keep_1s_s
        self.health = FeedHealth()
        self.marks = MarkBook()  # collectors store no mark prices: no carry from a database
        self.mark_client = None
        self.history = _NoHistory()
        self.collectors: tuple = ()  # CollectorHealth of each collected symbol, per poll
        self._complete_before: dict[str, int] = {}  # the points read at the last poll's start
        self._stop_flag = threading.Event()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop_flag.set()
        if self.is_alive():
            self.join(timeout_s)

    def poll(self) -> int:
        """One pass over every symbol and timeframe; returns the bars read."""
        read = 0
        newest_1s = None
        # Bars at or after a collector's resume point may still change (the second open when
        # it flushed, a gap being filled); before it they are final. Points are read *before*
        # the bars and used by the next poll: a save committed after this poll's bar reads
        # changed bars only at or after the points read here, so the next poll re-reads them.
        now_points = tuple(self._db.collector_health())
        complete = self._complete_before
        self._complete_before = {c.symbol: c.complete_to_ms for c in now_points}
        for symbol in self._stored.symbols:
            for tf in (*FOLDED, *FROM_MINUTES, BASE):  # 1m first: it says how recent the data is
                since = self._reread_from(symbol, tf, complete.get(symbol))
                newest_1m = self._stored.newest_ms(symbol, FOLDED[0])
                if since is None and tf == "1s" and self._keep_1s_s and newest_1m is not None:
                    # The last --keep-1s hours of what is stored (not of our clock: a replay's
                    # bars carry the recording's times).
                    since = newest_1m - self._keep_1s_s * 1000
                fresh = self._db.load(symbol, tf, since_ms=since)
                self._stored.merge(fresh)
                read += len(fresh)
            t = self._stored.newest_ms(symbol, "1s")
            if t is not None:
                newest_1s = t if newest_1s is None else max(newest_1s, t)
        # "Latency": how long ago the newest stored second ended (collector flush + our poll).
        latency = None if newest_1s is None else time.time() * 1000 - (newest_1s + 1000)
        self.health.on_frames(read, {}, latency)
        self.collectors = now_points
        return read

    def _reread_from(self, symbol: str, tf: str, complete_to_ms: int | None) -> int | None:
        newest = self._stored.newest_ms(symbol, tf)
        if newest is None:
            return None
        if complete_to_ms is None:  # no resume point saved: the last few seconds may change
            complete_to_ms = newest - REREAD_WITHOUT_POINT_MS
        step = TIMEFRAMES_MS[tf]
        return min(newest, complete_to_ms // step * step)

    def run(self) -> None:
        while not self._stop_flag.is_set():
            try:
                self.poll()
                self.health.set(state="connected", last_error=None)
            except StorageError as exc:  # the database may come back: keep polling
                self.health.set(state="reconnecting", last_error=str(exc))
                log.warning("reading bars: %s", exc)
            self._stop_flag.wait(POLL_S)
        self.health.set(state="stopped")
