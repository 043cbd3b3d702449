"""Exactly-once bookkeeping of aggregate trade ids, sans-I/O.

Binance numbers the aggregate trades of a symbol consecutively (``a``). The ledger knows which ids
the store holds: every id up to ``max_id`` except the open gaps. An id is admitted once: a new id
beyond ``max_id`` (opening a gap if it skips), or an id inside an open gap (a backfill). Anything
else is a duplicate.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Admission:
    """What the ledger made of one run of ids."""

    accepted: np.ndarray  # bool mask over the input ids
    duplicates: int
    new_gaps: list[tuple[int, int]]  # inclusive id ranges first seen missing

    @property
    def all_accepted(self) -> bool:
        return self.duplicates == 0 and bool(self.accepted.all())


class IdLedger:
    """Held ids of one symbol: ``(-inf, max_id]`` minus the open gaps (inclusive ranges)."""

    def __init__(self, max_id: int | None = None, gaps: list[tuple[int, int]] | None = None):
        self.max_id = max_id
        self._gaps: list[tuple[int, int]] = sorted(gaps or [])

    @property
    def gaps(self) -> list[tuple[int, int]]:
        return list(self._gaps)

    def missing_ids(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self._gaps)

    def admit(self, ids: np.ndarray) -> Admission:
        n = len(ids)
        if n == 0:
            return Admission(np.zeros(0, np.bool_), 0, [])
        first = int(ids[0])
        # The hot path: the next ids in order, no gap, no duplicate.
        if (
            (self.max_id is None or first == self.max_id + 1)
            and int(ids[-1]) - first == n - 1
            and (n == 1 or bool((np.diff(ids) == 1).all()))
        ):
            self.max_id = int(ids[-1])
            return Admission(np.ones(n, np.bool_), 0, [])
        return self._admit_slow(ids)

    def _admit_slow(self, ids: np.ndarray) -> Admission:
        accepted = np.zeros(len(ids), np.bool_)
        new_gaps: list[tuple[int, int]] = []
        duplicates = 0
        for i, raw in enumerate(ids.tolist()):
            if self.max_id is None or raw > self.max_id:
                if self.max_id is not None and raw > self.max_id + 1:
                    gap = (self.max_id + 1, raw - 1)
                    self._gaps.append(gap)
                    new_gaps.append(gap)
                self.max_id = raw
                accepted[i] = True
            elif self._take(raw):
                accepted[i] = True
            else:
                duplicates += 1
        return Admission(accepted, duplicates, new_gaps)

    def _take(self, agg_id: int) -> bool:
        """Remove ``agg_id`` from the open gaps; False if it was not missing."""
        k = bisect.bisect_right(self._gaps, (agg_id, float("inf"))) - 1
        if k < 0:
            return False
        lo, hi = self._gaps[k]
        if not lo <= agg_id <= hi:
            return False
        pieces = [(lo, agg_id - 1)] if agg_id > lo else []
        if agg_id < hi:
            pieces.append((agg_id + 1, hi))
        self._gaps[k : k + 1] = pieces
        return True

    def open_gap(self, lo: int, hi: int) -> None:
        """Mark ``[lo, hi]`` (below every id held) as missing: history to be fetched."""
        if self._gaps and hi >= self._gaps[0][0]:
            raise ValueError(f"gap {lo}..{hi} overlaps the open gaps")
        if self.max_id is None or hi > self.max_id:
            raise ValueError(f"gap {lo}..{hi} is not below the held ids")
        self._gaps.insert(0, (lo, hi))

    def give_up(self, lo: int, hi: int) -> int:
        """Close ``[lo, hi]`` as unfillable (the exchange has no such ids); returns ids closed."""
        closed = 0
        kept: list[tuple[int, int]] = []
        for g_lo, g_hi in self._gaps:
            a, b = max(g_lo, lo), min(g_hi, hi)
            if a > b:
                kept.append((g_lo, g_hi))
                continue
            closed += b - a + 1
            if g_lo < a:
                kept.append((g_lo, a - 1))
            if b < g_hi:
                kept.append((b + 1, g_hi))
        self._gaps = kept
        return closed
