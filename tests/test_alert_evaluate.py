"""Edge-triggered rules over closed bars (backend.alerts.evaluate), hand-worked."""

import math

import numpy as np

from backend.alerts.evaluate import RuleState, message, step
from backend.alerts.rules import parse_rules

T = np.arange(10) * 1000


def rule(extra: str = "", level: str = "above = 10.0"):
    text = f'[[rule]]\nname = "r"\nkind = "price"\nsymbol = "BTCUSDT"\ntimeframe = "1s"\n{level}\n{extra}'
    return parse_rules(text).rules[0]


def fired_bars(r, values, times=T):
    state, fired = step(r, RuleState(), times[: len(values)], np.array(values, float))
    return state, [f.bar_open_time_ms // 1000 for f in fired]


def test_fires_on_the_crossing_and_rearms_on_the_way_back():
    # 9 arms it; 11 crosses (bar 1); stays above (no repeat); 10 is back (re-arms); 12 crosses
    _, bars = fired_bars(rule(), [9, 11, 12, 10, 12, 13])
    assert bars == [1, 4]


def test_a_value_already_beyond_at_start_is_not_a_crossing():
    state, bars = fired_bars(rule(), [11, 12])
    assert bars == [] and state.armed is False
    _, bars = fired_bars(rule(), [11, 12, 9, 11])
    assert bars == [3]


def test_below_and_a_band():
    _, bars = fired_bars(rule(level="below = 5.0"), [6, 4, 3, 5, 4.5])
    assert bars == [1, 4]
    band = rule(level="above = 10.0\nbelow = -10.0")
    state, fired = step(band, RuleState(), T[:5], np.array([0, 11, 0, -11, -12.0]))
    assert [(f.bar_open_time_ms, f.side, f.threshold) for f in fired] == [
        (1000, "above", 10.0),
        (3000, "below", -10.0),
    ]


def test_cooldown_in_bar_time_disarms_without_firing():
    r = rule("cooldown_s = 3")
    # crossings at bars 1, 3 (2 s after: suppressed), 5 (4 s after the last firing: fires)
    _, bars = fired_bars(r, [9, 11, 9, 11, 9, 11])
    assert bars == [1, 5]


def test_nan_bars_change_nothing():
    _, bars = fired_bars(rule(), [9, math.nan, 11, math.nan, 12])
    assert bars == [2]


def test_each_bar_is_walked_once_across_calls_and_a_restart():
    r = rule()
    values = np.array([9, 11, 9, 11, 9, 9, 11, 12, 9, 11], float)
    _, whole = fired_bars(r, values)
    # the same bars in pieces (overlapping reads, as each evaluation re-reads the newest),
    # with the state passed through JSON in between: a restarted watcher
    state, seen = RuleState(), []
    for lo, hi in ((0, 3), (1, 5), (5, 6), (3, 10)):
        state, fired = step(r, state, T[lo:hi], values[lo:hi])
        seen += [f.bar_open_time_ms // 1000 for f in fired]
        state = RuleState.from_json(state.to_json())
    assert seen == whole == [1, 3, 6, 9]


def test_unreadable_state_starts_over():
    assert RuleState.from_json("{junk") == RuleState()
    assert RuleState.from_json('{"armed": true, "bogus": 1}').armed is True


def test_message_template_and_default():
    r = rule('message = "{rule} {symbols} {value:.1f} > {threshold:g} at {time}"')
    _, fired = step(r, RuleState(armed=True), T[:1], np.array([12.34]))
    assert message(r, fired[0], "T") == "r BTCUSDT 12.3 > 10 at T"
    text = message(rule(), fired[0], "2026-12-07 00:00:00 UTC")
    assert text == "r: close of BTCUSDT above 10 (12.34) on the 1s bar of 2026-12-07 00:00:00 UTC"
