"""The Streamlit app, headless (AppTest): controls, warm-up, uploads, alerts, saving."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from backend.store.timeframes import TIMEFRAMES_MS
from tests.conftest import ROOT, card_values, reference_bars

APP = str(ROOT / "app.py")
OFFLINE = "frontend/pages/offline.py"


@pytest.fixture
def app_env(monkeypatch, tmp_path):
    """The app against the local exchange replaying the real sample as fast as possible (it
    then stands still: figures are deterministic). Engines are stopped at the end."""
    monkeypatch.setenv("PAIRDASH_SOURCE", "replay")
    monkeypatch.setenv("PAIRDASH_REPLAY_SPEED", "0")
    monkeypatch.setenv("PAIRDASH_DB", str(tmp_path / "market.db"))
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()  # on_release stops the engine's threads and exchange


def metric(at, label):
    """A figure's value: a card of the tick strip (the HTML it is mounted with,
    frontend/strip.py) or of the pair figures (frontend/cards.py)."""
    markup = [h.value for h in at.html]
    markup += [json.loads(c.proto.json)["html"] for c in at.get("bidi_component")]
    values = [card_values(m).get(label) for m in markup]
    values = [v for v in values if v is not None]
    return values[0] if values else None


def run_until(at, predicate, timeout_s=40.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if predicate(at):
            return at
        time.sleep(0.2)
    raise AssertionError("condition not reached; info: " + str([i.value for i in at.info]))


def test_warm_up_then_figures_match_an_independent_fit(app_env, dec_trades):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    expected_ticks = sum(len(b) for b in dec_trades.values())
    run_until(
        at, lambda a: metric(a, "Ticks") == f"{expected_ticks:,}" and metric(a, "Hedge ratio β")
    )
    # Independent: pandas bars from the recorded trades, inner join, numpy lstsq on the 300 bars
    # before the latest one (walk-forward: the latest bar's hedge is fitted on earlier bars).
    ref = {
        s: reference_bars(b, 1_000).set_index("open_time")["close"] for s, b in dec_trades.items()
    }
    joined = pd.concat({"y": ref["ETHUSDT"], "x": ref["BTCUSDT"]}, axis=1, join="inner")
    joined = joined.iloc[-301:-1]
    design = np.column_stack([np.ones(len(joined)), np.log(joined["x"])])
    (alpha, beta), *_ = np.linalg.lstsq(design, np.log(joined["y"]), rcond=None)
    assert metric(at, "Hedge ratio β") == f"{beta:,.4f}"
    assert metric(at, "Alpha") == f"{alpha:,.4f}"

    at.radio(key="timeframe").set_value("1m").run()
    info = " ".join(i.value for i in at.info)
    # 8 one-minute bars in the 7-minute recording; each figure names what it needs.
    assert "8 aligned bars" in info and "β needs 301 (293 more)" in info, info
    assert "z-score needs 360 (352 more)" in info and "correlation needs 61 (53 more)" in info


def test_bad_controls_say_what_is_wrong(app_env, dec_trades):
    at = AppTest.from_file(APP, default_timeout=60)
    expected_ticks = sum(len(b) for b in dec_trades.values())
    run_until(at, lambda a: metric(a, "Ticks") == f"{expected_ticks:,}")
    at.selectbox(key="x_symbol").set_value("ETHUSDT").run()
    assert any("two different symbols" in e.value for e in at.error)
    at.selectbox(key="x_symbol").set_value("BTCUSDT").run()
    at.number_input(key="z_threshold").set_value(0.0).run()
    assert any("greater than 0" in e.value for e in at.error)
    assert not at.exception
    _rest_of_the_page_stays(at, candles=2)


def _rest_of_the_page_stays(at, candles: int) -> None:
    """A bad control is said in place; the candles and Export are still there."""
    assert len(at.get("plotly_chart")) == candles
    labels = [b.proto.label for b in at.get("download_button")]
    assert any(label.startswith("Download CSV") for label in labels), labels


def test_a_one_symbol_upload_says_so_and_keeps_its_candles(app_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(OFFLINE).run()
    rows = ["agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"]
    t0 = 1_765_000_000_000
    rows += [f"{i},{100 + i % 7},1,{i},{i},{t0 + i * 500},false" for i in range(1, 200)]
    body = ("\n".join(rows) + "\n").encode()
    at.file_uploader(key="uploads").set_value([("BTCUSDT-aggTrades.csv", body, "text/csv")]).run()
    assert not at.exception
    assert any("needs two symbols" in e.value for e in at.error), [e.value for e in at.error]
    _rest_of_the_page_stays(at, candles=1)


def test_kalman_says_what_it_needs_then_shows_its_beta_and_spread_half_life(app_env):
    """Seven minutes of 1s bars are too few for a Kalman fit (800 bars before a refit
    boundary, every 200 bars): the page says how many it needs. On 1,300 uploaded bars it
    shows beta and the fitted spread's half-life."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.selectbox(key="method").set_value("Kalman")
    run_until(at, lambda a: any("β needs 1000" in i.value for i in a.info))
    at.switch_page(OFFLINE).run()
    data = crafted_pair_csv(n=1_300)
    at.file_uploader(key="uploads").set_value([("pair.csv", data, "text/csv")]).run()
    assert not at.exception
    assert metric(at, "Hedge ratio β") not in (None, "—")
    assert re.fullmatch(r"[\d.,]+ bars", metric(at, "Kalman spread half-life"))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("x.csv", b"\xff\xfe\x00garbage", "not UTF-8"),
        ("BTCUSDT-big.csv", b"0" * (26 * 1024 * 1024), "over the 25 MB limit"),
        (
            "BTCUSDT-bars.csv",
            b"open_time,open,high,low,close\n0,1,1,1,1\n1000,1,abc,1,1\n",
            "row 3",
        ),
        ("bars.csv", b"open_time,open,high,low,close\n0,1,1,1,1\n", "does not say the symbol"),
        ("bars.csv", b"open_time,open,high,close\n0,1,1,1\n", "missing column(s) low"),
        ("BTCUSDT-aggTrades.csv", b"1,2,3\n", "row 1: expected 7 or 8 columns"),
    ],
)
def test_bad_uploads_are_refused_with_a_clear_message(app_env, name, data, message):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(OFFLINE).run()
    at.file_uploader(key="uploads").set_value([(name, data, "text/csv")]).run()
    errors = " ".join(e.value for e in at.error)
    assert message in errors and not at.exception


