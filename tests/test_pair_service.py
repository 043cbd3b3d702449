"""The pair service (backend/engine/pair_service.py): what the page shows for a pair, computed
headless from any market-data source, slow figures once per closed bar."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.stattools import coint

from backend.engine import AlertGate, LevelRule, PairParams, PairRequest, PairService
from backend.engine.pairs import needs
from backend.engine.uploads import UploadedData, UploadedSymbol
from backend.exchange.sources import Simulator
from backend.lru import Lru
from backend.store.resampling import fold_bars
from tests.conftest import BareMarket, pair_bars

P = PairParams(lookback_bars=200, z_window_bars=40, z_threshold=1.5)


def uploads(n: int, seed: int = 3) -> UploadedData:
    """The first ``n`` bars of the simulated pair as uploaded files (every bar closed)."""
    yb, xb = pair_bars(seed=seed)
    items = {b.symbol: UploadedSymbol(b.symbol, bars=b.slice(0, n)) for b in (yb, xb)}
    return UploadedData(items, key=("test", seed, n))


class CountingCache:
    """The engine's ``cached(key, compute)``, counting what it computes."""

    def __init__(self) -> None:
        self.lru, self.computed = Lru(32), 0

    def __call__(self, key, compute):
        value = self.lru.get(key)
        if value is None:
            self.computed += 1
            value = self.lru[key] = compute()
        return value


@pytest.fixture
def service():
    cache = CountingCache()
    svc = PairService(cache, Lru(64))
    svc.cache = cache
    return svc


def test_a_report_waits_naming_each_figure_then_matches_an_independent_fit(service):
    request = PairRequest("YYY", "XXX", "1s", P, shown_bars=300)
    none_yet = service.report(uploads(40), request)  # the first figure needs 61 bars
    assert none_yet.live is None and none_yet.aligned_bars == 40
    early = service.report(uploads(150), request)
    assert early.live is not None and "correlation" not in early.waiting
    assert early.waiting["β"] == 201 and early.waiting["z-score"] == 240

    report = service.report(uploads(900), request)
    assert report.live is not None and not report.waiting
    # Independent: numpy least squares of log y on log x over the 200 bars before the last one
    # (walk-forward; every uploaded bar is closed).
    yb, xb = pair_bars()
    ly, lx = np.log(yb.close[699:899]), np.log(xb.close[699:899])
    (alpha, beta), *_ = np.linalg.lstsq(np.column_stack([np.ones(200), lx]), ly, rcond=None)
    assert report.beta == pytest.approx(beta, rel=1e-9)
    assert report.alpha == pytest.approx(alpha, rel=1e-9)
    # The Engle–Granger p on the slow figures' window is statsmodels' coint of those bars.
    slow, live = report.slow, report.live
    part = slice(live.closed - slow.window, live.closed)
    assert slow.eg_pvalue == pytest.approx(coint(live.y[part], live.x[part])[1], rel=1e-9)


def test_slow_figures_are_computed_once_per_closed_bar_for_every_viewer(service):
    request = PairRequest("YYY", "XXX", "1s", P)
    first = service.report(uploads(800), request)
    again = service.report(uploads(800), PairRequest("YYY", "XXX", "1s", P))  # another viewer
    assert again.slow is first.slow and service.cache.computed == 1
    newer = service.report(uploads(801), request)  # a bar closed
    assert newer.slow is not first.slow and service.cache.computed == 2
    # Left out on demand until a token names a run; each new token runs again.
    lazy = PairRequest("YYY", "XXX", "1s", P, slow=False)
    assert service.report(uploads(801), lazy).slow is None
    ran = service.report(uploads(801), PairRequest("YYY", "XXX", "1s", P, slow_token=1.0))
    assert ran.slow is not None and service.cache.computed == 3


