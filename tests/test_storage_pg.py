"""The PostgreSQL store against a real, throwaway PostgreSQL server on 127.0.0.1: the same
bars as SQLite, idempotent bulk upserts, one transaction for bars and resume points, one
writer per symbol, and one-line errors that never show the password."""

from __future__ import annotations

import dataclasses
import socket

import numpy as np
import pytest

from backend.storage import SCHEMA_VERSION, ClaimLost, StorageError, open_store
from backend.storage.postgres import PgBarStore, redact
from backend.store.records import TIMEFRAMES_MS, Bars, ResumePoint
from backend.store.resampling import bars_from_trades
from tests.conftest import PG_PASSWORD, assert_bars_equal, reference_bars


def test_bars_round_trip_equal_sqlite_and_saving_twice_writes_nothing(pg_url, dec_trades, tmp_path):
    pg, lite = open_store(pg_url), open_store(tmp_path / "m.db")
    assert isinstance(pg, PgBarStore)
    bars = [bars_from_trades(t, tf) for t in dec_trades.values() for tf in TIMEFRAMES_MS]
    total = sum(len(b) for b in bars)
    assert pg.upsert(bars) == lite.upsert(bars) == total
    assert pg.upsert(bars) == lite.upsert(bars) == 0  # nothing changed: nothing written
    for symbol, tape in dec_trades.items():
        for tf, ms in TIMEFRAMES_MS.items():
            stored = pg.load(symbol, tf)
            assert_bars_equal(stored.to_frame(), reference_bars(tape, ms), f"{symbol} {tf}")
            assert stored.to_frame().equals(lite.load(symbol, tf).to_frame())
    # One bar's close changes: exactly one row is written.
    one = bars[0]
    close = one.close.copy()
    close[3] += 1.0
    assert pg.upsert([dataclasses.replace(one, close=close)]) == 1
    assert pg.load(one.symbol, one.timeframe).close[3] == close[3]
    assert pg.count() == total and sorted(pg.symbols()) == sorted(dec_trades)
    pg.close()
    lite.close()


def test_bars_and_resume_points_commit_together_or_not_at_all(pg_url):
    db = open_store(pg_url)
    good = Bars("BTCUSDT", "1s", *(np.array([v]) for v in (1000, 1.0, 2, 0.5, 1.5, 3, 4.5, 2, 1)))
    bad = dataclasses.replace(good, timeframe="2m")  # refused by the table's CHECK
    point = ResumePoint("BTCUSDT", 1000, 42)
    with pytest.raises(StorageError, match="database error on postgresql://postgres@"):
        db.upsert([good, bad], [point])
    assert db.count() == 0 and db.resume_points() == {}  # nothing half-written
    assert db.upsert([good], [point]) == 1
    saved = db.resume_points()["BTCUSDT"]
    assert (saved.open_time_ms, saved.from_agg_id) == (1000, 42)
    db.close()


def test_one_writer_per_symbol_released_with_its_connection(pg_url):
    first, second = open_store(pg_url), open_store(pg_url)
    first.claim(["BTCUSDT", "ETHUSDT"])
    second.claim(["SOLUSDT"])  # other symbols: fine
    with pytest.raises(StorageError) as refused:
        second.claim(["ETHUSDT"])
    host = socket.gethostname()
    assert f"ETHUSDT is already being collected into {redact(pg_url)} by {host} pid" in str(
        refused.value
    )
    first.close()  # a collector that ends (or dies) releases its symbols with its connection
    second.claim(["ETHUSDT"])
    second.close()


def test_the_schema_is_created_once_and_its_version_kept(pg_url, pg_cluster):
    open_store(pg_url).close()
    open_store(pg_url).close()  # a second open finds the tables
    pg_cluster.sql("UPDATE schema_version SET version = 99", db=pg_url.rsplit("/", 1)[1])
    with pytest.raises(
        StorageError, match=f"has schema version 99; this program knows {SCHEMA_VERSION}"
    ):
        open_store(pg_url)


