"""The in-memory tick store: the one lock-guarded owner of ticks, live bars and id ledgers.

Writers (the stream thread, the backfill thread) call ``ingest``; readers (dashboard, collector)
get immutable snapshots and read-only arrays, never a half-applied batch.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import numpy as np

from backend.store.gaps import IdLedger
from backend.store.records import (
    BAR_COLUMNS,
    TIMEFRAMES_MS,
    Bars,
    FundingEvents,
    FundingSnapshot,
    MarkPrice,
    ResumePoint,
    TradeBatch,
)
from backend.store.resampling import SecondBars, fold_bars
from backend.store.timeframes import FOLD_MS, FROM_MINUTES, MINUTE, floor_ms

# 30 bytes a tick: float64 price and qty; uint32 offsets of time, aggregate id and first trade id
# from per-buffer bases; uint16 packing (l - f) in 15 bits and the buyer-maker flag in the top bit.
TICK_DTYPE = np.dtype(
    [("price", "<f8"), ("qty", "<f8"), ("dt", "<u4"), ("da", "<u4"), ("df", "<u4"), ("nm", "<u2")]
)
_SPAN_MASK = 0x7FFF  # (l - f) at or above this goes to the overflow table
_MAKER_BIT = 0x8000
_U32 = 2**32 - 1


class TickBuffer:
    """A ring of the most recent ``capacity`` ticks of one symbol, in arrival order, packed."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("tick capacity must be at least 1")
        self.capacity = capacity
        self._buf = np.zeros(min(capacity, 4096), TICK_DTYPE)  # doubles up to capacity
        self._len = 0  # rows held; once it reaches capacity the ring wraps
        self._next = 0  # write position once full
        self._bases: tuple[int, int, int] | None = None  # time, agg id, first trade id
        self._wide_spans: dict[int, int] = {}  # agg id -> (l - f), for spans >= _SPAN_MASK
        self.total = 0  # ticks ever appended

    def __len__(self) -> int:
        return self._len

    @property
    def _rows(self) -> np.ndarray:
        return self._buf[: self._len]

    def append(self, batch: TradeBatch) -> None:
        if len(batch) == 0:
            return
        if len(batch) > self.capacity:
            batch = batch.take(slice(len(batch) - self.capacity, None))
        packed = self._pack(batch)
        n = len(packed)
        if self._len < self.capacity:
            take = min(self.capacity - self._len, n)
            if self._len + take > len(self._buf):
                grown = np.zeros(
                    min(self.capacity, max(2 * len(self._buf), self._len + take)), TICK_DTYPE
                )
                grown[: self._len] = self._buf[: self._len]
                self._buf = grown
            self._buf[self._len : self._len + take] = packed[:take]
            self._len += take
            packed = packed[take:]
            self._next = 0
        if len(packed):  # full: overwrite the oldest rows
            end = self._next + len(packed)
            if end <= self.capacity:
                self._buf[self._next : end] = packed
            else:
                split = self.capacity - self._next
                self._buf[self._next :] = packed[:split]
                self._buf[: end - self.capacity] = packed[split:]
            self._next = end % self.capacity
        self.total += n

    def _pack(self, batch: TradeBatch) -> np.ndarray:
        cols = (batch.trade_time_ms, batch.agg_id, batch.first_trade_id)
        if self._bases is None:
            self._bases = tuple(int(c.min()) for c in cols)
        if not all(
            int(c.min()) >= b and int(c.max()) - b <= _U32
            for c, b in zip(cols, self._bases, strict=True)
        ):
            self._rebase(cols)
        t_base, a_base, f_base = self._bases
        out = np.empty(len(batch), TICK_DTYPE)
        out["price"], out["qty"] = batch.price, batch.qty
        out["dt"] = batch.trade_time_ms - t_base
        out["da"] = batch.agg_id - a_base
        out["df"] = batch.first_trade_id - f_base
        span = batch.last_trade_id - batch.first_trade_id
        wide = span >= _SPAN_MASK
        for agg_id, s in zip(batch.agg_id[wide].tolist(), span[wide].tolist(), strict=True):
            self._wide_spans[agg_id] = s
        out["nm"] = np.minimum(span, _SPAN_MASK) | np.where(batch.buyer_is_maker, _MAKER_BIT, 0)
        return out

    def _rebase(self, cols: tuple[np.ndarray, ...]) -> None:
        """New bases for a batch outside the uint32 window (weeks of run time, or older trades);
        held rows are re-encoded. Rows that cannot be expressed are dropped, oldest first."""
        held = self.read() if len(self._rows) else None
        lows = [int(c.min()) for c in cols]
        if held is not None:
            held_cols = (held.trade_time_ms, held.agg_id, held.first_trade_id)
            highs = [int(c.max()) for c in cols]
            keep = np.ones(len(held), np.bool_)
            for h, hi in zip(held_cols, highs, strict=True):
                keep &= h >= hi - _U32
            held = held.take(keep)
            lows = [
                min(lo, int(h[keep].min())) if keep.any() else lo
                for lo, h in zip(lows, held_cols, strict=True)
            ]
        self._bases = tuple(lows)
        self._len, self._next, total = 0, 0, self.total
        if held is not None and len(held):
            self.append(held)
        self.total = total

    def read(self, last: int | None = None) -> TradeBatch:
        """The held ticks (or the ``last`` n) in arrival order, unpacked into fresh arrays."""
        rows = self._rows
        if len(rows) == self.capacity and self._next:
            rows = np.concatenate((rows[self._next :], rows[: self._next]))
        if last is not None:
            rows = rows[max(0, len(rows) - last) :]
        t_base, a_base, f_base = self._bases or (0, 0, 0)
        agg_id = rows["da"].astype(np.int64) + a_base
        first = rows["df"].astype(np.int64) + f_base
        span = (rows["nm"] & _SPAN_MASK).astype(np.int64)
        if self._wide_spans:
            for i in np.flatnonzero(span == _SPAN_MASK).tolist():
                span[i] = self._wide_spans.get(int(agg_id[i]), _SPAN_MASK)
        return TradeBatch(
            "",
            agg_id=agg_id,
            price=rows["price"].copy(),
            qty=rows["qty"].copy(),
            first_trade_id=first,
            last_trade_id=first + span,
            trade_time_ms=rows["dt"].astype(np.int64) + t_base,
            buyer_is_maker=(rows["nm"] & _MAKER_BIT) != 0,
        )

    @property
    def nbytes(self) -> int:
        """Bytes allocated for ticks (up to twice the held rows while growing)."""
        return self._buf.nbytes


