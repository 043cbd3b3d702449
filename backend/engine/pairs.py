"""The pair view: which analytics run on which data, split into a cheap live part (every
refresh) and an expensive part (cached on the last closed bar and the parameters).

One spread for everything, walk-forward by default (the README repeats this):

* **hedge ratio path** ``(beta_t, alpha_t)``: for each bar ``t``, fitted on the ``lookback_bars``
  bars *before* it (OLS in closed form; Huber / Theil-Sen refitted every
  ``ceil(lookback / 20)`` bars at fixed UTC times, each fit from the ``lookback_bars`` bars
  before its boundary; Kalman: the one-step-ahead prediction of ``analytics.kalman``, refitted
  in anchored blocks). So ``spread_t = y_t - (alpha_t + beta_t x_t)`` uses no bar at or after
  ``t`` for its hedge, and no past bar's hedge moves when bars arrive or the window slides;
* **hindsight** (an option, labelled so): one ``beta, alpha`` from the latest ``lookback_bars``
  closed bars applied to every bar shown (the Kalman: its smoother);
* **z-score**: trailing ``z_window_bars`` mean and sample std of that spread (current bar in);
  decisions (the z card, alerts, the backtest) take the last *closed* bar's;
* **correlation**: trailing ``corr_window_bars`` Pearson correlation of log returns (or prices);
* the spread's ADF (on the two-variable Engle-Granger table), half-life (only where that ADF
  rejects at 5 %), Engle-Granger and the backtest use *closed* bars only: the spread's last
  ``lookback_bars`` closed bars, the series', and the closed bars shown from an anchored start
  (the backtest, executed as ``analytics.execution`` says, on the same z as the chart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from backend import analytics as an
from backend.store.records import (
    TIMEFRAMES_MS,
    Bars,
    FundingEvents,
    FundingSnapshot,
    Instrument,
    QuoteBars,
)
from backend.store.resampling import align

REGRESSION_METHODS = ("ols", "huber", "theil-sen", "kalman")
BARS_PER_YEAR = {tf: 365 * 24 * 3600 * 1000 / ms for tf, ms in TIMEFRAMES_MS.items()}
ROBUST_REFITS_PER_WINDOW = 20  # a robust walk-forward hedge is refitted this often a window


@dataclass(frozen=True)
class PairParams:
    lookback_bars: int = 300
    z_window_bars: int = 60
    corr_window_bars: int = 60
    method: str = "ols"
    log_prices: bool = True
    corr_on_returns: bool = True
    z_threshold: float = 2.0
    hindsight: bool = False  # one beta from the latest window for every bar (look-ahead)
    # The backtest's execution (analytics.execution): a real desk's defaults.
    fee_bps: float = an.TAKER_FEE_BPS
    fill: str = "next_open"
    notional_usdt: float = 10_000.0
    assumed_spread_bps: float = 1.0  # quoted spread where no book was recorded
    stop_z: float | None = None
    stop_loss_bps: float | None = None
    max_hold_bars: int | None = None
    # Fit the hedge on this slower timeframe (OLS, walk-forward) and apply it to the bars shown:
    # each bar takes the fit of the lookback slow bars closed before it. None: the same bars.
    hedge_timeframe: str | None = None

    def execution(self) -> an.ExecutionConfig:
        return an.ExecutionConfig(
            entry_z=self.z_threshold,
            exit_z=0.0,
            fill=self.fill,
            fee_bps=self.fee_bps,
            notional_usdt=self.notional_usdt,
            stop_z=self.stop_z,
            stop_loss_bps=self.stop_loss_bps,
            max_hold_bars=self.max_hold_bars,
        )

    def check(self) -> None:
        """Raise ``ValueError`` with a user-facing message for a bad setting."""
        if self.method not in REGRESSION_METHODS:
            raise ValueError(f"unknown regression method {self.method!r}")
        if self.lookback_bars < an.MIN_REGRESSION_POINTS:
            raise ValueError(f"lookback must be at least {an.MIN_REGRESSION_POINTS} bars")
        if self.z_window_bars < 2 or self.corr_window_bars < 2:
            raise ValueError("rolling windows must be at least 2 bars")
        if not self.z_threshold > 0:
            raise ValueError("the z-score threshold must be greater than 0")
        if not 0 <= self.assumed_spread_bps < 1e4:
            raise ValueError("the assumed spread must be >= 0 bps")
        if self.hedge_timeframe is not None:
            if self.hedge_timeframe not in TIMEFRAMES_MS:
                raise ValueError(f"unknown hedge timeframe {self.hedge_timeframe!r}")
            if self.method != "ols" or self.hindsight:
                raise ValueError("a hedge from a slower timeframe is a walk-forward OLS")
        self.execution().check()

    @property
    def path_is_slow(self) -> bool:
        """The hedge path is refitted at bar close (robust walk-forward, Kalman either way)."""
        return self.method == "kalman" or (not self.hindsight and self.method != "ols")


def needs(p: PairParams) -> dict[str, int]:
    """Aligned bars each figure needs before it is defined (no hidden floor). A Kalman hedge
    starts at the first refit boundary with ``KALMAN_FIT_BARS`` bars before it: at most a
    block after them."""
    if p.method == "kalman":
        hedge = an.KALMAN_FIT_BARS + (0 if p.hindsight else an.KALMAN_REFIT_BARS)
    elif p.method == "ols" or p.hindsight:
        hedge = p.lookback_bars + (0 if p.hindsight else 1)
    else:  # a robust refit at the first block boundary with a whole window before it
        hedge = p.lookback_bars + robust_stride(p.lookback_bars)
    z = hedge + p.z_window_bars - 1
    return {
        "β": hedge,
        "z-score": z,
        "correlation": p.corr_window_bars + (1 if p.corr_on_returns else 0),
        "ADF": hedge + an.MIN_ADF_POINTS,  # 20 closed bars of a defined spread
        "backtest": z + 1,
    }


def history_bars(p: PairParams) -> int:
    """Bars before the first one shown that the figures on it need."""
    return max(needs(p).values())


def robust_stride(lookback_bars: int) -> int:
    """Bars between the refits of a robust walk-forward hedge."""
    return max(1, math.ceil(lookback_bars / ROBUST_REFITS_PER_WINDOW))


@dataclass(frozen=True)
class HedgePath:
    """Per-bar ``(beta_t, alpha_t)`` and, for a Kalman hedge, the fitted spread's half-life."""

    beta: np.ndarray
    alpha: np.ndarray
    kalman_half_life_bars: float = math.nan  # from the latest fit's phi


