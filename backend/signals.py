"""SIGINT/SIGTERM as a ``threading.Event`` for the long-running commands (collect, serve,
soak), and children that end with their parent."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM set ``stop``; returns a function that restores the previous
    handlers. A no-op outside the main thread (Python delivers signals only there).

    The handler runs in the main thread between two bytecodes, possibly inside
    ``stop.wait()`` while that holds the event's lock: setting the event there would wait on a
    lock its own thread holds, for ever. So the handler hands ``set()`` to a short-lived thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame) -> None:
        threading.Thread(target=stop.set, name="stop-signal", daemon=True).start()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def die_with_parent() -> None:
    """For ``subprocess.Popen(preexec_fn=...)``: the child gets SIGTERM when its parent dies,
    even by SIGKILL, so it never outlives the command that started it (Linux ``prctl``; a
    no-op where it is not available)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
