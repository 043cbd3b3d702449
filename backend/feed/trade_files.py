"""Trade files: recorded trades and data.binance.vision aggTrades files, parsed and validated.

Used by the replay source and by uploads. Loaders accept the recorded formats in
``data/`` (see its README):

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
import re
import zipfile
from collections import Counter
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np

from backend.store.records import MAX_PRICE, MAX_QTY, TradeBatch, sane_price_qty

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
            if not sane_price_qty(tick.price, tick.size):
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
    if not sane_price_qty(price, qty).all():
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
        if not sane_price_qty(values[1], values[2]):
            raise SourceFormatError(
                f"{name}: row {lineno}: price and quantity must be positive (and below "
                f"{MAX_PRICE:g} and {MAX_QTY:g})"
            )
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
        joined = _joined(symbol, batches)
        if len(joined):
            merged[symbol] = joined
    if not merged:
        names = ", ".join(Path(p).name for p in paths)
        raise SourceFormatError(f"no trade to replay in {names}")
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
