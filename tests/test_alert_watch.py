"""``python -m backend watch`` end to end: a planted z crossing on a replayed pair reaches a
webhook, a Telegram-shaped stub and an SMTP server (STARTTLS, login) within 2 s of the bar's
close, once; a receiver down for 30 s gets it when back; a restarted watcher neither repeats
nor drops; a second watcher of the same rules is refused; a bad rules file is one line; no
secret in any log line or stored row."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from backend.storage import open_store
from backend.store.records import TradeBatch
from tests.conftest import ROOT, reference_bars, wait_for

TOKEN = "987654:tg-SECRET-token-w4tch"
PASSWORD = "smtp-SECRET-password-w4tch"
THRESHOLD = 6.0  # |z| of iid noise over ~700 bars stays far below it; a planted jump is ~30
HISTORY_S = 420  # 1s history served over REST before the stream starts
NOISE = 5e-4  # sd of y's log-price noise around 0.8 log x + 1 (per trade; closes are iid)


def planted_pair(stream_s: int, jumps: list[tuple[int, int]], seed: int = 11):
    """BTC (x) a random walk; ETH (y) = exp(1 + 0.8 log x + noise), 10 trades a second each,
    HISTORY_S seconds before now and ``stream_s`` after; y's log price jumps by 30 noise sds
    during each ``(start, length)`` second range of the stream. Returns the trades and the
    open times (ms) of the planted jumps' first bars."""
    rng = np.random.default_rng(seed)
    start_ms = (int(time.time()) - HISTORY_S) * 1000
    n = (HISTORY_S + stream_s) * 10
    t = start_ms + np.arange(n) * 100 + 50
    log_x = np.log(40_000.0) + np.cumsum(rng.normal(0, 1e-4, n))
    log_y = 1.0 + 0.8 * log_x + rng.normal(0, NOISE, n)
    planted = []
    for s, length in jumps:
        bar0 = start_ms + (HISTORY_S + s) * 1000
        log_y[(t >= bar0) & (t < bar0 + length * 1000)] += 30 * NOISE
        planted.append(bar0)

    def batch(symbol, logp, first_id):
        ids = first_id + np.arange(n)
        return TradeBatch.from_columns(
            symbol, agg_id=ids, price=np.round(np.exp(logp), 2), qty=np.full(n, 0.5),
            first_trade_id=ids * 3, last_trade_id=ids * 3, trade_time_ms=t,
            buyer_is_maker=rng.random(n) < 0.5,
        )  # fmt: skip

    trades = {"BTCUSDT": batch("BTCUSDT", log_x, 1_000), "ETHUSDT": batch("ETHUSDT", log_y, 9_000)}
    return trades, planted


def reference_z(trades, bar_ms: int, lookback: int = 120, window: int = 60) -> float:
    """z of the bar opened at ``bar_ms``, from the definition: each bar's spread from the OLS
    fit (statsmodels) of log y on log x over the ``lookback`` bars before it, standardised by
    the mean and sample sd of the last ``window`` spreads."""
    import statsmodels.api as sm

    closes = {s: reference_bars(b, 1000).set_index("open_time")["close"] for s, b in trades.items()}
    ly, lx = np.log(closes["ETHUSDT"]), np.log(closes["BTCUSDT"])
    i = int(ly.index.get_loc(bar_ms))
    spreads = []
    for j in range(i - window + 1, i + 1):
        fit = sm.OLS(ly.iloc[j - lookback : j].to_numpy(),
                     sm.add_constant(lx.iloc[j - lookback : j].to_numpy())).fit()  # fmt: skip
        a, b = fit.params
        spreads.append(ly.iloc[j] - a - b * lx.iloc[j])
    s = np.array(spreads)
    return float((s[-1] - s.mean()) / s.std(ddof=1))


