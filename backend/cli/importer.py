"""``python -m backend import``: months of klines from data.binance.vision into the store.

For each symbol and timeframe the asked UTC days are covered by monthly files where a whole
month is asked and daily files around them (``feed.vision.plan``). A file is downloaded with its
``.CHECKSUM`` and stored only when it verifies and parses; a monthly file that is missing or
refused falls back to its daily files, a daily file to REST klines (within the weight budget).
A file whose bars are all stored already is not fetched again (a re-run, or a killed import run
again, fetches only what is missing), and every write is an idempotent upsert. Downloads run a
few at a time; a progress bar per symbol and timeframe; a summary at the end. The funding
rates charged go into the ``funding`` table the same way (monthly files, else REST), for the
backtest's funding.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from backend.feed.rest import KLINES_MAX_LIMIT, RestClient, RestError
from backend.feed.vision import (
    MAX_FILE_BYTES,
    FundingFile,
    VisionFile,
    VisionFormatError,
    funding_months,
    plan,
    read_funding,
    read_klines,
    verify,
)
from backend.store.records import Bars, FundingEvents
from backend.store.timeframes import TIMEFRAMES_MS

log = logging.getLogger(__name__)

_8H_MS = 8 * 3_600_000  # the longest funding interval
DOWNLOADS_AT_ONCE = 4  # data.binance.vision is a CDN; a few at a time is polite and enough


class SourceUnreachable(RuntimeError):
    """Neither data.binance.vision nor REST answered: the one line the command prints."""


@dataclass
class ImportSummary:
    files: int = 0  # files stored from data.binance.vision
    skipped: int = 0  # files whose bars were all stored already
    rows: int = 0  # bar rows inserted or changed
    daily_fallbacks: int = 0  # monthly files replaced by daily ones
    rest_fallbacks: int = 0  # daily files replaced by REST klines
    refused: list[str] = field(default_factory=list)  # failed their checksum or format
    missing_bars: int = 0  # inside the stored range, neither a file nor REST had them
    funding_rows: int = 0  # funding rates inserted or changed
    funding_rest: int = 0  # funding months read over REST (file missing, refused, or not out)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.missing_bars == 0 and not self.errors

    def lines(self) -> list[str]:
        out = [
            f"files {self.files} stored, {self.skipped} already stored; rows written {self.rows}",
            f"fallbacks: {self.daily_fallbacks} monthly -> daily, {self.rest_fallbacks} daily -> "
            f"REST; refused files {len(self.refused)}"
            + (f" ({', '.join(self.refused[:5])})" if self.refused else ""),
        ]
        out.append(
            f"funding rates written {self.funding_rows}; {self.funding_rest} months over REST"
        )
        if self.missing_bars:
            out.append(f"missing bars: {self.missing_bars} (neither the files nor REST had them)")
        out += [f"error: {e}" for e in self.errors]
        return out


class Importer:
    """One import run: ``run(symbols, timeframes, start, end)`` -> ``ImportSummary``."""

    def __init__(self, db, vision_url: str, rest: RestClient, timeout_s: float = 30.0) -> None:
        self.db, self.vision_url, self.rest, self.timeout_s = db, vision_url, rest, timeout_s
        self.summary = ImportSummary()
        self._lock = threading.Lock()  # the summary and the store's writes

    def run(self, symbols, timeframes, start: dt.date, end: dt.date, progress=True):
        jobs = [(s, tf) for s in symbols for tf in timeframes]
        bars = {
            job: tqdm(total=len(plan(*job, start, end)), desc=f"{job[0]} {job[1]}", unit="file",
                      disable=not progress, leave=True, position=i)
            for i, job in enumerate(jobs)
        }  # fmt: skip
        with ThreadPoolExecutor(DOWNLOADS_AT_ONCE) as pool:
            futures = [
                pool.submit(self._file, f, bars[(f.symbol, f.timeframe)])
                for job in jobs
                for f in plan(*job, start, end)
            ]
            futures += [
                pool.submit(self._funding, f)
                for s in symbols
                for f in funding_months(s, start, end)
            ]
            for fut in futures:
                fut.result()
        for bar in bars.values():
            bar.close()
        for symbol, tf in jobs:
            self._count_missing(symbol, tf, start, end)
        return self.summary

    # --- one file: stored already, or the file, or its days, or REST ----------------------

    def _file(self, file: VisionFile, bar) -> None:
        try:
            if self._stored(file):
                with self._lock:
                    self.summary.skipped += 1
                return
            if self._from_file(file):
                return
            if file.monthly:
                with self._lock:
                    self.summary.daily_fallbacks += 1
                for day in file.days():
                    self._day(day)
            else:
                self._day(file, tried=True)
        except SourceUnreachable as exc:
            with self._lock:
                if str(exc) not in self.summary.errors:
                    self.summary.errors.append(str(exc))
        finally:
            bar.update(1)

    def _day(self, file: VisionFile, tried: bool = False) -> None:
        if not tried and (self._stored(file) or self._from_file(file)):
            return
        with self._lock:
            self.summary.rest_fallbacks += 1
        self._store(self._rest_klines(file))

    def _funding(self, file: FundingFile) -> None:
        """A month of funding rates: its file where it verifies, else REST."""
        try:
            events = None
            if self._funding_stored(file):
                return
            if file.end_ms <= _now_ms():
                body = self._get(file.url(self.vision_url))
                checksum = self._get(file.url(self.vision_url) + ".CHECKSUM") if body else None
                if body is not None and checksum is not None:
                    try:
                        verify(body, checksum.decode("ascii", "replace"), file.name)
                        events = read_funding(body, file)
                    except VisionFormatError as exc:
                        log.warning("refused %s: %s", file.name, exc)
                        with self._lock:
                            self.summary.refused.append(file.name)
            if events is None:
                events = self._rest_funding(file)
                with self._lock:
                    self.summary.funding_rest += 1
            written = self.db.upsert_funding(events) if len(events.time_ms) else 0
            with self._lock:
                self.summary.funding_rows += written
        except SourceUnreachable as exc:
            with self._lock:
                if str(exc) not in self.summary.errors:
                    self.summary.errors.append(str(exc))

    def _funding_stored(self, file: FundingFile) -> bool:
        """A month that is over whose rates are stored from its first funding time (00:00 UTC
        of day 1) to within the longest interval (8 h) of its end."""
        if file.end_ms > _now_ms():
            return False
        held = self.db.load_funding(file.symbol, file.start_ms, file.end_ms - 1).time_ms
        return bool(len(held)) and held[0] == file.start_ms and held[-1] >= file.end_ms - _8H_MS

    def _rest_funding(self, file: FundingFile) -> FundingEvents:
        parts, start = [], file.start_ms
        end = min(file.end_ms, _now_ms()) - 1
        while start <= end:
            try:
                page = self.rest.funding_rates(file.symbol, start, end)
            except RestError as exc:
                raise SourceUnreachable(f"REST fundingRate: {exc}") from None
            if not len(page.time_ms):
                break
            parts.append(page)
            start = int(page.time_ms[-1]) + 1
        if not parts:
            return FundingEvents.empty(file.symbol)
        return FundingEvents(
            file.symbol,
            np.concatenate([p.time_ms for p in parts]),
            np.concatenate([p.rate for p in parts]),
        )

    def _from_file(self, file: VisionFile) -> bool:
        """Store the file's bars if it verifies; False where it is missing or refused."""
        got = self._download(file)
        if got is None:
            return False
        self._store(got)
        with self._lock:
            self.summary.files += 1
        return True

    def _stored(self, file: VisionFile) -> bool:
        end = min(file.end_ms, _now_ms())
        held = self.db.load(file.symbol, file.timeframe, file.start_ms, end - 1)
        step = TIMEFRAMES_MS[file.timeframe]
        return len(held) > 0 and len(held) == (end - file.start_ms) // step

    def _download(self, file: VisionFile) -> Bars | None:
        """The file's bars, or None where it is missing or refused (then: fall back)."""
        url = file.url(self.vision_url)
        body = self._get(url)
        checksum = self._get(url + ".CHECKSUM") if body is not None else None
        if body is None or checksum is None:
            return None
        try:
            verify(body, checksum.decode("ascii", "replace"), file.name)
            return read_klines(body, file)
        except VisionFormatError as exc:
            log.warning("refused %s: %s", file.name, exc)
            with self._lock:
                self.summary.refused.append(file.name)
            return None

    def _get(self, url: str) -> bytes | None:
        request = urllib.request.Request(url, headers={"User-Agent": "pair-analytics/0.1"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                body = resp.read(MAX_FILE_BYTES + 1)
                return body if len(body) <= MAX_FILE_BYTES else None
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404):  # the CDN answers 404 (or 403) for a file it lacks
                return None
            raise SourceUnreachable(f"{url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            # Unreachable files fall back to REST, which then says whether it answers.
            log.warning("%s: %s", url, getattr(exc, "reason", exc))
            return None

    def _rest_klines(self, file: VisionFile) -> Bars:
        """The period's klines over REST, page by page, within the weight budget."""
        pages, start = [], file.start_ms
        end = min(file.end_ms, _now_ms())
        while start < end:
            while self.rest.over_budget:
                time.sleep(60 - time.time() % 60)
            try:
                page = self.rest.klines_from(file.symbol, file.timeframe, start, KLINES_MAX_LIMIT)
            except RestError as exc:
                if exc.rate_limited and exc.retry_after_s:
                    time.sleep(exc.retry_after_s)
                    continue
                raise SourceUnreachable(f"REST klines: {exc}") from None
            page = page.slice(0, int((page.open_time < end).sum()))
            if not len(page):
                break
            pages.append(page)
            start = int(page.open_time[-1]) + TIMEFRAMES_MS[file.timeframe]
        return Bars.concat(pages) if pages else Bars.empty(file.symbol, file.timeframe)

    def _store(self, bars: Bars) -> None:
        if not len(bars):
            return
        written = self.db.upsert([bars])
        with self._lock:
            self.summary.rows += written

    def _count_missing(self, symbol: str, tf: str, start: dt.date, end: dt.date) -> None:
        """Bars absent between the first and the last stored bar of the asked days (Binance's
        klines have no holes; before the first one the symbol was not listed yet)."""
        first = plan(symbol, tf, start, start)[0].start_ms
        last = min(plan(symbol, tf, end, end)[-1].end_ms, _now_ms())
        held = self.db.load(symbol, tf, first, last - 1).open_time
        if len(held) > 1:
            step = TIMEFRAMES_MS[tf]
            self.summary.missing_bars += int(np.sum(np.diff(held) // step - 1))


def _now_ms() -> int:
    return int(time.time() * 1000)


def parse_day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{flag} must be a day YYYY-MM-DD, got {text!r}") from None
