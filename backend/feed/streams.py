"""WebSocket client thread for the combined aggTrade stream, with reconnect and gap backfill.

The thread is a thin shell: frames go to ``wire.FrameDecoder`` (pure), trades to
``TickStore.ingest`` (which owns exactly-once admission via the id ledger), and any gap it reports
to the ``Backfiller`` thread, which fills it over REST. After every (re)connect the backfiller also
reads from the last held id, so trades missed while disconnected are recovered even when no later
trade arrives to reveal the gap.
"""

from __future__ import annotations

import logging
import random
import select
import threading
import time
from collections import deque
from dataclasses import dataclass

import websocket

from backend.config import MAX_STREAMS_PER_CONNECTION, FeedConfig
from backend.feed.rest import AGG_TRADES_LIMIT, RestClient, RestError
from backend.feed.wire import (
    ALL_MARKS_STREAM,
    BookTickerDecoder,
    FrameDecoder,
    MarkDecoder,
    book_stream_name,
    mark_stream_name,
    stream_name,
)
from backend.store.quotes import QuoteBook
from backend.store.tick_store import MarkBook, TickStore

log = logging.getLogger(__name__)

MAX_BATCH_FRAMES = 2048  # decode at most this many frames at once (bounds latency and memory)
_POLL_S = 0.2  # how often an idle reader looks at the stop flag and the ping timer
MARK_ARRAY_FROM = 50  # from this many symbols on, the all-market mark-price array
# fundingInfo shares a limit of 500 requests / 5 min / IP: a retry every 10 s stays far below.
FUNDING_INFO_RETRY_S = 10.0
# Best bid / ask is recorded for at most this many symbols (the first streamed): BTCUSDT alone
# sends hundreds of updates a second; the backtest of the others assumes a spread (and says so).
QUOTE_SYMBOLS_MAX = 20


def book_ws_url(ws_url: str) -> str:
    """Where bookTicker streams are routed: Binance serves them under ``/public`` (aggTrade and
    markPrice under ``/market``); a base without ``/market`` is used as it is."""
    return ws_url[: -len("/market")] + "/public" if ws_url.endswith("/market") else ws_url


class Backoff:
    """Capped exponential backoff with full jitter, sans-I/O: ``next()`` gives the next delay."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        cap = min(self.max_s, self.initial_s * 2**self.attempt)
        self.attempt += 1
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    state: str  # "connecting" | "connected" | "reconnecting" | "stopped"
    last_message_age_s: float | None
    msgs_per_s: float
    messages: int
    reconnects: int
    dead_links: int  # connections declared dead (silent past the ping timeout)
    gaps_found: int
    gaps_filled: int
    ids_backfilled: int
    ids_unfillable: int
    duplicates: int  # repeated by the stream
    backfill_overlap: int  # REST pages re-reading trades already held (expected, not an error)
    malformed: int
    skipped_by_kind: dict[str, int]
    feed_latency_ms: float | None
    backfill_error: str | None
    last_error: str | None


class FeedHealth:
    """Counters written by the feed threads, read at any time as a ``HealthSnapshot``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = "connecting"
        self._last_rx: float | None = None
        self._messages = 0
        self._rate_samples: deque[tuple[float, int]] = deque(maxlen=64)
        self._counts = dict.fromkeys(
            (
                "reconnects",
                "dead_links",
                "gaps_found",
                "gaps_filled",
                "ids_backfilled",
                "ids_unfillable",
                "duplicates",
                "backfill_overlap",
            ),
            0,
        )
        self._skipped: dict[str, int] = {}
        self._latency_ms: float | None = None
        self.backfill_error: str | None = None
        self.last_error: str | None = None

    def add(self, **deltas: int) -> None:
        with self._lock:
            for key, value in deltas.items():
                self._counts[key] += value

    def set(self, **values) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(self, key, value)

    def on_frames(self, frames: int, skipped: dict[str, int], latency_ms: float | None) -> None:
        now = time.monotonic()
        with self._lock:
            self._last_rx = now
            self._messages += frames
            for kind, n in skipped.items():
                self._skipped[kind] = self._skipped.get(kind, 0) + n
            if latency_ms is not None:
                self._latency_ms = latency_ms
            if not self._rate_samples or now - self._rate_samples[-1][0] >= 0.25:
                self._rate_samples.append((now, self._messages))

    def snapshot(self) -> HealthSnapshot:
        now = time.monotonic()
        with self._lock:
            window = [(t, n) for t, n in self._rate_samples if now - t <= 5.0]
            rate = 0.0
            if len(window) >= 2 and window[-1][0] > window[0][0]:
                rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
            malformed = sum(n for k, n in self._skipped.items() if k != "control_reply")
            return HealthSnapshot(
                state=self.state,
                last_message_age_s=None if self._last_rx is None else now - self._last_rx,
                msgs_per_s=rate,
                messages=self._messages,
                malformed=malformed,
                skipped_by_kind=dict(self._skipped),
                feed_latency_ms=self._latency_ms,
                backfill_error=self.backfill_error,
                last_error=self.last_error,
                **self._counts,
            )


