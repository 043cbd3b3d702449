"""Export (CSV downloads built at the click, save to the database) and uploads."""

from __future__ import annotations

import time

import streamlit as st

from backend.engine import Engine, StorageError, UploadedData, UploadError, parse_upload
from frontend.controls import Controls


def export_panel(engine: Engine, data, controls: Controls | None) -> None:
    """Downloads built at the click (a callable ``data``: Streamlit runs it when the button is
    clicked), so a file holds exactly the bars there are then; nothing is rebuilt meanwhile."""
    st.subheader("Export")
    left, middle, right = st.columns(3)
    tf = controls.timeframe if controls is not None else st.session_state.get("timeframe", "1s")
    left.download_button(
        f"Download CSV ({tf} bars, all symbols)",
        lambda: data.csv(tf),
        file_name=f"bars_{tf}.csv",
        mime="text/csv",
        key="download_bars",
        on_click="ignore",
    )
    if controls is not None:
        middle.download_button(
            f"Download analytics CSV ({controls.y}/{controls.x}, {tf})",
            lambda: engine.pairs.analytics_csv(data, controls.request()),
            file_name=f"analytics_{controls.y}_{controls.x}_{tf}.csv",
            mime="text/csv",
            key="download_analytics",
            on_click="ignore",
        )
    if data is engine and engine.health().source == "db":
        right.caption(f"Bars read from {engine.health().db_path}: the collectors save them.")
    elif data is engine:  # uploads are the user's own files: nothing to save
        db_path = engine.health().db_path
        kind = "PostgreSQL" if db_path.startswith(("postgresql://", "postgres://")) else "SQLite"
        if right.button(f"Save to {kind} ({db_path})", key="save_sqlite"):
            save_with_progress(engine, right, db_path)
        last = st.session_state.get("last_save")
        if last is not None:
            (right.success if last[0] else right.error)(last[1])
    st.caption(
        "CSV files are built when you click: they hold every bar there is at that moment. "
        "Save to SQLite writes every bar of every timeframe (and the resume points) in one "
        "transaction."
    )


def save_with_progress(engine: Engine, where, db_path: str) -> None:
    bar = where.progress(0.0, text="Saving bars…")
    try:
        written = engine.save(lambda share, what: bar.progress(share, text=f"Saving {what}…"))
    except StorageError as exc:
        bar.empty()
        st.session_state["last_save"] = (False, f"Nothing was saved: {exc}")
        return
    bar.empty()
    # Kept in the session: the panel is redrawn on every rerun and must keep saying it.
    st.session_state["last_save"] = (
        True,
        f"Saved to {db_path} at {time.strftime('%H:%M:%S', time.gmtime())} UTC: "
        f"{written:,} rows written (inserted or changed).",
    )


def upload_panel() -> UploadedData | None:
    files = st.file_uploader(
        "OHLC bars (this app's CSV export or any CSV with open_time/time, open, high, low, "
        "close) or data.binance.vision aggTrades files (spot or USD-M); 25 MB each",
        type=["csv"],
        accept_multiple_files=True,
        key="uploads",
    )
    out = {}
    for f in files or []:
        try:
            for item in parse_upload(f.name, f.getvalue()):
                out[item.symbol] = item
        except UploadError as exc:
            st.error(str(exc))
    if not out:
        return None
    st.success("Loaded " + ", ".join(f"{s} ({'/'.join(u.timeframes())})" for s, u in out.items()))
    return UploadedData(out, key=tuple((f.name, f.size) for f in files))
