"""The local exchange speaks Binance's formats: REST endpoints, combined/raw streams, SUBSCRIBE."""

import json
import logging
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import websocket

from backend.exchange.server import FaultPlan
from backend.feed.wire import FrameDecoder
from tests.conftest import reference_bars, wait_for


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def read_trades(ws, n):
    frames = []
    while len(frames) < n:
        frames.append(ws.recv_data()[1])
    return frames


def test_rest_serves_only_published_trades_by_id(exchange_factory, dec_trades):
    ex = exchange_factory(trades=dec_trades, speed=None)
    base = ex.rest_url
    status, _, body = get(f"{base}/fapi/v1/aggTrades?symbol=ETHUSDT&fromId=1000000000&limit=5")
    assert status == 200 and body == []  # nothing is public before the replay starts
    ws = websocket.create_connection(f"{ex.ws_url}/stream?streams=ethusdt@aggTrade", timeout=5)
    try:
        read_trades(ws, 600)
    finally:
        ws.close()
    status, headers, body = get(
        f"{base}/fapi/v1/aggTrades?symbol=ETHUSDT&fromId=1000000010&limit=3"
    )
    assert status == 200 and [r["a"] for r in body] == [1000000010, 1000000011, 1000000012]
    eth = dec_trades["ETHUSDT"]
    assert float(body[0]["p"]) == eth.price[10] and body[0]["T"] == eth.trade_time_ms[10]
    assert set(body[0]) == {"a", "p", "q", "f", "l", "T", "m"}
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 20
    status, _, body = get(f"{base}/fapi/v1/aggTrades?symbol=ETHUSDT&fromId=1000000000&limit=5000")
    assert status == 200 and 500 <= len(body) <= 1000  # capped at 1000, public ones only


def test_rest_errors_and_exchange_info(exchange_factory, dec_trades):
    ex = exchange_factory(trades=dec_trades, faults=FaultPlan(rest_429=1, retry_after_s=2))
    status, headers, _ = get(f"{ex.rest_url}/fapi/v1/aggTrades?symbol=ETHUSDT&fromId=1")
    assert status == 429 and headers["Retry-After"] == "2"
    status, _, body = get(f"{ex.rest_url}/fapi/v1/aggTrades?symbol=NOPEUSDT&fromId=1")
    assert status == 400 and body["code"] == -1121
    status, _, info = get(f"{ex.rest_url}/fapi/v1/exchangeInfo")
    assert status == 200 and {s["symbol"] for s in info["symbols"]} == {"BTCUSDT", "ETHUSDT"}


@pytest.mark.parametrize("path", ["/market/ws/btcusdt@aggTrade", "/ws/btcusdt@aggTrade"])
def test_raw_stream_carries_bare_events(exchange_factory, dec_trades, path):
    ex = exchange_factory(trades=dec_trades, speed=None)
    ws = websocket.create_connection(f"ws://127.0.0.1:{ex.port}{path}", timeout=5)
    try:
        frames = read_trades(ws, 50)
    finally:
        ws.close()
    assert all(json.loads(f)["e"] == "aggTrade" for f in frames)
    batch = FrameDecoder(["BTCUSDT"]).decode(frames).batches["BTCUSDT"]
    btc = dec_trades["BTCUSDT"]
    assert batch.agg_id.tolist() == btc.agg_id[:50].tolist()
    assert batch.price.tolist() == btc.price[:50].tolist()


def test_subscribe_method_is_answered_and_takes_effect(exchange_factory, dec_trades):
    ex = exchange_factory(trades=dec_trades, speed=None)
    ws = websocket.create_connection(f"{ex.ws_url}/ws", timeout=5)
    try:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 1}))
        first = json.loads(ws.recv())
        assert first == {"result": None, "id": 1}
        frames = read_trades(ws, 20)
    finally:
        ws.close()
    assert {json.loads(f)["s"] for f in frames} == {"ETHUSDT"}


def test_refused_connections_answer_503(exchange_factory, dec_trades):
    ex = exchange_factory(trades=dec_trades, faults=FaultPlan(refuse_connections=1))
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"{ex.ws_url}/stream?streams=btcusdt@aggTrade", timeout=5)
    assert info.value.status_code == 503
    ws = websocket.create_connection(f"{ex.ws_url}/stream?streams=btcusdt@aggTrade", timeout=5)
    ws.close()


