"""The sections of a pair page: figures (cards), charts and views, alerts. Everything shown comes
from the engine's pair service (``engine.pairs``): this module lays it out."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import streamlit as st

from backend.engine import (
    MEAN_REVERSION_P,
    TIMEFRAMES_MS,
    AlertGate,
    Bars,
    Engine,
    PairParams,
    PairReport,
    csv_header,
)
from backend.engine import analytics as an
from frontend import backtest_view, charts
from frontend.cards import Card, cards_html, duration_text
from frontend.controls import Controls, sidebar
from frontend.export import export_panel

ANALYSIS_REFRESH_S = 1.0

MAX_CANDLES = 1_000  # ~1.5 px a candle on a wide screen: more cannot be told apart


def pair_sections(engine: Engine, data, every, analysis_box, charts_box, export_box) -> None:
    """Sidebar, figures, charts and export of ``data`` (live or uploaded: the same interface),
    the live parts refreshed every ``every`` seconds (None: drawn once)."""
    controls = sidebar(engine, data, live=data is engine)
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


def pair_report(engine: Engine, data, controls: Controls) -> PairReport:
    """This refresh's figures of the pair, from the engine's pair service (slow figures cached
    per closed bar for every viewer)."""
    return engine.pairs.report(data, controls.request(st.session_state.get("adf_request")))


def analysis(engine: Engine, data, controls: Controls) -> None:
    """The figures and alerts, every second: cheap to send, unlike a chart."""
    report = pair_report(engine, data, controls)
    if controls.start_ms is not None and not report.aligned_bars:
        st.info(
            f"No {controls.timeframe} bars of {controls.y} and {controls.x} from "
            f"{_utc(controls.start_ms)} to {_utc(controls.end_ms)} UTC."
        )
        return
    if report.waiting:
        st.info(
            f"Warming up on {controls.timeframe} bars: {report.aligned_bars} aligned bars of "
            f"{controls.y} and {controls.x} so far. Still waiting: "
            + "; ".join(
                f"{name} needs {n} ({n - report.aligned_bars} more)"
                for name, n in report.waiting.items()
            )
            + ". Smaller windows or another timeframe start sooner."
        )
    if report.live is None:
        return
    carry, carry_note = carry_cards(controls, report)
    p, tf = controls.params, controls.timeframe
    figures(report, p, tf, carry, carry_note)
    fire_alerts(engine, report, controls)


def carry_cards(controls: Controls, report: PairReport) -> tuple[list[Card], str]:
    """Funding carry of the spread position, both ways, and each leg's basis, from the latest
    mark-price update (rates as they stand now; they change every second)."""
    y, x, p = controls.y, controls.x, controls.params
    beta, carry = report.carry_beta, report.carry
    if carry is None:
        return [], "Funding carry: no mark price and funding interval for both legs yet."
    hedge = f"{beta:.4g}" + ("" if p.log_prices else " (β × price of x / price of y)")
    # A replay or a simulation streams the local exchange's simulated marks and funding.
    sim = " (simulated)" if report.funding_source == "simulated" else ""
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
    report = pair_report(engine, data, controls)
    coverage_caption(data.coverage(controls.timeframe))  # changes slowly: with the charts
    if report.live is None:
        price_charts(report.yb, report.xb, controls)
        return
    analysis_views(engine, data, controls, report)


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


def analysis_views(engine: Engine, data, controls: Controls, report: PairReport) -> None:
    """One view at a time, chosen with a radio: only it is computed and sent. Not ``st.tabs``:
    a fragment redrawing charts inside tabs costs the browser more per redraw
    (docs/benchmarks.md: design measurements)."""
    p = controls.params
    yb, xb, live, slow = report.yb, report.xb, report.live, report.slow
    shown = slice(report.shown_from, None)
    view = st.radio(
        "View", VIEWS, horizontal=True, key="analysis_tab", label_visibility="collapsed"
    )
    every = controls.chart_every_s
    st.caption(
        "Charts redraw "
        + ("when a bar closes" if every is None else f"every {every:g} s when their data change")
        + " (sidebar: Charts redraw); the figures above every second."
        + (
            f" Lines of more than {charts.MAX_LINE_POINTS:,} bars are drawn through each "
            "stretch's lowest and highest values; every figure uses every bar."
            if controls.shown_bars > charts.MAX_LINE_POINTS
            else ""
        )
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
                    slow, csv_header(report.request), p, data.funding_source
                ),
                file_name=f"trades_{controls.y}_{controls.x}_{controls.timeframe}.csv",
                mime="text/csv",
                key="download_trades",
                on_click="ignore",
            )
    elif view == "Heatmap":
        heatmap(engine, data, controls)
    elif view == "Table":
        table = engine.pairs.table(data, report)
        st.dataframe(table.tail(200).iloc[::-1], hide_index=True)
        st.caption("The whole table: **Download analytics CSV** under Export.")
    elif st.session_state["alerts"]:
        st.dataframe(pd.DataFrame(st.session_state["alerts"][::-1]), hide_index=True)
    else:
        st.caption("No alert has fired yet.")


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


def figures(report: PairReport, p: PairParams, timeframe: str, extra=(), extra_note="") -> None:
    """The pair's figures as one block of cards; ``extra`` (the carry) goes after them."""
    live, slow, funding_source = report.live, report.slow, report.funding_source
    beta, alpha = report.beta, report.alpha
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
    if p.hedge_timeframe is not None:
        return (
            f"{name} on {p.hedge_timeframe} bars, walk-forward: each bar takes the fit of the "
            f"{p.lookback_bars} {p.hedge_timeframe} bars closed before it"
        )
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
        if controls.start_ms is not None:  # a range of dates: its own bars, not the history
            bars = bars.slice(int(np.searchsorted(bars.open_time, controls.start_ms)), len(bars))
        if len(bars):
            show_chart(
                f"candles_{bars.symbol}",
                controls,
                chart_version(controls, bars),
                lambda bars=bars: charts.candles(_tail(bars, drawn)),
            )


def _tail(bars: Bars, n: int) -> Bars:
    return bars.slice(max(0, len(bars) - n))


HEATMAP_SHOW = ("all symbols", "top 10 pairs of the scanner", "top 25 pairs of the scanner")


def heatmap(engine: Engine, data, controls: Controls) -> None:
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
    tf = controls.timeframe
    latest = (data.bars(s, tf, last=1) for s in symbols)
    version = tuple((int(b.open_time[-1]), float(b.close[-1])) if len(b) else None for b in latest)

    def build():
        matrix = engine.pairs.correlations(data, symbols, tf, window, order == "clustered")
        return charts.heatmap(matrix, f"Correlation of log returns, last {window} {tf} bars")

    show_chart("heatmap", controls, (version, order, tuple(symbols)), build)


def fire_alerts(engine: Engine, report: PairReport, controls: Controls) -> None:
    """The pair service's alerts of the last closed bar (what the backtest trades on), with a
    per-rule cooldown kept for this session; a toast and a history row each."""
    gate = st.session_state.setdefault("alert_gate", AlertGate())
    now_s = time.time()
    for alert in engine.pairs.alerts(report, controls.rules):
        if not gate.admit(alert, report.request, now_s, controls.cooldown_s):
            continue
        st.toast(f"🔔 {alert.text}")
        st.session_state["alerts"].append(
            {
                "time": pd.Timestamp(alert.bar_open_time_ms, unit="ms", tz="UTC").isoformat(),
                "rule": alert.rule,
                "pair": f"{controls.y}/{controls.x}",
                "timeframe": controls.timeframe,
                "alert": alert.text,
            }
        )
