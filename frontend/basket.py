"""The basket page: 3-4 symbols, Johansen's test, the weighted spread and its backtest. The
figures come from ``backend.engine.baskets`` (cached per closed bar for every viewer); this module
only lays them out."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from backend.engine import BASKET_SIZES, TIMEFRAMES_MS, PairParams, basket_stats
from backend.engine import analytics as an
from backend.engine import basket_needs as needs
from frontend import backtest_view, charts
from frontend.cards import Card, cards_html, duration_text

LEVELS = an.JOHANSEN_LEVELS


def basket_page(engine, execution_settings, refresh_s) -> None:
    st.title("Basket")
    symbols = list(engine.health().symbols)
    if len(symbols) < min(BASKET_SIZES):
        st.error(
            f"A basket needs {min(BASKET_SIZES)} streamed symbols or more; streaming "
            f"{', '.join(symbols)} (start with --symbols A,B,C,…)."
        )
        return
    sb = st.sidebar
    sb.header("Basket")
    picked = sb.multiselect(
        "Symbols (3 or 4; the first is the one its weights are scaled to)",
        symbols,
        default=symbols[:3],
        max_selections=max(BASKET_SIZES),
        key="basket_symbols",
    )
    timeframe = sb.radio("Timeframe", engine.timeframes, index=1, horizontal=True, key="basket_tf")
    lookback = sb.number_input("Lookback (bars) for the test", 20, 100_000, 300, key="lookback")
    z_window = sb.number_input("Z-score window (bars)", 2, 10_000, 60, key="z_window")
    threshold = sb.number_input("Z-score entry", value=2.0, step=0.25, key="z_threshold")
    execution = execution_settings(sb)
    if len(picked) not in BASKET_SIZES:
        st.info("Pick 3 or 4 symbols in the sidebar.")
        return
    try:
        p = PairParams(
            lookback_bars=int(lookback), z_window_bars=int(z_window),
            z_threshold=float(threshold), **execution,
        )  # fmt: skip
        p.check()
    except ValueError as exc:
        sb.error(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        return
    every = refresh_s()
    args = (engine, tuple(picked), timeframe, p)
    cards_box, detail_box = st.container(), st.container()
    with cards_box:  # the figures every second, as on the pair page
        st.fragment(basket_cards, run_every=None if every is None else max(every, 1.0))(*args)
    with detail_box:  # the chart, tables and download only as often as a chart redraws
        st.fragment(basket_details, run_every=None if every is None else max(every, 10.0))(*args)


def basket(engine, symbols: tuple[str, ...], timeframe: str, p: PairParams):
    """The basket's figures, computed once per closed bar for every viewer; None until every
    symbol has bars."""
    keep = 2 * needs(p) + 600
    bars = [engine.bars(s, timeframe, last=keep) for s in symbols]
    if any(not len(b) for b in bars):
        return None
    newest = min(int(b.open_time[-1]) for b in bars)
    key = ("basket", symbols, timeframe, p, newest, engine.execution_version(symbols))

    def compute():
        context = engine.execution_context(symbols, timeframe)  # only when not cached
        return basket_stats(bars, p, context, engine.newest_is_open)

    return engine.cached(key, compute)


def basket_cards(engine, symbols: tuple[str, ...], timeframe: str, p: PairParams) -> None:
    stats = basket(engine, symbols, timeframe, p)
    if stats is None:
        st.info("Waiting for bars of every symbol.")
        return
    have, need = len(stats.open_time), needs(p)
    if have < need:
        st.info(
            f"Warming up on {timeframe} bars: {have} aligned bars of {', '.join(symbols)}; the "
            f"basket's z needs {need} ({need - have} more: the test's {p.lookback_bars} bars "
            "before its first refit, then the z window)."
        )
    tf_s = TIMEFRAMES_MS[timeframe] / 1000
    source = engine.funding_source
    st.html(cards_html(_cards(stats, p, tf_s, source), _note(stats, p, tf_s)))


def basket_details(engine, symbols: tuple[str, ...], timeframe: str, p: PairParams) -> None:
    stats = basket(engine, symbols, timeframe, p)
    if stats is None:
        return
    tf_s = TIMEFRAMES_MS[timeframe] / 1000
    source = engine.funding_source
    _johansen_table(stats)
    shown = slice(-min(600, len(stats.open_time)), None)
    st.plotly_chart(charts.basket_chart(stats, shown, p), key="basket_chart", config=charts.CONFIG)
    backtest_view.breakdown(stats, p, source, tf_s)
    backtest_view.trades_table(stats)
    header = (
        f"# basket {'/'.join(symbols)}, {timeframe} bars; Johansen weights refitted "
        f"walk-forward on {p.lookback_bars} bars; z window {p.z_window_bars} bars\n"
    )
    st.download_button(
        "Download trades CSV",
        lambda: backtest_view.trades_csv(stats, header, p, source),
        file_name=f"trades_basket_{'_'.join(symbols)}_{timeframe}.csv",
        mime="text/csv",
        key="download_basket_trades",
        on_click="ignore",
    )


def _cards(stats, p: PairParams, tf_s: float, funding_source: str) -> list[Card]:
    test = stats.johansen
    hl = stats.half_life
    cards = [
        Card(
            f"Johansen rank, trace / max-eig ({stats.window} bars)",
            "—" if test is None else f"{test.rank_trace} / {test.rank_max_eig}",
            "cointegrating relations at 95 %, by the trace and the maximum-eigenvalue tests "
            "(statsmodels coint_johansen, a constant, 1 lagged difference) on the last "
            f"{stats.window} closed bars: hindsight within that window",
        ),
        Card(
            f"z ({p.z_window_bars} bars)",
            _fmt(stats.latest_z, 2),
            "the last closed bar's z of the basket spread (what the backtest decides on)",
            delta=f"forming bar {_fmt(stats.forming_z, 2)}",
        ),
        Card(
            f"Spread ADF p ({stats.adf.nobs + 1 if stats.adf.nobs else 0} bars)",
            _fmt(stats.adf.pvalue, 4),
            f"ADF of the walk-forward basket spread on the {stats.adf.table} table "
            f"(statistic {_fmt(stats.adf.statistic, 3)})",
        ),
        Card(
            "Half-life",
            "—" if not math.isfinite(hl.bars) else f"{hl.bars:.1f} bars",
            "AR(1) of the basket spread, only where the ADF rejects at 5 %; "
            + ("" if not math.isfinite(hl.bars) else duration_text(hl.bars * tf_s)),
            delta="no mean reversion"
            if not math.isfinite(hl.bars)
            else f"95 %: {_fmt(hl.low, 1)}–{_fmt(hl.high, 1)} bars",
        ),
        backtest_view.backtest_card(stats, p, funding_source),
    ]
    return cards


def _note(stats, p: PairParams, tf_s: float) -> str:
    weights = stats.weights[stats.closed - 1] if stats.closed else None
    if weights is None or any(math.isnan(w) for w in weights):
        text = "Weights: none yet."
    else:
        text = (
            "Weights (of log prices; the first eigenvector, the first symbol's scaled to 1, "
            f"refitted every {math.ceil(p.lookback_bars / 20)} bars at fixed UTC times from "
            f"the {p.lookback_bars} bars before; a long basket holds each leg's notional in "
            "proportion to its weight, short where negative): "
            + " · ".join(f"{s} {w:+.4f}" for s, w in zip(stats.symbols, weights, strict=True))
            + "."
        )
    return f"{text} {backtest_view.backtest_note(stats, tf_s)}"


def _johansen_table(stats) -> None:
    test = stats.johansen
    if test is None:
        st.caption(f"Johansen's test needs {stats.window} closed bars without a gap.")
        return
    k = len(test.trace)
    frame = pd.DataFrame({"H0: rank ≤": range(k), "trace": test.trace})
    for i, level in enumerate(LEVELS):
        frame[f"trace {level}"] = test.trace_crit[:, i]
    frame["max-eig"] = test.max_eig
    for i, level in enumerate(LEVELS):
        frame[f"max-eig {level}"] = test.max_eig_crit[:, i]
    st.dataframe(frame, hide_index=True)


def _fmt(value: float, digits: int) -> str:
    return "—" if not math.isfinite(value) else f"{value:,.{digits}f}"
