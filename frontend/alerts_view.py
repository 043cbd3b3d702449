"""The Alerts page: the rules loaded and each one's state, a test alert per channel, a form that
adds a rule to the rules file, and every alert the store holds (downloadable).

The rules are evaluated by the engine (``--rules FILE``) or by a headless watcher
(``python -m backend watch``); this page lays out what they report.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time

import pandas as pd
import streamlit as st

from backend.engine import (
    ALERT_KIND_LABELS,
    PAIR_KINDS,
    RULE_KINDS,
    TIMEFRAMES_MS,
    Engine,
    RulesError,
    rule_toml,
)

REFRESH_S = 2.0


def alerts_page(engine: Engine) -> None:
    st.title("Alerts")
    service = engine.alerts
    if service is None:
        st.info(
            "No rules file here: start the dashboard with `-- --rules alerts.toml` (or "
            "`PAIRDASH_RULES`) to evaluate rules on this page, or run them with the page "
            "closed: `python -m backend watch --rules alerts.toml` (README: Alerts). Alerts "
            "stored by watchers on this database are listed below."
        )
    else:
        _rules_panel(engine)
        _add_rule_form(engine)
    _history(engine)


@st.fragment(run_every=REFRESH_S)
def _rules_panel(engine: Engine) -> None:
    service = engine.alerts
    where = "evaluated here" if service.watching else "evaluated by another watcher"
    st.caption(
        f"Rules of `{service.path}` (rule set **{service.ruleset}**, {where}); edge-triggered "
        "on closed bars: a rule fires when a bar's value crosses its level and re-arms on the "
        "way back. Values: close and bar volume in the symbol's units, z in standard "
        "deviations, Engle–Granger p, β change in %, funding rate in % per interval, feed "
        "silence in seconds."
    )
    if service.note:
        st.info(service.note)
    if service.rules_error:
        st.error(f"The rules file has an error; the rules before it stay in force: "
                 f"{service.rules_error}")  # fmt: skip
    for error in dict(service.courier.failing).values():
        st.warning(f"Not delivered yet (retried until it is): {error}")
    rows = []
    for s in service.status():
        r = s.rule
        rows.append({
            "rule": r.name,
            "kind": ALERT_KIND_LABELS.get(r.kind, r.kind),
            "symbols": "/".join(x for x in r.symbols if x) or "all",
            "timeframe": r.timeframe,
            "above": r.above,
            "below": r.below,
            "cooldown (s)": r.cooldown_s,
            "channels": ", ".join(r.channels),
            "state": s.error or s.state.label,
            "last value": None if math.isnan(s.last_value) else s.last_value,
            "last fired (bar, UTC)": _utc(s.state.fired_bar_ms),
        })  # fmt: skip
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.write("No rules yet: add one below.")
    channels = list(service.rules.channels)
    if channels:
        cols = st.columns(min(4, len(channels)))
        for i, name in enumerate(channels):
            if cols[i % len(cols)].button(f"Send a test alert: {name}", key=f"test_{name}"):
                st.session_state[f"test_result_{name}"] = service.test(name)
            result = st.session_state.get(f"test_result_{name}")
            if result:
                cols[i % len(cols)].caption(result)


def _add_rule_form(engine: Engine) -> None:
    service = engine.alerts
    symbols = list(engine.symbols)
    with st.expander("Add a rule", expanded=not service.rules.rules):
        kind = st.selectbox(
            "Kind", RULE_KINDS, format_func=lambda k: f"{k} ({ALERT_KIND_LABELS[k]})",
            key="rule_kind",
        )  # fmt: skip
        with st.form("add_rule", clear_on_submit=False):
            name = st.text_input("Name", key="rule_name")
            fields: dict = {"name": name.strip(), "kind": kind}
            if kind in PAIR_KINDS:
                c1, c2 = st.columns(2)
                fields["y"] = c1.selectbox("y (long leg)", symbols, key="rule_y")
                fields["x"] = c2.selectbox("x (hedge leg)", symbols,
                                           index=min(1, len(symbols) - 1), key="rule_x")  # fmt: skip
            else:
                fields["symbol"] = st.selectbox("Symbol", symbols, key="rule_symbol")
            fields["timeframe"] = st.selectbox("Timeframe (closed bars)", list(TIMEFRAMES_MS),
                                               index=1, key="rule_tf")  # fmt: skip
            c1, c2, c3 = st.columns(3)
            above = c1.text_input("Above (blank: none)", key="rule_above")
            below = c2.text_input("Below (blank: none)", key="rule_below")
            cooldown = c3.number_input("Cooldown (s)", 0.0, 86_400.0, 0.0, key="rule_cool")
            if kind in PAIR_KINDS:
                c1, c2, c3 = st.columns(3)
                fields["method"] = c1.selectbox("Regression", ["ols", "huber", "kalman"],
                                                key="rule_method")  # fmt: skip
                fields["lookback"] = int(c2.number_input("Lookback (bars)", 20, 5000, 300,
                                                         key="rule_lookback"))  # fmt: skip
                fields["window"] = int(c3.number_input("z window (bars)", 2, 5000, 60,
                                                       key="rule_window"))  # fmt: skip
            chosen = st.multiselect("Channels", list(service.rules.channels), key="rule_chans")
            message = st.text_input(
                "Message (optional): {rule} {kind} {symbols} {timeframe} {value} {threshold} "
                "{side} {time}", key="rule_message",
            )  # fmt: skip
            submitted = st.form_submit_button("Add the rule")
        if submitted:
            try:
                fields.update(above=_level(above, "Above"), below=_level(below, "Below"),
                              cooldown_s=float(cooldown), channels=chosen,
                              message=message.strip())  # fmt: skip
                service.add_rule(rule_toml(fields))
            except (RulesError, ValueError) as exc:
                st.error(f"Rule not added: {exc}")
            else:
                st.success(f"Rule {name.strip()!r} added to {service.path}")


def _level(text: str, label: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{label}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{label}: {text!r} is not a finite number")
    return value


@st.fragment(run_every=REFRESH_S)
def _history(engine: Engine) -> None:
    st.subheader("History")
    alerts = engine.alert_history(1000)  # one read a refresh: the history and the notifications
    if engine.alerts is not None:
        _notify(alerts)
    if not alerts:
        st.write("No alert has fired yet.")
        return
    frame = pd.DataFrame(
        {
            "fired (UTC)": [_utc(a.created_ms) for a in alerts],
            "bar open (UTC)": [_utc(a.bar_open_time_ms) for a in alerts],
            "rule set": [a.ruleset for a in alerts],
            "rule": [a.rule for a in alerts],
            "kind": [a.kind for a in alerts],
            "symbols": ["/".join(a.symbols) for a in alerts],
            "timeframe": [a.timeframe for a in alerts],
            "value": [a.value for a in alerts],
            "threshold": [a.threshold for a in alerts],
            "message": [a.message for a in alerts],
            "deliveries": [_deliveries(a.deliveries) for a in alerts],
        }
    )
    many = f"The newest {len(alerts)} alerts" if len(alerts) > 1 else "The one alert"
    st.caption(f"{many} in the store, newest first.")
    st.dataframe(frame, hide_index=True, width="stretch")
    st.download_button(
        "Download the alerts (CSV)", frame.to_csv(index=False).encode(), "alerts.csv",
        "text/csv", key="alerts_csv",
    )  # fmt: skip


def _deliveries(deliveries: dict) -> str:
    parts = []
    for channel, d in sorted(deliveries.items()):
        status = d.get("status", "?")
        if status != "sent" and d.get("attempts"):
            status += f" ({d['attempts']} tries: {d.get('error') or ''})"
        parts.append(f"{channel}: {status}")
    return "; ".join(parts) or "recorded (no channel)"


def _utc(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


# The page's own script: ask for the permission on a click (browsers want a gesture), and show
# each new alert once as a desktop notification while the page is open.
_NOTIFY_JS = """
<button onclick="Notification.requestPermission()" style="border: 1px solid #d5d5d9;
  border-radius: 0.5rem; background: #fff; padding: 0.3rem 0.8rem; font: inherit;
  cursor: pointer">
  Allow desktop notifications</button>