@dataclass(frozen=True)
class LiveStats:
    open_time: np.ndarray
    y: np.ndarray  # the regression series (log prices or prices)
    x: np.ndarray
    beta: np.ndarray  # per bar (constant under hindsight)
    alpha: np.ndarray
    spread: np.ndarray
    zscore: np.ndarray
    corr: np.ndarray
    latest_z: float  # at the last closed bar: what alerts and the backtest decide on
    forming_z: float  # at the bar still forming (moves until it closes); NaN if none is
    latest_corr: float
    y_close: np.ndarray  # the aligned bars' closes, as traded
    x_close: np.ndarray
    y_bars: Bars  # the aligned bars themselves
    x_bars: Bars
    closed: int  # bars closed: all but the newest while it forms, else all

    @property
    def newest_is_open(self) -> bool:
        return self.closed < len(self.open_time)


@dataclass(frozen=True)
class SlowStats:
    adf: an.AdfResult  # the spread's, against the Engle-Granger table (an estimated hedge)
    eg_pvalue: float
    half_life: an.HalfLife  # NaN-free only where the spread reverts (ADF p <= 0.05)
    path: HedgePath | None  # the refitted hedge path (robust / Kalman walk-forward, smoother)
    backtest: an.BacktestResult
    window: int  # closed bars the ADF / half-life / Engle-Granger used

    @property
    def half_life_bars(self) -> float:
        return self.half_life.bars

    @property
    def beta_path(self) -> np.ndarray | None:
        return None if self.path is None else self.path.beta

    @property
    def alpha_path(self) -> np.ndarray | None:
        return None if self.path is None else self.path.alpha


MEAN_REVERSION_P = 0.05  # a half-life is shown only where the spread's ADF rejects at this


def aligned_series(y_bars: Bars, x_bars: Bars, p: PairParams):
    ya, xa = align(y_bars, x_bars)
    to_series = np.log if p.log_prices else np.asarray
    return ya, xa, to_series(ya.close), to_series(xa.close)


