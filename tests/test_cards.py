"""The figure cards: one HTML block, escaped text, help on hover."""

from __future__ import annotations

import math

from frontend.cards import Card, cards_html, status_html
from tests.conftest import card_values


def test_cards_carry_labels_values_and_help_escaped():
    cards = [Card("Hedge ratio β", "0.8969", "OLS, <300> bars"), Card("z (60 bars)", "−1.25")]
    markup = cards_html(cards, note="ADF: p < 0.05 & stationary")
    assert card_values(markup) == {"Hedge ratio β": "0.8969", "z (60 bars)": "−1.25"}
    assert 'title="OLS, &lt;300&gt; bars"' in markup  # the help, as the browser's tooltip
    assert markup.count('class="pa-help"') == 1  # no help: no "?"
    assert "ADF: p &lt; 0.05 &amp; stationary" in markup
    assert "<300>" not in markup


def test_a_card_cannot_inject_markup():
    markup = cards_html([Card('"><script>x()</script>', "<b>1</b>")])
    assert "<script>" not in markup and "<b>" not in markup
    assert card_values(markup) == {'"><script>x()</script>': "<b>1</b>"}


def test_status_line_names_its_state_in_colour():
    line = status_html("reconnecting", "orange", "source live · 0 msg/s")
    assert '<span class="pa-orange">● reconnecting</span> · source live · 0 msg/s' in line


def test_a_delta_shows_its_direction_as_st_metric_does():
    up = cards_html([Card("BTCUSDT", "90,123.40", delta="+0.125% since start", delta_tone="up")])
    down = cards_html([Card("ETHUSDT", "3,001.00", delta="-1.000% since start", delta_tone="down")])
    flat = cards_html([Card("ETHUSDT", "3,001.00", delta="0.000% since start")])
    assert '<div class="pa-delta pa-up">▲ +0.125% since start</div>' in up
    assert '<div class="pa-delta pa-down">▼ -1.000% since start</div>' in down
    assert '<div class="pa-delta pa-off">0.000% since start</div>' in flat  # no arrow, grey
    assert card_values(up) == {"BTCUSDT": "90,123.40"}
    assert "pa-delta" not in cards_html([Card("Ticks", "12")])


def test_durations_read_in_the_unit_that_fits():
    from frontend.cards import duration_text

    cases = {
        47.9: "48 s",
        119.0: "119 s",
        750.0: "12.5 min",
        18_000: "5.0 h",
        2 * 86_400: "2.0 days",
    }
    assert {s: duration_text(s) for s in cases} == cases
    assert (duration_text(math.inf), duration_text(math.nan), duration_text(None)) == (
        "∞",
        "—",
        "—",
    )
