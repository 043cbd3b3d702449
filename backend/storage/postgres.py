"""PostgreSQL persistence of bars: the shared store of many collectors and dashboards.

Same tables and keys as the SQLite store (``bars`` keyed by ``(symbol, timeframe, open_time)``,
``resume_points``, ``collectors``), created if missing, the schema version kept in
``schema_version``. ``collectors`` names who collects which symbol (host, pid, since, its open
gaps): the name tag of the per-symbol advisory lock a collector holds for as long as its
connection lives.

Bulk writes: ``COPY`` into a temporary table, then ``INSERT ... ON CONFLICT ... DO UPDATE ...
WHERE`` a value changed, so saving twice writes (and counts) nothing; bars and resume points in
one transaction. SQL is parameterised; the URL is shown without its password.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import unquote

import psycopg

from backend.storage.base import (
    ALERTS_TABLE,
    FUNDING_LOAD,
    FUNDING_UPSERT,
    HEALTH_SQL,
    SCHEMA_VERSION,
    AlertJournal,
    ClaimLost,
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

_ALL = ("symbol", "timeframe", *BAR_COLUMNS)
_VALUES = BAR_COLUMNS[1:]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS bars (
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL CHECK (timeframe IN ({sql_check()})),
    open_time BIGINT NOT NULL,
    open DOUBLE PRECISION, high DOUBLE PRECISION, low DOUBLE PRECISION,
    close DOUBLE PRECISION, volume DOUBLE PRECISION, quote_volume DOUBLE PRECISION,
    trades BIGINT, taker_buy_volume DOUBLE PRECISION,
    PRIMARY KEY (symbol, timeframe, open_time)
);
CREATE TABLE IF NOT EXISTS resume_points (
    symbol TEXT PRIMARY KEY,
    open_time BIGINT NOT NULL,
    from_agg_id BIGINT NOT NULL,
    saved_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS collectors (
    symbol TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at BIGINT NOT NULL
);
ALTER TABLE collectors ADD COLUMN IF NOT EXISTS open_gaps INTEGER,
    ADD COLUMN IF NOT EXISTS missing_ids BIGINT, ADD COLUMN IF NOT EXISTS updated_at BIGINT;
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS funding (
    symbol TEXT NOT NULL,
    funding_time BIGINT NOT NULL,
    rate DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (symbol, funding_time)
);
"""
_UPSERT = (
    f"INSERT INTO bars ({', '.join(_ALL)}) SELECT {', '.join(_ALL)} FROM bars_in "
    "ON CONFLICT (symbol, timeframe, open_time) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _VALUES)
    # Only rows whose values change are written and counted.
    + f" WHERE ({', '.join('bars.' + c for c in _VALUES)}) IS DISTINCT FROM "
    f"({', '.join('EXCLUDED.' + c for c in _VALUES)})"
)
_SAVE_RESUME = (
    "INSERT INTO resume_points (symbol, open_time, from_agg_id, saved_at) "
    "VALUES (%s, %s, %s, %s) ON CONFLICT (symbol) DO UPDATE SET "
    "open_time = EXCLUDED.open_time, from_agg_id = EXCLUDED.from_agg_id, "
    "saved_at = EXCLUDED.saved_at"
)
CLAIM_WAIT_S = 2.0
_MIGRATION_LOCK = 0x70616972  # "pair": one schema creation at a time across collectors


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def _secrets(url: str) -> list[str]:
    """The password of a libpq URL as written and percent-decoded (longest first)."""
    found = re.findall(r"://[^/@:]*:([^@/]*)@", url) + re.findall(r"[?&]password=([^&]*)", url)
    forms = {f for p in found if p for f in (p, unquote(p), unquote(p).strip())}
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact(url: str) -> str:
    """The URL without its password (in the authority or as a ``password=`` parameter)."""
    url = re.sub(r"(://[^/@:]*):[^@/]*@", r"\1@", url)
    return re.sub(r"([?&])password=[^&]*&?", r"\1", url).rstrip("?&")


