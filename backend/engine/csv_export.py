"""CSV export of bars: the ``bars`` table's columns plus an ISO-8601 UTC ``time`` column.

``BarsCsv`` keeps the formatted rows between exports and re-formats only the rows whose values
changed (in live use: the open bar, new bars, and any bar a late backfilled trade touched), so
a live page can offer a current CSV every few seconds for a day of 1s bars at little cost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime

import numpy as np

from backend.store.records import BAR_COLUMNS, Bars

HEADER = ",".join(["symbol", "timeframe", *BAR_COLUMNS, "time"])


def iso_utc(open_time_ms: np.ndarray) -> list[str]:
    return [
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
        for ms in open_time_ms.tolist()
    ]


def csv_rows(bars: Bars, start: int = 0) -> list[str]:
    """The CSV lines (no newline) of ``bars`` from row ``start`` on. Floats are written with
    ``repr``, which reads back to the same float."""
    cols = [getattr(bars, c)[start:].tolist() for c in BAR_COLUMNS]
    prefix = f"{bars.symbol},{bars.timeframe},"
    return [
        prefix + ",".join(map(_fmt, values)) + "," + iso
        for values, iso in zip(
            zip(*cols, strict=True), iso_utc(bars.open_time[start:]), strict=True
        )
    ]


def bars_to_csv(bars_list: Iterable[Bars]) -> bytes:
    """CSV of bars: ``symbol,timeframe,`` the table's columns, and ``time`` (ISO-8601 UTC)."""
    lines = [HEADER]
    for bars in bars_list:
        lines.extend(csv_rows(bars))
    return ("\n".join(lines) + "\n").encode()


def _fmt(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


class BarsCsv:
    """``bars_to_csv`` with the formatted rows of each (symbol, timeframe) kept between calls.

    Thread-safe (one lock): the engine holds one for every browser session.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], tuple[np.ndarray, list[str]]] = {}

    def export(self, bars_list: Iterable[Bars]) -> bytes:
        lines = [HEADER]
        for bars in bars_list:
            lines.extend(self._rows(bars))
        return ("\n".join(lines) + "\n").encode()

    def _rows(self, bars: Bars) -> list[str]:
        values = np.column_stack([getattr(bars, c).astype(np.float64) for c in BAR_COLUMNS])
        key = (bars.symbol, bars.timeframe)
        with self._lock:
            old_values, old_rows = self._kept.get(key, (values[:0], []))
            n = min(len(old_values), len(values))
            changed = np.flatnonzero((old_values[:n] != values[:n]).any(axis=1))
            same = int(changed[0]) if len(changed) else n
            rows = old_rows[:same] + csv_rows(bars, same)
            self._kept[key] = (values, rows)
            return rows
