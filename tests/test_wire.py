"""The sans-I/O decoder: real message formats in, typed batches and counted skips out."""

import numpy as np
import pytest

from backend.exchange.server import JUNK_FRAMES
from backend.feed.wire import (
    FrameDecoder,
    RestFormatError,
    decode_rest_agg_trades,
    encode_agg_trade,
    encode_combined,
    encode_rest_agg_trades,
)
from backend.store.records import AggTrade

# Exactly as Binance documents the combined aggTrade frame.
DOC_FRAME = (
    b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":123456789,"s":"BTCUSDT",'
    b'"a":5933014,"p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}}'
)


def test_documented_frame_decodes_to_typed_columns():
    out = FrameDecoder(["BTCUSDT"]).decode([DOC_FRAME])
    b = out.batches["BTCUSDT"]
    assert b.agg_id.tolist() == [5933014] and b.price.tolist() == [0.001]
    assert b.qty.tolist() == [100.0] and b.first_trade_id.tolist() == [100]
    assert b.last_trade_id.tolist() == [105] and b.trade_time_ms.tolist() == [123456785]
    assert b.buyer_is_maker.tolist() == [True] and out.last_event_time_ms == 123456789
    assert b.agg_id.dtype == np.int64 and not out.skipped


def test_raw_stream_frame_and_mixed_symbols():
    t1 = AggTrade("BTCUSDT", 1, 90_000.5, 0.002, 10, 10, 1_000, False)
    t2 = AggTrade("ETHUSDT", 7, 3_100.25, 0.5, 70, 71, 1_001, True)
    raw = encode_agg_trade(t1, 1_005)
    combined = encode_combined("ethusdt@aggTrade", encode_agg_trade(t2, 1_006))
    out = FrameDecoder(["BTCUSDT", "ETHUSDT"]).decode([raw, combined])
    assert out.batches["BTCUSDT"].trades() == [t1]
    assert out.batches["ETHUSDT"].trades() == [t2]


def test_every_junk_kind_is_counted_and_the_good_frames_kept():
    good = [
        encode_combined(
            "btcusdt@aggTrade",
            encode_agg_trade(AggTrade("BTCUSDT", i, 100.0 + i, 1.0, i, i, 1_000 + i, False), 2_000),
        )
        for i in range(1, 4)
    ]
    frames = [good[0], *JUNK_FRAMES, good[1], b"", good[2]]
    out = FrameDecoder(["BTCUSDT", "ETHUSDT"]).decode(frames)
    assert out.batches["BTCUSDT"].agg_id.tolist() == [1, 2, 3]
    assert dict(out.skipped) == {
        "bad_json": 3,  # truncated, "not json at all", the empty frame
        "bad_fields": 2,  # wrong type, missing fields
        "unknown_symbol": 1,
        "bad_value": 2,  # zero price, NaN price
        "other_event": 1,
        "control_reply": 1,
    }
    assert sum(out.skipped.values()) + 3 == len(frames)


def test_rest_body_roundtrip_and_bad_body():
    trades = [AggTrade("ETHUSDT", 26129, 0.01633102, 4.70443515, 27781, 27781, 1498793709153, True)]
    assert decode_rest_agg_trades("ETHUSDT", encode_rest_agg_trades(trades)).trades() == trades
    assert len(decode_rest_agg_trades("ETHUSDT", b"[]")) == 0
    with pytest.raises(RestFormatError, match="ETHUSDT"):
        decode_rest_agg_trades("ETHUSDT", b'{"code":-1121,"msg":"Invalid symbol."}')
