"""One long-lived ingestion engine per process: a source (live Binance, or the local exchange
replaying the recorded sample or simulating), the tick store, and the SQLite sink."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace

from backend.collector import resume_from_storage
from backend.config import (
    DEFAULT_DB,
    DEFAULT_REST_URL,
    DEFAULT_SYMBOLS,
    DEFAULT_WS_URL,
    RESUME_MAX_AGE_S,
    SHARED_SAMPLE,
    ConfigError,
    FeedConfig,
)
from backend.csv_export import BarsCsv
from backend.history import HistoryLoader, HistoryOptions
from backend.ingestion import Ingestor
from backend.rest import unknown_symbols
from backend.state import TickStore
from backend.storage import BarStore

log = logging.getLogger(__name__)

SOURCES = ("live", "replay", "simulate")
# A looped replay streams the last hour of its recording by default; the rest is history.
REPLAY_LIVE_S = 3600


@dataclass(frozen=True)
class EngineOptions:
    source: str = "live"
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    ws_url: str = DEFAULT_WS_URL
    rest_url: str = DEFAULT_REST_URL
    db: str = ""  # empty: market.db for live data, market-<source>.db for replay and simulate
    replay_files: tuple[str, ...] = field(default_factory=tuple)
    replay_speed: float = 1.0
    replay_history_s: float | None = None  # None: all but the recording's last hour
    history_bars: int = 1000
    history_1s_s: float = 900.0
    tick_capacity: int = 2_000_000

    @property
    def history(self) -> HistoryOptions:
        return HistoryOptions(self.history_bars, self.history_1s_s).check()

    def with_source(self, source: str) -> EngineOptions:
        return replace(self, source=source)

    @property
    def db_path(self) -> str:
        """The SQLite file; replayed or simulated bars never mix with real ones by default."""
        if self.db:
            return self.db
        return DEFAULT_DB if self.source == "live" else f"market-{self.source}.db"


class Engine:
    """Starts on construction; ``stop()`` ends every thread it started."""

    def __init__(self, opts: EngineOptions) -> None:
        if opts.source not in SOURCES:
            raise ValueError(f"unknown source {opts.source!r}; choose one of {', '.join(SOURCES)}")
        self.opts = opts
        self.exchange = None
        self.db = BarStore(opts.db_path)  # first: a bad path fails before any thread starts
        try:
            self._start(opts)
        except BaseException:
            if self.exchange is not None:
                self.exchange.stop()
            self.db.close()
            raise

    def _start(self, opts: EngineOptions) -> None:
        ws_url, rest_url, symbols = opts.ws_url, opts.rest_url, list(opts.symbols)
        if opts.source != "live":
            self.exchange = self._local_exchange(opts)
            self.exchange.start()
            ws_url, rest_url = self.exchange.ws_url, self.exchange.rest_url
            missing = [s for s in symbols if s not in self.exchange.symbols]
            symbols = [s for s in symbols if s in self.exchange.symbols] or self.exchange.symbols
        self.unknown_symbols: list[str] = []
        if opts.source != "live" and opts.symbols != DEFAULT_SYMBOLS:
            self.unknown_symbols = missing  # asked for, not in the recording / simulation
        if opts.source == "live":
            self.unknown_symbols = unknown_symbols(rest_url, symbols, timeout_s=3.0) or []
            symbols = [s for s in symbols if s not in self.unknown_symbols]
            if not symbols:
                raise ConfigError(
                    f"none of the symbols {', '.join(opts.symbols)} is listed at {rest_url}"
                )
        self.symbols = symbols
        self.store = TickStore(symbols, opts.tick_capacity)
        self.cfg = FeedConfig(symbols=symbols, ws_url=ws_url, rest_url=rest_url)
        self.resumed: dict[str, int] = {}
        if opts.source == "live":
            # Only Binance's ids continue across runs; a replay or simulation starts over.
            self.resumed = resume_from_storage(
                self.store, self.db, RESUME_MAX_AGE_S, history_s=opts.history_1s_s
            )
        self.ingestor = Ingestor(self.store, self.cfg)
        self.history = HistoryLoader(
            self.store, self.ingestor.rest, self.ingestor.backfiller, opts.history, self.resumed
        )
        self.history.start()
        self.ingestor.start()
        self.bars_csv = BarsCsv()  # formatted CSV rows, shared by every browser session
        self.save_lock = threading.Lock()

    @staticmethod
    def _local_exchange(opts: EngineOptions):
        from backend.exchange.server import LocalExchange
        from backend.exchange.sources import Simulator, load_files

        if opts.source == "simulate":
            # Days before "now", enough for the 5m klines asked for, and the 1s history.
            history_s = opts.history_bars * 300 + opts.history_1s_s + 600
            return LocalExchange(simulator=Simulator(list(opts.symbols)), history_s=history_s)
        files = list(opts.replay_files) or [str(SHARED_SAMPLE)]
        trades = load_files(files)
        history_s = opts.replay_history_s
        if history_s is None:
            times = [
                int(b.trade_time_ms[-1] - b.trade_time_ms[0]) for b in trades.values() if len(b)
            ]
            history_s = max(0.0, max(times, default=0) / 1000 - REPLAY_LIVE_S)
        # Speed 0 replays once as fast as the client reads (tests, quick looks); a timed replay
        # loops so that a dashboard left open keeps moving.
        speed = opts.replay_speed or None
        return LocalExchange(
            trades=trades, speed=speed, loop=speed is not None, history_s=history_s
        )

    def history_status(self) -> dict:
        """Per symbol: how far back each timeframe reaches and the 1s history's progress, with
        the loader's note (``loaded``, a refusal, ...)."""
        notes = self.history.status
        return {s: (self.store.history_status(s), notes.get(s)) for s in self.symbols}

    def replay_pass(self) -> tuple[int, int] | None:
        """A looped replay's pass (1 = the recording as it was) and its time shift in ms."""
        if self.exchange is None or self.opts.source != "replay":
            return None
        return self.exchange.cycle + 1, self.exchange.time_shift_ms

    def stop(self) -> None:
        self.history.stop()
        self.ingestor.stop()
        if self.exchange is not None:
            self.exchange.stop()
        self.db.close()
