"""The mean-reversion backtest, executed as a desk would: next-bar fills, fees, spread crossing,
funding, sizing to the exchange's lot steps, optional stops.

Conventions (the README's "How each figure is computed" repeats them):

* **Signal.** At the close of bar ``t`` the closed-bar z-score ``z_t`` decides: flat and
  ``z_t > entry_z`` -> short the spread; flat and ``z_t < -entry_z`` -> long; long and
  ``z_t >= -exit_z`` (short and ``z_t <= exit_z``) -> flat. Optional exits: ``|z_t|`` beyond
  ``stop_z`` against the position (a stop; no new entry until ``|z|`` is back within
  ``entry_z``), the trip's mark-to-market net of fees and spread below ``-stop_loss_bps`` of its
  gross notional, or ``max_hold_bars`` bars held. A NaN z (or hedge) opens nothing and closes
  nothing.
* **Fills.** A decision at bar ``t``'s close fills at bar ``t + 1``'s open (``"next_open"``, the
  default) or its close (``"next_close"``, a latency stress): never at the bar that decided it.
  The bar's traded open / close stands for the mid. Each leg crosses half its quoted bid/ask
  spread: a buy fills at ``mid * (1 + s / 2e4)``, a sell at ``mid * (1 - s / 2e4)``, ``s`` the
  spread in bps recorded at the close of the bar before the fill (for an open fill: that is the
  book at the fill) or of the fill bar (a close fill); where none was recorded, the leg's
  ``assumed_spread_bps`` (the trip says so).
* **Sizing.** Each trip trades ``notional_usdt`` gross over its legs, in proportion to the
  absolute notional weights at the decision bar (a pair: ``[1, -h]``, ``h`` the notional hedge
  ratio), frozen for the trip. Quantities are rounded to each leg's ``LOT_SIZE`` step; a leg
  below its ``minQty`` or ``MIN_NOTIONAL`` makes the entry refused (counted, not traded). The
  hedge error the rounding leaves is ``max_i |(n_i / n_0) / (|w_i| / |w_0|) - 1|`` over the legs'
  filled notionals ``n``.
* **Fees** ``fee_bps`` of each leg's filled notional, per fill (Binance USD-M: taker 5 bps,
  maker 2 bps at the base tier).
* **Funding.** At each funding time ``T`` with ``entry fill < T <= exit fill`` each leg pays
  ``rate * qty * price`` when long and receives it when short (the reverse for a negative
  rate), ``price`` the leg's open of the bar holding ``T``. Rates are the caller's (recorded,
  from ``GET /fapi/v1/fundingRate``, or simulated: the caller labels them).
* **PnL** in USDT, marked to market at each bar's close; ``gross`` is mid to mid, ``net =
  gross - fees - spread + funding``. A trip still open at the last bar is marked at its close
  (no exit costs) and flagged open.
* **Summary**: the period tested (first and last bar, count), gross against net, the cost
  share ``(fees + spread) / gross``, the break-even cost per round trip (``(gross + funding)``
  per closed trip, in bps of the gross notional: the fees and spread a trip could pay and still
  break even), time in market, max drawdown of the equity, the two halves of the period side
  by side, and a Sharpe ratio only from daily (UTC) returns over at least ``MIN_SHARPE_DAYS``
  days: from less, an annualised figure is noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

TAKER_FEE_BPS = 5.0  # Binance USD-M, base tier, per fill of each leg
MAKER_FEE_BPS = 2.0
FILLS = ("next_open", "next_close")
MIN_SHARPE_DAYS = 30
DAY_MS = 86_400_000
_EMPTY = np.empty(0)


@dataclass(frozen=True)
class LegData:
    """One instrument of the spread, per bar: prices, the quoted spread and its exchange rules."""

    symbol: str
    open: np.ndarray
    close: np.ndarray
    quoted_spread_bps: np.ndarray | None = None  # (ask - bid) / mid at each bar's close; NaN: none
    assumed_spread_bps: float = 1.0  # where no quote was recorded
    step: float = 0.0  # LOT_SIZE stepSize; 0: quantities not rounded
    min_qty: float = 0.0
    min_notional: float = 0.0  # MIN_NOTIONAL (USDT)
    funding_times_ms: np.ndarray = field(default_factory=lambda: _EMPTY)
    funding_rates: np.ndarray = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True)
class ExecutionConfig:
    entry_z: float = 2.0
    exit_z: float = 0.0
    fill: str = "next_open"
    fee_bps: float = TAKER_FEE_BPS
    notional_usdt: float = 10_000.0
    stop_z: float | None = None
    stop_loss_bps: float | None = None
    max_hold_bars: int | None = None

    def check(self) -> ExecutionConfig:
        """The config itself, or ``ValueError`` naming the bad setting."""
        finite = all(
            math.isfinite(v) for v in (self.entry_z, self.exit_z, self.fee_bps, self.notional_usdt)
        )
        if not finite or not self.entry_z > self.exit_z >= 0:
            raise ValueError(f"need entry z > exit z >= 0, got {self.entry_z} and {self.exit_z}")
        if self.fill not in FILLS:
            raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {self.fill!r}")
        if not 0 <= self.fee_bps < 1e4:
            raise ValueError(f"fee must be >= 0 bps, got {self.fee_bps}")
        if not self.notional_usdt > 0:
            raise ValueError(f"the notional per trade must be > 0 USDT, got {self.notional_usdt}")
        if self.stop_z is not None and not self.stop_z > self.entry_z:
            raise ValueError(f"the z stop must be beyond the entry z, got {self.stop_z}")
        if self.stop_loss_bps is not None and not self.stop_loss_bps > 0:
            raise ValueError(f"the loss stop must be > 0 bps, got {self.stop_loss_bps}")
        if self.max_hold_bars is not None and not self.max_hold_bars >= 1:
            raise ValueError(f"the maximum holding must be >= 1 bar, got {self.max_hold_bars}")
        return self


@dataclass(frozen=True)
class BacktestSummary:
    first_ms: int | None  # open time of the first and the last bar tested
    last_ms: int | None
    bars: int
    round_trips: int  # closed
    open_trip: bool
    refused: int  # entries refused: a leg below its minimum quantity or notional
    gross_usdt: float
    fees_usdt: float
    spread_usdt: float
    funding_usdt: float
    net_usdt: float
    notional_usdt: float
    hit_rate: float  # closed trips with a positive net
    avg_holding_bars: float
    time_in_market: float  # share of bars with a position
    max_drawdown_usdt: float
    cost_share: float  # (fees + spread) / gross of closed trips; NaN when gross <= 0
    break_even_bps: float  # (gross + funding) per closed trip, bps of the gross notional
    cost_per_trip_bps: float  # fees + spread per closed trip, bps of the gross notional
    assumed_spread_trips: int  # trips with a fill priced at an assumed (not recorded) spread
    funding_events: int  # funding payments made or received, over the legs
    halves: tuple[dict, dict]  # net_usdt, round_trips, hit_rate of each half of the period
    days: float  # calendar days the period covers
    sharpe: float  # from daily returns, only over >= MIN_SHARPE_DAYS days; else NaN
    # The first funding time both legs' rates are known from (None: no rates): a trip held
    # through an earlier funding time paid nothing for it here.
    funding_known_from_ms: int | None = None

    @property
    def net_return(self) -> float:
        """Net PnL as a fraction of the gross notional per trade."""
        return self.net_usdt / self.notional_usdt


@dataclass(frozen=True)
class BacktestResult:
    position: np.ndarray  # held during each bar (after its fill): +1 long spread, -1 short, 0
    pnl_usdt: np.ndarray  # per bar, marked to market at the close, net of costs and funding
    equity_usdt: np.ndarray  # cumulative pnl
    trades: pd.DataFrame  # one row per round trip (see TRADE_COLUMNS)
    summary: BacktestSummary


TRADE_COLUMNS = (
    "entry_bar", "exit_bar", "entry_decided", "entry_time", "exit_decided", "exit_time", "side",
    "hedge", "hedge_error", "gross_usdt", "fees_usdt", "spread_usdt", "funding_usdt", "net_usdt",
    "net_bps", "bars_held", "exit_reason", "spread_assumed", "closed",
)  # fmt: skip


@dataclass
class _Trip:
    direction: int  # +1 long the spread, -1 short
    decided: int  # decision bar of the entry
    filled: int  # bar of the entry fill
    qty: np.ndarray  # signed per leg: + bought, - sold
    entry_mid: np.ndarray
    hedge: float
    hedge_error: float
    entry_costs: tuple[float, float] = (0.0, 0.0)  # (fees, spread crossing), USDT
    exit_costs: tuple[float, float] = (0.0, 0.0)
    assumed: bool = False
    exit_decided: int = -1
    exit_filled: int = -1  # -1: still open at the last bar
    exit_mid: np.ndarray | None = None
    reason: str = "open"

    @property
    def closed(self) -> bool:
        return self.exit_filled >= 0

    def first_held(self, at_open: bool) -> int:
        """The first bar the position is held through (filled at its open, or the bar after)."""
        return self.filled if at_open else self.filled + 1

    def held_until(self, at_open: bool, n: int) -> int:
        """One past the last bar held: the exit's bar (an open fill) or the bar after it."""
        if not self.closed:
            return n
        return self.exit_filled if at_open else self.exit_filled + 1


