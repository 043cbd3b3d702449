"""The best bid and ask of each symbol, kept per bar: the one owner of recorded quotes.

Per second and per minute of each symbol it keeps the time-weighted sum of the quoted spread
(bps of the mid times milliseconds) and the milliseconds covered, and the bid and ask at the
bar's close (the last update in it). A quote holds from its update until the next one, so the
span between two updates is credited, split at bar boundaries, when the second arrives. 1s
bars come from the seconds (the last ``keep_s`` of them), 1m from the minutes, 5m from five
minutes each. Reads get immutable ``QuoteBars``; a bar after the latest update carries the
quote still standing.
"""

from __future__ import annotations

import threading

import numpy as np

from backend.store.records import TIMEFRAMES_MS, QuoteBars, Quotes

_FIELDS = 4  # time-weighted spread sum (bps x ms), ms covered, bid at close, ask at close


class _Grid:
    """Dense accumulators over consecutive buckets of ``step_ms``, starting at ``first``."""

    def __init__(self, step_ms: int) -> None:
        self.step = step_ms
        self.first: int | None = None  # bucket number of row 0
        self.rows = np.zeros((0, _FIELDS))
        self.used = 0

    def _row(self, bucket: np.ndarray) -> np.ndarray:
        """Rows for ``bucket`` numbers, growing the grid (by doubling) to hold them."""
        if self.first is None:
            self.first = int(bucket.min())
        need = int(bucket.max()) - self.first + 1
        if need > len(self.rows):
            grown = np.zeros((max(need, 2 * len(self.rows), 64), _FIELDS))
            grown[:, 2:] = np.nan
            grown[: len(self.rows)] = self.rows
            self.rows = grown
        self.used = max(self.used, need)
        return bucket - self.first

    def credit(self, start_ms: np.ndarray, end_ms: np.ndarray, spread_bps: np.ndarray) -> None:
        """Add ``spread x duration`` over ``[start, end)`` to the buckets each span covers."""
        keep = end_ms > start_ms
        start_ms, end_ms, spread_bps = start_ms[keep], end_ms[keep], spread_bps[keep]
        if not len(start_ms):
            return
        a, b = start_ms // self.step, (end_ms - 1) // self.step
        one = a == b
        rows = self._row(np.concatenate([a, b]))[: len(a)]
        dur = (end_ms - start_ms).astype(np.float64)
        np.add.at(self.rows[:, 0], rows[one], spread_bps[one] * dur[one])
        np.add.at(self.rows[:, 1], rows[one], dur[one])
        for s, e, sp in zip(start_ms[~one], end_ms[~one], spread_bps[~one], strict=True):
            edges = np.arange((s // self.step + 1) * self.step, e, self.step)
            lo = np.concatenate([[s], edges])
            hi = np.concatenate([edges, [e]])
            r = self._row(lo // self.step)
            self.rows[r, 0] += sp * (hi - lo)
            self.rows[r, 1] += hi - lo

    def close(self, time_ms: np.ndarray, bid: np.ndarray, ask: np.ndarray) -> None:
        """Bid and ask at each bucket's close: its last update."""
        bucket = time_ms // self.step
        last = np.flatnonzero(np.diff(bucket, append=bucket[-1] + 1) != 0)
        rows = self._row(bucket[last])
        self.rows[rows, 2], self.rows[rows, 3] = bid[last], ask[last]

    def drop_before(self, bucket: int) -> None:
        if self.first is None or bucket <= self.first:
            return
        cut = min(bucket - self.first, self.used)
        self.rows = self.rows[cut:].copy()
        self.used -= cut
        self.first += cut

    def snapshot(self) -> tuple[int | None, np.ndarray]:
        return self.first, self.rows[: self.used].copy()


class _Track:
    def __init__(self) -> None:
        self.seconds, self.minutes = _Grid(1_000), _Grid(60_000)
        self.current: tuple[int, float, float] | None = None  # time, bid, ask
        self.updates = 0


class QuoteBook:
    """Recorded best bid / ask per symbol and bar (module docstring). ``ingest`` is called by
    the bookTicker connection's thread, ``bars`` by readers."""

    def __init__(self, symbols: list[str], keep_s: int | None = 6 * 3600) -> None:
        self._lock = threading.Lock()
        self._tracks = {s: _Track() for s in symbols}
        self._keep_s = keep_s

    @property
    def symbols(self) -> list[str]:
        return list(self._tracks)

    def ingest(self, quotes: Quotes) -> None:
        with self._lock:
            track = self._tracks.get(quotes.symbol)
            if track is None or not len(quotes.time_ms):
                return
            t, bid, ask = quotes.time_ms.astype(np.int64), quotes.bid, quotes.ask
            if track.current is not None:  # updates older than the one held change nothing
                keep = t >= track.current[0]
                t, bid, ask = t[keep], bid[keep], ask[keep]
                if not len(t):
                    return
            t = np.maximum.accumulate(t)
            spread = _spread_bps(bid, ask)
            # Each quote stands from its update to the next one (the held quote: to the first).
            if track.current is not None:
                t0, b0, a0 = track.current
                starts = np.concatenate([[t0], t[:-1]])
                spans = np.concatenate([[_spread_bps(b0, a0)], spread[:-1]])
                ends = t
            else:
                starts, spans, ends = t[:-1], spread[:-1], t[1:]
            for grid in (track.seconds, track.minutes):
                grid.credit(starts, ends, spans)
                grid.close(t, bid, ask)
            track.current = (int(t[-1]), float(bid[-1]), float(ask[-1]))
            track.updates += len(t)
            if self._keep_s is not None:
                track.seconds.drop_before(int(t[-1]) // 1000 - self._keep_s)

    def updates(self) -> int:
        with self._lock:
            return sum(t.updates for t in self._tracks.values())

    def bars(self, symbol: str, timeframe: str, until_ms: int | None = None) -> QuoteBars:
        """Every bar of ``timeframe`` from the symbol's first recorded quote to ``until_ms``
        (an open time; default the latest update's bar)."""
        step = TIMEFRAMES_MS[timeframe]
        with self._lock:
            track = self._tracks.get(symbol)
            if track is None or track.current is None:
                return _empty(symbol, timeframe)
            grid = track.seconds if timeframe == "1s" else track.minutes
            first, rows = grid.snapshot()
        base = grid.step
        t = (first + np.arange(len(rows), dtype=np.int64)) * base
        if until_ms is not None and until_ms >= t[-1] + base:  # the quote still stands
            extra = np.arange(t[-1] + base, until_ms + base, base, dtype=np.int64)
            more = np.full((len(extra), _FIELDS), np.nan)
            more[:, :2] = 0.0
            t, rows = np.concatenate([t, extra]), np.vstack([rows, more])
        bid, ask = _ffill(rows[:, 2]), _ffill(rows[:, 3])
        if step != base:  # 5m from minutes
            group = t // step
            edges = np.flatnonzero(np.diff(group, prepend=group[0] - 1) != 0)
            tw = np.add.reduceat(rows[:, 0], edges)
            cov = np.add.reduceat(rows[:, 1], edges)
            last = np.append(edges[1:], len(t)) - 1
            t, bid, ask = group[edges] * step, bid[last], ask[last]
        else:
            tw, cov = rows[:, 0], rows[:, 1]
        standing = _spread_bps(bid, ask)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(cov > 0, tw / cov, standing)
        return QuoteBars(symbol, timeframe, t, bid, ask, mean)


def _spread_bps(bid, ask):
    return 2e4 * (np.asarray(ask) - np.asarray(bid)) / (np.asarray(ask) + np.asarray(bid))


def _ffill(a: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a)
    index = np.where(ok, np.arange(len(a)), 0)
    np.maximum.accumulate(index, out=index)
    out = a[index]
    out[: np.argmax(ok) if ok.any() else len(a)] = np.nan
    return out


def _empty(symbol: str, timeframe: str) -> QuoteBars:
    f8 = np.empty(0)
    return QuoteBars(symbol, timeframe, np.empty(0, np.int64), f8, f8, f8)
