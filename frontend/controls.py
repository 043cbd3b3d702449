"""The sidebar's controls: timeframe, pair, fit, windows, the backtest's execution and costs,
alert rules; read into one immutable ``Controls`` and the engine's ``PairRequest``."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import streamlit as st

from backend.engine import TIMEFRAMES_MS, LevelRule, PairParams, PairRequest
from backend.engine import analytics as an

METHOD_LABELS = {"OLS": "ols", "Huber": "huber", "Theil–Sen": "theil-sen", "Kalman": "kalman"}

WALK_FORWARD = "Walk-forward (no look-ahead)"
SAME_BARS = "these bars"
LAST_BARS, DATES = "the last bars", "dates"

HINDSIGHT = "Fixed β from the latest window (hindsight)"

# The first is the default: a trade is on screen within it plus render time (target 500 ms).
REFRESH_CHOICES = ("0.25 s", "0.5 s", "1 s", "2 s", "5 s", "10 s", "30 s", "60 s", "paused")

# A chart redrawn costs the browser far more than anything else on the page
# (docs/benchmarks.md: design measurements): the charts sit in a fragment
# of their own that runs this often and redraws a chart only when its data changed. "bar
# close" redraws when a bar closes (the live bar then shows as it was).
CHART_CHOICES = ("1 s", "2 s", "5 s", "10 s", "30 s", "60 s", "bar close")

CHART_DEFAULT = "10 s"


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
    rules: tuple[LevelRule, ...] = ()  # price / volume alert rules of this session
    start_ms: int | None = None  # a range of dates shown instead of the last shown_bars
    end_ms: int | None = None

    def request(self, adf_token=None) -> PairRequest:
        """The engine's request for this pair; "On demand" leaves the slow figures out until
        'Run ADF now' gives a token (each press recomputes)."""
        on_demand = self.adf_mode == "On demand"
        return PairRequest(
            self.y, self.x, self.timeframe, self.params, self.shown_bars,
            slow=not on_demand or adf_token is not None,
            slow_token=adf_token if on_demand else None,
            start_ms=self.start_ms, end_ms=self.end_ms,
        )  # fmt: skip


FEE_CHOICES = {
    f"Taker {an.TAKER_FEE_BPS:g} bps": an.TAKER_FEE_BPS,
    f"Maker {an.MAKER_FEE_BPS:g} bps": an.MAKER_FEE_BPS,
    "Custom": None,
}

FILL_CHOICES = {"Next bar's open": "next_open", "Next bar's close (latency stress)": "next_close"}


def refresh_s() -> float | None:
    """The chosen refresh in seconds (the widget's value from the last run), None if paused."""
    return _seconds(st.session_state.get("refresh", REFRESH_CHOICES[0]))


def _seconds(choice: str) -> float | None:
    """ "2 s" -> 2.0; a choice that is not a duration ("paused", "bar close") -> None."""
    return float(choice.removesuffix(" s")) if choice.endswith(" s") else None


def sidebar(engine, data, live: bool = True) -> Controls | None:
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
    opening_timeframe(engine, data)
    timeframe = sb.radio(
        "Timeframe", data.timeframes, horizontal=True, key="timeframe", on_change=_chosen
    )
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
    # fragment, and folded widgets cost it less (docs/benchmarks.md: design measurements).
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
    slower = [
        t for t in data.timeframes if t != "1s" and TIMEFRAMES_MS[t] > TIMEFRAMES_MS[timeframe]
    ]
    hedge_on = more.selectbox(
        "Fit the hedge on",
        [SAME_BARS, *slower],
        key="hedge_tf",
        help="a slower timeframe: OLS over the lookback's slow bars, walk-forward (each bar takes "
        "the fit of the slow bars closed before it), applied to these bars' spread",
    )
    corr_on = more.radio("Correlate", ["Log returns", "Prices"], horizontal=True, key="corr_on")
    corr_window = more.number_input("Correlation window (bars)", 2, 10_000, 60, key="corr_window")
    span = more.radio("Show", [LAST_BARS, DATES], horizontal=True, key="show_span")
    shown = more.number_input("Bars shown", 50, 200_000, 600, step=50, key="shown")
    start_ms = end_ms = None
    if span == DATES:
        today = dt.datetime.now(dt.UTC).date()
        days = more.date_input(
            "From – to (UTC days, inclusive)", (today - dt.timedelta(days=29), today),
            max_value=today, key="shown_dates",
        )  # fmt: skip
        if len(days) == 2:  # the second day is picked after the first
            start_ms, end_ms = day_ms(days[0]), day_ms(days[1]) + 86_400_000 - 1
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
        hedge_timeframe=None if hedge_on == SAME_BARS else hedge_on,
        **execution,
    )
    try:
        params.check()
    except ValueError as exc:  # e.g. a z stop inside the entry threshold
        sb.error(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        return None
    rules = tuple(LevelRule(**r) for r in st.session_state["rules"])
    return Controls(
        timeframe, y, x, int(shown), params, adf_mode, float(cooldown), _seconds(chart_choice),
        rules, start_ms, end_ms,
    )  # fmt: skip


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


def opening_timeframe(engine, data) -> None:
    """Until the user picks one, the page shows the shortest timeframe whose history is in (1s
    while none is yet): a live page opens on 1m figures while the 1s history still loads. The
    first timeframe found ready stays: the page does not switch under the user's eyes."""
    if st.session_state.get("timeframe_fixed"):
        return
    symbols = _pair_symbols(data)
    ready = engine.pairs.ready_timeframe(data, data.timeframes, symbols)
    st.session_state["timeframe"] = ready or data.timeframes[0]
    st.session_state["timeframe_fixed"] = ready is not None


def _pair_symbols(data) -> list[str]:
    """The pair the page will show: the chosen Y and X, else the defaults of the selectboxes."""
    symbols = list(data.symbols)
    y = st.session_state.get("y_symbol", symbols[min(1, len(symbols) - 1)])
    x = st.session_state.get("x_symbol", symbols[0])
    return [y, x]


def _chosen() -> None:
    st.session_state["timeframe_fixed"] = True


def day_ms(day: dt.date) -> int:
    """Epoch ms of a UTC day's start."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


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
