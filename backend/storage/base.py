"""What both stores share: the errors the user sees, the schema version, and the SQL and row
helpers written once with the driver's parameter mark (``?`` for SQLite, ``%s`` for psycopg)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable

import numpy as np

from backend.store.records import (
    BAR_COLUMNS,
    TIMEFRAMES_MS,
    AlertRecord,
    Bars,
    CollectorHealth,
    FundingEvents,
    GapStatus,
)

SCHEMA_VERSION = 6  # 2: resume_points; 3: collectors (who collects a symbol, its open gaps);
# 4: bars.timeframe takes every timeframe's label (15m ... 1d); 5: funding (rates charged);
# 6: alerts (every alert fired and its deliveries) and alert_state (each rule's edge state)
DEFAULT_DB = "market.db"


class StorageError(RuntimeError):
    """A database problem, worded for the user (locked, read-only, full, wrong schema)."""


class ClaimLost(StorageError):
    """Another collector holds a symbol this one was writing: it must stop."""


def collector_id() -> tuple[str, int]:
    """Who this process is in the ``collectors`` table: (host, pid)."""
    return socket.gethostname(), os.getpid()


def claim_sql(mark: str) -> str:
    """(symbol, host, pid, started_at): the row a collector writes when it takes a symbol."""
    return (
        f"INSERT INTO collectors (symbol, host, pid, started_at) VALUES ({mark}, {mark}, "
        f"{mark}, {mark}) ON CONFLICT (symbol) DO UPDATE SET host = excluded.host, "
        "pid = excluded.pid, started_at = excluded.started_at, open_gaps = NULL, "
        "missing_ids = NULL, updated_at = NULL"
    )


def gap_sql(mark: str) -> str:
    """(open_gaps, missing_ids, updated_at, symbol, host, pid): only this process's own rows,
    so a collector that lost a symbol to another never overwrites the other's counts."""
    return (
        f"UPDATE collectors SET open_gaps = {mark}, missing_ids = {mark}, updated_at = {mark} "
        f"WHERE symbol = {mark} AND host = {mark} AND pid = {mark}"
    )


def gap_rows(gaps: Iterable[GapStatus], now_ms: int) -> list[tuple]:
    me = collector_id()
    return [(g.open_gaps, g.missing_ids, now_ms, g.symbol, *me) for g in gaps]


HEALTH_SQL = (
    "SELECT r.symbol, r.saved_at, r.open_time, c.host, c.pid, c.open_gaps, c.missing_ids "
    "FROM resume_points r LEFT JOIN collectors c ON c.symbol = r.symbol ORDER BY r.symbol"
)


def health_from_rows(rows: list[tuple]) -> list[CollectorHealth]:
    return [
        CollectorHealth(
            r[0], int(r[1]), int(r[2]), r[3], r[4], *(None if v is None else int(v) for v in r[5:])
        )
        for r in rows
    ]


def load_sql(mark: str) -> str:
    """The range read of ``load``, with the driver's parameter mark (``?`` or ``%s``)."""
    return (
        f"SELECT {', '.join(BAR_COLUMNS)} FROM bars WHERE symbol = {mark} AND timeframe = {mark} "
        f"AND open_time >= {mark} AND open_time <= {mark} ORDER BY open_time"
    )


def load_args(symbol: str, timeframe: str, since_ms: int | None, until_ms: int | None) -> tuple:
    if timeframe not in TIMEFRAMES_MS:
        raise ValueError(f"unknown timeframe {timeframe!r}")
    return symbol, timeframe, since_ms or 0, until_ms if until_ms is not None else 2**62


def bars_from_rows(symbol: str, timeframe: str, rows: list[tuple]) -> Bars:
    """Rows of ``load_sql`` as ``Bars``."""
    if not rows:
        return Bars.empty(symbol, timeframe)
    cols = list(zip(*rows, strict=True))
    ints = {"open_time", "trades"}
    arrays = [
        np.array(col, dtype=np.int64 if name in ints else np.float64)
        for name, col in zip(BAR_COLUMNS, cols, strict=True)
    ]
    return Bars(symbol, timeframe, *arrays)


def bar_rows(bars: Bars):
    cols = [getattr(bars, c).tolist() for c in BAR_COLUMNS]
    for values in zip(*cols, strict=True):
        yield (bars.symbol, bars.timeframe, *values)


# The funding rates charged at each symbol's funding times (imported, or loaded from REST).
FUNDING_UPSERT = (
    "INSERT INTO funding (symbol, funding_time, rate) VALUES ({m}, {m}, {m}) "
    "ON CONFLICT (symbol, funding_time) DO UPDATE SET rate = excluded.rate "
    "WHERE funding.rate IS DISTINCT FROM excluded.rate"
)
FUNDING_LOAD = (
    "SELECT funding_time, rate FROM funding WHERE symbol = {m} AND funding_time >= {m} "
    "AND funding_time <= {m} ORDER BY funding_time"
)


def funding_rows(events: FundingEvents) -> list[tuple]:
    return [
        (events.symbol, t, r)
        for t, r in zip(events.time_ms.tolist(), events.rate.tolist(), strict=True)
    ]


