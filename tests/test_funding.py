"""Funding and basis: the mark-price wire format, the carry formula worked by hand, the local
exchange's simulated funding, and carry computed from the stream end to end."""

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

from backend import ingestion
from backend.analytics import basis_bps, funding_carry_bps_per_day
from backend.config import FeedConfig
from backend.exchange.funding import FundingSim
from backend.exchange.server import LocalExchange
from backend.exchange.sources import Simulator
from backend.ingestion import Ingestor
from backend.pairs import MarketScan, pair_carry, with_carry
from backend.records import MarkPrice
from backend.rest import RestClient
from backend.state import FundingSnapshot, TickStore
from backend.wire import (
    ALL_MARKS_STREAM,
    MarkDecoder,
    encode_combined,
    encode_mark_price,
    mark_stream_name,
)
from tests.conftest import wait_for

DOC_FRAME = (
    b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,'
    b'"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265",'
    b'"r":"0.00038167","T":1562306400000}}'
)


def test_documented_mark_frame_decodes():
    marks, skipped = MarkDecoder(["BTCUSDT"]).decode([DOC_FRAME])
    assert marks == [
        MarkPrice("BTCUSDT", 1562305380000, 11794.15, 11784.62659091, 0.00038167, 1562306400000)
    ]
    assert not skipped


def test_array_frame_keeps_watched_symbols_and_bad_frames_are_counted():
    eth = MarkPrice("ETHUSDT", 5, 3001.0, 3000.0, -0.0002, 10)
    other = MarkPrice("XYZUSDT", 5, 1.0, 1.0, 0.0, 10)
    array = b"[" + encode_mark_price(eth) + b"," + encode_mark_price(other) + b"]"
    delivery = DOC_FRAME.replace(b'"r":"0.00038167"', b'"r":""')
    frames = [
        encode_combined(ALL_MARKS_STREAM, array),
        encode_mark_price(eth),  # a raw stream's frame
        b'{"result":null,"id":1}',
        b"{not json",
        b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","s":"BTCUSDT"}}',
        delivery,
    ]
    marks, skipped = MarkDecoder(["BTCUSDT", "ETHUSDT"]).decode(frames)
    assert marks == [eth, eth]  # XYZUSDT is not watched: not ours, not an error
    assert skipped == {"control_reply": 1, "bad_json": 1, "bad_fields": 1, "bad_value": 1}


def test_carry_worked_by_hand():
    # Long 1 of y, short 0.8 of x. y pays 0.01 % every 8 h: 3 x 1 bp = 3 bps a day paid.
    # x's rate is -0.03 % every 4 h: shorts pay longs, so the short x leg pays
    # 0.8 x 3 bps x 6 = 14.4 bps a day. Carry earned: -3 - 14.4 = -17.4 bps/day.
    assert funding_carry_bps_per_day(0.0001, 8, -0.0003, 4, 0.8) == pytest.approx(-17.4)
    # Both legs positive: the long pays 3, the short receives 0.5 x 1 bp x 24 = 12 (1 h interval).
    assert funding_carry_bps_per_day(0.0001, 8, 0.0001, 1, 0.5) == pytest.approx(9.0)
    assert basis_bps(100.05, 100.0) == pytest.approx(5.0)
    assert np.isnan(funding_carry_bps_per_day(np.nan, 8, 0.0001, 8, 1.0))


def test_pair_carry_waits_for_both_legs_and_their_intervals():
    y = MarkPrice("AUSDT", 1_000, 101.0, 100.0, 0.0001, 2_000)
    x = MarkPrice("BUSDT", 1_500, 49.9, 50.0, -0.0003, 2_000)
    assert pair_carry(FundingSnapshot({"AUSDT": y}, {"AUSDT": 8}, 1), "AUSDT", "BUSDT", 1) is None
    no_interval = FundingSnapshot({"AUSDT": y, "BUSDT": x}, {"AUSDT": 8}, 2)
    assert pair_carry(no_interval, "AUSDT", "BUSDT", 0.8) is None
    c = pair_carry(
        FundingSnapshot({"AUSDT": y, "BUSDT": x}, {"AUSDT": 8, "BUSDT": 4}, 2),
        "AUSDT",
        "BUSDT",
        0.8,
    )
    assert c.long_bps_day == pytest.approx(-17.4) and c.short_bps_day == pytest.approx(17.4)
    assert c.basis_y_bps == pytest.approx(100.0) and c.basis_x_bps == pytest.approx(-20.0)
    assert c.as_of_ms == 1_000


def test_scan_gets_each_pairs_carry():
    table = pd.DataFrame({"y": ["AUSDT", "AUSDT"], "x": ["BUSDT", "CUSDT"], "beta": [0.8, 2.0]})
    scan = MarketScan(table, "1m", 300, 0, (), None)
    marks = {
        "AUSDT": MarkPrice("AUSDT", 1, 1.0, 1.0, 0.0001, 2),
        "BUSDT": MarkPrice("BUSDT", 1, 1.0, 1.0, -0.0003, 2),
    }
    out = with_carry(scan, FundingSnapshot(marks, {"AUSDT": 8, "BUSDT": 4, "CUSDT": 8}, 2))
    assert out.table["carry_bps_day"].iloc[0] == pytest.approx(-17.4)
    assert np.isnan(out.table["carry_bps_day"].iloc[1])  # CUSDT has no mark price yet


