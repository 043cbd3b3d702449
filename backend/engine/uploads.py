"""User uploads for offline analysis: OHLC bar CSVs (ours or any with the same columns) and
data.binance.vision aggTrades files. Size-limited and validated; errors name the row/column."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass

import numpy as np

from backend.engine.csv_export import bars_to_csv
from backend.engine.pairs import ExecutionContext, scan_market, with_carry
from backend.feed.trade_files import SourceFormatError, parse_agg_trades_csv
from backend.store.records import (
    BAR_COLUMNS,
    MAX_PRICE,
    MAX_QTY,
    TIMEFRAMES_MS,
    Bars,
    Coverage,
    FundingSnapshot,
)
from backend.store.resampling import SecondBars

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
_REQUIRED = ("open", "high", "low", "close")
_SYMBOL_IN_NAME = re.compile(r"([A-Z0-9]{5,})", re.IGNORECASE)


class UploadError(ValueError):
    """Worded for the user: which file, which row or column, what is wrong."""


@dataclass(frozen=True)
class UploadedSymbol:
    """One symbol's uploaded data: trades (any timeframe) or bars of one timeframe."""

    symbol: str
    seconds: SecondBars | None = None
    bars: Bars | None = None

    def timeframes(self) -> list[str]:
        return list(TIMEFRAMES_MS) if self.seconds is not None else [self.bars.timeframe]

    def get(self, timeframe: str) -> Bars | None:
        if self.seconds is not None:
            return self.seconds.bars(timeframe)
        return self.bars if self.bars.timeframe == timeframe else None


def parse_upload(name: str, data: bytes, symbol: str | None = None) -> list[UploadedSymbol]:
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{name}: {len(data) / 1e6:.1f} MB is over the {MAX_UPLOAD_BYTES // 2**20} MB limit"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(f"{name}: not UTF-8 text (bad byte at offset {exc.start})") from exc
    first = text.lstrip().split("\n", 1)[0].lower()
    if not first:
        raise UploadError(f"{name}: the file is empty")
    if any(word in first for word in ("open", "high", "low", "close")):
        return _parse_bars(name, text)  # a bars header, maybe short of a column: named there
    sym = symbol or _symbol_from_name(name)
    try:
        trades = parse_agg_trades_csv(data, sym, name)
    except SourceFormatError as exc:
        raise UploadError(f"{exc} (expected OHLC bars with a header, or aggTrades rows)") from exc
    seconds = SecondBars(sym)
    seconds.add(trades)
    return [UploadedSymbol(sym, seconds=seconds)]


def _symbol_from_name(name: str) -> str:
    match = _SYMBOL_IN_NAME.search(name.rsplit("/", 1)[-1])
    if not match:
        raise UploadError(
            f"{name}: the file name does not say the symbol (e.g. BTCUSDT-aggTrades.csv)"
        )
    return match.group(1).upper()


def _parse_bars(name: str, text: str) -> list[UploadedSymbol]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise UploadError(f"{name}: missing column(s) {', '.join(missing)}")
    if "open_time" not in columns and "time" not in columns:
        raise UploadError(f"{name}: needs an open_time (epoch ms) or time (ISO-8601) column")
    by_symbol: dict[str, dict[str, list]] = {}
    default_symbol = _symbol_from_name(name) if "symbol" not in columns else None
    for lineno, row in enumerate(reader, 2):
        try:
            t = _time_ms(row)
            values = {c: _number(row, c) for c in _REQUIRED}
            extra = {
                c: _number(row, c, 0.0) for c in ("volume", "quote_volume", "taker_buy_volume")
            }
            trades = int(float(row.get("trades") or 0))
        except (ValueError, TypeError) as exc:
            raise UploadError(f"{name}: row {lineno}: {exc}") from exc
        if not all(0 < v <= MAX_PRICE for v in values.values()):
            raise UploadError(
                f"{name}: row {lineno}: prices must be positive numbers up to {MAX_PRICE:g}"
            )
        if not all(0 <= v <= MAX_QTY * MAX_PRICE for v in extra.values()):
            raise UploadError(f"{name}: row {lineno}: volumes must be numbers >= 0")
        if values["high"] < max(values["open"], values["close"], values["low"]):
            raise UploadError(f"{name}: row {lineno}: high is below open, close or low")
        symbol = (row.get("symbol") or default_symbol or "").strip().upper()
        if not re.fullmatch(r"[A-Z0-9]{2,30}", symbol):
            raise UploadError(f"{name}: row {lineno}: invalid symbol {symbol!r}")
        col = by_symbol.setdefault(symbol, {c: [] for c in BAR_COLUMNS})
        col["open_time"].append(t)
        for c, v in {**values, **extra}.items():
            col[c].append(v)
        col["trades"].append(trades)
    if not by_symbol:
        raise UploadError(f"{name}: no rows")
    if "timeframe" in columns:
        frames = {r.strip() for r in _column(text, "timeframe")}
        if len(frames) > 1:
            raise UploadError(
                f"{name}: several timeframes ({', '.join(sorted(frames))}); upload one"
            )
    return [_to_bars(name, symbol, cols) for symbol, cols in by_symbol.items()]


def _column(text: str, name: str) -> list[str]:
    reader = csv.DictReader(io.StringIO(text))
    reader.fieldnames = [c.strip().lower() for c in reader.fieldnames or []]
    return [row[name] for row in reader if row.get(name)]


def _time_ms(row: dict) -> int:
    if row.get("open_time"):
        value = int(float(row["open_time"]))
        return value // 1000 if value > 10**14 else value  # microseconds
    from datetime import datetime

    stamp = datetime.fromisoformat(row["time"].strip().replace("Z", "+00:00"))
    return int(stamp.timestamp() * 1000)


def _number(row: dict, column: str, default: float | None = None) -> float:
    raw = row.get(column)
    if raw in (None, ""):
        if default is None:
            raise ValueError(f"column {column} is empty")
        return default
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"column {column} is not a finite number")
    return value


