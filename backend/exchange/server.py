"""A local Binance-compatible exchange on 127.0.0.1: the aggTrade WebSocket streams and the REST
endpoints the client uses, from recorded trades or a simulation, with switchable faults.

One port serves both: WebSocket upgrades on ``/stream?streams=...``, ``/ws/<stream>`` and
``/ws`` (+ ``SUBSCRIBE``), also under the routed prefixes ``/market`` and ``/public``; plain HTTP
``GET /fapi/v1/aggTrades``, ``/fapi/v1/exchangeInfo`` (with each symbol's lot filters),
``/fapi/v1/ticker/24hr`` (all symbols), ``/fapi/v1/fundingInfo``, ``/fapi/v1/fundingRate``,
``/fapi/v1/ping`` and ``/fapi/v1/time``; and, every second, the mark-price
streams ``<symbol>@markPrice@1s`` and ``!markPrice@arr@1s`` (simulated funding, ``funding.py``);
with every delivery of trades, ``<symbol>@bookTicker`` (a simulated best bid / ask around the
last trade).

Trades are *published* on the exchange's clock (the replay's timeline at ``speed``, or as fast as
the connected clients read); REST serves every published trade, the streams deliver them only to
connections that are up, so a client that was down must backfill over REST, as on Binance.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from backend.exchange.funding import FundingSim
from backend.exchange.sources import Simulator, instrument
from backend.feed.rest import (
    AGG_TRADES_MAX_SPAN_MS,
    AGG_TRADES_WEIGHT,
    KLINES_MAX_LIMIT,
    klines_weight,
)
from backend.feed.wire import (
    ALL_MARKS_STREAM,
    book_stream_name,
    encode_agg_trade,
    encode_book_ticker,
    encode_combined,
    encode_funding_rates,
    encode_instrument,
    encode_mark_price,
    encode_rest_agg_trades,
    encode_rest_klines,
    mark_stream_name,
    stream_name,
)
from backend.store.records import TIMEFRAMES_MS, TRADE_COLUMNS, Bars, TradeBatch
from backend.store.resampling import SecondBars
from backend.store.timeframes import KLINE_TIMEFRAMES

log = logging.getLogger(__name__)


def connection_logger() -> logging.Logger:
    """The websockets server's logger. websockets logs every connection and HTTP answer at INFO:
    a page's backfill alone is ~100 lines. Its warnings and errors still show; a level set on
    ``backend.exchange.server.connections`` (DEBUG, say) is kept."""
    conn_log = log.getChild("connections")
    if conn_log.level == logging.NOTSET:
        conn_log.setLevel(logging.WARNING)
    return conn_log


WEIGHT_LIMIT_1M = 2400
_ROUTE_PREFIXES = ("/market", "/public")
_WRITE_HIGH_WATER = 1 << 20
_STUCK_S = 5.0  # a client whose socket stays full this long is cut off

# Junk the malformed-message fault sends, one kind after another.
JUNK_FRAMES = (
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCU',  # truncated
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":"x",'
    b'"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}}',  # wrong type
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","p":"1"}}',  # fields
    b'{"stream":"zzzusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"ZZZUSDT","a":1,'
    b'"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}}',  # unknown symbol
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,'
    b'"p":"0","q":"1","f":1,"l":1,"T":1,"m":true}}',  # zero price
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,'
    b'"p":"NaN","q":"1","f":1,"l":1,"T":1,"m":true}}',  # NaN price
    b'{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1"}}',
    b'{"result":null,"id":99}',  # a subscription reply
    b"not json at all",
)


@dataclass
class FaultPlan:
    """Fault switches; 0 means off. Counts are of trade messages sent on the streams."""

    drop_every: int = 0  # abort every connection (no close frame) after this many messages
    skip_on_drop: int = 0  # trades published while "down": never streamed, only REST has them
    duplicate_every: int = 0  # send every Nth trade message twice
    malformed_every: int = 0  # a junk frame after every Nth trade message
    refuse_connections: int = 0  # refuse this many WebSocket upgrades (HTTP 503)
    silence_after: int = 0  # after this many messages, connections go silent (no data, no pongs)
    rest_429: int = 0  # answer this many aggTrades requests with 429 + Retry-After
    rest_418: int = 0  # ... with 418 (IP ban) + Retry-After
    rest_5xx: int = 0  # ... with 503
    rest_down: bool = False  # every REST request fails with 503
    retry_after_s: int = 1
    max_connection_age_s: float = 0.0  # close connections older than this (Binance: 24 h)


class _Published:
    """One symbol's trades on the exchange and how many are public yet.

    A looped replay repeats the tape as cycle after cycle of new trades: ids, trade ids and
    times move on by one tape's span per cycle, so every published trade stays unique. The
    columns grow by doubling, so a simulation appending every 50 ms costs O(new trades).
    Klines are built from the published trades with the client's own kline semantics."""

    def __init__(self, batch: TradeBatch, time_span_ms: int = 0) -> None:
        self.symbol = batch.symbol
        self._cols = {f: getattr(batch, f) for f in TRADE_COLUMNS}
        self._n = len(batch)
        self.count = 0  # trades public so far, over all cycles
        self.first_id = int(batch.agg_id[0]) if len(batch) else 0
        self.time_span_ms = time_span_ms
        self.trade_span = (
            int(batch.last_trade_id.max() - batch.first_trade_id.min() + 1) if len(batch) else 0
        )
        self._klines = SecondBars(batch.symbol)
        self._in_klines = 0  # published trades folded into the kline bars

    @property
    def tape(self) -> TradeBatch:
        return TradeBatch(self.symbol, **{f: c[: self._n] for f, c in self._cols.items()})

    def extend(self, batch: TradeBatch) -> None:
        """Append simulated trades (public at once)."""
        if self.count == 0:
            self.first_id = int(batch.agg_id[0])
        need = self._n + len(batch)
        if need > len(self._cols["agg_id"]):
            cap = max(need, 2 * len(self._cols["agg_id"]), 4096)
            for f, col in self._cols.items():
                grown = np.empty(cap, col.dtype)
                grown[: self._n] = col[: self._n]
                self._cols[f] = grown
        for f in TRADE_COLUMNS:
            self._cols[f][self._n : need] = getattr(batch, f)
        self._n = need
        self.count = need

    def take(self, index: np.ndarray) -> TradeBatch:
        """Trades by global index (cycle * tape length + row)."""
        n = self._n
        cycle, row = np.divmod(np.asarray(index, dtype=np.int64), n)
        b = self.tape.take(row)
        if not cycle.any():
            return b
        return TradeBatch(
            b.symbol,
            agg_id=b.agg_id + cycle * n,
            price=b.price,
            qty=b.qty,
            first_trade_id=b.first_trade_id + cycle * self.trade_span,
            last_trade_id=b.last_trade_id + cycle * self.trade_span,
            trade_time_ms=b.trade_time_ms + cycle * self.time_span_ms,
            buyer_is_maker=b.buyer_is_maker,
        )

    def rows(self, from_id: int | None, limit: int) -> TradeBatch:
        if from_id is None:
            start = max(0, self.count - limit)
        else:
            start = min(max(0, from_id - self.first_id), self.count)
        return self.take(np.arange(start, min(start + limit, self.count)))

    def _time_at(self, i: int) -> int:
        cycle, row = divmod(i, self._n)
        return int(self._cols["trade_time_ms"][row]) + cycle * self.time_span_ms

    def price_at(self, t_ms: int) -> float:
        """The last published price at or before ``t_ms`` (the first one before any), NaN
        with none published."""
        if not self.count:
            return float("nan")
        i = max(0, self.index_at_time(t_ms + 1) - 1)
        return float(self.take(np.array([i])).price[0])

    def index_at_time(self, t_ms: int, among: int | None = None) -> int:
        """The first of the published trades (or of the first ``among`` trades of the tape)
        whose time is at or after ``t_ms``; their count if none is."""
        lo, hi = 0, self.count if among is None else among
        while lo < hi:  # times never decrease along the global index
            mid = (lo + hi) // 2
            if self._time_at(mid) < t_ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def rows_in_time(self, start_ms: int, end_ms: int, limit: int) -> TradeBatch:
        """Up to ``limit`` published trades with ``start_ms <= T <= end_ms``, oldest first."""
        lo = self.index_at_time(start_ms)
        hi = min(self.index_at_time(end_ms + 1), lo + limit)
        return self.take(np.arange(lo, hi))

    def quote_volume(self, start_ms: int, end_ms: int) -> float:
        """Sum of price x quantity of the published trades with ``start_ms <= T <= end_ms``."""
        lo, hi = self.index_at_time(start_ms), self.index_at_time(end_ms + 1)
        b = self.take(np.arange(lo, hi))
        return float(np.dot(b.price, b.qty))

    def klines(self, timeframe: str, start_ms, end_ms, limit: int) -> Bars:
        """Binance's selection: from ``start_ms`` forward, else the last ``limit`` up to
        ``end_ms`` (or up to now, the open kline included)."""
        if self._in_klines < self.count:
            self._klines.add(self.take(np.arange(self._in_klines, self.count)))
            self._in_klines = self.count
        step = TIMEFRAMES_MS[timeframe]
        if start_ms is not None:
            since = start_ms
        elif end_ms is not None:
            since = end_ms - limit * step
        else:
            since = None
        bars = self._klines.bars(timeframe, since_ms=since)
        keep = np.ones(len(bars), np.bool_)
        if start_ms is not None:
            keep &= bars.open_time >= start_ms
        if end_ms is not None:
            keep &= bars.open_time <= end_ms
        index = np.flatnonzero(keep)
        index = index[:limit] if start_ms is not None else index[max(0, len(index) - limit) :]
        return bars.slice(int(index[0]), int(index[-1]) + 1) if len(index) else bars.slice(0, 0)


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


