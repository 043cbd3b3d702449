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
)
BY_LABEL = {tf.label: tf for tf in TIMEFRAMES}
TIMEFRAMES_MS: dict[str, int] = {tf.label: tf.ms for tf in TIMEFRAMES}
BASE = next(tf.label for tf in TIMEFRAMES if tf.folded_from is None)  # built from trades
# Built from the base timeframe's bars, and kept when old base bars are forgotten.
FOLDED = tuple(tf.label for tf in TIMEFRAMES if tf.folded_from == BASE)
# Old base bars are forgotten at multiples of the longest folded timeframe: every folded bar
# stays whole on one side of the cut.
FOLD_MS = max(TIMEFRAMES_MS[label] for label in FOLDED)
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
