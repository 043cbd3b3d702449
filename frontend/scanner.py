"""The scanner page: every pair of the streamed symbols ranked, refreshed as bars close; a
click on a row opens that pair on the live pair page."""

from __future__ import annotations

import datetime as dt
import time

import streamlit as st

from backend.engine import (
    SCAN_DEEP,
    SCAN_FAST,
    SCAN_MAX_Q,
    SCAN_MIN_CORR,
    SCAN_TIMEFRAMES,
    TIMEFRAMES_MS,
)
from frontend.controls import day_ms

LIVE_PAGE = "frontend/pages/live.py"
MAX_WINDOW_BARS = 50_000  # a window of dates longer than this scans its last bars


def scanner_page(engine) -> None:
    st.title("Pair scanner")
    symbols = engine.health().symbols
    if len(symbols) < 2:
        st.error(f"The scanner needs two streamed symbols or more; streaming {', '.join(symbols)}.")
        return
    sb = st.sidebar
    sb.header("Scan")
    if "scan_timeframe" not in st.session_state:  # the first visit: deep history if it is in
        tf, bars = SCAN_DEEP
        deep = all(len(engine.bars(s, tf, last=bars + 2)) > bars for s in symbols)
        st.session_state["scan_timeframe"], st.session_state["scan_lookback"] = (
            SCAN_DEEP if deep else SCAN_FAST
        )
    timeframe = sb.radio("Bars", SCAN_TIMEFRAMES, horizontal=True, key="scan_timeframe")
    span = sb.radio("Window", ["the last bars", "dates"], horizontal=True, key="scan_span")
    end_ms = None
    if span == "dates":
        today = dt.datetime.now(dt.UTC).date()
        days = sb.date_input(
            "From – to (UTC days, inclusive)", (today - dt.timedelta(days=29), today),
            max_value=today, key="scan_dates",
        )  # fmt: skip
        if len(days) != 2:
            st.info("Pick the window's last day too.")
            return
        start_ms, end_ms = day_ms(days[0]), day_ms(days[1]) + 86_400_000 - 1
        bars = (end_ms + 1 - start_ms) // TIMEFRAMES_MS[timeframe]
        lookback = int(min(max(bars, 30), MAX_WINDOW_BARS))
        if bars > MAX_WINDOW_BARS:
            sb.caption(f"The last {MAX_WINDOW_BARS:,} {timeframe} bars of these days.")
    else:
        lookback = int(sb.number_input("Lookback (bars)", 30, 5_000, step=50, key="scan_lookback"))
    sb.subheader("Filters")
    max_q = sb.number_input(
        "Max q (Engle–Granger p, Benjamini–Hochberg over every pair)",
        0.0, 1.0, SCAN_MAX_Q, step=0.01, key="scan_max_q",
        help="the false-discovery-rate adjusted p: among pairs passing at q ≤ 0.05, at most "
        "5 % are expected to be unrelated. A raw p ≤ 0.05 over hundreds of pairs lets dozens "
        "of unrelated ones through (the table still shows each raw p)",
    )  # fmt: skip
    hl_min, hl_max = sb.slider(
        "Half-life (bars)", 0.0, float(lookback), (0.0, float(lookback)), key="scan_half_life"
    )
    min_corr = sb.slider(
        "Min correlation of returns", -1.0, 1.0, SCAN_MIN_CORR, 0.05, key="scan_min_corr",
        help="unrelated symbols' returns correlate ~0: a low Engle–Granger p between them is "
        "luck, not a pair",
    )  # fmt: skip
    min_volume = sb.number_input(
        "Min volume (USDT, the smaller leg, over the window)", 0.0, None, 0.0, step=1e5,
        key="scan_min_volume",
    )  # fmt: skip
    filters = (max_q, hl_min, hl_max, min_corr, min_volume)
    # A scan changes only when a bar closes: look a few times a bar, send when it changed.
    every = max(1.0, TIMEFRAMES_MS[timeframe] / 12_000)
    st.fragment(scan_table, run_every=every)(engine, timeframe, lookback, filters, end_ms)