def rules_file(tmp_path, hook_url, tg_url=None, smtp=None, name="desk") -> str:
    text = [f'ruleset = "{name}"',
            f'[[channel]]\nname = "hook"\nkind = "webhook"\nurl = "{hook_url}/hook"']  # fmt: skip
    chans = ["hook"]
    if tg_url:
        text.append(f'[[channel]]\nname = "tg"\nkind = "telegram"\nurl = "{tg_url}"\n'
                    'chat_id = "-100"\ntoken_env = "TEST_TG_TOKEN"')  # fmt: skip
        chans.append("tg")
    if smtp:
        text.append(
            f'[[channel]]\nname = "mail"\nkind = "email"\nsmtp = "{smtp.address}"\n'
            'from = "alerts@example.com"\nto = ["trader@example.com"]\n'
            f'user_env = "TEST_SMTP_USER"\npassword_env = "TEST_SMTP_PASS"\nca_file = "{smtp.ca_file}"'
        )
        chans.append("mail")
    text.append(
        '[[rule]]\nname = "eth/btc z"\nkind = "zscore"\ny = "ETHUSDT"\nx = "BTCUSDT"\n'
        f'timeframe = "1s"\nabove = {THRESHOLD}\nlookback = 120\nwindow = 60\ncooldown_s = 0\n'
        f"channels = {chans!r}".replace("'", '"')
    )
    path = tmp_path / "alerts.toml"
    path.write_text("\n\n".join(text) + "\n")
    return str(path)


def watch(ex, rules, db, log_path, *extra) -> subprocess.Popen:
    env = {**os.environ, "TEST_TG_TOKEN": TOKEN, "TEST_SMTP_USER": "desk",
           "TEST_SMTP_PASS": PASSWORD}  # fmt: skip
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "backend", "--log-level", "DEBUG", "watch", "--rules", rules,
             "--symbols", "ETHUSDT,BTCUSDT", "--ws-url", ex.ws_url, "--rest-url", ex.rest_url,
             "--db", str(db), "--history-1s", str(HISTORY_S - 20), "--history-bars", "50",
             *extra],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(20)


def assert_no_secret(*texts: bytes) -> None:
    for blob in texts:
        assert TOKEN.encode() not in blob and PASSWORD.encode() not in blob


def db_dump(db) -> bytes:
    with sqlite3.connect(db) as conn:
        return "\n".join(map(str, conn.execute("SELECT * FROM alerts").fetchall())).encode()


@pytest.mark.slow
def test_a_planted_crossing_reaches_all_three_receivers_within_2s_once(
    tmp_path, exchange_factory, receivers
):
    trades, (bar_ms,) = planted_pair(stream_s=40, jumps=[(25, 3)])
    ex = exchange_factory(trades=trades, speed=1.0, history_s=HISTORY_S)
    hook, tg = receivers.http(), receivers.http()
    smtp = receivers.smtp("desk", PASSWORD)
    db, log = tmp_path / "w.db", tmp_path / "watch.log"
    proc = watch(ex, rules_file(tmp_path, hook.url, tg.url, smtp), db, log)
    try:
        wait_for(lambda: hook.bodies() and tg.received and smtp.messages, 60,
                 lambda: f"the alert at all three receivers; log:\n{log.read_text()[-3000:]}")  # fmt: skip
        # the exchange's clock (the replay's timeline) at each arrival: the bar closed at
        # bar_ms + 1000 on it
        offset_ms = ex.clock_ms() - time.time() * 1000
        wait_for(ex.done.is_set, 40, "the end of the tape")
        wait_for(lambda: ex.clock_ms() > bar_ms + 14_000, 20, "bars after the jump")
        time.sleep(1.5)  # one more evaluation and delivery round after the tape: nothing new
    finally:
        assert stop(proc) == 0
    (body,) = hook.bodies()
    assert body["bar_open_time"] == bar_ms and body["rule"] == "eth/btc z"
    assert body["kind"] == "zscore" and body["symbols"] == ["ETHUSDT", "BTCUSDT"]
    assert body["timeframe"] == "1s" and body["threshold"] == THRESHOLD
    assert body["value"] == pytest.approx(reference_z(trades, bar_ms), abs=1e-6)
    assert "eth/btc z" in body["message"]
    (tg_msg,) = tg.received
    assert tg_msg.path == f"/bot{TOKEN}/sendMessage" and tg_msg.body["chat_id"] == "-100"
    ((mail_at, mail),) = smtp.messages
    subject = " ".join(str(mail["Subject"]).split())  # unfolded
    assert smtp.logins == [True] and " ".join(body["message"].split()) == subject
    for at_s in (hook.received[0].at_s, tg_msg.at_s, mail_at):
        late_ms = at_s * 1000 + offset_ms - (bar_ms + 1000)
        assert 0 <= late_ms <= 2000, late_ms
    stored = open_store(db).alerts("desk")
    assert [a.bar_open_time_ms for a in stored] == [bar_ms]
    assert {c: d["status"] for c, d in stored[0].deliveries.items()} == dict.fromkeys(
        ("hook", "tg", "mail"), "sent"
    )
    assert_no_secret(log.read_bytes(), db_dump(db))


