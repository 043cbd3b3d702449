"""The live client against the local exchange: every trade exactly once through faults."""

import os
import random
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from backend.cli.soak import rss_mib
from backend.config import FeedConfig
from backend.exchange.server import FaultPlan
from backend.feed.streams import Backoff, Ingestor
from backend.storage import BarStore
from backend.store.records import TIMEFRAMES_MS
from backend.store.tick_store import TickStore
from tests.conftest import ROOT, assert_bars_equal, collect_argv, reference_bars, wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def feed_config(ex, **overrides) -> FeedConfig:
    base = dict(
        symbols=SYMBOLS,
        ws_url=ex.ws_url,
        rest_url=ex.rest_url,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        funding=False,  # these tests count the trade streams' connections and faults
        quotes=False,
    )
    base.update(overrides)
    return FeedConfig(**base)


def run_to_completion(ex, cfg, timeout_s=60.0, during=None):
    store = TickStore(cfg.symbols)
    ingestor = Ingestor(store, cfg).start()
    try:
        if during is not None:
            during(ingestor)
        wait_for(ex.done.is_set, timeout_s, "the replay to finish")
        expected = {s: len(ex.published(s)) for s in cfg.symbols}
        wait_for(
            lambda: (
                all(store.snapshot().symbols[s].ticks == n for s, n in expected.items())
                and ingestor.settle(0.01)
            ),
            timeout_s,
            "every published trade in the store",
        )
    finally:
        ingestor.stop()
    return store, ingestor.health.snapshot()


def assert_store_matches_exchange(store, ex):
    for symbol in store.symbols:
        trades = ex.published(symbol)
        for tf, tf_ms in TIMEFRAMES_MS.items():
            assert_bars_equal(
                store.bars(symbol, tf).to_frame(), reference_bars(trades, tf_ms), f"{symbol} {tf}"
            )


