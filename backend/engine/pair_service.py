"""The pair as a service: everything shown for a pair, computed behind the engine.

``PairService.report(market, request)`` gives one ``PairReport``: the pair's aligned bars, what
is still warming up, the live figures (``pairs.LiveStats``: hedge, spread, z, correlation,
recomputed each call, O(n)), the slow ones (``pairs.SlowStats``: ADF, Engle–Granger,
half-life, refitted hedge paths, the backtest; computed once per closed bar for every viewer,
keyed by market, pair, parameters and last closed bar) and the funding carry. The analytics
table and its CSV, the alert events of a closed bar and the correlation heatmap come from the
same place, so the page only lays them out and a headless process computes the same figures.

``market`` is anything with the ``MarketData`` read interface: the engine (live, replay,
simulate, or the bars collectors stored: ``--source db``) and uploaded files alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from backend import analytics as an
from backend.engine.csv_export import iso_utc
from backend.engine.pairs import (
    ExecutionContext,
    LiveStats,
    MarketScan,
    PairCarry,
    PairParams,
    SlowStats,
    history_bars,
    live_stats,
    needs,
    notional_beta,
    slow_stats,
    slower_hedge_path,
)
from backend.store.records import TIMEFRAMES_MS, Bars, Coverage
from backend.store.resampling import align


class MarketData(Protocol):
    """The read interface the pair service needs: the engine and uploads both offer it."""

    key: Hashable  # names the data in shared caches
    newest_is_open: bool  # a feed's newest bar is still forming; a file's are all closed
    funding_source: str  # "recorded", "simulated" or "none"

    @property
    def symbols(self) -> list[str]: ...

    def bars(self, symbol: str, timeframe: str, last: int | None = None) -> Bars: ...

    def carry(self, y: str, x: str, beta: float) -> PairCarry | None: ...

    def execution_context(self, symbols, timeframe: str) -> ExecutionContext: ...

    def execution_version(self, symbols) -> tuple: ...

    def coverage(self, timeframe: str) -> Coverage: ...

    def scan(
        self, timeframe: str, lookback: int, adf_lag: int = 1, end_ms: int | None = None
    ) -> MarketScan: ...


@dataclass(frozen=True)
class PairRequest:
    """A pair, its timeframe and parameters, and how many bars are shown.

    ``slow=False`` leaves out the slow figures (ADF, Engle–Granger, half-life, backtest) unless
    the hedge path needs them; ``slow_token`` names an on-demand run (a new token recomputes).
    """

    y: str
    x: str
    timeframe: str
    params: PairParams = PairParams()
    shown_bars: int = 600
    slow: bool = True
    slow_token: Hashable = None
    # A range of dates instead of the last ``shown_bars``: bars opened in [start_ms, end_ms]
    # (end None: up to the newest), with the history their windows need before them.
    start_ms: int | None = None
    end_ms: int | None = None

    @property
    def symbols(self) -> tuple[str, str]:
        return self.y, self.x


@dataclass(frozen=True)
class PairReport:
    """What one refresh of a pair shows: the bars, what is still warming up, the figures."""

    request: PairRequest
    yb: Bars
    xb: Bars
    aligned_bars: int
    waiting: dict[str, int]  # figure -> aligned bars it needs, for those not met yet
    live: LiveStats | None  # None while warming up
    slow: SlowStats | None  # None until computed (or when left out)
    carry: PairCarry | None
    carry_beta: float  # the notional hedge the carry is of (x's notional per 1 of y's)
    funding_source: str

    @property
    def shown_from(self) -> int:
        """Index of the first aligned bar shown: the range's first, or ``shown_bars`` back."""
        live, r = self.live, self.request
        if live is None:
            return 0
        if r.start_ms is None:
            return max(0, len(live.open_time) - r.shown_bars)
        return int(np.searchsorted(live.open_time, r.start_ms, "left"))

    @property
    def beta(self) -> float:
        return _last_finite(self.live.beta) if self.live is not None else math.nan

    @property
    def alpha(self) -> float:
        return _last_finite(self.live.alpha) if self.live is not None else math.nan

    def last_closed_ms(self) -> int | None:
        """Open time of the last closed aligned bar (what alerts and the backtest decide on)."""
        live = self.live
        return int(live.open_time[live.closed - 1]) if live is not None and live.closed else None