@dataclass(frozen=True, slots=True)
class HistoryFill:
    """The 1s history being backfilled: ids ``first_id..last_id`` from ``start_ms`` on;
    ``last_id`` is None until known (the first gap the stream opens, or the backfill's tail
    read catching up with the exchange)."""

    start_ms: int
    first_id: int
    last_id: int | None


@dataclass(frozen=True, slots=True)
class HistoryStatus:
    """How far back each timeframe reaches, and how much of the 1s history is in."""

    klines_from_ms: dict[str, int]  # timeframe -> first kline's open time
    seconds_from_ms: int | None  # where the 1s bars (and 1m/5m built from them) start
    seconds_filled: float | None  # share of the 1s history's trades held (1.0: complete)


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    new_gaps: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class SymbolSnapshot:
    symbol: str
    ticks: int  # trades accepted since start
    last_price: float | None
    last_trade_time_ms: int | None
    first_price: float | None
    max_agg_id: int | None
    open_gaps: int
    missing_ids: int
    duplicates: int  # repeated by the stream
    backfill_overlap: int  # REST pages re-reading trades the store held already


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    version: int
    symbols: dict[str, SymbolSnapshot]

    @property
    def total_ticks(self) -> int:
        return sum(s.ticks for s in self.symbols.values())


class _SymbolState:
    __slots__ = (
        "ticks",
        "bars",
        "ledger",
        "last_price",
        "last_time",
        "first_price",
        "dups",
        "overlap",
        "stream_max",
        "resume",
        "klines",
        "klines_dirty_from",
        "listed_from_start",
        "history",
        "min_id",
    )

    def __init__(self, symbol: str, capacity: int) -> None:
        self.ticks = TickBuffer(capacity)
        self.bars = SecondBars(symbol)
        self.ledger = IdLedger()
        self.last_price: float | None = None
        self.last_time: int | None = None
        self.first_price: float | None = None
        self.dups = 0
        self.overlap = 0
        self.stream_max = -1  # the highest id the stream delivered
        self.resume: ResumePoint | None = None
        self.klines: dict[str, Bars] = {}  # 1m/5m bars before the 1s history (from klines)
        self.klines_dirty_from: int | None = None
        # Timeframes whose klines reach the exchange's first bar of the symbol: nothing traded
        # before them, so a longer bar they start inside of is whole.
        self.listed_from_start: set[str] = set()
        self.history: HistoryFill | None = None
        self.min_id: int | None = None  # the lowest aggregate id held

    def resume_point(self) -> ResumePoint | None:
        """The latest exact resume point: the second holding the last id of the gap-free
        prefix of held ids (every id below that second's first id is held, and traded
        earlier). Kept from the previous call when no live trade lies beyond it yet."""
        ledger = self.ledger
        if ledger.max_id is not None:
            gaps = ledger.gaps
            complete_to = gaps[0][0] - 1 if gaps else ledger.max_id
            found = self.bars.locate(complete_to)
            if found is not None:
                self.resume = ResumePoint(self.bars.symbol, found[0], found[1])
        return self.resume


