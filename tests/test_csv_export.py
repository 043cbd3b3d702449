"""CSV export: the table's columns plus ISO time; the incremental exporter equals a fresh one."""

import csv
import io

import numpy as np
import pandas as pd

from backend.engine.csv_export import BarsCsv, bars_to_csv
from backend.store.records import BAR_COLUMNS
from backend.store.resampling import bars_from_trades
from backend.store.tick_store import TickStore
from tests.conftest import assert_bars_equal, reference_bars, trades_batch


def test_csv_export_has_table_columns_and_iso_time():
    batch = trades_batch(
        "BTCUSDT", [(1, 10.0, 1.0, 1_000), (2, 11.0, 2.0, 2_500, True), (3, 9.5, 0.5, 4_200)]
    )
    text = bars_to_csv([bars_from_trades(batch, "1s")]).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["symbol", "timeframe", *BAR_COLUMNS, "time"]
    assert rows[0]["time"] == "1970-01-01T00:00:01.000Z"
    assert [float(r["close"]) for r in rows] == [10.0, 11.0, 11.0, 9.5]
    assert rows[2]["trades"] == "0"


def test_incremental_export_equals_a_fresh_one_through_live_updates_and_late_trades(dec_trades):
    """Batches of the real sample, some held back and delivered late (as a backfill would):
    after every batch the kept-rows exporter writes exactly what a fresh export writes, and the
    final file reads back to the pandas reference."""
    rng = np.random.default_rng(5)
    store = TickStore(["BTCUSDT", "ETHUSDT"])
    exporter = BarsCsv()
    held_back = []
    for symbol, tape in dec_trades.items():
        cuts = np.sort(rng.choice(np.arange(1, len(tape)), 12, replace=False))
        for k, part in enumerate(np.split(np.arange(len(tape)), cuts)):
            batch = tape.take(part)
            if k % 4 == 1:  # a gap: these arrive after the next batch
                held_back.append(batch)
                continue
            store.ingest(batch)
            while held_back and k % 4 == 2:
                store.ingest(held_back.pop())
            for tf in ("1s", "1m"):
                bars = [store.bars(s, tf) for s in store.symbols]
                assert exporter.export(bars) == bars_to_csv(bars), (symbol, k, tf)
    for batch in held_back:
        store.ingest(batch)
    bars = [store.bars(s, "1s") for s in store.symbols]
    out = exporter.export(bars)
    assert out == bars_to_csv(bars)
    frame = pd.read_csv(io.BytesIO(out))
    for symbol, tape in dec_trades.items():
        mine = frame[frame["symbol"] == symbol][list(BAR_COLUMNS)]
        assert_bars_equal(mine, reference_bars(tape, 1_000), symbol)
