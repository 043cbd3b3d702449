"""The soak mode, briefly: it runs the exchange and the collector, reports, and ends by itself."""

import subprocess
import sys

import pytest

from backend.store.timeframes import TIMEFRAMES_MS
from tests.conftest import ROOT


@pytest.mark.slow
def test_soak_reports_rising_ticks_and_ends_by_itself(shared_data):
    proc = subprocess.run(
        [sys.executable, "-m", "backend", "--log-level", "WARNING", "soak",
         "--minutes", "0.1", "--rate", "2000", "--report-every", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("# soak: 2,000 msg/s") and lines[1].startswith("minute  rss_MiB")
    rows = [line.split() for line in lines[2:]]
    assert len(rows) >= 3
    ticks = [int(r[2].replace(",", "")) for r in rows]
    assert ticks == sorted(ticks) and ticks[-1] > ticks[0] > 0
    assert all(r[-1] == "-" for r in rows)  # no flush error
    assert all(r[7] == "0" and r[8] == "0" for r in rows[-1:])  # no open gap, no reconnect


def test_soak_into_postgresql_names_the_url_without_its_password(shared_data, pg_cluster):
    import psycopg

    from tests.conftest import PG_PASSWORD

    url = pg_cluster.url(pg_cluster.database())
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend", "--log-level", "WARNING", "soak",
         "--minutes", "0.1", "--rate", "2000", "--report-every", "2", "--db", url],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert PG_PASSWORD not in out + err
    assert f"db {url.replace(':' + PG_PASSWORD, '')}" in out.splitlines()[0]
    with psycopg.connect(url) as conn:
        tfs = conn.execute("SELECT symbol, timeframe, count(*) FROM bars GROUP BY 1, 2").fetchall()
        who = conn.execute("SELECT symbol, pid, open_gaps FROM collectors ORDER BY 1").fetchall()
    assert {(s, tf) for s, tf, n in tfs if n > 0} == {
        (s, tf) for s in ("BTCUSDT", "ETHUSDT") for tf in TIMEFRAMES_MS
    }
    assert who == [("BTCUSDT", proc.pid, 0), ("ETHUSDT", proc.pid, 0)]  # the soak is the writer


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(c) for c in fh.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _started_soak() -> tuple[subprocess.Popen, int]:
    """A soak that has started its exchange child; (the soak, the child's pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend", "--log-level", "WARNING", "soak", "--minutes", "5",
         "--rate", "500", "--report-every", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().startswith("# soak:")  # printed once the child is up
    children = _children(proc.pid)
    assert len(children) == 1
    return proc, children[0]


def test_a_soak_stops_on_sigterm_within_2_s_and_takes_its_exchange_with_it():
    import signal
    import time

    proc, child = _started_soak()
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 0 and time.monotonic() - sent < 2 + 1  # + interpreter exit
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_killed_soak_leaves_no_exchange_behind():
    import signal
    import time

    proc, child = _started_soak()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)  # the child was told when its parent died
