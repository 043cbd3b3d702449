"""The local exchange's WebSocket side: connections and subscriptions, publishing trades on the
exchange's clock (replay or simulation), the mark-price and bookTicker streams, and the faults
of the streams (drops, duplicates, junk, silence). A mixin of ``server.LocalExchange``."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection

from backend.exchange.routes import ROUTE_PREFIXES
from backend.exchange.sources import instrument
from backend.exchange.tape import merge_in_time
from backend.feed.wire import (
    ALL_MARKS_STREAM,
    book_stream_name,
    encode_agg_trade,
    encode_book_ticker,
    encode_combined,
    encode_mark_price,
    mark_stream_name,
    stream_name,
)
from backend.store.records import TradeBatch

log = logging.getLogger(__name__)
_WRITE_HIGH_WATER = 1 << 20
_STUCK_S = 5.0  # a client whose socket stays full this long is cut off


@dataclass(eq=False)
class _Sub:
    conn: ServerConnection
    streams: set[str]
    combined: bool
    opened: float = field(default_factory=time.monotonic)
    silent: bool = False


def _text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + struct.pack("!H", n) + payload
    return b"\x81\x7f" + struct.pack("!Q", n) + payload


class Streams:
    async def _handle(self, conn: ServerConnection) -> None:
        url = urlsplit(conn.request.path)
        path = url.path
        for prefix in ROUTE_PREFIXES:
            if path.startswith(prefix + "/"):
                path = path[len(prefix) :]
        combined = path.startswith("/stream")
        if combined:
            names = (parse_qs(url.query).get("streams") or [""])[0].split("/")
        else:
            names = [path[len("/ws/") :]] if path.startswith("/ws/") else []
        sub = _Sub(conn, {n for n in names if n}, combined)
        self._subs.add(sub)
        self.stats["connections"] += 1
        self._has_sub.set()
        try:
            async for message in conn:
                await self._control(sub, message)
        except Exception:  # a client gone without a close frame ends here too
            pass
        finally:
            self._subs.discard(sub)
            if not any(not s.silent for s in self._subs):
                self._has_sub.clear()

    async def _control(self, sub: _Sub, message: str | bytes) -> None:
        """SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, answered like Binance."""
        try:
            req = json.loads(message)
            method, req_id = req["method"], req.get("id")
            params = req.get("params", [])
        except (ValueError, KeyError, TypeError):
            await sub.conn.send(json.dumps({"error": {"code": 2, "msg": "Invalid request"}}))
            return
        if method == "SUBSCRIBE":
            sub.streams.update(params)
            self._has_sub.set()
            result = None
        elif method == "UNSUBSCRIBE":
            sub.streams.difference_update(params)
            result = None
        elif method == "LIST_SUBSCRIPTIONS":
            result = sorted(sub.streams)
        else:
            await sub.conn.send(
                json.dumps({"error": {"code": 1, "msg": "Unknown method"}, "id": req_id})
            )
            return
        await sub.conn.send(json.dumps({"result": result, "id": req_id}))

    async def _publish_loop(self) -> None:
        try:
            if self._sim is not None:
                await self._simulate()
            else:
                await self._replay()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a dead publisher must say so, not stop trades silently
            self.publish_error = f"{type(exc).__name__}: {exc}"
            log.exception("local exchange: publishing stopped")
            raise
        self.done.set()

    async def _replay(self) -> None:
        """Publish the tape on its own timeline: each trade leaves when the replay clock reaches
        its time (paced), or as fast as the clients read (``speed`` None). A looped replay
        moves each pass's ids and times on by one tape."""
        symbols = list(self._pub)
        tapes = [self._pub[s].tape for s in symbols]
        times = np.concatenate([t.trade_time_ms for t in tapes])
        owner = np.concatenate([np.full(len(t), i) for i, t in enumerate(tapes)])
        row = np.concatenate([np.arange(len(t)) for t in tapes])
        order = np.argsort(times, kind="stable")
        if not len(order):
            return
        sorted_times = times[order]
        span = self._pub[symbols[0]].time_span_ms
        # History (the tape before the start) is already public; streaming starts after it.
        pos = int(np.searchsorted(sorted_times, self._t_start, side="left"))
        while True:
            while pos < len(order):
                if self.speed is None:
                    await self._await_subscriber()
                    stop = pos + self._chunk
                else:
                    if self._wall0 is None:
                        await self._await_subscriber()
                        self._wall0 = time.monotonic()
                    shift = self.cycle * span
                    due = int(np.searchsorted(sorted_times, self.clock_ms() - shift, side="right"))
                    if due <= pos:  # nothing due: sleep until the next trade's time
                        wait_ms = int(sorted_times[pos]) + shift - self.clock_ms()
                        await asyncio.sleep(max(wait_ms, 1) / 1000 / self.speed)
                        continue
                    stop = min(due, pos + 8 * self._chunk)
                part = order[pos:stop]
                pos = stop
                per_symbol: dict[str, TradeBatch] = {}
                for i, s in enumerate(symbols):
                    rows = row[part[owner[part] == i]]
                    if len(rows):
                        index = rows + self.cycle * len(tapes[i])
                        per_symbol[s] = self._pub[s].take(index)
                        self._pub[s].count = int(index[-1]) + 1
                # Interleave the symbols in time order as the exchange would.
                await self._deliver(merge_in_time(per_symbol))
            if not self.loop or (self.cycles is not None and self.cycle + 1 >= self.cycles):
                return
            self.cycle += 1
            pos = 0

    async def _simulate(self) -> None:
        step_s = 0.05
        while True:
            await asyncio.sleep(step_s)
            fresh = self._sim.advance(int(time.time() * 1000))
            for s, batch in fresh.items():
                self._pub[s].extend(batch)
            if fresh:
                await self._deliver(merge_in_time(fresh))

    async def _mark_loop(self) -> None:
        """Each second, every symbol's mark price to the connections that asked for it (its
        own stream, or the all-market array)."""
        while True:
            await asyncio.sleep(1.0 - time.time() % 1.0)
            wanted = {n for sub in self._subs if not sub.silent for n in sub.streams}
            if not any("markPrice" in n for n in wanted):
                continue
            last = {}
            for sym, pub in self._pub.items():
                if pub.count:
                    last[sym] = float(pub.take(np.array([pub.count - 1])).price[0])
            marks = self.funding.marks(self.clock_ms(), last)
            data = [encode_mark_price(m) for m in marks]
            frames: dict[bool, list[bytes]] = {True: [], False: []}
            targets: list[tuple[str, int]] = []
            for m, d in zip(marks, data, strict=True):
                stream = mark_stream_name(m.symbol)
                if stream in wanted:
                    frames[True].append(_text_frame(encode_combined(stream, d)))
                    frames[False].append(_text_frame(d))
                    targets.append((stream, len(targets)))
            if ALL_MARKS_STREAM in wanted and data:
                arr = b"[" + b",".join(data) + b"]"
                frames[True].append(_text_frame(encode_combined(ALL_MARKS_STREAM, arr)))
                frames[False].append(_text_frame(arr))
                targets.append((ALL_MARKS_STREAM, len(targets)))
            self._write(frames, targets)

    async def _await_subscriber(self) -> None:
        """Until a connection watches a trade stream: a mark-price or book connection that
        comes first must not start the replay's clock (its first trades would go to no one)."""
        while not any(
            not s.silent and any(n.endswith("@aggTrade") for n in s.streams) for s in self._subs
        ):
            self._has_sub.clear()
            await self._has_sub.wait()

    async def _deliver(self, trades: list) -> None:
        """Send published trades to the live connections, applying the fault plan."""
        f = self.faults
        now_ms = int(time.time() * 1000)
        self._expire_old_connections()
        frames: dict[bool, list[bytes]] = {True: [], False: []}
        targets: list[tuple[str, int]] = []  # (stream, index into frames)
        raw_wanted = any(not s.combined for s in self._subs)
        for trade in trades:
            if self._skip_left > 0:
                self._skip_left -= 1
                continue
            data = encode_agg_trade(trade, now_ms)
            stream = stream_name(trade.symbol)
            copies = 2 if f.duplicate_every and (self._sent + 1) % f.duplicate_every == 0 else 1
            for _ in range(copies):
                frames[True].append(_text_frame(encode_combined(stream, data)))
                frames[False].append(_text_frame(data) if raw_wanted else b"")
                targets.append((stream, len(frames[True]) - 1))
            self._sent += 1
            if f.malformed_every and self._sent % f.malformed_every == 0:
                junk = _text_frame(next(self._junk))
                frames[True].append(junk)
                frames[False].append(junk)
                targets.append(("*", len(frames[True]) - 1))
            if f.silence_after and self._sent >= f.silence_after:
                f.silence_after = 0
                self._write(frames, targets)
                frames, targets = {True: [], False: []}, []
                for sub in self._subs:
                    sub.silent = True
                    sub.conn.transport.pause_reading()  # no pongs either
            if f.drop_every and self._sent % f.drop_every == 0:
                self._write(frames, targets)
                frames, targets = {True: [], False: []}, []
                self._drop_all()
        self._book_frames(trades, now_ms, frames, targets)
        self._write(frames, targets)
        await self._drain()

    def _book_frames(self, trades: list, now_ms: int, frames: dict, targets: list) -> None:
        """A best bid / ask around each symbol's last trade of the delivery, for connections
        watching its ``@bookTicker`` (a simulated book: the recording has no quotes). The ask
        is 1 tick above the bid 70 % of the time, 2 ticks 20 %, 3 ticks 10 %."""
        wanted = {n for sub in self._subs if not sub.silent for n in sub.streams}
        last = {t.symbol: t for t in trades}
        for symbol, trade in last.items():
            stream = book_stream_name(symbol)
            if stream not in wanted:
                continue
            tick = instrument(symbol).tick
            width = int(self._book_rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
            below = int(self._book_rng.integers(0, width + 1))
            bid = max(1, round(trade.price / tick) - below) * tick if tick else trade.price
            digits = max(0, -int(np.floor(np.log10(tick)))) if tick else 8
            bid, ask = round(bid, digits), round(bid + width * tick, digits)
            self._book_id += 1
            data = encode_book_ticker(symbol, self._book_id, now_ms, bid, 1.0, ask, 1.0)
            self.book_log.append((symbol, now_ms, bid, ask))
            frames[True].append(_text_frame(encode_combined(stream, data)))
            frames[False].append(_text_frame(data))
            targets.append((stream, len(frames[True]) - 1))

    def _write(self, frames: dict[bool, list[bytes]], targets: list[tuple[str, int]]) -> None:
        if not targets:
            return
        for sub in list(self._subs):
            if sub.silent:
                continue
            if sub.conn.transport.is_closing():
                self._subs.discard(sub)  # gone (a killed client): its handler ends on its own
                continue
            mine = frames[sub.combined]
            out = [mine[i] for stream, i in targets if stream == "*" or stream in sub.streams]
            if out:
                try:
                    sub.conn.transport.write(b"".join(out))
                except (RuntimeError, OSError):  # half-closed between the check and the write
                    self._subs.discard(sub)

    def _drop_all(self) -> None:
        self.stats["drops"] += 1
        self._skip_left = self.faults.skip_on_drop
        for sub in list(self._subs):
            if not sub.silent:
                # Abrupt for the client (no close frame), but what was sent is delivered first:
                # an RST would discard it in the client's kernel buffer, unseen, so the client
                # could not even know those trades existed.
                sub.conn.transport.close()
                self._subs.discard(sub)

    def _expire_old_connections(self) -> None:
        age = self.faults.max_connection_age_s
        if not age:
            return
        now = time.monotonic()
        for sub in list(self._subs):
            if now - sub.opened > age:
                self._subs.discard(sub)
                sub.conn.transport.close()

    async def _drain(self) -> None:
        """Backpressure: wait while any live client's socket buffer is full. A client that has
        not read for ``_STUCK_S`` (gone without a close the kernel has passed on yet) is cut
        off, so one dead peer cannot stall publication for everyone."""
        started = time.monotonic()
        while True:
            full = [
                s
                for s in self._subs
                if not s.silent
                and not s.conn.transport.is_closing()
                and s.conn.transport.get_write_buffer_size() > _WRITE_HIGH_WATER
            ]
            if not full:
                return
            if time.monotonic() - started > _STUCK_S:
                for sub in full:
                    log.warning("cutting off a client that stopped reading")
                    self._subs.discard(sub)
                    sub.conn.transport.abort()
                return
            await asyncio.sleep(0.001)