def hedge_path(
    y: np.ndarray,
    x: np.ndarray,
    p: PairParams,
    open_time=None,
    bar_ms=None,
    memo=None,
    closed: int | None = None,
) -> HedgePath:
    """Per-bar ``(beta_t, alpha_t)`` as the module docstring says. A hindsight fit uses the
    ``lookback_bars`` bars before ``closed`` (default: all but the newest, taken to be
    forming)."""
    n = len(y)
    closed = max(0, n - 1) if closed is None else closed
    if p.hindsight:
        if p.method == "kalman":
            path = an.kalman_smoothed(y[:closed], x[:closed])
            pad = np.full(n - closed, np.nan)
            return HedgePath(
                np.concatenate([path.beta, pad]),
                np.concatenate([path.alpha, pad]),
                path.half_life_bars,
            )
        window = slice(max(0, closed - p.lookback_bars), closed)
        b, a = an.hedge_ratio(y[window], x[window], p.method)
        return HedgePath(np.full(n, b), np.full(n, a))
    if p.method == "kalman":
        path = an.kalman_path(y, x, open_time, bar_ms, memo=memo)
        return HedgePath(path.beta, path.alpha, path.half_life_bars)
    if p.method == "ols":
        b, a = (np.asarray(v) for v in an.rolling_hedge_ratio(y, x, p.lookback_bars))
        return HedgePath(_shifted(b), _shifted(a))
    return _robust_path(y, x, p, open_time, bar_ms)


def slower_hedge_path(
    open_time: np.ndarray, y_slow: Bars, x_slow: Bars, p: PairParams
) -> HedgePath:
    """The hedge of the bars at ``open_time`` fitted on slower bars: walk-forward OLS of the
    regression series over the ``lookback_bars`` slow bars before each slow bar, and each bar
    at ``open_time`` takes the fit in force at its open (that of the latest slow bar opened at
    or before it: fitted on slow bars all closed by then). No figure sees a later bar."""
    _, _, ys, xs = aligned_series(y_slow, x_slow, p)
    ya, _ = align(y_slow, x_slow)
    slow = hedge_path(ys, xs, replace(p, hedge_timeframe=None), closed=len(ys))
    at = np.searchsorted(ya.open_time, np.asarray(open_time), "right") - 1
    known = at >= 0
    idx = np.maximum(at, 0)
    beta = np.where(known, slow.beta[idx], np.nan) if len(ys) else np.full(len(at), np.nan)
    alpha = np.where(known, slow.alpha[idx], np.nan) if len(ys) else np.full(len(at), np.nan)
    return HedgePath(beta, alpha)


def _shifted(a: np.ndarray) -> np.ndarray:
    """Value of the window ending at the previous bar, for each bar."""
    return np.concatenate(([np.nan], a[:-1])) if len(a) else a


def _robust_path(y, x, p: PairParams, open_time, bar_ms) -> HedgePath:
    """Refits at fixed UTC boundaries every ``robust_stride`` bars, each from the
    ``lookback_bars`` bars before the boundary: no refit moves when the data's start does."""
    n, w = len(y), p.lookback_bars
    beta, alpha = np.full(n, np.nan), np.full(n, np.nan)
    for start, stop in an.anchored_blocks(n, open_time, bar_ms, robust_stride(w), w):
        beta[start:stop], alpha[start:stop] = an.hedge_ratio(
            y[start - w : start], x[start - w : start], p.method
        )
    return HedgePath(beta, alpha)