def funding_from_rows(symbol: str, rows: list[tuple]) -> FundingEvents:
    if not rows:
        return FundingEvents.empty(symbol)
    t, r = zip(*rows, strict=True)
    return FundingEvents(symbol, np.array(t, np.int64), np.array(r, np.float64))


# Alerts: every alert fired (rule, pair, values, bar, deliveries) and each rule's edge state,
# both per rule set (the rules file a watcher or page evaluates).
ALERT_COLUMNS = (
    "id", "ruleset", "rule", "kind", "symbols", "timeframe", "bar_open_time", "value",
    "threshold", "message", "created_at", "deliveries",
)  # fmt: skip
ALERTS_TABLE = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, ruleset TEXT NOT NULL, rule TEXT NOT NULL, kind TEXT NOT NULL,
    symbols TEXT NOT NULL, timeframe TEXT NOT NULL, bar_open_time BIGINT NOT NULL,
    value DOUBLE PRECISION, threshold DOUBLE PRECISION, message TEXT NOT NULL,
    created_at BIGINT NOT NULL, deliveries TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (created_at);
CREATE TABLE IF NOT EXISTS alert_state (
    ruleset TEXT NOT NULL, rule TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (ruleset, rule)
);
"""
ALERT_INSERT = (
    f"INSERT INTO alerts ({', '.join(ALERT_COLUMNS)}) VALUES ({', '.join(['{m}'] * 12)}) "
    "ON CONFLICT (id) DO NOTHING"
)
ALERT_STATE_UPSERT = (
    "INSERT INTO alert_state (ruleset, rule, state) VALUES ({m}, {m}, {m}) "
    "ON CONFLICT (ruleset, rule) DO UPDATE SET state = excluded.state"
)
ALERT_STATE_LOAD = "SELECT rule, state FROM alert_state WHERE ruleset = {m}"
ALERT_DELIVERIES = "UPDATE alerts SET deliveries = {m} WHERE id = {m}"
_ALERT_SELECT = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts"
ALERTS_LOAD = _ALERT_SELECT + " ORDER BY created_at DESC, id DESC LIMIT {m}"
ALERTS_LOAD_SET = _ALERT_SELECT + " WHERE ruleset = {m} ORDER BY created_at DESC, id DESC LIMIT {m}"
ALERTS_PENDING = (
    _ALERT_SELECT + " WHERE ruleset = {m} AND deliveries LIKE {m} ORDER BY created_at, id"
)


class AlertJournal:
    """The alert methods both stores offer, written once over two primitives of the store:
    ``_query(sql, args) -> rows`` and ``_transaction([(sql, rows), ...])`` (all or nothing);
    ``_mark`` is the driver's parameter mark."""

    _mark = "?"

    def _sql(self, template: str) -> str:
        return template.replace("{m}", self._mark)

    def record_alerts(self, ruleset: str, alerts, states: dict[str, str]) -> None:
        """New alerts and the rules' states after them, in one transaction: a watcher that
        dies before it commits evaluates those bars again; one that dies after finds them
        done (neither repeated nor lost). An alert already stored is kept as it is."""
        self._transaction([
            (self._sql(ALERT_INSERT), [alert_row(a) for a in alerts]),
            (self._sql(ALERT_STATE_UPSERT), [(ruleset, r, s) for r, s in states.items()]),
        ])  # fmt: skip

    def alert_states(self, ruleset: str) -> dict[str, str]:
        return dict(self._query(self._sql(ALERT_STATE_LOAD), (ruleset,)))

    def set_deliveries(self, alert_id: str, deliveries: dict) -> None:
        row = (json.dumps(deliveries, sort_keys=True), alert_id)
        self._transaction([(self._sql(ALERT_DELIVERIES), [row])])

    def alerts(self, ruleset: str | None = None, limit: int = 1000) -> list[AlertRecord]:
        """The newest ``limit`` alerts (of one rule set, or all), newest first."""
        if ruleset is None:
            rows = self._query(self._sql(ALERTS_LOAD), (limit,))
        else:
            rows = self._query(self._sql(ALERTS_LOAD_SET), (ruleset, limit))
        return [alert_from_row(r) for r in rows]

    def pending_alerts(self, ruleset: str) -> list[AlertRecord]:
        """Alerts of ``ruleset`` with a delivery still to make, oldest first."""
        return [
            alert_from_row(r)
            for r in self._query(self._sql(ALERTS_PENDING), (ruleset, '%"pending"%'))
        ]


def alert_row(a: AlertRecord) -> tuple:
    return (
        a.id, a.ruleset, a.rule, a.kind, ",".join(a.symbols), a.timeframe, a.bar_open_time_ms,
        a.value, a.threshold, a.message, a.created_ms, json.dumps(a.deliveries, sort_keys=True),
    )  # fmt: skip


def alert_from_row(r: tuple) -> AlertRecord:
    return AlertRecord(
        r[0], r[1], r[2], r[3], tuple(s for s in r[4].split(",") if s), r[5], int(r[6]),
        float("nan") if r[7] is None else float(r[7]),
        float("nan") if r[8] is None else float(r[8]), r[9], int(r[10]), json.loads(r[11]),
    )  # fmt: skip
