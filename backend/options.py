"""The options of the dashboard and of every command, checked one way: each numeric option has a
kind, a range and a unit, and a value outside it (NaN, infinity, negative, too large, empty,
not a number) is one line naming the flag and what it takes. argparse calls these as ``type=``;
both ``app.py`` and ``backend.cli`` use them, so a flag means the same everywhere.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

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
