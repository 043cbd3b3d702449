"""Memory of many symbols over a simulated day: the tick store's RSS with ``--keep-1s`` (the
default 6 h) against keeping every 1s bar (``--keep-1s 0``), each in its own process.

    python bench/bench_memory.py [--symbols 200] [--hours 24] [--rate 5]

Each child builds the engine's store for N simulated symbols (config.tick_capacity shares the
tick budget among them) and feeds it, hour by hour, every trade of the simulated market at
``--rate`` trades per second per symbol (the simulator's trades, in stream-sized batches).
It prints its RSS after each simulated hour; the parent prints both and their ratio, and
checks that the bounded store's 1m bars (times, closes, volumes) equal the unbounded one's
for three symbols.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.config import DEFAULT_KEEP_1S_H, keep_1s_seconds, tick_capacity  # noqa: E402
from backend.exchange.sources import Simulator  # noqa: E402
from backend.store.tick_store import TickStore  # noqa: E402

T0_MS = 1_765_000_000_000
BATCH = 512  # trades per ingest call, about what one read of the stream hands over


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(n: int, hours: int, rate: float, keep_h: float) -> None:
    symbols = [f"S{i:03d}USDT" for i in range(n)]
    sim = Simulator(symbols, seed=5)
    sim._specs = {s: (0.001, 0.1, 100.0, rate) for s in symbols}  # the chosen rate for all
    store = TickStore(symbols, tick_capacity(n), keep_1s_seconds(keep_h))
    out = {"rss_mib": [], "trades": 0, "start_rss_mib": rss_mib()}
    started = time.perf_counter()
    for h in range(hours):
        hour = sim.history(T0_MS + (h + 1) * 3_600_000, 3600, recent_s=3600)
        for batch in hour.values():
            for i in range(0, len(batch), BATCH):
                store.ingest(batch.take(slice(i, i + BATCH)))
            out["trades"] += len(batch)
        del hour
        out["rss_mib"].append(round(rss_mib(), 1))
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["bars_1s"] = int(np.mean([len(store.bars(s, "1s")) for s in symbols[:5]]))
    sample = [store.bars(s, "1m") for s in symbols[:3]]
    out["sample_1m"] = [[b.open_time.tolist(), b.close.tolist(), b.volume.tolist()] for b in sample]
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--rate", type=float, default=5.0, help="trades per second per symbol")
    ap.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.symbols, args.hours, args.rate, args.child)
        return
    runs = {}
    for label, keep_h in ((f"--keep-1s {DEFAULT_KEEP_1S_H:g}", DEFAULT_KEEP_1S_H),
                          ("--keep-1s 0 (naive: every 1s bar)", 0.0)):  # fmt: skip
        argv = [sys.executable, __file__, "--symbols", str(args.symbols), "--hours",
                str(args.hours), "--rate", str(args.rate), "--child", str(keep_h)]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, check=True)
        runs[label] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = runs[label]
        print(
            f"{label}: {r['trades']:,} trades in {r['seconds']} s; RSS at start "
            f"{r['start_rss_mib']:.0f} MiB, after each 6 h "
            + ", ".join(f"{x:.0f}" for x in r["rss_mib"][5::6])
            + f" MiB; peak {r['peak_rss_mib']:.0f} MiB; 1s bars held per symbol {r['bars_1s']:,}"
        )
    ours, naive = runs.values()
    same = all(
        len(a[0]) == len(b[0]) and all(np.allclose(u, v) for u, v in zip(a, b, strict=True))
        for a, b in zip(ours["sample_1m"], naive["sample_1m"], strict=True)
    )
    print(f"1m bars identical in both (sampled symbols): {same}")
    print(
        f"{args.symbols} symbols after {args.hours} simulated hours: RSS "
        f"{ours['rss_mib'][-1]:.0f} MiB vs {naive['rss_mib'][-1]:.0f} MiB naive "
        f"({naive['rss_mib'][-1] / ours['rss_mib'][-1]:.2f}x less)"
    )


if __name__ == "__main__":
    main()