def _klines(ex, query):
    status, headers, body = get(f"{ex.rest_url}/fapi/v1/klines?symbol=ETHUSDT&{query}")
    assert status == 200, body
    return headers, body


def test_klines_are_the_published_trades_bars_in_binance_array_format(exchange_factory, dec_trades):
    """All history public (no streaming yet): klines equal bars built from the trades by the
    kline definition (pandas reference), selected as Binance selects them."""
    ex = exchange_factory(trades=dec_trades, history_s=10_000)  # the whole tape is history
    ref = reference_bars(dec_trades["ETHUSDT"], 60_000)
    headers, body = _klines(ex, "interval=1m&limit=1000")
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 5  # limit 1000 weighs 5
    assert [row[0] for row in body] == ref.open_time.tolist()
    first = body[0]
    assert len(first) == 12 and first[6] == first[0] + 59_999
    assert [float(v) for v in first[1:6]] == pytest.approx(
        ref.loc[0, ["open", "high", "low", "close", "volume"]].tolist(), rel=1e-12
    )
    assert first[8] == ref.loc[0, "trades"] and float(first[7]) == pytest.approx(
        ref.loc[0, "quote_volume"], rel=1e-12
    )
    t2 = int(ref.open_time[2])
    _, body = _klines(ex, f"interval=1m&endTime={t2 - 1}&limit=1")
    assert [row[0] for row in body] == [int(ref.open_time[1])]  # the last one before endTime
    _, body = _klines(ex, f"interval=1m&startTime={t2}&limit=2")
    assert [row[0] for row in body] == ref.open_time[2:4].tolist()
    status, _, body = get(f"{ex.rest_url}/fapi/v1/klines?symbol=ETHUSDT&interval=1s")
    assert status == 400 and body["code"] == -1120


def test_agg_trades_by_time_and_the_one_hour_limit(exchange_factory, dec_trades):
    ex = exchange_factory(trades=dec_trades, history_s=10_000)
    eth = dec_trades["ETHUSDT"]
    t = int(eth.trade_time_ms[100])
    status, _, body = get(
        f"{ex.rest_url}/fapi/v1/aggTrades?symbol=ETHUSDT&startTime={t}&endTime={t + 999}&limit=1"
    )
    first = int(np.flatnonzero(eth.trade_time_ms >= t)[0])
    assert status == 200 and [r["a"] for r in body] == [int(eth.agg_id[first])]
    status, _, body = get(
        f"{ex.rest_url}/fapi/v1/aggTrades?symbol=ETHUSDT&startTime={t}&endTime={t + 3_600_000}"
    )
    assert status == 400 and body["code"] == -1127


@pytest.mark.slow
def test_replay_history_is_public_before_streaming_and_the_stream_keeps_recorded_pace(
    exchange_factory, dec_trades
):
    """The first 100 s are history: served over REST at once, never streamed. Then trades
    leave at their recorded pace (not held back in chunks): each arrives within 150 ms of its
    recorded offset from the first one."""
    ex = exchange_factory(trades=dec_trades, speed=1.0, history_s=100)
    eth = dec_trades["ETHUSDT"]
    start = int(eth.trade_time_ms.min()) + 100_000
    status, _, clock = get(f"{ex.rest_url}/fapi/v1/time")
    assert abs(clock["serverTime"] - start) < 1_000  # the replay's own clock
    status, _, body = get(f"{ex.rest_url}/fapi/v1/aggTrades?symbol=ETHUSDT&limit=1000")
    assert max(r["T"] for r in body) < start
    ws = websocket.create_connection(f"{ex.ws_url}/stream?streams=ethusdt@aggTrade", timeout=5)
    arrivals = []
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            event = json.loads(ws.recv_data()[1])["data"]
            arrivals.append((time.monotonic(), event["T"]))
    finally:
        ws.close()
    assert arrivals[0][1] >= start and len(arrivals) > 20
    wall0, t0 = arrivals[0]
    late = [abs((wall - wall0) - (t - t0) / 1000) for wall, t in arrivals]
    assert max(late) < 0.15, f"worst {max(late):.3f}s off the recorded pace"


