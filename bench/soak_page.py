"""The page left open: server RSS and the browser renderer's memory over a long run.

    python bench/soak_page.py [--minutes 30] [--every 60] [--floor] [--plain]

Starts ``app.py -- --source simulate`` (2 symbols, history loaded), opens it in headless
Chromium on its default view and leaves it there. Every ``--every`` seconds it reads the
server's RSS (/proc), the renderer processes' RSS, and, through the Chrome DevTools Protocol,
the page's JavaScript heap right after a forced garbage collection (``HeapProfiler.
collectGarbage``: live objects, not the sawtooth of a lazy collector) with its DOM nodes and
event listeners (``Performance.getMetrics``): a leak grows those, a lazy allocator only RSS.
It checks the tick counter still moves. Prints one row per sample and the growth from the
first five minutes to the last five. ``--floor`` soaks bench_page.py's floor page instead (three
``st.metric`` every 0.25 s): what Chromium and Streamlit grow by themselves.

``--plain`` opens the page in a Chromium with no DevTools client attached, as a user's browser
runs it: Playwright enables DevTools domains (Network among them) whose agents live in the
renderer and keep what they record. Then only RSS is read, and the renderer's CPU per sample
shows the page is still running.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_page import (  # noqa: E402
    CHROMIUM,
    FIRST_FIGURE,
    cpu_seconds,
    renderers,
    serve,
    write_floor_page,
)

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTH, HEIGHT = 1500, 1200
# (row index, name, unit) of what a sample reads, in report()
UNITS = ((1, "server RSS", " MiB"), (2, "renderer RSS", " MiB"), (3, "JS heap after GC", " MiB"),
         (4, "DOM nodes", ""), (5, "event listeners", ""))  # fmt: skip


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=60.0)
    parser.add_argument("--floor", action="store_true", help="soak the floor page instead")
    parser.add_argument("--plain", action="store_true", help="no DevTools client: RSS only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.floor:
            proc, url = serve(write_floor_page(tmp))
        else:
            proc, url = serve("app.py", "--source", "simulate", "--db", str(Path(tmp) / "soak.db"))
        rows = []
        try:
            if args.plain:
                rows = plain_soak(proc.pid, url, tmp, args)
                return report(rows, args.every, units=UNITS[:2])
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
                page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                cdp.send("HeapProfiler.enable")
                page.goto(url)
                ticks = page.locator(FIRST_FIGURE).first
                ticks.wait_for(timeout=60_000)
                print(
                    f"# soak of the {'floor page' if args.floor else 'page'}, {args.minutes:g} min, "
                    f"a sample every {args.every:g} s"
                )
                print(
                    f"{'min':>6}{'server MiB':>12}{'renderer MiB':>14}{'JS heap MiB':>13}"
                    f"{'DOM nodes':>11}{'listeners':>11}  ticks"
                )
                t0 = time.monotonic()
                while (elapsed := time.monotonic() - t0) <= args.minutes * 60:
                    cdp.send("HeapProfiler.collectGarbage")
                    metrics = {
                        m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]
                    }
                    row = (
                        elapsed / 60,
                        rss_mib(proc.pid),
                        sum(rss_mib(pid) for pid in renderers()),
                        metrics.get("JSHeapUsedSize", 0) / 2**20,
                        metrics.get("Nodes", 0),
                        metrics.get("JSEventListeners", 0),
                        ticks.inner_text(),
                    )
                    rows.append(row)
                    print(
                        f"{row[0]:>6.1f}{row[1]:>12.0f}{row[2]:>14.0f}{row[3]:>13.1f}"
                        f"{row[4]:>11.0f}{row[5]:>11.0f}  {row[6]}",
                        flush=True,
                    )
                    time.sleep(args.every)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(15)
    report(rows, args.every, UNITS)


def report(rows: list[tuple], every_s: float, units) -> None:
    k = max(1, int(5 * 60 / every_s))
    for i, name, unit in units:
        first = statistics.median(r[i] for r in rows[:k])
        last = statistics.median(r[i] for r in rows[-k:])
        print(
            f"# {name}: median of the first 5 min {first:,.0f}{unit}, of the last 5 min "
            f"{last:,.0f}{unit} ({last - first:+,.0f}{unit})"
        )


def plain_soak(server_pid: int, url: str, tmp: str, args) -> list[tuple]:
    """The page in a Chromium no DevTools client talks to; (minute, server RSS, renderer RSS)."""
    minutes, every_s = args.minutes, args.every
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", *BROWSER_ARGS, f"--window-size={WIDTH},{HEIGHT}",
         f"--user-data-dir={tmp}/profile", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    print(f"# plain soak of the {'floor page' if args.floor else 'page'}, {minutes:g} min, "
          f"a sample every {every_s:g} s (no DevTools client)")  # fmt: skip
    print(f"{'min':>6}{'server MiB':>12}{'renderer MiB':>14}{'renderer CPU':>14}")
    rows, t0 = [], time.monotonic()
    last_cpu, last_t = None, t0
    try:
        time.sleep(min(every_s, 30))  # the page loads
        while (elapsed := time.monotonic() - t0) <= minutes * 60:
            pids = renderers()
            cpu, now = sum(cpu_seconds(pid) for pid in pids), time.monotonic()
            share = float("nan") if last_cpu is None else (cpu - last_cpu) / (now - last_t)
            last_cpu, last_t = cpu, now
            row = (elapsed / 60, rss_mib(server_pid), sum(rss_mib(pid) for pid in pids))
            rows.append(row)
            print(f"{row[0]:>6.1f}{row[1]:>12.0f}{row[2]:>14.0f}{share:>13.0%}", flush=True)
            time.sleep(every_s)
    finally:
        browser.terminate()
        browser.wait(15)
    return rows


if __name__ == "__main__":
    main()
