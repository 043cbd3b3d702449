"""``python -m backend import`` against the local exchange's data.binance.vision tree: files
verified against their checksums, fallbacks (monthly -> daily -> REST), header and no-header
files, microsecond times, resumed after a kill, a re-run that changes nothing, bad arguments."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from backend.exchange.sources import Simulator
from backend.feed.vision import VisionFile, checksum_of, plan, read_klines, write_klines
from backend.storage import BarStore
from backend.store.records import BAR_COLUMNS, Bars
from tests.conftest import ROOT, assert_bars_equal, pair_bars, wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
TODAY = dt.datetime.now(dt.UTC).date()
# Two whole months back, and the days since: monthly files for the months, daily ones after.
START = (TODAY.replace(day=1) - dt.timedelta(days=40)).replace(day=1)
END = TODAY - dt.timedelta(days=1)


@pytest.fixture
def deep_exchange(exchange_factory):
    """Simulated symbols with ~100 days of 1m bars before two days of trades."""
    return exchange_factory(simulator=Simulator(SYMBOLS, seed=5), history_s=2 * 86_400,
                            deep_days=100)  # fmt: skip


def run_import(ex, db, *extra, timeframes="1h,1d", start=START, end=END, **kw):
    argv = [sys.executable, "-m", "backend", "import", "--symbols", ",".join(SYMBOLS),
            "--timeframes", timeframes, "--start", str(start), "--end", str(end),
            "--vision-url", ex.rest_url, "--rest-url", ex.rest_url, "--db", str(db), *extra]  # fmt: skip
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, **kw)


def reference(ex, symbol: str, tf: str, start=START, end=END) -> Bars:
    """The exchange's own bars of the asked days (what its REST klines serve)."""
    first = plan(symbol, tf, start, start)[0].start_ms
    last = plan(symbol, tf, end, end)[-1].end_ms
    bars = ex._pub[symbol].bars(tf, first)
    return bars.slice(0, int((bars.open_time < last).sum()))


def assert_imported(ex, db_path, timeframes=("1h", "1d")) -> None:
    db = BarStore(db_path)
    try:
        for symbol in SYMBOLS:
            for tf in timeframes:
                ref = reference(ex, symbol, tf)
                assert len(ref) > 24, (symbol, tf)
                assert_bars_equal(db.load(symbol, tf).to_frame(), ref.to_frame(), f"{symbol} {tf}")
    finally:
        db.close()


def summary(out: str) -> str:
    return " ".join(line for line in out.splitlines() if line.startswith("# import:"))


def test_every_bar_equals_the_exchange_and_a_rerun_changes_nothing(deep_exchange, tmp_path):
    db = tmp_path / "m.db"
    first = run_import(deep_exchange, db)
    assert first.returncode == 0, first.stderr[-2000:]
    months = sum(f.monthly for f in plan("BTCUSDT", "1h", START, END))
    assert months >= 1
    assert "0 monthly -> daily, 0 daily -> REST; refused files 0" in summary(first.stdout)
    assert_imported(deep_exchange, db)
    asked = [f for f in deep_exchange.vision_faults.requests if f.endswith(".zip")]
    again = run_import(deep_exchange, db)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "files 0 stored" in summary(again.stdout) and "rows written 0" in summary(again.stdout)
    # Nothing was downloaded again: every file's bars were stored.
    assert [f for f in deep_exchange.vision_faults.requests if f.endswith(".zip")] == asked


def test_missing_and_corrupt_files_fall_back_and_are_never_stored(deep_exchange, tmp_path):
    files = plan("BTCUSDT", "1h", START, END)
    month = next(f for f in files if f.monthly)
    day = next(f for f in files if not f.monthly)
    eth_month = VisionFile("ETHUSDT", "1h", month.period)
    faults = deep_exchange.vision_faults
    faults.missing |= {month.name, day.name}  # a missing monthly file, a missing daily file
    faults.corrupt.add(eth_month.name)  # fails its checksum
    one_day = month.days()[3]
    faults.missing.add(one_day.name)  # ... and one of the missing month's days: REST then
    db = tmp_path / "m.db"
    done = run_import(deep_exchange, db, timeframes="1h")
    assert done.returncode == 0, done.stderr[-2000:]
    text = summary(done.stdout)
    assert "2 monthly -> daily, 2 daily -> REST; refused files 1" in text, text
    assert eth_month.name in text
    assert_imported(deep_exchange, db, ("1h",))
    # The days of the corrupt month came from their own files, not from the refused one.
    days_asked = {p.rsplit("/", 1)[1] for p in faults.requests}
    assert {d.name for d in eth_month.days()} <= days_asked


