"""SQLite: schema, idempotent upserts, history, clear errors, CSV export."""

import sqlite3

import numpy as np
import pytest

from backend.storage import SCHEMA_VERSION, BarStore, StorageError, bar_rows
from backend.store.records import BAR_COLUMNS
from backend.store.resampling import bars_from_trades
from backend.store.timeframes import TIMEFRAMES_MS
from tests.conftest import trades_batch


@pytest.fixture
def db(tmp_path):
    store = BarStore(tmp_path / "market.db")
    yield store
    store.close()


def sample_bars(tf="1s"):
    batch = trades_batch(
        "BTCUSDT", [(1, 10.0, 1.0, 1_000), (2, 11.0, 2.0, 2_500, True), (3, 9.5, 0.5, 4_200)]
    )
    return bars_from_trades(batch, tf)


def test_schema_matches_the_contract(db, tmp_path):
    conn = sqlite3.connect(tmp_path / "market.db")
    cols = [(r[1], r[2]) for r in conn.execute("PRAGMA table_info(bars)")]
    assert cols == [
        ("symbol", "TEXT"),
        ("timeframe", "TEXT"),
        ("open_time", "INTEGER"),
        ("open", "REAL"),
        ("high", "REAL"),
        ("low", "REAL"),
        ("close", "REAL"),
        ("volume", "REAL"),
        ("quote_volume", "REAL"),
        ("trades", "INTEGER"),
        ("taker_buy_volume", "REAL"),
    ]
    pk = [r[1] for r in sorted(conn.execute("PRAGMA table_info(bars)"), key=lambda r: r[5]) if r[5]]
    assert pk == ["symbol", "timeframe", "open_time"]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_upsert_is_idempotent_and_updates_open_bars(db):
    bars = sample_bars()
    assert db.upsert([bars]) == len(bars) == 4
    assert db.upsert([bars]) == 0  # saving twice changes nothing
    # The last bar was open; it closes with one more trade and is updated in place.
    closed = bars_from_trades(
        trades_batch(
            "BTCUSDT",
            [
                (1, 10.0, 1.0, 1_000),
                (2, 11.0, 2.0, 2_500, True),
                (3, 9.5, 0.5, 4_200),
                (4, 9.7, 1.0, 4_900),
            ],
        ),
        "1s",
    )
    assert db.upsert([closed]) == 1
    loaded = db.load("BTCUSDT", "1s")
    for name in BAR_COLUMNS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(closed, name), name)
    assert db.count() == 4


def test_history_filters_by_time_and_timeframe(db):
    db.upsert([sample_bars("1s"), sample_bars("1m")])
    assert len(db.load("BTCUSDT", "1m")) == 1
    assert db.load("BTCUSDT", "1s", since_ms=2_000, until_ms=3_000).open_time.tolist() == [
        2_000,
        3_000,
    ]
    assert len(db.load("ETHUSDT", "1s")) == 0
    with pytest.raises(ValueError):
        db.load("BTCUSDT", "2h")


def test_hostile_symbol_text_is_data_not_sql(db):
    evil = "X'); DROP TABLE bars; --"
    bars = sample_bars()
    bars = type(bars)(evil, "1s", *(getattr(bars, n) for n in BAR_COLUMNS))
    db.upsert([bars])
    assert db.symbols() == [evil] and db.count() == 4


def test_locked_database_gives_a_clear_error_and_keeps_nothing_half_written(tmp_path):
    path = tmp_path / "locked.db"
    db = BarStore(path, busy_timeout_s=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked"):
            db.upsert([sample_bars()])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert db.upsert([sample_bars()]) == 4  # retry after the lock is released
    db.close()


def test_read_only_connection_is_explained(tmp_path):
    path = tmp_path / "ro.db"
    BarStore(path).close()
    db = BarStore(path)
    db._conn.execute("PRAGMA query_only = ON")  # a read-only database, whatever the user
    with pytest.raises(StorageError, match="read-only"):
        db.upsert([sample_bars()])
    db.close()


def test_disk_full_is_explained_and_the_pending_bars_are_saved_on_retry(tmp_path, dec_trades):
    """A full disk (simulated with SQLite's page limit) fails the whole flush, the database
    stays as it was, and the next flush after space is freed writes every pending bar."""
    from backend.storage.persistence import BarFlusher
    from backend.store.tick_store import TickStore

    db = BarStore(tmp_path / "full.db")
    store = TickStore(["ETHUSDT"])
    store.ingest(dec_trades["ETHUSDT"])
    (pages,) = db._conn.execute("PRAGMA page_count").fetchone()
    db._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    flusher = BarFlusher(store, db)
    assert flusher.flush() == 0
    assert "disk full" in flusher.last_error
    assert db.count() == 0 and db.resume_points() == {}
    db._conn.execute("PRAGMA max_page_count = 1073741823")
    written = flusher.flush()
    expected = sum(len(store.bars("ETHUSDT", tf)) for tf in TIMEFRAMES_MS)
    assert written == expected == db.count() and flusher.last_error is None
    assert list(db.resume_points()) == ["ETHUSDT"]
    assert db._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


_WRITER = """
import sys
from backend.storage import BarStore
from backend.store.resampling import bars_from_trades
from tests.conftest import trades_batch
db = BarStore(sys.argv[1], busy_timeout_s=10)
symbol, rounds = sys.argv[2], int(sys.argv[3])
for k in range(rounds):
    rows = [(i, 10.0 + k + i % 7, 1.0, 1_000 * i) for i in range(1, 301)]
    db.upsert([bars_from_trades(trades_batch(symbol, rows), "1s")])
db.close()
"""


def test_two_processes_saving_to_one_database_corrupt_nothing(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "shared.db"
    BarStore(path).close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), symbol, "40"],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for symbol in ("AAAUSDT", "BBBUSDT")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    db = BarStore(path)
    assert db._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for symbol in ("AAAUSDT", "BBBUSDT"):
        bars = db.load(symbol, "1s")
        assert len(bars) == 300  # every round rewrote the same 300 bars in place
        # The last round's values (k = 39) won, whole: no mix of two rounds in one save.
        np.testing.assert_array_equal(bars.close, [10.0 + 39 + i % 7 for i in range(1, 301)])
    db.close()


