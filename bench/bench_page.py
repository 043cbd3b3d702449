"""What a viewer costs: CPU of the Streamlit server and of Chromium's renderer while a page is
open, ours against a floor page, in the same run.

    python bench/bench_page.py [--seconds 60] [--viewers 1,5] [--symbols 2] [--rate MSGS]

The floor page is the least a live Streamlit page can be here: three ``st.metric`` refreshed
every 0.25 s in a fragment. Ours is ``app.py -- --source simulate`` (2 symbols, history loaded)
on its default view. For each page and viewer count: the server starts, Chromium opens the
page(s) and waits for the first metric, then CPU seconds of the server process and of every
renderer process are read from /proc over ``--seconds``, and each page records, every
animation frame, when its tick counter changed: the worst gap says whether it changed at
least once a second. Prints CPU as a share of one core and the ratios ours/floor.
``--symbols N`` above 2 runs ours on N simulated symbols (with 330 bars of 1m/5m history and a
minute of 1s history, what the scanner's lookback needs): the tick strip's worst gap then says
whether the page keeps up with the whole market. ``--rate N``
feeds ours from a separate local exchange process (``python -m backend serve``, the shared
BTCUSDT/ETHUSDT sample replayed in a loop at N messages a second) instead of the simulation
(~30 a second): its CPU is not counted, as an exchange's is not on a trader's machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TICK = os.sysconf("SC_CLK_TCK")
# The tick counter: the floor page's first st.metric, our strip's "Ticks" card.
FIRST_FIGURE = '[data-testid="stMetricValue"], .pa-card[data-label="Ticks"] .pa-value'

FLOOR_PAGE = """
import time
import streamlit as st

@st.fragment(run_every=0.25)
def strip():
    now = time.time()
    a, b, c = st.columns(3)
    a.metric("Ticks", f"{int(now * 10):,}")
    b.metric("BTCUSDT", f"{90000 + now % 100:,.2f}")
    c.metric("ETHUSDT", f"{3000 + now % 10:,.2f}")

