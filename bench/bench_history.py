"""History at start: how long until the bars are in, for 2 and for 50 symbols, weight-limited.

    python bench/bench_history.py [--symbols 2,50]

The local exchange (in this process's thread) simulates 4 days before now and counts request
weight per minute as Binance does (aggTrades 20, klines 5 for limit 1000); our client keeps to
its budget of 1,800 a minute. For each symbol count:

  ours   = the engine's path: klines for 1,000 1m and 1,000 5m bars before the seam, 1s bars from
           aggregate trades for the 15-20 minutes after it, beside the stream. "klines in" is when
           1m/5m figures can show; "1s in" when every symbol's 1s history is complete;
  naive  = the same 1m/5m history built from aggregate trades alone (no klines): every trade
           of the last 1,000 1m bars (16.7 h) paged over REST (run for 2 symbols; for 50 its
           weight is counted, not spent).

Weight, requests and seconds are printed with the ratio. The simulation's trades older than an
hour come at 0.5/s per symbol (real BTCUSDT: ~30/s), so the naive figure here is a floor: on
Binance its weight would be some 60x larger.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.config import FeedConfig  # noqa: E402
from backend.exchange.server import LocalExchange  # noqa: E402
from backend.exchange.sources import Simulator  # noqa: E402
from backend.feed.history import HistoryLoader, HistoryOptions, seconds_start_ms  # noqa: E402
from backend.feed.rest import AGG_TRADES_LIMIT, RestClient  # noqa: E402
from backend.feed.streams import Ingestor  # noqa: E402
from backend.store.tick_store import TickStore  # noqa: E402

DAYS_S = 4 * 86_400


def symbols_for(n: int) -> list[str]:
    base = ["BTCUSDT", "ETHUSDT"]
    return (base + [f"SIM{i:03d}USDT" for i in range(n - 2)])[:n]


def weight_used(ex: LocalExchange) -> int:
    return sum(ex._weight.values())  # the exchange's own count, every minute


def ours(symbols: list[str]) -> dict:
    ex = LocalExchange(simulator=Simulator(symbols, seed=1), history_s=DAYS_S)
    ex.start()
    store = TickStore(symbols)
    ingestor = Ingestor(
        store, FeedConfig(symbols=symbols, ws_url=ex.ws_url, rest_url=ex.rest_url, funding=False)
    )
    loader = HistoryLoader(store, ingestor.rest, ingestor.backfiller, HistoryOptions())
    t0 = time.monotonic()
    loader.start()
    ingestor.start()
    klines_at = seconds_at = None
    try:
        while time.monotonic() - t0 < 900:
            status = [store.history_status(s) for s in symbols]
            if klines_at is None and all(len(s.klines_from_ms) == 2 for s in status):
                klines_at = time.monotonic() - t0
            if klines_at is not None and all(s.seconds_filled == 1.0 for s in status):
                seconds_at = time.monotonic() - t0
                break
            time.sleep(0.05)
        bars = min(len(store.bars(s, tf)) for s in symbols for tf in ("1m", "5m"))
    finally:
        loader.stop()
        ingestor.stop()
        weight, requests = weight_used(ex), ex.stats["rest_requests"]
        ex.stop()
    return dict(klines=klines_at, seconds=seconds_at, weight=weight, requests=requests, bars=bars)


def naive(symbols: list[str], run: bool) -> dict:
    """Every trade of the last 1,000 minutes, paged by id from the first trade in range."""
    ex = LocalExchange(simulator=Simulator(symbols, seed=1), history_s=DAYS_S)
    ex.start()
    rest = RestClient(ex.rest_url)
    t0 = time.monotonic()
    requests = 0
    try:
        now = rest.server_time_ms()
        start = seconds_start_ms(now, 900) - 1000 * 60_000
        for symbol in symbols:
            pub = ex._pub[symbol]
            first = pub.index_at_time(start)
            pages = -(-(pub.count - first) // AGG_TRADES_LIMIT)
            requests += pages
            if not run:
                continue
            from_id = int(pub.take([first]).agg_id[0])
            for _ in range(pages):
                if rest.over_budget:
                    time.sleep(60 - time.time() % 60)
                page = rest.agg_trades(symbol, from_id, AGG_TRADES_LIMIT)
                if not len(page):
                    break
                from_id = int(page.agg_id[-1]) + 1
        elapsed = time.monotonic() - t0 if run else None
    finally:
        ex.stop()
    weight = requests * 20
    if not run:  # at the budget of 1,800 a minute
        elapsed = None
    return dict(seconds=elapsed, weight=weight, requests=requests)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", default="2,50")
    args = parser.parse_args()
    print("# history at start  (local exchange, 4 simulated days; weight budget 1,800/min)")
    print(
        f"{'symbols':>8}{'klines in s':>13}{'1s in s':>9}{'bars':>7}{'weight':>8}{'requests':>10}"
        f"{'naive s':>10}{'naive weight':>14}{'weight ratio':>14}"
    )
    for n in (int(v) for v in args.symbols.split(",")):
        symbols = symbols_for(n)
        o = ours(symbols)
        nv = naive(symbols, run=n <= 2)
        naive_s = f"{nv['seconds']:.1f}" if nv["seconds"] is not None else "not run"
        fmt = lambda v: f"{v:.1f}" if v is not None else "—"  # noqa: E731
        print(
            f"{n:>8}{fmt(o['klines']):>13}{fmt(o['seconds']):>9}{o['bars']:>7}{o['weight']:>8,}"
            f"{o['requests']:>10,}{naive_s:>10}{nv['weight']:>14,}"
            f"{nv['weight'] / max(o['weight'], 1):>13.1f}x"
        )


if __name__ == "__main__":
    main()
