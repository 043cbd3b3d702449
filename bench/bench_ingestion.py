"""Ingestion benchmarks, each against a naive baseline run in the same process.

    python bench/bench_ingestion.py [--ticks 1000000] [--e2e-trades 400000] [--repeat 5]

Prints medians over ``--repeat`` runs (the machine is noisy) and ratios:
  1. end to end: the local exchange -> real client over loopback -> tick store (msg/s);
     baseline: websocket-client with UTF-8 validation, stdlib json into a list of dicts;
  2. decode + store in-process (msg/s); baseline: stdlib json.loads into a list of dicts;
  3. memory per stored tick (bytes); baseline: the list of dicts;
  4. 1s/1m/5m bars of 1M ticks per symbol from the live bars (ms); baseline: pandas resample of
     the ticks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import websocket

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.config import FeedConfig  # noqa: E402
from backend.feed.streams import Ingestor  # noqa: E402
from backend.feed.wire import FrameDecoder, encode_agg_trade, encode_combined, stream_name  # noqa: E402
from backend.store.records import TradeBatch  # noqa: E402
from backend.store.tick_store import TickStore  # noqa: E402


def synthetic_trades(symbol: str, n: int, seed: int = 1, start_ms: int = 1_765_000_000_000):
    """A realistic tape: ~20 trades a second (BTCUSDT futures on an average day), prices on a
    0.1 grid, ids consecutive."""
    rng = np.random.default_rng(seed)
    times = start_ms + np.cumsum(rng.exponential(50.0, n)).astype(np.int64)
    price = np.round(90_000 + np.cumsum(rng.normal(0, 0.5, n)), 1)
    qty = np.round(rng.lognormal(np.log(0.01), 1.0, n), 3) + 0.001
    ids = 3_000_000_000 + np.arange(n, dtype=np.int64)
    fills = rng.geometric(0.6, n)
    first = 7_000_000_000 + np.concatenate(([0], np.cumsum(fills)[:-1]))
    return TradeBatch(symbol, ids, price, qty, first, first + fills - 1, times, rng.random(n) < 0.5)


def frames_of(batch: TradeBatch) -> list[bytes]:
    stream = stream_name(batch.symbol)
    return [
        encode_combined(stream, encode_agg_trade(t, t.trade_time_ms + 3)) for t in batch.trades()
    ]


def median_of(fn, repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


# --- 1. end to end -----------------------------------------------------------------------------


class ServerProcess:
    """The local exchange in its own process (as in real use: no GIL shared with the client),
    replaying a synthetic tape written as data.binance.vision futures aggTrades CSV files."""

    def __init__(self, tape: dict[str, TradeBatch], folder: Path) -> None:
        files = []
        for symbol, batch in tape.items():
            path = folder / f"{symbol}-aggTrades-bench.csv"
            with open(path, "w") as fh:
                fh.write(
                    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
                )
                for t in batch.trades():
                    fh.write(
                        f"{t.agg_id},{t.price!r},{t.qty!r},{t.first_trade_id},{t.last_trade_id},"
                        f"{t.trade_time_ms},{str(t.buyer_is_maker).lower()}\n"
                    )
            files.append(str(path))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "backend",
                "--log-level",
                "WARNING",
                "serve",
                "--speed",
                "0",
                "--files",
                *files,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        port = int(self.proc.stdout.readline().strip().split("=")[1])
        self.ws_url, self.rest_url = f"ws://127.0.0.1:{port}/market", f"http://127.0.0.1:{port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)


def e2e_ours(tape: dict[str, TradeBatch], total: int, folder: Path) -> float:
    with ServerProcess(tape, folder) as ex:
        store = TickStore(list(tape), tick_capacity=total)
        cfg = FeedConfig(symbols=list(tape), ws_url=ex.ws_url, rest_url=ex.rest_url, funding=False)
        ingestor = Ingestor(store, cfg).start()
        t0 = None
        while store.snapshot().total_ticks < total:
            if t0 is None and store.snapshot().total_ticks > 0:
                t0 = time.perf_counter()
            time.sleep(0.001)
        elapsed = time.perf_counter() - t0
        ingestor.stop()
    return total / elapsed


def e2e_naive(tape: dict[str, TradeBatch], total: int, folder: Path) -> float:
    with ServerProcess(tape, folder) as ex:
        streams = "/".join(stream_name(s) for s in tape)
        ws = websocket.create_connection(f"{ex.ws_url}/stream?streams={streams}", timeout=10)
        rows: list[dict] = [json.loads(ws.recv())]
        t0 = time.perf_counter()
        while len(rows) < total:
            rows.append(json.loads(ws.recv()))
        elapsed = time.perf_counter() - t0
        ws.close()
    return (total - 1) / elapsed


# --- 2./3. decode + store, memory --------------------------------------------------------------


def decode_store_ours(frames: list[bytes], symbol: str) -> tuple[float, TickStore]:
    store = TickStore([symbol], tick_capacity=len(frames))
    decoder = FrameDecoder([symbol])
    t0 = time.perf_counter()
    for i in range(0, len(frames), 2048):
        for batch in decoder.decode(frames[i : i + 2048]).batches.values():
            store.ingest(batch)
    return len(frames) / (time.perf_counter() - t0), store


def decode_store_naive(frames: list[bytes]) -> tuple[float, list[dict]]:
    rows = []
    t0 = time.perf_counter()
    for f in frames:
        rows.append(json.loads(f)["data"])
    return len(frames) / (time.perf_counter() - t0), rows


def naive_bytes_per_tick(frames: list[bytes]) -> float:
    tracemalloc.start()
    rows = [json.loads(f)["data"] for f in frames]
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return size / len(rows)


# --- 4. bars ------------------------------------------------------------------------------------


def bars_ours(store: TickStore, symbol: str) -> float:
    state = store._state[symbol].bars  # time the computation itself, not the version cache
    t0 = time.perf_counter()
    for tf in ("1s", "1m", "5m"):
        state.bars(tf)
    return (time.perf_counter() - t0) * 1000


def bars_naive(batch: TradeBatch) -> float:
    t0 = time.perf_counter()
    df = pd.DataFrame(
        {"price": batch.price, "qty": batch.qty},
        index=pd.to_datetime(batch.trade_time_ms, unit="ms"),
    )
    for rule in ("1s", "1min", "5min"):
        r = df.resample(rule)
        ohlc = r["price"].ohlc()
        vol = r["qty"].sum()
        ohlc["close"] = ohlc["close"].ffill()
        ohlc.join(vol)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--e2e-trades", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rep = args.repeat

    print(f"# ingestion benchmark  (medians of {rep}; python {sys.version.split()[0]})")
    half = args.e2e_trades // 2
    tape = {
        "BTCUSDT": synthetic_trades("BTCUSDT", half, 1),
        "ETHUSDT": synthetic_trades("ETHUSDT", half, 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        ours = median_of(lambda: e2e_ours(tape, 2 * half, Path(tmp)), max(1, rep // 2))
        naive = median_of(lambda: e2e_naive(tape, 2 * half, Path(tmp)), max(1, rep // 2))
    print(
        f"end-to-end over loopback   ours {ours:>12,.0f} msg/s   naive {naive:>12,.0f} msg/s   ratio {ours / naive:5.2f}x"
    )

    batch = synthetic_trades("BTCUSDT", args.ticks, 3)
    frames = frames_of(batch)
    runs = [decode_store_ours(frames, "BTCUSDT") for _ in range(rep)]
    ours = statistics.median(r[0] for r in runs)
    store = runs[-1][1]
    naive = median_of(lambda: decode_store_naive(frames)[0], rep)
    print(
        f"decode + store in-process  ours {ours:>12,.0f} msg/s   naive {naive:>12,.0f} msg/s   ratio {ours / naive:5.2f}x"
    )

    per_tick = store.tick_bytes() / store.snapshot().total_ticks
    naive_mem = naive_bytes_per_tick(frames[:200_000])
    print(
        f"memory per stored tick     ours {per_tick:>12.1f} B       naive {naive_mem:>12.1f} B       ratio {naive_mem / per_tick:5.1f}x smaller"
    )

    ours = median_of(lambda: bars_ours(store, "BTCUSDT"), rep)
    naive = median_of(lambda: bars_naive(batch), rep)
    seconds = len(store.bars("BTCUSDT", "1s"))
    print(
        f"1s/1m/5m bars of {args.ticks:,} ticks ({seconds:,} s)  ours {ours:8.2f} ms   naive {naive:8.2f} ms   ratio {naive / ours:6.1f}x"
    )


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
