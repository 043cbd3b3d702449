"""The published tape: each symbol's trades on the exchange, how many are public yet, and the
klines built from them with the client's own kline semantics."""

from __future__ import annotations

import numpy as np

from backend.store.records import TIMEFRAMES_MS, TRADE_COLUMNS, Bars, TradeBatch
from backend.store.resampling import SecondBars, fold_bars


class Published:
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
        # Simulated 1m bars before the first trade (months of klines without months of
        # trades): klines and data.binance.vision files are folded from them and the trades.
        self.deep: Bars | None = None

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

    def bars(self, timeframe: str, since: int | None = None) -> Bars:
        """Every bar of ``timeframe`` from the one holding ``since``: the simulated deep 1m bars
        and the bars of the published trades, folded together."""
        if self._in_klines < self.count:
            self._klines.add(self.take(np.arange(self._in_klines, self.count)))
            self._in_klines = self.count
        if self.deep is None or timeframe == "1s":
            return self._klines.bars(timeframe, since_ms=since)
        return _deep_and_tape(self.deep, self._klines.bars("1m"), timeframe, since)

    def klines(self, timeframe: str, start_ms, end_ms, limit: int) -> Bars:
        """Binance's selection: from ``start_ms`` forward, else the last ``limit`` up to
        ``end_ms`` (or up to now, the open kline included)."""
        step = TIMEFRAMES_MS[timeframe]
        if start_ms is not None:
            since = start_ms
        elif end_ms is not None:
            since = end_ms - limit * step
        else:
            since = None
        bars = self.bars(timeframe, since)
        keep = np.ones(len(bars), np.bool_)
        if start_ms is not None:
            keep &= bars.open_time >= start_ms
        if end_ms is not None:
            keep &= bars.open_time <= end_ms
        index = np.flatnonzero(keep)
        index = index[:limit] if start_ms is not None else index[max(0, len(index) - limit) :]
        return bars.slice(int(index[0]), int(index[-1]) + 1) if len(index) else bars.slice(0, 0)


def _deep_and_tape(deep: Bars, tape_minutes: Bars, timeframe: str, since: int | None) -> Bars:
    step = TIMEFRAMES_MS[timeframe]
    if since is not None:
        deep = deep.slice(int(np.searchsorted(deep.open_time, since // step * step)), len(deep))
    parts = [b for b in (deep, tape_minutes) if len(b)]
    minutes = Bars.concat(parts) if parts else deep
    out = minutes if timeframe == "1m" else fold_bars(minutes, timeframe, first_is_whole=True)
    if since is None:
        return out
    return out.slice(int(np.searchsorted(out.open_time + step, since, "right")), len(out))


def merge_in_time(per_symbol: dict[str, TradeBatch]) -> list:
    trades = [t for batch in per_symbol.values() for t in batch.trades()]
    trades.sort(key=lambda t: t.trade_time_ms)
    return trades
