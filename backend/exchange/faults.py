"""The local exchange's fault switches (``FaultPlan``) and the junk frames of the
malformed-message fault."""

from __future__ import annotations

from dataclasses import dataclass

# Junk the malformed-message fault sends, one kind after another.
JUNK_FRAMES = (
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCU',  # truncated
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":"x",'
    b'"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}}',  # wrong type
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","p":"1"}}',  # fields
    b'{"stream":"zzzusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"ZZZUSDT","a":1,'
    b'"p":"1","q":"1","f":1,"l":1,"T":1,"m":true}}',  # unknown symbol
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,'
    b'"p":"0","q":"1","f":1,"l":1,"T":1,"m":true}}',  # zero price
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,'
    b'"p":"NaN","q":"1","f":1,"l":1,"T":1,"m":true}}',  # NaN price
    b'{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1"}}',
    b'{"result":null,"id":99}',  # a subscription reply
    b"not json at all",
)


@dataclass
class FaultPlan:
    """Fault switches; 0 means off. Counts are of trade messages sent on the streams."""

    drop_every: int = 0  # abort every connection (no close frame) after this many messages
    skip_on_drop: int = 0  # trades published while "down": never streamed, only REST has them
    duplicate_every: int = 0  # send every Nth trade message twice
    malformed_every: int = 0  # a junk frame after every Nth trade message
    refuse_connections: int = 0  # refuse this many WebSocket upgrades (HTTP 503)
    silence_after: int = 0  # after this many messages, connections go silent (no data, no pongs)
    rest_429: int = 0  # answer this many aggTrades requests with 429 + Retry-After
    rest_418: int = 0  # ... with 418 (IP ban) + Retry-After
    rest_5xx: int = 0  # ... with 503
    rest_down: bool = False  # every REST request fails with 503
    retry_after_s: int = 1
    max_connection_age_s: float = 0.0  # close connections older than this (Binance: 24 h)
