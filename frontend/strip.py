"""The live strip: ticks, prices and the feed's health, redrawn by the browser, not by reruns.

Each run of a Streamlit fragment makes the browser re-render every element on the page: at the
strip's four runs a second that was half of the renderer's CPU (bench/bench_page.py, strip on
and off). So the strip is one ``st.components.v2`` component, mounted at each page run with the
strip as it is then; its script fetches the strip's HTML from a route of the app's own server
(``STRIP_PATH``, same origin) every refresh and swaps it in. Nothing else on the page moves.

The route finds the engine in ``engines()``, the process-wide directory ``get_engine`` fills; it
serves only engines that exist (a request never starts a feed).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import streamlit as st

from backend.engine import Engine, EngineHealth
from frontend.cards import Card, cards_html, duration_text, status_html, warning_html

log = logging.getLogger(__name__)

STRIP_PATH = "/pa/strip"  # ?source=live|replay|simulate|db; served by the st.App in app.py
STRIP_SYMBOLS = 5  # prices shown in the strip; the tick count covers every symbol
CLOCK_OFFSET_SHOWN_MS = 1_000
MARKER = "x-pa-strip"  # the route's answer carries it: a page without the route says so

JS = Path(__file__).with_name("strip.js").read_text()


class EngineDirectory:
    """The engines this process runs, by source: what the strip's route may read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_source: dict[str, Engine] = {}

    def add(self, engine: Engine) -> None:
        with self._lock:
            self._by_source[engine.opts.source] = engine

    def remove(self, engine: Engine) -> None:
        with self._lock:
            if self._by_source.get(engine.opts.source) is engine:
                del self._by_source[engine.opts.source]

    def get(self, source: str) -> Engine | None:
        with self._lock:
            return self._by_source.get(source)


@st.cache_resource
def engines() -> EngineDirectory:
    """One directory per process, shared by the page's runs and the route."""
    return EngineDirectory()


def strip_url(source: str) -> str:
    base = st.get_option("server.baseUrlPath").strip("/")
    return f"{'/' + base if base else ''}{STRIP_PATH}?source={source}"


def routes() -> list:
    """The strip's route, for ``st.App(routes=...)``."""
    from starlette.routing import Route

    base = st.get_option("server.baseUrlPath").strip("/")
    return [Route(f"{'/' + base if base else ''}{STRIP_PATH}", strip_endpoint)]


def strip_endpoint(request):
    """GET ``STRIP_PATH?source=...``: the strip's HTML now; 404 for a source not running.
    A plain function: Starlette runs it in its thread pool, beside the event loop."""
    from starlette.responses import PlainTextResponse

    headers = {"Cache-Control": "no-store", MARKER: "1"}
    source = request.query_params.get("source", "")
    engine = engines().get(source)
    if engine is None:
        return PlainTextResponse(f"no {source or 'such'} feed running", 404, headers=headers)
    try:
        html = strip_html(engine.health())
    except Exception as exc:  # the strip says it in place; the page stays
        log.exception("strip of the %s feed", source)
        return PlainTextResponse(f"strip failed: {exc}", 500, headers=headers)
    return PlainTextResponse(html, headers=headers, media_type="text/html")


def mount_strip(engine: Engine, every_s: float | None) -> None:
    """The strip as it is now; in the browser, refreshed every ``every_s`` (None: paused)."""
    component = st.components.v2.component("pa_strip", js=JS, isolate_styles=False)
    component(
        data={
            "html": strip_html(engine.health()),
            "url": strip_url(engine.opts.source),
            "every_ms": 0 if every_s is None else round(every_s * 1000),
            "marker": MARKER,
        },
        key="pa_strip",
    )


def strip_html(h: EngineHealth) -> str:
    """Ticks, prices and the feed's health as one HTML block."""
    snap, symbols = h.store, h.symbols
    shown = symbols[:STRIP_SYMBOLS]
    more = len(symbols) - len(shown)
    cards = [
        Card(
            "Ticks",
            f"{snap.total_ticks:,}",
            f"aggregate trades held, all {len(symbols)} symbols"
            + (f"; prices of the first {len(shown)} shown" if more else ""),
        )
    ]
    cards += [price_card(symbol, snap.symbols[symbol]) for symbol in shown]
    note = f"Prices of {len(shown)} of {len(symbols)} symbols shown; ticks of all." if more else ""
    return cards_html(cards, note, columns=len(cards)) + health_html(h)