class DeadConnection(RuntimeError):
    """No frame, not even a pong, within the configured bound."""


class Backfiller(threading.Thread):
    """Fills open gaps and reads past the last held id over REST, one symbol at a time.

    Retries with capped backoff and honours ``Retry-After`` on 429/418; a gap it cannot fill yet
    stays open (and is shown in health) until REST answers again. Ids the exchange confirms do
    not exist are closed as unfillable.
    """

    def __init__(self, store: TickStore, rest: RestClient, health: FeedHealth, cfg: FeedConfig):
        super().__init__(name="backfill", daemon=True)
        self._store, self._rest, self._health, self._cfg = store, rest, health, cfg
        self._wake = threading.Condition()
        self._pending: dict[str, bool] = {}  # symbol -> also read past the last held id
        self._stop_flag = threading.Event()
        self._busy = False

    def request(self, symbol: str, tail: bool = False) -> None:
        with self._wake:
            self._pending[symbol] = self._pending.get(symbol, False) or tail
            self._wake.notify()

    def stop(self) -> None:
        self._stop_flag.set()
        with self._wake:
            self._wake.notify()

    def idle(self) -> bool:
        with self._wake:
            return not self._pending and not self._busy

    def run(self) -> None:
        backoff = Backoff(self._cfg.backoff_initial_s, self._cfg.backoff_max_s)
        while not self._stop_flag.is_set():
            with self._wake:
                while not self._pending and not self._stop_flag.is_set():
                    self._busy = False
                    self._wake.wait(_POLL_S)
                if self._stop_flag.is_set():
                    return
                symbol, tail = self._pending.popitem()
                self._busy = True
            try:
                self._fill(symbol, tail)
                backoff.reset()
                self._health.set(backfill_error=None)
            except RestError as exc:
                self.request(symbol, tail)  # keep the work; nothing is dropped
                delay = (
                    exc.retry_after_s if exc.rate_limited and exc.retry_after_s else backoff.next()
                )
                self._health.set(backfill_error=f"{exc} (retrying in {delay:.1f}s)")
                log.warning("backfill %s: %s; retrying in %.1fs", symbol, exc, delay)
                self._stop_flag.wait(delay)

    def _fill(self, symbol: str, tail: bool) -> None:
        while not self._stop_flag.is_set():
            gap = self._store.first_gap(symbol)
            if gap is not None:
                lo, hi = gap
            elif tail and self._store.max_agg_id(symbol) is not None:
                lo, hi = self._store.max_agg_id(symbol) + 1, None
            else:
                return
            if self._rest.over_budget:  # stay under Binance's request-weight limit
                self._stop_flag.wait(60 - time.time() % 60)
            page = self._rest.agg_trades(symbol, lo, AGG_TRADES_LIMIT)
            gaps_before = len(self._store.gaps(symbol))
            unfillable = 0
            if hi is not None:
                first = int(page.agg_id[0]) if len(page) else None
                if first is None or first > lo:  # the exchange has no trades with these ids
                    top = hi if first is None else min(hi, first - 1)
                    unfillable = self._store.give_up(symbol, lo, top)
            result = self._store.ingest(page, backfill=True)
            gaps_after = len(self._store.gaps(symbol))
            self._health.add(
                ids_backfilled=result.accepted,
                ids_unfillable=unfillable,
                backfill_overlap=result.duplicates,
                gaps_found=len(result.new_gaps),
                gaps_filled=max(0, gaps_before + len(result.new_gaps) - gaps_after),
            )
            if hi is None and len(page) < AGG_TRADES_LIMIT:
                tail = False  # caught up with the exchange
                self._store.history_caught_up(symbol)


