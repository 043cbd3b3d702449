"""Figures drawn as one HTML block instead of one ``st.metric`` each.

Every refresh re-sends a fragment's elements and the browser re-renders each of them: eight
metrics in two rows of columns, redrawn once a second, cost the browser several times what one
``st.html`` block of the same eight cards does (docs/benchmarks.md: design measurements). The
cards look like metrics: a label, a value, the help on hover (the label's ?).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

STYLE = Path(__file__).with_name("cards.css")  # sent once per page run, not per refresh


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    help: str = ""
    delta: str = ""  # under the value, as st.metric's delta
    delta_tone: str = "off"  # "up" (green ▲), "down" (red ▼) or "off" (grey, no arrow)


def cards_html(cards: list[Card], note: str = "", columns: int = 4) -> str:
    """The cards in a grid of ``columns``, then a ``note`` line under them; text escaped
    (labels carry symbol names)."""
    cells = "".join(_card(c) for c in cards)
    under = f'<div class="pa-note">{escape(note)}</div>' if note else ""
    return f'<div class="pa-cards" style="--pa-columns:{columns}">{cells}</div>{under}'


def _card(card: Card) -> str:
    info = f' <span class="pa-help" title="{escape(card.help)}">?</span>' if card.help else ""
    delta = ""
    if card.delta:
        arrow = {"up": "▲ ", "down": "▼ "}.get(card.delta_tone, "")
        delta = f'<div class="pa-delta pa-{card.delta_tone}">{arrow}{escape(card.delta)}</div>'
    return (
        f'<div class="pa-card" data-label="{escape(card.label)}">'
        f'<div class="pa-label">{escape(card.label)}{info}</div>'
        f'<div class="pa-value">{escape(card.value)}</div>{delta}</div>'
    )


def status_html(state: str, colour: str, text: str) -> str:
    """One status line: a coloured state dot, then plain text (no markdown to parse)."""
    return (
        f'<div class="pa-status"><span class="pa-{colour}">● {escape(state)}</span>'
        f" · {escape(text)}</div>"
    )


def warning_html(text: str) -> str:
    """A line that something is wrong (a backfill or mark-price error), text escaped."""
    return f'<div class="pa-status">⚠️ {escape(text)}</div>'


def duration_text(seconds: float) -> str:
    """A span for a reader: "48 s", "12.5 min", "5.0 h", "353.1 days"; "∞" for an infinite one,
    "—" for none."""
    if not isinstance(seconds, float | int) or not math.isfinite(seconds):
        return "∞" if seconds == math.inf else "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:,.1f} days"
