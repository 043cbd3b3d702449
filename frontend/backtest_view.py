"""The backtest as the page shows it: the card, the breakdown a desk reads, the round trips and
their CSV. Everything here only lays out what ``analytics.execution`` computed."""

from __future__ import annotations

import math
import time

import pandas as pd
import streamlit as st

from frontend.cards import Card, duration_text

FILL_TEXT = {"next_open": "the next bar's open", "next_close": "the next bar's close"}


def period_text(summary) -> str:
    """'2026-12-07 09:00 → 2026-12-07 18:59 UTC (600 bars)': the period a backtest tested."""
    if summary.first_ms is None:
        return "no bars"
    fmt = "%Y-%m-%d %H:%M"
    return (
        f"{time.strftime(fmt, time.gmtime(summary.first_ms / 1000))} → "
        f"{time.strftime(fmt, time.gmtime(summary.last_ms / 1000))} UTC ({summary.bars:,} bars)"
    )


def costs_text(p, summary, source: str) -> str:
    """The execution the figure assumed, in one line; ``source`` of the quotes and funding
    rates: "recorded", "simulated" (by the local exchange) or "none"."""
    book = "simulated" if source == "simulated" else "recorded"
    spread = (
        f"spread crossed at half the {book} book's, {p.assumed_spread_bps:g} bps assumed "
        f"where none was recorded ({summary.assumed_spread_trips} of the trips)"
        if summary.assumed_spread_trips
        else f"spread crossed at half the {book} book's"
    )
    return (
        f"fills at {FILL_TEXT[p.fill]}, fees {p.fee_bps:g} bps a leg a fill, {spread}, "
        f"{_funding_text(summary, source)}; {p.notional_usdt:,.0f} USDT gross a trade"
    )


def _funding_text(summary, source: str) -> str:
    if source == "none":
        return "no funding rates (none in this data)"
    label = "simulated" if source == "simulated" else "recorded"
    text = f"funding at the {label} rates ({summary.funding_events} payments)"
    known = summary.funding_known_from_ms
    if known is None:
        return f"{text}; no funding rates known for these legs: none charged"
    if summary.first_ms is not None and known > summary.first_ms:
        day = time.strftime("%Y-%m-%d %H:%M", time.gmtime(known / 1000))
        text += f"; rates known from {day} UTC only: funding times before it charged nothing"
    return text


def sharpe_text(summary) -> str:
    if math.isfinite(summary.sharpe):
        return f"Sharpe {summary.sharpe:.2f} (daily returns, {summary.days:.0f} days)"
    return f"Sharpe not shown: needs ≥ 30 days of daily returns, has {summary.days:.1f}"


def backtest_card(slow, p, funding_source: str) -> Card:
    s = slow.backtest.summary
    open_note = " · a trip still open, marked at the last close" if s.open_trip else ""
    return Card(
        "Backtest net",
        f"{s.net_usdt:+,.2f} USDT",
        f"walk-forward on closed bars, {period_text(s)}; {costs_text(p, s, funding_source)}. "
        f"Gross {s.gross_usdt:+,.2f}, fees −{s.fees_usdt:,.2f}, spread −{s.spread_usdt:,.2f}, "
        f"funding {s.funding_usdt:+,.2f} USDT · {s.round_trips} round trips{open_note}",
        delta=f"{s.net_return:+.2%} of {p.notional_usdt:,.0f} USDT",
        delta_tone="up" if s.net_usdt > 0 else "down" if s.net_usdt < 0 else "off",
    )


def backtest_note(slow, timeframe_s: float) -> str:
    s = slow.backtest.summary
    if not s.bars:
        return "Backtest: nothing tested yet (no closed bar with a z-score)."
    return (
        f"Backtest {period_text(s)}: {s.round_trips} round trips, hit rate "
        f"{_num(s.hit_rate, 2)}, average holding {duration_text(s.avg_holding_bars * timeframe_s)}, "
        f"net {s.net_usdt:+,.2f} USDT after fees, spread and funding; {sharpe_text(s)}."
    )


