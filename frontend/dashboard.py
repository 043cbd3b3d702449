"""Streamlit layout: live strip, controls, charts, figures, alerts, export and uploads.

The engine (feed threads, tick store, SQLite) is one per process via ``st.cache_resource`` and
the page's only door into the backend (``health``, ``bars``, ``csv``, ``save``, ``cached``).
Uploaded files offer the same read interface (``UploadedData``), so nothing below asks where
the data came from. The figures and charts refresh inside ``st.fragment(run_every=...)``; the
tick strip outside Streamlit's reruns, fetched by the browser (frontend/strip.py).
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from backend import analytics as an
from backend.config import ConfigError
from backend.csv_export import iso_utc
from backend.engine import Engine, EngineOptions
from backend.pairs import (
    MEAN_REVERSION_P,
    PairParams,
    history_bars,
    live_stats,
    needs,
    notional_beta,
    slow_stats,
)
from backend.records import TIMEFRAMES_MS, Bars
from backend.storage import StorageError
from backend.uploads import UploadedData, UploadError, parse_upload
from frontend import backtest_view, charts
from frontend.cards import STYLE, Card, cards_html, duration_text
from frontend.downloads import keep_click_built_files
from frontend.strip import engines, mount_strip

METHOD_LABELS = {"OLS": "ols", "Huber": "huber", "Theil–Sen": "theil-sen", "Kalman": "kalman"}
WALK_FORWARD = "Walk-forward (no look-ahead)"
HINDSIGHT = "Fixed β from the latest window (hindsight)"
# The first is the default: a trade is on screen within it plus render time (target 500 ms).
REFRESH_CHOICES = ("0.25 s", "0.5 s", "1 s", "2 s", "5 s", "10 s", "30 s", "60 s", "paused")
ANALYSIS_REFRESH_S = 1.0
# A chart redrawn costs the browser far more than anything else on the page (two 600-candle
# charts ~1 s of a core in Chromium here, bench/bench_page.py): the charts sit in a fragment
# of their own that runs this often and redraws a chart only when its data changed. "bar
# close" redraws when a bar closes (the live bar then shows as it was).
CHART_CHOICES = ("1 s", "2 s", "5 s", "10 s", "30 s", "60 s", "bar close")
CHART_DEFAULT = "10 s"
MAX_CANDLES = 1_000  # ~1.5 px a candle on a wide screen: more cannot be told apart


def release_engine(engine: Engine) -> None:
    engines().remove(engine)
    engine.stop()


@st.cache_resource(show_spinner="Starting the feed…", on_release=release_engine)
def get_engine(opts: EngineOptions) -> Engine:
    engine = Engine(opts)
    engines().add(engine)  # the strip's route reads it from there
    # Streamlit runs a full gc.collect() after every script run, fragments included: with
    # pandas, statsmodels and plotly loaded that walks ~200,000 long-lived objects, 100+ ms
    # a time, five runs a second (measured: 70 % of the server's CPU). Moving what exists now
    # (modules, the engine) out of the collector's sight leaves it only each run's garbage.
    gc.freeze()
    return engine


@dataclass(frozen=True)
class Controls:
    timeframe: str
    y: str
    x: str
    shown_bars: int
    params: PairParams
    adf_mode: str  # "bar close" | "on demand"
    cooldown_s: float
    chart_every_s: float | None  # None: redraw at bar close


# Sidebar settings that mean the same on every page: re-stated at the top of each run so a
# page switch keeps them (Streamlit drops a widget's value once a run does not draw it).
SHARED_KEYS = ("refresh", "chart_refresh", "method", "spread_mode", "series", "corr_on",
               "lookback", "z_window", "corr_window", "shown", "z_threshold", "fee_kind",
               "fee_custom", "fill", "notional", "assumed_spread", "stop_z", "stop_loss",
               "max_hold", "adf_mode", "cooldown")  # fmt: skip
FEE_CHOICES = {
    f"Taker {an.TAKER_FEE_BPS:g} bps": an.TAKER_FEE_BPS,
    f"Maker {an.MAKER_FEE_BPS:g} bps": an.MAKER_FEE_BPS,
    "Custom": None,
}
FILL_CHOICES = {"Next bar's open": "next_open", "Next bar's close (latency stress)": "next_close"}
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


def pair_sections(engine: Engine, data, every, analysis_box, charts_box, export_box) -> None:
    """Sidebar, figures, charts and export of ``data`` (live or uploaded: the same interface),
    the live parts refreshed every ``every`` seconds (None: drawn once)."""
    controls = sidebar(data, live=data is engine)
    if controls is None:  # a bad control: said in the sidebar; the rest of the page stays
        with analysis_box:
            tf = st.session_state.get("timeframe") or data.timeframes[0]
            for symbol in data.symbols[:2]:
                bars = data.bars(symbol, tf, last=600)
                if len(bars):
                    st.plotly_chart(
                        charts.candles(bars), key=f"candles_{symbol}", config=charts.CONFIG
                    )
        with export_box:
            export_panel(engine, data, None)
        return
    with analysis_box:
        slow_every = None if every is None else max(every, ANALYSIS_REFRESH_S)
        st.fragment(analysis, run_every=slow_every)(engine, data, controls)
    with charts_box:
        st.fragment(chart_panel, run_every=chart_run_every(every, controls))(engine, data, controls)
    with export_box:
        export_panel(engine, data, controls)


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


# --- controls ----------------------------------------------------------------------------------


def refresh_s() -> float | None:
    """The chosen refresh in seconds (the widget's value from the last run), None if paused."""
    return _seconds(st.session_state.get("refresh", REFRESH_CHOICES[0]))


def _seconds(choice: str) -> float | None:
    """ "2 s" -> 2.0; a choice that is not a duration ("paused", "bar close") -> None."""
    return float(choice.removesuffix(" s")) if choice.endswith(" s") else None


def sidebar(data, live: bool = True) -> Controls | None:
    """The controls; the refresh ones only where data moves (the live page)."""
    sb = st.sidebar
    sb.header("Controls")
    chart_choice = st.session_state.get("chart_refresh", CHART_DEFAULT)
    if live:
        sb.select_slider(
            "Refresh",
            REFRESH_CHOICES,
            key="refresh",
            help="how often the tick strip redraws (figures: at most once a second); 'paused' "
            "stops redrawing: a page left open then costs almost nothing",
        )
        chart_choice = sb.selectbox(
            "Charts redraw",
            CHART_CHOICES,
            index=CHART_CHOICES.index(CHART_DEFAULT),
            key="chart_refresh",
            help="charts redraw when their data changed, at most this often (or when a bar "
            "closes); the tick strip and the figures keep their own refresh",
        )
    symbols = list(data.symbols)
    timeframe = sb.radio("Timeframe", data.timeframes, horizontal=True, key="timeframe")
    if len(symbols) < 2:
        sb.error("Pair analytics needs two symbols; this data has only " + ", ".join(symbols))
        return None
    # No default index once a value is set (the scanner opens a pair by setting it).
    y = sb.selectbox("Y (dependent)", symbols, **_default("y_symbol", min(1, len(symbols) - 1)))
    x = sb.selectbox("X (hedge)", symbols, **_default("x_symbol", 0))
    if x == y:
        sb.error("Choose two different symbols for Y and X.")
        return None
    method = sb.selectbox("Regression", list(METHOD_LABELS), key="method")
    lookback = sb.number_input(
        "Lookback (bars) for the hedge ratio", 20, 100_000, 300, key="lookback"
    )
    z_window = sb.number_input("Z-score window (bars)", 2, 10_000, 60, key="z_window")
    threshold = sb.number_input("Z-score alert threshold", value=2.0, step=0.25, key="z_threshold")
    if not threshold > 0:
        sb.error("The z-score threshold must be greater than 0.")
        return None
    adf_mode = sb.radio("ADF / cointegration", ["At bar close", "On demand"], key="adf_mode")
    if adf_mode == "On demand" and sb.button("Run ADF now"):
        st.session_state["adf_request"] = time.time()
    # The rest folded: the browser re-renders every widget on the page at each run of any
    # fragment (CPU profiles here, 16 widgets beside a 0.25 s strip: +9 % of a core in view,
    # +5 % folded).
    more = sb.expander("More settings: spread, correlation, bars shown")
    spread_mode = more.radio(
        "Spread",
        [WALK_FORWARD, HINDSIGHT],
        key="spread_mode",
        help="Walk-forward: each bar's hedge ratio is fitted on the lookback bars before it, so "
        "no figure uses a later bar. Hindsight: one hedge ratio from the latest window for "
        "every bar shown, earlier bars judged with a fit that saw their future.",
    )
    series = more.radio("Regress on", ["Log price", "Price"], horizontal=True, key="series")
    corr_on = more.radio("Correlate", ["Log returns", "Prices"], horizontal=True, key="corr_on")
    corr_window = more.number_input("Correlation window (bars)", 2, 10_000, 60, key="corr_window")
    shown = more.number_input("Bars shown", 50, 20_000, 600, step=50, key="shown")
    cooldown = more.number_input("Alert cooldown (s)", 0.0, 3_600.0, 30.0, step=5.0, key="cooldown")
    execution = execution_settings(sb)
    rules_editor(sb, symbols)
    params = PairParams(
        lookback_bars=int(lookback),
        z_window_bars=int(z_window),
        corr_window_bars=int(corr_window),
        method=METHOD_LABELS[method],
        log_prices=series == "Log price",
        corr_on_returns=corr_on == "Log returns",
        z_threshold=float(threshold),
        hindsight=spread_mode == HINDSIGHT,
        **execution,
    )
    try:
        params.check()
    except ValueError as exc:  # e.g. a z stop inside the entry threshold
        sb.error(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        return None
    return Controls(
        timeframe, y, x, int(shown), params, adf_mode, float(cooldown), _seconds(chart_choice)
    )


def execution_settings(sb) -> dict:
    """The backtest's execution: fees, fills, size, the spread assumed where no book was
    recorded, stops. Zero turns a stop off."""
    box = sb.expander("Backtest: execution and costs")
    kind = box.selectbox(
        "Fees (per leg, per fill)",
        list(FEE_CHOICES),
        key="fee_kind",
        help="Binance USD-M base tier: taker 5 bps, maker 2 bps, of each leg's filled notional",
    )
    fee = FEE_CHOICES[kind]
    if fee is None:
        fee = box.number_input("Fee (bps)", 0.0, 100.0, an.TAKER_FEE_BPS, 0.5, key="fee_custom")
    fill = box.radio(
        "Fill a signal at",
        list(FILL_CHOICES),
        key="fill",
        help="a signal at a bar's close fills at the next bar: never at the bar that decided",
    )
    notional = box.number_input(
        "Gross notional per trade (USDT)", 10.0, 1e9, 10_000.0, 1_000.0, key="notional"
    )
    assumed = box.number_input(
        "Assumed quoted spread (bps), where none was recorded",
        0.0, 1_000.0, 1.0, 0.5, key="assumed_spread",
    )  # fmt: skip
    stop_z = box.number_input("Stop at |z| (0: off)", 0.0, 100.0, 0.0, 0.5, key="stop_z")
    stop_loss = box.number_input("Loss stop (bps, 0: off)", 0.0, 1e4, 0.0, 10.0, key="stop_loss")
    max_hold = box.number_input("Maximum holding (bars, 0: off)", 0, 1_000_000, 0, key="max_hold")
    return {
        "fee_bps": float(fee),
        "fill": FILL_CHOICES[fill],
        "notional_usdt": float(notional),
        "assumed_spread_bps": float(assumed),
        "stop_z": float(stop_z) or None,
        "stop_loss_bps": float(stop_loss) or None,
        "max_hold_bars": int(max_hold) or None,
    }


def _default(key: str, index: int) -> dict:
    return {"key": key} if key in st.session_state else {"key": key, "index": index}


def rules_editor(sb, symbols: list[str]) -> None:
    with sb.expander("Price / volume alert rules"):
        kind = st.selectbox("Rule on", ["Price", "Bar volume"], key="rule_kind")
        symbol = st.selectbox("Symbol", symbols, key="rule_symbol")
        side = st.selectbox("When it goes", ["above", "below"], key="rule_side")
        level = st.number_input("Level", min_value=0.0, value=0.0, key="rule_level")
        if st.button("Add rule"):
            if level <= 0:
                st.error("The level must be greater than 0.")
            else:
                st.session_state["rules"].append(
                    {"kind": kind, "symbol": symbol, "side": side, "level": level}
                )
        for i, r in enumerate(st.session_state["rules"]):
            st.caption(f"{i + 1}. {r['kind']} of {r['symbol']} {r['side']} {r['level']:,}")
        if st.session_state["rules"] and st.button("Clear rules"):
            st.session_state["rules"] = []


# --- uploads -----------------------------------------------------------------------------------


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


# --- analysis ----------------------------------------------------------------------------------


def pair_bars(data, controls: Controls) -> tuple[Bars, Bars]:
    """The bars the pair figures need: those shown plus the longest window before them,
    read as slices (the store copies only these)."""
    keep = controls.shown_bars + history_bars(controls.params) + 1
    tf = controls.timeframe
    return data.bars(controls.y, tf, last=keep), data.bars(controls.x, tf, last=keep)


def _tail(bars: Bars, n: int) -> Bars:
    return bars.slice(max(0, len(bars) - n))


def common_bars(yb: Bars, xb: Bars) -> int:
    return len(np.intersect1d(yb.open_time, xb.open_time)) if len(yb) and len(xb) else 0


@dataclass(frozen=True)
class PairView:
    """What the figures and the charts of one refresh are drawn from."""

    yb: Bars
    xb: Bars
    aligned_bars: int
    live: object | None  # pairs.LiveStats; None while warming up
    slow: object | None  # pairs.SlowStats; None until computed (or on demand)


def pair_view(engine: Engine, data, controls: Controls) -> PairView:
    p = controls.params
    yb, xb = pair_bars(data, controls)
    have = common_bars(yb, xb)
    if have < min(needs(p).values()):
        return PairView(yb, xb, have, None, None)
    live = live_stats(yb, xb, p, newest_is_open=data.newest_is_open)
    slow = cached_slow(engine, data, yb, xb, live, controls)  # shared by both fragments
    if p.path_is_slow and slow is not None:
        live = live_stats(yb, xb, p, slow, data.newest_is_open)
    return PairView(yb, xb, have, live, slow)


def analysis(engine: Engine, data, controls: Controls) -> None:
    """The figures and alerts, every second: cheap to send, unlike a chart."""
    view = pair_view(engine, data, controls)
    waiting = {name: n for name, n in needs(controls.params).items() if view.aligned_bars < n}
    if waiting:
        st.info(
            f"Warming up on {controls.timeframe} bars: {view.aligned_bars} aligned bars of "
            f"{controls.y} and {controls.x} so far. Still waiting: "
            + "; ".join(
                f"{name} needs {n} ({n - view.aligned_bars} more)" for name, n in waiting.items()
            )
            + ". Smaller windows or another timeframe start sooner."
        )
    if view.live is None:
        return
    carry, carry_note = carry_cards(data, controls, view)
    p, tf = controls.params, controls.timeframe
    figures(view.live, view.slow, p, tf, carry, carry_note, data.funding_source)
    fire_alerts(view.live, view.yb, view.xb, controls)


def carry_cards(data, controls: Controls, view: PairView) -> tuple[list[Card], str]:
    """Funding carry of the spread position, both ways, and each leg's basis, from the latest
    mark-price update (rates as they stand now; they change every second)."""
    y, x, p = controls.y, controls.x, controls.params
    beta = notional_beta(_last_finite(view.live.beta), p.log_prices, view.yb, view.xb)
    carry = data.carry(y, x, beta)
    if carry is None:
        return [], "Funding carry: no mark price and funding interval for both legs yet."
    hedge = f"{beta:.4g}" + ("" if p.log_prices else " (β × price of x / price of y)")
    # A replay or a simulation streams the local exchange's simulated marks and funding.
    sim = " (simulated)" if data.funding_source == "simulated" else ""
    cards = [
        Card(
            f"Carry long {y} / short β·{x}{sim}",
            f"{carry.long_bps_day:+.2f} bps/day",
            f"funding earned (− paid) per day, in bps of {y}'s notional, against {hedge} of "
            f"{x}'s, if the current rates held: {y} {carry.rate_y * 100:+.4f}% every "
            f"{carry.interval_y_h} h, {x} {carry.rate_x * 100:+.4f}% every {carry.interval_x_h} h",
        ),
        Card(
            f"Carry short {y} / long β·{x}{sim}",
            f"{carry.short_bps_day:+.2f} bps/day",
            "the reverse position: the same carry with the sign flipped",
        ),
        Card(
            f"Basis {y}{sim}",
            f"{carry.basis_y_bps:+.2f} bps",
            "(mark − index) / index, markPrice stream",
        ),
        Card(
            f"Basis {x}{sim}",
            f"{carry.basis_x_bps:+.2f} bps",
            "(mark − index) / index, markPrice stream",
        ),
    ]
    as_of = time.strftime("%H:%M:%S", time.gmtime(carry.as_of_ms / 1000))
    return cards, f"Funding rates as of {as_of} UTC."


def chart_run_every(refresh: float | None, controls: Controls) -> float | None:
    """How often the charts' fragment runs: the chosen interval, or (at bar close) a twelfth
    of a bar, so a closed bar is drawn soon after it closes; never faster than the refresh."""
    if refresh is None:
        return None
    every = controls.chart_every_s
    if every is None:
        every = max(ANALYSIS_REFRESH_S, TIMEFRAMES_MS[controls.timeframe] / 12_000)
    return max(refresh, every)


def chart_panel(engine: Engine, data, controls: Controls) -> None:
    """The charts, in a fragment of their own: between its runs nothing is sent, so the
    browser redraws a chart only at the chosen interval (or bar close)."""
    view = pair_view(engine, data, controls)
    coverage_caption(data.coverage(controls.timeframe))  # changes slowly: with the charts
    if view.live is None:
        price_charts(view.yb, view.xb, controls)
        return
    analysis_views(data, controls, view.yb, view.xb, view.live, view.slow)


def coverage_caption(cov) -> None:
    """How far back the bars reach, and what is still coming in."""
    if cov.starts:
        reach = " · ".join(f"{s} from {_utc(ms)}" for s, ms in cov.starts.items())
        st.caption(f"{cov.label}: {reach} UTC")
    for note in cov.notes:
        st.caption(note)


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


VIEWS = ("Prices", "Spread & z-score", "Correlation", "Hedge ratio β", "Backtest", "Heatmap",
        "Table", "Alerts")  # fmt: skip


def analysis_views(data, controls: Controls, yb, xb, live, slow) -> None:
    """One view at a time, chosen with a radio: only it is computed and sent. Not ``st.tabs``:
    a fragment redrawing charts inside tabs cost Chromium twice as much per redraw here
    (bench/bench_page.py: renderer 51 % of a core with tabs, 32 % without)."""
    p = controls.params
    shown = slice(-controls.shown_bars, None)
    view = st.radio(
        "View", VIEWS, horizontal=True, key="analysis_tab", label_visibility="collapsed"
    )
    every = controls.chart_every_s
    st.caption(
        "Charts redraw "
        + ("when a bar closes" if every is None else f"every {every:g} s when their data change")
        + " (sidebar: Charts redraw); the figures above every second."
    )
    version = chart_version(controls, yb, xb)
    if view == "Prices":
        price_charts(yb, xb, controls)
    elif view == "Spread & z-score":
        show_chart("spread", controls, version, lambda: charts.spread_chart(live, shown, p))
        show_chart(
            "z", controls, (version, slow is None),
            lambda: charts.zscore_chart(live, shown, p, slow),
        )  # fmt: skip
    elif view == "Correlation":
        show_chart("corr", controls, version, lambda: charts.corr_chart(live, shown, p))
    elif view == "Hedge ratio β":
        show_chart("hedge", controls, version, lambda: charts.hedge_chart(live, shown, p))
    elif view == "Backtest":
        if slow is None:
            st.caption("The backtest runs with the ADF: press 'Run ADF now' (sidebar).")
        else:
            tf_s = TIMEFRAMES_MS[controls.timeframe] / 1000
            backtest_view.breakdown(slow, p, data.funding_source, tf_s)
            show_chart("equity", controls, version, lambda: charts.equity_chart(live, slow, shown))
            backtest_view.trades_table(slow)
            st.download_button(
                "Download trades CSV",
                lambda: backtest_view.trades_csv(
                    slow, _csv_header(controls), p, data.funding_source
                ),
                file_name=f"trades_{controls.y}_{controls.x}_{controls.timeframe}.csv",
                mime="text/csv",
                key="download_trades",
                on_click="ignore",
            )
    elif view == "Heatmap":
        heatmap(data, controls)
    elif view == "Table":
        table = stats_frame(controls, yb, xb, live, data)
        st.dataframe(table.tail(200).iloc[::-1], hide_index=True)
        st.caption("The whole table: **Download analytics CSV** under Export.")
    elif st.session_state["alerts"]:
        st.dataframe(pd.DataFrame(st.session_state["alerts"][::-1]), hide_index=True)
    else:
        st.caption("No alert has fired yet.")


def stats_frame(controls: Controls, yb: Bars, xb: Bars, live, data=None) -> pd.DataFrame:
    """The per-bar table; with ``data``, each leg's recorded book per bar too: bid and ask at
    the close and the time-weighted mean quoted spread (bps; blank where none was recorded)."""
    p = controls.params
    table = an.bar_stats_table(
        live.open_time,
        live.y_close,  # the bars' own closes: exp(log(p)) would print 3139.7799999999997
        live.x_close,
        _aligned_volume(yb, live),
        _aligned_volume(xb, live),
        live.spread,
        live.zscore,
        p.z_window_bars,
        (controls.y, controls.x),
    )
    if data is not None:
        quotes = data.execution_context((controls.y, controls.x), controls.timeframe).quotes
        for symbol in (controls.y, controls.x):
            q = quotes.get(symbol)
            if q is not None and len(q):
                table[f"{symbol}_bid"] = q.at(live.open_time, q.bid_close)
                table[f"{symbol}_ask"] = q.at(live.open_time, q.ask_close)
                table[f"{symbol}_spread_bps"] = q.at(live.open_time, q.spread_mean_bps)
    return table


def _csv_header(controls: Controls) -> str:
    p = controls.params
    spread = "hindsight (one beta from the latest window)" if p.hindsight else "walk-forward"
    return (
        f"# pair {controls.y}/{controls.x}, {controls.timeframe} bars; regression {p.method} on "
        f"{'log prices' if p.log_prices else 'prices'}, lookback {p.lookback_bars} bars, "
        f"spread {spread}; z window {p.z_window_bars} bars (sample std); return vol window "
        f"{p.z_window_bars} bars; times ISO-8601 UTC (bar open)\n"
    )


def analytics_csv(engine: Engine, data, controls: Controls) -> bytes:
    """The per-bar stats table of the current data, as CSV (the export panel rebuilds it)."""
    yb, xb = pair_bars(data, controls)
    p = controls.params
    have, need = common_bars(yb, xb), min(needs(p).values())
    if have < need:
        return f"# warming up: {have} of {need} {controls.timeframe} bars so far\n".encode()
    try:
        live = live_stats(yb, xb, p, newest_is_open=data.newest_is_open)
        if p.path_is_slow:  # the analysis' cached fit when it is for these bars
            slow = cached_slow(engine, data, yb, xb, live, controls, True)
            live = live_stats(yb, xb, p, slow, data.newest_is_open)
        frame = stats_frame(controls, yb, xb, live, data)
        frame["time"] = iso_utc(live.open_time)  # one time format in both files
        return (_csv_header(controls) + frame.to_csv(index=False)).encode()
    except ValueError as exc:
        return f"# no pair statistics: {exc}\n".encode()


def _aligned_volume(bars: Bars, live) -> np.ndarray:
    index = np.searchsorted(bars.open_time, live.open_time)
    return bars.volume[np.clip(index, 0, len(bars) - 1)]


def cached_slow(engine: Engine, data, yb, xb, live, controls: Controls, force: bool = False):
    """ADF, Engle-Granger, half-life, the slow hedge paths and the backtest: computed once per
    closed bar (or on demand) for every viewer of the engine, not on every refresh."""
    p = controls.params
    last_closed = int(live.open_time[live.closed - 1]) if live.closed else 0
    first = int(live.open_time[0]) if len(live.open_time) else 0
    on_demand = controls.adf_mode == "On demand" and not p.path_is_slow and not force
    request = st.session_state.get("adf_request") if on_demand else None
    if on_demand and request is None:
        return None
    pair = (controls.y, controls.x)
    key = (
        getattr(data, "key", "live"), controls.timeframe, *pair, p, first, last_closed,
        request if on_demand else None, data.execution_version(pair),
    )  # fmt: skip

    def compute():
        context = data.execution_context(pair, controls.timeframe)  # only when not cached
        return slow_stats(yb, xb, p, live, context, engine.fit_memo)

    return engine.cached(key, compute)


def chart_version(controls: Controls, *bars: Bars) -> tuple:
    """What a chart of these bars shows that can change: the live bar's values, or (redrawing
    at bar close) only which bar is the latest."""
    out = []
    for b in bars:
        if not len(b):
            out.append(None)
        elif controls.chart_every_s is None:
            out.append(int(b.open_time[-1]))  # a new bar opened: the one before it closed
        else:
            last = len(b) - 1
            out.append(
                (int(b.open_time[0]), int(b.open_time[last]), float(b.close[last]),
                 float(b.high[last]), float(b.low[last]), float(b.volume[last]))
            )  # fmt: skip
    return tuple(out)


def show_chart(key: str, controls: Controls, version: tuple, build) -> None:
    """Draw a chart, or re-send the figure drawn before when nothing it shows changed (the
    browser skips a figure it already has). A changed control redraws at once."""
    memo = st.session_state.setdefault("chart_memo", {})
    old = memo.get(key)
    if old is None or old[:2] != (controls, version):
        figure = build()
        figure.layout.title.text += f" · drawn {time.strftime('%H:%M:%S', time.gmtime())} UTC"
        memo[key] = old = (controls, version, figure)
    st.plotly_chart(old[2], key=key, config=charts.CONFIG)


def figures(
    live, slow, p: PairParams, timeframe: str, extra=(), extra_note="", funding_source="recorded"
) -> None:
    """The pair's figures as one block of cards; ``extra`` (the carry) goes after them."""
    beta, alpha = _last_finite(live.beta), _last_finite(live.alpha)
    tf_s = TIMEFRAMES_MS[timeframe] / 1000
    what = "log returns" if p.corr_on_returns else "prices"
    forming = (
        f"forming bar {_fmt(live.forming_z, 2)}" if live.newest_is_open else "every bar closed"
    )
    cards = [
        Card("Hedge ratio β", _fmt(beta, 4), f"{fit_text(p)} ({timeframe} bars)"),
        Card("Alpha", _fmt(alpha, 4), "intercept of the same fit, in the regression's units"),
        Card(
            f"z ({p.z_window_bars} bars)",
            _fmt(live.latest_z, 2),
            f"the last closed bar's: the spread minus its trailing {p.z_window_bars}-bar "
            "mean, over the sample std. Alerts and the backtest decide on it; the forming "
            "bar's z moves until the bar closes",
            delta=forming,
        ),
        Card(
            f"Correlation ({p.corr_window_bars} bars)",
            _fmt(live.latest_corr, 3),
            f"Pearson of {what}, trailing {p.corr_window_bars} {timeframe} bars",
        ),
    ]
    if slow is None:
        cards.append(Card("Spread ADF p", "—", "press 'Run ADF now'"))
        st.html(cards_html([*cards, *extra], extra_note))
        return
    adf = slow.adf
    crit = " · ".join(f"{k} {v:.2f}" for k, v in adf.critical.items())
    cards += [
        Card(
            f"Spread ADF p ({slow.window} bars)",
            _fmt(adf.pvalue, 4),
            f"ADF of the spread's last {slow.window} closed bars, judged against the "
            f"{adf.table} table (the hedge was estimated: the one-variable Dickey–Fuller "
            f"table would say stationary too often). Statistic {_fmt(adf.statistic, 3)}; "
            f"critical values {crit}; {adf.lags} lags.",
        ),
        Card(
            f"Engle–Granger p ({slow.window} bars)",
            _fmt(slow.eg_pvalue, 4),
            "statsmodels coint(y, x) on the same closed bars (its own OLS fit of the window)",
        ),
        half_life_card(slow, timeframe, tf_s),
        backtest_view.backtest_card(slow, p, funding_source),
    ]
    if slow.path is not None and math.isfinite(slow.path.kalman_half_life_bars):
        k_hl = slow.path.kalman_half_life_bars
        cards.insert(
            2,
            Card(
                "Kalman spread half-life",
                f"{_fmt(k_hl, 1)} bars",
                "from the AR(1) coefficient φ of the spread state, fitted by maximum "
                f"likelihood on the {an.KALMAN_FIT_BARS} bars before the latest refit: "
                f"−ln 2 / ln φ; {duration_text(k_hl * tf_s)} at {timeframe}",
            ),
        )
    note = (
        f"Spread ADF on the {adf.table} table: {adf.verdict}. {half_life_text(slow, tf_s)} "
        f"{backtest_view.backtest_note(slow, tf_s)} {extra_note}"
    )
    st.html(cards_html([*cards, *extra], note))


def fit_text(p: PairParams) -> str:
    """How the hedge ratio was fitted, in a few words."""
    if p.method == "kalman":
        if p.hindsight:
            return "Kalman smoother over every bar (hindsight: each bar's β saw later bars)"
        return (
            "Kalman one-step-ahead: β a random walk and the spread an AR(1), noise by maximum "
            f"likelihood on the {an.KALMAN_FIT_BARS} bars before each refit (every "
            f"{an.KALMAN_REFIT_BARS} bars, at fixed UTC times)"
        )
    name = p.method.upper() if p.method == "ols" else p.method
    how = "hindsight: the latest" if p.hindsight else "walk-forward: the"
    return f"{name}, {how} {p.lookback_bars} bars"


def half_life_card(slow, timeframe: str, tf_s: float) -> Card:
    hl = slow.half_life
    if not math.isfinite(hl.bars):
        return Card(
            "Half-life",
            "—",
            f"not shown: no mean reversion found (spread ADF p {_fmt(slow.adf.pvalue, 3)} "
            f"> {MEAN_REVERSION_P}); a half-life of a spread that may not revert means nothing",
            delta="no mean reversion",
        )
    return Card(
        "Half-life",
        f"{_fmt(hl.bars, 1)} bars",
        f"AR(1) of the spread over {slow.window} closed bars: −ln 2 / ln(1 + b); "
        f"{duration_text(hl.bars * tf_s)} at {timeframe}; 95 % interval from b ± 1.96 se",
        delta=f"95 %: {_fmt(hl.low, 1)}–{_fmt(hl.high, 1)} bars",
    )


def half_life_text(slow, tf_s: float) -> str:
    hl = slow.half_life
    if not math.isfinite(hl.bars):
        return "Half-life: none (no mean reversion found)."
    return (
        f"Half-life {_fmt(hl.bars, 1)} bars = {duration_text(hl.bars * tf_s)} "
        f"(95 %: {_fmt(hl.low, 1)}–{_fmt(hl.high, 1)} bars)."
    )


def _last_finite(a) -> float:
    a = np.asarray(a)
    finite = a[np.isfinite(a)]
    return float(finite[-1]) if len(finite) else math.nan


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}"


def price_charts(yb: Bars, xb: Bars, controls: Controls) -> None:
    drawn = min(controls.shown_bars, MAX_CANDLES)
    if controls.shown_bars > drawn:
        st.caption(
            f"Candles: the last {drawn:,} of the {controls.shown_bars:,} bars shown (more "
            "cannot be told apart on a screen); the other charts show all of them."
        )
    for bars in (yb, xb):
        if len(bars):
            show_chart(
                f"candles_{bars.symbol}",
                controls,
                chart_version(controls, bars),
                lambda bars=bars: charts.candles(_tail(bars, drawn)),
            )


HEATMAP_SHOW = ("all symbols", "top 10 pairs of the scanner", "top 25 pairs of the scanner")


def heatmap(data, controls: Controls) -> None:
    """Correlations of every symbol (or those of the scanner's best pairs), in clustered order
    so that groups that move together show as blocks."""
    symbols = list(data.symbols)
    if len(symbols) < 2:
        st.info("The heatmap needs at least two symbols.")
        return
    left, right = st.columns(2)
    order = left.radio("Order", ["clustered", "as streamed"], horizontal=True, key="heat_order")
    show = HEATMAP_SHOW[0]
    if len(symbols) > 2:
        show = right.selectbox("Symbols", HEATMAP_SHOW, key="heat_show")
    if show != HEATMAP_SHOW[0]:
        lookback = int(st.session_state.get("scan_lookback", 300))
        scan = data.scan(controls.timeframe, lookback)
        if scan.waiting:
            st.caption(f"The scanner is warming up ({scan.waiting}): all symbols shown.")
        else:
            top = scan.table.head(int(show.split()[1]))
            symbols = list(dict.fromkeys([*top["y"], *top["x"]]))
            st.caption(
                f"The {len(symbols)} symbols of the scanner's {len(top)} best pairs (Engle–Granger "
                f"p on the last {lookback} closed {controls.timeframe} bars)."
            )
    window = controls.params.corr_window_bars
    series = {}
    for s in symbols:
        b = data.bars(s, controls.timeframe, last=window + 1)
        series[s] = pd.Series(an.log_returns(b.close), index=b.open_time)
    frame = pd.DataFrame(series)

    def build():
        matrix = an.correlation_matrix({s: frame[s].to_numpy() for s in frame}, window)
        if order == "clustered":
            ordered = an.cluster_order(matrix)
            matrix = matrix.loc[ordered, ordered]
        return charts.heatmap(
            matrix, f"Correlation of log returns, last {window} {controls.timeframe} bars"
        )

    version = tuple(frame.index[-1:]) + tuple(frame.iloc[-1].fillna(0)) if len(frame) else ()
    show_chart("heatmap", controls, (version, order, tuple(symbols)), build)


# --- alerts ------------------------------------------------------------------------------------


def fire_alerts(live, yb: Bars, xb: Bars, controls: Controls) -> None:
    """Edge-triggered on the last closed bar (what the backtest trades on), with a per-rule
    cooldown; a toast and a history row."""
    p = controls.params
    events = []
    last = live.closed  # bars [0, last) are closed
    z = live.zscore[max(0, last - 2) : last]
    if len(z) == 2:
        for e in an.zscore_alerts(z, p.z_threshold):
            if e.index == 1:
                events.append(
                    ("z-score", f"z {e.value:+.2f} crossed {e.direction} ±{p.z_threshold}")
                )
    for i, rule in enumerate(st.session_state["rules"]):
        bars = yb if rule["symbol"] == controls.y else xb if rule["symbol"] == controls.x else None
        shut = len(bars) - (len(live.open_time) - last) if bars is not None else 0
        if bars is None or shut < 2:
            continue
        series = bars.close if rule["kind"] == "Price" else bars.volume
        prev, now = float(series[shut - 2]), float(series[shut - 1])
        crossed = (
            (prev <= rule["level"] < now)
            if rule["side"] == "above"
            else (prev >= rule["level"] > now)
        )
        if crossed:
            events.append(
                (
                    f"rule {i + 1}",
                    f"{rule['kind']} of {rule['symbol']} {rule['side']} {rule['level']:,} ({now:,.4g})",
                )
            )
    last_fired = st.session_state.setdefault("alert_last_fired", {})
    bar_time = int(live.open_time[last - 1]) if last else 0
    now_s = time.time()
    for rule_id, text in events:
        key = (rule_id, controls.y, controls.x, controls.timeframe)
        seen_bar, fired_at = last_fired.get(key, (None, -math.inf))
        if seen_bar == bar_time or now_s - fired_at < controls.cooldown_s:
            continue
        last_fired[key] = (bar_time, now_s)
        st.toast(f"🔔 {text}")
        st.session_state["alerts"].append(
            {
                "time": pd.Timestamp(bar_time, unit="ms", tz="UTC").isoformat(),
                "rule": rule_id,
                "pair": f"{controls.y}/{controls.x}",
                "timeframe": controls.timeframe,
                "alert": text,
            }
        )


# --- export ------------------------------------------------------------------------------------


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
            lambda: analytics_csv(engine, data, controls),
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
        "Save to SQLite writes every bar of all three timeframes (and the resume points) in one "
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