def _to_bars(name: str, symbol: str, cols: dict[str, list]) -> UploadedSymbol:
    order = np.argsort(cols["open_time"], kind="stable")
    arrays = {
        c: np.asarray(cols[c], dtype=np.int64 if c in ("open_time", "trades") else np.float64)[
            order
        ]
        for c in BAR_COLUMNS
    }
    t = arrays["open_time"]
    if len(np.unique(t)) != len(t):
        raise UploadError(f"{name}: {symbol} has repeated open times")
    if len(t) < 2:
        raise UploadError(f"{name}: {symbol} needs at least 2 bars")
    step = int(np.median(np.diff(t)))
    timeframe = next((tf for tf, ms in TIMEFRAMES_MS.items() if ms == step), None)
    if timeframe is None:
        raise UploadError(
            f"{name}: bars are {step} ms apart; supported: {', '.join(TIMEFRAMES_MS)}"
        )
    if np.any(t % step):
        raise UploadError(f"{name}: open times are not on the {timeframe} grid")
    return UploadedSymbol(symbol, bars=Bars(symbol, timeframe, *(arrays[c] for c in BAR_COLUMNS)))


class UploadedData:
    """Uploaded symbols behind the engine's read interface (``symbols``, ``timeframes``,
    ``bars``, ``scan``, ``funding``, ``carry``), so the page reads uploads and live data the same way. ``key`` names the files
    for caches."""

    source = "upload"

    def __init__(self, items: dict[str, UploadedSymbol], key: tuple) -> None:
        self._items = dict(items)
        self.key = key

    @property
    def symbols(self) -> list[str]:
        return sorted(self._items)

    @property
    def timeframes(self) -> list[str]:
        """Timeframes every uploaded symbol has (all three for trades)."""
        common = [
            tf for tf in TIMEFRAMES_MS if all(tf in u.timeframes() for u in self._items.values())
        ]
        return common or list(TIMEFRAMES_MS)

    def csv(self, timeframe: str) -> bytes:
        return bars_to_csv(self.bars(s, timeframe) for s in self.symbols)

    def coverage(self, timeframe: str) -> Coverage:
        starts = {}
        for symbol in self.symbols:
            bars = self.bars(symbol, timeframe)
            if len(bars):
                starts[symbol] = int(bars.open_time[0])
        return Coverage(f"{timeframe} bars uploaded", starts)

    def scan(self, timeframe: str, lookback: int, adf_lag: int = 1, end_ms: int | None = None):
        """Every pair of the uploaded symbols ranked (``pairs.scan_market``); every uploaded
        bar is closed."""
        from backend.engine.pair_service import window_bars

        bars = window_bars(self, self.symbols, timeframe, lookback + 1, end_ms)
        scan = scan_market(bars, timeframe, lookback, adf_lag, newest_is_open=False)
        return with_carry(scan, self.funding())

    def funding(self) -> FundingSnapshot:
        """Uploads carry no mark prices: nothing to compute carry from."""
        return FundingSnapshot({}, {}, 0)

    def carry(self, y: str, x: str, beta: float) -> None:
        return None

    newest_is_open = False  # every bar of a file is closed
    funding_source = "none"  # files carry no funding or marks

    def execution_version(self, symbols) -> tuple:
        return ()

    def execution_context(self, symbols, timeframe: str) -> ExecutionContext:
        """Files hold bars only: no lot rules, quotes or funding (the backtest says so)."""
        return ExecutionContext(funding_source="none")

    def bars(self, symbol: str, timeframe: str, last: int | None = None) -> Bars:
        bars = self._items[symbol].get(timeframe) or Bars.empty(symbol, timeframe)
        return bars if last is None or len(bars) <= last else bars.slice(len(bars) - last)
