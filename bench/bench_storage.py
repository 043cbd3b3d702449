"""Bar upserts per second into PostgreSQL and SQLite, in the same run, with a naive
PostgreSQL baseline (one parameterised ``INSERT ... ON CONFLICT`` per row, ``executemany``).

    python bench/bench_storage.py [--hours 6] [--symbols 2] [--repeat 3]

Bars: the 1s, 1m and 5m bars of ``--hours`` simulated hours of ``--symbols`` symbols. Each
store is timed on a fresh database for: the first save (every row new), the same save again
(nothing changes: 0 rows written) and a save where every 1s close moved (all 1s rows change).
PostgreSQL runs in a throwaway cluster on 127.0.0.1 (as the tests start it). Medians of
``--repeat``.

Then the lag of a ``--source db`` reader: a real collector (``python -m backend collect``,
flushing every 2 s) streams the local exchange's simulation into each store while the
dashboard's reader (``db_source.DbPoller``, polling each second) follows it for ``--lag-s``
seconds. A second's lag is when the reader first held that second's final bar (as the database
holds it at the end) minus the second's end: flush interval + poll interval + the write and the
read.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.exchange.sources import Simulator  # noqa: E402
from backend.storage import BarStore, bar_rows  # noqa: E402
from backend.storage.postgres import PgBarStore  # noqa: E402
from backend.store.records import TIMEFRAMES_MS  # noqa: E402
from backend.store.resampling import bars_from_trades  # noqa: E402
from tests.conftest import PgCluster  # noqa: E402


def market_bars(hours: int, n_symbols: int) -> list:
    symbols = ["BTCUSDT", "ETHUSDT"] + [f"S{i:03d}USDT" for i in range(max(0, n_symbols - 2))]
    sim = Simulator(symbols[:n_symbols], seed=3)
    tapes = sim.history(1_765_000_000_000, hours * 3600, recent_s=hours * 3600)
    return [bars_from_trades(t, tf) for t in tapes.values() for tf in TIMEFRAMES_MS]


def naive_pg_upsert(url: str, bars_list) -> int:
    import psycopg

    from backend.storage.postgres import _UPSERT

    rows = [r for b in bars_list for r in bar_rows(b)]
    placeholders = ", ".join(["%s"] * len(rows[0]))
    cols = "symbol, timeframe, open_time, open, high, low, close, volume, quote_volume, trades, "
    cols += "taker_buy_volume"
    tail = _UPSERT.split("ON CONFLICT", 1)[1]
    statement = f"INSERT INTO bars ({cols}) VALUES ({placeholders}) ON CONFLICT{tail}"
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.executemany(statement, rows)
    return len(rows)


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=int, default=6)
    ap.add_argument("--symbols", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lag-s", type=float, default=30.0)
    args = ap.parse_args()
    bars = market_bars(args.hours, args.symbols)
    moved = [
        dataclasses.replace(b, close=b.close + 0.5) if b.timeframe == "1s" else b for b in bars
    ]
    n_rows = sum(len(b) for b in bars)
    n_1s = sum(len(b) for b in bars if b.timeframe == "1s")
    cluster = PgCluster()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for _ in range(args.repeat):
            stores = {
                "sqlite": lambda: BarStore(Path(tempfile.mkdtemp()) / "b.db"),
                "postgresql": lambda: PgBarStore(cluster.url(cluster.database())),
            }
            for name, make in stores.items():
                db = make()
                r = results.setdefault(name, {"first": [], "again": [], "moved": []})
                t, written = timed(lambda db=db: db.upsert(bars))
                assert written == n_rows, (name, written)
                r["first"].append(n_rows / t)
                t, written = timed(lambda db=db: db.upsert(bars))
                assert written == 0
                r["again"].append(n_rows / t)
                t, written = timed(lambda db=db: db.upsert(moved))
                assert written == n_1s, (name, written, n_1s)
                r["moved"].append(n_rows / t)
                db.close()
            naive = results.setdefault("postgresql naive", {"first": []})
            url = cluster.url(cluster.database())
            PgBarStore(url).close()  # the same tables, made outside the timing
            t, _ = timed(lambda url=url: naive_pg_upsert(url, bars))
            naive["first"].append(n_rows / t)
        lags = {
            "sqlite": reader_lag(str(Path(tempfile.mkdtemp()) / "lag.db"), args.lag_s),
            "postgresql": reader_lag(cluster.url(cluster.database()), args.lag_s),
        }
    finally:
        cluster.stop()
    print(f"# bar upserts, {n_rows:,} rows ({args.symbols} symbols, {args.hours} h of 1s/1m/5m);")
    print(f"# rows per second, medians of {args.repeat}")
    print(f"{'store':<18}{'first save':>12}{'same again':>12}{'1s moved':>12}")
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
    for name, r in med.items():
        cells = "".join(
            f"{r[m]:>12,.0f}" if m in r else f"{'—':>12}" for m in ("first", "again", "moved")
        )
        print(f"{name:<18}{cells}")
    ratio = med["postgresql"]["first"] / med["postgresql naive"]["first"]
    print(f"PostgreSQL COPY + upsert vs row-by-row executemany (first save): {ratio:.1f}x")
    print(f"# --source db reader: second closed -> its final bar visible, over {args.lag_s:g} s")
    for name, values in lags.items():
        q = statistics.quantiles(values, n=10)
        print(
            f"{name:<18} {len(values)} seconds: median {statistics.median(values):.2f} s, "
            f"90th percentile {q[-1]:.2f} s, max {max(values):.2f} s"
        )


def reader_lag(target: str, seconds: float) -> list[float]:
    """Lags (s) of the seconds a reader saw while a collector wrote them into ``target``."""
    import os
    import subprocess

    from backend.engine.db_source import DbPoller, StoredBars
    from backend.exchange.server import LocalExchange
    from backend.storage import open_store

    root = Path(__file__).resolve().parents[1]
    symbols = ["BTCUSDT", "ETHUSDT"]
    with LocalExchange(simulator=Simulator(symbols), history_s=600) as ex:
        collector = subprocess.Popen(
            [sys.executable, "-m", "backend", "collect", "--symbols", ",".join(symbols),
             "--ws-url", ex.ws_url, "--rest-url", ex.rest_url, "--db", target,
             "--history-bars", "0", "--history-1s", "0", "--duration", str(seconds + 20)],
            cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            db = open_store(target)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if db.count(timeframe="1s"):
                        break
                except Exception:  # the collector has not made the tables yet
                    pass
                time.sleep(0.2)
            stored = StoredBars(symbols)
            poller = DbPoller(stored, db, None)
            poller.start()
            seen: dict[tuple[str, int], tuple[tuple, float]] = {}  # key -> (values, first seen)
            start = time.time()
            while time.time() - start < seconds:
                now = time.time()
                for symbol in symbols:
                    bars = stored.bars(symbol, "1s", last=5)
                    for i in range(len(bars)):
                        key = (symbol, int(bars.open_time[i]))
                        values = (float(bars.close[i]), int(bars.trades[i]), float(bars.volume[i]))
                        if key not in seen or seen[key][0] != values:
                            seen[key] = (values, now)
                time.sleep(0.02)
            poller.stop()
            lags = []
            for symbol in symbols:
                final = db.load(symbol, "1s")
                for t, close, n, vol in zip(final.open_time.tolist(), final.close.tolist(),
                                            final.trades.tolist(), final.volume.tolist(),
                                            strict=True):  # fmt: skip
                    hit = seen.get((symbol, t))
                    # Seconds that closed while we watched, shown with their final values.
                    if hit and hit[0] == (close, n, vol) and t / 1000 > start + 2:
                        lags.append(hit[1] - (t + 1000) / 1000)
            db.close()
        finally:
            collector.kill()
            collector.wait(10)
    return lags


if __name__ == "__main__":
    main()