def live_stats(
    y_bars: Bars,
    x_bars: Bars,
    p: PairParams,
    slow: SlowStats | None = None,
    newest_is_open: bool = True,
    hedge: HedgePath | None = None,
) -> LiveStats:
    """The per-refresh figures (closed forms and O(n) rolling sums); a slow hedge path comes
    from ``slow`` (fitted at the last bar close; the live bar's hedge needs no newer bar).
    ``newest_is_open``: the newest bar is still forming (a feed), not closed (a file)."""
    ya, xa, y, x = aligned_series(y_bars, x_bars, p)
    closed = max(0, len(y) - 1) if newest_is_open else len(y)
    if hedge is not None:  # fitted elsewhere (a slower timeframe)
        beta, alpha = hedge.beta, hedge.alpha
    elif p.path_is_slow:
        if slow is not None and slow.path is not None and len(slow.path.beta) == len(y):
            beta, alpha = slow.path.beta, slow.path.alpha
        else:
            beta = alpha = np.full(len(y), np.nan)
    else:
        path = hedge_path(y, x, p, closed=closed)
        beta, alpha = path.beta, path.alpha
    s = np.asarray(an.spread(y, x, beta, alpha))
    z = np.asarray(an.zscore(s, p.z_window_bars))
    if p.corr_on_returns:
        corr = an.rolling_corr(
            an.log_returns(ya.close), an.log_returns(xa.close), p.corr_window_bars
        )
    else:
        corr = an.rolling_corr(ya.close, xa.close, p.corr_window_bars)
    closed_z = float(z[closed - 1]) if closed else math.nan
    forming_z = _last(z) if closed < len(z) else math.nan
    return LiveStats(
        ya.open_time, y, x, beta, alpha, s, z, np.asarray(corr), closed_z, forming_z,
        _last(corr), ya.close, xa.close, ya, xa, closed,
    )  # fmt: skip


@dataclass(frozen=True)
class ExecutionContext:
    """What the backtest knows of the market beyond the bars: each symbol's lot rules, the
    funding rates charged at past funding times, the quoted spreads recorded per bar, and
    where the funding rates and quotes come from ("recorded" from Binance, "simulated" by the
    local exchange, "none")."""

    instruments: dict[str, Instrument] = field(default_factory=dict)
    funding: dict[str, FundingEvents] = field(default_factory=dict)
    quotes: dict[str, QuoteBars] = field(default_factory=dict)
    funding_source: str = "recorded"
    version: tuple = ()  # changes when any of the above does (a cache key)


NO_CONTEXT = ExecutionContext()
# The backtest starts at a fixed boundary of this many bars (UTC), the first after its z is
# defined: as the window slides, the tested period moves only in such steps, so the trades in
# it do not change with every new bar.
BACKTEST_ANCHOR_BARS = 60


def slow_stats(
    y_bars: Bars,
    x_bars: Bars,
    p: PairParams,
    live: LiveStats,
    context: ExecutionContext = NO_CONTEXT,
    memo=None,
) -> SlowStats:
    """The expensive figures, on closed bars (the live bar is the last one). ``memo`` keeps
    the Kalman's block fits between calls."""
    y, x = live.y, live.x
    path = None
    beta, alpha = live.beta, live.alpha
    if p.path_is_slow:
        bar_ms = TIMEFRAMES_MS[live.y_bars.timeframe]
        path = hedge_path(y, x, p, live.open_time, bar_ms, memo, live.closed)
        beta, alpha = path.beta, path.alpha
    spread = np.asarray(an.spread(y, x, beta, alpha))
    z = np.asarray(an.zscore(spread, p.z_window_bars))
    closed = slice(0, live.closed)
    window = _defined_tail(spread[closed], p.lookback_bars)
    bt = pair_backtest(p, live, beta[closed], z[closed], context)
    n = len(window)
    # A hindsight OLS spread over exactly its fit window is the OLS residual: coint's test.
    residual = p.hindsight and p.method == "ols" and n == p.lookback_bars
    adf = an.spread_adf(window, residual=residual)
    reverts = adf.pvalue <= MEAN_REVERSION_P
    return SlowStats(
        adf,
        an.engle_granger_pvalue(y[closed][-n:], x[closed][-n:]) if n else math.nan,
        an.half_life_interval(window) if reverts else an.HALF_LIFE_NAN,
        path,
        bt,
        n,
    )


def pair_backtest(
    p: PairParams, live: LiveStats, beta, z, context: ExecutionContext
) -> an.BacktestResult:
    """The backtest of long 1 of y's notional / short h of x's (``h`` the notional hedge ratio
    at each decision: β on log prices, ``β · price x / price y`` on prices), on the closed bars
    ``beta`` and ``z`` cover, from the first ``BACKTEST_ANCHOR_BARS`` boundary after z is
    defined."""
    n = len(z)
    t = live.open_time[:n]
    bar_ms = TIMEFRAMES_MS[live.y_bars.timeframe]
    start = anchored_start(t, z, BACKTEST_ANCHOR_BARS * bar_ms)
    part = slice(start, n)
    h = beta if p.log_prices else beta * live.x_close[:n] / live.y_close[:n]
    weights = np.column_stack([np.ones(n), -np.asarray(h, dtype=np.float64)])[part]
    legs = [leg_data(b.slice(0, n), p, context, part) for b in (live.y_bars, live.x_bars)]
    bt = an.backtest(t[part], bar_ms, z[part], weights, legs, p.execution(), hedge=beta[part])
    return from_bar(bt, start)


