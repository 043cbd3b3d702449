"""Page: the live pair: tick strip, figures, charts and export of the streamed symbols (run by
``st.navigation`` in ``frontend.shell.main``)."""

from __future__ import annotations

import streamlit as st

from frontend.controls import refresh_s
from frontend.pair_panels import pair_sections
from frontend.shell import session_engine
from frontend.strip import mount_strip


def offline_notice(h) -> None:
    feed = h.feed
    if h.source != "live" or feed.messages or feed.state != "reconnecting":
        if h.source not in ("live", "db") and st.sidebar.button("Back to the live feed"):
            st.session_state["source"] = "live"
            st.rerun()
        return
    st.warning(
        f"Binance is unreachable from this machine ({h.ws_url}): "
        f"{feed.last_error or 'no answer'}. Still retrying in the background. "
        "Meanwhile you can analyse the recorded sample or the simulation:"
    )
    left, right = st.columns(2)
    if left.button("Replay the recorded sample"):
        st.session_state["source"] = "replay"
        st.rerun()
    if right.button("Run the simulation"):
        st.session_state["source"] = "simulate"
        st.rerun()


def live_page() -> None:
    """The live pair: tick strip, figures, charts and export of the streamed symbols."""
    st.title("Pair analytics · Binance USD-M futures")
    engine = session_engine()
    health = engine.health()
    if health.unknown_symbols:
        where = (
            f"not listed by {health.rest_url}/fapi/v1/exchangeInfo"
            if health.source == "live"
            else f"not in the {health.source} data ({', '.join(health.symbols)})"
        )
        st.error(
            f"Unknown symbol(s) {', '.join(health.unknown_symbols)}: {where}, so not streamed."
        )
    # One fixed container per section: a fragment redrawn on its own keeps its place even when
    # a section above it grows or shrinks (else Streamlit can leave a stale copy behind).
    strip, notice, analysis_box, charts_box, export_box = (st.container() for _ in range(5))
    with strip:
        # The user's refresh (or pause) sets how often the live parts redraw: a page left open
        # all day costs what its refresh asks for.
        every = refresh_s()
        mount_strip(engine, every)
    with notice:
        offline_notice(health)
    pair_sections(engine, engine, every, analysis_box, charts_box, export_box)


live_page()
