"""Recorded best bid / ask: the bookTicker frame as documented, and quotes kept per bar by
hand-worked time weighting."""

import numpy as np
import pytest

from backend.feed.wire import BookTickerDecoder, encode_book_ticker, encode_combined
from backend.store.quotes import QuoteBook
from backend.store.records import Quotes

DOC_FRAME = (
    b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":400900217,'
    b'"E":1568014460893,"T":1568014460891,"s":"BTCUSDT","b":"25.35190000",'
    b'"B":"31.21000000","a":"25.36520000","A":"40.66000000"}}'
)


def test_documented_book_ticker_frame_decodes_and_junk_is_counted():
    quotes, skipped = BookTickerDecoder(["BTCUSDT"]).decode([DOC_FRAME])
    q = quotes["BTCUSDT"]
    assert q.time_ms.tolist() == [1568014460891]
    assert (q.bid.tolist(), q.ask.tolist()) == ([25.3519], [25.3652]) and not skipped
    crossed = encode_combined(
        "btcusdt@bookTicker", encode_book_ticker("BTCUSDT", 1, 5, 10.0, 1.0, 9.0, 1.0)
    )
    other = DOC_FRAME.replace(b'"s":"BTCUSDT"', b'"s":"ZZZUSDT"')
    raw = encode_book_ticker("BTCUSDT", 2, 7, 25.0, 1.0, 25.5, 2.0)
    quotes, skipped = BookTickerDecoder(["BTCUSDT"]).decode(
        [DOC_FRAME, b"not json", crossed, other, b'{"result":null,"id":1}', raw]
    )
    assert quotes["BTCUSDT"].time_ms.tolist() == [1568014460891, 7]
    assert skipped == {"bad_json": 1, "bad_value": 1, "unknown_symbol": 1, "control_reply": 1}


def spread(bid, ask):
    return 2e4 * (ask - bid) / (ask + bid)


UPDATES = [(500, 100.0, 100.02), (1_500, 100.0, 100.04), (3_200, 100.0, 100.01)]
S1, S2, S3 = (spread(b, a) for _, b, a in UPDATES)


def book(batches):
    qb = QuoteBook(["BTCUSDT"])
    for rows in batches:
        t, b, a = (np.array(c) for c in zip(*rows, strict=True))
        qb.ingest(Quotes("BTCUSDT", t, b, a))
    return qb


@pytest.mark.parametrize("split", [3, 1, 2], ids=["one batch", "1+2", "2+1"])
def test_quotes_per_bar_are_time_weighted_by_hand(split):
    qb = book([UPDATES[:split], UPDATES[split:]] if split < 3 else [UPDATES])
    s = qb.bars("BTCUSDT", "1s", until_ms=5_000)
    assert s.open_time.tolist() == [0, 1_000, 2_000, 3_000, 4_000, 5_000]
    # Second 0: quote 1 from 500 ms; 1: half quote 1, half quote 2; 2: quote 2 throughout;
    # 3: quote 2 until 3,200 (quote 3 stands since: credited when the next update comes);
    # 4 and 5: no update, quote 3 still stands.
    np.testing.assert_allclose(s.spread_mean_bps, [S1, (S1 + S2) / 2, S2, S2, S3, S3])
    np.testing.assert_allclose(s.ask_close, [100.02, 100.04, 100.04, 100.01, 100.01, 100.01])
    np.testing.assert_allclose(s.spread_close_bps, [S1, S2, S2, S3, S3, S3])
    m = qb.bars("BTCUSDT", "1m")
    assert m.open_time.tolist() == [0]
    np.testing.assert_allclose(m.spread_mean_bps, [(1_000 * S1 + 1_700 * S2) / 2_700])
    five = qb.bars("BTCUSDT", "5m", until_ms=600_000)
    assert five.open_time.tolist() == [0, 300_000, 600_000]
    np.testing.assert_allclose(five.spread_mean_bps, [(1_000 * S1 + 1_700 * S2) / 2_700, S3, S3])


def test_a_quote_standing_across_bars_is_split_at_their_boundaries():
    qb = book([[(59_000, 100.0, 100.02), (121_500, 100.0, 100.06)]])
    m = qb.bars("BTCUSDT", "1m")
    s_first = spread(100.0, 100.02)
    np.testing.assert_allclose(m.spread_mean_bps, [s_first, s_first, s_first])
    np.testing.assert_allclose(m.ask_close, [100.02, 100.02, 100.06])
    seconds = qb.bars("BTCUSDT", "1s")
    assert len(seconds) == 63 and np.isfinite(seconds.spread_mean_bps).all()
    assert QuoteBook(["BTCUSDT"]).bars("BTCUSDT", "1m").open_time.size == 0


@pytest.mark.slow
def test_the_book_streamed_by_the_local_exchange_is_kept_per_second_exactly(exchange_factory):
    """End to end: the bookTicker connection (routed under /public) records what the exchange
    sent; each whole second's time-weighted spread equals pandas' average of the quote step
    function sampled every millisecond, and its bid / ask at close the last one sent in it."""
    import pandas as pd

    from backend.config import FeedConfig
    from backend.exchange.sources import Simulator
    from backend.feed.streams import Ingestor, book_ws_url
    from backend.store.tick_store import TickStore
    from tests.conftest import wait_for

    assert book_ws_url("wss://fstream.binance.com/market") == "wss://fstream.binance.com/public"
    ex = exchange_factory(simulator=Simulator(["BTCUSDT", "ETHUSDT"]))
    cfg = FeedConfig(symbols=["BTCUSDT", "ETHUSDT"], ws_url=ex.ws_url, rest_url=ex.rest_url)
    ingestor = Ingestor(TickStore(cfg.symbols, 100_000), cfg).start()
    try:
        wait_for(lambda: ingestor.quotes.updates() >= 120, 20, "120 book updates")
    finally:
        ingestor.stop()
    log = pd.DataFrame(list(ex.book_log), columns=["symbol", "t", "bid", "ask"])
    got = ingestor.quotes.bars("BTCUSDT", "1s")
    sent = log[log.symbol == "BTCUSDT"].drop_duplicates("t", keep="last").set_index("t")
    sent = sent[sent.index >= got.open_time[0]]  # from the first update the client held
    spread = 2e4 * (sent["ask"] - sent["bid"]) / (sent["ask"] + sent["bid"])
    ms = spread.reindex(range(int(sent.index[0]), int(sent.index[-1]))).ffill()
    reference = ms.groupby(ms.index // 1000 * 1000).mean()
    whole = reference.index[1:-1]  # seconds fully inside the span of updates
    assert len(whole) >= 3
    at = np.searchsorted(got.open_time, whole)
    np.testing.assert_allclose(got.spread_mean_bps[at], reference.loc[whole], rtol=1e-9)
    last = sent.groupby(sent.index // 1000 * 1000).last()
    np.testing.assert_array_equal(got.ask_close[at], last["ask"].reindex(whole).ffill())