def scan_table(engine, timeframe: str, lookback: int, filters: tuple, end_ms=None) -> None:
    scan = engine.scan(timeframe, lookback, end_ms=end_ms)
    if scan.waiting:
        st.info(
            f"Warming up: {scan.waiting}. A shorter lookback or another timeframe starts sooner."
        )
        return
    max_q, hl_min, hl_max, min_corr, min_volume = filters
    t = scan.table
    shown = t[
        (t["eg_qvalue"] <= max_q)
        & t["half_life"].between(hl_min, hl_max)
        & (t["corr"] >= min_corr)
        & (t["volume_usdt"] >= min_volume)
    ].reset_index(drop=True)
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(scan.last_closed_ms / 1000))
    skipped = f" · left out (a bar missing): {', '.join(scan.skipped)}" if scan.skipped else ""
    st.caption(
        f"{len(shown)} of {len(t)} pairs pass the filters · the last {lookback} closed "
        f"{timeframe} bars, to the one opened {at} UTC{skipped}. Ranked by the Engle–Granger "
        f"p-value (statsmodels coint, constant, 1 lag); filtered on q, that p adjusted "
        f"(Benjamini–Hochberg) for testing all {len(t)} pairs. β, α and z are fitted on the "
        "whole window, its last bar included (hindsight within the window). Stability: the "
        "share of 5 half-window sub-windows cointegrated (p ≤ 0.05), β's drift from the first "
        "third to the last, the spread's Hurst exponent (< 0.5 mean-reverting). Click a row "
        "to open the pair."
    )
    # Shares and drifts are fractions; the table prints them in percent.
    in_percent = shown.assign(
        coint_share=100 * shown["coint_share"], beta_drift=100 * shown["beta_drift"]
    )
    event = st.dataframe(
        in_percent,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="scan_table",
        height=min(640, 35 * (len(shown) + 1) + 3),  # up to 17 rows without scrolling
        # What a pair is chosen on first; the fit's details after.
        column_order=(
            "y",
            "x",
            "eg_pvalue",
            "eg_qvalue",
            "carry_bps_day",
            "z",
            "half_life",
            "corr",
            "coint_share",
            "beta_drift",
            "hurst",
            "beta",
            "alpha",
            "volume_usdt",
        ),  # fmt: skip
        column_config={
            "y": st.column_config.TextColumn("Y", help="dependent: the symbol listed first"),
            "x": st.column_config.TextColumn("X", help="hedge"),
            "beta": st.column_config.NumberColumn("β", format="%.4f", help="OLS of log y on log x"),
            "alpha": st.column_config.NumberColumn("α", format="%.4f"),
            "eg_pvalue": st.column_config.NumberColumn(
                f"EG p ({lookback} bars)", format="%.2e", help="Engle–Granger p-value, raw"
            ),
            "eg_qvalue": st.column_config.NumberColumn(
                "EG q (BH)",
                format="%.2e",
                help=f"the p adjusted for the {len(t)} pairs tested (Benjamini–Hochberg)",
            ),
            "coint_share": st.column_config.NumberColumn(
                "Coint. sub-windows",
                format="%.0f%%",
                help=f"share of 5 sub-windows of {lookback // 2} bars with EG p ≤ 0.05",
            ),
            "beta_drift": st.column_config.NumberColumn(
                "β drift",
                format="%+.1f%%",
                help="β of the last third minus β of the first third, over |β|",
            ),
            "hurst": st.column_config.NumberColumn(
                "Hurst",
                format="%.2f",
                help="of the spread: < 0.5 mean-reverting, 0.5 a random walk, > 0.5 trending",
            ),
            "half_life": st.column_config.NumberColumn(
                "Half-life (bars)", format="%.1f", help="AR(1) of the spread; inf: no reversion"
            ),
            "corr": st.column_config.NumberColumn(
                f"Corr ({lookback - 1} returns)", format="%.3f", help="Pearson of log returns"
            ),
            "z": st.column_config.NumberColumn(
                "z (last bar)", format="%.2f", help="last spread over the window's sample std"
            ),
            "volume_usdt": st.column_config.NumberColumn(
                "Volume (USDT)", format="%.3e", help="the smaller leg's, over the window"
            ),
            "carry_bps_day": st.column_config.NumberColumn(
                "Carry (bps/day, simulated)"
                if engine.funding_source == "simulated"
                else "Carry (bps/day)",
                format="%+.2f",
                help="funding earned (− paid) by long y / short β·x per day, in bps of y's "
                "notional, at the current funding rates (the reverse: the opposite sign); "
                "blank until both legs have a mark price",
            ),
        },
    )
    rows = event.selection.rows if event is not None else []
    if rows:
        pair = shown.iloc[rows[0]]
        open_pair(str(pair["y"]), str(pair["x"]), timeframe, lookback)


def open_pair(y: str, x: str, timeframe: str, lookback: int) -> None:
    """The live pair page on this pair, its bars and its lookback."""
    st.session_state.update(y_symbol=y, x_symbol=x, timeframe=timeframe, lookback=lookback)
    st.session_state["timeframe_fixed"] = True  # the scanned timeframe, not the opening one
    st.session_state.pop("scan_table", None)  # back on the scanner, no row stays selected
    st.switch_page(LIVE_PAGE)