def crafted_pair_csv(n=400, jump=True) -> bytes:
    """Two symbols of 1s bars: Y = 2·X + tiny noise; the last Y bar jumps (z far above 2)."""
    rng = np.random.default_rng(0)
    x = 100 + np.cumsum(rng.normal(0, 0.1, n))
    y = 2 * x + rng.normal(0, 0.01, n)
    if jump:
        y[-1] += 1.0
    t = 1_765_000_000_000 + np.arange(n) * 1000
    rows = ["symbol,timeframe,open_time,open,high,low,close,volume"]
    for sym, c in (("YYYUSDT", y), ("XXXUSDT", x)):
        rows += [f"{sym},1s,{ti},{ci},{ci},{ci},{ci},1" for ti, ci in zip(t, c, strict=True)]
    return ("\n".join(rows) + "\n").encode()


def test_uploaded_pair_is_analysed_and_alerts_fire_once(app_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(OFFLINE).run()
    at.file_uploader(key="uploads").set_value([("pair.csv", crafted_pair_csv(), "text/csv")]).run()
    assert any("Loaded" in s.value for s in at.success), [e.value for e in at.error]
    # On the offline page, Y/X default to the two uploaded symbols (sorted: X, Y).
    assert (at.selectbox(key="y_symbol").value, at.selectbox(key="x_symbol").value) == (
        "YYYUSDT",
        "XXXUSDT",
    )
    assert not at.exception
    toasts = [t.value for t in at.toast]
    assert any("crossed above" in t for t in toasts), toasts
    at.run()  # the same bar again: edge-triggered, no second toast for it
    assert not any("crossed above" in t.value for t in at.toast)
    # Log prices by default: log Y = log 2 + 1 * log X, fitted on the 300 bars before the last
    # (walk-forward: the jump in the last bar does not move its own hedge ratio).
    frame = pd.read_csv(pd.io.common.BytesIO(crafted_pair_csv()))
    ly = np.log(frame[frame.symbol == "YYYUSDT"]["close"].to_numpy()[-301:-1])
    lx = np.log(frame[frame.symbol == "XXXUSDT"]["close"].to_numpy()[-301:-1])
    (_, beta), *_ = np.linalg.lstsq(np.column_stack([np.ones(300), lx]), ly, rcond=None)
    assert metric(at, "Hedge ratio β") == f"{beta:,.4f}"


def test_pages_share_pair_settings_and_the_offline_page_has_no_feed(app_env):
    """A lookback set on the live page holds on the offline page (st.navigation), which shows
    no tick strip and offers no save; its beta uses that lookback."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.number_input(key="lookback").set_value(200).run()
    at.switch_page(OFFLINE).run()
    assert not at.exception and metric(at, "Ticks") is None
    at.file_uploader(key="uploads").set_value([("pair.csv", crafted_pair_csv(), "text/csv")]).run()
    assert at.number_input(key="lookback").value == 200
    assert not [b for b in at.button if b.label.startswith("Save to SQLite")]
    frame = pd.read_csv(pd.io.common.BytesIO(crafted_pair_csv()))
    ly = np.log(frame[frame.symbol == "YYYUSDT"]["close"].to_numpy()[-201:-1])
    lx = np.log(frame[frame.symbol == "XXXUSDT"]["close"].to_numpy()[-201:-1])
    (_, beta), *_ = np.linalg.lstsq(np.column_stack([np.ones(200), lx]), ly, rcond=None)
    assert metric(at, "Hedge ratio β") == f"{beta:,.4f}"


def test_price_rule_fires_on_crossing(app_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(OFFLINE).run()
    data = crafted_pair_csv()
    at.file_uploader(key="uploads").set_value([("pair.csv", data, "text/csv")]).run()
    frame = pd.read_csv(pd.io.common.BytesIO(data))
    y = frame[frame.symbol == "YYYUSDT"]["close"].to_numpy()
    level = round((y[-2] + y[-1]) / 2, 3)  # between the last two closes: crossed upward
    at.selectbox(key="rule_symbol").set_value("YYYUSDT")
    at.number_input(key="rule_level").set_value(level)
    [b for b in at.button if b.label == "Add rule"][0].click().run()
    assert any("Price of YYYUSDT above" in t.value for t in at.toast), [t.value for t in at.toast]


def test_save_to_sqlite_writes_every_bar(app_env, dec_trades):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    expected_ticks = sum(len(b) for b in dec_trades.values())
    run_until(at, lambda a: metric(a, "Ticks") == f"{expected_ticks:,}")
    [b for b in at.button if b.label.startswith("Save to SQLite")][0].click().run()
    message = " ".join(s.value for s in at.success)
    written = int(re.search(r"([\d,]+) rows written", message).group(1).replace(",", ""))
    conn = sqlite3.connect(app_env / "market.db")
    rows = conn.execute("SELECT COUNT(*) FROM bars").fetchone()[0]
    expected_rows = sum(
        len(reference_bars(b, ms)) for b in dec_trades.values() for ms in TIMEFRAMES_MS.values()
    )
    assert written == rows == expected_rows
    [b for b in at.button if b.label.startswith("Save to SQLite")][0].click().run()
    assert "0 rows written" in " ".join(s.value for s in at.success)  # idempotent


def test_live_source_names_unknown_symbols_and_streams_the_rest(
    monkeypatch, tmp_path, exchange_factory, dec_trades
):
    """The live path of the page against the local exchange: a symbol exchangeInfo does not
    list is named on the page and left out; the others stream."""
    ex = exchange_factory(trades=dec_trades, speed=None)
    monkeypatch.setenv("PAIRDASH_SOURCE", "live")
    monkeypatch.setenv("PAIRDASH_SYMBOLS", "BTCUSDT,NOPEUSDT,ETHUSDT")
    monkeypatch.setenv("PAIRDASH_WS_URL", ex.ws_url)
    monkeypatch.setenv("PAIRDASH_REST_URL", ex.rest_url)
    monkeypatch.setenv("PAIRDASH_DB", str(tmp_path / "market.db"))
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        total = sum(len(b) for b in dec_trades.values())
        run_until(at, lambda a: metric(a, "Ticks") == f"{total:,}")
        errors = [e.value for e in at.error]
        assert any("Unknown symbol(s) NOPEUSDT" in e for e in errors), errors
        assert metric(at, "BTCUSDT") is not None and metric(at, "NOPEUSDT") is None
    finally:
        st.cache_resource.clear()


def test_an_unusable_database_path_is_a_message_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("PAIRDASH_SOURCE", "replay")
    monkeypatch.setenv("PAIRDASH_REPLAY_SPEED", "0")
    monkeypatch.setenv("PAIRDASH_DB", str(tmp_path / "no" / "such" / "dir" / "market.db"))
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        assert not at.exception
        assert any("Cannot start" in e.value and "cannot open" in e.value for e in at.error)
    finally:
        st.cache_resource.clear()


def test_latency_on_a_db_page_with_old_bars_reads_as_their_age():
    from frontend.strip import latency_text

    assert latency_text("db", 1_450.0, None) == "latency 1,450 ms"  # a collector writing now
    assert latency_text("db", 90_000.0, None) == "newest stored second 90 s old"
    assert latency_text("db", 5 * 3_600_000.0, None) == "newest stored second 5.0 h old"
    year_ms = 30_510_388_438.0  # replayed 2025 trades read a year later
    assert latency_text("db", year_ms, None) == "newest stored second 353.1 days old"
    assert latency_text("live", year_ms, None) == f"latency {year_ms:,.0f} ms"
    assert latency_text("live", 12.0, 95_600.0) == "clock offset +95.6 s (exchange − ours)"
    assert latency_text("live", None, None) == "latency —"


def test_a_range_of_dates_shows_the_bars_of_those_days(app_env, dec_trades):
    import datetime as dt

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    expected_ticks = sum(len(b) for b in dec_trades.values())
    run_until(
        at, lambda a: metric(a, "Ticks") == f"{expected_ticks:,}" and metric(a, "Hedge ratio β")
    )
    beta = metric(at, "Hedge ratio β")
    at.radio(key="show_span").set_value("dates").run()
    assert not at.exception
    # The default range (the last 30 days) holds none of the recording's bars.
    assert any(i.value.startswith("No 1s bars of") for i in at.info), [i.value for i in at.info]
    day = dt.date(2025, 12, 15)  # the recording's day: every bar of it, as before
    at.date_input(key="shown_dates").set_value((day, day)).run()
    assert not at.exception
    assert metric(at, "Hedge ratio β") == beta