strip()
"""


# Each animation frame, whether the tick counter's text changed (performance.now(), ms): in the
# page, so the gap is what the viewer sees (a frame the page's busy thread could not paint is
# a frame late), not the latency of a browser-driver round trip from here.
RECORD_CHANGES = """selector => {
  window.__changes = [];
  let last = null;
  const frame = () => {
    const el = document.querySelector(selector);
    const text = el && el.textContent;
    if (text !== last) { window.__changes.push(performance.now()); last = text; }
    requestAnimationFrame(frame);
  };
  frame();
}"""


def write_floor_page(folder: str) -> str:
    """The floor page as a script in ``folder``; its path."""
    path = Path(folder) / "floor.py"
    path.write_text(FLOOR_PAGE)
    return str(path)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def renderers() -> list[int]:
    """Chromium renderer processes started by this process (through Playwright's driver), not
    those of any other browser on the machine."""
    parent, renderer = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent[int(entry.name)] = int(stat[1])
        if b"chrom" in cmd and b"--type=renderer" in cmd:
            renderer.add(int(entry.name))
    me = os.getpid()

    def ours(pid: int) -> bool:
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == me:
                return True
        return False

    return sorted(pid for pid in renderer if ours(pid))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(script: str, *options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--", *options],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.read() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{script} did not start")


def measure(script: str, options: list[str], viewers: int, seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    proc, url = serve(script, *options)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                # Every viewer counts as a tab in front: no timer throttling of the others.
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run",
                      "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                      "--disable-backgrounding-occluded-windows"],
            )  # fmt: skip
            pages = [  # one context each: a viewer of its own, as on another machine
                browser.new_context(viewport={"width": 1500, "height": 1200}).new_page()
                for _ in range(viewers)
            ]
            for page in pages:  # with five open, the machine's two cores are the limit
                page.goto(url, timeout=90_000)
                page.locator(FIRST_FIGURE).first.wait_for(timeout=90_000)
            time.sleep(15)  # history in, first charts drawn
            server0 = cpu_seconds(proc.pid)
            render0 = {pid: cpu_seconds(pid) for pid in renderers()}
            for page in pages:
                page.evaluate(RECORD_CHANGES, FIRST_FIGURE)
            t0 = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - t0
            server = cpu_seconds(proc.pid) - server0
            render = sum(cpu_seconds(pid) - render0.get(pid, 0.0) for pid in renderers())
            changed_at = [[t / 1000 for t in page.evaluate("window.__changes")] for page in pages]
            browser.close()
    finally:
        proc.terminate()
        proc.wait(15)
    worst_gap = max(
        (max(b - a for a, b in zip(c, c[1:], strict=False)) if len(c) > 1 else elapsed)
        for c in changed_at
    )
    return dict(server=server / elapsed, render=render / elapsed, gap=worst_gap)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--viewers", default="1,5")
    parser.add_argument("--symbols", type=int, default=2)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s from an exchange")
    args = parser.parse_args()
    if args.rate and args.symbols != 2:
        parser.error("--rate replays the 2-symbol sample: leave --symbols at 2")
    feed = _exchange_feed(args.rate) if args.rate else (["--source", "simulate"], "simulate")
    _run(args, *feed)


def _exchange_feed(rate: float) -> tuple[list[str], str]:
    """A local exchange replaying the sample at ``rate`` messages a second (stopped at exit)."""
    import atexit

    sys.path.insert(0, str(ROOT))
    from backend.cli.soak import replay_speed, start_exchange

    exchange, port = start_exchange(replay_speed(rate))
    atexit.register(exchange.terminate)
    options = ["--source", "live", "--ws-url", f"ws://127.0.0.1:{port}/market",
               "--rest-url", f"http://127.0.0.1:{port}"]  # fmt: skip
    return options, f"fed at {rate:,.0f} messages/s by a local exchange"


def _run(args, feed: list[str], feed_name: str) -> None:
    ours_options = []
    if args.symbols > 2:
        names = ["BTCUSDT", "ETHUSDT"] + [f"S{i:03d}USDT" for i in range(args.symbols - 2)]
        ours_options = ["--symbols", ",".join(names), "--history-bars", "330",
                        "--history-1s", "60"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        floor = write_floor_page(tmp)
        db = str(Path(tmp) / "bench.db")
        print(
            f"# page cost over {args.seconds:g} s (CPU as a share of one core; "
            f"{args.symbols} symbols, {feed_name})"
        )
        print(f"{'viewers':>8}{'page':>7}{'server':>9}{'renderer':>10}{'worst tick gap s':>18}")
        for n in (int(v) for v in args.viewers.split(",")):
            rows = {
                "floor": _measured(floor, [], n, args.seconds),
                "ours": _measured("app.py", [*feed, "--db", db, *ours_options], n, args.seconds),
            }
            for name, r in rows.items():
                if r is None:
                    print(f"{n:>8}{name:>7}  did not load all {n} viewers within 90 s")
                    continue
                print(f"{n:>8}{name:>7}{r['server']:>9.0%}{r['render']:>10.0%}{r['gap']:>18.2f}")
            f, o = rows["floor"], rows["ours"]
            if f is not None and o is not None:
                print(
                    f"{n:>8}{'ratio':>7}{o['server'] / f['server']:>8.2f}x"
                    f"{o['render'] / f['render']:>9.2f}x"
                )


def _measured(script: str, options: list[str], viewers: int, seconds: float) -> dict | None:
    """A measurement, or None when the server could not serve every viewer (its pages never
    showed a metric): a result in itself."""
    from playwright.sync_api import TimeoutError as PageTimeout

    try:
        return measure(script, options, viewers, seconds)
    except PageTimeout:
        return None


if __name__ == "__main__":
    main()