class _Connection(threading.Thread):
    """One WebSocket connection kept alive forever: connect, read frames in batches, ping when
    idle, rotate before 24 h, reconnect with backoff. Subclasses say what a connect means
    (``_on_connect``) and what to do with a batch of frames (``_flush``)."""

    def __init__(self, name: str, url: str, health: FeedHealth, cfg: FeedConfig) -> None:
        super().__init__(name=name, daemon=True)
        self.url, self._health, self._cfg = url, health, cfg
        self._stop_flag = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self.connections = 0

    def stop(self) -> None:
        self._stop_flag.set()

    def run(self) -> None:
        backoff = Backoff(self._cfg.backoff_initial_s, self._cfg.backoff_max_s)
        while not self._stop_flag.is_set():
            try:
                self._ws = self._connect()
                self._health.set(state="connected", last_error=None)
                self._on_connect()
                self._read(self._ws, backoff)
            except Exception as exc:  # the feed thread must outlive any single failure
                if self._stop_flag.is_set():
                    break
                if not isinstance(exc, OSError | websocket.WebSocketException | DeadConnection):
                    log.exception("stream %s: unexpected error", self.name)
                delay = backoff.next()
                self._health.set(state="reconnecting", last_error=f"{type(exc).__name__}: {exc}")
                self._health.add(reconnects=1, dead_links=int(isinstance(exc, DeadConnection)))
                log.warning("stream %s: %s; reconnecting in %.2fs", self.name, exc, delay)
                self._stop_flag.wait(delay)
            finally:
                self._close(self._ws)
        self._health.set(state="stopped")

    def _connect(self) -> websocket.WebSocket:
        ws = websocket.WebSocket(skip_utf8_validation=True)
        ws.connect(self.url, timeout=self._cfg.connect_timeout_s)
        self.connections += 1
        return ws

    def _on_connect(self) -> None:
        pass

    def _flush(self, frames: list[bytes]) -> None:
        raise NotImplementedError

    def _read(self, ws: websocket.WebSocket, backoff: Backoff) -> None:
        frames: list[bytes] = []
        try:
            self._read_into(ws, backoff, frames)
        finally:
            # Whatever arrived before a drop is kept: a lost connection loses no received frame.
            self._flush(frames)

    def _read_into(self, ws: websocket.WebSocket, backoff: Backoff, frames: list[bytes]) -> None:
        # The hot loop: per frame only a poll, one recv and an append; the rest runs per batch.
        cfg = self._cfg
        opened = last_rx = time.monotonic()
        ping_sent: float | None = None
        ready = _Readiness(ws.sock)
        recv, text = ws.recv_data, websocket.ABNF.OPCODE_TEXT
        while not self._stop_flag.is_set():
            if frames:
                if not ready(0):
                    self._flush(frames)
                    last_rx, ping_sent = time.monotonic(), None
                    continue
            elif not ready(_POLL_S):
                now = time.monotonic()
                if now - opened > cfg.max_connection_age_s:
                    ws = self._rotate(ws)
                    ready = _Readiness(ws.sock)
                    recv = ws.recv_data
                    opened = last_rx = now
                    ping_sent = None
                elif ping_sent is None and now - last_rx > cfg.idle_ping_s:
                    ws.ping()
                    ping_sent = now
                elif ping_sent is not None and now - ping_sent > cfg.pong_timeout_s:
                    raise DeadConnection(f"no frame for {now - last_rx:.1f}s, ping unanswered")
                continue
            opcode, data = recv(True)
            if opcode == text:
                frames.append(data)
                if len(frames) >= MAX_BATCH_FRAMES:
                    self._flush(frames)
                if backoff.attempt:  # data flows: the next outage starts from the shortest delay
                    backoff.reset()
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                raise websocket.WebSocketConnectionClosedException("server closed the stream")
            else:  # ping or pong: the link is alive
                last_rx, ping_sent = time.monotonic(), None

    def _rotate(self, old: websocket.WebSocket) -> websocket.WebSocket:
        """Open the next connection before closing the old one; the backfiller covers the
        moment between them from the last held id."""
        fresh = self._connect()
        self._on_connect()
        self._close(old)
        self._ws = fresh
        log.info("stream %s rotated to a new connection", self.name)
        return fresh

    @staticmethod
    def _close(ws: websocket.WebSocket | None) -> None:
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:  # closing a broken socket may fail in many ways; it is gone
                ws.shutdown()