def price_card(symbol: str, s) -> Card:
    if s.last_price is None:
        return Card(symbol, "—")
    change = (s.last_price / s.first_price - 1) * 100 if s.first_price else 0.0
    if round(change, 3) == 0:  # no "−0.000%" with a red arrow
        return Card(symbol, f"{s.last_price:,.2f}", delta="0.000% since start")
    tone = "up" if change > 0 else "down"
    return Card(
        symbol, f"{s.last_price:,.2f}", delta=f"{change:+.3f}% since start", delta_tone=tone
    )


def health_html(h) -> str:
    """The feed's health under the prices, in the same block; plain HTML, no markdown for the
    browser to parse."""
    snap, health = h.store, h.feed
    age = "—" if health.last_message_age_s is None else f"{health.last_message_age_s:.1f}s"
    latency = latency_text(h.source, health.feed_latency_ms, h.clock_offset_ms)
    colour = {"connected": "green", "reconnecting": "orange"}.get(health.state, "gray")
    gaps_open = sum(s.open_gaps for s in snap.symbols.values())
    source = h.source
    replay = h.replay_pass
    if replay is not None and replay[0] > 1:
        source += f" (pass {replay[0]}, times shifted +{replay[1] / 3_600_000:.2f} h)"
    lines = [
        status_html(
            health.state,
            colour,
            f"source {source} · {health.msgs_per_s:,.0f} msg/s · "
            f"last message {age} ago · {latency} · reconnects {health.reconnects} · "
            f"gaps {health.gaps_found} found / {health.gaps_filled} filled / {gaps_open} open · "
            f"malformed skipped {health.malformed} · duplicates dropped "
            f"{sum(s.duplicates for s in snap.symbols.values())} · backfill overlap "
            f"{sum(s.backfill_overlap for s in snap.symbols.values())}"
            + _mark_feed_text(h.mark_feed),
        )
    ]
    if health.backfill_error:
        lines.append(warning_html(f"backfill: {health.backfill_error}"))
    if h.collectors:
        lines.append(collectors_html(h))
    if h.mark_feed is not None and h.mark_feed.last_error:
        lines.append(warning_html(f"mark prices: {h.mark_feed.last_error}"))
    return "".join(lines)


def latency_text(source: str, latency_ms: float | None, clock_offset_ms: float | None) -> str:
    """The feed's latency; on ``--source db`` past a minute, the age of the newest stored second
    (the collectors stopped, or wrote old data: a latency of 30,510,388,438 ms says nothing)."""
    if clock_offset_ms is not None and abs(clock_offset_ms) > CLOCK_OFFSET_SHOWN_MS:
        # Latency is event time against our clock: meaningless when the clocks disagree.
        return f"clock offset {clock_offset_ms / 1000:+,.1f} s (exchange − ours)"
    if latency_ms is None:
        return "latency —"
    if source == "db" and latency_ms > 60_000:
        return f"newest stored second {duration_text(latency_ms / 1000)} old"
    return f"latency {latency_ms:,.0f} ms"


def collectors_html(h) -> str:
    """--source db: each symbol's collector as the database tells it (who; last save; how far
    its bars are complete: behind the newest stored bar while it has a gap open; its gaps)."""
    now_ms = time.time() * 1000
    parts = []
    for c in h.collectors:
        last = h.store.symbols.get(c.symbol)
        newest = last.last_trade_time_ms if last is not None else None
        behind = (
            ""
            if newest is None
            else f", {max(0, (newest - c.complete_to_ms) / 1000):.0f} s behind its newest bar"
        )
        who = f" ({c.host} pid {c.pid})" if c.host else " (no collector named)"
        gaps = "" if c.open_gaps is None else f", gaps open {c.open_gaps} ({c.missing_ids:,} ids)"
        parts.append(
            f"{c.symbol}{who}: saved {(now_ms - c.saved_at_ms) / 1000:,.1f} s ago, complete to "
            f"{time.strftime('%H:%M:%S', time.gmtime(c.complete_to_ms / 1000))} UTC{behind}{gaps}"
        )
    return status_html("collectors", "gray", " · ".join(parts))


def _mark_feed_text(mark) -> str:
    if mark is None:
        return ""
    age = "—" if mark.last_message_age_s is None else f"{mark.last_message_age_s:.1f}s ago"
    return f" · mark prices {mark.state}, last {age}, malformed skipped {mark.malformed}"