class LocalExchange:
    """The local exchange, run on its own thread and event loop. ``start()`` returns the port.

    ``trades`` (recorded, per symbol) or ``simulator`` is the source. ``speed`` replays the
    recorded timeline that many times faster than real time; ``None`` publishes as fast as the
    connected clients read and pauses while none is connected.
    """

    def __init__(
        self,
        trades: dict[str, TradeBatch] | None = None,
        simulator: Simulator | None = None,
        speed: float | None = None,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval_s: float | None = 180.0,
        chunk: int = 256,
        loop: bool = False,
        cycles: int | None = None,
        history_s: float = 0.0,
        funding: FundingSim | None = None,
    ) -> None:
        if (trades is None) == (simulator is None):
            raise ValueError("give recorded trades or a simulator")
        self.host, self.port = host, port
        self.speed = speed
        self.faults = faults or FaultPlan()
        self.ping_interval_s = ping_interval_s
        self._chunk = chunk
        self._sim = simulator
        self.loop = loop
        self.cycles = cycles  # with loop: stop after this many passes (None: never)
        self.symbols = simulator.symbols if simulator else list(trades)
        self.funding = funding or FundingSim(self.symbols)
        span = 0
        self._t0 = self._t_start = 0
        if trades:
            times = np.concatenate([b.trade_time_ms for b in trades.values() if len(b)])
            span = int((times.max() - times.min()) // 1000 + 1) * 1000  # whole seconds
            self._t0 = int(times.min())
            # The tape before the replay start is history: public over REST from the start.
            self._t_start = self._t0 + int(history_s * 1000)
        self._pub = {
            s: _Published(trades[s] if trades else TradeBatch.from_trades(s, []), span)
            for s in self.symbols
        }
        if trades:
            for pub in self._pub.values():
                pub.count = pub.index_at_time(self._t_start, among=len(pub.tape))
        elif history_s > 0:
            for s, batch in simulator.history(int(time.time() * 1000), int(history_s)).items():
                self._pub[s].extend(batch)
        self._subs: set[_Sub] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._has_sub: asyncio.Event | None = None
        self._sent = 0
        self._skip_left = 0
        self._weight: dict[int, int] = {}
        self._junk = itertools.cycle(JUNK_FRAMES)
        self._book_rng = np.random.default_rng(5)
        self._book_id = 0
        # (symbol, time ms, bid, ask) of the recent book updates sent, for tests.
        self.book_log: deque[tuple[str, int, float, float]] = deque(maxlen=100_000)
        self._wall0: float | None = None  # when a paced replay's clock started
        self.cycle = 0  # the replay's current pass (0-based)
        self.publish_error: str | None = None
        self.start_error: OSError | None = None
        self.done = threading.Event()  # set when a recorded tape has been fully published
        self.stats = {"connections": 0, "refused": 0, "drops": 0, "rest_requests": 0}
        # (monotonic time, path, status) of recent REST requests, for tests of client manners.
        self.rest_log: deque[tuple[float, str, int]] = deque(maxlen=10_000)

    def clock_ms(self) -> int:
        """The exchange's time (``/fapi/v1/time``): a replay's own timeline, shifted by each
        pass; real time for the simulation."""
        if self._sim is not None:
            return int(time.time() * 1000)
        if self.speed is None or self._wall0 is None:
            last = [p._time_at(p.count - 1) for p in self._pub.values() if p.count]
            return max(last, default=self._t_start)
        return self._t_start + int((time.monotonic() - self._wall0) * 1000 * self.speed)

    @property
    def time_shift_ms(self) -> int:
        """How far this pass's trade times are moved from the recording's."""
        return self.cycle * next(iter(self._pub.values())).time_span_ms if self._pub else 0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> int:
        """Listen and publish; ``OSError`` in one line when it cannot listen."""
        self._thread = threading.Thread(target=self._run, name="local-exchange", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("local exchange did not start")
        if self.start_error is not None:
            reason = self.start_error.strerror or self.start_error
            raise OSError(f"cannot listen on {self.host}:{self.port}: {reason}")
        return self.port

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop and self._stop and not self._loop.is_closed():  # a second stop is a no-op
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(timeout_s)

    def __enter__(self) -> LocalExchange:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/market"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def published(self, symbol: str) -> TradeBatch:
        """Every trade of ``symbol`` the exchange has made public so far (the reference)."""
        pub = self._pub[symbol]
        return pub.take(np.arange(pub.count))

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except OSError as exc:  # the port is taken, the address not ours: said by start()
            self.start_error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._has_sub = asyncio.Event()
        async with serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            ping_interval=self.ping_interval_s,
            close_timeout=0.5,  # at shutdown, do not wait on clients that are already gone
            max_size=2**16,
            logger=connection_logger(),
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            publisher = asyncio.create_task(self._publish_loop())
            marks = asyncio.create_task(self._mark_loop())
            await self._stop.wait()
            publisher.cancel()
            marks.cancel()
            for sub in list(self._subs):
                sub.conn.transport.abort()

    # --- HTTP: REST endpoints and refusals ----------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        for prefix in _ROUTE_PREFIXES:
            if path.startswith(prefix + "/"):
                path = path[len(prefix) :]
        if path.startswith("/fapi/"):
            return self._rest(path, parse_qs(url.query))
        if self.faults.refuse_connections > 0:
            self.faults.refuse_connections -= 1
            self.stats["refused"] += 1
            return _json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"msg": "refused (fault)"})
        if not (path.startswith("/ws") or path.startswith("/stream")):
            return _json_response(HTTPStatus.NOT_FOUND, {"code": -1, "msg": "unknown path"})
        return None

    def _rest(self, path: str, query: dict[str, list[str]]) -> Response:
        response = self._answer(path, query)
        self.rest_log.append((time.monotonic(), path, response.status_code))
        return response

    def _answer(self, path: str, query: dict[str, list[str]]) -> Response:
        self.stats["rest_requests"] += 1
        f = self.faults
        if f.rest_down:
            return _json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"msg": "down (fault)"})
        if path == "/fapi/v1/ping":
            return self._weighed(1, _json_response(HTTPStatus.OK, {}))
        if path == "/fapi/v1/time":
            return self._weighed(1, _json_response(HTTPStatus.OK, {"serverTime": self.clock_ms()}))
        if path == "/fapi/v1/exchangeInfo":
            return self._weighed(1, _json_response(HTTPStatus.OK, self._exchange_info()))
        if path == "/fapi/v1/fundingInfo":
            return _json_response(HTTPStatus.OK, self.funding.funding_info())
        if path == "/fapi/v1/fundingRate":
            return self._funding_rates(query)
        if path == "/fapi/v1/ticker/24hr" and "symbol" not in query:
            return self._weighed(40, _json_response(HTTPStatus.OK, self._tickers_24hr()))
        if path not in ("/fapi/v1/aggTrades", "/fapi/v1/klines"):
            return _json_response(HTTPStatus.NOT_FOUND, {"code": -1, "msg": "unknown endpoint"})
        for attr, status in (("rest_418", 418), ("rest_429", 429), ("rest_5xx", 503)):
            if getattr(f, attr) > 0:
                setattr(f, attr, getattr(f, attr) - 1)
                headers = {"Retry-After": str(f.retry_after_s)} if status != 503 else {}
                return _json_response(status, {"code": -1003, "msg": "fault"}, headers)
        symbol = (query.get("symbol") or [""])[0].upper()
        if symbol not in self._pub:
            return _json_response(HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."})
        try:
            args = {k: int(query[k][0]) for k in ("fromId", "startTime", "endTime") if k in query}
            limit = int((query.get("limit") or ["500"])[0])
        except ValueError:
            return _json_response(HTTPStatus.BAD_REQUEST, {"code": -1100, "msg": "Illegal chars."})
        if path == "/fapi/v1/klines":
            return self._klines(self._pub[symbol], (query.get("interval") or [""])[0], args, limit)
        return self._agg_trades(self._pub[symbol], args, min(max(limit, 1), 1000))

    def _agg_trades(self, pub: _Published, args: dict[str, int], limit: int) -> Response:
        start, end = args.get("startTime"), args.get("endTime")
        if "fromId" in args:
            rows = pub.rows(args["fromId"], limit)
        elif start is not None or end is not None:
            if start is None or end is None or not 0 <= end - start < AGG_TRADES_MAX_SPAN_MS:
                msg = "More than 1 hours between startTime and endTime."
                return _json_response(HTTPStatus.BAD_REQUEST, {"code": -1127, "msg": msg})
            rows = pub.rows_in_time(start, end, limit)
        else:
            rows = pub.rows(None, limit)
        body = encode_rest_agg_trades(rows.trades())
        return self._weighed(AGG_TRADES_WEIGHT, _response(HTTPStatus.OK, body))

    def _klines(self, pub: _Published, interval: str, args: dict[str, int], limit: int):
        if interval not in KLINE_TIMEFRAMES:  # all this exchange serves (Binance: more, not 1s)
            return _json_response(
                HTTPStatus.BAD_REQUEST, {"code": -1120, "msg": "Invalid interval."}
            )
        limit = min(max(limit, 1), KLINES_MAX_LIMIT)
        bars = pub.klines(interval, args.get("startTime"), args.get("endTime"), limit)
        return self._weighed(
            klines_weight(limit), _response(HTTPStatus.OK, encode_rest_klines(bars))
        )

    def _funding_rates(self, query: dict[str, list[str]]) -> Response:
        """``GET /fapi/v1/fundingRate``: without times, the latest ``limit`` (default 100)."""
        symbol = (query.get("symbol") or [""])[0].upper()
        if symbol not in self._pub:
            return _json_response(HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."})
        try:
            limit = min(max(int((query.get("limit") or ["100"])[0]), 1), 1000)
            end = int((query.get("endTime") or [str(self.clock_ms())])[0])
            hours = self.funding.intervals_h[symbol]
            start = int((query.get("startTime") or [str(end - limit * hours * 3_600_000)])[0])
        except ValueError:
            return _json_response(HTTPStatus.BAD_REQUEST, {"code": -1100, "msg": "Illegal chars."})
        events = self.funding.history(symbol, start, min(end, self.clock_ms()), limit)
        pub = self._pub[symbol]
        marks = np.array([pub.price_at(int(t)) for t in events.time_ms], dtype=np.float64)
        return _response(HTTPStatus.OK, encode_funding_rates(events, marks))

    def _weighed(self, weight: int, response: Response) -> Response:
        """Count the request's weight in this minute and say the total, as Binance does."""
        minute = int(time.time() // 60)
        self._weight[minute] = self._weight.get(minute, 0) + weight
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self._weight[minute])
        return response

    def _tickers_24hr(self) -> list[dict]:
        """Every symbol's rolling 24 h statistics; only what the client reads is computed
        (quote volume, trade count, last price), the rest as Binance names it, from trades."""
        now = self.clock_ms()
        out = []
        for s, pub in self._pub.items():
            last = pub.rows(None, 1)
            out.append(
                {
                    "symbol": s,
                    "lastPrice": f"{float(last.price[0]):.8f}" if len(last) else "0",
                    "quoteVolume": f"{pub.quote_volume(now - 86_400_000, now):.8f}",
                    "openTime": now - 86_400_000,
                    "closeTime": now,
                }
            )
        return out

    def _exchange_info(self) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": WEIGHT_LIMIT_1M,
                },
            ],
            "symbols": [
                encode_instrument(
                    instrument(s),
                    pair=s,
                    contractType="PERPETUAL",
                    status="TRADING",
                    baseAsset=s.removesuffix("USDT"),
                    quoteAsset="USDT",
                )
                for s in self._pub
            ],
        }

    # --- WebSocket connections ---------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        url = urlsplit(conn.request.path)
        path = url.path
        for prefix in _ROUTE_PREFIXES:
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

    # --- publishing --------------------------------------------------------------------------

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
                await self._deliver(_merge_in_time(per_symbol))
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
                await self._deliver(_merge_in_time(fresh))

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


def _merge_in_time(per_symbol: dict[str, TradeBatch]) -> list:
    trades = [t for batch in per_symbol.values() for t in batch.trades()]
    trades.sort(key=lambda t: t.trade_time_ms)
    return trades


def _json_response(status: int, obj, headers: dict[str, str] | None = None) -> Response:
    return _response(status, json.dumps(obj).encode(), headers)


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    h = Headers()
    h["Content-Type"] = "application/json"
    h["Content-Length"] = str(len(body))
    h["Connection"] = "close"
    for k, v in (headers or {}).items():
        h[k] = v
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "I'm a teapot" if status == 418 else "Error"
    return Response(status, reason, h, body)