@dataclass(frozen=True)
class PairAlert:
    """An alert event of a pair's last closed bar."""

    rule: str  # "z-score" or "rule N"
    bar_open_time_ms: int
    value: float
    threshold: float
    text: str


@dataclass(frozen=True)
class LevelRule:
    """Price or bar volume of one symbol crossing a level on a closed bar."""

    kind: str  # "Price" | "Bar volume"
    symbol: str
    side: str  # "above" | "below"
    level: float


class PairService:
    """Computes pair reports; slow figures through ``cached(key, compute)`` (shared by every
    viewer of the engine), Kalman fits through ``fit_memo``."""

    def __init__(self, cached: Callable, fit_memo) -> None:
        self._cached = cached
        self._fit_memo = fit_memo

    def ready_timeframe(
        self, market: MarketData, timeframes: Sequence[str], symbols: Sequence[str],
        params: PairParams | None = None,
    ) -> str | None:  # fmt: skip
        """The shortest of ``timeframes`` on which both ``symbols`` already hold the bars every
        figure of ``params`` needs (the page opens on it), or None while none does."""
        need = history_bars(params or PairParams())
        for tf in timeframes:
            held = [len(market.bars(s, tf, last=need)) for s in symbols[:2]]
            if len(held) == 2 and min(held) >= need:
                return tf
        return None

    def report(self, market: MarketData, request: PairRequest, force_slow=False) -> PairReport:
        p = request.params
        yb, xb, newest_is_open = self._pair_bars(market, request)
        have = _common_bars(yb, xb)
        waiting = {name: n for name, n in needs(p).items() if have < n}
        source = market.funding_source
        if have < min(needs(p).values()):
            return PairReport(request, yb, xb, have, waiting, None, None, None, math.nan, source)
        hedge = None
        if p.hedge_timeframe is not None and p.hedge_timeframe != request.timeframe:
            hedge = self._slower_hedge(market, request, yb, xb)
        live = live_stats(yb, xb, p, newest_is_open=newest_is_open, hedge=hedge)
        slow = self._slow(market, request, yb, xb, live, force_slow)
        if p.path_is_slow and slow is not None:
            live = live_stats(yb, xb, p, slow, newest_is_open)
        beta = notional_beta(_last_finite(live.beta), p.log_prices, yb, xb)
        carry = market.carry(request.y, request.x, beta)
        return PairReport(request, yb, xb, have, waiting, live, slow, carry, beta, source)

    @staticmethod
    def _pair_bars(market: MarketData, request: PairRequest) -> tuple[Bars, Bars, bool]:
        """The bars shown and the history their windows need, and whether the newest of them
        is still forming (a range ending in the past holds closed bars only)."""
        p, tf = request.params, request.timeframe
        extra = history_bars(p) + 1
        if request.start_ms is None:
            keep = request.shown_bars + extra
        else:
            newest = [market.bars(s, tf, last=1) for s in request.symbols]
            top = max((int(b.open_time[-1]) for b in newest if len(b)), default=-1)
            if top < request.start_ms:  # nothing in the range: no figures of earlier bars
                return Bars.empty(request.y, tf), Bars.empty(request.x, tf), False
            keep = (top - request.start_ms) // TIMEFRAMES_MS[tf] + 1 + extra
        yb, xb = (market.bars(s, tf, last=keep) for s in request.symbols)
        newest_is_open = market.newest_is_open
        if request.end_ms is not None:
            cut = [b.slice(0, int((b.open_time <= request.end_ms).sum())) for b in (yb, xb)]
            newest_is_open = newest_is_open and all(
                len(c) == len(b) for c, b in zip(cut, (yb, xb), strict=True)
            )
            yb, xb = cut
        return yb, xb, newest_is_open

    @staticmethod
    def _slower_hedge(market: MarketData, request: PairRequest, yb: Bars, xb: Bars):
        """The hedge fitted on ``params.hedge_timeframe`` bars, for each aligned bar shown."""
        p, tf = request.params, request.params.hedge_timeframe
        ya, _ = align(yb, xb)
        span = int(ya.open_time[-1] - ya.open_time[0]) if len(ya) else 0
        n = span // TIMEFRAMES_MS[tf] + p.lookback_bars + 3
        ys, xs = market.bars(request.y, tf, last=n), market.bars(request.x, tf, last=n)
        return slower_hedge_path(ya.open_time, ys, xs, p)

    def _slow(self, market, request: PairRequest, yb, xb, live, force: bool):
        """ADF, Engle–Granger, half-life, the slow hedge paths and the backtest: once per
        closed bar (or per on-demand token) for every viewer."""
        p = request.params
        if not (request.slow or p.path_is_slow or force):
            return None
        last_closed = int(live.open_time[live.closed - 1]) if live.closed else 0
        first = int(live.open_time[0]) if len(live.open_time) else 0
        token = request.slow_token if not (p.path_is_slow or force) else None
        key = (
            market.key, request.timeframe, request.y, request.x, p, first,
            last_closed, token, market.execution_version(request.symbols),
        )  # fmt: skip

        def compute():
            context = market.execution_context(request.symbols, request.timeframe)
            return slow_stats(yb, xb, p, live, context, self._fit_memo)

        return self._cached(key, compute)

    # --- the analytics table and its CSV ---------------------------------------------------

    def table(self, market: MarketData, report: PairReport) -> pd.DataFrame:
        """The per-bar table: closes, volumes, spread, z, return volatility; each leg's
        recorded book per bar too (bid and ask at the close and the time-weighted mean quoted
        spread in bps; blank where none was recorded)."""
        r, live = report.request, report.live
        table = an.bar_stats_table(
            live.open_time,
            live.y_close,  # the bars' own closes: exp(log(p)) would print 3139.7799999999997
            live.x_close,
            _aligned_volume(report.yb, live),
            _aligned_volume(report.xb, live),
            live.spread,
            live.zscore,
            r.params.z_window_bars,
            r.symbols,
        )
        quotes = market.execution_context(r.symbols, r.timeframe).quotes
        for symbol in r.symbols:
            q = quotes.get(symbol)
            if q is not None and len(q):
                table[f"{symbol}_bid"] = q.at(live.open_time, q.bid_close)
                table[f"{symbol}_ask"] = q.at(live.open_time, q.ask_close)
                table[f"{symbol}_spread_bps"] = q.at(live.open_time, q.spread_mean_bps)
        return table

    def analytics_csv(self, market: MarketData, request: PairRequest) -> bytes:
        """The per-bar table of the bars there are now, as CSV, under a header naming the pair,
        the fit and the windows; a line saying why where there are no figures yet."""
        p = request.params
        try:
            # the slow figures only where the hedge path needs them (a CSV of the live
            # figures); then the same cached fit the page shows
            report = self.report(market, replace(request, slow=False), force_slow=p.path_is_slow)
            if report.live is None:
                need = min(needs(p).values())
                return (
                    f"# warming up: {report.aligned_bars} of {need} {request.timeframe} bars "
                    "so far\n"
                ).encode()
            frame = self.table(market, report)
            frame["time"] = iso_utc(report.live.open_time)  # one time format in both files
            return (csv_header(request) + frame.to_csv(index=False)).encode()
        except ValueError as exc:
            return f"# no pair statistics: {exc}\n".encode()

    # --- alerts and the heatmap --------------------------------------------------------------

    def alerts(self, report: PairReport, rules: Sequence[LevelRule] = ()) -> list[PairAlert]:
        """Events of the last closed bar: |z| crossing the threshold (edge-triggered, as
        ``analytics.zscore_alerts``), and price or bar volume of a leg crossing a rule's
        level from the bar before. The caller keeps the cooldown (``AlertGate``)."""
        live, r = report.live, report.request
        if live is None or not live.closed:
            return []
        last = live.closed  # bars [0, last) are closed
        bar_ms = int(live.open_time[last - 1])
        threshold = r.params.z_threshold
        out = []
        z = live.zscore[max(0, last - 2) : last]
        if len(z) == 2:
            for e in an.zscore_alerts(z, threshold):
                if e.index == 1:
                    text = f"z {e.value:+.2f} crossed {e.direction} ±{threshold}"
                    out.append(PairAlert("z-score", bar_ms, e.value, threshold, text))
        open_bars = len(live.open_time) - last
        for i, rule in enumerate(rules):
            bars = {r.y: report.yb, r.x: report.xb}.get(rule.symbol)
            shut = len(bars) - open_bars if bars is not None else 0
            if shut < 2:
                continue
            series = bars.close if rule.kind == "Price" else bars.volume
            prev, now = float(series[shut - 2]), float(series[shut - 1])
            up = rule.side == "above"
            if (prev <= rule.level < now) if up else (prev >= rule.level > now):
                text = f"{rule.kind} of {rule.symbol} {rule.side} {rule.level:,} ({now:,.4g})"
                out.append(PairAlert(f"rule {i + 1}", bar_ms, now, rule.level, text))
        return out

    def correlations(
        self, market: MarketData, symbols: Sequence[str], timeframe: str, window: int,
        clustered: bool,
    ) -> pd.DataFrame:  # fmt: skip
        """Pearson correlations of log returns over the last ``window`` bars of ``symbols``;
        ``clustered`` orders them so groups that move together show as blocks."""
        series = {}
        for s in symbols:
            b = market.bars(s, timeframe, last=window + 1)
            series[s] = pd.Series(an.log_returns(b.close), index=b.open_time)
        frame = pd.DataFrame(series)
        matrix = an.correlation_matrix({s: frame[s].to_numpy() for s in frame}, window)
        if clustered:
            ordered = an.cluster_order(matrix)
            matrix = matrix.loc[ordered, ordered]
        return matrix


