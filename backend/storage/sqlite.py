"""SQLite: WAL mode, parameterised SQL, idempotent upserts; one connection behind a lock."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from backend.storage.base import (
    ALERTS_TABLE,
    DEFAULT_DB,
    FUNDING_LOAD,
    FUNDING_UPSERT,
    HEALTH_SQL,
    SCHEMA_VERSION,
    AlertJournal,
    StorageError,
    bar_rows,
    bars_from_rows,
    claim_sql,
    collector_id,
    funding_from_rows,
    funding_rows,
    gap_rows,
    gap_sql,
    health_from_rows,
    load_args,
    load_sql,
)
from backend.store.records import (
    BAR_COLUMNS,
    Bars,
    CollectorHealth,
    FundingEvents,
    GapStatus,
    ResumePoint,
)
from backend.store.timeframes import sql_check

log = logging.getLogger(__name__)

_BARS = f"""(
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL CHECK (timeframe IN ({sql_check()})),
    open_time INTEGER NOT NULL,
    open REAL, high REAL, low REAL, close REAL,
    volume REAL, quote_volume REAL, trades INTEGER, taker_buy_volume REAL,
    PRIMARY KEY (symbol, timeframe, open_time)
) WITHOUT ROWID"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS bars {_BARS};
CREATE TABLE IF NOT EXISTS funding (
    symbol TEXT NOT NULL,
    funding_time INTEGER NOT NULL,
    rate REAL NOT NULL,
    PRIMARY KEY (symbol, funding_time)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resume_points (
    symbol TEXT PRIMARY KEY,
    open_time INTEGER NOT NULL,
    from_agg_id INTEGER NOT NULL,
    saved_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS collectors (
    symbol TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    open_gaps INTEGER,
    missing_ids INTEGER,
    updated_at INTEGER
);
"""
_SAVE_RESUME = (
    "INSERT INTO resume_points (symbol, open_time, from_agg_id, saved_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (symbol) DO UPDATE SET open_time = excluded.open_time, "
    "from_agg_id = excluded.from_agg_id, saved_at = excluded.saved_at"
)

_VALUE_COLUMNS = BAR_COLUMNS[1:]
_UPSERT = (
    f"INSERT INTO bars (symbol, timeframe, {', '.join(BAR_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(BAR_COLUMNS) + 2))}) "
    "ON CONFLICT (symbol, timeframe, open_time) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _VALUE_COLUMNS)
    # Only rows whose values change count as written: saving twice changes nothing.
    + " WHERE "
    + " OR ".join(f"bars.{c} IS NOT excluded.{c}" for c in _VALUE_COLUMNS)
)


class BarStore(AlertJournal):
    """The ``bars`` table of one SQLite file (and the alert journal, ``AlertJournal``).
    Thread-safe: one connection behind a lock."""

    def __init__(self, path: str | Path = DEFAULT_DB, busy_timeout_s: float = 5.0) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._watch_locks: list[int] = []  # open lock files of the rule sets claimed
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StorageError(_explain(exc, self.path)) from exc

    def _migrate(self) -> None:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} has schema version {version}; this program knows {SCHEMA_VERSION}"
            )
        self._conn.executescript(_SCHEMA + ALERTS_TABLE)
        if version < 4:  # SQLite cannot alter a CHECK: the table is rebuilt with the new one
            self._widen_timeframes()
        self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _widen_timeframes(self) -> None:
        """Every bar copied into a ``bars`` table whose timeframe CHECK takes every label, in
        one transaction (a failure leaves the old table as it was)."""
        (ddl,) = self._conn.execute("SELECT sql FROM sqlite_master WHERE name = 'bars'").fetchone()
        if sql_check() in ddl:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(f"CREATE TABLE bars_widened {_BARS}")
            self._conn.execute("INSERT INTO bars_widened SELECT * FROM bars")
            self._conn.execute("DROP TABLE bars")
            self._conn.execute("ALTER TABLE bars_widened RENAME TO bars")
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        log.info("%s: bars table migrated to every timeframe (%s)", self.path, sql_check())

    def upsert(
        self,
        bars_list: Iterable[Bars],
        resume: Iterable[ResumePoint] = (),
        on_chunk: Callable[[int], None] | None = None,
        gaps: Iterable[GapStatus] = (),
    ) -> int:
        """Insert or update bars, and the resume points and gap counts that go with them, in
        one transaction; returns the bar rows inserted or changed. ``on_chunk(i)`` is called
        after the i-th ``Bars`` of ``bars_list`` is written (progress), inside the transaction.
        Gap counts land in this process's own ``collectors`` rows (those it claimed)."""
        chunks = [list(bar_rows(bars)) for bars in bars_list]
        now_ms = int(time.time() * 1000)
        points = [(p.symbol, p.open_time_ms, p.from_agg_id, now_ms) for p in resume]
        statuses = gap_rows(gaps, now_ms)
        if not any(chunks) and not points:
            return 0
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                before = self._conn.total_changes
                for i, rows in enumerate(chunks, 1):
                    self._conn.executemany(_UPSERT, rows)
                    if on_chunk is not None:
                        on_chunk(i)
                written = self._conn.total_changes - before
                self._conn.executemany(_SAVE_RESUME, points)
                self._conn.executemany(gap_sql("?"), statuses)
                self._conn.execute("COMMIT")
                return written
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StorageError(_explain(exc, self.path)) from exc

    def load(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> Bars:
        """Stored bars of one symbol and timeframe, ascending by open time."""
        args = load_args(symbol, timeframe, since_ms, until_ms)
        with self._lock:
            try:
                rows = self._conn.execute(load_sql("?"), args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(_explain(exc, self.path)) from exc
        return bars_from_rows(symbol, timeframe, rows)

    def upsert_funding(self, events: FundingEvents) -> int:
        """Funding rates charged, in one transaction; returns the rows inserted or changed."""
        sql = FUNDING_UPSERT.format(m="?").replace("IS DISTINCT FROM", "IS NOT")
        with self._lock:
            try:
                before = self._conn.total_changes
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(sql, funding_rows(events))
                self._conn.execute("COMMIT")
                return self._conn.total_changes - before
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StorageError(_explain(exc, self.path)) from exc

    def load_funding(self, symbol: str, since_ms: int = 0, until_ms: int = 2**62) -> FundingEvents:
        with self._lock:
            try:
                rows = self._conn.execute(
                    FUNDING_LOAD.format(m="?"), (symbol, since_ms, until_ms)
                ).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(_explain(exc, self.path)) from exc
        return funding_from_rows(symbol, rows)

    def resume_points(self) -> dict[str, ResumePoint]:
        """The saved resume point of each symbol."""
        sql = "SELECT symbol, open_time, from_agg_id, saved_at FROM resume_points"
        with self._lock:
            try:
                rows = self._conn.execute(sql).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(_explain(exc, self.path)) from exc
        return {r[0]: ResumePoint(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows}

    def collector_health(self) -> list[CollectorHealth]:
        """Each saved symbol's last save, completeness and collector (``HEALTH_SQL``)."""
        with self._lock:
            try:
                rows = self._conn.execute(HEALTH_SQL).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(_explain(exc, self.path)) from exc
        return health_from_rows(rows)

    def symbols(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT DISTINCT symbol FROM bars")]

    def count(self, symbol: str | None = None, timeframe: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM bars WHERE (? IS NULL OR symbol = ?) AND (? IS NULL OR timeframe = ?)"
        with self._lock:
            return self._conn.execute(sql, (symbol, symbol, timeframe, timeframe)).fetchone()[0]

    def claim(self, symbols: list[str]) -> None:
        """Name this process as the collector of ``symbols`` (its ``collectors`` rows). One
        machine, one file: SQLite's own locking serialises writers, and no lock is taken."""
        now_ms = int(time.time() * 1000)
        rows = [(s, *collector_id(), now_ms) for s in symbols]
        with self._lock:
            try:
                self._conn.executemany(claim_sql("?"), rows)
            except sqlite3.Error as exc:
                raise StorageError(_explain(exc, self.path)) from exc

    def check_claims(self) -> bool:
        """Nothing held, nothing to lose (see ``claim``): always True."""
        return True

    def claim_rules(self, ruleset: str) -> None:
        """Become the one watcher of ``ruleset`` on this file: an exclusive lock on a file
        beside it (``<db>.watch-<ruleset>.lock``), held until ``close()`` or this process
        dies; a second watcher is refused in one line."""
        lock_path = f"{self.path}.watch-{_safe_name(ruleset)}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot create {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            who = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StorageError(
                f"rule set {ruleset!r} is already watched on {self.path} by {who}; stop that "
                "watcher first"
            ) from None
        host, pid = collector_id()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{host} pid {pid}".encode(), 0)
        self._watch_locks.append(fd)

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(_explain(exc, self.path)) from exc

    def _transaction(self, batches: list[tuple[str, list[tuple]]]) -> None:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                for sql, rows in batches:
                    self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StorageError(_explain(exc, self.path)) from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            for fd in self._watch_locks:
                os.close(fd)
            self._watch_locks.clear()


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80]


def _explain(exc: sqlite3.Error, path: str) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"database {path} is locked by another program; will retry ({text})"
    if "readonly" in text or "read-only" in text:
        return f"database {path} is read-only: choose a writable --db path ({text})"
    if "full" in text:
        return f"disk full while writing {path}; free space and retry ({text})"
    if "unable to open" in text:
        return f"cannot open database {path}: check the folder exists and is writable ({text})"
    return f"database error on {path}: {text}"
