"""Dashboard refresh cost with 1M ticks per symbol in memory: ours against the naive approach
(rebuild a DataFrame from all ticks and resample every rerun), same process.

    python bench/bench_dashboard.py [--ticks 1000000] [--repeat 9]

Timed: data + figures (plotly objects built), excluding Streamlit's own rendering.
  live fragment = a new trade arrives (bars cache invalidated), then the tick strip snapshot, the
                  shown bars of both symbols, the live pair statistics, candles/spread/z/corr figures;
  full rerun    = the live fragment + ADF/EG/half-life/backtest, stats table, heatmap;
  1s CSV export = the export panel's bars CSV after a new trade: kept rows (only changed rows
                  re-formatted) against formatting every row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingestion import synthetic_trades  # noqa: E402

from backend import analytics as an  # noqa: E402
from backend.engine.csv_export import BarsCsv, bars_to_csv  # noqa: E402
from backend.engine.pairs import PairParams, history_bars, live_stats, slow_stats  # noqa: E402
from backend.store.records import Bars  # noqa: E402
from backend.store.resampling import align  # noqa: E402
from backend.store.tick_store import TickStore  # noqa: E402
from frontend import charts  # noqa: E402

SHOWN = 600
P = PairParams(lookback_bars=300, z_window_bars=60, corr_window_bars=60)


def tail(bars: Bars, n: int) -> Bars:
    return bars.slice(max(0, len(bars) - n))


def figures(yb, xb, live) -> None:
    shown = slice(-SHOWN, None)
    charts.candles(tail(yb, SHOWN))
    charts.candles(tail(xb, SHOWN))
    charts.spread_chart(live, shown, P)
    charts.zscore_chart(live, shown, P)
    charts.corr_chart(live, shown, P)


def ours(store: TickStore, feed, full: bool) -> None:
    store.ingest(next(feed))  # a new trade: the bars cache is stale, as in live use
    store.snapshot()
    keep = SHOWN + history_bars(P) + 1  # as the page: only these bars, sliced under the lock
    yb = store.bars("ETHUSDT", "1s", last=keep)
    xb = store.bars("BTCUSDT", "1s", last=keep)
    live = live_stats(yb, xb, P)
    figures(yb, xb, live)
    if full:
        slow = slow_stats(yb, xb, P, live)
        charts.equity_chart(live, slow, slice(-SHOWN, None))
        ya, xa = align(yb, xb)
        an.bar_stats_table(
            live.open_time, ya.close, xa.close, ya.volume, xa.volume, live.spread, live.zscore, 60
        )
        an.correlation_matrix({"y": an.log_returns(ya.close), "x": an.log_returns(xa.close)}, 60)


def naive_bars(store: TickStore, symbol: str) -> Bars:
    ticks = store.ticks(symbol)
    df = pd.DataFrame(
        {"p": ticks.price, "q": ticks.qty}, index=pd.to_datetime(ticks.trade_time_ms, unit="ms")
    )
    r = df.resample("1s")
    o = r["p"].ohlc()
    o["close"] = o["close"].ffill()
    for c in ("open", "high", "low"):
        o[c] = o[c].fillna(o["close"])
    v = r["q"].sum()
    t = o.index.asi8 // 1_000_000
    ones = np.ones(len(o))
    return Bars(
        symbol,
        "1s",
        t,
        o["open"].to_numpy(),
        o["high"].to_numpy(),
        o["low"].to_numpy(),
        o["close"].to_numpy(),
        v.to_numpy(),
        ones,
        np.ones(len(o), np.int64),
        ones,
    )


def naive(store: TickStore, feed, full: bool) -> None:
    store.ingest(next(feed))
    keep = SHOWN + P.lookback_bars + 1
    yb = tail(naive_bars(store, "ETHUSDT"), keep)
    xb = tail(naive_bars(store, "BTCUSDT"), keep)
    live = live_stats(yb, xb, P)
    figures(yb, xb, live)
    if full:
        slow_stats(yb, xb, P, live)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    store = TickStore(["BTCUSDT", "ETHUSDT"], tick_capacity=args.ticks + 10_000)
    tapes = {
        s: synthetic_trades(s, args.ticks + 1_000, seed)
        for s, seed in (("BTCUSDT", 1), ("ETHUSDT", 2))
    }
    for tape in tapes.values():
        store.ingest(tape.take(slice(0, args.ticks)))

    def feed_of():
        for i in range(args.ticks, args.ticks + 1_000):
            for s in tapes:
                yield tapes[s].take(slice(i, i + 1))

    feed = feed_of()

    def timed(fn, full: bool) -> float:
        out = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn(store, feed, full)
            out.append((time.perf_counter() - t0) * 1000)
        return statistics.median(out)

    seconds = len(store.bars("BTCUSDT", "1s"))
    print(
        f"# dashboard refresh with {args.ticks:,} ticks per symbol ({seconds:,} 1s bars); medians of {args.repeat}, ms"
    )
    for label, full in (("live fragment", False), ("full rerun", True)):
        a, b = timed(ours, full), timed(naive, full)
        print(f"{label:<15} ours {a:8.1f}   naive {b:8.1f}   ratio {b / a:6.1f}x")

    # The export panel rebuilds the bars CSV every 2 s: kept rows vs formatting every row.
    exporter = BarsCsv()
    exporter.export(store.bars(s, "1s") for s in tapes)

    def export_ours(store, feed, _full):
        store.ingest(next(feed))
        exporter.export(store.bars(s, "1s") for s in tapes)

    def export_naive(store, feed, _full):
        store.ingest(next(feed))
        bars_to_csv(store.bars(s, "1s") for s in tapes)

    a, b = timed(export_ours, False), timed(export_naive, False)
    print(f"{'1s CSV export':<15} ours {a:8.1f}   naive {b:8.1f}   ratio {b / a:6.1f}x")


if __name__ == "__main__":
    main()