<script>
(function (alerts) {
  window.__pairdashSeen = window.__pairdashSeen || new Set();
  for (const a of alerts) {
    if (window.__pairdashSeen.has(a.id)) continue;
    window.__pairdashSeen.add(a.id);
    if ("Notification" in window && Notification.permission === "granted") {
      new Notification(a.title, {body: a.body, tag: a.id});
    }
  }
})(ALERTS);
</script>
"""


def _notify(alerts: list) -> None:
    """Alerts fired since this page opened: a toast each (three at most a refresh), and a
    desktop notification where the browser allows them (the button asks)."""
    since = st.session_state.setdefault("notified_from_ms", int(time.time() * 1000))
    new = [a for a in alerts if a.created_ms > since][::-1]
    if new:
        st.session_state["notified_from_ms"] = max(a.created_ms for a in new)
        st.session_state["notified"] = [
            {"id": a.id, "title": f"pairdash: {a.rule}", "body": a.message} for a in new
        ][-20:]
        for a in new[-3:]:
            st.toast(a.message, icon="🔔")
        if len(new) > 3:
            st.toast(f"and {len(new) - 3} more alerts: see the history", icon="🔔")
    shown = json.dumps(st.session_state.get("notified", [])).replace("</", "<\\/")
    st.html(_NOTIFY_JS.replace("ALERTS", shown), unsafe_allow_javascript=True)
