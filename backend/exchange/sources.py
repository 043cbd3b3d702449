"""Trade sources for the local exchange: recorded files (``backend.feed.trade_files``, replayed) and a
seeded simulation of cointegrated pairs."""

from __future__ import annotations

import math

import numpy as np

from backend.feed.trade_files import (  # noqa: F401 - the replay source's loaders, re-exported
    SYNTHETIC_ID_BASE,
    SourceFormatError,
    load_agg_trades_csv,
    load_files,
    load_ndjson,
    parse_agg_trades_csv,
)
from backend.store.records import Bars, Instrument, TradeBatch

# Tick size, quantity step, start price and arrivals per second of the simulated symbols.
_SIM_SPECS = {
    "BTCUSDT": (0.1, 0.001, 90_000.0, 12.0),
    "ETHUSDT": (0.01, 0.001, 3_100.0, 20.0),
}
_SIM_DEFAULT_SPEC = (0.001, 0.1, 100.0, 5.0)
# Minimum order notional (USDT) as Binance lists it: 100 for BTCUSDT, 20 for ETHUSDT, 5 most.
_MIN_NOTIONAL = {"BTCUSDT": 100.0, "ETHUSDT": 20.0}


def instrument(symbol: str) -> Instrument:
    """The local exchange's trading rules for ``symbol`` (``exchangeInfo`` filters): the tick
    and step the simulation trades on, and Binance's minimum notional."""
    tick, step, _, _ = _SIM_SPECS.get(symbol, _SIM_DEFAULT_SPEC)
    return Instrument(symbol, step, step, _MIN_NOTIONAL.get(symbol, 5.0), tick)


def _on_tick(price: np.ndarray, tick: float) -> np.ndarray:
    return np.maximum(np.round(price / tick) * tick, tick)


