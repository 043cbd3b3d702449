"""Shared fixtures: the real recorded samples, a local exchange factory, and an independent
pandas reference for bars (written from the kline definition, not from our code)."""

from __future__ import annotations

import glob
import html
import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.exchange.server import FaultPlan, LocalExchange
from backend.store.records import TRADE_COLUMNS, Bars, TradeBatch

ROOT = Path(__file__).resolve().parents[1]
# The project's own copy of the recorded samples (data/README.md: their sources).
SHARED_DATA = Path(os.environ.get("PAIRDASH_SHARED_DATA", ROOT / "data"))
SAMPLE_DEC = SHARED_DATA / "um_futures_trades_BTCUSDT_ETHUSDT_2025-12-15T0843-0850Z.ndjson"
SAMPLE_NOV = SHARED_DATA / "um_futures_trades_BTCUSDT_ETHUSDT_2025-11-01T0950-0954Z.ndjson"
SPOT_CSV = SHARED_DATA / "spot_BTCUSDT-aggTrades-2026-01-01_first5000.csv"


def pytest_collection_modifyitems(items) -> None:
    """Tests that need the throwaway PostgreSQL server carry the ``pg`` marker."""
    for item in items:
        if "pg_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    # The samples ship with the project; a missing one is an error.
    assert SAMPLE_DEC.is_file(), f"recorded sample missing: {SAMPLE_DEC}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def dec_trades(shared_data) -> dict[str, TradeBatch]:
    from backend.exchange.sources import load_ndjson

    return load_ndjson(SAMPLE_DEC)


@pytest.fixture
def exchange_factory():
    """Start local exchanges; every one is stopped at the end of the test."""
    started: list[LocalExchange] = []

    def make(faults: FaultPlan | None = None, **kwargs) -> LocalExchange:
        ex = LocalExchange(faults=faults, **kwargs)
        ex.start()
        started.append(ex)
        return ex

    yield make
    for ex in started:
        ex.stop()


@pytest.fixture
def receivers(tmp_path):
    """Local alert receivers (``tests/receivers.py``): ``receivers.http()`` and
    ``receivers.smtp(user, password)``; every one is stopped at the end of the test."""
    from tests.receivers import HttpReceiver, SmtpReceiver

    started = []

    class Make:
        @staticmethod
        def http(**kwargs) -> HttpReceiver:
            started.append(HttpReceiver(**kwargs).start())
            return started[-1]

        @staticmethod
        def smtp(user: str, password: str) -> SmtpReceiver:
            started.append(SmtpReceiver(tmp_path, user, password).start())
            return started[-1]

    yield Make
    for r in started:
        r.stop()


PG_PASSWORD = "pairdash-test"


class PgCluster:
    """A throwaway PostgreSQL server: ``initdb`` in a temporary folder (as the ``postgres``
    user when the tests run as root: initdb refuses root), listening on a free port on
    127.0.0.1 only, password (scram) login over TCP. ``database()`` makes a fresh database."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        assert bins, "PostgreSQL is missing: scripts/test installs Debian's postgresql package"
        self.bin = Path(bins[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="pairdash-pg-"))
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self._as:
            shutil.chown(pwfile, "postgres")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.data = self.dir / "data"
        self._pg("initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust",
                 "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")  # fmt: skip
        self._pg("pg_ctl", "-D", self.data, "-w", "-t", "30", "-l", self.dir / "log", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                 "start")  # fmt: skip
        self._names = itertools.count()

    def _pg(self, tool: str, *args) -> None:
        subprocess.run(
            [*self._as, str(self.bin / tool), *map(str, args)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def url(self, db: str = "postgres", user: str = "postgres", password: str = PG_PASSWORD):
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def sql(self, statement: str, db: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            conn.execute(statement)

    def database(self) -> str:
        name = f"t{next(self._names)}"
        self.sql(f"CREATE DATABASE {name}")
        return name

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A fresh, empty database on the throwaway server, as a libpq URL."""
    return pg_cluster.url(pg_cluster.database())


