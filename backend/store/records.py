"""Typed records shared by every layer: one aggregate trade, a columnar batch of them, bars."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from backend.store.timeframes import TIMEFRAMES_MS  # noqa: F401 - re-exported: bars are read by timeframe

# No listed contract trades near these (BTC ~1e5 USDT, the largest quantities ~1e9): a value
# beyond is a corrupt row, refused or skipped wherever prices and sizes come in.
MAX_PRICE = 1e9
MAX_QTY = 1e12


def sane_price_qty(price, qty):
    """Where ``price`` and ``qty`` (scalars or arrays) are finite, positive and within
    ``MAX_PRICE`` / ``MAX_QTY``."""
    import numpy as np

    p, q = np.asarray(price, dtype=np.float64), np.asarray(qty, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (p > 0) & (p <= MAX_PRICE) & (q > 0) & (q <= MAX_QTY)


@dataclass(frozen=True, slots=True)
class AggTrade:
    """One Binance aggregate trade (the payload of an ``aggTrade`` event or a REST row)."""

    symbol: str
    agg_id: int
    price: float
    qty: float
    first_trade_id: int
    last_trade_id: int
    trade_time_ms: int
    buyer_is_maker: bool


TRADE_COLUMNS = (
    "agg_id",
    "price",
    "qty",
    "first_trade_id",
    "last_trade_id",
    "trade_time_ms",
    "buyer_is_maker",
)


@dataclass(frozen=True, slots=True)
class TradeBatch:
    """Aggregate trades of one symbol as parallel numpy columns (the unit every layer moves).

    Rows are in arrival order; ``agg_id`` is unique within a batch only after dedup.
    """

    symbol: str
    agg_id: np.ndarray  # int64
    price: np.ndarray  # float64
    qty: np.ndarray  # float64
    first_trade_id: np.ndarray  # int64
    last_trade_id: np.ndarray  # int64
    trade_time_ms: np.ndarray  # int64
    buyer_is_maker: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.agg_id)

    def take(self, index: np.ndarray) -> TradeBatch:
        """Rows selected by a boolean mask or an index array."""
        return TradeBatch(
            self.symbol,
            *(getattr(self, f.name)[index] for f in fields(self) if f.name != "symbol"),
        )

    @classmethod
    def from_trades(cls, symbol: str, trades: list[AggTrade]) -> TradeBatch:
        return cls.from_columns(
            symbol,
            agg_id=[t.agg_id for t in trades],
            price=[t.price for t in trades],
            qty=[t.qty for t in trades],
            first_trade_id=[t.first_trade_id for t in trades],
            last_trade_id=[t.last_trade_id for t in trades],
            trade_time_ms=[t.trade_time_ms for t in trades],
            buyer_is_maker=[t.buyer_is_maker for t in trades],
        )

    @classmethod
    def from_columns(cls, symbol: str, **columns) -> TradeBatch:
        return cls(
            symbol,
            agg_id=np.asarray(columns["agg_id"], dtype=np.int64),
            price=np.asarray(columns["price"], dtype=np.float64),
            qty=np.asarray(columns["qty"], dtype=np.float64),
            first_trade_id=np.asarray(columns["first_trade_id"], dtype=np.int64),
            last_trade_id=np.asarray(columns["last_trade_id"], dtype=np.int64),
            trade_time_ms=np.asarray(columns["trade_time_ms"], dtype=np.int64),
            buyer_is_maker=np.asarray(columns["buyer_is_maker"], dtype=np.bool_),
        )

    @classmethod
    def concat(cls, symbol: str, batches: list[TradeBatch]) -> TradeBatch:
        if not batches:
            return cls.from_trades(symbol, [])
        return cls(
            symbol,
            *(
                np.concatenate([getattr(b, f.name) for b in batches])
                for f in fields(cls)
                if f.name != "symbol"
            ),
        )

    def trades(self) -> list[AggTrade]:
        return [
            AggTrade(self.symbol, int(a), float(p), float(q), int(f), int(last), int(t), bool(m))
            for a, p, q, f, last, t, m in zip(
                self.agg_id,
                self.price,
                self.qty,
                self.first_trade_id,
                self.last_trade_id,
                self.trade_time_ms,
                self.buyer_is_maker,
                strict=True,
            )
        ]


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where ingestion of a symbol can resume exactly after a restart.

    Every aggregate trade with id below ``from_agg_id`` is in the stored bars, and all of them
    traded before ``open_time_ms`` (a second boundary); every trade at or after it has a larger
    id. A restart loads the stored 1s bars before ``open_time_ms`` and backfills trades from
    ``from_agg_id`` on, rebuilding the bars from that second: nothing lost, nothing doubled.
    """

    symbol: str
    open_time_ms: int
    from_agg_id: int
    saved_at_ms: int = 0  # wall clock of the save that wrote it


BAR_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_volume",
)


@dataclass(frozen=True, slots=True)
class Bars:
    """OHLCV bars of one symbol and timeframe as read-only numpy columns, ordered by open time.

    Column names follow the ``bars`` table contract; ``open_time`` is epoch ms UTC.
    """

    symbol: str
    timeframe: str
    open_time: np.ndarray  # int64, epoch ms
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    trades: np.ndarray  # int64
    taker_buy_volume: np.ndarray

    def __len__(self) -> int:
        return len(self.open_time)

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in BAR_COLUMNS}

    def slice(self, start: int, stop: int | None = None) -> Bars:
        return Bars(
            self.symbol,
            self.timeframe,
            *(getattr(self, name)[start:stop] for name in BAR_COLUMNS),
        )

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.columns())

    @classmethod
    def concat(cls, parts: list[Bars]) -> Bars:
        """Bars of one symbol and timeframe, joined in the order given."""
        first = parts[0]
        return cls(
            first.symbol,
            first.timeframe,
            *(np.concatenate([getattr(p, name) for p in parts]) for name in BAR_COLUMNS),
        )

    @classmethod
    def empty(cls, symbol: str, timeframe: str) -> Bars:
        f8 = np.empty(0, np.float64)
        i8 = np.empty(0, np.int64)
        return cls(symbol, timeframe, i8, f8, f8, f8, f8, f8, f8, i8, f8)


