"""Recorded-file loaders (the real samples) and the seeded simulation."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from backend.analytics import scan_pairs
from backend.exchange.sources import (
    Simulator,
    SourceFormatError,
    load_agg_trades_csv,
    load_files,
    load_ndjson,
    parse_agg_trades_csv,
)
from tests.conftest import SAMPLE_DEC, SAMPLE_NOV, SPOT_CSV, reference_bars


def test_ndjson_sample_is_numbered_per_symbol_and_junk_rows_counted(shared_data):
    skipped = Counter()
    trades = load_ndjson(SAMPLE_DEC, skipped)
    # The README counts 15,023 ETHUSDT and 4,257 BTCUSDT rows; some rows carry price 0.
    rows = [json.loads(line) for line in SAMPLE_DEC.read_text().splitlines()]
    zero = Counter(r["symbol"] for r in rows if r["price"] <= 0 or r["size"] <= 0)
    assert skipped == {"bad_price_or_size": sum(zero.values())} and sum(zero.values()) == 98
    assert len(trades["ETHUSDT"]) == 15_023 - zero["ETHUSDT"]
    assert len(trades["BTCUSDT"]) == 4_257 - zero["BTCUSDT"]
    for batch in trades.values():
        assert (np.diff(batch.agg_id) == 1).all()
        assert (np.diff(batch.trade_time_ms) >= 0).all()
        assert (batch.price > 0).all()
    eth = trades["ETHUSDT"]
    assert eth.trade_time_ms[0] == 1765788195300  # 2025-12-15T08:43:15.300Z
    assert eth.price[0] == 3139.77 and eth.qty[0] == 0.054


def test_tick_rule_side():
    small = load_ndjson(SAMPLE_NOV)["BTCUSDT"]
    up = np.flatnonzero(np.diff(small.price) > 0) + 1
    down = np.flatnonzero(np.diff(small.price) < 0) + 1
    assert not small.buyer_is_maker[up].any()  # upticks: the taker bought
    assert small.buyer_is_maker[down].all()


def test_spot_csv_in_microseconds():
    batch = load_agg_trades_csv(SPOT_CSV)
    assert batch.symbol == "BTCUSDT" and len(batch) == 5_000
    assert batch.agg_id[0] == 3800397495 and batch.trade_time_ms[0] == 1767225600039
    assert batch.buyer_is_maker[:3].tolist() == [True, False, False]


def test_futures_csv_layout_with_header_in_milliseconds():
    text = (
        b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
        b"100,89000.1,0.010,500,502,1765788195300,false\n"
        b"101,89000.2,0.020,503,503,1765788195301,true\n"
    )
    batch = parse_agg_trades_csv(text, "BTCUSDT")
    assert batch.trade_time_ms.tolist() == [1765788195300, 1765788195301]
    assert batch.last_trade_id.tolist() == [502, 503]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"1,2,3\n", "row 1: expected 7 or 8 columns"),
        (b"1,abc,1,1,1,1,true\n", "row 1"),
        (b"1,1,1,1,1,1,true\n2,-1,1,2,2,2,false\n", "row 2: price and quantity must be positive"),
        (b"1,1,1,1,1,1,maybe\n", "is_buyer_maker"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"", "no trades"),
    ],
)
def test_bad_csv_names_row_and_problem(data, message):
    with pytest.raises(SourceFormatError, match=message):
        parse_agg_trades_csv(data, "BTCUSDT", "upload.csv")


def test_load_files_refuses_one_symbol_in_two_files(shared_data):
    with pytest.raises(SourceFormatError, match="more than one file"):
        load_files([SAMPLE_DEC, SAMPLE_NOV])


def test_simulator_is_seeded_on_grid_and_cointegrated():
    def run(seed):
        sim = Simulator(["BTCUSDT", "ETHUSDT"], seed=seed, start_ms=1_000_000)
        out = {"BTCUSDT": [], "ETHUSDT": []}
        for step in range(1, 2001):
            for s, b in sim.advance(1_000_000 + step * 500).items():
                out[s].append(b)
        return out

    a, b = run(1), run(1)
    assert [len(x) for x in a["BTCUSDT"]] == [len(x) for x in b["BTCUSDT"]]
    btc = np.concatenate([x.price for x in a["BTCUSDT"]])
    eth = np.concatenate([x.price for x in a["ETHUSDT"]])
    ids = np.concatenate([x.agg_id for x in a["ETHUSDT"]])
    assert (np.diff(ids) == 1).all()
    assert np.allclose(np.round(btc / 0.1) * 0.1, btc) and np.allclose(
        np.round(eth / 0.01) * 0.01, eth
    )
    # Rates: ~12/s and ~20/s over 1,000 s.
    assert 10_000 < len(btc) < 14_000 and 17_000 < len(eth) < 23_000
    # Per-step last prices: log ETH - 0.8 log BTC stays stationary around its start.
    lb = np.log([x.price[-1] for x in a["BTCUSDT"]])
    le = np.log([x.price[-1] for x in a["ETHUSDT"]])
    n = min(len(lb), len(le))
    beta = np.polyfit(lb[:n], le[:n], 1)[0]
    assert abs(beta - 0.8) < 0.3


def _futures_csv(rows) -> bytes:
    head = (
        b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
    )
    body = "".join(
        f"{a},{p},{q},{2 * a},{2 * a + 1},{t},{'true' if m else 'false'}\n"
        for a, p, q, t, m in rows
    )
    return head + body.encode()


def test_usdm_day_files_load_as_downloaded_zip_or_csv_and_join(tmp_path):
    """data.binance.vision USD-M files: a .zip holding the day's .csv, or the .csv; two days of
    one symbol join into one tape by id (an overlap counted once); a hole in the ids is refused."""
    day1 = [
        (100 + i, 3000.0 + i / 100, 0.5, 1_765_756_800_000 + 1000 * i, i % 2 == 0)
        for i in range(50)
    ]
    day2 = [
        (140 + i, 3001.0 + i / 100, 0.25, 1_765_756_840_000 + 1000 * i, False) for i in range(30)
    ]
    import zipfile

    z = tmp_path / "ETHUSDT-aggTrades-2025-12-15.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ETHUSDT-aggTrades-2025-12-15.csv", _futures_csv(day1))
    csv2 = tmp_path / "ETHUSDT-aggTrades-2025-12-16.csv"
    csv2.write_bytes(_futures_csv(day2))
    tape = load_files([z, csv2])["ETHUSDT"]
    assert tape.agg_id.tolist() == list(range(100, 170))
    assert tape.trade_time_ms[0] == 1_765_756_800_000 and tape.buyer_is_maker[:2].tolist() == [
        True,
        False,
    ]
    assert tape.qty[-1] == 0.25 and tape.last_trade_id[0] == 201
    # The fast parser and the row-by-row one agree.
    slow = parse_agg_trades_csv(_futures_csv(day1), "ETHUSDT")
    fast = load_agg_trades_csv(z)
    for name in ("agg_id", "price", "qty", "first_trade_id", "last_trade_id", "trade_time_ms"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    holed = tmp_path / "ETHUSDT-aggTrades-2025-12-17.csv"
    holed.write_bytes(_futures_csv([(500, 1.0, 1.0, 1_765_900_000_000, True)]))
    with pytest.raises(SourceFormatError, match="gap"):
        load_files([z, holed])
    bad = tmp_path / "ETHUSDT-aggTrades-2025-12-18.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SourceFormatError, match="not a zip"):
        load_files([bad])


def test_simulated_market_ties_the_pairs_it_names_and_the_scanner_ranks_them_first():
    """20 symbols: the simulation names 7 cointegrated pairs; on 300 1m bars of its history
    (pandas bars from its trades) the scanner puts exactly those 7 first."""
    symbols = [f"S{i:02d}USDT" for i in range(20)]
    sim = Simulator(symbols, seed=4)
    truth = {frozenset(p) for p in sim.cointegrated_pairs()}
    assert len(truth) == 7 and ("S00USDT", "S01USDT") in sim.cointegrated_pairs()
    trades = sim.history(1_765_000_000_000, 6 * 3600)
    closes = {
        s: reference_bars(t, 60_000).set_index("open_time")["close"] for s, t in trades.items()
    }
    scan = scan_pairs(np.log(pd.DataFrame(closes)[symbols].dropna()), lookback=300)
    assert {frozenset(p) for p in zip(scan["y"][:7], scan["x"][:7], strict=True)} == truth
