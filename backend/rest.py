"""Blocking REST client for the two Binance USD-M endpoints we use (stdlib HTTP, no session)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlencode

from backend.records import TradeBatch
from backend.wire import decode_rest_agg_trades

log = logging.getLogger(__name__)

AGG_TRADES_LIMIT = 1000
WEIGHT_BUDGET_1M = 1800  # of Binance's 2400 a minute: leave room for other programs on the IP


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

    def _get(self, path: str, params: dict) -> bytes:
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
            raise RestError(
                f"GET {path} answered HTTP {exc.code}",
                status=exc.code,
                retry_after_s=float(retry) if retry and retry.isdigit() else None,
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
        return decode_rest_agg_trades(symbol, body)

    def trading_symbols(self) -> set[str]:
        body = self._get("/fapi/v1/exchangeInfo", {})
        try:
            info = json.loads(body)
            return {s["symbol"] for s in info["symbols"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise RestError(f"exchangeInfo has an unexpected shape: {exc}") from exc


def unknown_symbols(rest_url: str, symbols: list[str], timeout_s: float = 5.0) -> list[str] | None:
    """The symbols ``exchangeInfo`` does not list, or None when it cannot be asked."""
    try:
        listed = RestClient(rest_url, timeout_s).trading_symbols()
    except RestError as exc:
        log.warning("cannot check symbols against exchangeInfo (%s); continuing", exc)
        return None
    return [s for s in symbols if s not in listed]