@dataclass(frozen=True, slots=True)
class Coverage:
    """How far back one timeframe's bars reach per symbol, said the same way for every data
    source: ``label`` (where the bars come from), first open times, and notes (loading, ...)."""

    label: str
    starts: dict[str, int]  # symbol -> first bar's open time, ms
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GapStatus:
    """A collector's open gaps in one symbol's aggregate ids, saved with its bars."""

    symbol: str
    open_gaps: int
    missing_ids: int


@dataclass(frozen=True, slots=True)
class CollectorHealth:
    """What the database says of a symbol's collector: when it last saved, how far its bars are
    complete (the resume point: every trade before it is stored; behind the newest stored bar
    while a gap is open), who it is and its open gaps at that save (the ``collectors`` row;
    None where no collector claimed the symbol, e.g. bars saved from a dashboard)."""

    symbol: str
    saved_at_ms: int
    complete_to_ms: int
    host: str | None
    pid: int | None
    open_gaps: int | None = None
    missing_ids: int | None = None


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """One ``markPriceUpdate`` of a perpetual: mark and index price, the funding rate that will
    be charged at ``next_funding_time_ms`` (a fraction per funding interval, not a percent)."""

    symbol: str
    event_time_ms: int
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_time_ms: int


@dataclass(frozen=True, slots=True)
class Instrument:
    """A symbol's trading rules (``exchangeInfo`` filters): quantities are multiples of
    ``step`` (``LOT_SIZE.stepSize``) of at least ``min_qty``; an order's notional is at least
    ``min_notional`` USDT (``MIN_NOTIONAL.notional``)."""

    symbol: str
    step: float
    min_qty: float
    min_notional: float
    tick: float = 0.0  # PRICE_FILTER.tickSize


@dataclass(frozen=True, slots=True)
class FundingEvents:
    """The funding rates charged at a symbol's past funding times, oldest first: recorded from
    the mark-price stream (the last rate published before each funding time) or read from
    ``GET /fapi/v1/fundingRate``."""

    symbol: str
    time_ms: np.ndarray  # int64, funding times
    rate: np.ndarray  # float64, a fraction per interval: a long pays rate x notional

    @classmethod
    def empty(cls, symbol: str) -> FundingEvents:
        return cls(symbol, np.empty(0, np.int64), np.empty(0, np.float64))


@dataclass(frozen=True, slots=True)
class QuoteBars:
    """The best bid and ask of one symbol per bar (``<symbol>@bookTicker``): at each bar's close,
    and the time-weighted mean quoted spread over the bar in bps of the mid. NaN where no quote
    was recorded."""

    symbol: str
    timeframe: str
    open_time: np.ndarray  # int64, epoch ms
    bid_close: np.ndarray
    ask_close: np.ndarray
    spread_mean_bps: np.ndarray

    def __len__(self) -> int:
        return len(self.open_time)

    @property
    def spread_close_bps(self) -> np.ndarray:
        """``(ask - bid) / mid`` at each bar's close, bps."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return 2e4 * (self.ask_close - self.bid_close) / (self.ask_close + self.bid_close)

    def at(self, open_time_ms: np.ndarray, column: np.ndarray) -> np.ndarray:
        """``column`` at the given bar open times (NaN where no quote bar is held)."""
        out = np.full(len(open_time_ms), np.nan)
        if len(self.open_time):
            i = np.clip(np.searchsorted(self.open_time, open_time_ms), 0, len(self.open_time) - 1)
            hit = self.open_time[i] == open_time_ms
            out[hit] = column[i[hit]]
        return out


@dataclass(frozen=True, slots=True)
class FundingSnapshot:
    """The latest mark price of each symbol and each symbol's funding interval (hours);
    a symbol is absent until known. ``updates`` counts mark prices received."""

    marks: dict[str, MarkPrice]
    interval_h: dict[str, int]
    updates: int


@dataclass(frozen=True, slots=True)
class Quotes:
    """Best bid and ask updates of one symbol, in arrival order."""

    symbol: str
    time_ms: np.ndarray  # int64: the transaction time (T)
    bid: np.ndarray
    ask: np.ndarray


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert that fired: a rule on a closed bar, and how far its deliveries got.

    ``id`` is ``ruleset|rule|bar_open_time_ms``: a rule fires at most once per bar, so writing
    the same alert twice (a restarted watcher) stores it once. ``deliveries`` maps each
    channel to ``{"status": "pending"|"sent"|"failed", "attempts": n, "error": "...",
    "at_ms": ...}`` (JSON in the table)."""

    id: str
    ruleset: str
    rule: str
    kind: str
    symbols: tuple[str, ...]
    timeframe: str
    bar_open_time_ms: int
    value: float
    threshold: float
    message: str
    created_ms: int
    deliveries: dict

    @property
    def pending(self) -> list[str]:
        return [c for c, d in self.deliveries.items() if d.get("status") != "sent"]