def test_resume_points_are_saved_with_their_bars_or_not_at_all(tmp_path):
    from backend.store.records import ResumePoint

    path = tmp_path / "locked.db"
    db = BarStore(path, busy_timeout_s=0.2)
    point = ResumePoint("BTCUSDT", 4_000, 3)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked"):
            db.upsert([sample_bars()], [point])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert db.count() == 0 and db.resume_points() == {}
    assert db.upsert([sample_bars()], [point]) == 4
    saved = db.resume_points()["BTCUSDT"]
    assert (saved.open_time_ms, saved.from_agg_id) == (4_000, 3) and saved.saved_at_ms > 0
    db.close()


def test_a_version_1_database_is_migrated_in_place(tmp_path):
    path = tmp_path / "v1.db"
    db = BarStore(path)
    db.upsert([sample_bars()])
    db._conn.execute("DROP TABLE resume_points")
    db._conn.execute("PRAGMA user_version = 1")
    db.close()
    db = BarStore(path)
    assert db.count() == 4 and db.resume_points() == {}
    assert db._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


V3_BARS = (  # the bars table as schema version 3 made it: three timeframes
    "CREATE TABLE bars (symbol TEXT NOT NULL, timeframe TEXT NOT NULL CHECK (timeframe IN "
    "('1s', '1m', '5m')), open_time INTEGER NOT NULL, open REAL, high REAL, low REAL, close REAL, "
    "volume REAL, quote_volume REAL, trades INTEGER, taker_buy_volume REAL, "
    "PRIMARY KEY (symbol, timeframe, open_time)) WITHOUT ROWID"
)


def test_a_version_3_database_is_migrated_in_place_to_every_timeframe(tmp_path, dec_trades):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(V3_BARS)
    minutes = bars_from_trades(dec_trades["ETHUSDT"], "1m")
    conn.executemany(f"INSERT INTO bars VALUES ({', '.join('?' * 11)})", list(bar_rows(minutes)))
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    with pytest.raises(sqlite3.IntegrityError):  # what an old table does with a 1h bar
        conn.execute("INSERT INTO bars (symbol, timeframe, open_time) VALUES ('X', '1h', 0)")
    conn.close()
    db = BarStore(path)
    assert db._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.load("ETHUSDT", "1m").to_frame().equals(minutes.to_frame())  # nothing lost
    hours = bars_from_trades(dec_trades["ETHUSDT"], "1h")
    assert db.upsert([hours]) == len(hours) == 1
    assert db.load("ETHUSDT", "1h").to_frame().equals(hours.to_frame())
    db.close()
    assert BarStore(path).count() == len(minutes) + 1  # opening it again changes nothing


def test_funding_rates_are_stored_once_and_read_back_in_time_order(tmp_path):
    from backend.store.records import FundingEvents

    db = BarStore(tmp_path / "f.db")
    events = FundingEvents("BTCUSDT", np.array([0, 28_800_000, 57_600_000]),
                           np.array([1e-4, -2e-4, 3e-5]))  # fmt: skip
    assert db.upsert_funding(events) == 3
    assert db.upsert_funding(events) == 0  # the same rates again: nothing written
    changed = FundingEvents("BTCUSDT", np.array([28_800_000]), np.array([5e-4]))
    assert db.upsert_funding(changed) == 1
    back = db.load_funding("BTCUSDT", 1, 2**40)
    assert back.time_ms.tolist() == [28_800_000, 57_600_000] and back.rate.tolist() == [5e-4, 3e-5]
    assert len(db.load_funding("ETHUSDT").time_ms) == 0
    db.close()