def from_bar(bt: an.BacktestResult, start: int) -> an.BacktestResult:
    """A backtest of bars ``start:`` indexed like the bars from 0: flat before ``start``."""
    if not start:
        return bt
    trades = bt.trades.copy()
    trades[["entry_bar", "exit_bar"]] += start
    pad = np.zeros(start)
    return replace(
        bt,
        position=np.concatenate([pad.astype(np.int8), bt.position]),
        pnl_usdt=np.concatenate([pad, bt.pnl_usdt]),
        equity_usdt=np.concatenate([pad, bt.equity_usdt]),
        trades=trades,
    )


def anchored_start(t: np.ndarray, z: np.ndarray, anchor_ms: int) -> int:
    """The first bar at or after z's first defined value whose open time is on an anchor
    boundary (UTC); the first defined one when no boundary comes after it."""
    defined = np.flatnonzero(np.isfinite(z))
    if not len(defined):
        return len(z)
    first = int(defined[0])
    boundary = -(-int(t[first]) // anchor_ms) * anchor_ms
    start = int(np.searchsorted(t, boundary))
    return start if start < len(t) else first


def leg_data(bars: Bars, p: PairParams, context: ExecutionContext, part: slice) -> an.LegData:
    rules = context.instruments.get(bars.symbol)
    quotes = context.quotes.get(bars.symbol)
    funding = context.funding.get(bars.symbol) or FundingEvents.empty(bars.symbol)
    quoted = quotes.at(bars.open_time, quotes.spread_close_bps) if quotes is not None else None
    return an.LegData(
        bars.symbol,
        bars.open[part],
        bars.close[part],
        quoted_spread_bps=None if quoted is None else quoted[part],
        assumed_spread_bps=p.assumed_spread_bps,
        step=rules.step if rules else 0.0,
        min_qty=rules.min_qty if rules else 0.0,
        min_notional=rules.min_notional if rules else 0.0,
        funding_times_ms=funding.time_ms,
        funding_rates=funding.rate,
    )


def _defined_tail(a: np.ndarray, n: int) -> np.ndarray:
    """The last ``n`` values, cut at the latest NaN (a walk-forward spread's warm-up)."""
    tail = a[-n:] if n else a[:0]
    bad = np.flatnonzero(~np.isfinite(tail))
    return tail[bad[-1] + 1 :] if len(bad) else tail


def _last(a) -> float:
    a = np.asarray(a)
    return float(a[-1]) if len(a) else math.nan


# --- the market scan ---------------------------------------------------------------------------


# The scanner's defaults: pairs pass at a Benjamini-Hochberg q of at most SCAN_MAX_Q, and
# only pairs whose returns move together at all (unrelated random walks correlate ~0 +- 0.06
# over 300 bars: a lucky Engle-Granger p between them is no trade).
SCAN_MAX_Q = 0.05
SCAN_MIN_CORR = 0.3
# Pairs are chosen on weeks of slow bars: the scanner opens on 30 days of 1h bars where every
# symbol has them, else on the fast default (300 1m bars, five hours, loaded at start).
SCAN_DEEP = ("1h", 720)
SCAN_FAST = ("1m", 300)


@dataclass(frozen=True)
class MarketScan:
    """Every pair of the streamed symbols on their last ``lookback_bars`` closed bars."""

    table: pd.DataFrame  # analytics.SCAN_COLUMNS + volume_usdt; empty while waiting
    timeframe: str
    lookback_bars: int
    last_closed_ms: int | None  # open time of the newest bar used
    skipped: tuple[str, ...]  # symbols without a bar in the window's first row
    waiting: str | None  # why there is no table yet


def scan_market(
    bars_by_symbol: dict[str, Bars],
    timeframe: str,
    lookback: int,
    adf_lag: int = 1,
    newest_is_open: bool = True,
) -> MarketScan:
    """``analytics.scan_pairs`` on closed bars: the newest bar of the market (still open while
    streaming; ``newest_is_open=False`` for finished data) is left out, closes are aligned on open time, and a symbol without a bar at a time (no
    trade there yet) takes its previous close: the price did not move. ``volume_usdt``: the smaller leg's
    quote volume summed over the window."""
    closes = {s: pd.Series(b.close, index=b.open_time) for s, b in bars_by_symbol.items() if len(b)}
    empty = MarketScan(pd.DataFrame(columns=[*an.SCAN_COLUMNS, "volume_usdt"]), timeframe,
                       lookback, None, (), None)  # fmt: skip
    if len(closes) < 2:
        return replace(empty, waiting=f"the scan needs two symbols with bars, has {len(closes)}")
    frame = pd.DataFrame(closes).sort_index()
    if newest_is_open:
        frame = frame.iloc[:-1]
    frame = frame.ffill().tail(lookback)
    if len(frame) < lookback:
        return replace(
            empty, waiting=f"{len(frame)} closed {timeframe} bars of the {lookback} the scan uses"
        )
    table = an.scan_pairs(np.log(frame), lookback=lookback, adf_lag=adf_lag)
    first, last = int(frame.index[0]), int(frame.index[-1])
    volume = {
        s: float(b.quote_volume[(b.open_time >= first) & (b.open_time <= last)].sum())
        for s, b in bars_by_symbol.items()
    }
    table["volume_usdt"] = np.minimum(table["y"].map(volume), table["x"].map(volume))
    return MarketScan(table, timeframe, lookback, last, tuple(table.attrs["skipped"]), None)


@dataclass(frozen=True)
class PairCarry:
    """Funding of the spread position at the latest mark-price update of each leg."""

    long_bps_day: float  # long y, short beta x: earned per day, bps of y's notional (< 0: paid)
    short_bps_day: float  # short y, long beta x
    rate_y: float  # funding rate per interval (fraction)
    rate_x: float
    interval_y_h: int
    interval_x_h: int
    basis_y_bps: float  # (mark - index) / index
    basis_x_bps: float
    as_of_ms: int  # the older of the two legs' updates


def notional_beta(beta: float, log_prices: bool, y: Bars, x: Bars) -> float:
    """The hedge as a notional ratio (x's notional per 1 of y's): ``beta`` itself for a fit on
    log prices; for a fit on prices (``beta`` units of x per unit of y),
    ``beta * price_x / price_y`` at the last closes."""
    if log_prices:
        return beta
    if not len(y) or not len(x):
        return math.nan
    return beta * float(x.close[-1]) / float(y.close[-1])


def pair_carry(funding: FundingSnapshot, y: str, x: str, beta: float) -> PairCarry | None:
    """The carry of long y / short ``beta`` x and the reverse, or None until both legs have a
    mark price and a funding interval (``analytics.funding_carry_bps_per_day``)."""
    my, mx = funding.marks.get(y), funding.marks.get(x)
    hy, hx = funding.interval_h.get(y), funding.interval_h.get(x)
    if my is None or mx is None or hy is None or hx is None or not math.isfinite(beta):
        return None
    carry = float(an.funding_carry_bps_per_day(my.funding_rate, hy, mx.funding_rate, hx, beta))
    return PairCarry(
        carry,
        -carry,
        my.funding_rate,
        mx.funding_rate,
        hy,
        hx,
        float(an.basis_bps(my.mark_price, my.index_price)),
        float(an.basis_bps(mx.mark_price, mx.index_price)),
        min(my.event_time_ms, mx.event_time_ms),
    )


def with_carry(scan: MarketScan, funding: FundingSnapshot) -> MarketScan:
    """The scan with ``carry_bps_day``: each pair's carry, long y / short beta x, at the current
    funding rates (NaN where a leg has no mark price or interval yet)."""
    table = scan.table
    if table.empty:
        return replace(scan, table=table.assign(carry_bps_day=pd.Series(dtype=float)))
    rate = {s: m.funding_rate for s, m in funding.marks.items()}
    hours = funding.interval_h
    carry = an.funding_carry_bps_per_day(
        table["y"].map(rate).astype(float),
        table["y"].map(hours).astype(float),
        table["x"].map(rate).astype(float),
        table["x"].map(hours).astype(float),
        table["beta"].to_numpy(float),
    )
    return replace(scan, table=table.assign(carry_bps_day=np.asarray(carry)))
