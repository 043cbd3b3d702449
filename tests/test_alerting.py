"""Rules on the engine's figures (backend.engine.alerting.AlertService) over a market whose
bars the test holds: each kind's value against an independent computation, the crossing bar,
states surviving a restart, and one-line errors for rules that cannot be evaluated."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import statsmodels.api as sm

from backend.engine.alerting import AlertService
from backend.engine.pair_service import PairRequest, PairService
from backend.engine.pairs import PairParams
from backend.lru import Lru
from backend.storage import open_store
from backend.store.records import FundingSnapshot, MarkPrice
from tests.conftest import BareMarket, pair_bars, wait_for


class Market(BareMarket):
    """The engine's read interface over ``pair_bars`` (YYY, XXX; 1s), ``public`` bars of them
    out so far, the newest still forming."""

    key = "test"
    newest_is_open = True
    spec = SimpleNamespace(feed=True)

    def __init__(self, public: int) -> None:
        self._bars = dict(zip(("YYY", "XXX"), pair_bars(1200), strict=True))
        self.public = public
        self.rates = {"YYY": 0.0001}
        self.silence_s = 1.0
        self.gaps: dict[str, int] = {}
        self._cache = Lru(64)
        self.pairs = PairService(self._cached, Lru(8))

    def _cached(self, key, compute):
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = compute()
        return value

    symbols = ["YYY", "XXX"]

    def bars(self, symbol, timeframe, last=None):
        lo = 0 if last is None else max(0, self.public - last)
        return self._bars[symbol].slice(lo, self.public)

    def closed(self, symbol):  # the test's own view: every public bar but the newest
        return self._bars[symbol].slice(0, self.public - 1)

    def history_ready(self, symbols):
        return True

    def funding(self):
        marks = {s: MarkPrice(s, 0, 1.0, 1.0, r, 0) for s, r in self.rates.items()}
        return FundingSnapshot(marks, {}, 0)

    def health(self):
        store = SimpleNamespace(symbols={s: SimpleNamespace(open_gaps=self.gaps.get(s, 0))
                                         for s in self.symbols})  # fmt: skip
        feed = SimpleNamespace(last_message_age_s=self.silence_s)
        return SimpleNamespace(collectors=(), store=store, feed=feed)


def service(tmp_path, market, rules: str, db=None) -> AlertService:
    path = tmp_path / "rules.toml"
    path.write_text(rules)
    return AlertService(market, db or open_store(tmp_path / "a.db"), str(path), env={})


def pair_rule(name: str, kind: str, **keys) -> str:
    """A ``[[rule]]`` on the YYY/XXX pair of 1s bars."""
    extra = "".join(f"{k} = {v!r}\n" for k, v in keys.items())
    return (f'[[rule]]\nname = "{name}"\nkind = "{kind}"\ny = "YYY"\nx = "XXX"\n'
            f'timeframe = "1s"\n{extra}')  # fmt: skip


def walk_forward(market, lookback=300):
    """Each closed bar's β, α (statsmodels OLS of log y on log x over the ``lookback`` bars
    before it) and spread."""
    ly, lx = np.log(market.closed("YYY").close), np.log(market.closed("XXX").close)
    n = len(ly)
    beta, spread = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(lookback, n):
        a, b = sm.OLS(ly[i - lookback : i], sm.add_constant(lx[i - lookback : i])).fit().params
        beta[i], spread[i] = b, ly[i] - a - b * lx[i]
    return beta, spread


def test_price_rule_fires_on_the_bar_the_closes_cross(tmp_path):
    m = Market(public=400)
    close = m.closed("YYY").close
    level = float(np.median(close[-50:]))
    svc = service(tmp_path, m, f'[[rule]]\nname = "p"\nkind = "price"\nsymbol = "YYY"\n'
                               f'timeframe = "1s"\nabove = {level!r}\n')  # fmt: skip
    svc.evaluate()  # arms (or not) on what is there
    fired = []
    for _ in range(300):
        m.public += 1
        fired += svc.evaluate()
    c = m.closed("YYY").close
    t = m.closed("YYY").open_time
    expected, armed = [], c[398] <= level
    for i in range(399, len(c)):
        if c[i] > level and armed:
            expected.append(int(t[i]))
        armed = c[i] <= level
    assert [a.bar_open_time_ms for a in fired] == expected and expected
    assert all(a.value > level and a.threshold == level for a in fired)
    assert [a.bar_open_time_ms for a in open_store(tmp_path / "a.db").alerts()] == expected[::-1]


def test_zscore_and_beta_drift_values_are_the_walk_forward_figures(tmp_path):
    m = Market(public=800)
    svc = service(tmp_path, m, pair_rule("z", "zscore", above=50.0, window=60, lookback=300)
                  + pair_rule("b", "beta_drift", above=50.0, bars=100))  # fmt: skip
    svc.evaluate()
    values = {s.rule.name: s.last_value for s in svc.status()}
    beta, spread = walk_forward(m)
    w = spread[-60:]
    assert values["z"] == pytest.approx((w[-1] - w.mean()) / w.std(ddof=1), abs=1e-9)
    assert values["b"] == pytest.approx(100 * (beta[-1] / beta[-101] - 1), abs=1e-9)


def test_first_sight_looks_at_the_newest_bars_not_at_the_history(tmp_path):
    m = Market(public=800)
    svc = service(tmp_path, m, pair_rule("z", "zscore", above=0.0, window=5))
    _, spread = walk_forward(m)
    z = np.array([(spread[i] - spread[i - 4 : i + 1].mean()) / spread[i - 4 : i + 1].std(ddof=1)
                  for i in range(len(spread) - 60, len(spread))])  # fmt: skip
    assert ((z[:-1] <= 0) & (z[1:] > 0)).sum() >= 5  # crossings in the bars already there
    crossed_last = bool(z[-2] <= 0 < z[-1])
    assert len(svc.evaluate()) == int(crossed_last)  # only a crossing on the newest bar fires
    assert svc.status()[0].state.armed == (not crossed_last and z[-1] <= 0)


def test_coint_and_halflife_are_the_pair_services_figures_of_the_last_closed_bar(tmp_path):
    m = Market(public=700)
    svc = service(tmp_path, m, pair_rule("c", "coint", above=0.05)
                  + pair_rule("h", "halflife", above=100.0))  # fmt: skip
    svc.evaluate()
    # the page's figures with its default 600 bars shown (the rules' default sample)
    report = m.pairs.report(m, PairRequest("YYY", "XXX", "1s", PairParams(), shown_bars=600))
    values = {s.rule.name: s.last_value for s in svc.status()}
    assert values["c"] == report.slow.eg_pvalue < 0.05  # a cointegrated pair
    assert values["h"] == pytest.approx(report.slow.half_life_bars) and values["h"] < 20
    states = {s.rule.name: s.state for s in svc.status()}
    assert states["c"].last_bar_ms == report.last_closed_ms()


def test_funding_and_feed_rules(tmp_path):
    m = Market(public=400)
    svc = service(tmp_path, m, (
        '[[rule]]\nname = "f"\nkind = "funding"\nsymbol = "YYY"\ntimeframe = "1s"\nbelow = 0.0\n'
        '[[rule]]\nname = "silent"\nkind = "feed"\nabove = 30.0\n'
    ))  # fmt: skip
    svc.evaluate(now_ms=1_000_000)
    m.public += 1
    m.rates["YYY"] = -0.0002  # the rate turns negative: -0.02 % per interval
    m.silence_s = 45.0
    fired = {a.rule: a for a in svc.evaluate(now_ms=1_002_000)}
    assert fired["f"].value == pytest.approx(-0.02) and fired["f"].threshold == 0.0
    assert fired["silent"].value == 45.0 and fired["silent"].bar_open_time_ms == 1_002_000
    assert fired["silent"].symbols == ()


def test_a_gap_open_longer_than_the_level_fires_once_and_rearms_when_it_closes(tmp_path):
    m = Market(public=400)
    svc = service(tmp_path, m, '[[rule]]\nname = "g"\nkind = "feed"\nsymbol = "XXX"\n'
                               'above = 30.0\ngap = true\n')  # fmt: skip
    assert svc.evaluate(now_ms=1_000_000) == []  # no gap: 0 s, armed
    m.gaps = {"XXX": 2, "YYY": 1}
    assert svc.evaluate(now_ms=1_005_000) == []  # seen open from here
    assert svc.evaluate(now_ms=1_030_000) == []  # 25 s
    (fired,) = svc.evaluate(now_ms=1_036_000)  # 31 s
    assert fired.value == 31.0 and fired.symbols == ("XXX",)
    assert svc.evaluate(now_ms=1_090_000) == []  # still open: fired once
    m.gaps = {}
    svc.evaluate(now_ms=1_091_000)  # closed: re-armed
    m.gaps = {"XXX": 1}
    svc.evaluate(now_ms=1_092_000)
    assert [a.value for a in svc.evaluate(now_ms=1_123_000)] == [31.0]  # a new gap, timed anew


def test_a_restart_reads_the_states_and_repeats_nothing(tmp_path):
    m = Market(public=400)
    level = float(m.closed("YYY").close[-2:].min()) - 1e-9  # both bars it first reads above
    rules = (f'[[rule]]\nname = "p"\nkind = "price"\nsymbol = "YYY"\ntimeframe = "1s"\n'
             f'above = {level!r}\n')  # fmt: skip
    db = open_store(tmp_path / "a.db")
    first = service(tmp_path, m, rules, db)
    first.evaluate()  # the last close is above: not armed, no alert
    restarted = service(tmp_path, m, rules, db)
    assert restarted.status()[0].state == first.status()[0].state
    assert restarted.evaluate() == [] and db.alerts() == []


def test_rules_that_cannot_be_evaluated_say_why_and_the_others_go_on(tmp_path):
    m = Market(public=400)
    svc = service(tmp_path, m, (
        '[[rule]]\nname = "gone"\nkind = "price"\nsymbol = "ZZZUSDT"\nabove = 1.0\n'
        '[[rule]]\nname = "bad"\nkind = "zscore"\ny = "YYY"\nx = "XXX"\nabove = 2.0\nmethod = "bogus"\n'
        '[[rule]]\nname = "ok"\nkind = "price"\nsymbol = "YYY"\ntimeframe = "1s"\nabove = 1e9\n'
    ))  # fmt: skip
    svc.evaluate()
    status = {s.rule.name: s for s in svc.status()}
    assert status["gone"].error == "ZZZUSDT is not streamed here"
    assert status["bad"].error == "rule 'bad': unknown regression method 'bogus'"
    assert status["ok"].error is None and status["ok"].state.armed is True
    assert not math.isnan(status["ok"].last_value)


def test_a_bad_edit_keeps_the_rules_in_force_and_add_rule_checks_the_whole_file(tmp_path):
    import os

    from backend.alerts.rules import RulesError

    m = Market(public=400)
    svc = service(
        tmp_path, m, '[[rule]]\nname = "p"\nkind = "price"\nsymbol = "YYY"\nabove = 1.0\n'
    )
    with pytest.raises(RulesError, match="a second rule named 'p'"):
        svc.add_rule('[[rule]]\nname = "p"\nkind = "price"\nsymbol = "XXX"\nabove = 2.0\n')
    assert svc.path.read_text().count("[[rule]]") == 1  # left as it was
    svc.path.write_text("[[rule]]\nname = 3\n")
    os.utime(svc.path, (1, 1))  # a changed mtime, whatever the clock's resolution
    svc.reload_if_changed()
    assert "key 'name'" in svc.rules_error and [r.name for r in svc.rules.rules] == ["p"]


def test_a_second_service_on_held_rules_shows_the_watchers_states_and_evaluates_nothing(tmp_path):
    m = Market(public=400)
    rules = '[[rule]]\nname = "p"\nkind = "price"\nsymbol = "YYY"\ntimeframe = "1s"\nabove = 1e9\n'
    watcher = service(tmp_path, m, rules, open_store(tmp_path / "a.db")).start()
    page = service(tmp_path, m, rules, open_store(tmp_path / "a.db"))
    try:
        page.start(claim="optional")
        assert not page.watching and "'rules' is already watched" in page.note
        wait_for(lambda: watcher.evaluations > 0, 10, "the watcher's first evaluation")
        wait_for(lambda: page.status()[0].state.armed is True, 10, "the stored state shown")
        assert page.evaluations == 0 and page.courier.is_alive() is False
    finally:
        page.stop()
        watcher.stop()
    assert not watcher.courier.is_alive()


def test_a_store_that_is_down_loses_no_alert(tmp_path):
    from backend.storage import StorageError

    m = Market(public=400)
    level = float(m.closed("YYY").close[-1]) + 1e-6  # the last close below: armed
    svc = service(tmp_path, m, f'[[rule]]\nname = "p"\nkind = "price"\nsymbol = "YYY"\n'
                               f'timeframe = "1s"\nabove = {level!r}\n')  # fmt: skip
    svc.evaluate()
    record = svc.store.record_alerts

    def down(*args):
        raise StorageError("database is locked")

    svc.store.record_alerts = down
    crossed = None
    while crossed is None:  # bars close until one crosses the level, while the store is down
        m.public += 1
        closes = m.closed("YYY").close
        if closes[-1] > level and closes[-2] <= level:
            crossed = int(m.closed("YYY").open_time[-1])
        with pytest.raises(StorageError):
            svc.evaluate()
    svc.store.record_alerts = record  # back: the crossing is recorded, once
    assert [a.bar_open_time_ms for a in svc.evaluate()] == [crossed]
    assert [a.bar_open_time_ms for a in svc.store.alerts()] == [crossed]
