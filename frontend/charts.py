"""Plotly figures. ``uirevision`` keeps zoom, pan and legend state across live refreshes.

Each figure is built in one ``go.Figure(data, layout)`` call from plain dicts: plotly validates
every property it is handed, and piecemeal ``add_trace``/``update_layout``/``make_subplots`` calls
cost several times more than the data they show (measured in ``bench/bench_dashboard.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backend.engine import Bars
from backend.engine import analytics as an

CONFIG = {"displaylogo": False, "scrollZoom": True}
_HEIGHT = 320


def _times(open_time_ms) -> np.ndarray:
    # Naive datetime64 (UTC; the axes say so): plotly copies it as one array, where tz-aware
    # timestamps become an object array copied element by element on every refresh.
    return np.asarray(open_time_ms, dtype=np.int64).astype("datetime64[ms]")


def _figure(data: list[dict], title: str, key: str, height: int = _HEIGHT, **layout) -> go.Figure:
    base = dict(
        title=dict(text=title),
        height=height,
        uirevision=key,
        margin=dict(l=10, r=10, t=40, b=10),
        hovermode="x unified",
        showlegend=True,
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
        xaxis=dict(title=dict(text="time (UTC)")),
    )
    base.update(layout)
    return go.Figure(data=data, layout=base)


# A line of more points than this is drawn from each stretch's lowest and highest values (a
# screen shows ~2,000 columns); the figures themselves always use every bar.
MAX_LINE_POINTS = 5_000


def thin_index(y, max_points: int = MAX_LINE_POINTS) -> np.ndarray:
    """Indices of the points a line of ``y`` is drawn through: all of them up to
    ``max_points``, else the first, the last, and in each of ``max_points / 2`` equal stretches
    the lowest and the highest (NaN skipped), in order. Display only."""
    v = np.asarray(y, dtype=np.float64)
    n = len(v)
    if n <= max_points:
        return np.arange(n)
    buckets = max_points // 2
    width = -(-n // buckets)
    padded = np.full(buckets * width, np.nan)
    padded[:n] = v
    rows = padded.reshape(buckets, width)
    finite = np.isfinite(rows)
    lo = np.where(finite, rows, np.inf).argmin(axis=1)
    hi = np.where(finite, rows, -np.inf).argmax(axis=1)
    base = np.arange(buckets) * width
    idx = np.concatenate(([0, n - 1], base + lo, base + hi))
    return np.unique(idx[idx < n])


def _line(t, y, name: str, **line) -> dict:
    if len(y) > MAX_LINE_POINTS:
        keep = thin_index(y)
        t, y = np.asarray(t)[keep], np.asarray(y)[keep]
    return dict(type="scatter", mode="lines", x=t, y=y, name=name, line=line)


def _hline(level: float, color: str) -> dict:
    return dict(
        type="line",
        xref="paper",
        x0=0,
        x1=1,
        yref="y",
        y0=level,
        y1=level,
        line=dict(color=color, dash="dash", width=1),
    )


def _two_panes(top: float) -> dict:
    """Layout of a price pane over a second pane sharing the time axis."""
    return dict(
        xaxis=dict(
            anchor="y2", matches="x2", showticklabels=False, rangeslider=dict(visible=False)
        ),
        xaxis2=dict(anchor="y2", title=dict(text="time (UTC)"), rangeslider=dict(visible=False)),
        yaxis=dict(domain=[1 - top + 0.03, 1.0]),
        yaxis2=dict(domain=[0.0, 1 - top - 0.03]),
    )


def candles(bars: Bars) -> go.Figure:
    t = _times(bars.open_time)
    data = [
        dict(
            type="candlestick",
            x=t,
            open=bars.open,
            high=bars.high,
            low=bars.low,
            close=bars.close,
            name=bars.symbol,
            xaxis="x",
            yaxis="y",
        ),
        # Volume as one filled step line, not a bar per candle: the browser redraws a single
        # path instead of hundreds (a third of the chart's redraw cost, bench/bench_page.py).
        dict(
            type="scatter",
            mode="lines",
            x=t,
            y=bars.volume,
            name="volume",
            line=dict(shape="hv", width=1, color="#8899aa"),
            fill="tozeroy",
            xaxis="x2",
            yaxis="y2",
        ),
    ]
    title = f"{bars.symbol} · {bars.timeframe}"
    return _figure(data, title, f"candles-{bars.symbol}", 420, **_two_panes(0.75))


def _spread_kind(p) -> str:
    if p.hindsight and p.method == "kalman":
        return "Kalman smoother: each bar's β_t, α_t from every bar (hindsight)"
    if p.hindsight:
        return f"β from the latest {p.lookback_bars} bars for every bar (hindsight)"
    if p.method == "kalman":
        return "walk-forward: Kalman one-step-ahead β_t, α_t (AR(1) spread state)"
    if p.hedge_timeframe is not None:
        return (
            f"walk-forward on {p.hedge_timeframe} bars: each bar's β from the {p.lookback_bars} "
            f"{p.hedge_timeframe} bars closed before it"
        )
    return f"walk-forward: each bar's β from the {p.lookback_bars} bars before it"


def spread_chart(live, shown: slice, p) -> go.Figure:

    t = _times(live.open_time[shown])
    mean, std = an.rolling_mean_std(live.spread, p.z_window_bars)
    mean, std = mean[shown], std[shown]
    k = p.z_threshold
    data = [
        _line(t, live.spread[shown], "spread", color="#1f77b4"),
        _line(t, mean, f"{p.z_window_bars}-bar mean", color="#555", dash="dot"),
        _line(t, mean + k * std, f"+{k}σ", color="#d62728", width=1),
        _line(t, mean - k * std, f"−{k}σ", color="#2ca02c", width=1),
    ]
    return _figure(data, f"Spread y − (α + β·x) · {_spread_kind(p)}", "spread")


def zscore_chart(live, shown: slice, p, slow=None) -> go.Figure:
    """The z the alerts and the backtest use (at each bar's close; the newest bar's while it
    forms), with the backtest's decisions to enter and exit marked (filled a bar later)."""
    t_all = _times(live.open_time)
    t = t_all[shown]
    levels = ((p.z_threshold, "#d62728"), (-p.z_threshold, "#2ca02c"), (0, "#555"))
    data = [_line(t, live.zscore[shown], "z-score", color="#9467bd")]
    if slow is not None and len(slow.backtest.trades):
        first = len(live.open_time) - len(t)
        trips = slow.backtest.trades
        for col, name, symbol in (("entry_bar", "entry", "triangle-up"), ("exit_bar", "exit", "x")):
            bars = trips[col].to_numpy()
            if col == "exit_bar":
                bars = bars[trips["closed"].to_numpy()]
            bars = bars[bars >= first]
            data.append(
                dict(
                    type="scatter",
                    mode="markers",
                    x=t_all[bars],
                    y=live.zscore[bars],
                    name=f"backtest {name}",
                    marker=dict(
                        symbol=symbol, size=9, color="#111" if name == "exit" else "#ff7f0e"
                    ),
                )
            )
    return _figure(
        data,
        f"Z-score (window {p.z_window_bars} bars) · backtest entries and exits",
        "zscore",
        shapes=[_hline(level, color) for level, color in levels],
    )


