"""What both stores share: the errors the user sees, the schema version, and the SQL and row
helpers written once with the driver's parameter mark (``?`` for SQLite, ``%s`` for psycopg)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

import numpy as np

from backend.store.records import (
    BAR_COLUMNS,
    TIMEFRAMES_MS,
    Bars,
    CollectorHealth,
    FundingEvents,
    GapStatus,
)

SCHEMA_VERSION = 5  # 2: resume_points; 3: collectors (who collects a symbol, its open gaps);
# 4: bars.timeframe takes every timeframe's label (15m ... 1d); 5: funding (rates charged)
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
