"""Ticks -> OHLCV bars with Binance kline semantics, and alignment of two symbols. Pure code.

A bar of timeframe ``tf`` holds the trades with ``floor(T / tf) * tf == open_time`` (epoch ms, trade
time ``T``). ``open``/``close`` are the prices of the first/last trade by aggregate id, ``high``/
``low`` the extremes, ``volume = sum(q)``, ``quote_volume = sum(p * q)``,
``trades = sum(l - f + 1)`` (individual trades, as klines count them) and
``taker_buy_volume = sum(q where m is false)``. An interval without trades between a symbol's
first and last trade is a flat bar at the previous close with zero volume and zero trades.

Live bars are kept as dense 1-second arrays (``SecondBars``); 1m and 5m bars are derived from
them, which is exact for every OHLCV field because each 1m/5m interval is a whole number of
seconds.
"""

from __future__ import annotations

import numpy as np

from backend.store.records import BAR_COLUMNS, TIMEFRAMES_MS, Bars, TradeBatch
from backend.store.timeframes import FOLD_MS, FOLDED

_EMPTY_ID = -1
_LOADED_ID = -2  # seconds seeded from storage: traded, ids unknown, before any live trade
_FLOAT_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume")
_INT_COLUMNS = ("trades", "first_id", "last_id")


def group_seconds(batch: TradeBatch) -> dict[str, np.ndarray]:
    """Per-second partial bars of a batch: one row per distinct second, ascending.

    Rows are grouped by second and ordered by aggregate id inside each second, so that open and
    close follow the id order even when a batch mixes stream and backfilled trades.
    """
    sec = batch.trade_time_ms // 1000
    ids = batch.agg_id
    if len(ids) > 1 and not (np.all(np.diff(sec) >= 0) and np.all(np.diff(ids) > 0)):
        order = np.lexsort((ids, sec))
        batch = batch.take(order)
        sec, ids = sec[order], batch.agg_id
    price, qty = batch.price, batch.qty
    starts = np.flatnonzero(np.diff(sec)) + 1
    starts = np.concatenate(([0], starts)) if len(sec) else starts
    ends = np.append(starts[1:], len(sec)) - 1
    taker_buy = np.where(batch.buyer_is_maker, 0.0, qty)
    return {
        "second": sec[starts],
        "open": price[starts],
        "high": np.maximum.reduceat(price, starts),
        "low": np.minimum.reduceat(price, starts),
        "close": price[ends],
        "volume": np.add.reduceat(qty, starts),
        "quote_volume": np.add.reduceat(price * qty, starts),
        "taker_buy_volume": np.add.reduceat(taker_buy, starts),
        "trades": np.add.reduceat(batch.last_trade_id - batch.first_trade_id + 1, starts),
        "first_id": ids[starts],
        "last_id": ids[ends],
    }