def breakdown_frame(summary) -> pd.DataFrame:
    """Gross to net in USDT and in bps of the gross notional per trade."""
    rows = [
        ("Gross (mid to mid)", summary.gross_usdt),
        ("Fees", -summary.fees_usdt),
        ("Spread crossing", -summary.spread_usdt),
        ("Funding", summary.funding_usdt),
        ("Net", summary.net_usdt),
    ]
    return pd.DataFrame(
        {
            "": [r[0] for r in rows],
            "USDT": [r[1] for r in rows],
            "bps of notional": [r[1] / summary.notional_usdt * 1e4 for r in rows],
        }
    )


def halves_frame(summary) -> pd.DataFrame:
    rows = []
    for name, h in zip(("First half", "Second half"), summary.halves, strict=True):
        rows.append(
            {
                "": name,
                "from": _utc(h["from_ms"]),
                "to": _utc(h["to_ms"]),
                "net USDT": h["net_usdt"],
                "round trips": h["round_trips"],
                "hit rate": h["hit_rate"],
            }
        )
    return pd.DataFrame(rows)


def breakdown(slow, p, funding_source: str, timeframe_s: float) -> None:
    """The Backtest view's text and tables (the equity chart and trips are drawn beside)."""
    s = slow.backtest.summary
    st.markdown(f"**Tested** {period_text(s)} · {costs_text(p, s, funding_source)}.")
    left, right = st.columns(2)
    left.dataframe(
        breakdown_frame(s),
        hide_index=True,
        column_config={
            "USDT": st.column_config.NumberColumn(format="%+.2f"),
            "bps of notional": st.column_config.NumberColumn(format="%+.1f"),
        },
    )
    cost_share = "—" if not math.isfinite(s.cost_share) else f"{s.cost_share:.0%}"
    right.markdown(
        f"- costs take **{cost_share}** of the gross\n"
        f"- break-even cost per round trip **{_num(s.break_even_bps, 1)} bps**, paid "
        f"{_num(s.cost_per_trip_bps, 1)} bps\n"
        f"- time in market {s.time_in_market:.0%}, average holding "
        f"{duration_text(s.avg_holding_bars * timeframe_s)}\n"
        f"- max drawdown {s.max_drawdown_usdt:,.2f} USDT, hit rate {_num(s.hit_rate, 2)}\n"
        f"- entries refused (a leg below its minimum size): {s.refused}\n"
        f"- {sharpe_text(s)}"
    )
    st.dataframe(
        halves_frame(s),
        hide_index=True,
        column_config={"net USDT": st.column_config.NumberColumn(format="%+.2f")},
    )


def trades_table(slow) -> None:
    trades = slow.backtest.trades
    if not len(trades):
        st.caption("No trade yet: the closed-bar z-score has not crossed the entry threshold.")
        return
    shown = trades.drop(columns=["entry_bar", "exit_bar"]).iloc[::-1].head(50)
    if shown["hedge"].isna().all():  # a basket: weights per leg, no one hedge ratio
        shown = shown.drop(columns=["hedge", "hedge_error"])
    money = {c: st.column_config.NumberColumn(format="%+.2f") for c in shown if c.endswith("_usdt")}
    st.dataframe(
        shown,
        hide_index=True,
        column_config=money
        | {
            "net_bps": st.column_config.NumberColumn(format="%+.1f"),
            "hedge": st.column_config.NumberColumn(format="%.4f"),
            "hedge_error": st.column_config.NumberColumn(format="percent"),
        },
    )


def trades_csv(slow, header: str, p, funding_source: str) -> bytes:
    """Every round trip, times ISO-8601 UTC, after ``#`` lines naming the run."""
    s = slow.backtest.summary
    header += f"# backtest {period_text(s)}; {costs_text(p, s, funding_source)}\n"
    trades = slow.backtest.trades.drop(columns=["entry_bar", "exit_bar"]).copy()
    for col in ("entry_decided", "entry_time", "exit_decided", "exit_time"):
        trades[col] = trades[col].map(lambda t: "" if pd.isna(t) else t.isoformat())
    return (header + trades.to_csv(index=False)).encode()


def _utc(ms) -> str:
    return "—" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def _num(value: float, digits: int) -> str:
    return "—" if not math.isfinite(value) else f"{value:,.{digits}f}"
