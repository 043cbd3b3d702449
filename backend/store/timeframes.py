"""The timeframes, defined once: label, length, where its bars come from, and whether Binance
serves it as klines. Everything else (the store's folds, history at start, the REST client, the
local exchange, the database's CHECK, the pages' choices) is derived from ``TIMEFRAMES``.

Bars follow Binance's kline semantics: a bar of length L opens at a multiple of L ms since the
epoch (UTC) and holds the trades of [open, open + L).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timeframe:
    label: str  # Binance's interval name
    ms: int  # length of one bar
    folded_from: str | None  # the timeframe its live bars are built from; None: from trades
    kline: bool  # served by GET /fapi/v1/klines (USD-M has no 1s klines)


TIMEFRAMES: tuple[Timeframe, ...] = (
    Timeframe("1s", 1_000, None, kline=False),
    Timeframe("1m", 60_000, "1s", kline=True),
    Timeframe("5m", 300_000, "1s", kline=True),
    # Longer bars are folded from 1m bars: the 1s bars need not reach back a whole day.
    Timeframe("15m", 900_000, "1m", kline=True),
    Timeframe("1h", 3_600_000, "1m", kline=True),
    Timeframe("4h", 14_400_000, "1m", kline=True),
    Timeframe("1d", 86_400_000, "1m", kline=True),
)
BY_LABEL = {tf.label: tf for tf in TIMEFRAMES}
TIMEFRAMES_MS: dict[str, int] = {tf.label: tf.ms for tf in TIMEFRAMES}
BASE = next(tf.label for tf in TIMEFRAMES if tf.folded_from is None)  # built from trades
# Built from the base timeframe's bars, and kept when old base bars are forgotten.
FOLDED = tuple(tf.label for tf in TIMEFRAMES if tf.folded_from == BASE)
# Old base bars are forgotten at multiples of the longest folded timeframe: every folded bar
# stays whole on one side of the cut.
FOLD_MS = max(TIMEFRAMES_MS[label] for label in FOLDED)
MINUTE = "1m"
# Built from 1m bars (klines before them, then 1m bars folded: exact, every field).
FROM_MINUTES = tuple(tf.label for tf in TIMEFRAMES if tf.folded_from == MINUTE)
# 1m bars must reach back to the start of the longest of these that holds the seam.
MINUTES_REACH_MS = max((TIMEFRAMES_MS[label] for label in FROM_MINUTES), default=0)
# History at start, longest first: it reaches furthest back for the same request weight.
KLINE_TIMEFRAMES = tuple(
    sorted((tf.label for tf in TIMEFRAMES if tf.kline), key=TIMEFRAMES_MS.get, reverse=True)
)
# The scanner's choices: the shortest kline timeframe first (its history is loaded at start).
SCAN_TIMEFRAMES = (*reversed(KLINE_TIMEFRAMES), BASE)


def floor_ms(time_ms: int, step_ms: int) -> int:
    """The boundary of ``step_ms`` at or before ``time_ms`` (UTC, from the epoch)."""
    return time_ms // step_ms * step_ms


def sql_check() -> str:
    """The ``bars.timeframe`` CHECK constraint's list: ``'1s', '1m', ...``."""
    return ", ".join(f"'{tf.label}'" for tf in TIMEFRAMES)


def kline_span(timeframe: str, seam_ms: int, bars: int) -> tuple[int, int]:
    """Where the klines of ``timeframe`` end (exclusive) and how many to load before it, for a
    1s history from ``seam_ms`` and ``bars`` asked per timeframe (0: none at all).

    1m and 5m klines end at the seam (a fold boundary): after it they are built from trades.
    Longer ones end at their own boundary at or before the seam: the bar holding the seam is
    folded from 1m bars, so the 1m klines reach back to the start of the longest such bar
    (at most a day: 1,440 bars, one request)."""
    if bars <= 0:
        return seam_ms, 0
    if timeframe in FROM_MINUTES:
        return floor_ms(seam_ms, TIMEFRAMES_MS[timeframe]), bars
    if timeframe == MINUTE and MINUTES_REACH_MS:
        reach = (seam_ms - floor_ms(seam_ms, MINUTES_REACH_MS)) // TIMEFRAMES_MS[MINUTE]
        return seam_ms, max(bars, reach)
    return seam_ms, bars
