"""The real thing: `streamlit run app.py` against the local exchange, in headless Chromium."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT, reference_bars

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"


def _require_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    message = "Debian's chromium is missing: apt-get install -y chromium"
    if os.environ.get("CI"):
        pytest.fail(message)  # CI must run this test, never skip it
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_dashboard(tmp_path, *options: str, db=None):
    """``streamlit run app.py -- options`` on a free port; yields (url, db), stops it after."""
    port = _free_port()
    db = db or tmp_path / "market.db"
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "PYTHONPATH": str(ROOT)}
    # The server's log goes to a file: an unread pipe fills up and blocks the server.
    log = open(tmp_path / "streamlit.log", "w")  # noqa: SIM115 - closed after the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--", *options, "--db", str(db)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.read() == b"ok":
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        log.close()
        pytest.fail("streamlit did not become healthy: " + (tmp_path / "streamlit.log").read_text())
    yield url, db
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "streamlit.log", ARTIFACTS / f"streamlit-{options[1]}.log")


@pytest.fixture
def dashboard(tmp_path):
    yield from _serve_dashboard(tmp_path, "--source", "replay", "--replay-speed", "20")


@pytest.fixture
def simulated_dashboard(tmp_path):
    yield from _serve_dashboard(tmp_path, "--source", "simulate")


@contextlib.contextmanager
def chromium_page(name: str):
    """A fresh headless Chromium page (its own new profile); a screenshot if the test fails.

    The profile allows a site several downloads: a file built at the click arrives after the
    click's gesture, and Chromium asks before a site's second such download ("Download multiple
    files?"), which headless cancels. A user answers that prompt once."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as pw:
        prefs = {"profile": {"default_content_setting_values": {"automatic_downloads": 1}}}
        (Path(profile) / "Default").mkdir()
        (Path(profile) / "Default" / "Preferences").write_text(json.dumps(prefs))
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            accept_downloads=True,
            viewport={"width": 1500, "height": 1800},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = context.new_page()
        try:
            yield page
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
            # The page scrolls inside its main block: the screenshot shows one viewport only.
            (ARTIFACTS / f"{name}-failure.txt").write_text(page.inner_text("body"))
            raise
        finally:
            context.close()


def metric_text(page, label: str) -> str | None:
    """The value shown under a figure's label (a figure card, frontend/cards.py)."""
    card = page.locator(".pa-card").filter(has=page.locator(".pa-label", has_text=label))
    if not card.count():
        return None
    return card.first.locator(".pa-value").inner_text()


def test_simulation_opens_with_history_so_1m_figures_show_within_10_s(simulated_dashboard):
    """History at start: right after the page opens, 1m shows beta, z and the ADF p-value
    within 10 s (no hour of warming up), and the z chart marks the backtest's trades."""
    url, _ = simulated_dashboard
    with chromium_page("simulate-1m") as page:
        page.goto(url)
        card(page, "Ticks").wait_for(timeout=30_000)
        page.get_by_test_id("stSidebar").get_by_text("1m", exact=True).click()
        clicked = time.monotonic()

        def numeric(label):
            text = metric_text(page, label)
            return text is not None and any(ch.isdigit() for ch in text)

        def shown_on_1m():  # the figures below the 1m caption are the 1m ones
            on_1m = page.get_by_text("1m history (klines").count() >= 1
            return (
                on_1m and numeric("Hedge ratio β") and numeric("z (60 bars)") and numeric("ADF p")
            )

        wait_until(shown_on_1m, 10, "β, z and ADF on 1m")
        assert time.monotonic() - clicked < 10
        # The candles are 1m (a chart being redrawn can leave a hidden copy: look at visible).
        wait_until(lambda: page.get_by_text("· 1m").filter(visible=True).count(), 10, "1m candles")
        view_button(page, "Spread & z-score").click()
        page.get_by_text("backtest entry").first.wait_for(timeout=20_000)

        # Paused, the page stops redrawing (a tab left open costs nothing); resumed, it moves.
        refresh = page.get_by_test_id("stSidebar").get_by_role("slider")
        refresh.focus()
        page.keyboard.press("End")  # the last choice: paused
        page.get_by_test_id("stSidebar").get_by_text("paused").first.wait_for(timeout=10_000)
        time.sleep(2)  # let the last redraw land
        frozen = ticks_value(page)
        time.sleep(3)
        assert ticks_value(page) == frozen
        page.keyboard.press("Home")  # back to 0.25 s
        wait_until(lambda: ticks_value(page) > frozen, 10, "ticks to move again")
        # The strip moves by fetching its route, one request at a time, however many page runs
        # remounted it (here three): at 0.25 s at most 4 a second plus the one in flight.
        page.evaluate("performance.clearResourceTimings()")
        time.sleep(3)
        fetched = page.evaluate(
            "performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/pa/strip?source=simulate')).length"
        )
        assert 3 <= fetched <= 13, fetched


def card(page, label: str):
    """The figure card whose label is ``label`` (frontend/cards.py)."""
    return page.locator(f'.pa-card[data-label="{label}"]').first


def ticks_value(page) -> int:
    return int(card(page, "Ticks").locator(".pa-value").inner_text().replace(",", ""))


def download(page, button: str) -> str:
    """Click a download button (its file is built at the click); the downloaded file's path."""
    with page.expect_download(timeout=20_000) as info:
        page.get_by_role("button", name=button).click()
    return info.value.path()


def view_button(page, name: str):
    """The analysis view's radio option with this label."""
    return page.get_by_test_id("stMain").get_by_test_id("stRadio").get_by_text(name, exact=True)


def wait_until(fn, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_dashboard_in_a_real_browser(dashboard, dec_trades):
    url, db = dashboard
    with chromium_page("dashboard") as page:
        page.goto(url)
        card(page, "Ticks").wait_for(timeout=30_000)
        # Ticks rise in the open page, without a reload.
        first = wait_until(lambda: ticks_value(page) or None, 20, "the first ticks")
        first_seen = time.monotonic()

        # Right after the first tick, the 1s CSV (built at the click) holds every bar there is.
        shown_before_click = ticks_value(page)
        assert time.monotonic() - first_seen < 3
        path = download(page, "Download CSV (1s bars")
        early = pd.read_csv(path)
        held_at_most = 0
        for symbol in ("BTCUSDT", "ETHUSDT"):
            mine = early[early["symbol"] == symbol].reset_index(drop=True)
            ref = reference_bars(dec_trades[symbol], 1_000)
            assert len(mine) >= 1, f"no {symbol} bar in a CSV taken after the first tick"
            # Every bar from the first, none skipped; every closed bar exact.
            np.testing.assert_array_equal(mine["open_time"], ref["open_time"][: len(mine)])
            closed, ref_closed = mine.iloc[:-1], ref.iloc[: len(mine) - 1]
            np.testing.assert_array_equal(closed["close"], ref_closed["close"])
            np.testing.assert_array_equal(closed["trades"], ref_closed["trades"])
            last_end = int(mine["open_time"].iloc[-1]) + 1_000
            held_at_most += int((dec_trades[symbol].trade_time_ms < last_end).sum())
        # Not a stale snapshot: the file reaches at least as far as the ticks the page showed.
        assert held_at_most >= shown_before_click
        later = wait_until(lambda: (v := ticks_value(page)) > first and v, 20, "ticks to rise")
        assert later > first

        # Warmed up at 1s (the z-score is defined): the analytics CSV downloads, and its
        # z-score is pandas' trailing z of its own spread.
        wait_until(
            lambda: any(ch.isdigit() for ch in (metric_text(page, "z (60 bars)") or "")),
            60,
            "the z-score",
        )
        path = download(page, "Download analytics CSV")
        with open(path) as fh:
            header = fh.readline()
        assert header.startswith("# pair ETHUSDT/BTCUSDT, 1s bars; regression ols") and (
            "z window 60 bars" in header
        )
        table = pd.read_csv(path, comment="#")
        assert table["time"].str.endswith("Z").all()
        assert (table["ETHUSDT_close"].astype(str).str.len() < 12).all()  # no float noise
        assert {"time", "ETHUSDT_close", "BTCUSDT_close", "spread", "zscore"} <= set(table)
        spread = table["spread"]
        z = (spread - spread.rolling(60).mean()) / spread.rolling(60).std(ddof=1)
        assert table["zscore"].notna().sum() >= 1
        np.testing.assert_allclose(table["zscore"], z, rtol=1e-6, atol=1e-9)
        # The Table tab is computed only when opened (lazy tabs), and then it shows.
        view_button(page, "Table").click()
        page.get_by_text("The whole table").wait_for(timeout=20_000)
        view_button(page, "Prices").click()

        # Switch the timeframe to 1m: the candles are titled with it.
        page.get_by_test_id("stSidebar").get_by_text("1m", exact=True).click()
        wait_until(lambda: page.get_by_text("· 1m").filter(visible=True).count(), 20, "1m candles")

        # Download the 1m bars and check every closed bar against the recorded trades.
        with open(download(page, "Download CSV (1m bars"), newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and set(rows[0]) >= {"symbol", "timeframe", "open_time", "close", "time"}
        for symbol in ("BTCUSDT", "ETHUSDT"):
            mine = pd.DataFrame([r for r in rows if r["symbol"] == symbol])
            assert (mine["timeframe"] == "1m").all()
            ref = reference_bars(dec_trades[symbol], 60_000).set_index("open_time")
            closed = mine.iloc[:-1]  # the last bar may still be open
            times = closed["open_time"].astype(np.int64)
            # The replay loops (shifted ids and times); check the first pass through the tape.
            first_pass = (times < ref.index.max()).to_numpy()
            closed, times = closed[first_pass], times[first_pass]
            assert len(closed) >= 1
            np.testing.assert_array_equal(closed["close"].astype(float), ref.loc[times, "close"])
            np.testing.assert_array_equal(closed["trades"].astype(int), ref.loc[times, "trades"])
            np.testing.assert_allclose(
                closed["volume"].astype(float), ref.loc[times, "volume"], rtol=1e-9
            )

        # Save to SQLite: the page says how many rows, and the file holds them.
        page.get_by_role("button", name="Save to SQLite").click()
        done = page.get_by_text("rows written").first
        done.wait_for(timeout=30_000)
        conn = sqlite3.connect(db)
        stored = dict(
            conn.execute("SELECT timeframe, COUNT(*) FROM bars GROUP BY timeframe").fetchall()
        )
        conn.close()
        assert stored.get("1m", 0) >= len([r for r in rows if r["timeframe"] == "1m"])
        assert stored.get("1s", 0) > stored["1m"]


SCAN_SYMBOLS = [f"S{i:02d}USDT" for i in range(20)]


@pytest.fixture
def market_dashboard(tmp_path):
    """20 simulated symbols (7 cointegrated pairs), 330 bars of history: the scan's 300 1m bars
    are there at start."""
    symbols = ",".join(SCAN_SYMBOLS)
    yield from _serve_dashboard(
        tmp_path, "--source", "simulate", "--symbols", symbols, "--history-bars", "330",
        "--history-1s", "60",
    )  # fmt: skip


def scanner_column(page, header: str) -> int:
    """The index of the scanner table's column whose header starts with ``header``."""
    names = page.get_by_test_id("stDataFrame").first.locator("th").all_inner_texts()
    return next(i for i, name in enumerate(names) if name.startswith(header))


def scanner_rows(page) -> list[list[str]]:
    """The scanner table's rows as text (the grid's accessible table: the canvas has none)."""
    rows = page.get_by_test_id("stDataFrame").locator("table tr")
    out = []
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        out.append([cells.nth(j).inner_text() for j in range(cells.count())])
    return [r for r in out if r]


def test_scanner_ranks_the_cointegrated_pairs_first_and_a_click_opens_one(market_dashboard):
    from backend.exchange.sources import Simulator

    url, _ = market_dashboard
    truth = {frozenset(p) for p in Simulator(SCAN_SYMBOLS).cointegrated_pairs()}
    with chromium_page("scanner") as page:
        page.goto(f"{url}/scanner")
        page.get_by_test_id("stDataFrame").first.wait_for(timeout=120_000)
        rows = wait_until(lambda: scanner_rows(page), 20, "the scanner's rows")
        ranked = [frozenset(r[:2]) for r in rows]
        assert set(ranked[: len(truth)]) == truth, ranked[:10]
        p_at, q_at = scanner_column(page, "EG p"), scanner_column(page, "EG q")
        p_values = [float(r[p_at]) for r in rows]
        q_values = [float(r[q_at]) for r in rows]
        # Ranked by p; the default filter is on q (Benjamini-Hochberg): exactly the 7 planted.
        assert p_values == sorted(p_values) and max(q_values) <= 0.05 and len(rows) == len(truth)
        page.get_by_text(f"{len(rows)} of 190 pairs pass the filters").wait_for(timeout=10_000)
        # Each pair's funding carry once the mark prices are in: bps a day, of the size
        # simulated rates give (|r| ~ 0.03 % per interval, up to 24 a day), labelled simulated.
        carry_at = scanner_column(page, "Carry (bps/day, simulated)")
        carry = wait_until(
            lambda: [r[carry_at] for r in scanner_rows(page) if r[carry_at].strip()],
            20,
            "the carry column",
        )
        assert len(carry) == len(rows) and all(abs(float(c)) < 500 for c in carry), carry[:5]

        # A click on the first row's marker opens that pair on the live page, on 1m bars.
        y, x = rows[0][:2]
        box = page.get_by_test_id("stDataFrame").first.bounding_box()
        page.mouse.click(box["x"] + 14, box["y"] + 35 + 17)  # header 35 px, rows 35 px
        sidebar = page.get_by_test_id("stSidebar")
        for label, symbol in (("Y (dependent)", y), ("X (hedge)", x)):
            box = sidebar.get_by_role("combobox", name=label)
            wait_until(lambda b=box, s=symbol: b.count() and b.input_value() == s, 30, label)
        wait_until(lambda: metric_text(page, "Hedge ratio β") not in (None, "—"), 30, "β")
        page.get_by_text("1m history (klines").first.wait_for(timeout=10_000)
        # The pair's carry both ways (one the other's negative) and each leg's basis. Rates
        # move every second: the two cards are read until one read sees both of one update.
        number = r"([+-]\d+\.\d\d) bps/day"

        def carry_both_ways():
            long_c = metric_text(page, f"Carry long {y} / short β·{x}") or ""
            short_c = metric_text(page, f"Carry short {y} / long β·{x}") or ""
            a, b = re.fullmatch(number, long_c), re.fullmatch(number, short_c)
            return a and b and abs(float(a[1]) + float(b[1])) < 0.011

        wait_until(carry_both_ways, 20, "the carry cards, one the other's negative")
        for leg in (y, x):
            assert re.fullmatch(r"[+-]\d+\.\d\d bps", metric_text(page, f"Basis {leg}"))
        # Its heatmap, on the scanner's top 10 pairs, clustered: each cointegrated pair shown
        # sits side by side (their returns move together; the lone walks' do not).
        view_button(page, "Heatmap").click()
        page.get_by_role("combobox", name="Symbols").click()
        page.get_by_role("option", name="top 10 pairs of the scanner").click()
        page.get_by_text("best pairs (Engle–Granger").wait_for(timeout=20_000)

        def heatmap_symbols():
            return page.evaluate(
                "() => [...document.querySelectorAll('.js-plotly-plot')]"
                ".map(p => p.data && p.data[0]).filter(d => d && d.type === 'heatmap')"
                ".map(d => d.x)[0] || null"
            )

        order = wait_until(heatmap_symbols, 20, "the heatmap")
        shown = [p for p in truth if p <= set(order)]
        assert len(shown) == len(truth)  # the 7 cointegrated pairs rank in the top 10
        for pair in shown:
            a, b = sorted(order.index(s) for s in pair)
            assert b == a + 1, (sorted(pair), order)


def test_a_db_dashboard_shows_both_collectors_symbols_advancing(
    tmp_path, exchange_factory, dec_trades, pg_url
):
    """Two collectors (one symbol each) write into PostgreSQL; a dashboard with ``--source db``
    and no feed of its own shows both symbols, its counter rises as their bars land, and its
    CSV holds the database's rows."""
    from backend.storage import open_store
    from tests.test_storage_pg import _collect

    ex = exchange_factory(trades=dec_trades, speed=6.0)
    collectors = [_collect(ex, pg_url, s) for s in ("BTCUSDT", "ETHUSDT")]
    try:
        db = open_store(pg_url)
        wait_until(lambda: len(db.symbols()) == 2, 30, "both collectors' first bars")
        served = _serve_dashboard(tmp_path, "--source", "db", db=pg_url)
        url, _ = next(served)
        try:
            with chromium_page("db-source") as page:
                page.goto(url)
                card(page, "Ticks").wait_for(timeout=30_000)
                for symbol in ("BTCUSDT", "ETHUSDT"):
                    card(page, symbol).wait_for()
                first = ticks_value(page)
                wait_until(lambda: ticks_value(page) > first, 20, "bars landing on the page")
                page.get_by_text("source db").first.wait_for(timeout=10_000)
                # Each collector as the database names it: host, pid, last save.
                for symbol, proc in zip(("BTCUSDT", "ETHUSDT"), collectors, strict=True):
                    page.get_by_text(
                        f"{symbol} ({socket.gethostname()} pid {proc.pid}): saved"
                    ).first.wait_for(timeout=10_000)
                shown = pd.read_csv(download(page, "Download CSV (1s bars"))
                for symbol in ("BTCUSDT", "ETHUSDT"):
                    mine = shown[shown["symbol"] == symbol].iloc[:-1]  # the newest may move
                    stored = db.load(symbol, "1s").to_frame().set_index("open_time")
                    assert len(mine) > 10
                    ref = stored.loc[mine["open_time"].to_numpy()]
                    np.testing.assert_array_equal(mine["close"], ref["close"])
                    np.testing.assert_array_equal(mine["trades"], ref["trades"])
                    np.testing.assert_allclose(mine["volume"], ref["volume"], rtol=1e-12)
        finally:
            next(served, None)
        db.close()
    finally:
        for proc in collectors:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def basket_dashboard(tmp_path):
    """Simulated: BTCUSDT/ETHUSDT cointegrated, S02USDT a walk and S03USDT cointegrated with it
    (funding every hour: the simulation cycles 8, 8, 4, 1 h over its symbols)."""
    yield from _serve_dashboard(
        tmp_path, "--source", "simulate", "--symbols", "BTCUSDT,ETHUSDT,S02USDT,S03USDT"
    )


def test_backtest_breakdown_trades_csv_and_a_basket(basket_dashboard):
    """The Backtest view on 1m: the period it tested, gross to net, and a trades CSV whose
    fills are the next bar's open in the bars CSV (never the deciding bar), whose fees are
    5 bps of each filled leg and whose net adds up. Then the basket page on three symbols."""
    url, _ = basket_dashboard
    with chromium_page("backtest") as page:
        page.goto(url)
        card(page, "Ticks").wait_for(timeout=30_000)
        page.get_by_test_id("stSidebar").get_by_text("1m", exact=True).click()
        wait_until(lambda: metric_text(page, "Backtest net") not in (None, "—"), 30, "backtest")
        view_button(page, "Backtest").click()
        page.get_by_text("Tested", exact=True).wait_for(timeout=20_000)
        text = page.inner_text("body")
        assert re.search(r"Tested \d{4}-\d\d-\d\d \d\d:\d\d → .* UTC \([\d,]+ bars\)", text)
        assert "fills at the next bar's open, fees 5 bps a leg a fill" in text
        assert "funding at the simulated rates" in text and "break-even cost" in text
        with open(download(page, "Download trades CSV")) as fh:
            header = [next(fh), next(fh)]
        trades = pd.read_csv(fh.name, comment="#")
        bars = pd.read_csv(download(page, "Download CSV (1m bars"))
    assert header[1].startswith("# backtest ") and "simulated" in header[1]
    closed = trades[trades["closed"]]
    assert len(closed) >= 3

    def ms(col):  # ISO-8601 UTC times as epoch ms
        return pd.to_datetime(closed[col], utc=True).dt.as_unit("ms").astype("int64").to_numpy()

    np.testing.assert_array_equal(ms("entry_time") - ms("entry_decided"), 60_000)
    np.testing.assert_array_equal(ms("exit_time") - ms("exit_decided"), 60_000)
    opens = {s: g.set_index("open_time")["open"] for s, g in bars.groupby("symbol")}
    for leg in ("ETHUSDT", "BTCUSDT"):
        np.testing.assert_allclose(closed[f"entry_{leg}"], opens[leg].loc[ms("entry_time")])
        np.testing.assert_allclose(closed[f"exit_{leg}"], opens[leg].loc[ms("exit_time")])
    filled = sum(
        closed[f"qty_{leg}"].abs() * (closed[f"entry_{leg}"] + closed[f"exit_{leg}"])
        for leg in ("ETHUSDT", "BTCUSDT")
    )
    # 5 bps of each filled notional; the fill prices sit within half the quoted spread.
    np.testing.assert_allclose(closed["fees_usdt"], 5e-4 * filled, rtol=1e-3)
    net = closed["gross_usdt"] - closed["fees_usdt"] - closed["spread_usdt"]
    np.testing.assert_allclose(closed["net_usdt"], net + closed["funding_usdt"], atol=1e-9)

    with chromium_page("basket") as page:
        page.goto(f"{url}/basket")
        page.get_by_text("Symbols (3 or 4").wait_for(timeout=30_000)
        wait_until(lambda: metric_text(page, "Johansen rank"), 60, "the Johansen rank")
        rank = metric_text(page, "Johansen rank")
        assert re.fullmatch(r"\d / \d", rank), rank
        page.get_by_text("Weights (of log prices").wait_for(timeout=20_000)
        weights = re.search(r"BTCUSDT ([+-][\d.]+) · ETHUSDT ([+-][\d.]+)", page.inner_text("body"))
        # BTC and ETH are the cointegrated pair: the relation weighs them, not the lone walk.
        assert weights and abs(float(weights[2])) > 0.5
        basket_trades = pd.read_csv(download(page, "Download trades CSV"), comment="#")
    assert {"qty_BTCUSDT", "qty_ETHUSDT", "qty_S02USDT"} <= set(basket_trades)


@pytest.fixture
def deep_dashboard(tmp_path):
    """The simulation with 2,200 bars of each kline timeframe at start: 1h reaches 91 days."""
    yield from _serve_dashboard(
        tmp_path, "--source", "simulate", "--history-bars", "2200", "--history-1s", "60"
    )


def test_the_1h_pair_page_over_90_simulated_days_and_the_1h_scanner(deep_dashboard):
    url, _ = deep_dashboard
    with chromium_page("deep-1h") as page:
        page.goto(url)
        card(page, "Ticks").wait_for(timeout=60_000)
        page.get_by_test_id("stSidebar").get_by_text("1h", exact=True).click()

        def figures_on_1h():
            caption = page.get_by_text("1h history (klines")
            numbers = [metric_text(page, k) for k in ("Hedge ratio β", "z (60 bars)", "ADF p")]
            return caption.count() and all(n and any(c.isdigit() for c in n) for n in numbers)

        wait_until(figures_on_1h, 30, "β, z and ADF on 1h")
        reach = page.get_by_text("1h history (klines").first.inner_text()
        starts = [
            dt.datetime.strptime(d, "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC)
            for d in re.findall(r"from (\d{4}-\d\d-\d\d \d\d:\d\d)", reach)
        ]
        assert len(starts) == 2, reach
        assert all(dt.datetime.now(dt.UTC) - s >= dt.timedelta(days=90) for s in starts), reach

        page.goto(f"{url}/scanner")  # opens on 30 days of 1h bars: every symbol has them
        page.get_by_test_id("stDataFrame").first.wait_for(timeout=60_000)
        sidebar = page.get_by_test_id("stSidebar")
        assert sidebar.get_by_role("radio", name="1h").is_checked()
        assert sidebar.get_by_label("Lookback (bars)").input_value() == "720"
        rows = wait_until(lambda: scanner_rows(page), 20, "the scanner's rows")
        assert {frozenset(rows[0][:2])} == {frozenset(("BTCUSDT", "ETHUSDT"))}, rows[:3]
        # A window of dates: the last 30 UTC days (today's included) are 30 x 24 bars, the
        # newest still forming, so the scan ends at the last closed one.
        sidebar.get_by_text("dates", exact=True).click()
        page.get_by_text("the last 720 closed 1h bars").first.wait_for(timeout=20_000)
        rows = wait_until(lambda: scanner_rows(page), 20, "the scanner's rows over dates")
        assert {frozenset(rows[0][:2])} == {frozenset(("BTCUSDT", "ETHUSDT"))}, rows[:3]


ALERT_TOKEN = "555:browser-SECRET-tg-token"


@pytest.fixture
def alerts_dashboard(tmp_path, receivers, monkeypatch):
    """The simulation with a rules file naming a local webhook and a Telegram-shaped stub
    (its token in the server's environment only), and no rule yet."""
    hook, tg = receivers.http(), receivers.http()
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        'ruleset = "page"\n\n[[channel]]\nname = "desk"\nkind = "webhook"\n'
        f'url = "{hook.url}/hook"\n\n[[channel]]\nname = "tg"\nkind = "telegram"\n'
        f'url = "{tg.url}"\nchat_id = "7"\ntoken_env = "PAIRDASH_TEST_TG"\n'
    )
    monkeypatch.setenv("PAIRDASH_TEST_TG", ALERT_TOKEN)
    for served in _serve_dashboard(tmp_path, "--source", "simulate", "--rules", str(rules)):
        yield (*served, rules, hook, tg)


def pick(page, widget: str, label: str, option: str) -> None:
    """Choose ``option`` in the select box (or multiselect) labelled ``label``."""
    page.get_by_test_id(widget).filter(has_text=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_a_rule_added_on_the_page_fires_delivers_and_shows_in_the_history(alerts_dashboard):
    from backend.alerts.rules import load_rules

    url, db, rules, hook, tg = alerts_dashboard
    with chromium_page("alerts") as page:
        # the browser's Notification, recorded (headless shows none): granted, as after a click
        # on "Allow desktop notifications"
        page.add_init_script(
            "window.__notes = []; window.Notification = class { constructor(t, o) {"
            " window.__notes.push([t, o.body]); } static get permission() { return 'granted'; }"
            " static requestPermission() { return Promise.resolve('granted'); } };"
        )
        page.goto(f"{url}/alerts")
        page.get_by_text("No rules yet").wait_for(timeout=60_000)
        # a test alert per channel: delivered, and not recorded
        page.get_by_role("button", name="Send a test alert: tg").click()
        page.get_by_text("delivered on 'tg'").wait_for(timeout=15_000)
        assert tg.received[0].path == f"/bot{ALERT_TOKEN}/sendMessage"
        # the form writes a z-score rule into the file: z of the 1s pair over a 5-bar window
        # crossing above 0 (it does every few bars)
        pick(page, "stSelectbox", "Kind", "zscore (z-score)")
        page.get_by_label("Name").fill("z up")
        pick(page, "stSelectbox", "Timeframe", "1s")
        page.get_by_label("Above (blank: none)").fill("0")
        page.get_by_label("z window (bars)").fill("5")
        pick(page, "stMultiSelect", "Channels", "desk")
        page.keyboard.press("Escape")
        added_ms = time.time() * 1000
        page.get_by_role("button", name="Add the rule").click()
        page.get_by_text(f"Rule 'z up' added to {rules}").wait_for(timeout=15_000)
        (rule,) = load_rules(rules).rules  # the file reads back as the contract writes it
        assert (rule.kind, rule.y, rule.x, rule.timeframe, rule.above, rule.channels) == (
            "zscore", "BTCUSDT", "ETHUSDT", "1s", 0.0, ("desk",))  # fmt: skip
        assert rule.extra["window"] == 5
        wait_until(lambda: hook.bodies("z up"), 60, "the rule's alert at the webhook")
        body = hook.bodies("z up")[0]
        # a new rule alerts on bars closing from then on, never on crossings in its history
        assert body["bar_open_time"] >= added_ms - 3_000
        assert body["kind"] == "zscore" and body["value"] > 0 and body["threshold"] == 0
        when = dt.datetime.fromtimestamp(body["bar_open_time"] / 1000, dt.UTC)
        stamp = f"{when:%Y-%m-%d %H:%M:%S}"
        # the page's history (a canvas grid): its CSV download holds the same rows
        page.get_by_role("button", name="Download the alerts (CSV)").wait_for(timeout=20_000)

        def history_row():
            table = pd.read_csv(download(page, "Download the alerts (CSV)"))
            rows = table[table["bar open (UTC)"] == stamp]
            return None if rows.empty else rows.iloc[0].to_dict()

        row = wait_until(history_row, 20, "the alert in the page's history")
        assert row["rule"] == "z up" and row["rule set"] == "page"
        assert row["value"] == pytest.approx(body["value"]) and row["threshold"] == 0
        wait_until(lambda: history_row()["deliveries"] == "desk: sent", 20, "delivery shown")
        # a desktop notification for it on the open page, once
        wait_until(
            lambda: ["pairdash: z up", body["message"]] in page.evaluate("window.__notes"), 20,
            "the desktop notification",
        )  # fmt: skip
        notes = page.evaluate("window.__notes")
        assert len({tuple(n) for n in notes}) == len(notes)  # none shown twice
        assert ALERT_TOKEN not in page.content() and ALERT_TOKEN not in page.inner_text("body")
    assert ALERT_TOKEN not in rules.read_text()
    with sqlite3.connect(db) as conn:
        assert ALERT_TOKEN not in str(conn.execute("SELECT * FROM alerts").fetchall())