class StreamClient(_Connection):
    """The aggTrade streams of at most 200 symbols on one connection."""

    def __init__(
        self,
        symbols: list[str],
        store: TickStore,
        backfiller: Backfiller,
        health: FeedHealth,
        cfg: FeedConfig,
    ) -> None:
        if len(symbols) > MAX_STREAMS_PER_CONNECTION:
            raise ValueError("at most 200 streams per connection")
        url = f"{cfg.ws_url}/stream?streams=" + "/".join(stream_name(s) for s in symbols)
        super().__init__(f"stream-{symbols[0]}", url, health, cfg)
        self.symbols = symbols
        self._store, self._backfiller = store, backfiller
        self._decoder = FrameDecoder(symbols)

    def _on_connect(self) -> None:
        # Trades published while we were away are fetched from the last held id.
        for symbol in self.symbols:
            self._backfiller.request(symbol, tail=True)

    def _flush(self, frames: list[bytes]) -> None:
        """Decode and store the frames read so far; empties ``frames``."""
        if not frames:
            return
        decoded = self._decoder.decode(frames)
        frames.clear()
        latency = None
        if decoded.last_event_time_ms is not None:
            latency = time.time() * 1000 - decoded.last_event_time_ms
        dups = 0
        for symbol, batch in decoded.batches.items():
            result = self._store.ingest(batch)
            dups += result.duplicates
            if result.new_gaps:
                self._health.add(gaps_found=len(result.new_gaps))
                self._backfiller.request(symbol)
        self._health.on_frames(decoded.frames, dict(decoded.skipped), latency)
        if dups:
            self._health.add(duplicates=dups)


class MarkPriceClient(_Connection):
    """Mark price, index price and funding rate of the watched symbols, every second: one
    stream per symbol, or past ``MARK_ARRAY_FROM`` symbols the all-market array (one frame a
    second instead of one per symbol). Each connect also reads the funding intervals; while
    they cannot be read, every ``FUNDING_INFO_RETRY_S`` again."""

    def __init__(
        self, symbols: list[str], book: MarkBook, rest: RestClient, health: FeedHealth, cfg
    ) -> None:
        if len(symbols) >= MARK_ARRAY_FROM:
            streams = [ALL_MARKS_STREAM]
        else:
            streams = [mark_stream_name(s) for s in symbols]
        super().__init__(
            "mark-price", f"{cfg.ws_url}/stream?streams=" + "/".join(streams), health, cfg
        )
        self.symbols, self._book, self._rest = symbols, book, rest
        self._decoder = MarkDecoder(symbols)
        self._intervals_known, self._next_try = False, 0.0

    def _on_connect(self) -> None:
        self._fetch_intervals()  # intervals can change (Binance adjusts them): read each time

    def _fetch_intervals(self) -> None:
        try:
            self._book.set_intervals(self._rest.funding_intervals(self.symbols))
            self._intervals_known = True
            self._health.set(last_error=None)
        except RestError as exc:  # carry waits for the intervals; asked again shortly
            self._next_try = time.monotonic() + FUNDING_INFO_RETRY_S
            self._health.set(last_error=f"fundingInfo: {exc}")
            log.warning("funding intervals unavailable (%s); carry is not shown until known", exc)

    def _flush(self, frames: list[bytes]) -> None:
        if not frames:
            return
        marks, skipped = self._decoder.decode(frames)
        n = len(frames)
        frames.clear()
        self._book.update(marks)
        self._health.on_frames(n, dict(skipped), None)
        if not self._intervals_known and time.monotonic() >= self._next_try:
            self._fetch_intervals()


