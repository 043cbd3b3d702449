"""Binance USD-M wire formats, sans-I/O: bytes in, typed trade batches and skip counts out.

Combined-stream frame (what the client subscribes to, ``/stream?streams=btcusdt@aggTrade/...``)::

    {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1765788195443,"s":"BTCUSDT",
     "a":2913385101,"p":"89806.80","q":"0.002","f":6871839215,"l":6871839216,
     "T":1765788195441,"m":true}}

Raw-stream frame (``/ws/btcusdt@aggTrade``): the ``data`` object alone.
Subscription reply: ``{"result":null,"id":1}``.

REST ``GET /fapi/v1/aggTrades`` body: a JSON array of
``{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}``.

REST ``GET /fapi/v1/klines`` body: a JSON array of arrays, oldest first::

    [[1765788180000,"89806.80","89810.00","89790.10","89800.00","12.345",1765788239999,
      "1108642.51",2054,"6.120","549588.12","0"], ...]

(open time, open, high, low, close, volume, close time, quote volume, trades, taker buy base
volume, taker buy quote volume, ignore). The last kline is the open one when ``endTime`` is not
given.

Mark-price frames (``btcusdt@markPrice@1s``, one symbol each second; ``!markPrice@arr@1s``, every
perpetual each second, ``data`` an array of the same objects)::

    {"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,
     "s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265",
     "r":"0.00038167","T":1562306400000}}

(``p`` mark price, ``i`` index price, ``P`` estimated settle price, ``r`` funding rate charged at
``T``, the next funding time; ``r`` is ``""`` for delivery contracts.)

Fields: ``a`` aggregate trade id (consecutive per symbol), ``p``/``q`` price and quantity as
decimal strings, ``f``/``l`` first/last individual trade id, ``T`` trade time (ms),
``E`` event time (ms), ``m`` true when the buyer is the maker (the taker sold).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import msgspec
import numpy as np

from backend.store.records import (
    BAR_COLUMNS,
    TIMEFRAMES_MS,
    AggTrade,
    Bars,
    FundingEvents,
    Instrument,
    MarkPrice,
    Quotes,
    TradeBatch,
    sane_price_qty,
)

log = logging.getLogger(__name__)

# Why each skipped frame was skipped; the health strip shows these counts.
SKIP_BAD_JSON = "bad_json"
SKIP_BAD_FIELDS = "bad_fields"
SKIP_OTHER_EVENT = "other_event"
SKIP_CONTROL = "control_reply"
SKIP_UNKNOWN_SYMBOL = "unknown_symbol"
SKIP_BAD_VALUE = "bad_value"


class _AggTradeEvent(msgspec.Struct, tag_field="e", tag="aggTrade", gc=False):
    E: int
    s: str
    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 - Binance's field name
    T: int
    m: bool


class _Combined(msgspec.Struct, gc=False):
    stream: str
    data: _AggTradeEvent


class _RestAggTrade(msgspec.Struct, gc=False):
    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 - Binance's field name
    T: int
    m: bool


class _MarkEvent(msgspec.Struct, tag_field="e", tag="markPriceUpdate", gc=False):
    E: int
    s: str
    p: str
    i: str
    r: str
    T: int


class _MarkCombined(msgspec.Struct, gc=False):
    stream: str
    data: _MarkEvent | list[_MarkEvent]


_batch_decoder = msgspec.json.Decoder(list[_Combined])
_combined_decoder = msgspec.json.Decoder(_Combined)
_raw_decoder = msgspec.json.Decoder(_AggTradeEvent)
_rest_decoder = msgspec.json.Decoder(list[_RestAggTrade])
_Kline = tuple[int, str, str, str, str, str, int, str, int, str, str, str]
_klines_decoder = msgspec.json.Decoder(list[_Kline])
_mark_combined_decoder = msgspec.json.Decoder(_MarkCombined)
_mark_raw_decoder = msgspec.json.Decoder(_MarkEvent | list[_MarkEvent])
ALL_MARKS_STREAM = "!markPrice@arr@1s"


@dataclass(slots=True)
class Decoded:
    """The result of decoding a run of frames."""

    batches: dict[str, TradeBatch] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    last_event_time_ms: int | None = None
    frames: int = 0


class FrameDecoder:
    """Turns text frames of the aggTrade stream into per-symbol ``TradeBatch`` es.

    A whole run of frames is decoded in one msgspec call (the fast path); if any frame in
    the run is not a valid combined aggTrade frame, the run is decoded frame by frame so
    that only the bad frames are skipped, each counted by kind and logged once per kind.
    """

    def __init__(self, symbols: list[str] | None = None) -> None:
        self._symbols = frozenset(symbols) if symbols else None
        self._logged_kinds: set[str] = set()

    def decode(self, frames: list[bytes]) -> Decoded:
        out = Decoded(frames=len(frames))
        if not frames:
            return out
        try:
            events = [c.data for c in _batch_decoder.decode(b"[" + b",".join(frames) + b"]")]
        except (msgspec.DecodeError, msgspec.ValidationError):
            events = []
            for frame in frames:
                event, kind = _decode_one(frame)
                if event is None:
                    self._skip(out, kind, frame)
                else:
                    events.append(event)
        if events:
            out.last_event_time_ms = events[-1].E
            self._to_batches(events, out)
        return out

    def _skip(self, out: Decoded, kind: str, frame: bytes, count: int = 1) -> None:
        out.skipped[kind] += count
        if kind not in self._logged_kinds and kind != SKIP_CONTROL:
            self._logged_kinds.add(kind)
            log.warning("skipping %s frame (logged once per kind): %.200r", kind, frame)

    def _to_batches(self, events: list[_AggTradeEvent], out: Decoded) -> None:
        symbols = [e.s for e in events]
        if symbols.count(symbols[0]) == len(symbols):
            groups = {symbols[0]: events}
        else:
            groups: dict[str, list[_AggTradeEvent]] = {}
            for e in events:
                groups.setdefault(e.s, []).append(e)
        for symbol, group in groups.items():
            if self._symbols is not None and symbol not in self._symbols:
                self._skip(out, SKIP_UNKNOWN_SYMBOL, symbol.encode(), len(group))
                continue
            batch, bad = _validated(symbol, group)
            if bad:
                self._skip(out, SKIP_BAD_VALUE, f"{bad} row(s) of {symbol}".encode(), bad)
            if len(batch):
                out.batches[symbol] = batch


def _decode_one(frame: bytes) -> tuple[_AggTradeEvent | None, str]:
    try:
        return _combined_decoder.decode(frame).data, ""
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        return _raw_decoder.decode(frame), ""
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        obj = msgspec.json.decode(frame)
    except msgspec.DecodeError:
        return None, SKIP_BAD_JSON
    if isinstance(obj, dict):
        if "result" in obj and "id" in obj:
            return None, SKIP_CONTROL
        data = obj.get("data", obj)
        if isinstance(data, dict) and data.get("e") not in (None, "aggTrade"):
            return None, SKIP_OTHER_EVENT
    return None, SKIP_BAD_FIELDS


class MarkDecoder:
    """Mark-price frames (one symbol's stream or the all-market array) into ``MarkPrice``
    records of the watched symbols. Other symbols of the array are not ours and not counted;
    bad frames and values are counted by kind, as ``FrameDecoder`` does."""

    def __init__(self, symbols: list[str]) -> None:
        self._symbols = frozenset(symbols)
        self._logged_kinds: set[str] = set()

    def decode(self, frames: list[bytes]) -> tuple[list[MarkPrice], Counter]:
        marks: list[MarkPrice] = []
        skipped: Counter = Counter()
        for frame in frames:
            data = _decode_mark_frame(frame)
            if data is None:
                self._skip(skipped, _mark_skip_kind(frame), frame)
                continue
            for event in data if isinstance(data, list) else (data,):
                if event.s not in self._symbols:
                    continue
                mark = _mark_record(event)
                if mark is None:
                    self._skip(skipped, SKIP_BAD_VALUE, frame)
                else:
                    marks.append(mark)
        return marks, skipped

    def _skip(self, skipped: Counter, kind: str, frame: bytes) -> None:
        skipped[kind] += 1
        if kind not in self._logged_kinds and kind != SKIP_CONTROL:
            self._logged_kinds.add(kind)
            log.warning("skipping mark-price %s frame (logged once per kind): %.200r", kind, frame)


def _decode_either(frame: bytes, combined, raw):
    """A frame's event through the combined-stream decoder (its ``data``) or the raw one; None
    when neither takes it."""
    try:
        return combined.decode(frame).data
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        return raw.decode(frame)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _decode_mark_frame(frame: bytes) -> _MarkEvent | list[_MarkEvent] | None:
    return _decode_either(frame, _mark_combined_decoder, _mark_raw_decoder)


def _mark_skip_kind(frame: bytes) -> str:
    try:
        obj = msgspec.json.decode(frame)
    except msgspec.DecodeError:
        return SKIP_BAD_JSON
    if isinstance(obj, dict) and "result" in obj and "id" in obj:
        return SKIP_CONTROL
    return SKIP_BAD_FIELDS


def _mark_record(e: _MarkEvent) -> MarkPrice | None:
    """A ``MarkPrice``, or None when a price is not a positive number or the rate is missing
    (a delivery contract) or not finite."""
    mark, index, rate = _to_float(e.p), _to_float(e.i), _to_float(e.r)
    if not (mark > 0 and index > 0 and math.isfinite(mark) and math.isfinite(index)):
        return None
    if not math.isfinite(rate) or e.T <= 0:
        return None
    return MarkPrice(e.s, e.E, mark, index, rate, e.T)


def encode_mark_price(m: MarkPrice) -> bytes:
    """The ``data`` object of a markPriceUpdate event, as Binance sends it."""
    return (
        f'{{"e":"markPriceUpdate","E":{m.event_time_ms},"s":"{m.symbol}",'
        f'"p":"{m.mark_price:.8f}","i":"{m.index_price:.8f}","P":"{m.index_price:.8f}",'
        f'"r":"{m.funding_rate:.8f}","T":{m.next_funding_time_ms}}}'
    ).encode()


def mark_stream_name(symbol: str) -> str:
    return f"{symbol.lower()}@markPrice@1s"


def _validated(symbol: str, events: list) -> tuple[TradeBatch, int]:
    """Columns of ``events``; rows with a non-positive or non-finite price or quantity, or
    ``l < f``, are dropped and counted."""
    try:
        price = np.array([e.p for e in events], dtype=np.float64)
        qty = np.array([e.q for e in events], dtype=np.float64)
    except ValueError:  # a non-numeric decimal string somewhere: fall back row by row
        price = np.array([_to_float(e.p) for e in events])
        qty = np.array([_to_float(e.q) for e in events])
    batch = TradeBatch(
        symbol,
        agg_id=np.array([e.a for e in events], dtype=np.int64),
        price=price,
        qty=qty,
        first_trade_id=np.array([e.f for e in events], dtype=np.int64),
        last_trade_id=np.array([e.l for e in events], dtype=np.int64),
        trade_time_ms=np.array([e.T for e in events], dtype=np.int64),
        buyer_is_maker=np.array([e.m for e in events], dtype=np.bool_),
    )
    ok = (
        sane_price_qty(price, qty)
        & (qty > 0)
        & (batch.last_trade_id >= batch.first_trade_id)
        & (batch.agg_id >= 0)
        & (batch.trade_time_ms > 0)
    )
    if ok.all():
        return batch, 0
    return batch.take(ok), int((~ok).sum())


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


class RestFormatError(ValueError):
    """A REST body that is not the documented aggTrades array."""


def decode_rest_agg_trades(symbol: str, body: bytes) -> TradeBatch:
    """Parse a ``GET /fapi/v1/aggTrades`` body; invalid rows are dropped as on the stream."""
    try:
        rows = _rest_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RestFormatError(f"aggTrades body for {symbol} is not a trade array: {exc}") from exc
    if not rows:
        return TradeBatch.from_trades(symbol, [])
    batch, _bad = _validated(symbol, rows)
    return batch


def decode_rest_klines(symbol: str, timeframe: str, body: bytes) -> Bars:
    """Parse a ``GET /fapi/v1/klines`` body into ``Bars`` (ascending, duplicates refused)."""
    try:
        rows = _klines_decoder.decode(body)
        cols = list(zip(*rows, strict=True)) if rows else [()] * 12
        floats = [np.array(cols[i], dtype=np.float64) for i in (1, 2, 3, 4, 5, 7, 9)]
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise RestFormatError(f"klines body for {symbol} is not a kline array: {exc}") from exc
    open_time = np.array(cols[0], dtype=np.int64)
    if len(open_time) > 1 and not (np.diff(open_time) > 0).all():
        raise RestFormatError(f"klines for {symbol} are not in ascending open-time order")
    step = TIMEFRAMES_MS[timeframe]
    if (open_time % step).any():
        raise RestFormatError(f"klines for {symbol} are not on the {timeframe} grid")
    o, h, lo, c, v, qv, tb = floats
    return Bars(symbol, timeframe, open_time, o, h, lo, c, v, qv, np.array(cols[8], np.int64), tb)


def encode_rest_klines(bars: Bars) -> bytes:
    step = TIMEFRAMES_MS[bars.timeframe]
    rows = zip(*(getattr(bars, c).tolist() for c in BAR_COLUMNS), strict=True)
    return msgspec.json.encode(
        [
            # Taker buy quote volume is not kept by the bars: served as "0" (we never read it).
            [
                t,
                repr(o),
                repr(h),
                repr(lo),
                repr(c),
                repr(v),
                t + step - 1,
                repr(qv),
                n,
                repr(tb),
                "0",
                "0",
            ]  # fmt: skip
            for t, o, h, lo, c, v, qv, n, tb in rows
        ]
    )


def encode_agg_trade(trade: AggTrade, event_time_ms: int) -> bytes:
    """The ``data`` object of an aggTrade event, as Binance sends it."""
    return (
        f'{{"e":"aggTrade","E":{event_time_ms},"s":"{trade.symbol}","a":{trade.agg_id},'
        f'"p":"{trade.price!r}","q":"{trade.qty!r}","f":{trade.first_trade_id},'
        f'"l":{trade.last_trade_id},"T":{trade.trade_time_ms},'
        f'"m":{"true" if trade.buyer_is_maker else "false"}}}'
    ).encode()


def encode_combined(stream: str, data: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + data + b"}"


def encode_rest_agg_trades(trades: list[AggTrade]) -> bytes:
    return msgspec.json.encode(
        [
            {
                "a": t.agg_id,
                "p": repr(t.price),
                "q": repr(t.qty),
                "f": t.first_trade_id,
                "l": t.last_trade_id,
                "T": t.trade_time_ms,
                "m": t.buyer_is_maker,
            }
            for t in trades
        ]
    )


def stream_name(symbol: str) -> str:
    return f"{symbol.lower()}@aggTrade"


# --- exchangeInfo filters and funding-rate history (REST) ----------------------------------------


def decode_instruments(body: bytes) -> dict[str, Instrument]:
    """Each listed symbol's trading rules from a ``GET /fapi/v1/exchangeInfo`` body. One
    element of its ``symbols`` array (the filters read; others are ignored)::

        {"symbol": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING", ...,
         "filters": [
           {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764",
            "tickSize": "0.10"},
           {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": "1000"},
           {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "minQty": "0.001",
            "maxQty": "120"},
           {"filterType": "MIN_NOTIONAL", "notional": "100"}, ...]}

    A symbol without ``LOT_SIZE`` is left out (its orders could not be sized)."""
    try:
        info = msgspec.json.decode(body)
        out = {}
        for s in info["symbols"]:
            filters = {f["filterType"]: f for f in s.get("filters", [])}
            lot = filters.get("LOT_SIZE")
            if lot is None:
                continue
            out[s["symbol"]] = Instrument(
                s["symbol"],
                float(lot["stepSize"]),
                float(lot["minQty"]),
                float(filters.get("MIN_NOTIONAL", {}).get("notional", 0.0)),
                float(filters.get("PRICE_FILTER", {}).get("tickSize", 0.0)),
            )
    except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
        raise RestFormatError(f"exchangeInfo has an unexpected shape: {exc}") from exc
    return out


def encode_instrument(rule: Instrument, **extra) -> dict:
    """An ``exchangeInfo`` symbol object with the filters of ``rule`` (the local exchange)."""
    step = f"{rule.step:.8f}".rstrip("0").rstrip(".")
    return extra | {
        "symbol": rule.symbol,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.0001", "maxPrice": "10000000",
             "tickSize": f"{rule.tick:.8f}".rstrip("0").rstrip(".")},
            {"filterType": "LOT_SIZE", "stepSize": step, "minQty": f"{rule.min_qty:g}",
             "maxQty": "1000000"},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": step, "minQty": f"{rule.min_qty:g}",
             "maxQty": "100000"},
            {"filterType": "MIN_NOTIONAL", "notional": f"{rule.min_notional:g}"},
        ],
    }  # fmt: skip


class _FundingRate(msgspec.Struct, gc=False):
    symbol: str
    fundingTime: int
    fundingRate: str
    markPrice: str = ""


_funding_decoder = msgspec.json.Decoder(list[_FundingRate])


def decode_funding_rates(symbol: str, body: bytes) -> FundingEvents:
    """A ``GET /fapi/v1/fundingRate?symbol=…&startTime=…&endTime=…&limit=1000`` body, oldest
    first::

        [{"symbol": "BTCUSDT", "fundingRate": "0.00010000", "fundingTime": 1765785600000,
          "markPrice": "89806.80000000"}, ...]

    (``fundingRate`` charged at ``fundingTime``: a long pays it times its notional.) Rows of
    other symbols or with a non-finite rate are dropped; times must ascend."""
    try:
        rows = _funding_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RestFormatError(f"fundingRate body for {symbol} is not an array: {exc}") from exc
    rows = [r for r in rows if r.symbol == symbol and math.isfinite(_to_float(r.fundingRate))]
    times = np.array([r.fundingTime for r in rows], dtype=np.int64)
    if len(times) > 1 and not (np.diff(times) > 0).all():
        raise RestFormatError(f"fundingRate for {symbol} is not in ascending time order")
    rates = np.array([_to_float(r.fundingRate) for r in rows], dtype=np.float64)
    return FundingEvents(symbol, times, rates)


def encode_funding_rates(events: FundingEvents, marks: np.ndarray) -> bytes:
    return msgspec.json.encode(
        [
            {"symbol": events.symbol, "fundingRate": f"{r:.8f}", "fundingTime": int(t),
             "markPrice": f"{m:.8f}"}
            for t, r, m in zip(events.time_ms, events.rate, marks, strict=True)
        ]
    )  # fmt: skip


# --- best bid and ask (bookTicker) ---------------------------------------------------------------


class _BookEvent(msgspec.Struct, tag_field="e", tag="bookTicker", gc=False):
    u: int
    E: int
    T: int
    s: str
    b: str
    B: str
    a: str
    A: str


class _BookCombined(msgspec.Struct, gc=False):
    stream: str
    data: _BookEvent


_book_batch_decoder = msgspec.json.Decoder(list[_BookCombined])
_book_combined_decoder = msgspec.json.Decoder(_BookCombined)
_book_raw_decoder = msgspec.json.Decoder(_BookEvent)


class BookTickerDecoder:
    """``<symbol>@bookTicker`` frames into ``Quotes`` per watched symbol. Binance routes these
    streams under ``/public`` (aggTrade and markPrice under ``/market``). Combined frame::

        {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":400900217,
         "E":1568014460893,"T":1568014460891,"s":"BTCUSDT","b":"25.35190000",
         "B":"31.21000000","a":"25.36520000","A":"40.66000000"}}

    (``u`` order-book update id, ``E`` event time, ``T`` transaction time, ``b``/``B`` best bid
    price/quantity, ``a``/``A`` best ask price/quantity.) A raw frame is the ``data`` object.
    A run of frames decodes in one call; a bad one sends the run frame by frame, skipping and
    counting only the bad ones (a crossed or non-positive book counts as a bad value)."""

    def __init__(self, symbols: list[str]) -> None:
        self._symbols = frozenset(symbols)
        self._logged_kinds: set[str] = set()

    def decode(self, frames: list[bytes]) -> tuple[dict[str, Quotes], Counter]:
        skipped: Counter = Counter()
        try:
            events = [c.data for c in _book_batch_decoder.decode(b"[" + b",".join(frames) + b"]")]
        except (msgspec.DecodeError, msgspec.ValidationError):
            events = []
            for frame in frames:
                event = _decode_book_frame(frame)
                if event is None:
                    self._skip(skipped, _mark_skip_kind(frame), frame)
                else:
                    events.append(event)
        rows: dict[str, list] = {}
        for e in events:
            if e.s not in self._symbols:
                self._skip(skipped, SKIP_UNKNOWN_SYMBOL, e.s.encode())
                continue
            bid, ask = _to_float(e.b), _to_float(e.a)
            if not (0 < bid <= ask and math.isfinite(ask)):
                self._skip(skipped, SKIP_BAD_VALUE, e.s.encode())
                continue
            rows.setdefault(e.s, []).append((e.T, bid, ask))
        out = {}
        for symbol, r in rows.items():
            t, b, a = zip(*r, strict=True)
            out[symbol] = Quotes(
                symbol, np.array(t, np.int64), np.array(b, np.float64), np.array(a, np.float64)
            )
        return out, skipped

    def _skip(self, skipped: Counter, kind: str, frame: bytes) -> None:
        skipped[kind] += 1
        if kind not in self._logged_kinds and kind != SKIP_CONTROL:
            self._logged_kinds.add(kind)
            log.warning("skipping bookTicker %s frame (logged once per kind): %.200r", kind, frame)


def _decode_book_frame(frame: bytes) -> _BookEvent | None:
    return _decode_either(frame, _book_combined_decoder, _book_raw_decoder)


def encode_book_ticker(
    symbol: str,
    update_id: int,
    time_ms: int,
    bid: float,
    bid_qty: float,
    ask: float,
    ask_qty: float,
) -> bytes:
    """The ``data`` object of a bookTicker event, as Binance sends it."""
    return (
        f'{{"e":"bookTicker","u":{update_id},"E":{time_ms},"T":{time_ms},"s":"{symbol}",'
        f'"b":"{bid!r}","B":"{bid_qty!r}","a":"{ask!r}","A":"{ask_qty!r}"}}'
    ).encode()


def book_stream_name(symbol: str) -> str:
    return f"{symbol.lower()}@bookTicker"
