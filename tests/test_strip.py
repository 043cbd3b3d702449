"""The live strip's route (frontend/strip.py): what the page fetches between its reruns."""

from __future__ import annotations

from starlette.requests import Request

from backend.engine import Engine, EngineOptions
from frontend.strip import MARKER, EngineDirectory, engines, strip_endpoint
from tests.conftest import card_values, wait_for


def _get(source: str):
    scope = {"type": "http", "method": "GET", "path": "/pa/strip", "headers": []}
    return strip_endpoint(Request({**scope, "query_string": f"source={source}".encode()}))


def test_the_route_serves_a_running_feed_and_starts_none(tmp_path, dec_trades):
    expected = sum(len(b) for b in dec_trades.values())
    # Nothing running: a 404 the page can tell from Streamlit's own pages (the marker).
    answer = _get("replay")
    assert answer.status_code == 404 and answer.headers[MARKER] == "1"
    assert engines().get("replay") is None  # a request never starts a feed

    engine = Engine(EngineOptions(source="replay", replay_speed=0, db=str(tmp_path / "m.db")))
    try:
        engines().add(engine)
        wait_for(lambda: engine.health().store.total_ticks == expected, 40, "the whole replay")
        answer = _get("replay")
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        cards = card_values(answer.body.decode())
        # The recording's every trade, and its last prices (the replay stands still at its end).
        assert cards["Ticks"] == f"{expected:,}"
        for symbol, trades in dec_trades.items():
            assert cards[symbol] == f"{trades.price[-1]:,.2f}"
        assert "source replay" in answer.body.decode()
        assert _get("simulate").status_code == 404  # only the source asked for
    finally:
        engines().remove(engine)
        engine.stop()
    assert _get("replay").status_code == 404


def test_the_directory_forgets_only_the_engine_it_holds():
    directory = EngineDirectory()

    class Opts:  # the one attribute the directory reads
        source = "live"

    first, second = object.__new__(Engine), object.__new__(Engine)
    first.opts = second.opts = Opts()
    directory.add(first)
    directory.add(second)  # a restarted engine replaces the old one
    directory.remove(first)  # the old one's release leaves the new one in place
    assert directory.get("live") is second
    directory.remove(second)
    assert directory.get("live") is None