class BookTickerClient(_Connection):
    """Best bid and ask of the first ``QUOTE_SYMBOLS_MAX`` symbols into the quote book, one
    connection (``<symbol>@bookTicker``, routed under ``/public``)."""

    def __init__(self, symbols: list[str], book: QuoteBook, health: FeedHealth, cfg) -> None:
        streams = "/".join(book_stream_name(s) for s in symbols)
        super().__init__("book-ticker", f"{book_ws_url(cfg.ws_url)}/stream?streams={streams}",
                         health, cfg)  # fmt: skip
        self._book = book
        self._decoder = BookTickerDecoder(symbols)

    def _flush(self, frames: list[bytes]) -> None:
        if not frames:
            return
        quotes, skipped = self._decoder.decode(frames)
        n = len(frames)
        frames.clear()
        for q in quotes.values():
            self._book.ingest(q)
        self._health.on_frames(n, dict(skipped), None)


class _Readiness:
    """``ready(timeout_s)``: can a frame be read without blocking? TLS may hold decrypted bytes
    that poll cannot see, so those are checked first."""

    def __init__(self, sock) -> None:
        if sock is None:
            raise websocket.WebSocketConnectionClosedException("socket is closed")
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        self._pending = getattr(sock, "pending", None)

    def __call__(self, timeout_s: float) -> bool:
        if self._pending is not None and self._pending() > 0:
            return True
        return bool(self._poll.poll(timeout_s * 1000))


class Ingestor:
    """The live feed: stream clients (one per 200 symbols) and a backfiller over one store."""

    def __init__(self, store: TickStore, cfg: FeedConfig, rest: RestClient | None = None) -> None:
        self.store, self.cfg = store, cfg
        self.health = FeedHealth()
        self.rest = rest or RestClient(cfg.rest_url, cfg.rest_timeout_s)
        self.backfiller = Backfiller(store, self.rest, self.health, cfg)
        groups = [
            cfg.symbols[i : i + MAX_STREAMS_PER_CONNECTION]
            for i in range(0, len(cfg.symbols), MAX_STREAMS_PER_CONNECTION)
        ]
        self.streams = [StreamClient(g, store, self.backfiller, self.health, cfg) for g in groups]
        self.marks = MarkBook()
        self.mark_health = FeedHealth()  # apart: its frames are not trades
        self.mark_client = (
            MarkPriceClient(cfg.symbols, self.marks, self.rest, self.mark_health, cfg)
            if cfg.funding
            else None
        )
        quoted = cfg.symbols[:QUOTE_SYMBOLS_MAX] if cfg.quotes else []
        self.quotes = QuoteBook(quoted, cfg.keep_1s_s)
        self.quote_health = FeedHealth()
        self.quote_client = (
            BookTickerClient(quoted, self.quotes, self.quote_health, cfg) if quoted else None
        )

    @property
    def _threads(self) -> list[threading.Thread]:
        extra = [c for c in (self.mark_client, self.quote_client) if c is not None]
        return [*self.streams, *extra]

    def start(self) -> Ingestor:
        self.backfiller.start()
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        for t in self._threads:
            t.stop()
        self.backfiller.stop()
        for t in (*self._threads, self.backfiller):
            t.join(timeout_s)

    def settle(self, timeout_s: float) -> bool:
        """Wait (bounded) until no gap is open and the backfiller is idle; True if settled."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.backfiller.idle() and not any(self.store.gaps(s) for s in self.store.symbols):
                return True
            time.sleep(0.05)
        return False