def test_z_alerts_fire_on_exactly_the_closed_bars_whose_z_crossed(service):
    request = PairRequest("YYY", "XXX", "1s", P, shown_bars=1_000)  # every bar, from the first
    full = service.report(uploads(900), request).live
    z, k = full.zscore, P.z_threshold
    side = np.where(z > k, 1, np.where(z < -k, -1, 0))
    crossed = {i for i in range(1, len(z)) if side[i] != 0 and side[i] != side[i - 1]}
    assert len(crossed) >= 5
    quiet = [i for i in range(400, 900) if i not in crossed][::50]
    for last in sorted(crossed)[:5] + quiet:
        report = service.report(uploads(last + 1), request)
        fired = [a for a in service.alerts(report) if a.rule == "z-score"]
        assert len(fired) == (last in crossed), last
        if fired:
            assert fired[0].bar_open_time_ms == int(full.open_time[last])
            assert fired[0].value == pytest.approx(z[last])


def test_price_rules_fire_when_a_closed_close_crosses_the_level(service):
    yb, _ = pair_bars()
    n = 700
    prev, now = float(yb.close[n - 2]), float(yb.close[n - 1])
    level = (prev + now) / 2
    up, down = ("above", "below") if now > prev else ("below", "above")
    report = service.report(uploads(n), PairRequest("YYY", "XXX", "1s", P))
    rules = [LevelRule("Price", "YYY", up, level), LevelRule("Price", "YYY", down, level)]
    fired = service.alerts(report, rules)
    assert [a.rule for a in fired if a.rule.startswith("rule")] == ["rule 1"]
    alert = next(a for a in fired if a.rule == "rule 1")
    assert alert.value == now and alert.threshold == level


def test_the_alert_gate_admits_a_bar_once_and_keeps_the_cooldown(service):
    report = service.report(uploads(700), PairRequest("YYY", "XXX", "1s", P))
    yb, _ = pair_bars()
    level = (float(yb.close[698]) + float(yb.close[699])) / 2
    side = "above" if yb.close[699] > yb.close[698] else "below"
    (alert,) = service.alerts(report, [LevelRule("Price", "YYY", side, level)])[-1:]
    gate = AlertGate()
    assert gate.admit(alert, report.request, now_s=100.0, cooldown_s=30.0)
    assert not gate.admit(alert, report.request, now_s=200.0, cooldown_s=30.0)  # same bar
    later = type(alert)(alert.rule, alert.bar_open_time_ms + 1000, 1.0, 1.0, "")
    assert not gate.admit(later, report.request, now_s=110.0, cooldown_s=30.0)  # cooling down
    assert gate.admit(later, report.request, now_s=131.0, cooldown_s=30.0)


def test_the_analytics_csv_is_the_per_bar_table_under_a_header(service):
    request = PairRequest("YYY", "XXX", "1s", P)
    assert service.analytics_csv(uploads(40), request).startswith(b"# warming up: 40 of 61 1s")
    data = uploads(900)
    text = service.analytics_csv(data, request).decode()
    header, body = text.split("\n", 1)
    assert header.startswith("# pair YYY/XXX, 1s bars; regression ols on log prices")
    frame = pd.read_csv(io.StringIO(body))
    report = service.report(data, request)
    assert len(frame) == len(report.live.open_time)
    np.testing.assert_allclose(frame["YYY_close"], report.yb.close[-len(frame) :])
    np.testing.assert_allclose(frame["zscore"], report.live.zscore, equal_nan=True)


def test_the_page_opens_on_the_shortest_timeframe_whose_history_is_in(service):
    class Market:  # 1s holds 100 bars (still loading), 1m and 5m hold all they need
        def __init__(self, held: dict[str, int]) -> None:
            self.held = held

        def bars(self, symbol, timeframe, last=None):
            yb, xb = pair_bars(n=self.held[timeframe])
            return yb if symbol == "YYY" else xb

    need = max(needs(PairParams()).values())
    order = ["1s", "1m", "5m"]
    assert service.ready_timeframe(Market({"1s": 100, "1m": need, "5m": need}), order,
                                   ["YYY", "XXX"]) == "1m"  # fmt: skip
    assert service.ready_timeframe(Market({"1s": need, "1m": need, "5m": 0}), order,
                                   ["YYY", "XXX"]) == "1s"  # fmt: skip
    assert service.ready_timeframe(Market({"1s": 5, "1m": need - 1, "5m": 0}), order,
                                   ["YYY", "XXX"]) is None  # fmt: skip


