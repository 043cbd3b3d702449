"""Blocking REST client for the Binance USD-M endpoints we use (stdlib HTTP, no session):
``aggTrades`` (by id or by time), ``klines``, ``exchangeInfo``, ``fundingInfo``,
``fundingRate``, ``ticker/24hr`` and ``time``."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

from backend.config import ConfigError
from backend.feed.wire import (
    RestFormatError,
    decode_funding_rates,
    decode_instruments,
    decode_rest_agg_trades,
    decode_rest_klines,
)
from backend.store.records import Bars, FundingEvents, Instrument, TradeBatch
from backend.store.timeframes import KLINE_TIMEFRAMES

log = logging.getLogger(__name__)

AGG_TRADES_LIMIT = 1000
KLINES_MAX_LIMIT = 1500
AGG_TRADES_MAX_SPAN_MS = 3_600_000  # startTime..endTime must be under an hour
WEIGHT_BUDGET_1M = 1800  # of Binance's 2400 a minute: leave room for other programs on the IP
AGG_TRADES_WEIGHT = 20


def klines_weight(limit: int) -> int:
    """Request weight of ``GET /fapi/v1/klines`` by ``limit`` (Binance's USD-M table)."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


DEFAULT_FUNDING_INTERVAL_H = 8  # what fundingInfo leaves out
FUNDING_RATE_LIMIT = 1000  # rows a fundingRate request returns at most


class RestError(RuntimeError):
    """A REST call that did not return data; ``retry_after_s`` when the server said when."""

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def rate_limited(self) -> bool:
        return self.status in (418, 429)

    @property
    def permanent(self) -> bool:
        """4xx other than rate limits: retrying the same request will not help."""
        return self.status is not None and 400 <= self.status < 500 and not self.rate_limited


class RestClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.used_weight_1m = 0
        self._lock = threading.Lock()
        self._not_before = 0.0  # monotonic time a Retry-After holds every request back to

    def _get(self, path: str, params: dict) -> bytes:
        # Retry-After binds the whole client (every thread using it), not only the request
        # that got it: Binance bans an IP that keeps asking while rate limited.
        with self._lock:
            wait_s = self._not_before - time.monotonic()
        if wait_s > 0:
            raise RestError(f"GET {path} held back: rate limited", 429, retry_after_s=wait_s)
        url = f"{self.base_url}{path}"
        if params:
            url += "?" + urlencode(params)
        request = urllib.request.Request(url, headers={"User-Agent": "pair-analytics/0.1"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                self.used_weight_1m = int(resp.headers.get("X-MBX-USED-WEIGHT-1M") or 0)
                return resp.read()
        except urllib.error.HTTPError as exc:
            retry = exc.headers.get("Retry-After") if exc.headers else None
            retry_s = float(retry) if retry and retry.isdigit() else None
            if retry_s and exc.code in (418, 429):
                with self._lock:
                    self._not_before = max(self._not_before, time.monotonic() + retry_s)
            raise RestError(
                f"GET {path} answered HTTP {exc.code}", status=exc.code, retry_after_s=retry_s
            ) from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise RestError(f"GET {path} failed: {getattr(exc, 'reason', exc)}") from exc

    @property
    def over_budget(self) -> bool:
        return self.used_weight_1m >= WEIGHT_BUDGET_1M

    def agg_trades(self, symbol: str, from_id: int, limit: int = AGG_TRADES_LIMIT) -> TradeBatch:
        """Up to ``limit`` aggregate trades of ``symbol`` with ids from ``from_id``, ascending."""
        body = self._get(
            "/fapi/v1/aggTrades", {"symbol": symbol, "fromId": from_id, "limit": limit}
        )
        return _trades(symbol, body)

    def agg_trades_from_time(
        self, symbol: str, start_ms: int, end_ms: int, limit: int = AGG_TRADES_LIMIT
    ) -> TradeBatch:
        """Aggregate trades with trade time in ``[start_ms, end_ms]`` (under an hour apart),
        oldest first, at most ``limit``."""
        end_ms = min(end_ms, start_ms + AGG_TRADES_MAX_SPAN_MS - 1)
        params = {"symbol": symbol, "startTime": start_ms, "endTime": end_ms, "limit": limit}
        return _trades(symbol, self._get("/fapi/v1/aggTrades", params))

    def klines(self, symbol: str, timeframe: str, end_ms: int, limit: int) -> Bars:
        """The ``limit`` klines of ``timeframe`` with open time at or before ``end_ms``."""
        return self._klines(symbol, timeframe, {"endTime": end_ms}, limit)

    def klines_from(self, symbol: str, timeframe: str, start_ms: int, limit: int) -> Bars:
        """Up to ``limit`` klines of ``timeframe`` with open time at or after ``start_ms``."""
        return self._klines(symbol, timeframe, {"startTime": start_ms}, limit)

    def _klines(self, symbol: str, timeframe: str, at: dict, limit: int) -> Bars:
        if timeframe not in KLINE_TIMEFRAMES:  # USD-M has no 1s klines: aggTrades instead
            raise ValueError(f"no USD-M klines for {timeframe!r}")
        params = {"symbol": symbol, "interval": timeframe, **at,
                  "limit": min(limit, KLINES_MAX_LIMIT)}  # fmt: skip
        body = self._get("/fapi/v1/klines", params)
        try:
            return decode_rest_klines(symbol, timeframe, body)
        except RestFormatError as exc:
            raise RestError(str(exc)) from exc

    def server_time_ms(self) -> int:
        body = self._get("/fapi/v1/time", {})
        try:
            return int(json.loads(body)["serverTime"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RestError(f"time has an unexpected shape: {exc}") from exc

    def perpetuals(self) -> set[str]:
        """Symbols of the perpetual contracts trading now (``exchangeInfo``)."""
        body = self._get("/fapi/v1/exchangeInfo", {})
        try:
            info = json.loads(body)
            return {
                s["symbol"]
                for s in info["symbols"]
                if s.get("contractType") == "PERPETUAL" and s.get("status") == "TRADING"
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise RestError(f"exchangeInfo has an unexpected shape: {exc}") from exc

    def quote_volumes_24h(self) -> dict[str, float]:
        """Every symbol's quote volume over the last 24 h (``GET /fapi/v1/ticker/24hr`` without a
        symbol, weight 40). One element of the answer::

            {"symbol": "BTCUSDT", "priceChange": "-94.99", "lastPrice": "90000.10",
             "volume": "150123.123", "quoteVolume": "13511230000.12", "openTime": 1765770000000,
             "closeTime": 1765856399999, "count": 3000000, ...}
        """
        body = self._get("/fapi/v1/ticker/24hr", {})
        try:
            return {t["symbol"]: float(t["quoteVolume"]) for t in json.loads(body)}
        except (ValueError, KeyError, TypeError) as exc:
            raise RestError(f"ticker/24hr has an unexpected shape: {exc}") from exc

    def funding_intervals(self, symbols: list[str]) -> dict[str, int]:
        """Each symbol's funding interval in hours. ``GET /fapi/v1/fundingInfo`` lists only the
        symbols whose interval or cap was adjusted; every other one settles every 8 h::

            [{"symbol": "BLZUSDT", "adjustedFundingRateCap": "0.02500000",
              "adjustedFundingRateFloor": "-0.02500000", "fundingIntervalHours": 4,
              "disclaimer": false}]
        """
        body = self._get("/fapi/v1/fundingInfo", {})
        try:
            listed = {i["symbol"]: int(i["fundingIntervalHours"]) for i in json.loads(body)}
        except (ValueError, KeyError, TypeError) as exc:
            raise RestError(f"fundingInfo has an unexpected shape: {exc}") from exc
        return {s: listed.get(s, DEFAULT_FUNDING_INTERVAL_H) for s in symbols}

    def instruments(self) -> dict[str, Instrument]:
        """Every listed symbol's lot size, minimum notional and tick (``exchangeInfo``)."""
        body = self._get("/fapi/v1/exchangeInfo", {})
        try:
            return decode_instruments(body)
        except RestFormatError as exc:
            raise RestError(str(exc)) from exc

    def funding_rates(self, symbol: str, start_ms: int, end_ms: int) -> FundingEvents:
        """The funding rates charged at ``symbol``'s funding times in ``[start_ms, end_ms]``,
        oldest first, at most ``FUNDING_RATE_LIMIT`` (``GET /fapi/v1/fundingRate``; it shares
        a limit of 500 requests in 5 minutes with ``fundingInfo``)."""
        params = {"symbol": symbol, "startTime": start_ms, "endTime": end_ms,
                  "limit": FUNDING_RATE_LIMIT}  # fmt: skip
        body = self._get("/fapi/v1/fundingRate", params)
        try:
            return decode_funding_rates(symbol, body)
        except RestFormatError as exc:
            raise RestError(str(exc)) from exc

    def trading_symbols(self) -> set[str]:
        body = self._get("/fapi/v1/exchangeInfo", {})
        try:
            info = json.loads(body)
            return {s["symbol"] for s in info["symbols"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise RestError(f"exchangeInfo has an unexpected shape: {exc}") from exc


def _trades(symbol: str, body: bytes) -> TradeBatch:
    try:
        return decode_rest_agg_trades(symbol, body)
    except RestFormatError as exc:  # a retry may get a good body; the caller backs off
        raise RestError(str(exc)) from exc


def pick_symbols(rest_url: str, top: int | None, timeout_s: float = 10.0) -> list[str]:
    """The ``top`` perpetuals (all when None) by 24 h quote volume, largest first."""
    client = RestClient(rest_url, timeout_s)
    try:
        listed = client.perpetuals()
        volumes = client.quote_volumes_24h()
    except RestError as exc:
        raise ConfigError(f"cannot pick symbols by volume at {rest_url}: {exc}") from exc
    ranked = sorted(listed, key=lambda s: (-volumes.get(s, 0.0), s))
    return ranked if top is None else ranked[:top]


def unknown_symbols(rest_url: str, symbols: list[str], timeout_s: float = 5.0) -> list[str] | None:
    """The symbols ``exchangeInfo`` does not list, or None when it cannot be asked."""
    try:
        listed = RestClient(rest_url, timeout_s).trading_symbols()
    except RestError as exc:
        log.warning("cannot check symbols against exchangeInfo (%s); continuing", exc)
        return None
    return [s for s in symbols if s not in listed]
