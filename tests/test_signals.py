"""SIGTERM while the main thread waits on the stop event: it stops, never hangs."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# The worst moment for a signal: the main thread holds the event's lock, as it does inside
# stop.wait() just before it sleeps and just after it wakes. A handler that sets the event
# right there waits on that lock for ever.
_AT_THE_WORST_MOMENT = """
import signal, threading
from backend.signals import stop_on_signals

stop = threading.Event()
restore = stop_on_signals(stop)
with stop._cond:
    signal.raise_signal(signal.SIGTERM)
assert stop.wait(10), "the signal did not set the event"
restore()
assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
print("stopped")
"""


def test_a_signal_landing_inside_the_wait_sets_the_event_without_a_deadlock():
    done = subprocess.run(
        [sys.executable, "-c", _AT_THE_WORST_MOMENT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stderr


def test_the_plain_handler_it_replaces_deadlocks_there():
    """The same moment with ``signal.signal(SIGTERM, lambda *_: stop.set())``: it hangs (the
    reason for the helper), so the child is ended by the timeout."""
    plain = _AT_THE_WORST_MOMENT.replace(
        "restore = stop_on_signals(stop)",
        "restore = lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
        "signal.signal(signal.SIGTERM, lambda *_: stop.set())",
    )
    proc = subprocess.Popen([sys.executable, "-c", plain], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        try:
            proc.wait(3)
            hung = False
        except subprocess.TimeoutExpired:
            hung = True
    finally:
        proc.kill()
        proc.wait(10)
    assert hung


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("command", ["serve", "collect"])
def test_every_long_running_command_ends_within_2_s_of_a_stop_signal(
    command, sig, exchange_factory, tmp_path
):
    """``serve`` and ``collect`` (soak: tests/test_soak.py) end, exit 0, within 2 s of
    SIGTERM or SIGINT, however long their --duration (a collector saves once more first)."""
    import os
    import time

    from backend.exchange.sources import Simulator
    from tests.conftest import collect_argv, wait_for

    if command == "serve":
        argv = [sys.executable, "-m", "backend", "serve", "--source", "simulate",
                "--history", "60", "--duration", "600"]  # fmt: skip
        ready = "LOCAL_EXCHANGE_PORT="
    else:
        ex = exchange_factory(simulator=Simulator(["BTCUSDT", "ETHUSDT"]))
        argv = collect_argv(ex, tmp_path / "m.db", "--duration", "600", "--history-bars", "10",
                            "--history-1s", "0")  # fmt: skip
        ready = "collecting"
    proc = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        seen: list[str] = []

        def started() -> bool:
            seen.append(proc.stdout.readline())
            return ready in seen[-1]

        wait_for(started, 60, lambda: f"{command} to start: {''.join(seen)[-500:]}")
        sent = time.monotonic()
        proc.send_signal(sig)
        proc.wait(10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0 and took < 2.0, (proc.returncode, took)
