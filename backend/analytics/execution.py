"""The mean-reversion backtest."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.analytics._arrays import _pair

# --- backtest ----------------------------------------------------------------------------------

MIN_SHARPE_TRIPS = 10


@dataclass(frozen=True, slots=True)
class BacktestResult:
    position: np.ndarray  # held during each bar: +1 long spread, -1 short, 0 flat
    pnl: np.ndarray  # per-bar return net of costs (fraction of gross notional)
    equity: np.ndarray  # cumulative sum of pnl
    trades: pd.DataFrame  # entry, exit, direction, gross and net return per round trip
    summary: dict[str, float]


def backtest(
    y,
    x,
    z,
    beta,
    entry: float = 2.0,
    exit: float = 0.0,
    cost_bps: float = 1.0,
    log_prices: bool = True,
    bars_per_year: float = 365 * 24 * 60,
    times_ms=None,
) -> BacktestResult:
    """A mean-reversion backtest of the spread ``y - beta x``, long and short.

    Signals at the close of bar ``t``: flat and ``z < -entry`` -> long the spread; flat and
    ``z > entry`` -> short; long and ``z >= -exit`` or short and ``z <= exit`` -> flat. The
    position is taken at bar ``t``'s close and earns from bar ``t + 1`` (no look-ahead); the
    hedge ratio is frozen at entry. A bar's PnL is ``pos * (dy - beta_entry * dx)`` divided by
    the gross notional at entry (``1 + |beta|`` for log prices, ``y + |beta| x`` for prices);
    every change of position costs ``cost_bps`` of the gross notional traded. Max drawdown is
    on the equity curve (cumulative return); hit rate is the share of closed round trips with a
    positive net return; holding time is per closed round trip, in bars.

    Sharpe is the per-bar mean over std, annualised by the bars per year of the calendar time
    the sample covers (``times_ms``, bar open times; else ``bars_per_year``), and only reported
    (else NaN) with at least ``MIN_SHARPE_TRIPS`` closed round trips over at least a day: from
    minutes of data an annualised figure is noise.
    """
    ya, xa = _pair(y, x)
    za, ba = _pair(z, np.broadcast_to(np.asarray(beta, dtype=np.float64), ya.shape))
    if len(za) != len(ya):
        raise ValueError(f"z is misaligned: {len(za)} vs {len(ya)} points")
    if not entry > exit >= 0:
        raise ValueError(f"need entry > exit >= 0, got entry={entry}, exit={exit}")
    if cost_bps < 0:
        raise ValueError("cost_bps must be >= 0")
    n = len(ya)
    signal = np.zeros(n, np.int8)  # decided at the close of each bar
    held_beta = np.full(n, np.nan)
    pos, b_now = 0, math.nan
    for t in range(n):
        zt = za[t]
        if zt == zt and ba[t] == ba[t]:
            if pos == 0 and zt > entry:
                pos, b_now = -1, ba[t]
            elif pos == 0 and zt < -entry:
                pos, b_now = 1, ba[t]
            elif (pos == 1 and zt >= -exit) or (pos == -1 and zt <= exit):
                pos = 0
        signal[t], held_beta[t] = pos, b_now
    position = np.concatenate(([0], signal[:-1])).astype(np.int8)  # earns from the next bar
    beta_held = np.concatenate(([np.nan], held_beta[:-1]))
    dy = np.diff(ya, prepend=ya[:1])
    dx = np.diff(xa, prepend=xa[:1])
    entry_idx = _entry_index(signal)
    base_now = (1 + np.abs(held_beta)) if log_prices else (ya + np.abs(held_beta) * xa)
    base = np.concatenate(([np.nan], base_now[entry_idx][:-1]))
    with np.errstate(invalid="ignore"):
        gross = np.where(position != 0, position * (dy - beta_held * dx) / base, 0.0)
    gross = np.nan_to_num(gross, nan=0.0)
    turnover = np.abs(np.diff(signal.astype(np.int64), prepend=0))
    cost = turnover * cost_bps * 1e-4
    # The cost of a decision at bar t is paid at bar t's close.
    pnl = gross - cost
    equity = np.cumsum(pnl)
    trades = _round_trips(signal, gross, cost)
    closed = trades[trades["closed"]]
    covered_days = math.nan
    if times_ms is not None and n > 1:
        t = np.asarray(times_ms, dtype=np.float64)
        bar_ms = (t[-1] - t[0]) / (n - 1)
        covered_days = (t[-1] - t[0] + bar_ms) / 86_400_000
        bars_per_year = n / (covered_days / 365)
        trades["entry_time"] = pd.to_datetime(t[trades["entry_bar"]], unit="ms", utc=True)
        trades["exit_time"] = pd.to_datetime(t[trades["exit_bar"]], unit="ms", utc=True)
    std = pnl.std(ddof=1) if n > 1 else math.nan
    enough = len(closed) >= MIN_SHARPE_TRIPS and not covered_days < 1.0
    summary = {
        "total_return": float(equity[-1]) if n else 0.0,
        "sharpe": float(pnl.mean() / std * math.sqrt(bars_per_year))
        if std and std > 0 and enough
        else math.nan,
        "round_trips": float(len(closed)),
        "avg_holding_bars": float((closed["exit_bar"] - closed["entry_bar"]).mean())
        if len(closed)
        else math.nan,
        "covered_days": covered_days,
        "max_drawdown": float(np.max(np.maximum.accumulate(np.maximum(equity, 0)) - equity))
        if n
        else 0.0,
        "hit_rate": float((closed["net_return"] > 0).mean()) if len(closed) else math.nan,
        "trades": float(len(trades)),
        "costs": float(cost.sum()),
    }
    return BacktestResult(position, pnl, equity, trades, summary)


def _entry_index(signal: np.ndarray) -> np.ndarray:
    """For each bar, the index of the bar where the current position was opened."""
    opened = (signal != 0) & (np.concatenate(([0], signal[:-1])) != signal)
    idx = np.where(opened, np.arange(len(signal)), 0)
    return np.maximum.accumulate(idx)


def _round_trips(signal: np.ndarray, gross: np.ndarray, cost: np.ndarray) -> pd.DataFrame:
    """One row per position: decided at ``entry_bar``, closed at ``exit_bar`` (or still open at
    the last bar, marked there). Positions only change through flat, so each trip pays the cost
    at its entry bar and, once closed, at its exit bar."""
    changes = np.flatnonzero(np.diff(signal.astype(np.int64), prepend=0))
    rows = []
    for k, start in enumerate(changes.tolist()):
        direction = int(signal[start])
        if direction == 0:
            continue
        closed = k + 1 < len(changes)
        stop = changes[k + 1] if closed else len(signal) - 1
        g = float(gross[start + 1 : stop + 1].sum())
        c = float(cost[start]) + (float(cost[stop]) if closed else 0.0)
        rows.append((start, stop, "long" if direction > 0 else "short", closed, g, g - c))
    return pd.DataFrame(
        rows, columns=["entry_bar", "exit_bar", "direction", "closed", "gross_return", "net_return"]
    )
