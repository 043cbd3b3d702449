"""The executed backtest and the Kalman fit at 1,000 and 100,000 bars, against naive baselines
in the same run.

    python bench/bench_backtest.py [--repeat 5] [--sizes 1000,100000]

Market: a cointegrated pair of 1m bars on log prices (x near log 90,000, an AR(1) spread of
half-life ~9 bars, open = the previous close), its z over 60 bars.

* backtest, ours: ``analytics.backtest`` (next-open fills, taker fees, half the quoted spread,
  funding every 8 h, LOT_SIZE sizing). Naive: the same rules bar by bar over a pandas frame
  (``iterrows``), as a first version would; the benchmark checks both give the same net PnL.
* Kalman, cold: ``analytics.kalman_path`` on every bar, no fit kept (what the first view of a
  pair costs). Live: the same after one more bar, its block fits kept in a memo (what each
  bar close costs a running page); naive: every block refitted, as without the memo. The
  naive cold run is the cold run (the same fits); it is not timed twice.

Medians of ``--repeat`` (the Kalman at 100,000 bars once: minutes).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend import analytics as an  # noqa: E402

MIN = 60_000


def market(n: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    t = 1_765_000_000_000 // MIN * MIN + np.arange(n, dtype=np.int64) * MIN
    lx = np.log(90_000) + np.cumsum(rng.normal(0, 1e-3, n))
    u = np.zeros(n)
    shocks = rng.normal(0, 1e-3, n)
    phi = 0.5 ** (1 / 9)
    for i in range(1, n):
        u[i] = phi * u[i - 1] + shocks[i]
    ly = 0.3 + 0.8 * lx + u + rng.normal(0, 2e-4, n)
    return t, ly, lx


def backtest_inputs(t, ly, lx):
    y, x = np.exp(ly), np.exp(lx)
    beta, alpha = (np.asarray(v) for v in an.rolling_hedge_ratio(ly, lx, 300))
    beta = np.r_[np.nan, beta[:-1]]
    alpha = np.r_[np.nan, alpha[:-1]]
    z = np.asarray(an.zscore(ly - alpha - beta * lx, 60))
    funding = np.arange(t[0] // (8 * 3_600_000) * 8 * 3_600_000, t[-1], 8 * 3_600_000)
    rates = np.where(np.arange(len(funding)) % 2, 1e-4, -5e-5)
    legs = [
        an.LegData("Y", np.r_[y[0], y[:-1]], y, np.full(len(t), 1.0), 1.0, 0.001, 0.001, 5.0,
                   funding, rates),
        an.LegData("X", np.r_[x[0], x[:-1]], x, np.full(len(t), 0.5), 1.0, 0.0001, 0.0001, 5.0,
                   funding, rates),
    ]  # fmt: skip
    weights = np.column_stack([np.ones(len(t)), -beta])
    return t, z, weights, legs


def naive_backtest(t, z, weights, legs, cfg: an.ExecutionConfig) -> float:
    """The rules of ``analytics.execution``, bar by bar over a DataFrame (no stops)."""
    frame = pd.DataFrame({"t": t, "z": z, "w": weights[:, 1]})
    for i, g in enumerate(legs):
        frame[f"o{i}"], frame[f"c{i}"], frame[f"q{i}"] = g.open, g.close, g.quoted_spread_bps
    funding = [dict(zip(g.funding_times_ms.tolist(), g.funding_rates.tolist(), strict=True))
               for g in legs]  # fmt: skip
    net, pos, pending, qty, entry_t, trip = 0.0, 0, None, None, None, 0.0
    prev = None
    for _, row in frame.iterrows():
        if pending is not None:
            kind, w = pending
            mids = [row[f"o{i}"] for i in range(len(legs))]
            spreads = [prev[f"q{i}"] for i in range(len(legs))]
            if kind == "exit":
                legs_qty = [-q for q in qty]
            else:
                share = np.abs([1.0, w]) / np.abs([1.0, w]).sum()
                size = [round(round(cfg.notional_usdt * s / m / g.step) * g.step, 8)
                        for s, m, g in zip(share, mids, legs, strict=True)]  # fmt: skip
                qty = [kind * math.copysign(q, sw) for q, sw in zip(size, [1.0, w], strict=True)]
                legs_qty = qty
                entry_t, entry = row["t"], mids
            if kind != "exit":
                trip = 0.0  # a trip's net counts once it is closed (as the summary's trips)
            for q, m, s in zip(legs_qty, mids, spreads, strict=True):
                cross = abs(q) * m * s / 2e4
                trip -= cross + (abs(q) * m + math.copysign(cross, q)) * cfg.fee_bps * 1e-4
            if kind == "exit":
                trip += sum(q * (m - e) for q, m, e in zip(qty, mids, entry, strict=True))
                for i, q in enumerate(qty):
                    for ft, r in funding[i].items():
                        if entry_t < ft <= row["t"]:
                            bar = frame.index[frame["t"] <= ft][-1]
                            trip -= r * q * frame.at[bar, f"o{i}"]
                net += trip
                pos = 0
            else:
                pos = kind
            pending = None
        zt = row["z"]
        if not math.isnan(zt) and row.name + 1 < len(frame):
            if pos == 0 and abs(zt) > cfg.entry_z and not math.isnan(row["w"]):
                pending = (-1 if zt > 0 else 1, row["w"])
            elif (pos == 1 and zt >= -cfg.exit_z) or (pos == -1 and zt <= cfg.exit_z):
                pending = ("exit", None)
        prev = row
    return net


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="1000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cfg = an.ExecutionConfig()
    print(f"# executed backtest (medians of {args.repeat}; naive once at 100,000 bars)")
    print(f"{'bars':>8}{'trips':>7}{'ours ms':>10}{'naive ms':>11}{'ratio':>8}")
    for n in sizes:
        t, z, weights, legs = backtest_inputs(*market(n))
        result = an.backtest(t, MIN, z, weights, legs, cfg)
        ours = median_s(partial(an.backtest, t, MIN, z, weights, legs, cfg), args.repeat)
        t0 = time.perf_counter()
        naive_net = naive_backtest(t, z, weights, legs, cfg)
        naive = time.perf_counter() - t0
        closed = result.trades[result.trades["closed"]]
        assert np.isclose(naive_net, closed["net_usdt"].sum(), rtol=1e-9, atol=1e-6), (
            naive_net, closed["net_usdt"].sum()
        )  # fmt: skip
        print(f"{n:>8,}{len(closed):>7}{ours * 1e3:>10.1f}{naive * 1e3:>11.0f}"
              f"{naive / ours:>7.0f}x")  # fmt: skip

    print("\n# Kalman hedge, walk-forward (fit 800 bars before each block of 200)")
    print(f"{'bars':>8}{'blocks':>8}{'cold s':>9}{'live ms':>9}{'naive live s':>14}{'ratio':>8}")
    for n in sizes:
        t, ly, lx = market(n)
        repeat = 1 if n > 10_000 else args.repeat
        memo: dict = {}
        # Cold: every block fitted (no memo). That is also the naive cost of every bar close.
        cold = median_s(partial(an.kalman_path, ly[:-1], lx[:-1], t[:-1], MIN), repeat)
        path = an.kalman_path(ly[:-1], lx[:-1], t[:-1], MIN, memo=memo)
        live = median_s(partial(an.kalman_path, ly, lx, t, MIN, memo=memo), args.repeat)
        naive_live = cold
        print(f"{n:>8,}{len(path.fits):>8}{cold:>9.2f}{live * 1e3:>9.1f}{naive_live:>14.2f}"
              f"{naive_live / live:>7.0f}x")  # fmt: skip


if __name__ == "__main__":
    main()
