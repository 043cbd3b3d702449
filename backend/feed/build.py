"""One way to build a feed, for the engine, the collector and the soak alike: the tick store,
the stream clients on one connection (``streams.Ingestor``) and, where asked, the history
loader that fills the store before the first streamed trade."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backend.config import FeedConfig, tick_capacity
from backend.feed.history import HistoryLoader, HistoryOptions, StoredKlines
from backend.feed.streams import Ingestor
from backend.store.tick_store import TickStore


@dataclass
class Feed:
    store: TickStore
    ingestor: Ingestor
    history: HistoryLoader | None  # None: the store starts empty (the soak)
    resumed: dict[str, int]  # symbol -> where a resumed symbol's 1s history starts (ms)

    def start(self) -> Feed:
        """History first (it reads REST while the streams connect), then the streams."""
        if self.history is not None:
            self.history.start()
        self.ingestor.start()
        return self

    def stop(self) -> None:
        if self.history is not None:
            self.history.stop()
        self.ingestor.stop()


def build_feed(
    cfg: FeedConfig,
    history: HistoryOptions | None = None,
    resume: Callable[[TickStore], dict[str, int]] | None = None,
    stored: StoredKlines | None = None,
) -> Feed:
    """The feed of ``cfg`` (not started). ``resume(store)`` seeds the store from a database
    (``storage.persistence.resume_from_storage``: Binance's ids continue across runs) and says
    where each resumed symbol stands; ``history`` loads klines and 1s history at start, first
    from ``stored`` (the database's bars: nothing it holds is downloaded again)."""
    store = TickStore(
        cfg.symbols, tick_capacity(len(cfg.symbols), cfg.tick_capacity), cfg.keep_1s_s
    )
    resumed = resume(store) if resume is not None else {}
    ingestor = Ingestor(store, cfg)
    loader = None
    if history is not None:
        loader = HistoryLoader(
            store, ingestor.rest, ingestor.backfiller, history, resumed, stored=stored
        )
    return Feed(store, ingestor, loader, resumed)
