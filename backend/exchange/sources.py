"""Trade sources for the local exchange: recorded files (replay) and a seeded simulation.

Loaders accept the recorded formats in ``shared/data`` (see its README):

* NDJSON ``{"symbol":"BTCUSDT","ts":"2025-12-15T08:43:15.443Z","price":89806.8,"size":0.002}``
  (no ids, no side: trades are numbered consecutively per symbol and the side follows the tick
  rule: an uptick is a taker buy, a downtick a taker sell, an unchanged price keeps the side);
* data.binance.vision aggTrades CSV, spot layout (headerless, 8 columns, ``transact_time`` in
  microseconds from 2025) and USD-M futures layout (a header row, 7 columns, milliseconds):
  ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker[,is_best_match]``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np

from backend.records import TradeBatch

log = logging.getLogger(__name__)

# Synthetic ids for files without them start here, so they look like real ids (never 0).
SYNTHETIC_ID_BASE = 1_000_000_000


class SourceFormatError(ValueError):
    """A recorded file that cannot be read, naming the file, row and column."""


class _Tick(msgspec.Struct):
    symbol: str
    ts: str
    price: float
    size: float


def _parse_iso_ms(text: str) -> int:
    return int(round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000))


def load_ndjson(path: str | Path, skipped: Counter | None = None) -> dict[str, TradeBatch]:
    """Trades per symbol from a recorded ``symbol/ts/price/size`` NDJSON file.

    Rows with a zero, negative or non-finite price or size (the recorded files have some) are
    skipped and counted in ``skipped``; a row that is not the format raises, naming the line.
    """
    skipped = Counter() if skipped is None else skipped
    decoder = msgspec.json.Decoder(_Tick)
    rows: dict[str, list[tuple[int, float, float]]] = {}
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                tick = decoder.decode(line)
                t_ms = _parse_iso_ms(tick.ts)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                raise SourceFormatError(f"{path}: line {lineno}: {exc}") from exc
            if not (tick.price > 0 and tick.size > 0 and math.isfinite(tick.price + tick.size)):
                skipped["bad_price_or_size"] += 1
                continue
            rows.setdefault(tick.symbol.upper(), []).append((t_ms, tick.price, tick.size))
    if skipped:
        log.warning("%s: skipped %s", path, dict(skipped))
    return {symbol: _numbered(symbol, trades) for symbol, trades in rows.items()}


def _numbered(symbol: str, trades: list[tuple[int, float, float]]) -> TradeBatch:
    times = np.array([t for t, _, _ in trades], np.int64)
    order = np.argsort(times, kind="stable")  # files are in time order; this only makes sure
    times = times[order]
    price = np.array([p for _, p, _ in trades])[order]
    qty = np.array([q for _, _, q in trades])[order]
    n = len(trades)
    ids = SYNTHETIC_ID_BASE + np.arange(n, dtype=np.int64)
    return TradeBatch(
        symbol,
        agg_id=ids,
        price=price,
        qty=qty,
        first_trade_id=2 * ids,
        last_trade_id=2 * ids,
        trade_time_ms=times,
        buyer_is_maker=_tick_rule_maker(price),
    )


def _tick_rule_maker(price: np.ndarray) -> np.ndarray:
    """Buyer-is-maker flags by the tick rule (downtick -> the taker sold -> the buyer made)."""
    move = np.sign(np.diff(price, prepend=price[:1]))
    nonzero = np.flatnonzero(move)
    last = np.maximum.accumulate(np.where(move != 0, np.arange(len(move)), 0))
    carried = move[last] if len(nonzero) else move
    return carried < 0


_SYMBOL_IN_NAME = re.compile(r"([A-Z0-9]{5,})-aggTrades", re.IGNORECASE)


def load_agg_trades_csv(path: str | Path, symbol: str | None = None) -> TradeBatch:
    """A data.binance.vision aggTrades CSV (spot or USD-M futures layout)."""
    if symbol is None:
        match = _SYMBOL_IN_NAME.search(Path(path).name)
        if not match:
            raise SourceFormatError(f"{path}: name the symbol (the file name does not say it)")
        symbol = match.group(1).upper()
    with open(path, "rb") as fh:
        return parse_agg_trades_csv(fh.read(), symbol, str(path))


def parse_agg_trades_csv(data: bytes, symbol: str, name: str = "upload") -> TradeBatch:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceFormatError(f"{name}: not UTF-8 text (byte {exc.start})") from exc
    reader = csv.reader(io.StringIO(text))
    columns: list[list] = [[] for _ in range(7)]
    for lineno, row in enumerate(reader, 1):
        if not row:
            continue
        if lineno == 1 and not row[0].strip().lstrip("-").isdigit():
            continue  # the futures layout's header row
        if len(row) not in (7, 8):
            raise SourceFormatError(
                f"{name}: row {lineno}: expected 7 or 8 columns, got {len(row)}"
            )
        try:
            values = (
                int(row[0]),
                float(row[1]),
                float(row[2]),
                int(row[3]),
                int(row[4]),
                int(row[5]),
                _parse_bool(row[6]),
            )
        except ValueError as exc:
            raise SourceFormatError(f"{name}: row {lineno}: {exc}") from exc
        if not (values[1] > 0 and values[2] > 0 and math.isfinite(values[1] + values[2])):
            raise SourceFormatError(f"{name}: row {lineno}: price and quantity must be positive")
        for col, value in zip(columns, values, strict=True):
            col.append(value)
    if not columns[0]:
        raise SourceFormatError(f"{name}: no trades")
    times = np.array(columns[5], np.int64)
    if times.max() > 10**14:  # microseconds (spot files from 2025 on)
        times //= 1000
    return TradeBatch(
        symbol,
        agg_id=np.array(columns[0], np.int64),
        price=np.array(columns[1]),
        qty=np.array(columns[2]),
        first_trade_id=np.array(columns[3], np.int64),
        last_trade_id=np.array(columns[4], np.int64),
        trade_time_ms=times,
        buyer_is_maker=np.array(columns[6], np.bool_),
    )


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"is_buyer_maker must be true/false, got {text!r}")


def load_files(paths: list[str | Path]) -> dict[str, TradeBatch]:
    """Trades per symbol from any mix of NDJSON and aggTrades CSV files."""
    out: dict[str, list[TradeBatch]] = {}
    for path in paths:
        if str(path).endswith((".ndjson", ".jsonl")):
            for symbol, batch in load_ndjson(path).items():
                out.setdefault(symbol, []).append(batch)
        else:
            batch = load_agg_trades_csv(path)
            out.setdefault(batch.symbol, []).append(batch)
    merged = {}
    for symbol, batches in out.items():
        if len(batches) > 1:
            raise SourceFormatError(f"{symbol} appears in more than one file; give one per symbol")
        merged[symbol] = batches[0]
    return merged


# Tick size, quantity step, start price and arrivals per second of the simulated symbols.
_SIM_SPECS = {
    "BTCUSDT": (0.1, 0.001, 90_000.0, 12.0),
    "ETHUSDT": (0.01, 0.001, 3_100.0, 20.0),
}
_SIM_DEFAULT_SPEC = (0.001, 0.1, 100.0, 5.0)


class Simulator:
    """A seeded cointegrated pair: ``log y = alpha + beta * log x + u`` with ``u`` an
    Ornstein-Uhlenbeck spread (half-life ``half_life_s``); ``x`` (the first symbol) is a random
    walk. Further symbols are independent random walks. Trades arrive as Poisson processes at
    each symbol's rate, with prices on the tick grid and quantities on the step grid.
    """

    def __init__(
        self,
        symbols: list[str] | None = None,
        seed: int = 7,
        beta: float = 0.8,
        vol_per_sqrt_s: float = 2e-4,
        spread_vol_per_sqrt_s: float = 1e-4,
        half_life_s: float = 120.0,
        start_ms: int = 0,
    ) -> None:
        self.symbols = [s.upper() for s in (symbols or ["BTCUSDT", "ETHUSDT"])]
        self.beta = beta
        self._rng = np.random.default_rng(seed)
        self._vol = vol_per_sqrt_s
        self._spread_vol = spread_vol_per_sqrt_s
        self._kappa = math.log(2) / half_life_s
        self._specs = {s: _SIM_SPECS.get(s, _SIM_DEFAULT_SPEC) for s in self.symbols}
        x0 = math.log(self._specs[self.symbols[0]][2])
        self._log = {s: math.log(self._specs[s][2]) for s in self.symbols}
        self._alpha = (self._log[self.symbols[1]] - beta * x0) if len(self.symbols) > 1 else 0.0
        self._spread = 0.0
        self._clock_ms = start_ms
        self._next_id = dict.fromkeys(self.symbols, SYNTHETIC_ID_BASE)
        self._next_trade_id = dict.fromkeys(self.symbols, 2 * SYNTHETIC_ID_BASE)

    def advance(self, until_ms: int) -> dict[str, TradeBatch]:
        """Trades with times in ``(clock, until_ms]``; the clock moves to ``until_ms``."""
        if self._clock_ms == 0:
            self._clock_ms = until_ms - 1
        span_ms = until_ms - self._clock_ms
        if span_ms <= 0:
            return {}
        dt_s = span_ms / 1000
        rng = self._rng
        # One common shock per step drives x; y follows x through beta plus the OU spread.
        x, *_ = self.symbols
        dx = rng.normal(0, self._vol * math.sqrt(dt_s))
        self._log[x] += dx
        self._spread += -self._kappa * self._spread * dt_s + rng.normal(
            0, self._spread_vol * math.sqrt(dt_s)
        )
        if len(self.symbols) > 1:
            y = self.symbols[1]
            self._log[y] = self._alpha + self.beta * self._log[x] + self._spread
        for other in self.symbols[2:]:
            self._log[other] += rng.normal(0, self._vol * math.sqrt(dt_s))
        out = {s: self._trades(s, self._clock_ms, until_ms) for s in self.symbols}
        self._clock_ms = until_ms
        return {s: b for s, b in out.items() if len(b)}

    def _trades(self, symbol: str, after_ms: int, until_ms: int) -> TradeBatch:
        tick, step, _, rate = self._specs[symbol]
        rng = self._rng
        n = rng.poisson(rate * (until_ms - after_ms) / 1000)
        times = np.sort(rng.integers(after_ms + 1, until_ms + 1, n)).astype(np.int64)
        mid = math.exp(self._log[symbol])
        noise = rng.normal(0, 0.5 * tick, n)  # bid/ask bounce of about a tick
        price = np.maximum(np.round((mid + noise) / tick) * tick, tick)
        qty = np.maximum(np.round(rng.lognormal(math.log(20 * step), 1.2, n) / step), 1) * step
        fills = rng.geometric(0.6, n).astype(np.int64)
        ids = self._next_id[symbol] + np.arange(n, dtype=np.int64)
        first = self._next_trade_id[symbol] + np.concatenate(([0], np.cumsum(fills)[:-1]))
        self._next_id[symbol] += n
        self._next_trade_id[symbol] += int(fills.sum())
        return TradeBatch(
            symbol,
            agg_id=ids,
            price=np.round(price, 8),
            qty=np.round(qty, 8),
            first_trade_id=first.astype(np.int64),
            last_trade_id=(first + fills - 1).astype(np.int64),
            trade_time_ms=times,
            buyer_is_maker=rng.random(n) < 0.5,
        )
