"""Trade sources for the local exchange: recorded files (replay) and a seeded simulation.

Loaders accept the recorded formats in ``shared/data`` (see its README):

* NDJSON ``{"symbol":"BTCUSDT","ts":"2025-12-15T08:43:15.443Z","price":89806.8,"size":0.002}``
  (no ids, no side: trades are numbered consecutively per symbol and the side follows the tick
  rule: an uptick is a taker buy, a downtick a taker sell, an unchanged price keeps the side);
* data.binance.vision aggTrades files as downloaded (``.zip`` holding one ``.csv``, or the
  ``.csv``), a day each; several days of one symbol are joined by aggregate id;
* aggTrades CSV, spot layout (headerless, 8 columns, ``transact_time`` in
  microseconds from 2025) and USD-M futures layout (a header row, 7 columns, milliseconds):
  ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker[,is_best_match]``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import zipfile
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
    """A data.binance.vision aggTrades file (spot or USD-M futures layout), ``.csv`` or the
    ``.zip`` it is published in."""
    if symbol is None:
        match = _SYMBOL_IN_NAME.search(Path(path).name)
        if not match:
            raise SourceFormatError(f"{path}: name the symbol (the file name does not say it)")
        symbol = match.group(1).upper()
    if str(path).endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                members = [n for n in zf.namelist() if n.endswith(".csv")]
                if len(members) != 1:
                    raise SourceFormatError(f"{path}: expected one .csv inside, found {members}")
                data = zf.read(members[0])
        except zipfile.BadZipFile as exc:
            raise SourceFormatError(f"{path}: not a zip file ({exc})") from exc
    else:
        with open(path, "rb") as fh:
            data = fh.read()
    return _fast_agg_trades_csv(data, symbol, str(path))


def _fast_agg_trades_csv(data: bytes, symbol: str, name: str) -> TradeBatch:
    """pandas' C parser for a whole day (millions of rows); any doubt goes to the row-by-row
    parser, which names the bad row."""
    import pandas as pd

    header = 0 if data[:1].isalpha() else None
    try:
        frame = pd.read_csv(io.BytesIO(data), header=header, dtype_backend="numpy_nullable")
    except (ValueError, pd.errors.ParserError):
        return parse_agg_trades_csv(data, symbol, name)
    cols = [frame.iloc[:, i] for i in range(min(frame.shape[1], 7))]
    ints = (0, 3, 4, 5)
    if (
        frame.shape[1] not in (7, 8)
        or frame.isna().any().any()
        or any(not pd.api.types.is_integer_dtype(cols[i]) for i in ints)
        or not all(pd.api.types.is_numeric_dtype(cols[i]) for i in (1, 2))
        or not pd.api.types.is_bool_dtype(cols[6])
    ):
        return parse_agg_trades_csv(data, symbol, name)
    price, qty = (cols[i].to_numpy(np.float64) for i in (1, 2))
    if not (np.isfinite(price + qty).all() and (price > 0).all() and (qty > 0).all()):
        return parse_agg_trades_csv(data, symbol, name)
    times = cols[5].to_numpy(np.int64)
    if len(times) and times.max() > 10**14:  # microseconds (spot files from 2025 on)
        times = times // 1000
    return TradeBatch(
        symbol,
        agg_id=cols[0].to_numpy(np.int64),
        price=price,
        qty=qty,
        first_trade_id=cols[3].to_numpy(np.int64),
        last_trade_id=cols[4].to_numpy(np.int64),
        trade_time_ms=times,
        buyer_is_maker=cols[6].to_numpy(np.bool_),
    )


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
        merged[symbol] = _joined(symbol, batches)
    return merged


def _joined(symbol: str, batches: list[TradeBatch]) -> TradeBatch:
    """Days of one symbol as one tape, in id order; overlapping files count each trade once.
    Numbered files (NDJSON) carry no real ids, so they cannot be joined."""
    if len(batches) == 1:
        return batches[0]
    if any(int(b.agg_id[0]) == SYNTHETIC_ID_BASE for b in batches if len(b)):
        raise SourceFormatError(f"{symbol} appears in more than one file; give one per symbol")
    joined = TradeBatch.concat(symbol, batches)
    _, first = np.unique(joined.agg_id, return_index=True)
    joined = joined.take(first)  # unique sorts by id
    if len(joined) > 1 and (np.diff(joined.agg_id) != 1).any():
        gaps = int((np.diff(joined.agg_id) != 1).sum())
        raise SourceFormatError(f"{symbol}: the files leave {gaps} gap(s) in the aggregate ids")
    return joined


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

    def history(
        self, now_ms: int, seconds: int, recent_s: int = 3600, old_rate_per_s: float = 0.5
    ) -> dict[str, TradeBatch]:
        """The ``seconds`` before ``now_ms``, generated at once (vectorised, 1 s steps of the
        same model), so that a start shows days of bars; the live ``advance`` continues from
        where it ends. The last ``recent_s`` trade at each symbol's full rate; before that at
        ``old_rate_per_s`` (days at full rate would be millions of trades for nothing: 1m and
        5m bars need only a few trades each)."""
        if seconds <= 0:
            return {}
        from scipy.signal import lfilter

        rng = self._rng
        start_s = now_ms // 1000 - seconds
        x, *_ = self.symbols
        paths = {x: self._log[x] + np.cumsum(rng.normal(0, self._vol, seconds))}
        phi = math.exp(-self._kappa)  # the OU spread sampled every second, exactly
        step_sd = self._spread_vol * math.sqrt((1 - phi**2) / (2 * self._kappa))
        shocks = rng.normal(0, step_sd, seconds)
        shocks[0] += phi * self._spread
        spread = lfilter([1.0], [1.0, -phi], shocks)
        if len(self.symbols) > 1:
            paths[self.symbols[1]] = self._alpha + self.beta * paths[x] + spread
        for other in self.symbols[2:]:
            paths[other] = self._log[other] + np.cumsum(rng.normal(0, self._vol, seconds))
        out = {}
        recent = np.arange(seconds) >= seconds - recent_s
        for symbol, path in paths.items():
            rate = np.where(recent, self._specs[symbol][3], old_rate_per_s)
            per_second = rng.poisson(rate)
            sec = np.repeat(np.arange(seconds), per_second)
            times = np.sort((start_s + sec) * 1000 + rng.integers(0, 1000, len(sec)))
            mid = np.exp(path[(times // 1000 - start_s).astype(np.int64)])
            out[symbol] = self._make_trades(symbol, times.astype(np.int64), mid)
            self._log[symbol] = float(path[-1])
        self._spread = float(spread[-1])
        self._clock_ms = now_ms
        return {s: b for s, b in out.items() if len(b)}

    def _trades(self, symbol: str, after_ms: int, until_ms: int) -> TradeBatch:
        rate = self._specs[symbol][3]
        n = self._rng.poisson(rate * (until_ms - after_ms) / 1000)
        times = np.sort(self._rng.integers(after_ms + 1, until_ms + 1, n)).astype(np.int64)
        return self._make_trades(symbol, times, np.full(n, math.exp(self._log[symbol])))

    def _make_trades(self, symbol: str, times: np.ndarray, mid: np.ndarray) -> TradeBatch:
        tick, step, _, _ = self._specs[symbol]
        rng = self._rng
        n = len(times)
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
