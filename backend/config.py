"""Configuration in one place: defaults, environment overrides, and validation of user input."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
# Binance routes USD-M market streams such as aggTrade under /market (book data under /public).
DEFAULT_WS_URL = "wss://fstream.binance.com/market"
DEFAULT_REST_URL = "https://fapi.binance.com"
DEFAULT_DB = "market.db"
# A restart within this long of the last save backfills the outage over REST (a few hundred
# requests at most for the busiest symbols); after a longer one ingestion starts afresh.
RESUME_MAX_AGE_S = 15 * 60
MAX_STREAMS_PER_CONNECTION = 200  # Binance's limit; more symbols open more connections
# The recorded sample the project carries (data/README.md says where it comes from): the
# default replay.
SHARED_SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "um_futures_trades_BTCUSDT_ETHUSDT_2025-12-15T0843-0850Z.ndjson"
)
# Days of simulated 1m bars before the simulated trades (months of klines, vision files).
SIM_DEEP_DAYS = 120
SIM_DEEP_MAX_SYMBOLS = 20  # beyond, no deep bars: 120 days of 1m bars are 12 MB a symbol
DEFAULT_KEEP_1S_H = 6.0  # 1s bars kept in memory; older ones live on as 1m/5m bars (and in the db)
# Ticks held in memory over all symbols (30 bytes each: 240 MB at most); the tick strip and
# the tick CSV need only the recent ones, so many symbols share it.
TICK_BUDGET = 8_000_000
_SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")


def tick_capacity(n_symbols: int, per_symbol: int = 2_000_000) -> int:
    """Ticks kept per symbol: ``per_symbol``, or an equal share of ``TICK_BUDGET``."""
    return max(10_000, min(per_symbol, TICK_BUDGET // max(1, n_symbols)))


def keep_1s_seconds(hours: float) -> int | None:
    """``--keep-1s HOURS`` as seconds; 0 keeps every second (None)."""
    if hours == 0:
        return None
    if not hours * 3600 >= 300:
        raise ConfigError("--keep-1s must be 0 (keep all) or at least 0.0834 hours (5 minutes)")
    return int(hours * 3600)


class ConfigError(ValueError):
    """Bad user configuration, worded for a one-line error."""


_PICK = re.compile(r"^\s*(?:top:(?P<n>[^,]*)|all)\s*$", re.IGNORECASE)


def market_pick(text) -> tuple[bool, int | None]:
    """``"top:20"`` -> (True, 20); ``"all"`` -> (True, None): the symbols are picked from the
    market by 24 h quote volume at start (``rest.pick_symbols``). A list of symbols ->
    (False, None)."""
    match = _PICK.match(text) if isinstance(text, str) else None
    if match is None:
        return False, None
    if match["n"] is None:
        return True, None
    n = match["n"].strip()
    if not n.isdigit() or int(n) < 1:
        raise ConfigError(f"--symbols top:N needs a whole number N >= 1, got {text.strip()!r}")
    return True, int(n)


def parse_symbols(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"btcusdt, ETHUSDT"`` -> ``["BTCUSDT", "ETHUSDT"]``: upper-cased, de-duplicated, checked."""
    items = text.split(",") if isinstance(text, str) else list(text)
    symbols: list[str] = []
    for raw in items:
        symbol = raw.strip().upper()
        if not symbol:
            continue
        if not _SYMBOL.match(symbol):
            raise ConfigError(f"invalid symbol {raw.strip()!r}: use letters A-Z and digits only")
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise ConfigError("no symbols given")
    return symbols


def check_url(url: str, schemes: tuple[str, ...], flag: str) -> str:
    if not url.isprintable() or any(ch.isspace() for ch in url):
        raise ConfigError(f"{flag} holds a space or a control character: {url!r}")
    if not any(url.startswith(s + "://") for s in schemes):
        raise ConfigError(
            f"{flag} must start with {' or '.join(s + '://' for s in schemes)}: {url!r}"
        )
    try:
        host = urlsplit(url).hostname
        urlsplit(url).port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ConfigError(f"{flag} is not a valid URL ({exc}): {url!r}") from exc
    if not host:
        raise ConfigError(f"{flag} names no host: {url!r}")
    return url.rstrip("/")


def check_files(paths) -> list[str]:
    """Replay files that exist, or a one-line error naming the missing ones."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}")
    return [str(p) for p in paths]


@dataclass(frozen=True)
class FeedConfig:
    """Everything the ingestion engine needs; env vars PAIRDASH_* override the defaults."""

    symbols: list[str] = field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    ws_url: str = os.environ.get("PAIRDASH_WS_URL", DEFAULT_WS_URL)
    rest_url: str = os.environ.get("PAIRDASH_REST_URL", DEFAULT_REST_URL)
    tick_capacity: int = 2_000_000  # ticks kept in memory per symbol (bars are kept regardless)
    idle_ping_s: float = 5.0  # no frame for this long: we ping
    pong_timeout_s: float = 5.0  # and no frame for this long after the ping: the link is dead
    max_connection_age_s: float = 23.5 * 3600  # rotate before Binance's 24 h limit
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 10.0
    rest_timeout_s: float = 10.0
    funding: bool = True  # also stream mark prices and funding rates
    quotes: bool = True  # also stream the best bid / ask (bookTicker) of the first symbols
    keep_1s_s: int | None = int(DEFAULT_KEEP_1S_H * 3600)  # None: keep every 1s bar