@pytest.mark.slow
def test_collector_db_equals_reference_through_drops_duplicates_and_junk(
    exchange_factory, dec_trades, tmp_path
):
    """The acceptance test: the real CLI collector, the real sample, faults on; the database
    holds exactly the bars computed independently from the full trade list."""
    faults = FaultPlan(drop_every=3_000, skip_on_drop=150, duplicate_every=250, malformed_every=400)
    ex = exchange_factory(trades=dec_trades, speed=None, faults=faults)
    db_path = tmp_path / "market.db"
    proc = subprocess.run(
        collect_argv(ex, db_path, "--duration", "8"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert ex.done.is_set() and ex.stats["drops"] >= 5
    db = BarStore(db_path)
    try:
        for symbol in SYMBOLS:
            published = ex.published(symbol)
            assert len(published) == len(dec_trades[symbol])
            for tf, tf_ms in TIMEFRAMES_MS.items():
                assert_bars_equal(
                    db.load(symbol, tf).to_frame(),
                    reference_bars(published, tf_ms),
                    f"{symbol} {tf}",
                )
    finally:
        db.close()
    assert "gaps" in proc.stderr and "malformed" in proc.stderr


def test_collector_picks_the_top_symbols_by_24h_quote_volume(exchange_factory, tmp_path):
    """``collect --symbols top:2`` on a 4-symbol market: the two with the largest 24 h quote
    volume by the exchange's own ticker are collected, and only they."""
    from backend.exchange.sources import Simulator
    from backend.feed.rest import RestClient

    ex = exchange_factory(
        simulator=Simulator(["AAAUSDT", "ETHUSDT", "BBBUSDT", "BTCUSDT"], seed=5), history_s=600
    )
    volumes = RestClient(ex.rest_url, 5).quote_volumes_24h()
    top2 = sorted(volumes, key=lambda s: -volumes[s])[:2]
    db_path = tmp_path / "market.db"
    argv = collect_argv(ex, db_path, "--duration", "3")
    argv[argv.index("--symbols") + 1] = "top:2"
    proc = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    with sqlite3.connect(db_path) as con:
        stored = {row[0] for row in con.execute("SELECT DISTINCT symbol FROM bars")}
    assert stored == set(top2) == {"BTCUSDT", "ETHUSDT"}


def test_refused_connections_back_off_then_resume(exchange_factory, dec_trades):
    ex = exchange_factory(trades=dec_trades, speed=None, faults=FaultPlan(refuse_connections=4))
    states = []

    def watch(ingestor):
        wait_for(lambda: ingestor.health.snapshot().state == "reconnecting", 10, "reconnecting")
        states.append("reconnecting")
        wait_for(lambda: ingestor.health.snapshot().state == "connected", 30, "connected")
        states.append("connected")

    store, health = run_to_completion(ex, feed_config(ex), during=watch)
    assert states == ["reconnecting", "connected"]
    assert health.reconnects >= 4 and ex.stats["refused"] == 4
    assert_store_matches_exchange(store, ex)


def test_silent_server_is_detected_and_the_gap_filled(exchange_factory, dec_trades):
    ex = exchange_factory(trades=dec_trades, speed=None, faults=FaultPlan(silence_after=5_000))
    cfg = feed_config(ex, idle_ping_s=0.3, pong_timeout_s=0.3)
    started = time.monotonic()
    store, health = run_to_completion(ex, cfg)
    assert health.dead_links >= 1 and health.reconnects >= 1
    assert time.monotonic() - started < 30
    assert_store_matches_exchange(store, ex)


def test_rest_rate_limits_and_errors_are_honoured(exchange_factory, dec_trades):
    faults = FaultPlan(
        drop_every=4_000, skip_on_drop=300, rest_429=2, rest_418=1, rest_5xx=2, retry_after_s=1
    )
    ex = exchange_factory(trades=dec_trades, speed=None, faults=faults)
    started = time.monotonic()
    store, health = run_to_completion(ex, feed_config(ex))
    assert faults.rest_429 == faults.rest_418 == faults.rest_5xx == 0  # all were served
    assert time.monotonic() - started >= 3  # three Retry-After waits of 1 s each
    assert health.ids_backfilled >= 300
    assert_store_matches_exchange(store, ex)


@pytest.mark.slow
def test_connections_rotate_before_their_age_limit_without_loss(exchange_factory, dec_trades):
    ex = exchange_factory(trades=dec_trades, speed=20.0)  # 20x real time: ~20 s of replay
    cfg = feed_config(ex, max_connection_age_s=1.0)
    store = TickStore(SYMBOLS)
    ingestor = Ingestor(store, cfg).start()
    try:
        wait_for(lambda: ingestor.streams[0].connections >= 4, 30, "four rotations")
    finally:
        ingestor.stop()
    rotations = ingestor.streams[0].connections
    # Compare what the store holds with what the exchange published up to the store's last id.
    for symbol in SYMBOLS:
        snap = store.snapshot().symbols[symbol]
        published = ex.published(symbol)
        upto = published.take(published.agg_id <= snap.max_agg_id)
        assert snap.ticks == len(upto) and snap.open_gaps == 0
        for tf, tf_ms in TIMEFRAMES_MS.items():
            assert_bars_equal(store.bars(symbol, tf).to_frame(), reference_bars(upto, tf_ms), tf)
    assert rotations >= 4 and ingestor.health.snapshot().reconnects == 0


def test_unfillable_gap_is_reported_not_hidden(exchange_factory, dec_trades):
    faults = FaultPlan(drop_every=2_000, skip_on_drop=100, rest_down=True)
    ex = exchange_factory(trades=dec_trades, speed=None, faults=faults)
    store = TickStore(SYMBOLS)
    ingestor = Ingestor(store, feed_config(ex)).start()
    try:
        wait_for(ex.done.is_set, 30, "the replay to finish")
        wait_for(lambda: ingestor.health.snapshot().backfill_error is not None, 10, "an error")
        snap = store.snapshot()
        assert sum(s.missing_ids for s in snap.symbols.values()) > 0
        assert "503" in ingestor.health.snapshot().backfill_error
        # REST comes back: the open gaps fill, nothing was dropped meanwhile.
        faults.rest_down = False
        wait_for(lambda: ingestor.settle(0.01), 30, "the gaps to fill")
    finally:
        ingestor.stop()
    assert_store_matches_exchange(store, ex)


def test_backoff_is_capped_jittered_and_resets():
    b = Backoff(0.5, 8.0, random.Random(1))
    delays = [b.next() for _ in range(10)]
    caps = [min(8.0, 0.5 * 2**i) for i in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert max(delays) <= 8.0 and len(set(np.round(delays, 6))) == 10
    b.reset()
    assert b.next() <= 0.5


def test_collect_rejects_bad_arguments_in_one_line(exchange_factory, dec_trades, tmp_path):
    ex = exchange_factory(trades=dec_trades)
    cases = [
        (["--symbols", "BTC-USDT"], "invalid symbol"),
        (["--symbols", "BTCUSDT,NOPEUSDT"], "unknown symbol(s) NOPEUSDT"),
        (["--duration", "-3"], "must be >= 0"),
        (["--ws-url", "http://x"], "--ws-url must start with"),
        (["--ws-url", "ws://"], "--ws-url names no host"),
        (["--flush-interval", "0"], "must be > 0"),
        (["--keep-1s", "0.01"], "--keep-1s must be 0 (keep all) or at least"),
        (["--db", str(tmp_path / "missing" / "x.db")], "cannot open database"),
        (["--db", "/proc/x"], "/proc/x"),
        (
            ["--db", "postgresql://u:secret@127.0.0.1:9/x"],
            "cannot reach PostgreSQL at postgresql://u@127.0.0.1:9/x",
        ),
        (["--symbols", "top:0"], "top:N needs a whole number N >= 1"),
        (["--symbols", "top:2", "--rest-url", "http://127.0.0.1:9"], "cannot pick symbols by"),
    ]
    for extra, message in cases:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "backend",
                "collect",
                "--ws-url",
                ex.ws_url,
                "--rest-url",
                ex.rest_url,
                "--db",
                str(tmp_path / "x.db"),
                "--duration",
                "1",
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 2, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if "error" in line]
        assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "missing").exists() and not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("source", ["simulate", "replay"])
def test_serve_prints_its_port(source):
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--source", source, "--duration", "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("LOCAL_EXCHANGE_PORT=")
        assert int(line.split("=")[1]) > 0
    finally:
        proc.terminate()
        proc.wait(10)


def _looped(tape, cycles: int, span_ms: int, trade_span: int):
    """The tape published ``cycles`` times, each pass with new ids and times (written here
    from the exchange's documented looping rule, not with its code)."""
    n = len(tape)
    k = np.repeat(np.arange(cycles, dtype=np.int64), n)
    rows = np.tile(np.arange(n), cycles)
    b = tape.take(rows)
    return type(tape)(
        tape.symbol,
        agg_id=b.agg_id + k * n,
        price=b.price,
        qty=b.qty,
        first_trade_id=b.first_trade_id + k * trade_span,
        last_trade_id=b.last_trade_id + k * trade_span,
        trade_time_ms=b.trade_time_ms + k * span_ms,
        buyer_is_maker=b.buyer_is_maker,
    )


@pytest.mark.slow
def test_a_burst_of_50k_messages_per_second_for_10_s_is_absorbed_in_bounded_memory(
    dec_trades, record_property
):
    """The exchange (its own process) replays the real sample at ~50k msg/s for ~10 s. Every
    trade lands once, bars equal the reference, and memory stays bounded by the tick capacity:
    no queue grows with the backlog (a slow reader slows the sender through TCP instead)."""
    per_pass = sum(len(b) for b in dec_trades.values())
    span_s = (
        max(int(b.trade_time_ms.max()) for b in dec_trades.values())
        - min(int(b.trade_time_ms.min()) for b in dec_trades.values())
    ) / 1000
    rate, seconds = 50_000, 10
    cycles = max(1, round(rate * seconds / per_pass))
    speed = rate * span_s / per_pass
    server = subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--speed", f"{speed:.3f}",
         "--cycles", str(cycles), "--duration", "120"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    capacity = 100_000
    try:
        port = int(server.stdout.readline().strip().split("=")[1])
        cfg = FeedConfig(
            symbols=SYMBOLS,
            ws_url=f"ws://127.0.0.1:{port}/market",
            rest_url=f"http://127.0.0.1:{port}",
            tick_capacity=capacity,
            funding=False,  # the trade feed alone, as the other feed tests
        )
        store = TickStore(SYMBOLS, tick_capacity=capacity)
        rss0 = peak = rss_mib()
        expected = {s: cycles * len(dec_trades[s]) for s in SYMBOLS}
        ingestor = Ingestor(store, cfg).start()
        started = None
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                snap = store.snapshot()
                if started is None and snap.total_ticks:
                    started = time.monotonic()
                peak = max(peak, rss_mib())
                if all(snap.symbols[s].ticks == n for s, n in expected.items()):
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            health = ingestor.health.snapshot()
        finally:
            ingestor.stop()
    finally:
        server.terminate()
        server.wait(15)
    snap = store.snapshot()
    for symbol, n in expected.items():
        s = snap.symbols[symbol]
        assert (s.ticks, s.open_gaps, s.duplicates) == (n, 0, 0), symbol
    assert health.malformed == 0 and health.reconnects == 0
    record_property("burst_msgs_per_s", round(sum(expected.values()) / elapsed))
    # Bounded memory: the ring holds the newest `capacity` ticks at 30 bytes each.
    assert store.tick_bytes() == 2 * capacity * 30
    for symbol in SYMBOLS:
        assert len(store.ticks(symbol)) == capacity
    assert peak - rss0 < 64, f"RSS grew {peak - rss0:.0f} MiB"
    span_ms = int(span_s * 1000) // 1000 * 1000 + 1000  # whole seconds, as documented
    for symbol in SYMBOLS:
        tape = dec_trades[symbol]
        trade_span = int(tape.last_trade_id.max() - tape.first_trade_id.min() + 1)
        everything = _looped(tape, cycles, span_ms, trade_span)
        np.testing.assert_array_equal(store.ticks(symbol).agg_id, everything.agg_id[-capacity:])
        for tf, tf_ms in TIMEFRAMES_MS.items():
            assert_bars_equal(
                store.bars(symbol, tf).to_frame(), reference_bars(everything, tf_ms), tf
            )


@pytest.mark.slow
def test_250_simulated_symbols_over_two_connections_every_trade_once(exchange_factory):
    """The whole-market shape: 250 symbols need two connections (at most 200 streams each).
    After 8 s of the simulation (~1,250 trades/s in all), every symbol's closed 1s bars equal
    pandas bars of the trades the exchange published: each trade once, none lost."""
    from backend.exchange.sources import Simulator

    symbols = [f"S{i:03d}USDT" for i in range(250)]
    ex = exchange_factory(simulator=Simulator(symbols, seed=9))
    cfg = feed_config(ex, symbols=symbols)
    store = TickStore(symbols)
    ingestor = Ingestor(store, cfg).start()
    try:
        assert [len(s.symbols) for s in ingestor.streams] == [200, 50]
        wait_for(lambda: ingestor.health.snapshot().state == "connected", 20, "connected")
        time.sleep(8)  # the feed runs; what it delivered is checked below, not timed
        cut_ms = int(time.time() * 1000) // 1000 * 1000 - 2_000  # seconds closed everywhere
        published = {s: ex.published(s) for s in symbols}
        expected = {s: int((b.trade_time_ms < cut_ms).sum()) for s, b in published.items()}
        wait_for(
            lambda: all(
                int(store.bars(s, "1s").trades[store.bars(s, "1s").open_time < cut_ms].sum()) >= n
                for s, n in expected.items()
            ),
            20,
            "every published trade before the cut",
        )
        for s in symbols:
            # From the first whole second after the stream's first trade (nothing before it
            # was asked for: no history here) to the cut.
            mine = store.bars(s, "1s").to_frame()
            start_ms = int(mine["open_time"].iloc[0]) + 1_000
            mine = mine[(mine["open_time"] >= start_ms) & (mine["open_time"] < cut_ms)]
            t = published[s].trade_time_ms
            trades = published[s].take(np.flatnonzero((t >= start_ms) & (t < cut_ms)))
            ref = reference_bars(trades, 1_000)  # from its first trade's second to its last
            inside = mine["open_time"].between(ref["open_time"].iloc[0], ref["open_time"].iloc[-1])
            assert (mine.loc[~inside, "trades"] == 0).all()  # ours: empty seconds around them
            assert_bars_equal(mine[inside].reset_index(drop=True), ref, s)
        assert sum(expected.values()) > 250 * 5 * 4  # ~5 trades/s each for > 4 s
    finally:
        ingestor.stop()
