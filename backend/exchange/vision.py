"""The local exchange's data.binance.vision tree: monthly and daily kline zips of its symbols,
each with its ``.CHECKSUM``, laid out as Binance publishes them (``backend.feed.vision``), for
the periods that are over (a month's file once the month has ended, a day's once the day has),
from the same bars its REST klines serve. ``VisionFaults`` makes files missing, corrupt, without
header or with open times in microseconds. A mixin of ``server.LocalExchange``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.http11 import Response

from backend.exchange.responses import json_response, response
from backend.feed.vision import (
    FundingFile,
    VisionFile,
    checksum_text,
    write_funding,
    write_klines,
)
from backend.store.timeframes import KLINE_TIMEFRAMES


@dataclass
class VisionFaults:
    """File names (``SYMBOL-TF-PERIOD.zip``) answered 404, or with a zip that fails its
    checksum; and how every file is written."""

    missing: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    header: bool = True
    micros: bool = False  # open times in microseconds, as Binance's newer files
    requests: list[str] = field(default_factory=list)  # paths asked, for tests
    delay_s: float = 0.0  # each file answered this late (a slow CDN; the server waits too)


class VisionTree:
    def _vision(self, path: str) -> Response:
        """``/data/futures/um/{monthly|daily}/klines/{SYMBOL}/{TF}/{file}[.CHECKSUM]``."""
        faults = self.vision_faults
        faults.requests.append(path)
        if faults.delay_s:
            time.sleep(faults.delay_s)
        parts = path.strip("/").split("/")
        missing = json_response(HTTPStatus.NOT_FOUND, {"msg": "NoSuchKey"})
        if len(parts) == 7 and parts[:5] == ["data", "futures", "um", "monthly", "fundingRate"]:
            return self._vision_funding(parts[5], parts[6]) or missing
        if len(parts) != 8 or parts[:3] != ["data", "futures", "um"] or parts[4] != "klines":
            return missing
        kind, symbol, tf, name = parts[3], parts[5], parts[6], parts[7]
        want_checksum = name.endswith(".CHECKSUM")
        zip_name = name.removesuffix(".CHECKSUM")
        prefix = f"{symbol}-{tf}-"
        if symbol not in self._pub or tf not in KLINE_TIMEFRAMES or not zip_name.startswith(prefix):
            return missing
        period = zip_name[len(prefix) :].removesuffix(".zip")
        if kind != ("monthly" if len(period) == 7 else "daily") or zip_name in faults.missing:
            return missing
        try:
            file = VisionFile(symbol, tf, period)
            end_ms = file.end_ms
        except ValueError:
            return missing
        if end_ms > self.clock_ms():
            return missing  # not published until the period is over
        key = (zip_name, faults.header, faults.micros)
        body = self._vision_files.get(key)  # a period that is over never changes
        if body is None:
            bars = self._pub[symbol].bars(tf, file.start_ms)
            bars = bars.slice(0, int((bars.open_time < end_ms).sum()))
            if not len(bars):
                return missing  # before the symbol traded
            body = self._vision_files[key] = write_klines(bars, faults.header, faults.micros)
        if want_checksum:
            return response(
                HTTPStatus.OK, checksum_text(body, zip_name).encode(), None, "text/plain"
            )
        if zip_name in faults.corrupt:
            body = body[:-8] + bytes(8)
        return response(HTTPStatus.OK, body, None, "application/zip")

    def _vision_funding(self, symbol: str, name: str) -> Response | None:
        """``{SYMBOL}-fundingRate-{YYYY-MM}.zip[.CHECKSUM]``: the rates the exchange's
        ``/fapi/v1/fundingRate`` gives for the month, once it is over."""
        faults = self.vision_faults
        zip_name = name.removesuffix(".CHECKSUM")
        prefix = f"{symbol}-fundingRate-"
        if symbol not in self._pub or not zip_name.startswith(prefix) or zip_name in faults.missing:
            return None
        try:
            file = FundingFile(symbol, zip_name[len(prefix) :].removesuffix(".zip"))
            start, end = file.start_ms, file.end_ms
        except ValueError:
            return None
        if end > self.clock_ms():
            return None
        hours = self.funding.intervals_h[symbol]
        events = self.funding.history(symbol, start, end - 1, 10_000)
        body = write_funding(events, hours, header=faults.header)
        if name.endswith(".CHECKSUM"):
            return response(
                HTTPStatus.OK, checksum_text(body, zip_name).encode(), None, "text/plain"
            )
        if zip_name in faults.corrupt:
            body = body[:-8] + bytes(8)
        return response(HTTPStatus.OK, body, None, "application/zip")