def corr_chart(live, shown: slice, p) -> go.Figure:
    t = _times(live.open_time[shown])
    what = "log returns" if p.corr_on_returns else "prices"
    return _figure(
        [_line(t, live.corr[shown], "correlation", color="#ff7f0e")],
        f"Rolling correlation of {what} ({p.corr_window_bars} bars)",
        "corr",
        yaxis=dict(range=[-1.05, 1.05]),
    )


def hedge_chart(live, shown: slice, p) -> go.Figure:
    t = _times(live.open_time[shown])
    return _figure(
        [_line(t, np.asarray(live.beta)[shown], "β", color="#17becf")],
        f"Hedge ratio β per bar · {_spread_kind(p)}",
        "hedge",
    )


def equity_chart(live, slow, shown: slice) -> go.Figure:
    bt = slow.backtest  # on closed bars: one fewer than the live series
    t = _times(live.open_time[: len(bt.equity_usdt)][shown])
    data = [
        dict(_line(t, bt.equity_usdt[shown], "equity (USDT)"), xaxis="x", yaxis="y"),
        dict(_line(t, bt.position[shown], "position", shape="hv"), xaxis="x2", yaxis="y2"),
    ]
    title = "Backtest: cumulative PnL (USDT) after fees, spread and funding, marked at closes"
    return _figure(data, title, "equity", 380, **_two_panes(0.7))


HEATMAP_LABELLED = 12  # symbols up to which each cell prints its value


def heatmap(matrix: pd.DataFrame, title: str = "Correlation of log returns") -> go.Figure:
    """Cells coloured by correlation; values printed only while they fit (hover shows them)."""
    values = matrix.to_numpy()
    n = len(matrix)
    cell = dict(text=np.round(values, 2), texttemplate="%{text}") if n <= HEATMAP_LABELLED else {}
    data = [
        dict(
            type="heatmap",
            z=values,
            x=list(matrix.columns),
            y=list(matrix.index),
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
            **cell,
        )
    ]
    height = max(360, 16 * n + 140)  # ~16 px a row: 50 symbols stay legible
    layout = dict(xaxis=dict(tickangle=-60), yaxis=dict(autorange="reversed"))
    return _figure(data, title, "heatmap", height, **layout)


def basket_chart(stats, shown: slice, p) -> go.Figure:
    """The walk-forward basket spread over its z, the backtest's decisions marked."""
    t_all = _times(stats.open_time)
    t = t_all[shown]
    data = [
        dict(_line(t, stats.spread[shown], "basket spread"), xaxis="x", yaxis="y"),
        dict(_line(t, stats.zscore[shown], "z-score", color="#9467bd"), xaxis="x2", yaxis="y2"),
    ]
    trips = stats.backtest.trades
    first = len(stats.open_time) - len(t)
    for col, name, symbol in (("entry_bar", "entry", "triangle-up"), ("exit_bar", "exit", "x")):
        bars = trips[col].to_numpy() if len(trips) else np.empty(0, int)
        if col == "exit_bar" and len(trips):
            bars = bars[trips["closed"].to_numpy(bool)]
        bars = bars[bars >= first]
        data.append(
            dict(
                type="scatter", mode="markers", x=t_all[bars], y=stats.zscore[bars],
                name=f"backtest {name}", xaxis="x2", yaxis="y2",
                marker=dict(symbol=symbol, size=9, color="#111" if name == "exit" else "#ff7f0e"),
            )
        )  # fmt: skip
    title = (
        f"Basket spread Σ w·log p − μ (weights walk-forward) · z over {p.z_window_bars} bars, "
        "entries and exits decided"
    )
    return _figure(data, title, "basket", 460, **_two_panes(0.5))