def backtest(
    open_time_ms,
    bar_ms: int,
    z,
    weights,
    legs: list[LegData],
    config: ExecutionConfig | None = None,
    hedge=None,
) -> BacktestResult:
    """Trade the spread ``sum_i w_i * leg_i`` on the closed-bar ``z`` (module docstring).

    ``weights`` is ``(bars, legs)`` of notional weights per bar (a pair: ``[1, -h]``); ``hedge``
    (per bar, optional) is what the trips table shows as the hedge ratio (default the second
    leg's weight, negated). The trips table has ``TRADE_COLUMNS`` and, per leg, ``qty_<symbol>``
    (signed: + bought at entry), ``entry_<symbol>`` and ``exit_<symbol>`` (the mids filled at).
    """
    cfg = (config or ExecutionConfig()).check()
    t_ms = np.asarray(open_time_ms, dtype=np.int64)
    z = np.asarray(z, dtype=np.float64)
    n, k = len(t_ms), len(legs)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n, k) or len(z) != n or any(len(g.close) != n or len(g.open) != n for g in legs):
        raise ValueError(f"misaligned inputs: {n} bars, weights {w.shape}, {k} legs")
    if not k or int(bar_ms) <= 0:
        raise ValueError("a backtest needs at least one leg and a bar length > 0")
    if hedge is None:
        hedge = -w[:, 1] if k > 1 else w[:, 0]
    market = _Market(
        np.column_stack([np.asarray(g.open, np.float64) for g in legs]),
        np.column_stack([np.asarray(g.close, np.float64) for g in legs]),
        np.column_stack([_quoted(g, n) for g in legs]),
        np.array([g.assumed_spread_bps for g in legs], dtype=np.float64),
        legs,
        cfg,
    )
    trips, refused = _run(z, w, np.asarray(hedge, dtype=np.float64), market)
    fill_ms = t_ms if market.at_open else t_ms + int(bar_ms)
    end_ms = int(t_ms[-1]) + int(bar_ms) if n else 0
    funding = [_funding(trip, legs, t_ms, market.opens, fill_ms, end_ms) for trip in trips]
    pnl = _bar_pnl(trips, funding, market, n)
    position = np.zeros(n, np.int8)
    for trip in trips:
        position[trip.first_held(market.at_open) : trip.held_until(market.at_open, n)] = (
            trip.direction
        )
    frame = _trips_frame(trips, funding, t_ms, fill_ms, market)
    events = sum(len(paid) for paid in funding)
    summary = _summary(frame, pnl, position, (refused, events), t_ms, int(bar_ms), cfg)
    firsts = [int(g.funding_times_ms[0]) for g in legs if len(g.funding_times_ms)]
    known = max(firsts) if len(firsts) == len(legs) else None
    summary = replace(summary, funding_known_from_ms=known)
    return BacktestResult(position, pnl, np.cumsum(pnl), frame, summary)