class SecondBars:
    """Dense 1-second bars of one symbol, updated per batch of trades. Not thread-safe: the
    tick store owns one per symbol and calls it under its lock.

    Index ``i`` is the second ``origin_s + i``; an empty second has ``first_id == -1`` and NaN
    prices until it is read, when it becomes a flat bar.
    """

    def __init__(self, symbol: str, capacity_s: int = 4096) -> None:
        self.symbol = symbol
        self.origin_s: int | None = None
        self.length = 0  # one past the last second with a trade
        self._cap = max(16, capacity_s)
        self._cols = self._alloc(self._cap)
        self._dirty_from: int | None = None  # first index changed since take_dirty()
        self._seed_close = np.nan  # close of the last traded second dropped by drop_before()

    @staticmethod
    def _alloc(n: int) -> dict[str, np.ndarray]:
        cols = {name: np.full(n, np.nan) for name in ("open", "high", "low", "close")}
        for name in ("volume", "quote_volume", "taker_buy_volume"):
            cols[name] = np.zeros(n)
        cols["trades"] = np.zeros(n, np.int64)
        cols["first_id"] = np.full(n, _EMPTY_ID, np.int64)
        cols["last_id"] = np.full(n, _EMPTY_ID, np.int64)
        return cols

    def _reserve(self, lo_s: int, hi_s: int) -> None:
        """Make room for seconds ``lo_s..hi_s`` (a late trade may precede the origin)."""
        if self.origin_s is None:
            self.origin_s = lo_s
        shift = max(0, self.origin_s - lo_s)
        need = max(hi_s - self.origin_s + 1, self.length) + shift
        if shift == 0 and need <= self._cap:
            return
        cap = max(need, 2 * self._cap)
        fresh = self._alloc(cap)
        for name, col in self._cols.items():
            fresh[name][shift : shift + self.length] = col[: self.length]
        self._cols, self._cap = fresh, cap
        self.origin_s -= shift
        self.length += shift if self.length else 0
        if self._dirty_from is not None:
            self._dirty_from += shift

    def add(self, batch: TradeBatch) -> None:
        if len(batch) == 0:
            return
        self.merge(group_seconds(batch))

    def merge(self, g: dict[str, np.ndarray]) -> None:
        """Fold per-second partial bars (``group_seconds`` output) into the dense arrays."""
        sec = g["second"]
        self._reserve(int(sec.min()), int(sec.max()))
        c = self._cols
        idx = sec - self.origin_s
        empty = c["first_id"][idx] == _EMPTY_ID
        earlier = empty | (g["first_id"] < c["first_id"][idx])
        later = empty | (g["last_id"] > c["last_id"][idx])
        c["open"][idx] = np.where(earlier, g["open"], c["open"][idx])
        c["first_id"][idx] = np.where(earlier, g["first_id"], c["first_id"][idx])
        c["close"][idx] = np.where(later, g["close"], c["close"][idx])
        c["last_id"][idx] = np.where(later, g["last_id"], c["last_id"][idx])
        c["high"][idx] = np.fmax(c["high"][idx], g["high"])
        c["low"][idx] = np.fmin(c["low"][idx], g["low"])
        for name in ("volume", "quote_volume", "taker_buy_volume", "trades"):
            c[name][idx] += g[name]
        lo = int(idx.min())
        if int(idx.max()) >= self.length:
            # The seconds between the old end and the new trades are now flat bars: changed too.
            lo = min(lo, self.length)
        self.length = max(self.length, int(idx.max()) + 1)
        self._dirty_from = lo if self._dirty_from is None else min(self._dirty_from, lo)

    def load(self, bars: Bars) -> None:
        """Seed from stored 1s bars (history). Stored bars carry no trade ids, so they are given
        an id below every real one: a trade that arrives later follows them."""
        if len(bars) == 0:
            return
        traded = bars.trades > 0
        g = {name: getattr(bars, name)[traded] for name in BAR_COLUMNS if name != "open_time"}
        g["second"] = bars.open_time[traded] // 1000
        g["first_id"] = np.full(int(traded.sum()), _LOADED_ID, np.int64)
        g["last_id"] = g["first_id"]
        if len(g["second"]):
            self.merge(g)
        self._dirty_from = None

    def locate(self, agg_id: int) -> tuple[int, int] | None:
        """``(open_time_ms, first_id)`` of the traded second holding ``agg_id``, or None.

        Ids rise with trade time, so it is the first second whose last id reaches ``agg_id``.
        None if that second came from storage (its ids are unknown) or no second holds it.
        """
        if self.origin_s is None:
            return None
        last_ids = self._cols["last_id"][: self.length]
        hits = np.flatnonzero(last_ids >= agg_id)
        if not len(hits):
            return None
        i = int(hits[0])
        first = int(self._cols["first_id"][i])
        if first < 0 or first > agg_id:
            return None
        return (self.origin_s + i) * 1000, first

    def take_dirty(self) -> int | None:
        """Open time (ms) of the first second changed since the last call, or None."""
        lo, self._dirty_from = self._dirty_from, None
        return None if lo is None or self.origin_s is None else (self.origin_s + lo) * 1000

    def bars(self, timeframe: str = "1s", since_ms: int | None = None) -> Bars:
        """Bars of ``timeframe`` with flat bars filled in; from the bar holding ``since_ms``."""
        tf_s = TIMEFRAMES_MS[timeframe] // 1000
        if self.origin_s is None or self.length == 0:
            return Bars.empty(self.symbol, timeframe)
        start = 0
        if since_ms is not None:
            since_s = since_ms // 1000 // tf_s * tf_s
            # Read from the previous traded second so that a flat bar knows its close.
            start = min(max(0, since_s - self.origin_s), self.length)
        return self._range(timeframe, start, self.length)

    def drop_before(self, cut_s: int) -> dict[str, Bars]:
        """Forget the seconds before ``cut_s`` (a multiple of ``FOLD_MS``, so every folded bar
        is whole on one side). Returns the folded bars (1m, 5m) of the dropped seconds, for the
        caller to keep; bars read afterwards are unchanged from that point on."""
        fold_s = FOLD_MS // 1000
        if self.origin_s is None or cut_s <= self.origin_s or cut_s % fold_s:
            raise ValueError(
                f"cut must be a {fold_s // 60}-minute boundary after the first second held"
            )
        k = min(cut_s - self.origin_s, self.length)
        folded = {tf: self._range(tf, 0, k) for tf in FOLDED}
        traded = np.flatnonzero(self._cols["first_id"][:k] != _EMPTY_ID)
        if len(traded):
            self._seed_close = float(self._cols["close"][traded[-1]])
        # Room for as many seconds as were dropped and a little more: the next fold comes
        # before the arrays must grow, so they stay at the bound instead of doubling past it.
        self._cap = max(16, self.length + fold_s)
        fresh = self._alloc(self._cap)
        for name, col in self._cols.items():  # new arrays: the dropped memory is freed
            fresh[name][: self.length - k] = col[k : self.length]
        self._cols = fresh
        self.origin_s, self.length = cut_s, self.length - k
        if self._dirty_from is not None:
            self._dirty_from = max(0, self._dirty_from - k)
        return folded

    def _range(self, timeframe: str, start: int, end: int) -> Bars:
        """Bars of ``timeframe`` from the seconds at indices ``start..end-1``."""
        tf_s = TIMEFRAMES_MS[timeframe] // 1000
        lead = 0
        prev_close = self._seed_close
        if start > 0:
            traded = np.flatnonzero(self._cols["first_id"][:start] != _EMPTY_ID)
            if len(traded):
                prev_close = self._cols["close"][traded[-1]]
        cols = {name: col[start:end] for name, col in self._cols.items()}
        first_s = self.origin_s + start
        if tf_s > 1:
            lead = first_s % tf_s
            cols = _aggregate(cols, lead, tf_s)
            first_s -= lead
        out = _flat_filled(cols, prev_close)
        open_time = (first_s + np.arange(len(out["close"])) * tf_s) * 1000
        return Bars(self.symbol, timeframe, open_time, **{k: out[k] for k in BAR_COLUMNS[1:]})


