"""Funding and basis: the mark-price wire format, the carry formula worked by hand, the local
exchange's simulated funding, and carry computed from the stream end to end."""

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

from backend.analytics import basis_bps, funding_carry_bps_per_day
from backend.config import FeedConfig
from backend.engine.pairs import MarketScan, pair_carry, with_carry
from backend.exchange.funding import FundingSim
from backend.exchange.server import LocalExchange
from backend.exchange.sources import Simulator
from backend.feed import streams as ingestion
from backend.feed.rest import RestClient
from backend.feed.streams import Ingestor
from backend.feed.wire import (
    ALL_MARKS_STREAM,
    MarkDecoder,
    encode_combined,
    encode_mark_price,
    mark_stream_name,
)
from backend.store.records import FundingSnapshot, MarkPrice
from backend.store.tick_store import TickStore
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


def test_the_rate_charged_at_a_funding_time_is_the_last_one_published_before_it():
    """Recorded from the stream: an update naming the next funding time closes the previous
    one at the rate last published before it; a REST history takes precedence."""
    from backend.store.records import FundingEvents
    from backend.store.tick_store import MarkBook

    h8 = 8 * 3_600_000
    book = MarkBook()

    def mark(t, rate, next_t):
        return MarkPrice("BTCUSDT", t, 100.0, 100.0, rate, next_t)

    book.update([mark(h8 - 2_000, 1e-4, h8), mark(h8 - 1_000, 2e-4, h8)])
    assert not len(book.funding_events("BTCUSDT").time_ms)  # not passed yet
    book.update([mark(h8 + 1_000, -5e-5, 2 * h8)])
    events = book.funding_events("BTCUSDT")
    assert events.time_ms.tolist() == [h8] and events.rate.tolist() == [2e-4]
    book.add_history(FundingEvents("BTCUSDT", np.array([0, h8]), np.array([3e-4, 2.5e-4])))
    assert book.funding_events("BTCUSDT").rate.tolist() == [3e-4, 2.5e-4]


def test_funding_history_and_lot_rules_come_from_the_local_exchange_as_binance_shapes_them():
    sim = FundingSim(["BTCUSDT", "ETHUSDT"], intervals_h={"BTCUSDT": 8, "ETHUSDT": 4})
    h4 = 4 * 3_600_000
    now = 1_765_000_000_000 // h4 * h4 + 1_000
    sim.marks(now, {"BTCUSDT": 90_000.0, "ETHUSDT": 3_000.0})
    published = sim.marks(now + h4 - 2_000, {"BTCUSDT": 90_000.0, "ETHUSDT": 3_000.0})
    sim.marks(now + h4 + 1_000, {"BTCUSDT": 90_000.0, "ETHUSDT": 3_000.0})
    eth = sim.history("ETHUSDT", now - 3 * h4, now + h4 + 1_000, 1000)
    # Every 4 h; the one the exchange lived through carries the last rate it published.
    assert (np.diff(eth.time_ms) == h4).all() and eth.time_ms[-1] == now - 1_000 + h4
    assert eth.rate[-1] == published[1].funding_rate
    again = sim.history("ETHUSDT", now - 3 * h4, now, 1000)
    np.testing.assert_array_equal(again.rate, eth.rate[: len(again.rate)])  # seeded, stable
    with LocalExchange(simulator=Simulator(["BTCUSDT", "ETHUSDT"]), history_s=86_400) as ex:
        rest = RestClient(ex.rest_url)
        rules = rest.instruments()
        assert (rules["BTCUSDT"].step, rules["BTCUSDT"].min_notional) == (0.001, 100.0)
        assert rules["ETHUSDT"].tick == 0.01
        server_now = rest.server_time_ms()
        got = rest.funding_rates("BTCUSDT", server_now - 3 * 86_400_000, server_now)
        assert len(got.time_ms) == 9 and (np.diff(got.time_ms) == 8 * 3_600_000).all()
        expected = ex.funding.history("BTCUSDT", server_now - 3 * 86_400_000, server_now, 1000)
        np.testing.assert_array_equal(got.time_ms, expected.time_ms)
        np.testing.assert_allclose(got.rate, expected.rate, rtol=0, atol=5e-9)  # 8 decimals


def test_a_simulated_backtest_pays_the_funding_it_crosses(tmp_path):
    """End to end: the engine loads lot rules and funding history from the local exchange; a
    5m backtest over days pays funding at the times it crossed, labelled simulated. The pair
    S03/S02 (cointegrated by construction; S03 funds every hour, S02 every 4 h: the
    simulation cycles 8, 8, 4, 1 h over its symbols) crosses many funding times."""
    from backend.engine import Engine, EngineOptions
    from backend.engine.pairs import PairParams, live_stats, slow_stats

    symbols = ("BTCUSDT", "ETHUSDT", "S02USDT", "S03USDT")
    opts = EngineOptions(source="simulate", symbols=symbols, db=str(tmp_path / "m.db"))
    engine = Engine(opts)
    try:
        wait_for(lambda: engine._rules.instruments and not engine._rules.is_alive(), 30,
                 "lot rules and funding history")  # fmt: skip
        context = engine.execution_context(("S03USDT", "S02USDT"), "5m")
        assert context.funding_source == "simulated"
        assert set(context.instruments) == {"S03USDT", "S02USDT"}
        assert context.instruments["S03USDT"].min_notional == 5.0
        assert len(context.funding["S03USDT"].time_ms) >= 7 * 24  # 7 days, every hour
        wait_for(lambda: len(engine.bars("S03USDT", "5m")) > 900, 30, "5m history")
        yb, xb = engine.bars("S03USDT", "5m"), engine.bars("S02USDT", "5m")
        p = PairParams(z_threshold=1.0)
        slow = slow_stats(yb, xb, p, live_stats(yb, xb, p), context)
    finally:
        engine.stop()
    bt = slow.backtest
    assert bt.summary.funding_events > 0 and bt.summary.funding_usdt != 0
    # Each payment: -rate x signed quantity x price, at a funding time inside the trip.
    trips = bt.trades[bt.trades["funding_usdt"] != 0]
    assert len(trips)
    trip = trips.iloc[0]
    start, end = trip["entry_time"].value // 10**6, trip["exit_time"].value // 10**6
    expected = 0.0
    for sym in ("S03USDT", "S02USDT"):
        f = context.funding[sym]
        bars = yb if sym == "S03USDT" else xb
        for t, r in zip(f.time_ms, f.rate, strict=True):
            if start < t <= end:
                price = bars.open[np.searchsorted(bars.open_time, t, "right") - 1]
                expected += -r * trip[f"qty_{sym}"] * price
    assert trip["funding_usdt"] == pytest.approx(expected, rel=1e-9)