class PgBarStore(AlertJournal):
    """The ``bars`` table of one PostgreSQL database, with the SQLite store's interface.
    Thread-safe: one connection behind a lock (reconnected after a loss), and one more that
    holds this process's per-symbol advisory locks (``claim``)."""

    def __init__(self, url: str, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.path = redact(url)  # what messages and the page show
        self._timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._claims: psycopg.Connection | None = None
        self._claimed: list[str] = []
        self._watched: list[str] = []  # rule sets this process is the one watcher of
        self._conn: psycopg.Connection | None = self._connect()
        try:
            self._migrate()
        except psycopg.Error as exc:
            self._conn.close()
            raise StorageError(_explain(exc, self.path, self.url)) from exc

    def _connect(self, role: str = "store") -> psycopg.Connection:
        host, pid = collector_id()
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self._timeout_s)),
                application_name=f"pairdash {role} {host}:{pid}",  # pg_stat_activity says who
            )
        except psycopg.Error as exc:
            raise StorageError(_explain(exc, self.path, self.url)) from exc

    def _migrate(self) -> None:
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(_SCHEMA + ALERTS_TABLE)
            cur.execute("SELECT max(version) FROM schema_version")
            (version,) = cur.fetchone()
            if version is None:
                cur.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
            elif version > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} has schema version {version}; this program knows {SCHEMA_VERSION}"
                )
            elif version < SCHEMA_VERSION:  # the schema above has just brought it up to date
                if version < 4:  # the timeframe CHECK takes every label
                    cur.execute(
                        "ALTER TABLE bars DROP CONSTRAINT IF EXISTS bars_timeframe_check, "
                        f"ADD CONSTRAINT bars_timeframe_check CHECK (timeframe IN ({sql_check()}))"
                    )
                cur.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))

    def _run(self, work: Callable[[psycopg.Connection], object]):
        """``work(conn)`` under the lock; a lost connection is reopened on the next call."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                return work(self._conn)
            except psycopg.OperationalError as exc:
                self._conn.close()
                raise StorageError(_explain(exc, self.path, self.url)) from exc
            except psycopg.Error as exc:
                raise StorageError(_explain(exc, self.path, self.url)) from exc

    def upsert(
        self,
        bars_list: Iterable[Bars],
        resume: Iterable[ResumePoint] = (),
        on_chunk: Callable[[int], None] | None = None,
        gaps: Iterable[GapStatus] = (),
    ) -> int:
        """Insert or update bars (each key once per call), and the resume points and gap
        counts that go with them, in one transaction; returns the bar rows inserted or
        changed (as ``storage.BarStore.upsert``)."""
        chunks = [list(bar_rows(bars)) for bars in bars_list]
        now_ms = int(time.time() * 1000)
        points = [(p.symbol, p.open_time_ms, p.from_agg_id, now_ms) for p in resume]
        statuses = gap_rows(gaps, now_ms)
        if not any(chunks) and not points:
            return 0

        def work(conn: psycopg.Connection) -> int:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS bars_in "
                    "(LIKE bars INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                with cur.copy(f"COPY bars_in ({', '.join(_ALL)}) FROM STDIN") as copy:
                    for i, rows in enumerate(chunks, 1):
                        for row in rows:
                            copy.write_row(row)
                        if on_chunk is not None:
                            on_chunk(i)
                cur.execute(_UPSERT)
                written = max(cur.rowcount, 0)
                if points:
                    cur.executemany(_SAVE_RESUME, points)
                if statuses:
                    cur.executemany(gap_sql("%s"), statuses)
                return written

        return self._run(work)

    def load(
        self,
        symbol: str,
        timeframe: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> Bars:
        """Stored bars of one symbol and timeframe, ascending by open time."""
        args = load_args(symbol, timeframe, since_ms, until_ms)
        rows = self._run(lambda conn: conn.execute(load_sql("%s"), args).fetchall())
        return bars_from_rows(symbol, timeframe, rows)

    def upsert_funding(self, events: FundingEvents) -> int:
        """Funding rates charged, in one transaction; returns the rows inserted or changed."""

        def work(conn: psycopg.Connection) -> int:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(FUNDING_UPSERT.format(m="%s"), funding_rows(events))
                return max(cur.rowcount, 0)

        return self._run(work)

    def load_funding(self, symbol: str, since_ms: int = 0, until_ms: int = 2**62) -> FundingEvents:
        sql = FUNDING_LOAD.format(m="%s")
        rows = self._run(lambda conn: conn.execute(sql, (symbol, since_ms, until_ms)).fetchall())
        return funding_from_rows(symbol, rows)

    def resume_points(self) -> dict[str, ResumePoint]:
        sql = "SELECT symbol, open_time, from_agg_id, saved_at FROM resume_points"
        rows = self._run(lambda conn: conn.execute(sql).fetchall())
        return {r[0]: ResumePoint(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows}

    def collector_health(self) -> list[CollectorHealth]:
        """Each saved symbol's last save, completeness and collector (``HEALTH_SQL``)."""
        return health_from_rows(self._run(lambda conn: conn.execute(HEALTH_SQL).fetchall()))

    def symbols(self) -> list[str]:
        rows = self._run(lambda conn: conn.execute("SELECT DISTINCT symbol FROM bars").fetchall())
        return [r[0] for r in rows]

    def count(self, symbol: str | None = None, timeframe: str | None = None) -> int:
        sql = (
            "SELECT COUNT(*) FROM bars WHERE (%(s)s::text IS NULL OR symbol = %(s)s) "
            "AND (%(t)s::text IS NULL OR timeframe = %(t)s)"
        )
        args = {"s": symbol, "t": timeframe}
        return int(self._run(lambda conn: conn.execute(sql, args).fetchone()[0]))

    def claim(self, symbols: list[str]) -> None:
        """Become the one writer of ``symbols``: a session advisory lock per symbol, held by a
        connection of its own until ``close()`` or this process dies (the server then releases
        it). A symbol another collector holds is refused, naming its host and pid."""
        if self._claims is None:
            self._claims = self._connect("claims")
        try:
            self._take(self._claims, symbols)
        except psycopg.Error as exc:
            raise StorageError(_explain(exc, self.path, self.url)) from exc
        self._claimed = list(dict.fromkeys([*self._claimed, *symbols]))

    _mark = "%s"

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        return self._run(lambda conn: conn.execute(sql, args).fetchall())

    def _transaction(self, batches: list[tuple[str, list[tuple]]]) -> None:
        def work(conn: psycopg.Connection) -> None:
            with conn.transaction(), conn.cursor() as cur:
                for sql, rows in batches:
                    if rows:
                        cur.executemany(sql, rows)

        self._run(work)

    def claim_rules(self, ruleset: str) -> None:
        """Become the one watcher of ``ruleset`` in this database: a session advisory lock,
        held like the collectors' (``claim``); a second watcher is refused in one line."""
        if self._claims is None:
            self._claims = self._connect("claims")
        try:
            self._watch(self._claims, ruleset)
        except psycopg.Error as exc:
            raise StorageError(_explain(exc, self.path, self.url)) from exc
        self._watched.append(ruleset)

    def _watch(self, conn: psycopg.Connection, ruleset: str) -> None:
        if not self._try_lock(conn, f"pairdash watch {ruleset}"):
            raise ClaimLost(
                f"rule set {ruleset!r} is already watched through {self.path} by another "
                "watcher; stop that watcher first"
            )

    def check_claims(self) -> bool:
        """Still the one writer? The locks live as long as their connection: if the server
        dropped it (restart, network), reconnect and take them again. False while the server
        cannot be reached (write nothing: the locks are not held); raises ``ClaimLost`` when
        another collector took a symbol meanwhile."""
        if not (self._claimed or self._watched):
            return True
        if self._claims is not None and not self._claims.closed:
            try:
                self._claims.execute("SELECT 1")
                return True
            except psycopg.Error:
                self._claims.close()
                log.warning("%s: the connection holding the symbols' locks was lost", self.path)
        try:
            self._claims = self._connect("claims")
            self._take(self._claims, self._claimed)
            for ruleset in self._watched:
                self._watch(self._claims, ruleset)
        except ClaimLost:
            raise
        except (StorageError, psycopg.Error) as exc:
            if self._claims is not None:
                self._claims.close()
            log.warning("cannot take the symbols' locks again yet: %s", exc)
            return False
        log.info("%s: the symbols' locks are held again", self.path)
        return True

    def _take(self, conn: psycopg.Connection, symbols: list[str]) -> None:
        for symbol in symbols:
            if not self._try_lock(conn, f"pairdash collect {symbol}"):
                row = conn.execute(
                    "SELECT host, pid FROM collectors WHERE symbol = %s", (symbol,)
                ).fetchone()
                who = "another collector" if row is None else f"{row[0]} pid {row[1]}"
                raise ClaimLost(
                    f"{symbol} is already being collected into {self.path} by {who}; "
                    "stop that collector or collect other symbols"
                )
            conn.execute(claim_sql("%s"), (symbol, *collector_id(), int(time.time() * 1000)))

    @staticmethod
    def _try_lock(conn: psycopg.Connection, tag: str) -> bool:
        """The lock named ``tag``, waiting up to ``CLAIM_WAIT_S``: a collector that just ended
        may still hold it while its server process exits."""
        deadline = time.monotonic() + CLAIM_WAIT_S
        while True:
            (got,) = conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                (tag,),
            ).fetchone()
            if got or time.monotonic() >= deadline:
                return bool(got)
            time.sleep(0.1)

    def close(self) -> None:
        with self._lock:
            for conn in (self._conn, self._claims):
                if conn is not None:
                    conn.close()


def _explain(exc: psycopg.Error, where: str, url: str = "") -> str:
    """One line for the user, naming the URL without its password. libpq echoes a token it
    cannot parse ("invalid percent-encoded token: ..."), which may be the password: every
    form of it in the URL is blanked out of the text."""
    text = " ".join(str(exc).split())
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return (
            f"no permission in {where}: {text} (grant CREATE on the schema, or create the tables)"
        )
    if "password authentication failed" in text:
        return f"cannot log in to {where}: wrong user or password ({text})"
    if isinstance(exc, psycopg.OperationalError):
        return f"cannot reach PostgreSQL at {where}: {text}"
    return f"database error on {where}: {text}"
