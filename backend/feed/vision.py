"""data.binance.vision, sans-I/O: where the USD-M kline files of a symbol and timeframe are,
which files cover a range of days, how a file is verified and read.

Layout (``{vision}`` defaults to https://data.binance.vision)::

    {vision}/data/futures/um/monthly/klines/{SYMBOL}/{TF}/{SYMBOL}-{TF}-{YYYY-MM}.zip
    {vision}/data/futures/um/daily/klines/{SYMBOL}/{TF}/{SYMBOL}-{TF}-{YYYY-MM-DD}.zip

each with ``<file>.CHECKSUM`` beside it, one line ``<sha256 hex>  <file name>``. A zip holds one
CSV of 12 columns, with or without the header line::

    open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,
    taker_buy_quote_volume,ignore
    1704067200000,42314.0,42335.8,42289.6,42331.9,289.641,1704067259999,12254279.5,3071,177.028,
    7489952.3,0

``open_time`` in milliseconds, or microseconds (16 digits: files Binance publishes since 2025).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.store.records import MAX_PRICE, Bars, FundingEvents
from backend.store.timeframes import TIMEFRAMES_MS

DEFAULT_VISION_URL = "https://data.binance.vision"
KLINE_HEADER = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)  # fmt: skip
MAX_FILE_BYTES = 512 * 2**20  # a month of 1m klines zipped is ~2 MB: anything near this is junk
DAY_MS = 86_400_000


class VisionFormatError(ValueError):
    """A file that is not what its name says: the message names the file and the fault."""


@dataclass(frozen=True, slots=True)
class VisionFile:
    """One kline file: a whole UTC month or one UTC day of a symbol and timeframe."""

    symbol: str
    timeframe: str
    period: str  # "YYYY-MM" (monthly) or "YYYY-MM-DD" (daily)

    @property
    def monthly(self) -> bool:
        return len(self.period) == 7

    @property
    def name(self) -> str:
        return f"{self.symbol}-{self.timeframe}-{self.period}.zip"

    @property
    def path(self) -> str:
        kind = "monthly" if self.monthly else "daily"
        return f"data/futures/um/{kind}/klines/{self.symbol}/{self.timeframe}/{self.name}"

    def url(self, vision_url: str) -> str:
        return f"{vision_url.rstrip('/')}/{self.path}"

    @property
    def start_ms(self) -> int:
        return _ms(_first_day(self.period))

    @property
    def end_ms(self) -> int:
        """The first millisecond after the period."""
        first = _first_day(self.period)
        if self.monthly:
            nxt = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        else:
            nxt = first + dt.timedelta(days=1)
        return _ms(nxt)

    def days(self) -> list[VisionFile]:
        """The daily files of a monthly one (itself for a daily file)."""
        if not self.monthly:
            return [self]
        first, out = _first_day(self.period), []
        day = first
        while day.month == first.month:
            out.append(VisionFile(self.symbol, self.timeframe, day.isoformat()))
            day += dt.timedelta(days=1)
        return out

    def expected_bars(self) -> int:
        return (self.end_ms - self.start_ms) // TIMEFRAMES_MS[self.timeframe]


def plan(symbol: str, timeframe: str, start: dt.date, end: dt.date) -> list[VisionFile]:
    """The files covering the UTC days ``start`` … ``end`` (inclusive): a monthly file for each
    whole month inside the range, daily files for the days around them."""
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    out, day = [], start
    while day <= end:
        month_end = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        if day.day == 1 and month_end - dt.timedelta(days=1) <= end:
            out.append(VisionFile(symbol, timeframe, day.strftime("%Y-%m")))
            day = month_end
        else:
            out.append(VisionFile(symbol, timeframe, day.isoformat()))
            day += dt.timedelta(days=1)
    return out


def checksum_of(text: str, file_name: str) -> str:
    """The sha256 a ``.CHECKSUM`` body gives for ``file_name``."""
    parts = text.split()
    if len(parts) != 2 or len(parts[0]) != 64 or parts[1] != file_name:
        raise VisionFormatError(f"{file_name}.CHECKSUM: not '<sha256>  {file_name}'")
    try:
        int(parts[0], 16)
    except ValueError:
        raise VisionFormatError(f"{file_name}.CHECKSUM: not a sha256") from None
    return parts[0].lower()


def verify(body: bytes, checksum_text: str, file_name: str) -> None:
    """Raise ``VisionFormatError`` unless ``body`` hashes to its ``.CHECKSUM``."""
    want = checksum_of(checksum_text, file_name)
    if hashlib.sha256(body).hexdigest() != want:
        raise VisionFormatError(f"{file_name}: sha256 differs from its .CHECKSUM")


def read_klines(body: bytes, file: VisionFile) -> Bars:
    """The bars of a kline zip (header or not; open times in ms or µs), checked: on the
    timeframe's grid, inside the file's period, ascending, prices finite and positive."""
    text = _csv_in_zip(body, file.name, "kline")
    first = text.split("\n", 1)[0]
    header = bool(first.strip()) and not first.strip()[:1].isdigit()
    if header and tuple(c.strip() for c in first.split(",")[:6]) != KLINE_HEADER[:6]:
        raise VisionFormatError(f"{file.name}: unexpected header {first[:60]!r}")
    rows = text[len(first) :] if header else text
    if not rows.strip():
        return Bars.empty(file.symbol, file.timeframe)
    try:  # pandas' C parser: a month of 1m rows in milliseconds
        frame = pd.read_csv(
            io.StringIO(rows), header=None, usecols=range(11),
            names=KLINE_HEADER[:11], engine="c",
        )  # fmt: skip
        t = frame["open_time"].to_numpy(np.int64)
        cols = {
            name: frame[src].to_numpy(np.float64)
            for name, src in (("open", "open"), ("high", "high"), ("low", "low"),
                              ("close", "close"), ("volume", "volume"),
                              ("quote_volume", "quote_volume"),
                              ("taker_buy_volume", "taker_buy_volume"))
        }  # fmt: skip
        trades = frame["count"].to_numpy(np.int64)
    except (ValueError, TypeError, pd.errors.ParserError) as exc:
        raise VisionFormatError(f"{file.name}: not a kline table ({exc})") from None
    return _bars(t, cols, trades, file)


def _bars(t: np.ndarray, cols: dict, trades: np.ndarray, file: VisionFile) -> Bars:
    if t.max() >= 10**15:  # microseconds
        t = t // 1000
    step = TIMEFRAMES_MS[file.timeframe]
    prices = np.column_stack([cols[c] for c in ("open", "high", "low", "close")])
    if np.any(t % step) or np.any(np.diff(t) <= 0):
        raise VisionFormatError(f"{file.name}: open times off the {file.timeframe} grid or order")
    if t[0] < file.start_ms or t[-1] >= file.end_ms:
        raise VisionFormatError(f"{file.name}: open times outside {file.period}")
    if not (np.all(np.isfinite(prices)) and np.all(prices > 0) and np.all(prices <= MAX_PRICE)):
        raise VisionFormatError(f"{file.name}: a price is not finite and positive")
    return Bars(file.symbol, file.timeframe, t, trades=trades, **cols)


def write_klines(bars: Bars, header: bool = True, micros: bool = False) -> bytes:
    """A kline zip as data.binance.vision publishes it (the local exchange serves these)."""
    step = TIMEFRAMES_MS[bars.timeframe]
    scale = 1000 if micros else 1
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if header:
        w.writerow(KLINE_HEADER)
    for i in range(len(bars)):
        t = int(bars.open_time[i])
        w.writerow([
            t * scale, repr(float(bars.open[i])), repr(float(bars.high[i])),
            repr(float(bars.low[i])), repr(float(bars.close[i])), repr(float(bars.volume[i])),
            (t + step - 1) * scale, repr(float(bars.quote_volume[i])), int(bars.trades[i]),
            repr(float(bars.taker_buy_volume[i])), "0", "0",
        ])  # fmt: skip
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        # A fixed entry time: the same bars always make the same bytes (and checksum).
        entry = zipfile.ZipInfo(f"{bars.symbol}-{bars.timeframe}.csv", (1980, 1, 1, 0, 0, 0))
        zf.writestr(entry, out.getvalue(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def checksum_text(body: bytes, file_name: str) -> str:
    return f"{hashlib.sha256(body).hexdigest()}  {file_name}\n"


def _csv_in_zip(body: bytes, name: str, what: str) -> str:
    """The one CSV inside a data.binance.vision zip, as text."""
    if len(body) > MAX_FILE_BYTES:
        raise VisionFormatError(f"{name}: larger than {MAX_FILE_BYTES >> 20} MB")
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            names = [n for n in zf.namelist() if n.endswith(".csv")]
            if len(names) != 1:
                raise VisionFormatError(f"{name}: expected one CSV inside, found {len(names)}")
            return zf.read(names[0]).decode("ascii")
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError) as exc:
        raise VisionFormatError(f"{name}: not a {what} zip ({exc})") from None


def _first_day(period: str) -> dt.date:
    try:
        if len(period) == 7:
            return dt.date.fromisoformat(period + "-01")
        return dt.date.fromisoformat(period)
    except ValueError:
        raise ValueError(f"not a month or a day: {period!r}") from None


def _ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


# --- funding rates --------------------------------------------------------------------------
# {vision}/data/futures/um/monthly/fundingRate/{SYMBOL}/{SYMBOL}-fundingRate-{YYYY-MM}.zip, one
# CSV: ``calc_time,funding_interval_hours,last_funding_rate`` (header line optional), a row per
# funding time (ms), the rate as a fraction per interval.
FUNDING_HEADER = ("calc_time", "funding_interval_hours", "last_funding_rate")


@dataclass(frozen=True, slots=True)
class FundingFile:
    symbol: str
    month: str  # "YYYY-MM"

    @property
    def name(self) -> str:
        return f"{self.symbol}-fundingRate-{self.month}.zip"

    @property
    def path(self) -> str:
        return f"data/futures/um/monthly/fundingRate/{self.symbol}/{self.name}"

    def url(self, vision_url: str) -> str:
        return f"{vision_url.rstrip('/')}/{self.path}"

    @property
    def start_ms(self) -> int:
        return VisionFile(self.symbol, "1h", self.month).start_ms

    @property
    def end_ms(self) -> int:
        return VisionFile(self.symbol, "1h", self.month).end_ms


def funding_months(symbol: str, start: dt.date, end: dt.date) -> list[FundingFile]:
    """The monthly funding files covering the UTC days ``start`` … ``end``."""
    out, month = [], start.replace(day=1)
    while month <= end:
        out.append(FundingFile(symbol, month.strftime("%Y-%m")))
        month = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return out


def read_funding(body: bytes, file: FundingFile) -> FundingEvents:
    """The funding rates of a monthly file, checked: times inside the month and ascending,
    rates finite and within ±5 % (Binance caps them far below)."""
    text = _csv_in_zip(body, file.name, "funding")
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if rows and not rows[0][0].strip().isdigit():
        if tuple(c.strip() for c in rows[0][:3]) != FUNDING_HEADER:
            raise VisionFormatError(f"{file.name}: unexpected header {rows[0][:3]}")
        rows = rows[1:]
    try:
        t = np.array([int(r[0]) for r in rows], dtype=np.int64)
        rate = np.array([float(r[2]) for r in rows], dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise VisionFormatError(f"{file.name}: not a funding table ({exc})") from None
    if len(t) and t.max() >= 10**15:
        t = t // 1000
    if len(t) and (t[0] < file.start_ms or t[-1] >= file.end_ms or np.any(np.diff(t) <= 0)):
        raise VisionFormatError(f"{file.name}: funding times outside {file.month} or not ascending")
    if not np.all(np.isfinite(rate) & (np.abs(rate) <= 0.05)):
        raise VisionFormatError(f"{file.name}: a rate is not finite or beyond ±5 %")
    return FundingEvents(file.symbol, t, rate)


def write_funding(events: FundingEvents, interval_h: int, header: bool = True) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if header:
        w.writerow(FUNDING_HEADER)
    for t, r in zip(events.time_ms.tolist(), events.rate.tolist(), strict=True):
        w.writerow([t, interval_h, f"{r:.8f}"])  # as Binance prints them (and REST)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        entry = zipfile.ZipInfo(f"{events.symbol}-fundingRate.csv", (1980, 1, 1, 0, 0, 0))
        zf.writestr(entry, out.getvalue(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()
