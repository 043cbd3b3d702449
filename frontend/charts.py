"""Plotly figures. ``uirevision`` keeps zoom, pan and legend state across live refreshes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backend.records import Bars

CONFIG = {"displaylogo": False, "scrollZoom": True}
_HEIGHT = 320


def _times(open_time_ms) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(open_time_ms), unit="ms", utc=True)


def _layout(fig: go.Figure, title: str, key: str, height: int = _HEIGHT) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        uirevision=key,
        margin=dict(l=10, r=10, t=40, b=10),
        hovermode="x unified",
        showlegend=True,
        legend=dict(orientation="h", y=1.12),
    )
    return fig


def candles(bars: Bars) -> go.Figure:
    t = _times(bars.open_time)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.03
    )
    fig.add_trace(
        go.Candlestick(
            x=t, open=bars.open, high=bars.high, low=bars.low, close=bars.close, name=bars.symbol
        ),
        row=1,
        col=1,
    )
    fig.add_trace(go.Bar(x=t, y=bars.volume, name="volume", marker_color="#8899aa"), row=2, col=1)
    fig.update_xaxes(rangeslider_visible=False)
    return _layout(fig, f"{bars.symbol} · {bars.timeframe}", f"candles-{bars.symbol}", 420)


def spread_chart(live, shown: slice, p) -> go.Figure:
    t = _times(live.open_time[shown])
    s = live.spread[shown]
    from backend.analytics import rolling_mean_std

    mean, std = rolling_mean_std(live.spread, p.z_window_bars)
    mean, std = mean[shown], std[shown]
    k = p.z_threshold
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=s, name="spread", line=dict(color="#1f77b4")))
    fig.add_trace(go.Scatter(x=t, y=mean, name="rolling mean", line=dict(color="#555", dash="dot")))
    fig.add_trace(
        go.Scatter(x=t, y=mean + k * std, name=f"+{k}σ", line=dict(color="#d62728", width=1))
    )
    fig.add_trace(
        go.Scatter(x=t, y=mean - k * std, name=f"−{k}σ", line=dict(color="#2ca02c", width=1))
    )
    return _layout(fig, "Spread  y − (α + β·x)", "spread")


def zscore_chart(live, shown: slice, p) -> go.Figure:
    t = _times(live.open_time[shown])
    fig = go.Figure(
        go.Scatter(x=t, y=live.zscore[shown], name="z-score", line=dict(color="#9467bd"))
    )
    for level, color in ((p.z_threshold, "#d62728"), (-p.z_threshold, "#2ca02c"), (0, "#555")):
        fig.add_hline(y=level, line=dict(color=color, dash="dash", width=1))
    return _layout(fig, f"Z-score (window {p.z_window_bars} bars)", "zscore")


def corr_chart(live, shown: slice, p) -> go.Figure:
    t = _times(live.open_time[shown])
    what = "log returns" if p.corr_on_returns else "prices"
    fig = go.Figure(
        go.Scatter(x=t, y=live.corr[shown], name="correlation", line=dict(color="#ff7f0e"))
    )
    fig.update_yaxes(range=[-1.05, 1.05])
    return _layout(fig, f"Rolling correlation of {what} ({p.corr_window_bars} bars)", "corr")


def kalman_chart(live, slow, shown: slice) -> go.Figure:
    t = _times(live.open_time[shown])
    fig = go.Figure(
        go.Scatter(x=t, y=slow.kalman_beta[shown], name="β (Kalman)", line=dict(color="#17becf"))
    )
    return _layout(fig, "Kalman hedge ratio β_t", "kalman")


def equity_chart(live, slow, shown: slice) -> go.Figure:
    t = _times(live.open_time[shown])
    bt = slow.backtest
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.03
    )
    fig.add_trace(go.Scatter(x=t, y=bt.equity[shown] * 100, name="equity (%)"), row=1, col=1)
    fig.add_trace(
        go.Scatter(x=t, y=bt.position[shown], name="position", line=dict(shape="hv")), row=2, col=1
    )
    return _layout(fig, "Backtest: cumulative return net of costs", "equity", 380)


def heatmap(matrix: pd.DataFrame) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=list(matrix.columns),
            y=list(matrix.index),
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            text=np.round(matrix.to_numpy(), 2),
            texttemplate="%{text}",
        )
    )
    return _layout(fig, "Correlation of log returns", "heatmap", 360)
