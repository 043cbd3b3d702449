"""The page left open: server RSS and the browser renderer's memory over a long run.

    python bench/soak_page.py [--minutes 30] [--every 60]

Starts ``app.py -- --source simulate`` (2 symbols, history loaded), opens it in headless
Chromium on its default view and leaves it there. Every ``--every`` seconds it reads the
server's RSS (/proc), the renderer processes' RSS and the page's JavaScript heap (Chrome
DevTools Protocol ``Performance.getMetrics``), and checks the tick counter still moves.
Prints one row per sample and the growth from the first five minutes to the last five.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_page import CHROMIUM, FIRST_FIGURE, renderers, serve  # noqa: E402


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = serve("app.py", "--source", "simulate", "--db", str(Path(tmp) / "soak.db"))
        rows = []
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1500, "height": 1200})
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                page.goto(url)
                ticks = page.locator(FIRST_FIGURE).first
                ticks.wait_for(timeout=60_000)
                print(f"# soak of the page, {args.minutes:g} min, a sample every {args.every:g} s")
                print(f"{'min':>6}{'server MiB':>12}{'renderer MiB':>14}{'JS heap MiB':>13}  ticks")
                t0 = time.monotonic()
                while (elapsed := time.monotonic() - t0) <= args.minutes * 60:
                    metrics = {
                        m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]
                    }
                    row = (
                        elapsed / 60,
                        rss_mib(proc.pid),
                        sum(rss_mib(pid) for pid in renderers()),
                        metrics.get("JSHeapUsedSize", 0) / 2**20,
                        ticks.inner_text(),
                    )
                    rows.append(row)
                    print(
                        f"{row[0]:>6.1f}{row[1]:>12.0f}{row[2]:>14.0f}{row[3]:>13.1f}  {row[4]}",
                        flush=True,
                    )
                    time.sleep(args.every)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(15)
    k = max(1, int(5 * 60 / args.every))
    for i, name in ((1, "server RSS"), (2, "renderer RSS"), (3, "JS heap")):
        first = statistics.median(r[i] for r in rows[:k])
        last = statistics.median(r[i] for r in rows[-k:])
        print(
            f"# {name}: median of the first 5 min {first:.0f} MiB, of the last 5 min "
            f"{last:.0f} MiB ({last - first:+.0f} MiB)"
        )


if __name__ == "__main__":
    main()