class TwoTimeframes(BareMarket):
    """1m bars of a simulated pair and the 1h bars folded from them (every bar closed)."""

    key = ("two timeframes",)
    newest_is_open = False

    def __init__(self, minutes: dict) -> None:
        self._bars = {(s, "1m"): b for s, b in minutes.items()}
        self._bars |= {(s, "1h"): fold_bars(b, "1h") for s, b in minutes.items()}
        self.symbols = list(minutes)

    def bars(self, symbol, timeframe, last=None):
        b = self._bars[(symbol, timeframe)]
        return b if last is None or len(b) <= last else b.slice(len(b) - last, len(b))


def test_a_hedge_fitted_on_1h_bars_is_the_ols_of_the_hours_closed_before_each_minute(service):
    minutes = Simulator(["AAAUSDT", "BBBUSDT"], seed=8).deep_minutes(1_780_012_800_000, 3 * 1440)
    market = TwoTimeframes(minutes)
    p = PairParams(lookback_bars=24, z_window_bars=60, hedge_timeframe="1h")
    report = service.report(market, PairRequest("BBBUSDT", "AAAUSDT", "1m", p, shown_bars=2000))
    live = report.live
    hours = {s: market.bars(s, "1h") for s in ("AAAUSDT", "BBBUSDT")}
    hour_open = hours["AAAUSDT"].open_time
    checked = 0
    for i in range(0, len(live.open_time), 97):
        t = int(live.open_time[i])
        j = int(np.searchsorted(hour_open, t, "right")) - 1  # the hour holding this minute
        if j < 24:
            assert np.isnan(live.beta[i])  # fewer than 24 closed hours before it: no hedge
            continue
        ly = np.log(hours["BBBUSDT"].close[j - 24 : j])
        lx = np.log(hours["AAAUSDT"].close[j - 24 : j])
        (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones(24), lx]), ly, rcond=None)
        assert live.beta[i] == pytest.approx(b, rel=1e-9) and live.alpha[i] == pytest.approx(a)
        checked += 1
    assert checked >= 15
    with pytest.raises(ValueError, match="walk-forward OLS"):
        PairParams(method="huber", hedge_timeframe="1h").check()


def test_a_range_of_dates_shows_its_bars_with_the_history_their_windows_need(service):
    yb, _ = pair_bars()
    t = yb.open_time
    ranged = PairRequest("YYY", "XXX", "1s", P, start_ms=int(t[500]), end_ms=int(t[700]))
    report = service.report(uploads(900), ranged)
    live = report.live
    assert int(live.open_time[-1]) == t[700] and int(live.open_time[report.shown_from]) == t[500]
    assert live.open_time[0] < t[500]  # the windows' history before the range
    # The same figures as the last 201 bars of the data cut at the range's end.
    cut = service.report(uploads(701), PairRequest("YYY", "XXX", "1s", P, shown_bars=201))
    assert report.beta == cut.beta and live.latest_z == cut.live.latest_z
    np.testing.assert_array_equal(
        live.zscore[report.shown_from :], cut.live.zscore[cut.shown_from :]
    )

    class Feed(UploadedData):  # a live source: its newest bar forms, unless the range ends before
        newest_is_open = True

    items = {b.symbol: UploadedSymbol(b.symbol, bars=b) for b in pair_bars()}
    live_ranged = service.report(Feed(items, key=("feed",)), ranged).live
    assert live_ranged.closed == len(live_ranged.open_time)  # every bar in the range closed
    live_last = service.report(Feed(items, key=("feed",)), PairRequest("YYY", "XXX", "1s", P)).live
    assert live_last.closed == len(live_last.open_time) - 1


def test_a_scan_over_a_window_ending_in_the_past_is_the_scan_of_the_data_cut_there():
    yb, _ = pair_bars()
    end = int(yb.open_time[699])
    windowed = uploads(900).scan("1s", 300, end_ms=end).table
    cut = uploads(700).scan("1s", 300).table
    pd.testing.assert_frame_equal(windowed, cut)
