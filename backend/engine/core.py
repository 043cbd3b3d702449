"""One long-lived ingestion engine per process: a source (live Binance, or the local exchange
replaying the recorded sample or simulating), the tick store, and the SQLite sink."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from backend.alerts.rules import RulesError, load_rules
from backend.config import (
    DEFAULT_KEEP_1S_H,
    DEFAULT_REST_URL,
    DEFAULT_SYMBOLS,
    DEFAULT_WS_URL,
    RESUME_MAX_AGE_S,
    ConfigError,
    FeedConfig,
    keep_1s_seconds,
    market_pick,
)
from backend.engine.alerting import AlertService
from backend.engine.csv_export import BarsCsv
from backend.engine.db_source import DbPoller, StoredBars
from backend.engine.pair_service import PairService, window_bars
from backend.engine.pairs import (
    ExecutionContext,
    MarketScan,
    PairCarry,
    pair_carry,
    scan_market,
    with_carry,
)
from backend.engine.sources import default_db, source
from backend.feed.build import build_feed
from backend.feed.history import HistoryOptions
from backend.feed.rest import RestError, pick_symbols, unknown_symbols
from backend.feed.streams import HealthSnapshot
from backend.lru import Lru
from backend.storage import StorageError, open_store
from backend.storage.persistence import resume_from_storage, save_all
from backend.store.records import TIMEFRAMES_MS, Bars, Coverage, FundingSnapshot
from backend.store.tick_store import StoreSnapshot

log = logging.getLogger(__name__)


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
    tick_capacity: int = 2_000_000  # per symbol, at most (config.tick_capacity shares a budget)
    keep_1s_h: float = DEFAULT_KEEP_1S_H
    rules: str = ""  # an alert rules file evaluated here (engine.alerts); empty: none

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
        return default_db(self.source)


@dataclass(frozen=True)
class EngineHealth:
    source: str
    symbols: tuple[str, ...]
    unknown_symbols: tuple[str, ...]  # asked for, not streamed (not listed / not in the data)
    feed: HealthSnapshot
    mark_feed: HealthSnapshot | None  # the mark-price connection (None when not streamed)
    store: StoreSnapshot
    clock_offset_ms: float | None  # exchange clock minus ours (live); None if unknown
    replay_pass: tuple[int, int] | None  # (pass, time shift ms) of a looped replay
    ws_url: str
    rest_url: str
    db_path: str  # the SQLite file, or the PostgreSQL URL without its password
    collectors: tuple = ()  # --source db: records.CollectorHealth of each collected symbol


# Funding rates loaded at start reach this far back (the longest history of 1,000 5m bars).
FUNDING_HISTORY_MS = 7 * 86_400_000


class MarketRules(threading.Thread):
    """One pass at start: each symbol's lot rules (``exchangeInfo``) and the funding rates it
    was charged over ``FUNDING_HISTORY_MS`` (``fundingRate``, into the mark book). A failure
    is logged and left: the backtest then says which rules and rates it lacks."""

    def __init__(self, rest, symbols: list[str], marks, db=None) -> None:
        super().__init__(name="market-rules", daemon=True)
        self._rest, self._symbols, self._marks = rest, list(symbols), marks
        self._db = db  # funding rates imported earlier (python -m backend import)
        self._stop_event = threading.Event()
        self.instruments: dict = {}
        self.error: str | None = None

    def stop(self) -> None:
        self._stop_event.set()
        self.join(15)

    def run(self) -> None:
        try:
            listed = self._rest.instruments()
            self.instruments = {s: listed[s] for s in self._symbols if s in listed}
            now = self._rest.server_time_ms()
            for symbol in self._symbols:
                if self._stop_event.is_set():
                    return
                if self._db is not None:
                    self._marks.add_history(self._db.load_funding(symbol))
                self._marks.add_history(
                    self._rest.funding_rates(symbol, now - FUNDING_HISTORY_MS, now)
                )
        except (RestError, StorageError) as exc:
            self.error = str(exc)
            log.warning("market rules or funding history unavailable: %s", exc)


class Engine:
    """Starts on construction; ``stop()`` ends every thread it started. The page uses only the
    methods under "the page's only door"."""

    def __init__(self, opts: EngineOptions) -> None:
        self.spec = source(opts.source)  # an unknown source: ValueError naming the known ones
        self.opts = opts
        self.exchange = None
        self.db = open_store(opts.db_path)  # first: a bad path fails before any thread starts
        try:
            self._start(opts)
        except BaseException:
            if self.exchange is not None:
                self.exchange.stop()
            self.db.close()
            raise

    def _start(self, opts: EngineOptions) -> None:
        if opts.rules:
            _check_rules(opts.rules)  # before any thread: a bad file is one line
        if not self.spec.feed:
            self._start_from_db(opts)
        else:
            self._start_feed(opts)
        self.bars_csv = BarsCsv()  # formatted CSV rows, shared by every browser session
        self.save_lock = threading.Lock()
        self._cache = Lru(32)  # slow pair figures and scans, per closed bar
        # Kalman block fits: a block's fit never changes, so each is made once (~0.3 s).
        self.fit_memo = Lru(4096)
        # Every figure of a pair, for the engine's data and uploads alike, cached per closed bar.
        self.pairs = PairService(self.cached, self.fit_memo)
        self.alerts: AlertService | None = None
        if opts.rules:  # evaluated here unless a watcher holds the rule set: then shown only
            self.alerts = AlertService(self, self.db, opts.rules).start(claim="optional")

    def _start_from_db(self, opts: EngineOptions) -> None:
        """No feed: the bars collectors write to ``--db``, read as they land. Without
        ``--symbols`` every symbol the database holds; named ones it lacks are named."""
        stored = self.db.symbols()
        symbols = list(opts.symbols) if opts.symbols != DEFAULT_SYMBOLS else sorted(stored)
        if not symbols:
            raise ConfigError(f"{self.db.path} holds no bars yet: start a collector first")
        self.unknown_symbols = [s for s in symbols if s not in stored]
        self.symbols = symbols
        self.cfg = FeedConfig(symbols=symbols, ws_url="", rest_url="", funding=False, quotes=False)
        self.store = StoredBars(symbols)
        self.ingestor = DbPoller(self.store, self.db, keep_1s_seconds(opts.keep_1s_h))
        self.history = self.ingestor.history
        self.ingestor.poll()  # the page opens with what is there
        self.ingestor.start()

    def _start_feed(self, opts: EngineOptions) -> None:
        ws_url, rest_url, symbols = opts.ws_url, opts.rest_url, list(opts.symbols)
        if self.spec.local_exchange is not None:
            self.exchange = self.spec.local_exchange(opts)
            self.exchange.start()
            ws_url, rest_url = self.exchange.ws_url, self.exchange.rest_url
            missing = [s for s in symbols if s not in self.exchange.symbols]
            symbols = [s for s in symbols if s in self.exchange.symbols] or self.exchange.symbols
        self.unknown_symbols: list[str] = []
        if self.exchange is not None and opts.symbols != DEFAULT_SYMBOLS:
            self.unknown_symbols = missing  # asked for, not in the recording / simulation
        picked, top = market_pick(symbols[0]) if len(symbols) == 1 else (False, None)
        if picked:  # "top:N" / "all": by 24 h quote volume, now (app.py allows it live only)
            symbols = pick_symbols(rest_url, top)
            log.info("picked %d symbols by 24 h quote volume: %s", len(symbols), symbols[:10])
        elif self.spec.listed_symbols:
            self.unknown_symbols = unknown_symbols(rest_url, symbols, timeout_s=3.0) or []
            symbols = [s for s in symbols if s not in self.unknown_symbols]
            if not symbols:
                raise ConfigError(
                    f"none of the symbols {', '.join(opts.symbols)} is listed at {rest_url}"
                )
        self.symbols = symbols
        self.cfg = FeedConfig(
            symbols=symbols,
            ws_url=ws_url,
            rest_url=rest_url,
            tick_capacity=opts.tick_capacity,
            keep_1s_s=keep_1s_seconds(opts.keep_1s_h),
        )
        resume = None
        if self.spec.ids_continue:  # only Binance's ids continue across runs
            resume = partial(
                resume_from_storage, db=self.db, max_age_s=RESUME_MAX_AGE_S,
                history_s=opts.history_1s_s, history_bars=opts.history_bars,
            )  # fmt: skip
        stored = self.db.load if self.spec.ids_continue else None  # real data only
        stored_db = self.db if self.spec.ids_continue else None
        feed = build_feed(self.cfg, opts.history, resume, stored).start()
        self.store, self.ingestor, self.history = feed.store, feed.ingestor, feed.history
        self.resumed = feed.resumed
        self._rules = MarketRules(self.ingestor.rest, symbols, self.ingestor.marks, stored_db)
        self._rules.start()

    # --- the page's only door into the backend ---------------------------------------------

    def health(self) -> EngineHealth:
        """Everything the page shows about the feed, in one immutable snapshot."""
        return EngineHealth(
            source=self.opts.source,
            symbols=tuple(self.symbols),
            unknown_symbols=tuple(self.unknown_symbols),
            feed=self.ingestor.health.snapshot(),
            mark_feed=(self.ingestor.mark_health.snapshot() if self.ingestor.mark_client else None),
            store=self.store.snapshot(),
            clock_offset_ms=self.history.clock_offset_ms,
            replay_pass=self.replay_pass(),
            ws_url=self.cfg.ws_url,
            rest_url=self.cfg.rest_url,
            db_path=self.db.path,  # a PostgreSQL URL without its password
            collectors=getattr(self.ingestor, "collectors", ()),
        )

    @property
    def timeframes(self) -> list[str]:
        return list(TIMEFRAMES_MS)

    def bars(self, symbol: str, timeframe: str, last: int | None = None) -> Bars:
        """The last ``last`` bars (or all) of one symbol, sliced under the store's lock."""
        return self.store.bars(symbol, timeframe, last=last)

    def csv(self, timeframe: str) -> bytes:
        """Every bar of ``timeframe`` of every symbol as CSV, as the store holds them now."""
        return self.bars_csv.export(self.store.bars(s, timeframe) for s in self.symbols)

    def save(self, progress=None) -> int:
        """Every bar and the resume points in one transaction; rows inserted or changed."""
        if not self.spec.feed:
            return 0  # the bars came from the database: the collectors save them
        with self.save_lock:
            return save_all(self.store, self.db, progress, resume=self.spec.ids_continue)

    def cached(self, key, compute):
        """``compute()`` once per ``key`` for every viewer of this engine (the slow pair
        statistics, keyed by pair, parameters and last closed bar); the newest 32 are kept."""
        missing = object()
        value = self._cache.get(key, missing)
        if value is missing:
            value = compute()  # outside the lock: other viewers' reads go on meanwhile
            self._cache[key] = value
        return value

    def scan(
        self, timeframe: str, lookback: int, adf_lag: int = 1, end_ms: int | None = None
    ) -> MarketScan:
        """Every pair of the streamed symbols ranked (``pairs.scan_market``), computed once
        per closed bar for every viewer; ``end_ms``: on the ``lookback`` bars opened by then."""
        bars = window_bars(self, self.symbols, timeframe, lookback + 2, end_ms)
        newest = max((int(b.open_time[-1]) for b in bars.values() if len(b)), default=None)
        is_open = True  # the newest bar forms; a window ending before it holds closed bars
        if end_ms is not None:
            latest = (self.store.bars(s, timeframe, last=1) for s in self.symbols)
            top = max((int(b.open_time[-1]) for b in latest if len(b)), default=None)
            is_open = top is None or end_ms >= top
        key = ("scan", timeframe, lookback, adf_lag, newest, is_open)
        scan = self.cached(
            key, lambda: scan_market(bars, timeframe, lookback, adf_lag, newest_is_open=is_open)
        )
        return with_carry(scan, self.funding())  # rates move every second: not cached

    def funding(self) -> FundingSnapshot:
        """The latest mark price, index and funding rate of each symbol, and its interval."""
        return self.ingestor.marks.snapshot()

    @property
    def funding_source(self) -> str:
        """Where funding, mark prices and basis come from: Binance ("recorded"), or the local
        exchange's simulation behind a replay or a simulated market ("simulated"); a
        ``--source db`` page streams none ("none")."""
        return self.spec.funding_source

    # The newest bar of a feed (or of the bars collectors write) is still forming.
    newest_is_open = True
    key = "engine"  # names the engine's data in the shared caches (uploads name their files)

    def execution_context(self, symbols, timeframe: str) -> ExecutionContext:
        """What the backtest of ``symbols`` on ``timeframe`` knows beyond the bars: lot rules
        and funding charged (loaded at start, then recorded from the mark-price stream)."""
        rules = getattr(self, "_rules", None)
        if rules is None:  # --source db: no exchange to ask
            return ExecutionContext(funding_source=self.funding_source)
        instruments = {s: rules.instruments[s] for s in symbols if s in rules.instruments}
        funding = {s: self.ingestor.marks.funding_events(s) for s in symbols}
        version = self.execution_version(symbols)
        quotes = {}
        for s in symbols:
            newest = self.store.bars(s, timeframe, last=1)
            if len(newest):
                quotes[s] = self.ingestor.quotes.bars(s, timeframe, int(newest.open_time[-1]))
        return ExecutionContext(instruments, funding, quotes, self.funding_source, version)

    def execution_version(self, symbols) -> tuple:
        """Changes when the lot rules or the funding charged of ``symbols`` do: a cache key,
        cheap to ask every refresh. Quotes of closed bars are final at their close, which the
        bars' own key covers."""
        rules = getattr(self, "_rules", None)
        if rules is None:
            return ()
        return (
            sum(s in rules.instruments for s in symbols),
            self.ingestor.marks.funding_count(symbols),
        )

    def carry(self, y: str, x: str, beta: float) -> PairCarry | None:
        """Funding carry of long y / short ``beta`` x and the reverse (``pairs.pair_carry``)."""
        return pair_carry(self.funding(), y, x, beta)

    def alert_history(self, limit: int = 1000) -> list:
        """The newest ``limit`` alerts the store holds (every rule set: a dashboard beside
        headless watchers, or ``--source db``, shows theirs too), newest first."""
        return self.db.alerts(None, limit)

    def history_ready(self, symbols) -> bool:
        """Whether the history loaded at start is in for ``symbols``: the klines, and the 1s
        backfill (1s bars after its start are partial until it completes). Alerts wait for
        it: a figure of a partial bar is not a crossing. Stored bars are whole."""
        if not self.spec.feed:
            return True
        done = getattr(self.history, "done", None)
        if done is not None and not done.is_set():
            return False
        for symbol in symbols:
            status = self.store.history_status(symbol)
            if status.seconds_from_ms is not None and (status.seconds_filled or 0.0) < 1.0:
                return False
        return True

    def coverage(self, timeframe: str) -> Coverage:
        """How far back ``timeframe`` reaches per symbol, and the 1s history's progress."""
        starts, notes, filling = {}, [], []
        loader_notes = self.history.status
        for symbol in self.symbols:
            status = self.store.history_status(symbol)
            note = loader_notes.get(symbol)
            reach = status.klines_from_ms.get(timeframe) or status.seconds_from_ms
            if reach is not None:
                starts[symbol] = reach
            if status.seconds_filled is not None and status.seconds_filled < 1.0:
                filling.append(f"{symbol} {status.seconds_filled:.0%}")
            elif status.seconds_from_ms is not None and status.seconds_filled is None:
                filling.append(f"{symbol} loading")
            if note and note not in ("loaded", "waiting", "klines loaded"):
                notes.append(f"{symbol}: {note}")
        if self.history.error:
            notes.append(f"⚠️ history: {self.history.error}")
        if filling:
            notes.append(
                "⏳ 1s history still loading (bars after its start are partial until it is in): "
                + ", ".join(filling)
            )
        label = (
            f"{timeframe} history (klines, then bars built from trades)"
            if timeframe != "1s"
            else "1s history (aggregate trades)"
        )
        return Coverage(label, starts, tuple(notes))

    def replay_pass(self) -> tuple[int, int] | None:
        """A looped replay's pass (1 = the recording as it was) and its time shift in ms."""
        if self.exchange is None or self.opts.source != "replay":
            return None
        return self.exchange.cycle + 1, self.exchange.time_shift_ms

    def stop(self) -> None:
        if getattr(self, "alerts", None) is not None:
            self.alerts.stop()
        if getattr(self, "_rules", None) is not None:
            self._rules.stop()
        self.history.stop()
        self.ingestor.stop()
        if self.exchange is not None:
            self.exchange.stop()
        self.db.close()


def _check_rules(path: str) -> None:
    """A rules file the engine can use: a missing one is created empty (the page's form adds
    rules to it); a bad one is a ``ConfigError`` naming its line and key."""
    rules = Path(path)
    try:
        if not rules.exists():
            if rules.suffix != ".toml":  # a typo or junk value, not a new rules file
                raise ConfigError(f"--rules {path}: no such file (a new one must end in .toml)")
            rules.write_text("# alert rules (README: Alerts)\n", encoding="utf-8")
        load_rules(rules)
    except OSError as exc:
        raise ConfigError(f"--rules {path}: cannot create it ({exc.strerror})") from None
    except RulesError as exc:
        raise ConfigError(f"--rules: {exc}") from None
