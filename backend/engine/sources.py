"""Where an engine's data comes from, one registry entry per source.

A source is Binance itself (``live``), the local exchange serving the recorded sample
(``replay``) or its simulation (``simulate``), or the bars collectors write into the database
(``db``: no feed). Each entry says what the engine must do differently for it, so the engine
asks the entry instead of testing source names; another venue would be another entry (with
its own wire module in ``backend.feed``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.config import DEFAULT_DB, SHARED_SAMPLE, SIM_DEEP_DAYS, SIM_DEEP_MAX_SYMBOLS

if TYPE_CHECKING:  # the exchange package is imported only when a local source starts
    from backend.exchange.server import LocalExchange

# A looped replay streams the last hour of its recording by default; the rest is history.
REPLAY_LIVE_S = 3600


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    feed: bool  # streams trades (else: reads the database's bars)
    # Starts the local exchange the feed connects to (None: Binance at the options' URLs).
    local_exchange: Callable[..., LocalExchange] | None
    ids_continue: bool  # aggregate ids continue across runs: resume from the database
    listed_symbols: bool  # the exchange says which symbols are listed (exchangeInfo)
    funding_source: str  # "recorded" (Binance), "simulated" (the local exchange), "none"
    shared_db: bool  # writes the real-data database by default (else market-<name>.db)


def _replay(opts) -> LocalExchange:
    from backend.exchange.server import LocalExchange
    from backend.exchange.sources import load_files

    trades = load_files(list(opts.replay_files) or [str(SHARED_SAMPLE)])
    history_s = opts.replay_history_s
    if history_s is None:
        times = [int(b.trade_time_ms[-1] - b.trade_time_ms[0]) for b in trades.values() if len(b)]
        history_s = max(0.0, max(times, default=0) / 1000 - REPLAY_LIVE_S)
    # Speed 0 replays once as fast as the client reads (tests, quick looks); a timed replay
    # loops so that a dashboard left open keeps moving.
    speed = opts.replay_speed or None
    return LocalExchange(trades=trades, speed=speed, loop=speed is not None, history_s=history_s)


def _simulate(opts) -> LocalExchange:
    from backend.exchange.server import LocalExchange
    from backend.exchange.sources import Simulator

    # Days before "now", enough for the longest klines asked for, and the 1s history.
    history_s = opts.history_bars * 300 + opts.history_1s_s + 600
    deep_days = SIM_DEEP_DAYS if len(opts.symbols) <= SIM_DEEP_MAX_SYMBOLS else 0
    return LocalExchange(
        simulator=Simulator(list(opts.symbols)), history_s=history_s, deep_days=deep_days
    )


REGISTRY: dict[str, Source] = {
    s.name: s
    for s in (
        Source("live", "Binance USD-M futures", True, None, True, True, "recorded", True),
        Source("replay", "the recorded sample, replayed", True, _replay, False, False,
               "simulated", False),
        Source("simulate", "simulated markets", True, _simulate, False, False, "simulated",
               False),
        Source("db", "the bars collectors store", False, None, False, False, "none", True),
    )
}  # fmt: skip
SOURCES = tuple(REGISTRY)


def source(name: str) -> Source:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}") from None


def default_db(name: str) -> str:
    """The SQLite file of a source: replayed or simulated bars never mix with real ones."""
    return DEFAULT_DB if source(name).shared_db else f"market-{name}.db"