@pytest.mark.slow
def test_a_receiver_down_for_30s_gets_the_alert_when_back(tmp_path, exchange_factory, receivers):
    trades, (bar_ms,) = planted_pair(stream_s=60, jumps=[(15, 3)], seed=12)
    ex = exchange_factory(trades=trades, speed=1.0, history_s=HISTORY_S)
    hook = receivers.http()
    hook.stop()  # down from the start
    db, log = tmp_path / "w.db", tmp_path / "watch.log"
    proc = watch(ex, rules_file(tmp_path, hook.url), db, log)
    try:
        wait_for(lambda: db.exists() and open_store(db).alerts("desk"), 60,
                 lambda: f"the alert recorded; log:\n{log.read_text()[-3000:]}")  # fmt: skip
        recorded = time.monotonic()
        wait_for(lambda: time.monotonic() - recorded >= 30, 31, "30 s down")
        (pending,) = open_store(db).pending_alerts("desk")
        assert pending.deliveries["hook"]["attempts"] >= 3
        assert "refused" in pending.deliveries["hook"]["error"]
        hook.start()
        back = time.monotonic()
        wait_for(lambda: hook.bodies(), 15, "the alert once the receiver is back")
        assert time.monotonic() - back <= 12  # within the longest backoff (10 s)
    finally:
        assert stop(proc) == 0
    assert [b["bar_open_time"] for b in hook.bodies()] == [bar_ms]
    assert b"not delivered" in log.read_bytes()


@pytest.mark.slow
def test_a_killed_and_restarted_watcher_neither_repeats_nor_drops(
    tmp_path, exchange_factory, receivers
):
    # jump 1 while the first watcher runs; it is SIGKILLed once that alert is delivered;
    # jump 2 while no watcher runs; the second watcher catches up on the bars it missed. Jump
    # 1 is out of the 60-bar z window by jump 2 (in it, it would widen the sd to ~7 noise
    # sds, and jump 2 would not cross)
    trades, (first, second) = planted_pair(stream_s=100, jumps=[(20, 3), (85, 3)], seed=13)
    ex = exchange_factory(trades=trades, speed=1.0, history_s=HISTORY_S)
    hook = receivers.http()
    db, log = tmp_path / "w.db", tmp_path / "watch.log"
    rules = rules_file(tmp_path, hook.url)
    a = watch(ex, rules, db, log)
    try:
        wait_for(lambda: hook.bodies(), 60, lambda: f"alert 1; log:\n{log.read_text()[-3000:]}")
        wait_for(lambda: not open_store(db).pending_alerts("desk"), 5, "alert 1 marked sent")
        a.kill()
        a.wait(10)
        assert ex.clock_ms() < second, "the first watcher must be gone before jump 2"
        wait_for(lambda: ex.clock_ms() > second + 6_000, 90, "jump 2 over, unwatched")
        b = watch(ex, rules, db, log)
        try:
            wait_for(lambda: len(hook.bodies()) >= 2, 60,
                     lambda: f"alert 2; log:\n{log.read_text()[-3000:]}")  # fmt: skip
            wait_for(ex.done.is_set, 40, "the end of the tape")
            time.sleep(1.5)
        finally:
            assert stop(b) == 0
    finally:
        stop(a, signal.SIGKILL)
    assert [x["bar_open_time"] for x in hook.bodies()] == [first, second]
    assert [x.bar_open_time_ms for x in open_store(db).alerts("desk")] == [second, first]