@dataclass(frozen=True)
class _Market:
    opens: np.ndarray  # (bars, legs)
    closes: np.ndarray
    quoted: np.ndarray  # quoted spread at each bar's close, bps; NaN: none recorded
    assumed: np.ndarray  # per leg, bps
    legs: list[LegData]
    cfg: ExecutionConfig

    @property
    def at_open(self) -> bool:
        return self.cfg.fill == "next_open"

    def fill(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mids at a fill in bar ``t``, the quoted spread (bps) each leg crosses there, and
        where that spread is assumed (none recorded)."""
        mid = self.opens[t] if self.at_open else self.closes[t]
        book = t - 1 if self.at_open else t  # the book at an open is the one at the last close
        spread = self.quoted[book] if book >= 0 else np.full(len(self.legs), np.nan)
        assumed = ~np.isfinite(spread)
        return mid, np.where(assumed, self.assumed, spread), assumed

    def costs(self, qty: np.ndarray, mid, spread) -> tuple[float, float]:
        """(fees, spread crossing) of filling the signed ``qty`` at ``mid``."""
        notional = np.abs(qty) * mid
        crossing = notional * spread / 2e4
        filled = notional + np.sign(qty) * crossing  # a buy pays up, a sell receives less
        return float((filled * self.cfg.fee_bps * 1e-4).sum()), float(crossing.sum())


def _quoted(leg: LegData, n: int) -> np.ndarray:
    if leg.quoted_spread_bps is None:
        return np.full(n, np.nan)
    q = np.asarray(leg.quoted_spread_bps, dtype=np.float64)
    if len(q) != n:
        raise ValueError(f"{leg.symbol}: quoted spreads misaligned ({len(q)} vs {n} bars)")
    with np.errstate(invalid="ignore"):
        return np.where(q >= 0, q, np.nan)


def _run(z, w, hedge, market: _Market) -> tuple[list[_Trip], int]:
    """The decision loop. At each bar the previous close's decision fills first, then this
    bar's close decides."""
    cfg, n = market.cfg, len(z)
    trips: list[_Trip] = []
    refused = 0
    trip: _Trip | None = None
    pending: tuple[int, int, str] | None = None  # (decision bar, direction to enter / 0, why)
    armed = True  # after a z stop or a refused entry: none until |z| is back within entry z
    for t in range(n):
        if pending is not None:
            decided, direction, why = pending
            pending = None
            if direction:
                trip = _enter(t, decided, direction, w[decided], hedge[decided], market)
                if trip is None:
                    refused, armed = refused + 1, False
                else:
                    trips.append(trip)
            else:
                _exit(trip, t, decided, why, market)
                trip = None
        zt = z[t]
        if zt != zt or t + 1 >= n:  # NaN, or nothing could fill after the last bar
            continue
        if trip is None:
            armed = armed or abs(zt) <= cfg.entry_z
            if armed and abs(zt) > cfg.entry_z and np.isfinite(w[t]).all() and w[t].any():
                pending = (t, -1 if zt > 0 else 1, "")
            continue
        why = _exit_reason(trip, t, zt, market)
        if why is not None:
            pending = (t, 0, why)
            armed = armed and why != "stop z"
    return trips, refused


def _exit_reason(trip: _Trip, t: int, zt: float, market: _Market) -> str | None:
    cfg, d = market.cfg, trip.direction
    if cfg.stop_z is not None and d * zt < -cfg.stop_z:
        return "stop z"
    if (d == 1 and zt >= -cfg.exit_z) or (d == -1 and zt <= cfg.exit_z):
        return "signal"
    if cfg.stop_loss_bps is not None:
        mtm = float(trip.qty @ (market.closes[t] - trip.entry_mid)) - sum(trip.entry_costs)
        if mtm < -cfg.stop_loss_bps * 1e-4 * cfg.notional_usdt:
            return "stop loss"
    held = t - trip.first_held(market.at_open) + 1
    if cfg.max_hold_bars is not None and held >= cfg.max_hold_bars:
        return "max hold"
    return None


def _enter(t, decided, direction, weights, hedge, market: _Market) -> _Trip | None:
    """The entry fill, sized and rounded; None (refused) when a leg is below its minimums."""
    mid, spread, assumed = market.fill(t)
    if not np.isfinite(mid).all():
        return None
    share = np.abs(weights) / np.abs(weights).sum()
    target = market.cfg.notional_usdt * share / mid
    qty = np.array([_round_to_step(q, g.step) for q, g in zip(target, market.legs, strict=True)])
    notional = qty * mid
    for g, q, v in zip(market.legs, qty, notional, strict=True):
        if not (q > 0 and q >= g.min_qty and v >= g.min_notional):
            return None
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (notional / notional[0]) / (share / share[0])
    error = float(np.nanmax(np.abs(ratio - 1))) if len(qty) > 1 else 0.0
    signed = direction * np.sign(weights) * qty
    trip = _Trip(direction, decided, t, signed, mid.copy(), float(hedge), error)
    trip.entry_costs = market.costs(signed, mid, spread)
    trip.assumed = bool(assumed.any())
    return trip


def _exit(trip: _Trip, t: int, decided: int, why: str, market: _Market) -> None:
    mid, spread, assumed = market.fill(t)
    trip.exit_decided, trip.exit_filled, trip.exit_mid, trip.reason = decided, t, mid.copy(), why
    trip.exit_costs = market.costs(-trip.qty, mid, spread)
    trip.assumed = trip.assumed or bool(assumed.any())


def _round_to_step(qty: float, step: float) -> float:
    """The nearest multiple of ``step`` (LOT_SIZE), to the step's own decimals."""
    if not step > 0 or not math.isfinite(qty):
        return qty
    decimals = max(0, -math.floor(math.log10(step)) + 2)
    return round(round(qty / step) * step, decimals)


def _funding(trip: _Trip, legs, t_ms, opens, fill_ms, end_ms: int) -> list[tuple[int, float]]:
    """``(bar, cash)`` of each funding payment the trip's legs make (< 0) or receive (> 0):
    funding times after the entry fill, up to the exit fill (an open trip: the last bar's end)."""
    start = int(fill_ms[trip.filled])
    end = int(fill_ms[trip.exit_filled]) if trip.closed else end_ms - 1
    out = []
    for i, g in enumerate(legs):
        times = np.asarray(g.funding_times_ms, dtype=np.int64)
        rates = np.asarray(g.funding_rates, dtype=np.float64)
        held = (times > start) & (times <= end)
        for time_ms, rate in zip(times[held], rates[held], strict=True):
            bar = int(np.searchsorted(t_ms, time_ms, "right")) - 1
            if bar >= 0 and math.isfinite(rate):
                out.append((bar, float(-rate * trip.qty[i] * opens[bar, i])))
    return out


def _bar_pnl(trips: list[_Trip], funding, market: _Market, n: int) -> np.ndarray:
    """USDT per bar: each position marked at the closes (from its entry mid, to its exit mid),
    entry costs in the entry fill's bar, exit costs in the exit's, funding where it is paid."""
    pnl = np.zeros(n)
    for trip, paid in zip(trips, funding, strict=True):
        a = trip.filled
        b = trip.exit_filled if trip.closed else n - 1
        marks = market.closes[a : b + 1].copy()
        if trip.closed:
            marks[-1] = trip.exit_mid
        prev = np.vstack([trip.entry_mid, marks[:-1]])
        pnl[a : b + 1] += (marks - prev) @ trip.qty
        pnl[a] -= sum(trip.entry_costs)
        pnl[b] -= sum(trip.exit_costs)
        for bar, cash in paid:
            pnl[bar] += cash
    return pnl


def _trips_frame(trips, funding, t_ms, fill_ms, market: _Market) -> pd.DataFrame:
    n, notional = len(t_ms), market.cfg.notional_usdt
    rows = []
    for trip, paid in zip(trips, funding, strict=True):
        last = trip.exit_mid if trip.closed else market.closes[n - 1]
        gross = float(trip.qty @ (last - trip.entry_mid))  # an open trip: marked at the close
        fees = trip.entry_costs[0] + trip.exit_costs[0]
        crossing = trip.entry_costs[1] + trip.exit_costs[1]
        fund = float(sum(c for _, c in paid))
        net = gross - fees - crossing + fund
        row = {
            "entry_bar": trip.decided,
            "exit_bar": trip.exit_decided if trip.closed else n - 1,
            "entry_decided": _utc(t_ms[trip.decided]),
            "entry_time": _utc(fill_ms[trip.filled]),
            "exit_decided": _utc(t_ms[trip.exit_decided]) if trip.closed else pd.NaT,
            "exit_time": _utc(fill_ms[trip.exit_filled]) if trip.closed else pd.NaT,
            "side": "long" if trip.direction > 0 else "short",
            "hedge": trip.hedge,
            "hedge_error": trip.hedge_error,
            "gross_usdt": gross,
            "fees_usdt": fees,
            "spread_usdt": crossing,
            "funding_usdt": fund,
            "net_usdt": net,
            "net_bps": net / notional * 1e4,
            "bars_held": trip.held_until(market.at_open, n) - trip.first_held(market.at_open),
            "exit_reason": trip.reason,
            "spread_assumed": trip.assumed,
            "closed": trip.closed,
        }
        for i, g in enumerate(market.legs):
            row[f"qty_{g.symbol}"] = float(trip.qty[i])
            row[f"entry_{g.symbol}"] = float(trip.entry_mid[i])
            row[f"exit_{g.symbol}"] = float(trip.exit_mid[i]) if trip.closed else math.nan
        rows.append(row)
    per_leg = [f"{c}_{g.symbol}" for g in market.legs for c in ("qty", "entry", "exit")]
    frame = pd.DataFrame(rows, columns=[*TRADE_COLUMNS, *per_leg])
    for col in ("entry_decided", "entry_time", "exit_decided", "exit_time"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def _utc(ms) -> pd.Timestamp:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def _summary(frame, pnl, position, counts, t_ms, bar_ms, cfg: ExecutionConfig) -> BacktestSummary:
    n, notional = len(t_ms), cfg.notional_usdt
    refused, events = counts
    closed = frame[frame["closed"].astype(bool)]
    gross, fund = float(closed["gross_usdt"].sum()), float(closed["funding_usdt"].sum())
    fees, crossing = float(frame["fees_usdt"].sum()), float(frame["spread_usdt"].sum())
    trips = len(closed)
    equity = np.cumsum(pnl)
    halves = []
    for lo, hi in ((0, n // 2), (n // 2, n)):
        part = closed[(closed["entry_bar"] >= lo) & (closed["entry_bar"] < hi)]
        halves.append(
            {
                "net_usdt": float(pnl[lo:hi].sum()),
                "round_trips": len(part),
                "hit_rate": float((part["net_usdt"] > 0).mean()) if len(part) else math.nan,
                "from_ms": int(t_ms[lo]) if hi > lo else None,
                "to_ms": int(t_ms[hi - 1]) if hi > lo else None,
            }
        )
    days = (int(t_ms[-1]) - int(t_ms[0]) + bar_ms) / DAY_MS if n else 0.0
    closed_costs = float((closed["fees_usdt"] + closed["spread_usdt"]).sum())
    return BacktestSummary(
        first_ms=int(t_ms[0]) if n else None,
        last_ms=int(t_ms[-1]) if n else None,
        bars=n,
        round_trips=trips,
        open_trip=bool(len(frame) and not frame["closed"].iloc[-1]),
        refused=refused,
        gross_usdt=float(frame["gross_usdt"].sum()),
        fees_usdt=fees,
        spread_usdt=crossing,
        funding_usdt=float(frame["funding_usdt"].sum()),
        net_usdt=float(pnl.sum()),
        notional_usdt=notional,
        hit_rate=float((closed["net_usdt"] > 0).mean()) if trips else math.nan,
        avg_holding_bars=float(closed["bars_held"].mean()) if trips else math.nan,
        time_in_market=float((position != 0).mean()) if n else 0.0,
        max_drawdown_usdt=float(np.max(np.maximum.accumulate(np.maximum(equity, 0)) - equity))
        if n
        else 0.0,
        cost_share=closed_costs / gross if gross > 0 else math.nan,
        break_even_bps=(gross + fund) / trips / notional * 1e4 if trips else math.nan,
        cost_per_trip_bps=closed_costs / trips / notional * 1e4 if trips else math.nan,
        assumed_spread_trips=int(frame["spread_assumed"].sum()),
        funding_events=events,
        halves=(halves[0], halves[1]),
        days=days,
        sharpe=_daily_sharpe(pnl, t_ms, notional, days),
    )


def _daily_sharpe(pnl, t_ms, notional: float, days: float) -> float:
    """Annualised Sharpe of daily (UTC) returns on the notional; NaN below MIN_SHARPE_DAYS."""
    if days < MIN_SHARPE_DAYS:
        return math.nan
    day = t_ms // DAY_MS
    daily = pd.Series(pnl / notional).groupby(day).sum()
    full = daily.reindex(range(int(day[0]), int(day[-1]) + 1), fill_value=0.0)
    std = full.std(ddof=1)
    return float(full.mean() / std * math.sqrt(365)) if std > 0 else math.nan
