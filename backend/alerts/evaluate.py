"""Edge-triggered evaluation of one rule over the values of its closed bars (pure).

A rule with a level fires when a closed bar's value crosses to the far side of it: ``above = L``
fires on the first bar with ``value > L`` after one with ``value <= L``; ``below = L`` likewise
with ``value < L``; a rule with both fires on leaving the band ``[below, above]``. Having fired
it is disarmed, and re-arms on the first bar back on the near side (``value <= L`` /
``>= L``). A crossing within ``cooldown_s`` of the last firing (in bar time, so a replay or a
catch-up behaves as it would have live) disarms without firing. Bars with no value (NaN:
warming up, a quiet bar) change nothing.

The first value a rule ever sees only arms it (or not): a value already beyond the level when
watching starts is not a crossing. After that every bar closed since the last one evaluated
is walked, so a watcher that restarts catches up on the bars it missed instead of dropping
their crossings, and never walks a bar twice (``RuleState.last_bar_ms``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from backend.alerts.rules import DEFAULT_MESSAGE, Rule


@dataclass(frozen=True)
class RuleState:
    """What a rule remembers between bars (persisted as JSON, per rule set and rule)."""

    armed: bool | None = None  # None: no value seen yet
    last_bar_ms: int | None = None  # open time of the newest closed bar evaluated
    fired_bar_ms: int | None = None  # the bar of the last firing
    fired_value: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> RuleState:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
            return cls(**{k: raw.get(k) for k in ("armed", "last_bar_ms", "fired_bar_ms",
                                                  "fired_value")})  # fmt: skip
        except (ValueError, TypeError):
            return cls()  # an unreadable state starts over: arming, never firing at once

    @property
    def label(self) -> str:
        return {None: "waiting for data", True: "armed", False: "fired (re-arms on the way back)"}[
            self.armed
        ]


@dataclass(frozen=True)
class Firing:
    """One crossing: the closed bar it happened on, the value and the level crossed."""

    bar_open_time_ms: int
    value: float
    threshold: float
    side: str  # "above" | "below"


def beyond(rule: Rule, value: float) -> str | None:
    """Which level ``value`` is beyond ("above" / "below"), or None on the near side."""
    if rule.above is not None and value > rule.above:
        return "above"
    if rule.below is not None and value < rule.below:
        return "below"
    return None


def step(
    rule: Rule, state: RuleState, open_time_ms: np.ndarray, values: np.ndarray
) -> tuple[RuleState, list[Firing]]:
    """Walk the closed bars (``open_time_ms`` ascending, ``values`` beside them) newer than
    ``state.last_bar_ms``; the new state and the crossings, oldest first."""
    t = np.asarray(open_time_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    start = 0 if state.last_bar_ms is None else int(np.searchsorted(t, state.last_bar_ms, "right"))
    if start >= len(t):
        return state, []
    if state.armed is None:  # first sight: the first value arms (or not), the rest are walked
        finite = np.flatnonzero(np.isfinite(v[start:]))
        if not len(finite):
            return replace(state, last_bar_ms=int(t[-1])), []
        first = start + int(finite[0])
        state = replace(state, armed=beyond(rule, float(v[first])) is None)
        start = first + 1
    cooldown_ms = rule.cooldown_s * 1000.0
    fired: list[Firing] = []
    armed, fired_ms, fired_value = state.armed, state.fired_bar_ms, state.fired_value
    for i in range(start, len(t)):
        value = float(v[i])
        if not math.isfinite(value):
            continue
        side = beyond(rule, value)
        if side is None:
            armed = True
            continue
        if armed:
            bar_ms = int(t[i])
            if fired_ms is None or bar_ms - fired_ms >= cooldown_ms:
                level = rule.above if side == "above" else rule.below
                fired.append(Firing(bar_ms, value, float(level), side))
                fired_ms, fired_value = bar_ms, value
            armed = False
    last = int(t[-1])
    return RuleState(armed, last, fired_ms, fired_value), fired


def message(rule: Rule, firing: Firing, time_text: str) -> str:
    """The rule's message template (``rules.MESSAGE_FIELDS``) filled in for ``firing``."""
    fields = {
        "rule": rule.name,
        "kind": KIND_LABELS.get(rule.kind, rule.kind),
        "symbols": "/".join(rule.symbols) or "the feed",
        "timeframe": rule.timeframe,
        "value": firing.value,
        "threshold": firing.threshold,
        "side": firing.side,
        "time": time_text,
    }
    return (rule.message or DEFAULT_MESSAGE).format_map(fields)


# What each kind's value is, in its units (the page's labels and the default message).
KIND_LABELS = {
    "price": "close",
    "volume": "bar volume",
    "zscore": "z-score",
    "coint": "Engle-Granger p",
    "beta_drift": "beta change %",
    "funding": "funding rate %",
    "feed": "seconds since the feed's last message",
    "halflife": "half-life in bars",
    "carry": "funding carry bps/day",
}