def test_a_bad_rules_file_is_one_line_naming_the_line_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nname = "r"\nkind = "price"\nsymbol = "BTCUSDT"\nabove = "high"\n')
    out = subprocess.run(
        [sys.executable, "-m", "backend", "watch", "--rules", str(bad), "--db",
         str(tmp_path / "x.db")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:5: key 'above'" in lines[0], out.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "backend", "watch", "--db", str(tmp_path / "x.db")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and "--rules FILE is required" in missing.stderr


@pytest.mark.parametrize("command", ["watch", "collect"])
@pytest.mark.parametrize("junk", ["", " ", "nan", "-1", "inf", "/no/such/rules.toml", "."])
def test_junk_rules_paths_are_one_line(tmp_path, command, junk):
    if command == "collect" and not junk.strip():
        junk = "-"  # collect takes --rules only when given: an empty value means none
    out = subprocess.run(
        [sys.executable, "-m", "backend", command, f"--rules={junk}", "--db",
         str(tmp_path / "x.db"), "--rest-url", "http://127.0.0.1:9"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr and "error" in out.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything is written


@pytest.mark.parametrize("junk", ["nan", "-1", "inf", ".", "/no/such/dir/a.toml", "bad.toml"])
def test_the_dashboards_junk_rules_paths_are_one_line_and_start_nothing(tmp_path, junk):
    from backend.config import ConfigError
    from backend.engine import Engine, EngineOptions

    (tmp_path / "bad.toml").write_text("[[rule]]\nname = 3\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ConfigError) as info:
            Engine(EngineOptions(source="simulate", db=str(tmp_path / "s.db"), rules=junk))
    finally:
        os.chdir(cwd)
    assert "\n" not in str(info.value) and "--rules" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) in (["bad.toml", "s.db"],
        ["bad.toml", "s.db", "s.db-shm", "s.db-wal"])  # fmt: skip


def test_a_second_watcher_of_the_same_rules_in_one_postgresql_is_refused(
    tmp_path, exchange_factory, receivers, pg_url
):
    trades, _ = planted_pair(stream_s=60, jumps=[])
    ex = exchange_factory(trades=trades, speed=1.0, history_s=HISTORY_S)
    hook = receivers.http()
    rules = rules_file(tmp_path, hook.url)
    log1, log2 = tmp_path / "one.log", tmp_path / "two.log"
    first = watch(ex, rules, pg_url, log1)
    try:
        wait_for(lambda: b"watching 1 rules" in log1.read_bytes(), 60,
                 lambda: f"the first watcher; log:\n{log1.read_text()[-3000:]}")  # fmt: skip
        second = watch(ex, rules, pg_url, log2)
        assert second.wait(30) == 2
        lines = log2.read_text().strip().splitlines()
        assert len(lines) == 1 and "'desk' is already watched" in lines[0], lines
        assert "pairdash-test" not in lines[0]  # the database password stays out too
        assert first.poll() is None  # the first one goes on
    finally:
        assert stop(first) == 0


@pytest.mark.slow
def test_collect_with_rules_alerts_on_the_bars_it_stores(tmp_path, exchange_factory, receivers):
    trades, (bar_ms,) = planted_pair(stream_s=45, jumps=[(30, 3)], seed=14)
    ex = exchange_factory(trades=trades, speed=1.0, history_s=HISTORY_S)
    hook = receivers.http()
    db, log = tmp_path / "c.db", tmp_path / "collect.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend", "collect", "--symbols", "ETHUSDT,BTCUSDT",
             "--ws-url", ex.ws_url, "--rest-url", ex.rest_url, "--db", str(db),
             "--history-1s", str(HISTORY_S - 20), "--history-bars", "50",
             "--rules", rules_file(tmp_path, hook.url)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: hook.bodies(), 90, lambda: f"the alert; log:\n{log.read_text()[-3000:]}")
        wait_for(ex.done.is_set, 40, "the end of the tape")
    finally:
        assert stop(proc) == 0
    (body,) = hook.bodies()
    assert body["bar_open_time"] == bar_ms
    assert body["value"] == pytest.approx(reference_z(trades, bar_ms), abs=1e-6)
    assert b"evaluating 1 alert rules" in log.read_bytes()
