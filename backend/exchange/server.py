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
import logging
import threading
import time
from collections import deque

import numpy as np
from websockets.asyncio.server import serve

from backend.exchange.faults import JUNK_FRAMES, FaultPlan  # noqa: F401 - re-exported
from backend.exchange.funding import FundingSim
from backend.exchange.routes import WEIGHT_LIMIT_1M, RestRoutes  # noqa: F401 - re-exported
from backend.exchange.sources import Simulator
from backend.exchange.streams import Streams, _Sub
from backend.exchange.tape import Published
from backend.exchange.vision import VisionFaults, VisionTree
from backend.lru import Lru
from backend.store.records import TradeBatch

log = logging.getLogger(__name__)


def connection_logger() -> logging.Logger:
    """The websockets server's logger. websockets logs every connection and HTTP answer at INFO:
    a page's backfill alone is ~100 lines. Its warnings and errors still show; a level set on
    ``backend.exchange.server.connections`` (DEBUG, say) is kept."""
    conn_log = log.getChild("connections")
    if conn_log.level == logging.NOTSET:
        conn_log.setLevel(logging.WARNING)
    return conn_log


class LocalExchange(RestRoutes, Streams, VisionTree):
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
        deep_days: float = 0.0,
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
            s: Published(trades[s] if trades else TradeBatch.from_trades(s, []), span)
            for s in self.symbols
        }
        if trades:
            for pub in self._pub.values():
                pub.count = pub.index_at_time(self._t_start, among=len(pub.tape))
        else:
            now_ms = int(time.time() * 1000)
            if deep_days > 0:  # months of 1m bars before the trades (klines, vision files)
                deep = simulator.deep_minutes(now_ms - int(history_s * 1000), int(deep_days * 1440))
                for symbol, bars in deep.items():
                    self._pub[symbol].deep = bars
            if history_s > 0:
                for symbol, batch in simulator.history(now_ms, int(history_s)).items():
                    self._pub[symbol].extend(batch)
        self.vision_faults = VisionFaults()
        self._vision_files = Lru(1024)  # zips of periods that are over, as served
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
        # (symbol, interval, limit, bars answered) of each klines request, for tests.
        self.kline_log: deque[tuple[str, str, int, int]] = deque(maxlen=10_000)

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
    # --- WebSocket connections ---------------------------------------------------------------

    # --- publishing --------------------------------------------------------------------------
