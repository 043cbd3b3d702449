"""Alert rules, measured: rules evaluated per second at a bar's close for 200 symbols' pairs,
against a naive baseline in the same run.

    python bench/bench_alerts.py [--symbols 200] [--bars 1000] [--rounds 3]

The market: ``--symbols`` symbols of 1m bars (a random walk each; every second symbol
cointegrated with the one before it), ``--bars`` bars of history. The rules: for each adjacent
pair a z-score rule and a β-drift rule (the engine's pair service: walk-forward OLS over 300
bars, z over 60), and for each symbol a price and a bar-volume rule, ~4 per symbol. One
round is a new bar closing on every symbol, then one ``AlertService.evaluate()`` (what the
watcher does at each close, the alerts and states written to SQLite); medians of
``--rounds``.

The baseline computes the same z and β drift the way a first script would: for each pair rule,
the walk-forward OLS of each bar it needs refitted with ``statsmodels`` (``OLS(...).fit()``
over the 300 bars before it), then the rolling mean and sample sd with pandas.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402

from backend.engine.alerting import AlertService  # noqa: E402
from backend.engine.pair_service import PairService  # noqa: E402
from backend.lru import Lru  # noqa: E402
from backend.storage import BarStore  # noqa: E402
from backend.store.records import Bars  # noqa: E402

TF_MS = 60_000
LOOKBACK, WINDOW, DRIFT = 300, 60, 60


class BenchMarket:
    """The engine's read interface over bars held in arrays (all history in, the newest bar
    forming), with the engine's pair service and its per-closed-bar cache."""

    key = "bench"
    newest_is_open = True
    funding_source = "none"

    def __init__(self, closes: dict[str, np.ndarray], start_ms: int, public: int) -> None:
        self._closes = closes
        self._start = start_ms
        self.n = public  # bars public so far (the rest close one a round)
        self._cache = Lru(4096)
        self.pairs = PairService(self._cached, Lru(64))

    def _cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def symbols(self) -> list[str]:
        return list(self._closes)

    def advance(self) -> None:
        self.n += 1

    def bars(self, symbol: str, timeframe: str, last: int | None = None) -> Bars:
        lo = 0 if last is None else max(0, self.n - last)
        c = self._closes[symbol][lo : self.n]
        t = self._start + np.arange(lo, self.n, dtype=np.int64) * TF_MS
        v = np.full(len(c), 10.0) + (np.arange(lo, self.n) % 7)
        ones = np.ones(len(c))
        return Bars(symbol, timeframe, t, c, c, c, c, v, v * c, np.ones(len(c), np.int64), ones)

    def history_ready(self, symbols) -> bool:
        return True

    def carry(self, y, x, beta):
        return None

    def execution_context(self, symbols, timeframe):
        from backend.engine.pairs import ExecutionContext

        return ExecutionContext(funding_source="none")

    def execution_version(self, symbols) -> tuple:
        return ()


def market(n_symbols: int, n_bars: int, rounds: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    closes, pairs = {}, []
    public, n_bars = n_bars, n_bars + rounds
    names = [f"S{i:03d}USDT" for i in range(n_symbols)]
    for i, name in enumerate(names):
        if i % 2 and i:
            x = np.log(closes[names[i - 1]])
            noise = np.zeros(n_bars)
            for t in range(1, n_bars):
                noise[t] = 0.95 * noise[t - 1] + rng.normal(0, 1e-3)
            closes[name] = np.exp(0.3 + 0.9 * x + noise)
        else:
            closes[name] = 50 * np.exp(np.cumsum(rng.normal(0, 1e-3, n_bars)))
    for a, b in zip(names[:-1], names[1:], strict=True):
        pairs.append((b, a))
    return BenchMarket(closes, 1_760_000_000_000, public), pairs


def rules_text(symbols: list[str], pairs: list[tuple]) -> str:
    out = []
    for y, x in pairs:
        for kind, level in (("zscore", 2.5), ("beta_drift", 5.0)):
            out.append(
                f'[[rule]]\nname = "{kind} {y}/{x}"\nkind = "{kind}"\ny = "{y}"\nx = "{x}"\n'
                f'timeframe = "1m"\nabove = {level}\nlookback = {LOOKBACK}\nwindow = {WINDOW}\n'
                f"bars = {DRIFT}\n"
            )
    for s in symbols:
        out.append(f'[[rule]]\nname = "price {s}"\nkind = "price"\nsymbol = "{s}"\n'
                   'timeframe = "1m"\nabove = 60.0\n')  # fmt: skip
        out.append(f'[[rule]]\nname = "volume {s}"\nkind = "volume"\nsymbol = "{s}"\n'
                   'timeframe = "1m"\nabove = 15.5\n')  # fmt: skip
    return "\n".join(out)


def naive_round(m: BenchMarket, pairs: list[tuple]) -> None:
    """z and β drift of the last closed bar of every pair, each walk-forward fit redone."""
    need = LOOKBACK + max(WINDOW, DRIFT) + 1
    for y, x in pairs:
        ly = np.log(m.bars(y, "1m", last=need + 1).close[:-1])
        lx = np.log(m.bars(x, "1m", last=need + 1).close[:-1])
        n = len(ly)
        spread, beta = np.full(n, np.nan), np.full(n, np.nan)
        for i in range(n - max(WINDOW, DRIFT + 1), n):
            fit = sm.OLS(ly[i - LOOKBACK : i], sm.add_constant(lx[i - LOOKBACK : i])).fit()
            a, b = fit.params
            spread[i], beta[i] = ly[i] - a - b * lx[i], b
        s = pd.Series(spread)
        z = (s - s.rolling(WINDOW).mean()) / s.rolling(WINDOW).std()
        _ = float(z.iloc[-1]), 100 * (beta[-1] / beta[-1 - DRIFT] - 1)
    for s in m.symbols:
        b = m.bars(s, "1m", last=3)
        _ = float(b.close[-2]), float(b.volume[-2])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=200)
    p.add_argument("--bars", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    m, pairs = market(args.symbols, args.bars, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "bench.toml"
        rules.write_text(rules_text(m.symbols, pairs))
        store = BarStore(Path(tmp) / "bench.db")
        service = AlertService(m, store, str(rules))
        n_rules = len(service.rules.rules)
        t0 = time.perf_counter()
        service.evaluate()  # first sight: every rule arms
        first = time.perf_counter() - t0
        ours, naive, fired = [], [], 0
        for _ in range(args.rounds):
            m.advance()
            t0 = time.perf_counter()
            fired += len(service.evaluate())
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            naive_round(m, pairs)
            naive.append(time.perf_counter() - t0)
        store.close()
    ours_s, naive_s = statistics.median(ours), statistics.median(naive)
    print(f"# {args.symbols} symbols, {len(pairs)} pairs, {n_rules} rules "
          f"({2 * len(pairs)} on pairs, {2 * args.symbols} on symbols), 1m bars")  # fmt: skip
    print(f"first evaluation (arming): {first:.2f} s")
    print(f"ours  : {ours_s:.3f} s a bar close = {n_rules / ours_s:,.0f} rules/s "
          f"(median of {args.rounds}; {fired} alerts fired)")  # fmt: skip
    print(f"naive : {naive_s:.3f} s a bar close = {n_rules / naive_s:,.0f} rules/s")
    print(f"ratio : {naive_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
