"""Simulated mark price, index price and funding for the local exchange.

Binance's funding rate is mostly the premium of the perpetual over its index plus a small
interest term; here each symbol's premium is an Ornstein-Uhlenbeck process (mean 0, stationary
standard deviation ``premium_sd``, time constant ``premium_tau_s``), so the rate wanders around
+0.01 % per 8 h and changes sign every few minutes. The index is the last traded price (the
simulation has no spot market); the mark is the index times (1 + premium).
"""

from __future__ import annotations

import math

import numpy as np

from backend.store.records import FundingEvents, MarkPrice

DEFAULT_INTERVAL_H = 8
INTEREST_PER_8H = 0.0001  # Binance's interest component: 0.01 % per 8 h
_HOUR_MS = 3_600_000


class FundingSim:
    """``marks(now_ms, last_prices)`` advances every premium to ``now_ms`` and returns one
    ``MarkPrice`` per symbol with a last price. ``fixed_rates`` pins a symbol's funding rate
    (for hand-worked tests); ``intervals_h`` overrides the funding intervals, which by default
    cycle 8, 8, 4, 1 hours over the symbols (Binance has all three)."""

    def __init__(
        self,
        symbols: list[str],
        seed: int = 11,
        intervals_h: dict[str, int] | None = None,
        fixed_rates: dict[str, float] | None = None,
        premium_sd: float = 0.0003,
        premium_tau_s: float = 600.0,
    ) -> None:
        self.symbols = list(symbols)
        self.intervals_h = {s: (8, 8, 4, 1)[i % 4] for i, s in enumerate(self.symbols)}
        self.intervals_h.update(intervals_h or {})
        self.fixed_rates = dict(fixed_rates or {})
        self._rng = np.random.default_rng(seed)
        self._sd, self._tau_s = premium_sd, premium_tau_s
        self._premium = self._rng.normal(0.0, premium_sd, len(self.symbols))
        self._t_ms: int | None = None
        self._seed = seed
        self._started_ms: int | None = None
        # Rates settled since the exchange started: the last one published before each
        # funding time, as Binance charges it.
        self._settled: dict[str, dict[int, float]] = {s: {} for s in self.symbols}
        self._pending: dict[str, tuple[int, float]] = {}

    def _advance(self, now_ms: int) -> None:
        if self._t_ms is not None and now_ms > self._t_ms:
            # Exact OU step over dt: decay, plus noise keeping the stationary variance.
            decay = math.exp(-(now_ms - self._t_ms) / 1000 / self._tau_s)
            noise = self._rng.normal(0.0, self._sd * math.sqrt(1 - decay**2), len(self.symbols))
            self._premium = self._premium * decay + noise
        self._t_ms = now_ms if self._t_ms is None else max(self._t_ms, now_ms)

    def marks(self, now_ms: int, last_prices: dict[str, float]) -> list[MarkPrice]:
        self._advance(now_ms)
        out = []
        for i, s in enumerate(self.symbols):
            index = last_prices.get(s)
            if index is None:
                continue
            hours = self.intervals_h[s]
            premium = float(self._premium[i])
            rate = self.fixed_rates.get(s, (premium + INTEREST_PER_8H) * hours / 8)
            step = hours * _HOUR_MS
            next_ms = (now_ms // step + 1) * step
            pending = self._pending.get(s)
            if pending is not None and pending[0] <= now_ms:
                self._settled[s][pending[0]] = pending[1]
            self._pending[s] = (next_ms, rate)
            out.append(MarkPrice(s, now_ms, index * (1 + premium), index, rate, next_ms))
        if self._started_ms is None:
            self._started_ms = now_ms
        return out

    def history(self, symbol: str, start_ms: int, end_ms: int, limit: int) -> FundingEvents:
        """``GET /fapi/v1/fundingRate``: the rates charged at ``symbol``'s funding times in
        ``[start_ms, end_ms]`` (the earliest ``limit``). Times the exchange lived through
        carry the rate it published last before them; earlier ones a seeded draw around the
        interest rate (the same for every request)."""
        hours = self.intervals_h[symbol]
        step = hours * _HOUR_MS
        first = -(-start_ms // step) * step
        times = np.arange(first, end_ms + 1, step, dtype=np.int64)[: max(0, limit)]
        settled = self._settled.get(symbol, {})
        index = self.symbols.index(symbol)
        rates = np.array(
            [
                settled[int(t)] if int(t) in settled else self._past_rate(index, int(t), hours)
                for t in times
            ],
            dtype=np.float64,
        )
        return FundingEvents(symbol, times, rates)

    def _past_rate(self, index: int, time_ms: int, hours: int) -> float:
        symbol = self.symbols[index]
        if symbol in self.fixed_rates:
            return self.fixed_rates[symbol]
        rng = np.random.default_rng((self._seed, index, time_ms // _HOUR_MS))
        return (float(rng.normal(0.0, self._sd)) + INTEREST_PER_8H) * hours / 8

    def funding_info(self) -> list[dict]:
        """``GET /fapi/v1/fundingInfo``: like Binance, only the symbols whose interval (or cap)
        was adjusted from the default are listed."""
        return [
            {
                "symbol": s,
                "adjustedFundingRateCap": "0.02000000",
                "adjustedFundingRateFloor": "-0.02000000",
                "fundingIntervalHours": h,
                "disclaimer": False,
            }
            for s, h in self.intervals_h.items()
            if h != DEFAULT_INTERVAL_H
        ]
