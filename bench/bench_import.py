"""Deep history, measured: the bulk import's bars per second into SQLite and PostgreSQL against a
naive pandas + row-by-row baseline in the same run; the scanner on 100 symbols x 2,160 1h bars
(90 days); the pair service's refresh on a year of 1h bars.

    python bench/bench_import.py [--symbols 4] [--days 60] [--repeat 3]

Import: ``--symbols`` simulated symbols with ``--days`` days of 1m bars served by the local
exchange as data.binance.vision files (monthly and daily zips with checksums). Ours is
``backend.cli.importer.Importer`` (verified files, four downloads at a time, one upsert a
file; COPY for PostgreSQL). The baseline downloads the same files one by one, reads each with
``pandas.read_csv`` and inserts row by row (one ``INSERT ... ON CONFLICT`` and commit a row).
Each on a fresh database; medians of ``--repeat``; PostgreSQL in a throwaway cluster on
127.0.0.1 (as the tests start it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from backend.cli.importer import Importer  # noqa: E402
from backend.engine.pair_service import PairRequest, PairService  # noqa: E402
from backend.engine.pairs import PairParams, scan_market  # noqa: E402
from backend.engine.uploads import UploadedData, UploadedSymbol  # noqa: E402
from backend.exchange.server import LocalExchange  # noqa: E402
from backend.exchange.sources import Simulator  # noqa: E402
from backend.feed.rest import RestClient  # noqa: E402
from backend.feed.vision import KLINE_HEADER, plan  # noqa: E402
from backend.lru import Lru  # noqa: E402
from backend.storage import BarStore  # noqa: E402
from backend.storage.postgres import PgBarStore  # noqa: E402
from backend.store.resampling import fold_bars  # noqa: E402
from tests.conftest import PgCluster  # noqa: E402

NAIVE_SQLITE = (
    "INSERT INTO bars (symbol, timeframe, open_time, open, high, low, close, volume, quote_volume, "
    "trades, taker_buy_volume) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (symbol, "
    "timeframe, open_time) DO UPDATE SET open = excluded.open, high = excluded.high, low = "
    "excluded.low, close = excluded.close, volume = excluded.volume, quote_volume = "
    "excluded.quote_volume, trades = excluded.trades, taker_buy_volume = excluded.taker_buy_volume"
)


def naive_import(ex, conn, symbols, start, end, mark="?") -> int:
    """Download each file, pandas.read_csv it, insert row by row, commit each row."""
    rows = 0
    sql = NAIVE_SQLITE if mark == "?" else NAIVE_SQLITE.replace("?", "%s")
    for symbol in symbols:
        for file in plan(symbol, "1m", start, end):
            with urllib.request.urlopen(file.url(ex.rest_url)) as resp:
                body = resp.read()
            with zipfile.ZipFile(io.BytesIO(body)) as zf:
                frame = pd.read_csv(zf.open(zf.namelist()[0]))
            frame.columns = list(KLINE_HEADER)
            for r in frame.itertuples(index=False):
                conn.execute(sql, (symbol, "1m", int(r.open_time), r.open, r.high, r.low, r.close,
                                   r.volume, r.quote_volume, int(r.count), r.taker_buy_volume))  # fmt: skip
                conn.commit()
                rows += 1
    return rows


def bench_import(args, cluster) -> None:
    symbols = ["BTCUSDT", "ETHUSDT"] + [f"S{i:02d}USDT" for i in range(args.symbols - 2)]
    ex = LocalExchange(simulator=Simulator(symbols, seed=2), history_s=3600,
                       deep_days=args.days + 2)  # fmt: skip
    ex.start()
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=args.days - 1)
    results: dict[str, list[float]] = {}
    try:
        # Every file served once before timing: the exchange keeps the zips of past periods,
        # so ours and the baseline read the same warm server.
        for symbol in symbols:
            for file in plan(symbol, "1m", start, end):
                for suffix in ("", ".CHECKSUM"):
                    with urllib.request.urlopen(file.url(ex.rest_url) + suffix) as resp:
                        resp.read()
        for _ in range(args.repeat):
            for name in ("sqlite", "postgresql"):
                if name == "sqlite":
                    db = BarStore(Path(tempfile.mkdtemp()) / "i.db")
                else:
                    db = PgBarStore(cluster.url(cluster.database()))
                t0 = time.perf_counter()
                summary = Importer(db, ex.rest_url, RestClient(ex.rest_url)).run(
                    symbols, ["1m"], start, end, progress=False
                )
                elapsed = time.perf_counter() - t0
                assert summary.ok and summary.rows == args.symbols * args.days * 1440, summary
                results.setdefault(name, []).append(summary.rows / elapsed)
                db.close()
            # The baselines, on a tenth of the days (row by row is slow).
            naive_days = max(1, args.days // 10)
            db = BarStore(Path(tempfile.mkdtemp()) / "n.db")  # the table, made outside timing
            db.close()
            import sqlite3

            conn = sqlite3.connect(db.path)
            days = (end - dt.timedelta(days=naive_days - 1), end)
            t0 = time.perf_counter()
            n = naive_import(ex, conn, symbols, *days)
            results.setdefault("naive sqlite", []).append(n / (time.perf_counter() - t0))
            conn.close()
            import psycopg

            url = cluster.url(cluster.database())
            PgBarStore(url).close()  # the table, made outside timing
            with psycopg.connect(url) as pg:
                t0 = time.perf_counter()
                n = naive_import(ex, pg, symbols, *days, mark="%s")
                results.setdefault("naive postgresql", []).append(n / (time.perf_counter() - t0))
    finally:
        ex.stop()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"# import of {args.symbols} symbols x {args.days} days of 1m bars "
          f"({args.symbols * args.days * 1440:,} bars) from local data.binance.vision files")  # fmt: skip
    print(f"# bars per second, medians of {args.repeat}")
    for name, value in med.items():
        print(f"{name:<24}{value:>12,.0f}")
    print(
        f"ours into SQLite vs naive (pandas + row by row): {med['sqlite'] / med['naive sqlite']:.1f}x"
    )
    ratio = med["postgresql"] / med["naive postgresql"]
    print(f"ours into PostgreSQL (COPY) vs naive (pandas + row by row): {ratio:.1f}x")


def hourly_market(n_symbols: int, hours: int) -> dict:
    sim = Simulator([f"S{i:03d}USDT" for i in range(n_symbols)], seed=9)
    minutes = sim.deep_minutes(1_780_000_000_000, hours * 60)
    return {s: fold_bars(b, "1h", first_is_whole=True) for s, b in minutes.items()}


def naive_scan(bars: dict, lookback: int) -> int:
    """Every pair: statsmodels coint on the window, one at a time."""
    from statsmodels.tsa.stattools import coint

    closes = {s: np.log(b.close[-lookback:]) for s, b in bars.items()}
    names = list(closes)
    n = 0
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            coint(closes[a], closes[b], maxlag=1, autolag=None)
            n += 1
    return n


def bench_scan_and_refresh(args) -> None:
    bars = hourly_market(100, 2_161)
    timings = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        scan = scan_market(bars, "1h", 2_160, 1, newest_is_open=False)
        timings.append(time.perf_counter() - t0)
    pairs = len(scan.table)
    few = dict(list(bars.items())[:20])  # the naive scan on 20 symbols (190 pairs), scaled
    t0 = time.perf_counter()
    naive_pairs = naive_scan(few, 2_160)
    naive = (time.perf_counter() - t0) * pairs / naive_pairs
    ours = statistics.median(timings)
    print(f"# scanner: 100 symbols x 2,160 1h bars (90 days), {pairs:,} pairs; medians of "
          f"{args.repeat}")  # fmt: skip
    print(f"ours {ours:.2f} s   naive (coint a pair, scaled from 190) {naive:.1f} s   "
          f"ratio {naive / ours:.0f}x")  # fmt: skip

    year = hourly_market(2, 365 * 24)
    data = UploadedData({s: UploadedSymbol(s, bars=b) for s, b in year.items()}, key=("year",))
    y, x = list(year)
    refresh, first = [], None
    service = PairService(_cached(), Lru(256))
    request = PairRequest(y, x, "1h", PairParams(), shown_bars=8_000)
    for i in range(args.repeat + 1):
        t0 = time.perf_counter()
        report = service.report(data, request)
        took = time.perf_counter() - t0
        if i == 0:
            first = took  # slow figures computed (then cached per closed bar)
        else:
            refresh.append(took)
    assert report.live is not None and report.slow is not None
    print(f"# pair service on a year of 1h bars ({len(year[y]):,} bars, 8,000 shown)")
    print(f"first (slow figures computed) {first * 1000:.0f} ms   refresh "
          f"{statistics.median(refresh) * 1000:.0f} ms (median of {args.repeat})")  # fmt: skip


def _cached():
    memo = Lru(64)

    def cached(key, compute):
        value = memo.get(key)
        if value is None:
            value = memo[key] = compute()
        return value

    return cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=4)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cluster = PgCluster()
    try:
        bench_import(args, cluster)
    finally:
        cluster.stop()
    bench_scan_and_refresh(args)


if __name__ == "__main__":
    main()
