"""The local exchange speaks Binance's formats: REST endpoints, combined/raw streams, SUBSCRIBE."""

import json
import urllib.error
import urllib.request

import pytest
import websocket

from backend.exchange.server import FaultPlan
from backend.wire import FrameDecoder


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