@pytest.mark.parametrize(("header", "micros"), [(False, False), (True, True), (False, True)])
def test_files_with_or_without_header_and_in_microseconds(deep_exchange, tmp_path, header, micros):
    deep_exchange.vision_faults.header = header
    deep_exchange.vision_faults.micros = micros
    start = END - dt.timedelta(days=3)
    db = tmp_path / "m.db"
    done = run_import(deep_exchange, db, timeframes="15m", start=start)
    assert done.returncode == 0, done.stderr[-2000:]
    db_ = BarStore(db)
    for symbol in SYMBOLS:
        ref = reference(deep_exchange, symbol, "15m", start)
        assert len(ref) == 4 * 96
        assert_bars_equal(db_.load(symbol, "15m").to_frame(), ref.to_frame(), symbol)
    db_.close()


def test_a_killed_import_resumes_where_it_stopped(deep_exchange, tmp_path):
    db = tmp_path / "m.db"
    deep_exchange.vision_faults.delay_s = 0.03  # slow enough to be killed half-way
    argv_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend", "import", "--symbols", ",".join(SYMBOLS),
         "--timeframes", "5m,1h", "--start", str(START), "--end", str(END),
         "--vision-url", deep_exchange.rest_url, "--rest-url", deep_exchange.rest_url,
         "--db", str(db)],
        cwd=ROOT, env=argv_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def some_stored() -> bool:
        try:
            return db.exists() and BarStore(db).count() > 0
        except Exception:
            return False

    wait_for(some_stored, 60, "the first files to be stored")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deep_exchange.vision_faults.delay_s = 0.0
    partial = BarStore(db).count()
    full = sum(len(reference(deep_exchange, s, tf)) for s in SYMBOLS for tf in ("5m", "1h"))
    assert 0 < partial < full  # killed half-way
    # Requests the killed import sent before it died may still reach the exchange: count
    # them once the exchange has answered all it received (its log unchanged for 0.3 s).
    log = deep_exchange.vision_faults.requests
    last = {"n": -1, "since": time.monotonic()}

    def quiet() -> bool:
        if len(log) != last["n"]:
            last.update(n=len(log), since=time.monotonic())
        return time.monotonic() - last["since"] >= 0.3

    wait_for(quiet, 10, "the exchange to answer what it received")
    n = len([r for r in deep_exchange.vision_faults.requests if r.endswith(".zip")])
    done = run_import(deep_exchange, db, timeframes="5m,1h")
    assert done.returncode == 0, done.stderr[-2000:]
    stored, skipped = map(
        int, re.search(r"files (\d+) stored, (\d+) already", done.stdout).groups()
    )
    total = 2 * (len(plan("BTCUSDT", "5m", START, END)) + len(plan("BTCUSDT", "1h", START, END)))
    assert skipped >= 1 and stored + skipped == total, done.stdout
    fetched = [r for r in deep_exchange.vision_faults.requests if r.endswith(".zip")][n:]
    klines = [r for r in fetched if "/klines/" in r]
    assert len(klines) == stored  # the rerun fetched only the kline files not stored yet
    assert_imported(deep_exchange, db, ("5m", "1h"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--start", "2026-13-01"], "--start must be a day YYYY-MM-DD"),
        (["--end", "yesterday"], "--end must be a day YYYY-MM-DD"),
        (["--start", "2026-10-02", "--end", "2026-10-01"], "is before --start"),
        (["--timeframes", "1s"], "--timeframes '1s': choose from 1m, 5m, 15m, 1h, 4h, 1d"),
        (["--timeframes", ","], "--timeframes"),
        (["--symbols", "NOPEUSDT"], "unknown symbol(s) NOPEUSDT"),
        (["--vision-url", "ftp://x"], "--vision-url"),
        (["--vision-url", ""], "--vision-url must start with http"),
        (["--vision-url", "nan"], "--vision-url must start with http"),
        (["--timeframes", "-1"], "--timeframes '-1': choose from"),
        (["--start", ""], "--start must be a day YYYY-MM-DD"),
        (["--end", "inf"], "--end must be a day YYYY-MM-DD"),
        (["--start", "2999-01-01", "--end", "2999-01-02"], "is in the future"),
    ],
)
def test_bad_arguments_are_one_line(deep_exchange, tmp_path, args, says):
    base = {"--start": str(START), "--end": str(END), "--symbols": "BTCUSDT",
            "--timeframes": "1h"}  # fmt: skip
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [sys.executable, "-m", "backend", "import", "--vision-url", deep_exchange.rest_url,
            "--rest-url", deep_exchange.rest_url, "--db", str(tmp_path / "m.db")]  # fmt: skip
    for flag, value in base.items():
        argv += [flag, value]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_unreachable_sources_are_one_line(tmp_path):
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    done = subprocess.run(
        [sys.executable, "-m", "backend", "import", "--symbols", "BTCUSDT", "--timeframes", "1h",
         "--start", str(END), "--end", str(END), "--vision-url", dead, "--rest-url", dead,
         "--db", str(tmp_path / "m.db")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0] and "Traceback" not in done.stderr


def test_a_kline_file_reads_back_what_was_written_and_bad_files_are_named():
    yb, _ = pair_bars(n=1440)  # one UTC day of minutes from 2025-12-01
    t = 1_764_547_200_000 + np.arange(1440, dtype=np.int64) * 60_000
    minutes = Bars("YYY", "1m", t, *(getattr(yb, c) for c in BAR_COLUMNS[1:]))
    day = VisionFile("YYY", "1m", "2025-12-01")
    for header in (True, False):
        for micros in (True, False):
            back = read_klines(write_klines(minutes, header, micros), day)
            assert back.to_frame().equals(minutes.to_frame())
    body = write_klines(minutes)
    with pytest.raises(ValueError, match="not a kline zip"):
        read_klines(body[:100], day)
    with pytest.raises(ValueError, match="outside 2025-12-02"):
        read_klines(body, VisionFile("YYY", "1m", "2025-12-02"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.csv", "1764547200000,1,1,1,nan,1,0,1,1,1,0,0\n")
    with pytest.raises(ValueError, match="not finite"):
        read_klines(buf.getvalue(), day)
    with pytest.raises(ValueError, match="CHECKSUM"):
        checksum_of("abc  YYY-1m-2025-12-01.zip", day.name)
    assert np.all(np.diff(minutes.open_time) == 60_000)


def test_the_plan_covers_every_asked_day_once_with_whole_months_as_monthly_files():
    files = plan("X", "1h", dt.date(2025, 1, 30), dt.date(2025, 4, 2))
    names = [f.period for f in files]
    assert names == ["2025-01-30", "2025-01-31", "2025-02", "2025-03", "2025-04-01", "2025-04-02"]
    days = [d.period for f in files for d in f.days()]
    assert len(days) == len(set(days)) == (dt.date(2025, 4, 2) - dt.date(2025, 1, 30)).days + 1
    assert files[2].expected_bars() == 28 * 24 and files[2].url("https://v/").endswith(
        "data/futures/um/monthly/klines/X/1h/X-1h-2025-02.zip")  # fmt: skip


def test_funding_rates_come_from_the_monthly_files_or_rest_into_the_funding_table(
    deep_exchange, tmp_path
):
    month = next(f for f in plan("BTCUSDT", "1h", START, END) if f.monthly)
    deep_exchange.vision_faults.missing.add(f"ETHUSDT-fundingRate-{month.period}.zip")
    db = tmp_path / "m.db"
    done = run_import(deep_exchange, db, timeframes="1d")
    assert done.returncode == 0, done.stderr[-2000:]
    store = BarStore(db)
    try:
        for symbol in SYMBOLS:
            # Independent: the exchange's own fundingRate history over the imported months.
            start = plan(symbol, "1d", START, START)[0].start_ms
            got = store.load_funding(symbol, start, 2**62)
            ref = deep_exchange.funding.history(symbol, start, int(got.time_ms[-1]), 10_000)
            assert len(got.time_ms) > 60
            np.testing.assert_array_equal(got.time_ms, ref.time_ms)
            np.testing.assert_allclose(got.rate, np.round(ref.rate, 8), rtol=0, atol=1e-15)
    finally:
        store.close()
    # The missing month and the month still running came over REST; the rest from files.
    assert "months over REST" in summary(done.stdout)
    again = run_import(deep_exchange, db, timeframes="1d")
    assert "funding rates written 0" in summary(again.stdout), again.stdout
