"""The options of the dashboard and of every command, defined once (``FLAGS``: flag, check,
default, the ``PAIRDASH_*`` variable that sets the default, help) and checked one way: each
numeric option has a kind, a range and a unit, and a value outside it (NaN, infinity, negative,
too large, empty, not a number) is one line naming the flag and what it takes. ``app.py`` and
``backend.cli`` add them with ``add(parser, flag, ...)``, so a flag means the same everywhere.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from backend.config import (
    DEFAULT_DB,
    DEFAULT_KEEP_1S_H,
    DEFAULT_REST_URL,
    DEFAULT_SYMBOLS,
    DEFAULT_WS_URL,
)
from backend.config import RESUME_MAX_AGE_S as RESUME_DEFAULT_S

DAY_S = 86_400.0


@dataclass(frozen=True)
class Number:
    """An argparse ``type``: a finite int or float in ``[lo, hi]`` (``lo`` excluded when
    ``lo_open``); ``allow_zero`` lets 0 through below an open ``lo`` (0 = "off" or "all")."""

    what: str  # what the value is, for the message: "seconds", "bars", ...
    lo: float = 0.0
    hi: float = math.inf
    integer: bool = False
    lo_open: bool = False
    allow_zero: bool = False  # 0 allowed although below lo (a switch: 0 = off)

    def __call__(self, text) -> float | int:
        raw = str(text).strip()
        try:
            value = int(raw) if self.integer else float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(self._message(raw)) from None
        if self.allow_zero and value == 0:
            return value
        below = value <= self.lo if self.lo_open else value < self.lo
        if not math.isfinite(value) or below or value > self.hi:
            raise argparse.ArgumentTypeError(self._message(raw))
        return value

    def _message(self, raw: str) -> str:
        """'must be >= 0 and <= 86400 (seconds), got 'nan''."""
        whole = "a whole number " if self.integer else ""
        low = f"{'>' if self.lo_open else '>='} {self.lo:g}"
        high = "" if math.isinf(self.hi) else f" and <= {self.hi:g}"
        zero = " (or 0)" if self.allow_zero else ""
        return f"must be {whole}{low}{high}{zero} ({self.what}), got {raw!r}"


def text(what: str):
    """An argparse ``type``: a non-empty string (spaces around it removed)."""

    def parse(raw) -> str:
        value = str(raw).strip()
        if not value:
            raise argparse.ArgumentTypeError(f"expected {what}, got an empty value")
        return value

    return parse


def check_argv(argv: list[str]) -> str | None:
    """A message for ``--flag=--`` (argparse takes ``--`` there as its end-of-options marker and
    leaves the flag an empty list, not a value), else None."""
    for token in argv:
        if token.startswith("--") and token.endswith("=--"):
            return f"argument {token[:-3]}: expected a value, got '--'"
    return None


# One definition per meaning, used by every command that has the option.
HISTORY_BARS = Number("bars", 0, 100_000, integer=True)  # klines per timeframe at start
HISTORY_1S_S = Number("seconds", 0, DAY_S)  # 1s bars built from trades at start
KEEP_1S_H = Number("hours", 0, 24 * 30)  # 0 keeps every second; config.keep_1s_seconds: >= 5 min
REPLAY_SPEED = Number("times real time", 0, 10_000)  # 0 = as fast as the client reads
REPLAY_HISTORY_S = Number("seconds", 0, 365 * DAY_S)
SIM_HISTORY_S = Number("seconds", 0, 30 * DAY_S)  # simulated days before now (memory-bound)
DEEP_DAYS = Number("days", 0, 400)  # simulated 1m bars before the trades
DURATION_S = Number("seconds", 0, 10 * 365 * DAY_S)
FLUSH_INTERVAL_S = Number("seconds", 0, 3_600, lo_open=True)
RESUME_MAX_AGE_S = Number("seconds", 0, 7 * DAY_S)
SOAK_MINUTES = Number("minutes", 0, 7 * 24 * 60, lo_open=True)
SOAK_RATE = Number("messages a second", 0, 1_000_000, lo_open=True)
REPORT_EVERY_S = Number("seconds", 0, 3_600, lo_open=True)
PORT = Number("port", 0, 65_535, integer=True)  # 0 picks a free one
CYCLES = Number("passes", 0, 1_000_000, integer=True)  # 0 = forever
FAULT_COUNT = Number("messages or requests", 0, 1_000_000_000, integer=True)
CONNECTION_AGE_S = Number("seconds", 0, 365 * DAY_S)
SEED = Number("seed", 0, 2**32 - 1, integer=True)
DB = text("a SQLite file or a postgresql:// URL")
HOST = text("a host name or address")


@dataclass(frozen=True)
class Flag:
    """One option as argparse takes it; ``env`` names the variable that sets its default (an
    empty variable is ignored; the flag wins over both)."""

    flag: str
    type: Callable | None = None
    default: object = None
    env: str | None = None
    metavar: str | None = None
    help: str | None = None
    choices: tuple | None = None
    nargs: str | None = None

    def add(self, parser: argparse.ArgumentParser, **changes) -> None:
        spec = replace(self, **changes)
        default = spec.default
        if spec.env and os.environ.get(spec.env, "").strip():
            default = os.environ[spec.env]  # a string: argparse checks it with ``type``
        kwargs = {"default": default}
        for name in ("type", "metavar", "help", "choices", "nargs"):
            if getattr(spec, name) is not None:
                kwargs[name] = getattr(spec, name)
        parser.add_argument(spec.flag, **kwargs)


FLAGS: dict[str, Flag] = {
    f.flag: f
    for f in (
        Flag("--source", None, "live", "PAIRDASH_SOURCE", help="where the data comes from"),
        Flag("--symbols", None, ",".join(DEFAULT_SYMBOLS), "PAIRDASH_SYMBOLS",
             help="comma-separated, or top:N / all: the perpetuals with the largest 24 h quote "
             "volume (live only)"),
        Flag("--ws-url", None, DEFAULT_WS_URL, "PAIRDASH_WS_URL"),
        Flag("--rest-url", None, DEFAULT_REST_URL, "PAIRDASH_REST_URL"),
        Flag("--db", DB, DEFAULT_DB, "PAIRDASH_DB"),
        Flag("--history-bars", HISTORY_BARS, 1000, "PAIRDASH_HISTORY_BARS", "N",
             "klines loaded at start, per kline timeframe (0 = none)"),
        Flag("--history-1s", HISTORY_1S_S, 900.0, "PAIRDASH_HISTORY_1S", "SECONDS",
             "1s bars built from aggregate trades at start, from the 5-minute boundary this far "
             "back (the current 5-minute period at least)"),
        Flag("--keep-1s", KEEP_1S_H, DEFAULT_KEEP_1S_H, "PAIRDASH_KEEP_1S", "HOURS",
             "1s bars kept in memory (older ones stay as 1m and longer bars and in the database; 0 "
             "keeps all)"),
        Flag("--replay-speed", REPLAY_SPEED, 1.0, "PAIRDASH_REPLAY_SPEED",
             help="times real time (0 = as fast as the client reads)"),
        Flag("--vision-url", None, "https://data.binance.vision", "PAIRDASH_VISION_URL",
             help="data.binance.vision (or a mirror): monthly and daily kline files"),
        Flag("--timeframes", None, "1h", None, "TF,...",
             help="kline timeframes, comma-separated: 1m, 5m, 15m, 1h, 4h, 1d"),
        Flag("--rules", None, "", "PAIRDASH_RULES", "FILE",
             help="alert rules and channels (TOML; README: Alerts); the page creates the file "
             "when it adds the first rule"),
        Flag("--duration", DURATION_S, None, None, "SECONDS"),
        Flag("--flush-interval", FLUSH_INTERVAL_S, 2.0, None, "SECONDS"),
        Flag("--resume-max-age", RESUME_MAX_AGE_S, RESUME_DEFAULT_S, None, "SECONDS",
             "resume exactly (backfilling the outage) if the last save is at most this old"),
    )
}  # fmt: skip


def add(parser: argparse.ArgumentParser, *flags: str, **changes) -> None:
    """Add ``flags`` (from ``FLAGS``) to ``parser``; ``changes`` (by flag) alter one's fields,
    e.g. ``add(p, "--db", **{"--db": {"default": None}})``."""
    for flag in flags:
        FLAGS[flag].add(parser, **changes.get(flag, {}))