def test_a_version_2_database_gains_the_collectors_gap_columns(pg_url, pg_cluster):
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    for statement in (  # the tables as version 2 made them, with a claimed symbol
        "CREATE TABLE collectors (symbol TEXT PRIMARY KEY, host TEXT NOT NULL, "
        "pid INTEGER NOT NULL, started_at BIGINT NOT NULL)",
        "INSERT INTO collectors VALUES ('BTCUSDT', 'old', 1, 5)",
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        "INSERT INTO schema_version VALUES (2)",
    ):
        pg_cluster.sql(statement, db=name)
    open_store(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        row = conn.execute("SELECT host, pid, open_gaps, missing_ids FROM collectors").fetchone()
    assert row == ("old", 1, None, None)


def _drop(pg_cluster, backend_pid: int) -> None:
    """The server ends one connection (as a restart or a network cut does), and waits until
    that backend is gone, its advisory locks with it."""
    pg_cluster.sql(f"SELECT pg_terminate_backend({backend_pid}, 10000)")


def test_a_lost_lock_connection_is_taken_again_and_nothing_written_meanwhile(pg_url, pg_cluster):
    name = pg_url.rsplit("/", 1)[1]
    first = open_store(pg_url)
    first.claim(["BTCUSDT"])
    assert first.check_claims() is True  # held: nothing to do
    # The connection drops and the server takes no new ones for a while: the locks are not held.
    pg_cluster.sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    _drop(pg_cluster, first._claims.info.backend_pid)
    assert first.check_claims() is False
    pg_cluster.sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    assert first.check_claims() is True  # taken again: a second writer is refused
    second = open_store(pg_url)
    with pytest.raises(ClaimLost, match="BTCUSDT is already being collected"):
        second.claim(["BTCUSDT"])
    second.close()
    first.close()


def test_bad_servers_and_logins_are_one_line_errors_without_the_password(pg_cluster):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    unreachable = f"postgresql://bob:hunter2@127.0.0.1:{closed_port}/x"
    db = pg_cluster.database()
    wrong = pg_cluster.url(db, password="not-it")
    pg_cluster.sql(f"CREATE ROLE reader LOGIN PASSWORD '{PG_PASSWORD}'")
    no_create = pg_cluster.url(db, user="reader")  # PostgreSQL 15+: no CREATE on public
    cases = [
        (unreachable, f"cannot reach PostgreSQL at postgresql://bob@127.0.0.1:{closed_port}/x"),
        (wrong, "cannot log in to postgresql://postgres@127.0.0.1:"),
        (no_create, "no permission in postgresql://reader@127.0.0.1:"),
    ]
    for url, message in cases:
        with pytest.raises(StorageError) as err:
            open_store(url)
        text = str(err.value)
        assert message in text and "\n" not in text, text
        assert "hunter2" not in text and "not-it" not in text and PG_PASSWORD not in text


def test_redact_drops_the_password_wherever_it_is():
    assert redact("postgresql://u:p@h:5/d") == "postgresql://u@h:5/d"
    assert redact("postgresql://h/d?password=p&sslmode=off") == "postgresql://h/d?sslmode=off"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"


def _collect_argv(ex, url: str, symbol: str) -> list[str]:
    from tests.conftest import collect_argv

    argv = collect_argv(ex, url, "--flush-interval", "0.5")
    argv[argv.index("--symbols") + 1] = symbol
    return argv


def _collect(ex, url: str, symbol: str):
    import os
    import subprocess

    from tests.conftest import ROOT

    return subprocess.Popen(
        _collect_argv(ex, url, symbol), cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _stored_trades(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        try:
            rows = conn.execute(
                "SELECT symbol, SUM(trades) FROM bars WHERE timeframe = '1s' GROUP BY symbol"
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return {s: int(n) for s, n in rows}


def test_two_collectors_one_database_through_faults_and_a_kill(
    exchange_factory, dec_trades, pg_url
):
    """Two collectors (one symbol each) write into one PostgreSQL database at once, through
    drops with skipped trades, duplicates and junk; one is killed with SIGKILL and restarted; a
    third asked for a symbol already taken refuses. Every bar equals pandas bars of the trades
    the exchange published."""
    import os
    import signal
    import subprocess

    from backend.exchange.server import FaultPlan
    from tests.conftest import ROOT, wait_for

    faults = FaultPlan(drop_every=3_000, skip_on_drop=150, duplicate_every=250, malformed_every=400)
    ex = exchange_factory(trades=dec_trades, speed=12.0, faults=faults)
    btc, eth = _collect(ex, pg_url, "BTCUSDT"), _collect(ex, pg_url, "ETHUSDT")
    procs = [btc, eth]
    try:
        wait_for(lambda: _stored_trades(pg_url).get("ETHUSDT", 0) > 3_000, 30, "a first flush")
        eth.send_signal(signal.SIGKILL)
        eth.wait(10)
        taken = subprocess.run(
            _collect_argv(ex, pg_url, "BTCUSDT"), capture_output=True, text=True, timeout=60,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert taken.returncode == 2
        line = taken.stderr.strip().splitlines()[-1]
        assert f"BTCUSDT is already being collected into {redact(pg_url)} by " in line
        assert f"pid {btc.pid}" in line and PG_PASSWORD not in taken.stderr
        at_kill = len(ex.published("ETHUSDT"))
        wait_for(lambda: len(ex.published("ETHUSDT")) > at_kill + 1_000, 30, "trades while down")
        eth = _collect(ex, pg_url, "ETHUSDT")  # its lock went with the killed connection
        procs.append(eth)
        wait_for(ex.done.is_set, 90, "the tape to end")
        expected = {
            s: int((ex.published(s).last_trade_id - ex.published(s).first_trade_id + 1).sum())
            for s in dec_trades
        }
        wait_for(lambda: _stored_trades(pg_url) == expected, 60, "every trade stored")
        for p in (btc, eth):
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0, err[-2000:]
        assert "resuming from aggregate id" in err and ex.stats["drops"] >= 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    db = open_store(pg_url)
    try:
        for symbol in dec_trades:
            published = ex.published(symbol)
            assert len(published) == len(dec_trades[symbol])
            for tf, ms in TIMEFRAMES_MS.items():
                assert_bars_equal(
                    db.load(symbol, tf).to_frame(), reference_bars(published, ms), f"{symbol} {tf}"
                )
    finally:
        db.close()


def test_a_collector_whose_symbol_was_taken_while_its_lock_was_lost_stops(
    exchange_factory, dec_trades, pg_url, pg_cluster
):
    """A collector's lock connection drops while the server refuses new connections; another
    writer takes the symbol meanwhile. When the collector can reconnect it finds the symbol
    taken and stops (exit 2), naming the new writer, instead of writing beside it."""
    import os

    import psycopg

    from tests.conftest import wait_for

    name = pg_url.rsplit("/", 1)[1]
    ex = exchange_factory(trades=dec_trades, speed=4.0)
    proc = _collect(ex, pg_url, "BTCUSDT")
    thief = open_store(pg_url)
    try:
        wait_for(lambda: _stored_trades(pg_url).get("BTCUSDT", 0) > 0, 30, "a first flush")
        thief.claim([])  # its lock connection, opened while the server still takes new ones
        tag = f"pairdash claims {socket.gethostname()}:{proc.pid}"
        with psycopg.connect(pg_url) as conn:
            (backend_pid,) = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (tag,)
            ).fetchone()
        pg_cluster.sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        _drop(pg_cluster, backend_pid)
        thief.claim(["BTCUSDT"])
        pg_cluster.sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2, err[-2000:]
        line = err.strip().splitlines()[-1]
        assert "stopped: BTCUSDT is already being collected into" in line
        assert f"by {socket.gethostname()} pid {os.getpid()}" in line
    finally:
        pg_cluster.sql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        if proc.poll() is None:
            proc.kill()
        thief.close()


def test_the_dashboards_engine_saves_into_postgresql(pg_url):
    from backend.engine import Engine, EngineOptions
    from tests.conftest import wait_for

    engine = Engine(EngineOptions(source="simulate", db=pg_url, history_bars=20, history_1s_s=60))
    try:
        assert engine.health().db_path == redact(pg_url) and PG_PASSWORD not in redact(pg_url)
        wait_for(lambda: engine.health().store.total_ticks > 100, 30, "simulated trades")
        # History in (klines and the 1s history): the bars before now no longer change.
        wait_for(lambda: all(not engine.coverage(tf).notes for tf in ("1s", "1m")), 30, "history")
        written = engine.save()
        db = open_store(pg_url)
        try:
            assert written > 0 and db.count() == written
            for symbol in engine.symbols:
                stored = db.load(symbol, "1m").to_frame().set_index("open_time")
                held = engine.bars(symbol, "1m").to_frame().set_index("open_time")
                # Every saved bar is one the engine holds (the open one may have moved since).
                closed = stored.iloc[:-1]
                assert len(closed) >= 20 and closed.equals(held.loc[closed.index])
        finally:
            db.close()
    finally:
        engine.stop()


def test_a_version_3_database_takes_every_timeframe_after_migrating(pg_url, pg_cluster, dec_trades):
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    for statement in (  # the bars table as version 3 made it, with a bar in it
        "CREATE TABLE bars (symbol TEXT NOT NULL, timeframe TEXT NOT NULL CHECK (timeframe IN "
        "('1s', '1m', '5m')), open_time BIGINT NOT NULL, open DOUBLE PRECISION, "
        "high DOUBLE PRECISION, low DOUBLE PRECISION, close DOUBLE PRECISION, "
        "volume DOUBLE PRECISION, quote_volume DOUBLE PRECISION, trades BIGINT, "
        "taker_buy_volume DOUBLE PRECISION, PRIMARY KEY (symbol, timeframe, open_time))",
        "INSERT INTO bars VALUES ('ETHUSDT', '1m', 0, 1, 1, 1, 1, 1, 1, 1, 1)",
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        "INSERT INTO schema_version VALUES (3)",
    ):
        pg_cluster.sql(statement, db=name)
    db = open_store(pg_url)
    try:
        hours = bars_from_trades(dec_trades["ETHUSDT"], "1h")
        days = bars_from_trades(dec_trades["ETHUSDT"], "1d")
        assert db.upsert([hours, days]) == 2
        assert db.load("ETHUSDT", "1h").to_frame().equals(hours.to_frame())
        assert db.load("ETHUSDT", "1m").open_time.tolist() == [0]  # the old bar kept
    finally:
        db.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_funding_rates_in_postgresql_are_stored_once(pg_url):
    from backend.store.records import FundingEvents

    db = open_store(pg_url)
    try:
        events = FundingEvents("BTCUSDT", np.array([0, 28_800_000]), np.array([1e-4, -2e-4]))
        assert db.upsert_funding(events) == 2
        assert db.upsert_funding(events) == 0
        assert db.load_funding("BTCUSDT").rate.tolist() == [1e-4, -2e-4]
    finally:
        db.close()
