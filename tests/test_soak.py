"""The soak mode, briefly: it runs the exchange and the collector, reports, and ends by itself."""

import subprocess
import sys

from tests.conftest import ROOT


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
