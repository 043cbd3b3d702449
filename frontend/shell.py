"""The page's shell: set-up shared by every page, the engine of the session, navigation.

The engine (feed threads, tick store, database) is one per process via ``st.cache_resource``
and the page's only door into the backend; each page is a file of its own in
``frontend/pages`` (``st.navigation``).
"""

from __future__ import annotations

import gc

import streamlit as st

from backend.engine import ConfigError, Engine, EngineOptions, StorageError
from frontend.cards import STYLE
from frontend.downloads import keep_click_built_files
from frontend.strip import engines


def release_engine(engine: Engine) -> None:
    engines().remove(engine)
    engine.stop()


@st.cache_resource(show_spinner="Starting the feed…", on_release=release_engine)
def get_engine(opts: EngineOptions) -> Engine:
    engine = Engine(opts)
    engines().add(engine)  # the strip's route reads it from there
    # Streamlit runs a full gc.collect() after every script run, fragments included, and with
    # pandas, statsmodels and plotly loaded that walks every long-lived object each time
    # (docs/benchmarks.md: design measurements). Moving what exists now (modules, the engine)
    # out of the collector's sight leaves it only each run's garbage.
    gc.freeze()
    return engine


# Sidebar settings that mean the same on every page: re-stated at the top of each run so a
# page switch keeps them (Streamlit drops a widget's value once a run does not draw it).
SHARED_KEYS = ("refresh", "chart_refresh", "method", "spread_mode", "series", "corr_on",
               "lookback", "z_window", "corr_window", "shown", "z_threshold", "fee_kind",
               "fee_custom", "fill", "notional", "assumed_spread", "stop_z", "stop_loss",
               "max_hold", "adf_mode", "cooldown", "hedge_tf", "show_span",
               "shown_dates")  # fmt: skip

PAGES_DIR = "frontend/pages"  # relative to app.py, the main script


def main(opts: EngineOptions) -> None:
    """The entry: shared state, then the page the browser asked for (``st.navigation``)."""
    st.set_page_config(page_title="Pair analytics · Binance USD-M", layout="wide")
    keep_click_built_files()
    st.html(STYLE)  # style only: Streamlit puts it out of the layout
    st.session_state["engine_options"] = opts
    st.session_state.setdefault("source", opts.source)
    st.session_state.setdefault("alerts", [])
    st.session_state.setdefault("rules", [])
    for key in SHARED_KEYS:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    pages = [
        st.Page(f"{PAGES_DIR}/live.py", title="Live pair", icon="📈", default=True),
        st.Page(f"{PAGES_DIR}/scanner.py", title="Pair scanner", icon="🔎"),
        st.Page(f"{PAGES_DIR}/basket.py", title="Basket", icon="🧺"),
        st.Page(f"{PAGES_DIR}/offline.py", title="Offline analysis", icon="📂"),
        st.Page(f"{PAGES_DIR}/alerts.py", title="Alerts", icon="🔔"),
    ]
    st.navigation(pages).run()


def session_engine() -> Engine:
    """The process's engine for this session's source; a message and a stop if it cannot
    start."""
    opts = st.session_state["engine_options"]
    try:
        return get_engine(opts.with_source(st.session_state["source"]))
    except (ConfigError, StorageError, ValueError) as exc:  # ValueError: a bad replay file
        st.error(f"Cannot start: {exc}")
        st.stop()
