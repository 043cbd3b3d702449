"""History at start: bars from before the program started, loaded over REST beside the stream.

For each symbol, with ``S`` the 5-minute boundary at or before ``now - history_1s`` (``now`` the
exchange's clock, ``GET /fapi/v1/time``):

Klines are loaded first for every symbol (cheap, and what 1m/5m figures need), then the seams:

* **1s bars from ``S`` on come from aggregate trades**, exact like every live bar: the first
  trade at or after ``S`` (``GET /fapi/v1/aggTrades?startTime=S&endTime=S+1h-1&limit=1``) starts
  the id ledger there (``TickStore.extend_back``), and the backfiller fetches every id from it to
  the stream's first (``fromId`` pages), so each trade counts once across the seam;
* **1m and 5m bars before ``S`` are klines** (``GET /fapi/v1/klines?endTime=S-1``, the last
  ``history_bars``): only periods that closed before the 1s history starts, so no kline overlaps
  a bar built from trades.

A symbol resumed from storage (``collector.resume_from_storage``) keeps its stored 1s bars and
backfills from its resume point; its klines end where those bars start. Requests honour the
weight budget (klines weigh by ``limit``; a minute over budget waits for the next) and
``Retry-After``; failures are retried with backoff until the loader is stopped, and each
symbol's state is shown (``status``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.feed.rest import AGG_TRADES_MAX_SPAN_MS, KLINES_MAX_LIMIT, RestClient, RestError
from backend.feed.streams import Backfiller, Backoff
from backend.store.records import Bars
from backend.store.tick_store import TickStore
from backend.store.timeframes import (
    FOLD_MS,
    KLINE_TIMEFRAMES,
    TIMEFRAMES_MS,
    floor_ms,
    kline_span,
)

StoredKlines = Callable[[str, str, int, int], Bars]  # (symbol, tf, since_ms, until_ms)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryOptions:
    bars: int = 1000  # --history-bars: klines per kline timeframe (1m ... 1d)
    seconds_1s: float = 900.0  # --history-1s: 1s bars from aggregate trades, at least this far

    def check(self) -> HistoryOptions:
        if self.bars < 0 or self.seconds_1s < 0:
            raise ValueError("history sizes must be >= 0")
        return self


def seconds_start_ms(now_ms: int, seconds_1s: float) -> int:
    """Where the 1s history starts: the fold boundary (``FOLD_MS``, 5 minutes) at or before
    ``now - seconds_1s``, so the current fold period is always built from trades."""
    return floor_ms(now_ms - int(seconds_1s * 1000), FOLD_MS)


class HistoryLoader(threading.Thread):
    """Loads the history of every symbol once, then ends. ``status`` says where each is."""

    def __init__(
        self,
        store: TickStore,
        rest: RestClient,
        backfiller: Backfiller,
        opts: HistoryOptions,
        resumed: dict[str, int] | None = None,
        stored: StoredKlines | None = None,
    ) -> None:
        super().__init__(name="history", daemon=True)
        # The database's bars (``load(symbol, tf, since_ms, until_ms)``): the memory of earlier
        # runs. Klines it holds are not asked again; only the missing head and tail are.
        self._stored = stored
        self.rest_klines = 0  # klines received over REST (tests: nothing downloaded twice)
        self._store, self._rest, self._backfiller, self._opts = store, rest, backfiller, opts
        self._resumed = dict(resumed or {})  # symbol -> open time of its first stored 1s bar
        self._stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._status: dict[str, str] = dict.fromkeys(store.symbols, "waiting")
        self.error: str | None = None
        self.clock_offset_ms: float | None = None  # the exchange's clock minus ours
        self.done = threading.Event()

    @property
    def status(self) -> dict[str, str]:
        with self._lock:
            return dict(self._status)

    def _set(self, symbol: str, text: str) -> None:
        with self._lock:
            self._status[symbol] = text

    def stop(self) -> None:
        self._stop_flag.set()

    def run(self) -> None:
        try:
            asked = time.time() * 1000
            now_ms = self._call(self._rest.server_time_ms)
            answered = time.time() * 1000
            if answered - asked < 5_000:  # a slow answer says little about the clocks
                self.clock_offset_ms = now_ms - (asked + answered) / 2
            fresh = seconds_start_ms(now_ms, self._opts.seconds_1s)
            starts = {s: self._resumed.get(s, fresh) for s in self._store.symbols}
            # Klines first: cheap (weight 5 for 1,000 bars), and they are what 1m/5m figures
            # need; the 1s history's backfill (weight 20 a page) then has the budget.
            for symbol in self._store.symbols:
                for tf in KLINE_TIMEFRAMES:
                    if self._stop_flag.is_set():
                        return
                    self._load_klines(symbol, tf, *kline_span(tf, starts[symbol], self._opts.bars))
                self._set(symbol, "klines loaded")
            for symbol in self._store.symbols:
                if self._stop_flag.is_set():
                    return
                if symbol not in self._resumed:
                    self._start_seconds(symbol, starts[symbol])
                self._set(symbol, "loaded")
        except _Stopped:
            return
        finally:
            self.done.set()

    def _start_seconds(self, symbol: str, start: int) -> None:
        first = self._call(
            lambda: self._rest.agg_trades_from_time(
                symbol, start, start + AGG_TRADES_MAX_SPAN_MS - 1, limit=1
            ),
            symbol,
        )
        if first is not None and len(first):
            self._store.extend_back(symbol, start, int(first.agg_id[0]))
            self._backfiller.request(symbol, tail=True)

    def _load_klines(self, symbol: str, tf: str, before_ms: int, need: int) -> None:
        """The ``need`` klines of ``tf`` before ``before_ms``: those the database holds, then
        over REST the bars after them (from the last stored one, which may have been saved
        while it formed) and before them, if any are still missing."""
        if need <= 0:
            return
        step = TIMEFRAMES_MS[tf]
        held = Bars.empty(symbol, tf)
        if self._stored is not None:
            held = self._stored(symbol, tf, before_ms - need * step, before_ms - 1)
            held = held.slice(0, max(0, len(held) - 1))  # the last one: asked again
        if not len(held):
            bars, exhausted = self._rest_pages(symbol, tf, before_ms - 1, need)
        else:
            after = int(held.open_time[-1]) + step
            tail, _ = self._rest_pages(symbol, tf, before_ms - 1, (before_ms - after) // step)
            bars = Bars.concat([held, tail]) if len(tail) else held
            exhausted = False
            if len(bars) < need:
                head, exhausted = self._rest_pages(
                    symbol, tf, int(held.open_time[0]) - 1, need - len(bars)
                )
                bars = Bars.concat([head, bars]) if len(head) else bars
        if len(bars) or exhausted:
            self._store.load_klines(symbol, bars, from_listing=exhausted)

    def _rest_pages(self, symbol: str, tf: str, end_ms: int, need: int) -> tuple[Bars, bool]:
        """Up to ``need`` klines with open time at or before ``end_ms``, oldest first, and
        whether the exchange has nothing older."""
        pages, end, exhausted = [], end_ms, False
        while need > 0:
            page = self._call(
                lambda e=end, n=need: self._rest.klines(symbol, tf, e, min(n, KLINES_MAX_LIMIT)),
                symbol,
            )
            if page is None:
                break
            self.rest_klines += len(page)
            if not len(page):
                exhausted = True
                break
            pages.append(page)
            need -= len(page)
            end = int(page.open_time[0]) - 1
            if len(page) < min(need + len(page), KLINES_MAX_LIMIT):
                exhausted = True
                break
        bars = Bars.concat(pages[::-1]) if pages else Bars.empty(symbol, tf)
        return bars, exhausted

    def _call(self, fn, symbol: str | None = None):
        """``fn()`` within the weight budget, retried until it answers; None for a request the
        exchange refuses for good (a 4xx other than a rate limit), noted in the status."""
        backoff = Backoff(0.5, 30.0)
        while not self._stop_flag.is_set():
            if self._rest.over_budget:
                self._stop_flag.wait(60 - time.time() % 60)
            try:
                result = fn()
                self.error = None
                return result
            except RestError as exc:
                if exc.permanent and symbol is not None:
                    self._set(symbol, f"history refused: {exc}")
                    log.warning("history %s: %s", symbol, exc)
                    return None
                delay = exc.retry_after_s if exc.rate_limited and exc.retry_after_s else None
                delay = delay or backoff.next()
                self.error = f"{exc} (retrying in {delay:.1f}s)"
                log.warning("history: %s; retrying in %.1fs", exc, delay)
                self._stop_flag.wait(delay)
        raise _Stopped


class _Stopped(Exception):
    """The loader was stopped while waiting."""
