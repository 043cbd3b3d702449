"""The local exchange's REST endpoints, in Binance's shapes and with its request weights:
``/fapi/v1/aggTrades``, ``klines``, ``exchangeInfo``, ``ticker/24hr``, ``fundingInfo``,
``fundingRate``, ``ping`` and ``time``; and the refusals of the fault plan. A mixin of
``server.LocalExchange`` (it reads the exchange's tape, clock, faults and weights)."""

from __future__ import annotations

import time
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from backend.exchange.responses import json_response, response
from backend.exchange.sources import instrument
from backend.exchange.tape import Published
from backend.feed.rest import (
    AGG_TRADES_MAX_SPAN_MS,
    AGG_TRADES_WEIGHT,
    KLINES_MAX_LIMIT,
    klines_weight,
)
from backend.feed.wire import (
    encode_funding_rates,
    encode_instrument,
    encode_rest_agg_trades,
    encode_rest_klines,
)
from backend.store.timeframes import KLINE_TIMEFRAMES

ROUTE_PREFIXES = ("/market", "/public")  # Binance's routed WebSocket paths
WEIGHT_LIMIT_1M = 2400  # request weight a minute, as Binance counts it


class RestRoutes:
    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        for prefix in ROUTE_PREFIXES:
            if path.startswith(prefix + "/"):
                path = path[len(prefix) :]
        if path.startswith("/fapi/"):
            return self._rest(path, parse_qs(url.query))
        if path.startswith("/data/"):
            return self._vision(path)
        if self.faults.refuse_connections > 0:
            self.faults.refuse_connections -= 1
            self.stats["refused"] += 1
            return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"msg": "refused (fault)"})
        if not (path.startswith("/ws") or path.startswith("/stream")):
            return json_response(HTTPStatus.NOT_FOUND, {"code": -1, "msg": "unknown path"})
        return None

    def _rest(self, path: str, query: dict[str, list[str]]) -> Response:
        response = self._answer(path, query)
        self.rest_log.append((time.monotonic(), path, response.status_code))
        return response

    def _answer(self, path: str, query: dict[str, list[str]]) -> Response:
        self.stats["rest_requests"] += 1
        f = self.faults
        if f.rest_down:
            return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"msg": "down (fault)"})
        if path == "/fapi/v1/ping":
            return self._weighed(1, json_response(HTTPStatus.OK, {}))
        if path == "/fapi/v1/time":
            return self._weighed(1, json_response(HTTPStatus.OK, {"serverTime": self.clock_ms()}))
        if path == "/fapi/v1/exchangeInfo":
            return self._weighed(1, json_response(HTTPStatus.OK, self._exchange_info()))
        if path == "/fapi/v1/fundingInfo":
            return json_response(HTTPStatus.OK, self.funding.funding_info())
        if path == "/fapi/v1/fundingRate":
            return self._funding_rates(query)
        if path == "/fapi/v1/ticker/24hr" and "symbol" not in query:
            return self._weighed(40, json_response(HTTPStatus.OK, self._tickers_24hr()))
        if path not in ("/fapi/v1/aggTrades", "/fapi/v1/klines"):
            return json_response(HTTPStatus.NOT_FOUND, {"code": -1, "msg": "unknown endpoint"})
        for attr, status in (("rest_418", 418), ("rest_429", 429), ("rest_5xx", 503)):
            if getattr(f, attr) > 0:
                setattr(f, attr, getattr(f, attr) - 1)
                headers = {"Retry-After": str(f.retry_after_s)} if status != 503 else {}
                return json_response(status, {"code": -1003, "msg": "fault"}, headers)
        symbol = (query.get("symbol") or [""])[0].upper()
        if symbol not in self._pub:
            return json_response(HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."})
        try:
            args = {k: int(query[k][0]) for k in ("fromId", "startTime", "endTime") if k in query}
            limit = int((query.get("limit") or ["500"])[0])
        except ValueError:
            return json_response(HTTPStatus.BAD_REQUEST, {"code": -1100, "msg": "Illegal chars."})
        if path == "/fapi/v1/klines":
            return self._klines(self._pub[symbol], (query.get("interval") or [""])[0], args, limit)
        return self._agg_trades(self._pub[symbol], args, min(max(limit, 1), 1000))

    def _agg_trades(self, pub: Published, args: dict[str, int], limit: int) -> Response:
        start, end = args.get("startTime"), args.get("endTime")
        if "fromId" in args:
            rows = pub.rows(args["fromId"], limit)
        elif start is not None or end is not None:
            if start is None or end is None or not 0 <= end - start < AGG_TRADES_MAX_SPAN_MS:
                msg = "More than 1 hours between startTime and endTime."
                return json_response(HTTPStatus.BAD_REQUEST, {"code": -1127, "msg": msg})
            rows = pub.rows_in_time(start, end, limit)
        else:
            rows = pub.rows(None, limit)
        body = encode_rest_agg_trades(rows.trades())
        return self._weighed(AGG_TRADES_WEIGHT, response(HTTPStatus.OK, body))

    def _klines(self, pub: Published, interval: str, args: dict[str, int], limit: int):
        if interval not in KLINE_TIMEFRAMES:  # all this exchange serves (Binance: more, not 1s)
            return json_response(
                HTTPStatus.BAD_REQUEST, {"code": -1120, "msg": "Invalid interval."}
            )
        limit = min(max(limit, 1), KLINES_MAX_LIMIT)
        bars = pub.klines(interval, args.get("startTime"), args.get("endTime"), limit)
        self.kline_log.append((pub.symbol, interval, limit, len(bars)))
        return self._weighed(
            klines_weight(limit), response(HTTPStatus.OK, encode_rest_klines(bars))
        )

    def _funding_rates(self, query: dict[str, list[str]]) -> Response:
        """``GET /fapi/v1/fundingRate``: without times, the latest ``limit`` (default 100)."""
        symbol = (query.get("symbol") or [""])[0].upper()
        if symbol not in self._pub:
            return json_response(HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."})
        try:
            limit = min(max(int((query.get("limit") or ["100"])[0]), 1), 1000)
            end = int((query.get("endTime") or [str(self.clock_ms())])[0])
            hours = self.funding.intervals_h[symbol]
            start = int((query.get("startTime") or [str(end - limit * hours * 3_600_000)])[0])
        except ValueError:
            return json_response(HTTPStatus.BAD_REQUEST, {"code": -1100, "msg": "Illegal chars."})
        events = self.funding.history(symbol, start, min(end, self.clock_ms()), limit)
        pub = self._pub[symbol]
        marks = np.array([pub.price_at(int(t)) for t in events.time_ms], dtype=np.float64)
        return response(HTTPStatus.OK, encode_funding_rates(events, marks))

    def _weighed(self, weight: int, response: Response) -> Response:
        """Count the request's weight in this minute and say the total, as Binance does."""
        minute = int(time.time() // 60)
        self._weight[minute] = self._weight.get(minute, 0) + weight
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self._weight[minute])
        return response

    def _tickers_24hr(self) -> list[dict]:
        """Every symbol's rolling 24 h statistics; only what the client reads is computed
        (quote volume, trade count, last price), the rest as Binance names it, from trades."""
        now = self.clock_ms()
        out = []
        for s, pub in self._pub.items():
            last = pub.rows(None, 1)
            out.append(
                {
                    "symbol": s,
                    "lastPrice": f"{float(last.price[0]):.8f}" if len(last) else "0",
                    "quoteVolume": f"{pub.quote_volume(now - 86_400_000, now):.8f}",
                    "openTime": now - 86_400_000,
                    "closeTime": now,
                }
            )
        return out

    def _exchange_info(self) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": WEIGHT_LIMIT_1M,
                },
            ],
            "symbols": [
                encode_instrument(
                    instrument(s),
                    pair=s,
                    contractType="PERPETUAL",
                    status="TRADING",
                    baseAsset=s.removesuffix("USDT"),
                    quoteAsset="USDT",
                )
                for s in self._pub
            ],
        }