def test_simulated_funding_changes_sign_and_follows_each_interval():
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    sim = FundingSim(symbols, seed=3)
    t0 = 1_765_000_000_000
    rates = {s: [] for s in symbols}
    for k in range(4 * 3600):  # four simulated hours, one update a second
        for m in sim.marks(t0 + k * 1000, dict.fromkeys(symbols, 100.0)):
            rates[m.symbol].append(m.funding_rate)
            hours = sim.intervals_h[m.symbol]
            assert m.next_funding_time_ms % (hours * 3_600_000) == 0
            assert 0 < m.next_funding_time_ms - m.event_time_ms <= hours * 3_600_000
            # The premium is the basis; the rate is premium plus interest, per interval.
            premium = m.mark_price / m.index_price - 1
            assert m.funding_rate == pytest.approx((premium + 0.0001) * hours / 8)
    assert sim.intervals_h == {"BTCUSDT": 8, "ETHUSDT": 8, "SOLUSDT": 4, "XRPUSDT": 1}
    for s in symbols:
        signs = np.sign(rates[s])
        assert (np.diff(signs) != 0).sum() >= 2, f"{s} funding never changed sign"
    listed = {i["symbol"]: i["fundingIntervalHours"] for i in sim.funding_info()}
    assert listed == {"SOLUSDT": 4, "XRPUSDT": 1}  # like Binance: only the adjusted ones


@pytest.mark.parametrize("array_from", [50, 2], ids=["per-symbol streams", "all-market array"])
def test_carry_from_the_mark_price_stream_equals_the_hand_worked_value(monkeypatch, array_from):
    monkeypatch.setattr(ingestion, "MARK_ARRAY_FROM", array_from)
    symbols = ["BTCUSDT", "ETHUSDT"]
    funding = FundingSim(
        symbols, intervals_h={"ETHUSDT": 4}, fixed_rates={"BTCUSDT": 0.0001, "ETHUSDT": -0.0003}
    )
    with LocalExchange(simulator=Simulator(symbols), funding=funding) as ex:
        assert RestClient(ex.rest_url).funding_intervals(symbols) == {"BTCUSDT": 8, "ETHUSDT": 4}
        cfg = FeedConfig(symbols=symbols, ws_url=ex.ws_url, rest_url=ex.rest_url)
        ingestor = Ingestor(TickStore(symbols), cfg).start()
        try:
            expected = ALL_MARKS_STREAM if array_from == 2 else mark_stream_name("BTCUSDT")
            assert expected in ingestor.mark_client.url
            wait_for(
                lambda: pair_carry(ingestor.marks.snapshot(), "BTCUSDT", "ETHUSDT", 0.8),
                10,
                "both legs' mark prices and intervals",
            )
            snap = ingestor.marks.snapshot()
        finally:
            ingestor.stop()
    carry = pair_carry(snap, "BTCUSDT", "ETHUSDT", 0.8)
    assert carry.long_bps_day == pytest.approx(-17.4)
    assert carry.short_bps_day == pytest.approx(17.4)
    assert (carry.interval_y_h, carry.interval_x_h) == (8, 4)
    for s, basis in (("BTCUSDT", carry.basis_y_bps), ("ETHUSDT", carry.basis_x_bps)):
        m = snap.marks[s]
        assert basis == pytest.approx(1e4 * (m.mark_price / m.index_price - 1))
    assert ingestor.mark_health.snapshot().malformed == 0


def test_funding_info_endpoint_matches_binance_shape():
    with LocalExchange(simulator=Simulator(["BTCUSDT", "ETHUSDT", "SOLUSDT"])) as ex:
        body = json.loads(urllib.request.urlopen(ex.rest_url + "/fapi/v1/fundingInfo").read())
    assert body == [
        {
            "symbol": "SOLUSDT",
            "adjustedFundingRateCap": "0.02000000",
            "adjustedFundingRateFloor": "-0.02000000",
            "fundingIntervalHours": 4,
            "disclaimer": False,
        }
    ]


def test_carry_waits_while_funding_info_is_unreachable_and_appears_once_it_answers(monkeypatch):
    monkeypatch.setattr(ingestion, "FUNDING_INFO_RETRY_S", 0.2)
    symbols = ["BTCUSDT", "ETHUSDT"]
    funding = FundingSim(symbols, fixed_rates={"BTCUSDT": 0.0001, "ETHUSDT": 0.0001})
    with LocalExchange(simulator=Simulator(symbols), funding=funding) as ex:
        ex.faults.rest_down = True
        cfg = FeedConfig(symbols=symbols, ws_url=ex.ws_url, rest_url=ex.rest_url)
        ingestor = Ingestor(TickStore(symbols), cfg).start()
        try:
            health = ingestor.mark_health
            wait_for(
                lambda: (
                    len(ingestor.marks.snapshot().marks) == 2
                    and "fundingInfo" in (health.snapshot().last_error or "")
                ),
                10,
                "mark prices in, fundingInfo refused",
            )
            # Mark prices without intervals: no carry is guessed.
            assert pair_carry(ingestor.marks.snapshot(), *symbols, 1.0) is None
            ex.faults.rest_down = False
            wait_for(lambda: pair_carry(ingestor.marks.snapshot(), *symbols, 1.0), 10, "the carry")
            assert health.snapshot().last_error is None
        finally:
            ingestor.stop()
    # Both legs 0.01 % every 8 h, beta 1: the long pays 3 bps a day, the short receives 3.
    assert pair_carry(ingestor.marks.snapshot(), *symbols, 1.0).long_bps_day == pytest.approx(0)