def test_a_looped_replay_says_its_pass_and_time_shift(exchange_factory, dec_trades):
    ex = exchange_factory(trades=dec_trades, speed=None, loop=True, cycles=2)
    assert (ex.cycle, ex.time_shift_ms) == (0, 0)
    eth = dec_trades["ETHUSDT"]
    ws = websocket.create_connection(f"{ex.ws_url}/stream?streams=ethusdt@aggTrade", timeout=5)
    try:
        read_trades(ws, 2 * len(eth))  # both passes
    finally:
        ws.close()
    wait_for(ex.done.is_set, 10, "the second pass to end")
    span_ms = ex.time_shift_ms
    assert ex.cycle == 1 and span_ms % 1000 == 0
    assert span_ms >= int(eth.trade_time_ms.max() - eth.trade_time_ms.min())
    last = ex.published("ETHUSDT")
    assert int(last.trade_time_ms[-1]) == int(eth.trade_time_ms[-1]) + span_ms


def test_symbols_picked_by_24h_quote_volume(exchange_factory, tmp_path):
    """``top:N`` / ``all``: perpetuals ranked by the ticker's 24 h quote volume, which is the
    sum of price x quantity of the trades the exchange published in the last 24 h."""
    from backend.config import ConfigError
    from backend.exchange.sources import Simulator
    from backend.feed.rest import RestClient, pick_symbols

    symbols = ["AAAUSDT", "ETHUSDT", "BTCUSDT", "CCCUSDT"]
    ex = exchange_factory(simulator=Simulator(symbols, seed=3), history_s=1_800)

    def newest_ms(symbol):
        url = f"{ex.rest_url}/fapi/v1/aggTrades?symbol={symbol}&limit=1"
        return json.loads(urllib.request.urlopen(url).read())[-1]["T"]

    # The simulation runs on while we ask: the ticker counts the trades published at its
    # moment, which lies between the newest trade seen just before and just after it.
    before = {s: newest_ms(s) for s in symbols}
    tickers = json.loads(urllib.request.urlopen(f"{ex.rest_url}/fapi/v1/ticker/24hr").read())
    after = {s: newest_ms(s) for s in symbols}
    volumes = {t["symbol"]: float(t["quoteVolume"]) for t in tickers}
    assert set(RestClient(ex.rest_url, 5).quote_volumes_24h()) == set(volumes) == set(symbols)
    for symbol in symbols:  # against every trade served over REST, page by page from the first
        trades, from_id = [], 0
        while True:
            url = f"{ex.rest_url}/fapi/v1/aggTrades?symbol={symbol}&limit=1000&fromId={from_id}"
            page = json.loads(urllib.request.urlopen(url).read())
            trades += page
            if len(page) < 1000 or page[-1]["T"] > after[symbol]:
                break
            from_id = page[-1]["a"] + 1

        def served(until_ms, trades=trades):
            return sum(float(t["p"]) * float(t["q"]) for t in trades if t["T"] <= until_ms)

        low, high = served(before[symbol]), served(after[symbol])
        assert low * (1 - 1e-9) <= volumes[symbol] <= high * (1 + 1e-9)
        assert high - low < 0.01 * high  # a few trades apart: the bounds are tight
    ranked = sorted(symbols, key=lambda s: -volumes[s])
    assert ranked[:2] == ["BTCUSDT", "ETHUSDT"]  # 90,000 x 12/s and 3,100 x 20/s lead
    assert pick_symbols(ex.rest_url, 2) == ["BTCUSDT", "ETHUSDT"]
    assert pick_symbols(ex.rest_url, None) == ranked
    with pytest.raises(ConfigError, match="cannot pick symbols by volume at http://127.0.0.1:9"):
        pick_symbols("http://127.0.0.1:9", 3, timeout_s=2)


def test_connections_and_http_answers_are_not_logged_one_by_one(
    exchange_factory, dec_trades, caplog
):
    with caplog.at_level(logging.INFO):
        ex = exchange_factory(trades=dec_trades)
        for _ in range(3):
            assert get(f"{ex.rest_url}/fapi/v1/exchangeInfo")[0] == 200
        ws = websocket.create_connection(f"{ex.ws_url}/ws/btcusdt@aggTrade", timeout=5)
        ws.recv_data()
        ws.close()
        ex.stop()
    chatter = [r.getMessage() for r in caplog.records if r.levelno < logging.WARNING]
    assert not [m for m in chatter if "connection" in m or "HTTP response" in m], chatter