def _aggregate(cols: dict[str, np.ndarray], lead: int, tf_s: int) -> dict[str, np.ndarray]:
    """1s columns -> ``tf_s`` columns. ``lead`` empty seconds pad the front to a boundary."""
    n = len(cols["close"])
    rows = -(-(lead + n) // tf_s)
    tail = rows * tf_s - lead - n

    def grid(name: str, fill) -> np.ndarray:
        col = cols[name]
        return np.concatenate(
            (np.full(lead, fill, col.dtype), col, np.full(tail, fill, col.dtype))
        ).reshape(rows, tf_s)

    traded = grid("first_id", _EMPTY_ID) != _EMPTY_ID
    has = traded.any(axis=1)
    first = traded.argmax(axis=1)
    last = tf_s - 1 - traded[:, ::-1].argmax(axis=1)
    r = np.arange(rows)
    out = {
        "open": grid("open", np.nan)[r, first],
        "close": grid("close", np.nan)[r, last],
        "high": np.fmax.reduce(grid("high", np.nan), axis=1),
        "low": np.fmin.reduce(grid("low", np.nan), axis=1),
        "first_id": np.where(has, 0, _EMPTY_ID),
    }
    for name in ("volume", "quote_volume", "taker_buy_volume", "trades"):
        out[name] = grid(name, 0).sum(axis=1)
    return out


def _flat_filled(cols: dict[str, np.ndarray], prev_close: float) -> dict[str, np.ndarray]:
    """Empty bars become flat at the previous close; copies, so the caller may keep them."""
    traded = cols["first_id"] != _EMPTY_ID
    out = {name: np.array(cols[name]) for name in BAR_COLUMNS[1:]}
    if traded.all():
        return out
    last_traded = np.maximum.accumulate(np.where(traded, np.arange(len(traded)), -1))
    close = np.where(last_traded >= 0, out["close"][np.maximum(last_traded, 0)], prev_close)
    for name in ("open", "high", "low", "close"):
        out[name] = np.where(traded, out[name], close)
    return out


def bars_from_trades(batch: TradeBatch, timeframe: str) -> Bars:
    """Bars of ``timeframe`` from a batch of trades (any order; ids unique)."""
    bars = SecondBars(batch.symbol)
    bars.add(batch)
    return bars.bars(timeframe)


def align(a: Bars, b: Bars) -> tuple[Bars, Bars]:
    """The bars of two symbols restricted to the open times both have, in time order."""
    step = TIMEFRAMES_MS.get(a.timeframe)
    if step and a.timeframe == b.timeframe and _regular(a, step) and _regular(b, step):
        # Live bars are dense (flat bars filled): the overlap is a slice of each, no search.
        lo = max(int(a.open_time[0]), int(b.open_time[0]))
        hi = min(int(a.open_time[-1]), int(b.open_time[-1]))
        if hi < lo:
            return a.slice(0, 0), b.slice(0, 0)
        ia, ib = (lo - int(a.open_time[0])) // step, (lo - int(b.open_time[0])) // step
        n = (hi - lo) // step + 1
        return a.slice(ia, ia + n), b.slice(ib, ib + n)
    _, ia, ib = np.intersect1d(a.open_time, b.open_time, assume_unique=True, return_indices=True)
    return _take(a, ia), _take(b, ib)


def align_many(bars: list[Bars]) -> list[Bars]:
    """The bars of several symbols restricted to the open times all of them have."""
    if not bars:
        return []
    common = bars[0].open_time
    for b in bars[1:]:
        common = np.intersect1d(common, b.open_time, assume_unique=True)
    return [_take(b, np.searchsorted(b.open_time, common)) for b in bars]


def _regular(bars: Bars, step: int) -> bool:
    return len(bars) > 0 and bool((np.diff(bars.open_time) == step).all())


def _take(bars: Bars, index: np.ndarray) -> Bars:
    return Bars(bars.symbol, bars.timeframe, *(getattr(bars, n)[index] for n in BAR_COLUMNS))


def fold_bars(bars: Bars, timeframe: str, first_is_whole: bool = False) -> Bars:
    """Bars of the longer ``timeframe`` from consecutive shorter ones (e.g. 1m -> 1h), with
    Binance's kline semantics: a bar holds the shorter bars whose open time floors to its own.
    Only bars with trades count for open, high, low and close (a bar without trades is flat at
    the close before it: it must not set a high or an open); volumes and trade counts add up.
    A group without any trade is flat at the close of the group before it.

    Exact when ``bars`` holds every shorter bar of each group: a first group that starts before
    ``bars`` does is partial, and left out, unless ``first_is_whole`` (nothing traded before
    ``bars`` start: the symbol was listed then)."""
    step = TIMEFRAMES_MS[timeframe]
    if not len(bars):
        return Bars.empty(bars.symbol, timeframe)
    group = bars.open_time // step * step
    first = 0
    if group[0] != bars.open_time[0] and not first_is_whole:  # it starts inside a group
        first = int(np.searchsorted(group, group[0], "right"))
    if first == len(bars):
        return Bars.empty(bars.symbol, timeframe)
    group = group[first:]
    cols = {name: getattr(bars, name)[first:] for name in BAR_COLUMNS[1:]}
    starts = np.concatenate(([0], np.flatnonzero(np.diff(group)) + 1))
    n = len(group)
    traded = cols["trades"] > 0
    index = np.arange(n)
    first_traded = np.minimum.reduceat(np.where(traded, index, n), starts)
    last_traded = np.maximum.reduceat(np.where(traded, index, -1), starts)
    has = first_traded < n
    flat = cols["close"][starts]  # an untraded group: its first bar is flat at the close before
    out = {
        "open": np.where(has, cols["open"][np.minimum(first_traded, n - 1)], flat),
        "close": np.where(has, cols["close"][np.maximum(last_traded, 0)], flat),
        "high": np.where(
            has, np.fmax.reduceat(np.where(traded, cols["high"], np.nan), starts), flat
        ),
        "low": np.where(has, np.fmin.reduceat(np.where(traded, cols["low"], np.nan), starts), flat),
    }
    for name in ("volume", "quote_volume", "taker_buy_volume", "trades"):
        out[name] = np.add.reduceat(cols[name], starts)
    out["trades"] = out["trades"].astype(np.int64)
    return Bars(bars.symbol, timeframe, group[starts], **{k: out[k] for k in BAR_COLUMNS[1:]})