class AlertGate:
    """Per-session (or per-watcher) memory of fired alerts: one firing per rule, pair and
    timeframe per closed bar, and none within the cooldown of the last."""

    def __init__(self) -> None:
        self._last: dict[tuple, tuple[int, float]] = {}

    def admit(self, alert: PairAlert, request: PairRequest, now_s: float, cooldown_s: float):
        key = (alert.rule, request.y, request.x, request.timeframe)
        seen_bar, fired_at = self._last.get(key, (None, -math.inf))
        if seen_bar == alert.bar_open_time_ms or now_s - fired_at < cooldown_s:
            return False
        self._last[key] = (alert.bar_open_time_ms, now_s)
        return True


def window_bars(
    market, symbols: Sequence[str], timeframe: str, n: int, end_ms: int | None
) -> dict[str, Bars]:
    """The last ``n`` bars of each symbol opened at or before ``end_ms`` (None: the newest)."""
    out = {}
    for s in symbols:
        if end_ms is None:
            out[s] = market.bars(s, timeframe, last=n)
            continue
        newest = market.bars(s, timeframe, last=1)
        top = int(newest.open_time[-1]) if len(newest) else end_ms
        after = max(0, top - end_ms) // TIMEFRAMES_MS[timeframe]
        bars = market.bars(s, timeframe, last=n + after + 1)
        upto = int((bars.open_time <= end_ms).sum())
        out[s] = bars.slice(max(0, upto - n), upto)
    return out


def csv_header(request: PairRequest) -> str:
    """The analytics and trades CSVs' first line: the pair, the fit and the windows."""
    p = request.params
    spread = "hindsight (one beta from the latest window)" if p.hindsight else "walk-forward"
    return (
        f"# pair {request.y}/{request.x}, {request.timeframe} bars; regression {p.method} on "
        f"{'log prices' if p.log_prices else 'prices'}, lookback {p.lookback_bars} bars, "
        f"spread {spread}; z window {p.z_window_bars} bars (sample std); return vol window "
        f"{p.z_window_bars} bars; times ISO-8601 UTC (bar open)\n"
    )


def _common_bars(yb: Bars, xb: Bars) -> int:
    return len(np.intersect1d(yb.open_time, xb.open_time)) if len(yb) and len(xb) else 0


def _aligned_volume(bars: Bars, live: LiveStats) -> np.ndarray:
    index = np.searchsorted(bars.open_time, live.open_time)
    return bars.volume[np.clip(index, 0, len(bars) - 1)]


def _last_finite(a) -> float:
    a = np.asarray(a)
    finite = a[np.isfinite(a)]
    return float(finite[-1]) if len(finite) else math.nan