TRIM_EVERY_S = 1800  # 1s bars past the bound are folded away half an hour at a time
_FOLD_S = FOLD_MS // 1000  # fold at these boundaries: every folded bar stays whole


class TickStore:
    """Ticks, live 1s bars and id ledgers of the watched symbols behind one lock.

    ``keep_1s_s`` bounds memory: 1s bars older than that are folded into the symbol's 1m and
    5m bars (kept) and forgotten; None keeps every second."""

    def __init__(
        self, symbols: list[str], tick_capacity: int = 2_000_000, keep_1s_s: int | None = None
    ) -> None:
        if keep_1s_s is not None and keep_1s_s < _FOLD_S:
            raise ValueError(f"keep at least {_FOLD_S // 60} minutes of 1s bars")
        self._keep_1s_s = keep_1s_s
        self._lock = threading.Lock()
        self._version = 0
        self._state = {s: _SymbolState(s, tick_capacity) for s in symbols}
        self._bars_cache: dict[tuple[str, str, int | None], tuple[int, Bars]] = {}

    @property
    def symbols(self) -> list[str]:
        return list(self._state)

    def ingest(self, batch: TradeBatch, backfill: bool = False) -> IngestResult:
        """Admit the new trades of ``batch`` exactly once; repeats are counted and dropped.

        Two kinds of repeat are counted apart: a *duplicate* is an id the stream itself sent
        before (at or below the highest id it delivered); an *overlap* is an id one channel got
        first and the other later (a REST page re-reading what the stream delivered, or the
        stream catching up with a page), expected with backfill and not an exchange fault."""
        with self._lock:
            st = self._state[batch.symbol]
            ids = batch.agg_id
            admission = st.ledger.admit(ids)
            if not backfill:
                self._count_repeats(st, ids, admission)
            else:
                st.overlap += admission.duplicates
            if not admission.all_accepted:
                batch = batch.take(admission.accepted)
            if len(batch):
                low = int(batch.agg_id.min())
                st.min_id = low if st.min_id is None else min(st.min_id, low)
                st.ticks.append(batch)
                st.bars.add(batch)
                if self._keep_1s_s and st.bars.length > self._keep_1s_s + TRIM_EVERY_S:
                    self._fold_old_seconds(st)
                if st.first_price is None:
                    st.first_price = float(batch.price[0])
                if st.last_time is None or int(batch.agg_id[-1]) == st.ledger.max_id:
                    st.last_price = float(batch.price[-1])
                    st.last_time = int(batch.trade_time_ms[-1])
                self._version += 1
            return IngestResult(len(batch), admission.duplicates, admission.new_gaps)

    def _fold_old_seconds(self, st: _SymbolState) -> None:
        """Fold the 1s bars older than the bound into 1m/5m bars, but only seconds every trade
        of which is held (before the first open gap): a trade backfilled later must still find
        its second."""
        seconds = st.bars
        cut_s = seconds.origin_s + seconds.length - self._keep_1s_s
        point = st.resume_point()
        if point is None or (st.history is not None and st.history.last_id is None):
            return  # completeness unknown, or the 1s history is still loading
        cut_s = min(cut_s, point.open_time_ms // 1000) // _FOLD_S * _FOLD_S
        if cut_s <= seconds.origin_s:
            return
        for tf, folded in seconds.drop_before(cut_s).items():
            # What bars() showed: the klines before the first built bar, then the built ones.
            held = st.klines.get(tf)
            st.klines[tf] = _before(held, folded, None) if held is not None else folded

    @staticmethod
    def _count_repeats(st: _SymbolState, ids: np.ndarray, admission) -> None:
        if admission.new_gaps and st.history is not None and st.history.last_id is None:
            # The stream's first trade is past the history: the history ends below it.
            st.history = dataclasses.replace(st.history, last_id=admission.new_gaps[0][1])
        if admission.duplicates:
            seen = np.maximum.accumulate(np.concatenate(([st.stream_max], ids)))[:-1]
            repeats = int((~admission.accepted & (ids <= seen)).sum())
            st.dups += repeats
            st.overlap += admission.duplicates - repeats
        if len(ids):
            st.stream_max = max(st.stream_max, int(ids.max()))

    def first_gap(self, symbol: str) -> tuple[int, int] | None:
        with self._lock:
            gaps = self._state[symbol].ledger.gaps
            return gaps[0] if gaps else None

    def gaps(self, symbol: str) -> list[tuple[int, int]]:
        with self._lock:
            return self._state[symbol].ledger.gaps

    def max_agg_id(self, symbol: str) -> int | None:
        with self._lock:
            return self._state[symbol].ledger.max_id

    def give_up(self, symbol: str, lo: int, hi: int) -> int:
        """Close ids the exchange says do not exist; returns how many were closed."""
        with self._lock:
            closed = self._state[symbol].ledger.give_up(lo, hi)
            self._version += 1
            return closed

    def snapshot(self) -> StoreSnapshot:
        with self._lock:
            return StoreSnapshot(
                self._version,
                {
                    s: SymbolSnapshot(
                        s,
                        st.ticks.total,
                        st.last_price,
                        st.last_time,
                        st.first_price,
                        st.ledger.max_id,
                        len(st.ledger.gaps),
                        st.ledger.missing_ids(),
                        st.dups,
                        st.overlap,
                    )
                    for s, st in self._state.items()
                },
            )

    def bars(
        self, symbol: str, timeframe: str, since_ms: int | None = None, last: int | None = None
    ) -> Bars:
        """Read-only bars (klines, then bars built from trades), from the bar holding
        ``since_ms`` or only the ``last`` n, computed under the lock for that range alone. A
        whole read is kept until the store changes."""
        key = (symbol, timeframe, since_ms)
        with self._lock:
            if last is None:
                hit = self._bars_cache.get(key)
                if hit is not None and hit[0] == self._version:
                    return hit[1]
            st = self._state[symbol]
            if last is not None:
                since_ms = _tail_start_ms(st, timeframe, last)
            bars = _read(st, timeframe, since_ms)
            if last is not None and len(bars) > last:
                bars = bars.slice(len(bars) - last)
            for name in BAR_COLUMNS:
                getattr(bars, name).setflags(write=False)
            if since_ms is None and last is None:  # bounded cache: partial reads are not kept
                self._bars_cache[key] = (self._version, bars)
            return bars

    def ticks(self, symbol: str, last: int | None = None) -> TradeBatch:
        with self._lock:
            batch = self._state[symbol].ticks.read(last)
        return dataclasses.replace(batch, symbol=symbol)

    def take_dirty(self) -> dict[str, int]:
        """Per symbol, the open time (ms) of the first bar changed since the last call."""
        with self._lock:
            out = {}
            for s, st in self._state.items():
                changed = [st.bars.take_dirty(), st.klines_dirty_from]
                st.klines_dirty_from = None
                changed = [t for t in changed if t is not None]
                if changed:
                    out[s] = min(changed)
            return out

    def load_klines(self, symbol: str, bars: Bars, from_listing: bool = False) -> None:
        """Bars from before the 1s history (klines): shown and saved with the rest; from the
        first second held on (15m and longer: from the end of their klines), bars are built
        from trades instead. ``from_listing``: the exchange has nothing older (the symbol's
        first trades are in them, or after them when they are empty)."""
        with self._lock:
            st = self._state[symbol]
            if from_listing:
                st.listed_from_start.add(bars.timeframe)
            if not len(bars):
                return
            st.klines[bars.timeframe] = bars
            if len(bars):
                first = int(bars.open_time[0])
                st.klines_dirty_from = min(st.klines_dirty_from or first, first)
            self._version += 1

    def extend_back(self, symbol: str, start_ms: int, from_agg_id: int) -> tuple[int, int] | None:
        """Start the 1s history at ``start_ms``, whose first trade is ``from_agg_id``: every id
        from there to the first one held becomes a gap for the backfill to fill (if nothing is
        held yet, the backfill's tail read fetches them). Returns the gap opened, if any.

        The resume point moves to ``(start_ms, from_agg_id)``: a restart before the history is
        in loads it again from there, the bars before it being klines."""
        with self._lock:
            st = self._state[symbol]
            if st.ledger.max_id is None:
                st.ledger = IdLedger(max_id=from_agg_id - 1)
                gap, last = None, None
            elif st.min_id is not None and from_agg_id < st.min_id:
                gap = (from_agg_id, st.min_id - 1)
                st.ledger.open_gap(*gap)
                last = gap[1]
            else:
                return None
            st.history = HistoryFill(start_ms, from_agg_id, last)
            st.resume = ResumePoint(symbol, start_ms, from_agg_id)
            self._version += 1
            return gap

    def history_status(self, symbol: str) -> HistoryStatus:
        with self._lock:
            st = self._state[symbol]
            reach = {tf: int(b.open_time[0]) for tf, b in st.klines.items() if len(b)}
            fill = st.history
            if fill is None:
                return HistoryStatus(reach, None, None)
            if fill.last_id is None:
                return HistoryStatus(reach, fill.start_ms, None)
            total = fill.last_id - fill.first_id + 1
            top = min(st.ledger.max_id, fill.last_id)
            held = max(0, top - fill.first_id + 1) - sum(
                max(0, min(hi, top) - max(lo, fill.first_id) + 1) for lo, hi in st.ledger.gaps
            )
            return HistoryStatus(reach, fill.start_ms, held / total if total > 0 else 1.0)

    def history_caught_up(self, symbol: str) -> None:
        """The backfill's tail read reached the exchange's latest trade: the 1s history ends at
        the last id held now (if the stream has not said so first)."""
        with self._lock:
            st = self._state[symbol]
            if st.history is not None and st.history.last_id is None:
                st.history = dataclasses.replace(st.history, last_id=st.ledger.max_id)

    def resume_points(self) -> list[ResumePoint]:
        """Where each symbol could resume after a restart. Read these before the bars that are
        saved with them: bars read later hold every trade the points claim."""
        with self._lock:
            points = (st.resume_point() for st in self._state.values())
            return [p for p in points if p is not None]

    def resume(self, point: ResumePoint, bars_1s: Bars) -> None:
        """Start from storage: the stored 1s bars before ``point.open_time_ms`` and a ledger
        holding every id below ``point.from_agg_id``; the backfill fetches the rest."""
        if len(bars_1s) and int(bars_1s.open_time[-1]) >= point.open_time_ms:
            raise ValueError("history must end before the resume point")
        with self._lock:
            st = self._state[point.symbol]
            if st.ledger.max_id is not None:
                raise RuntimeError(f"{point.symbol} already has trades; resume before ingesting")
            st.bars.load(bars_1s)
            st.ledger = IdLedger(max_id=point.from_agg_id - 1)
            start = int(bars_1s.open_time[0]) if len(bars_1s) else point.open_time_ms
            st.history = HistoryFill(start, point.from_agg_id, None)
            st.resume = point
            self._version += 1

    def tick_bytes(self) -> int:
        with self._lock:
            return sum(st.ticks.nbytes for st in self._state.values())


def _tail_start_ms(st: _SymbolState, timeframe: str, last: int) -> int | None:
    """Open time of the ``last``-th bar from the end (built bars end with the last trade's)."""
    seconds = st.bars
    if seconds.origin_s is None or seconds.length == 0:
        klines = st.klines.get(timeframe)
        return int(klines.open_time[-last]) if klines is not None and len(klines) >= last else None
    step = TIMEFRAMES_MS[timeframe]
    end_ms = (seconds.origin_s + seconds.length - 1) * 1000 // step * step
    return end_ms - (last - 1) * step


def _read(st: _SymbolState, timeframe: str, since_ms: int | None) -> Bars:
    """Klines, then bars built from trades: from the 1s bars (1s, 1m, 5m), or folded from the
    1m bars after the timeframe's own klines (15m and longer)."""
    klines = st.klines.get(timeframe)
    if timeframe in FROM_MINUTES:
        step = TIMEFRAMES_MS[timeframe]
        start = None if since_ms is None else floor_ms(since_ms, step)
        if klines is not None and len(klines):
            after = int(klines.open_time[-1]) + step  # the minutes after the klines only
            start = after if start is None else max(start, after)
        minutes = _read(st, MINUTE, start)
        # A longer bar the 1m bars start inside of is left out only where the history says
        # it is partial: a 1s history without 1m klines reaching back (history bars 0, or REST
        # refused); bars built from a feed's own trades start as its first 1m bar does.
        whole = st.history is None or MINUTE in st.listed_from_start
        built = fold_bars(minutes, timeframe, first_is_whole=whole)
    else:
        built = st.bars.bars(timeframe, since_ms)
    if klines is None:
        return built
    return _before(klines, built, since_ms)


def _before(klines: Bars, built: Bars, since_ms: int | None) -> Bars:
    """Klines before the first bar built from trades, then those bars."""
    end = int(built.open_time[0]) if len(built) else None
    step = TIMEFRAMES_MS[klines.timeframe]
    lo = 0 if since_ms is None else int(np.searchsorted(klines.open_time + step, since_ms, "right"))
    hi = len(klines) if end is None else int(np.searchsorted(klines.open_time, end, "left"))
    if hi <= lo:
        return built
    head = klines.slice(lo, hi)
    return Bars.concat([head, built]) if len(built) else head


class MarkBook:
    """The latest mark price, index price and funding rate of each watched symbol, written by
    the mark-price stream thread, read as a ``FundingSnapshot``; and the funding rates charged
    at past funding times: recorded from the stream (the last rate published before a funding
    time, once an update shows the next one) and loaded from ``GET /fapi/v1/fundingRate``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marks: dict[str, MarkPrice] = {}
        self._interval_h: dict[str, int] = {}
        self._updates = 0
        self._charged: dict[str, dict[int, float]] = {}  # symbol -> funding time -> rate

    def update(self, marks: list[MarkPrice]) -> None:
        with self._lock:
            for m in marks:
                held = self._marks.get(m.symbol)
                if held is None or m.event_time_ms >= held.event_time_ms:
                    if held is not None and m.next_funding_time_ms > held.next_funding_time_ms:
                        # A funding time passed: the rate held before it was charged.
                        charged = self._charged.setdefault(m.symbol, {})
                        charged.setdefault(held.next_funding_time_ms, held.funding_rate)
                    self._marks[m.symbol] = m
            self._updates += len(marks)

    def add_history(self, events: FundingEvents) -> None:
        """Rates the exchange says it charged (they take precedence over recorded ones)."""
        with self._lock:
            charged = self._charged.setdefault(events.symbol, {})
            for t, r in zip(events.time_ms.tolist(), events.rate.tolist(), strict=True):
                charged[int(t)] = float(r)

    def funding_count(self, symbols) -> int:
        """How many funding charges are known for ``symbols`` (changes when one is added)."""
        with self._lock:
            return sum(len(self._charged.get(s, ())) for s in symbols)

    def funding_events(self, symbol: str) -> FundingEvents:
        with self._lock:
            charged = sorted(self._charged.get(symbol, {}).items())
        return FundingEvents(
            symbol,
            np.array([t for t, _ in charged], dtype=np.int64),
            np.array([r for _, r in charged], dtype=np.float64),
        )

    def set_intervals(self, interval_h: dict[str, int]) -> None:
        with self._lock:
            self._interval_h.update(interval_h)

    def snapshot(self) -> FundingSnapshot:
        with self._lock:
            return FundingSnapshot(dict(self._marks), dict(self._interval_h), self._updates)