def wait_for(predicate, timeout_s: float, what) -> None:
    """Poll a condition with a hard deadline (no fixed sleeps). ``what`` (or ``what()``, read
    when it times out) says what was awaited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(
        f"timed out after {timeout_s}s waiting for {what() if callable(what) else what}"
    )


def collect_argv(ex: LocalExchange, db_path, *extra: str) -> list[str]:
    """``python -m backend collect`` against a local exchange (the CLI contract's flags)."""
    return [
        sys.executable, "-m", "backend", "collect", "--symbols", "BTCUSDT,ETHUSDT",
        "--ws-url", ex.ws_url, "--rest-url", ex.rest_url, "--db", str(db_path), *extra,
    ]  # fmt: skip


def reference_bars(trades: TradeBatch, tf_ms: int) -> pd.DataFrame:
    """Binance kline semantics, straight from the definition, with pandas."""
    df = pd.DataFrame(
        {
            "a": trades.agg_id,
            "p": trades.price,
            "q": trades.qty,
            "n": trades.last_trade_id - trades.first_trade_id + 1,
            "t": trades.trade_time_ms,
            "m": trades.buyer_is_maker,
        }
    ).sort_values("a")
    df["open_time"] = df["t"] // tf_ms * tf_ms
    df["pq"] = df["p"] * df["q"]
    df["tb"] = np.where(df["m"], 0.0, df["q"])
    g = df.groupby("open_time")
    out = pd.DataFrame(
        {
            "open": g["p"].first(),
            "high": g["p"].max(),
            "low": g["p"].min(),
            "close": g["p"].last(),
            "volume": g["q"].sum(),
            "quote_volume": g["pq"].sum(),
            "trades": g["n"].sum(),
            "taker_buy_volume": g["tb"].sum(),
        }
    )
    full = range(int(out.index.min()), int(out.index.max()) + tf_ms, tf_ms)
    out = out.reindex(full)
    out["close"] = out["close"].ffill()
    for col in ("open", "high", "low"):
        out[col] = out[col].fillna(out["close"])
    for col in ("volume", "quote_volume", "taker_buy_volume", "trades"):
        out[col] = out[col].fillna(0)
    out["trades"] = out["trades"].astype(np.int64)
    out.index.name = "open_time"
    return out.reset_index()


def assert_bars_equal(actual: pd.DataFrame, expected: pd.DataFrame, label: str = "") -> None:
    """Exact on times, prices and counts; sums to 1e-9 relative (summation order differs)."""
    actual = actual.reset_index(drop=True)
    expected = expected.reset_index(drop=True)
    assert len(actual) == len(expected), f"{label}: {len(actual)} bars, expected {len(expected)}"
    for col in ("open_time", "open", "high", "low", "close", "trades"):
        np.testing.assert_array_equal(
            actual[col].to_numpy(), expected[col].to_numpy(), f"{label} {col}"
        )
    for col in ("volume", "quote_volume", "taker_buy_volume"):
        np.testing.assert_allclose(
            actual[col].to_numpy(),
            expected[col].to_numpy(),
            rtol=1e-9,
            atol=1e-12,
            err_msg=f"{label} {col}",
        )


def trades_batch(symbol: str, rows: list[tuple]) -> TradeBatch:
    """Hand-written trades: (agg_id, price, qty, time_ms[, buyer_is_maker[, fills]])."""
    cols = {k: [] for k in TRADE_COLUMNS}
    for row in rows:
        a, p, q, t, *rest = row
        m = rest[0] if rest else False
        fills = rest[1] if len(rest) > 1 else 1
        cols["agg_id"].append(a)
        cols["price"].append(p)
        cols["qty"].append(q)
        cols["first_trade_id"].append(10 * a)
        cols["last_trade_id"].append(10 * a + fills - 1)
        cols["trade_time_ms"].append(t)
        cols["buyer_is_maker"].append(m)
    return TradeBatch.from_columns(symbol, **cols)


_CARD = re.compile(
    r'<div class="pa-card" data-label="([^"]*)">.*?<div class="pa-value">([^<]*)</div>', re.S
)


def card_values(markup: str) -> dict[str, str]:
    """Label -> value of the figure cards in a page's HTML (frontend/cards.py), read as a
    user reads them: unescaped text."""
    return {html.unescape(k): html.unescape(v) for k, v in _CARD.findall(markup)}


def basket_levels(seed: int, n: int = 1_500, walk_sd: float = 1e-3) -> np.ndarray:
    """Three log prices with one known cointegrating relation: z = 0.1 + 0.5 a + 0.3 b + u,
    a and b random walks, u an AR(1) (phi 0.9); columns z, a, b: weights [1, -0.5, -0.3]."""
    rng = np.random.default_rng(seed)
    a = 4 + np.cumsum(rng.normal(0, walk_sd, n))
    b = 7 + np.cumsum(rng.normal(0, walk_sd, n))
    u = np.zeros(n)
    for t in range(1, n):
        u[t] = 0.9 * u[t - 1] + rng.normal(0, 5e-4)
    return np.column_stack([0.1 + 0.5 * a + 0.3 * b + u, a, b])


class BareMarket:
    """What a test market needs beyond its bars to stand in for the engine (``MarketData``):
    no funding, no lot rules, no recorded book."""

    funding_source = "none"

    def carry(self, y, x, beta):
        return None

    def execution_context(self, symbols, timeframe):
        from backend.engine.pairs import ExecutionContext

        return ExecutionContext(funding_source="none")

    def execution_version(self, symbols):
        return ()


def pair_bars(n=900, seed=3) -> tuple[Bars, Bars]:
    """1s bars of YYY and XXX: log y = 0.5 + 1.3 log x + s, s an AR(1) (phi 0.8), x a random
    walk; each bar's OHLC is its close."""
    rng = np.random.default_rng(seed)
    x = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    # y = 1.3 x with a mean-reverting AR(1) spread: the strategy trades often.
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = 0.8 * s[t - 1] + rng.normal(0, 2e-3)
    y = np.exp(0.5 + 1.3 * np.log(x) + s)
    t = 1_765_000_000_000 + np.arange(n) * 1000
    ones = np.ones(n)

    def bars(sym, c):
        return Bars(sym, "1s", t, c, c, c, c, ones, ones, np.ones(n, np.int64), ones)

    return bars("YYY", y), bars("XXX", x)
