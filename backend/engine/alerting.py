"""Alert rules evaluated on the engine: the same figures the page shows (the pair service's z,
β and Engle–Granger p; the store's bars; the feed's health), on closed bars, edge-triggered
(``alerts.evaluate``), recorded in the store's ``alerts`` table with each rule's state in one
transaction, and handed to the courier (``alerts.delivery``).

One ``AlertService`` per engine and rules file. Only one process evaluates a rule set at a time
(``claim_rules``: an advisory lock in PostgreSQL, a lock file beside SQLite); another one
opened on the same rules (a dashboard beside a headless watcher) shows the states and
history the watcher stores, and evaluates nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.alerts.delivery import Courier, DeliveryError, send
from backend.alerts.evaluate import KIND_LABELS, Firing, RuleState, message, step
from backend.alerts.rules import Rule, RulesError, RuleSet, load_rules, parse_rules
from backend.engine.pair_service import PairRequest
from backend.engine.pairs import PairParams
from backend.storage import StorageError
from backend.store.records import TIMEFRAMES_MS, AlertRecord

log = logging.getLogger(__name__)

EVALUATE_EVERY_S = 0.25  # a bar's alert leaves well within a second of its close
CATCH_UP_BARS = 5_000  # at most this many bars missed while stopped are walked again
DRIFT_BARS = 60  # a beta_drift rule's default span (its ``bars``)
SAMPLE_BARS = PairRequest.shown_bars  # coint / halflife: the page's default bars shown


@dataclass(frozen=True)
class RuleStatus:
    """One rule as the page lists it."""

    rule: Rule
    state: RuleState
    last_value: float  # the newest closed bar's value (NaN: none yet)
    error: str | None  # why the rule cannot be evaluated (bad parameters, unknown symbol)


class AlertService:
    """Evaluates one rules file on ``market`` (the engine) and records what fires in ``store``.

    ``start()`` claims the rule set and starts the evaluation and delivery threads; without the
    claim (another watcher holds it) the service only reads. ``stop()`` ends both threads.
    """

    def __init__(self, market, store, rules_path: str, env: Mapping[str, str] | None = None):
        self.market, self.store = market, store
        self.path = Path(rules_path)
        self._env = env
        self._lock = threading.Lock()  # the rules, states and values below
        self.rules = load_rules(self.path)  # a bad file at start: RulesError, one line
        self._mtime = self._file_mtime()
        self.ruleset = self.rules.name
        self.rules_error: str | None = None  # a bad edit of the file: the old rules go on
        self._states = {
            r: RuleState.from_json(s) for r, s in store.alert_states(self.ruleset).items()
        }
        self._values: dict[str, float] = {}
        self._errors: dict[str, str] = {}
        self._gap_since: dict[str, int] = {}  # symbol -> when its open gaps were first seen
        self.watching = False
        self.note = ""
        self.courier = Courier(store, self.ruleset, self.rules.channels, env)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.evaluations = 0

    # --- running -----------------------------------------------------------------------------

    def start(self, claim: str = "required") -> AlertService:
        """Start evaluating and delivering as the one watcher of the rule set. ``claim``:
        "required" (refused: ``StorageError``), "optional" (refused: read only, ``note`` says
        why) or "held" (the caller holds the claim already)."""
        if claim != "held":
            try:
                self.store.claim_rules(self.ruleset)
            except StorageError as exc:
                if claim == "required":
                    raise
                self.note = f"{exc} (shown here, evaluated there)"
                return self
        self.watching = True
        self.courier.start()
        self._thread = threading.Thread(target=self._run, name="alerts-evaluate", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.courier.stop()

    def _run(self) -> None:
        while not self._stop.wait(EVALUATE_EVERY_S):
            try:
                self.reload_if_changed()
                self.evaluate()
            except StorageError as exc:  # the store is down: the bars are evaluated again
                log.warning("alerts not recorded yet: %s", exc)
            except Exception as exc:  # a bug must not end the watching: said, and retried
                log.error("alert evaluation failed (%s: %s); retrying", type(exc).__name__, exc)

    # --- the rules file ----------------------------------------------------------------------

    def _file_mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return math.nan

    def reload_if_changed(self) -> None:
        mtime = self._file_mtime()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            rules = load_rules(self.path)
        except RulesError as exc:
            self.rules_error = str(exc)
            log.error("rules not reloaded: %s", exc)
            return
        with self._lock:
            self.rules_error = None
            self.rules = RuleSet(rules.channels, rules.rules, self.ruleset)
            self.courier.channels = dict(rules.channels)
        log.info("rules reloaded from %s: %d rules", self.path, len(rules.rules))

    def add_rule(self, toml_text: str) -> None:
        """Append one ``[[rule]]`` table to the file, if the file with it still reads cleanly
        (``RulesError`` naming the line and key otherwise; the file is left as it was)."""
        current = self.path.read_text(encoding="utf-8")
        joined = current.rstrip("\n") + "\n\n" + toml_text.strip() + "\n"
        parse_rules(joined, str(self.path))
        self.path.write_text(joined, encoding="utf-8")
        self.reload_if_changed()

    # --- evaluation --------------------------------------------------------------------------

    def evaluate(self, now_ms: int | None = None) -> list[AlertRecord]:
        """Every rule on the bars closed since it last looked; new alerts recorded (with the
        states, in one transaction) and handed to the courier. Returns them."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            rules = self.rules
        fired: list[AlertRecord] = []
        changed: dict[str, RuleState] = {}
        reports: dict = {}  # one pair report per request this pass (z and β rules share it)
        for rule in rules.rules:
            state = self._states.get(rule.name, RuleState())
            if not self.market.history_ready([s for s in rule.symbols if s]):
                self._errors[rule.name] = "waiting for the history loaded at start"
                continue
            try:
                times, values = self._series(rule, state, now_ms, reports)
                self._errors.pop(rule.name, None)
            except ValueError as exc:
                self._errors[rule.name] = str(exc)
                continue
            if state.last_bar_ms is None:  # first sight: the last two bars, not the history
                times, values = times[-2:], values[-2:]
            if len(values):
                self._values[rule.name] = float(values[-1])
            new_state, firings = step(rule, state, times, values)
            if new_state.last_bar_ms != state.last_bar_ms:
                log.debug("rule %r: bars to %s, value %.6g, %s", rule.name, new_state.last_bar_ms,
                          values[-1] if len(values) else math.nan, new_state.label)  # fmt: skip
            if new_state != state:
                changed[rule.name] = new_state
            fired += [self._record(rule, f, now_ms) for f in firings]
        if changed or fired:
            # states move on only once stored with their alerts: a store that is down leaves
            # them where they were, and the next pass walks (and records) the same bars again
            states = {name: st.to_json() for name, st in changed.items()}
            self.store.record_alerts(self.ruleset, fired, states)
            self._states.update(changed)
        if fired:
            self.courier.wake()
            for a in fired:
                log.info("alert %r fired: %s", a.rule, a.message)
        self.evaluations += 1
        return fired

    def _record(self, rule: Rule, f: Firing, now_ms: int) -> AlertRecord:
        when = dt.datetime.fromtimestamp(f.bar_open_time_ms / 1000, dt.UTC)
        text = message(rule, f, f"{when:%Y-%m-%d %H:%M:%S} UTC")
        return AlertRecord(
            f"{self.ruleset}|{rule.name}|{f.bar_open_time_ms}", self.ruleset, rule.name,
            rule.kind, rule.symbols, rule.timeframe, f.bar_open_time_ms, f.value,
            f.threshold, text, now_ms, {c: {"status": "pending", "attempts": 0}
                                        for c in rule.channels},
        )  # fmt: skip

    def _series(self, rule: Rule, state: RuleState, now_ms: int, reports: dict):
        """(open times, values) of the closed bars the rule looks at now."""
        tf_ms = TIMEFRAMES_MS[rule.timeframe]
        missing = [s for s in rule.symbols if s and s not in self.market.symbols]
        if missing:
            raise ValueError(f"{', '.join(missing)} is not streamed here")
        if rule.kind == "feed":
            return np.array([now_ms // 1000 * 1000]), np.array([self._feed_age_s(rule, now_ms)])
        if rule.kind == "funding":
            return self._funding(rule)
        wanted = 2
        if state.last_bar_ms is not None:
            newest = self.market.bars(rule.symbols[0], rule.timeframe, last=1)
            top = int(newest.open_time[-1]) if len(newest) else state.last_bar_ms
            wanted = min(CATCH_UP_BARS, (top - state.last_bar_ms) // tf_ms + 2)
        if rule.kind in ("price", "volume"):
            bars = self.market.bars(rule.symbol, rule.timeframe, last=wanted + 1)
            closed = len(bars) - (1 if self.market.newest_is_open else 0)
            column = bars.close if rule.kind == "price" else bars.volume
            return bars.open_time[:closed], column[:closed]
        return self._pair(rule, wanted, reports)

    def _pair(self, rule: Rule, wanted: int, reports: dict):
        params = rule_params(rule)
        drift = rule.extra.get("bars", DRIFT_BARS) if rule.kind == "beta_drift" else 0
        slow = rule.kind in ("coint", "halflife")
        shown = wanted + max(drift, DRIFT_BARS) + 1
        if slow:  # the sample of the Engle–Granger test and half-life: as the page shows them
            shown = rule.extra.get("bars", SAMPLE_BARS)
        request = PairRequest(rule.y, rule.x, rule.timeframe, params, shown_bars=shown, slow=slow)
        report = reports.get(request)
        if report is None:
            report = reports[request] = self.market.pairs.report(self.market, request)
        live = report.live
        if live is None or not live.closed:
            return np.array([], np.int64), np.array([])
        n = live.closed
        times = live.open_time[:n]
        if rule.kind == "zscore":
            return times, live.zscore[:n]
        if rule.kind in ("coint", "halflife", "carry"):  # figures of the last closed bar only
            return times[-1:], np.array([_latest(rule, report)])
        beta = np.asarray(live.beta[:n], dtype=np.float64)
        change = np.full(n, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            change[drift:] = 100.0 * (beta[drift:] / beta[: n - drift] - 1.0)
        return times, change

    def _funding(self, rule: Rule):
        mark = self.market.funding().marks.get(rule.symbol)
        bars = self.market.bars(rule.symbol, rule.timeframe, last=2)
        closed = len(bars) - (1 if self.market.newest_is_open else 0)
        if mark is None or closed < 1:
            return np.array([], np.int64), np.array([])
        return bars.open_time[closed - 1 : closed], np.array([mark.funding_rate * 100.0])

    def _feed_age_s(self, rule: Rule, now_ms: int) -> float:
        """Seconds since the feed's last message; on ``--source db`` since the symbol's (or
        the stalest symbol's) collector last saved; with ``gap = true``, how long the oldest
        gap still open (of the symbol, or any) has been seen open."""
        health = self.market.health()
        if rule.extra.get("gap"):
            return self._gap_age_s(rule, health, now_ms)
        if health.collectors or not self.market.spec.feed:
            saved = [c.saved_at_ms for c in health.collectors
                     if not rule.symbol or c.symbol == rule.symbol]  # fmt: skip
            return (now_ms - min(saved)) / 1000.0 if saved else math.inf
        age = health.feed.last_message_age_s
        return math.inf if age is None else float(age)

    def _gap_age_s(self, rule: Rule, health, now_ms: int) -> float:
        if health.collectors:  # --source db: the gaps the collectors reported at their saves
            open_gaps = {c.symbol: c.open_gaps or 0 for c in health.collectors}
        else:
            open_gaps = {s: snap.open_gaps for s, snap in health.store.symbols.items()}
        ages = []
        for symbol, count in open_gaps.items():
            if rule.symbol and symbol != rule.symbol:
                continue
            if count:
                ages.append(now_ms - self._gap_since.setdefault(symbol, now_ms))
            else:
                self._gap_since.pop(symbol, None)
        return max(ages, default=0) / 1000.0

    # --- what the page shows -----------------------------------------------------------------

    def status(self) -> list[RuleStatus]:
        """Each rule, its state and newest value; a read-only service reads the states the
        watcher stored."""
        if not self.watching:  # no evaluation thread here: follow the file's edits
            self.reload_if_changed()
        with self._lock:
            rules = self.rules.rules
        stored = {}
        if not self.watching:
            stored = {r: RuleState.from_json(s)
                      for r, s in self.store.alert_states(self.ruleset).items()}  # fmt: skip
        return [
            RuleStatus(
                r,
                stored.get(r.name) or self._states.get(r.name, RuleState()),
                self._values.get(r.name, math.nan),
                self._errors.get(r.name),
            )
            for r in rules
        ]

    def test(self, channel_name: str) -> str:
        """Send a test alert on one channel now (not recorded); one line saying how it went."""
        channel = self.rules.channels.get(channel_name)
        if channel is None:
            return f"no channel named {channel_name!r}"
        now = int(time.time() * 1000)
        alert = AlertRecord(
            f"{self.ruleset}|test|{now}", self.ruleset, "test alert", "test", (), "1s", now,
            0.0, 0.0, f"pairdash: a test alert on channel {channel_name!r}", now, {},
        )  # fmt: skip
        try:
            send(channel, alert, self._env)
        except DeliveryError as exc:
            return f"not delivered: {exc}"
        return f"delivered on {channel_name!r}"


def _latest(rule: Rule, report) -> float:
    """The Engle–Granger p, the half-life (bars; NaN where the spread's ADF does not reject,
    inf where it does not revert) or the carry (bps a day of y's notional; ``side = "short"``
    for short y / long x) of the pair at its last closed bar."""
    if rule.kind == "carry":
        carry = report.carry
        if carry is None:
            return math.nan
        return carry.short_bps_day if rule.extra.get("side") == "short" else carry.long_bps_day
    if report.slow is None:
        return math.nan
    return report.slow.eg_pvalue if rule.kind == "coint" else report.slow.half_life_bars


def rule_params(rule: Rule) -> PairParams:
    """The pair figures a zscore / coint / beta_drift rule watches: its ``method``,
    ``lookback`` and ``window`` (bars), else the page's defaults; ``ValueError`` if bad."""
    defaults, extra = PairParams(), rule.extra  # types checked when the file was read
    params = PairParams(
        lookback_bars=extra.get("lookback", defaults.lookback_bars),
        z_window_bars=extra.get("window", defaults.z_window_bars),
        method=extra.get("method", defaults.method),
        log_prices=extra.get("log_prices", defaults.log_prices),
    )
    try:
        params.check()
    except ValueError as exc:
        raise ValueError(f"rule {rule.name!r}: {exc}") from None
    return params


__all__ = ["KIND_LABELS", "AlertService", "RuleStatus", "rule_params"]