class Simulator:
    """A seeded market of cointegrated pairs and lone random walks. The first two symbols are
    the pair ``log y = alpha + beta * log x + u``, ``x`` (the first) a random walk and ``u`` an
    Ornstein-Uhlenbeck spread (half-life ``half_life_s``). The further symbols come in threes:
    a random walk, a symbol cointegrated with it the same way (its own beta and spread), and a
    lone walk; ``cointegrated_pairs`` names the pairs. Trades arrive as Poisson processes at
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
        self._log = {s: math.log(self._specs[s][2]) for s in self.symbols}
        # follower -> (leader, beta, alpha): alpha puts the follower at its start price.
        self._follows: dict[str, tuple[str, float, float]] = {}
        n = len(self.symbols)
        pairs = [(0, 1, beta)] + [(i, i + 1, 0.5 + 0.1 * (i // 3)) for i in range(2, n - 1, 3)]
        for lead, follow, b in pairs:
            if follow >= len(self.symbols):
                break
            x, y = self.symbols[lead], self.symbols[follow]
            self._follows[y] = (x, b, self._log[y] - b * self._log[x])
        self._spread = dict.fromkeys(self._follows, 0.0)
        self._clock_ms = start_ms
        self._next_id = dict.fromkeys(self.symbols, SYNTHETIC_ID_BASE)
        self._next_trade_id = dict.fromkeys(self.symbols, 2 * SYNTHETIC_ID_BASE)

    def cointegrated_pairs(self) -> list[tuple[str, str]]:
        """The (leader, follower) pairs the simulation ties together; every other pair of its
        symbols is not cointegrated."""
        return [(lead, follow) for follow, (lead, _, _) in self._follows.items()]

    def advance(self, until_ms: int) -> dict[str, TradeBatch]:
        """Trades with times in ``(clock, until_ms]``; the clock moves to ``until_ms``."""
        if self._clock_ms == 0:
            self._clock_ms = until_ms - 1
        span_ms = until_ms - self._clock_ms
        if span_ms <= 0:
            return {}
        dt_s = span_ms / 1000
        rng = self._rng
        # A walker takes a shock; a follower's spread takes one and it follows its leader
        # (always an earlier symbol) through its beta.
        for symbol in self.symbols:
            if symbol not in self._follows:
                self._log[symbol] += rng.normal(0, self._vol * math.sqrt(dt_s))
                continue
            u = self._spread[symbol]
            u += -self._kappa * u * dt_s + rng.normal(0, self._spread_vol * math.sqrt(dt_s))
            self._spread[symbol] = u
            lead, b, a = self._follows[symbol]
            self._log[symbol] = a + b * self._log[lead] + u
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
        phi = math.exp(-self._kappa)  # the OU spread sampled every second, exactly
        step_sd = self._spread_vol * math.sqrt((1 - phi**2) / (2 * self._kappa))
        paths, spreads = {}, {}
        for symbol in self.symbols:
            if symbol not in self._follows:
                paths[symbol] = self._log[symbol] + np.cumsum(rng.normal(0, self._vol, seconds))
                continue
            shocks = rng.normal(0, step_sd, seconds)
            shocks[0] += phi * self._spread[symbol]
            spreads[symbol] = lfilter([1.0], [1.0, -phi], shocks)
            lead, b, a = self._follows[symbol]
            paths[symbol] = a + b * paths[lead] + spreads[symbol]
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
        self._spread |= {s: float(u[-1]) for s, u in spreads.items()}
        self._clock_ms = now_ms
        return {s: b for s, b in out.items() if len(b)}

    def deep_minutes(self, end_ms: int, minutes: int, rate_per_s: float = 0.5) -> dict[str, Bars]:
        """1m bars of the ``minutes`` before ``end_ms`` (floored to a minute), the same model
        sampled every minute (the spread's Ornstein-Uhlenbeck step exact at 60 s), for months of
        klines without months of trades; ``history`` and ``advance`` continue from where they
        end. Each bar opens at the close before it; high and low reach a little beyond; trades
        Poisson at ``rate_per_s`` (at least one a minute)."""
        if minutes <= 0:
            return {}
        from scipy.signal import lfilter

        rng, step_s = self._rng, 60.0
        start = (end_ms // 60_000 - minutes) * 60_000
        phi = math.exp(-self._kappa * step_s)
        spread_sd = self._spread_vol * math.sqrt((1 - phi**2) / (2 * self._kappa))
        paths, spreads = {}, {}
        for symbol in self.symbols:
            if symbol not in self._follows:
                walk = rng.normal(0, self._vol * math.sqrt(step_s), minutes)
                paths[symbol] = self._log[symbol] + np.cumsum(walk)
                continue
            shocks = rng.normal(0, spread_sd, minutes)
            shocks[0] += phi * self._spread[symbol]
            spreads[symbol] = lfilter([1.0], [1.0, -phi], shocks)
            lead, b, a = self._follows[symbol]
            paths[symbol] = a + b * paths[lead] + spreads[symbol]
        out = {}
        t = start + np.arange(minutes, dtype=np.int64) * 60_000
        for symbol, path in paths.items():
            tick, step, _, _ = self._specs[symbol]
            close = np.exp(path)
            open_ = np.concatenate(([math.exp(self._log[symbol])], close[:-1]))
            reach = np.exp(np.abs(rng.normal(0, 0.3 * self._vol * math.sqrt(step_s), (2, minutes))))
            o, c = _on_tick(open_, tick), _on_tick(close, tick)
            high = np.maximum(_on_tick(np.maximum(open_, close) * reach[0], tick), np.maximum(o, c))
            low = np.minimum(_on_tick(np.minimum(open_, close) / reach[1], tick), np.minimum(o, c))
            # At least one trade a minute: no quiet (flat) minute to model.
            trades = 1 + rng.poisson(max(rate_per_s * step_s - 1, 0), minutes).astype(np.int64)
            volume = np.round(trades * rng.lognormal(math.log(20 * step), 0.5, minutes) / step)
            volume = np.maximum(volume, 1) * step
            out[symbol] = Bars(
                symbol, "1m", t, np.round(o, 8), np.round(high, 8), np.round(low, 8),
                np.round(c, 8), volume, np.round(volume * (o + c) / 2, 8), trades,
                np.round(volume * rng.uniform(0.3, 0.7, minutes) / step) * step,
            )  # fmt: skip
            self._log[symbol] = float(path[-1])
        self._spread |= {s: float(u[-1]) for s, u in spreads.items()}
        return out

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
