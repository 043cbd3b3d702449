"""Page: offline analysis of uploaded bars or trades (run by ``st.navigation``)."""

from __future__ import annotations

import streamlit as st

from frontend.export import upload_panel
from frontend.pair_panels import pair_sections
from frontend.shell import session_engine


def offline_page() -> None:
    """Offline analysis of uploaded files: the same figures and charts, drawn once."""
    st.title("Offline analysis")
    engine = session_engine()  # its cache serves the slow statistics of uploads too
    uploads = upload_panel()
    if uploads is None:
        st.info(
            "Upload bars (this app's CSV export or any CSV with time and OHLC columns) or "
            "data.binance.vision aggTrades files: the pair figures and charts of the live page, "
            "on your files. The live feed keeps running on the Live pair page."
        )
        return
    boxes = (st.container() for _ in range(3))
    pair_sections(engine, uploads, None, *boxes)


offline_page()
