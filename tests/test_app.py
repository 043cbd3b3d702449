"""The dashboard's own options (``streamlit run app.py -- ...``): parsed in one place, bad ones
refused in one line, ``--help`` answered."""

from __future__ import annotations

import runpy

import pytest

from backend.config import ConfigError
from tests.conftest import ROOT

APP = runpy.run_path(str(ROOT / "app.py"))  # not as __main__: defines, does not run the page


def test_history_and_replay_options_reach_the_engine():
    opts = APP["parse_options"](
        ["--source", "replay", "--replay-history", "3600", "--history-bars", "500",
         "--history-1s", "600"]
    )  # fmt: skip
    assert (opts.source, opts.replay_history_s, opts.history_bars, opts.history_1s_s) == (
        "replay",
        3600.0,
        500,
        600.0,
    )


def test_keep_1s_reaches_the_engine():
    assert APP["parse_options"]([]).keep_1s_h == 6.0
    assert APP["parse_options"](["--keep-1s", "0"]).keep_1s_h == 0.0  # keep every second
    assert APP["parse_options"](["--keep-1s", "1.5"]).keep_1s_h == 1.5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replay-files", "/nope.ndjson"], "no such file: /nope.ndjson"),
        (["--ws-url", "ws://"], "names no host"),
        (["--nope"], "unrecognized arguments: --nope"),
        (["--history-1s", "-5"], "must be >= 0"),
        (["--source", "simulate", "--symbols", "top:3"], "with --source simulate name the"),
        (["--symbols", "top:0"], r"top:N needs a whole number N >= 1, got 'top:0'"),
        (["--symbols", "top:many"], "top:N needs a whole number"),
        (["--keep-1s", "0.05"], r"--keep-1s must be 0 \(keep all\) or at least 0.0834 hours"),
    ],
)
def test_bad_options_are_one_line_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        APP["parse_options"](argv)


def test_help_lists_the_options():
    with pytest.raises(APP["HelpRequested"]):
        APP["parse_options"](["--help"])
    text = APP["build_parser"]().format_help()
    for flag in ("--source", "--replay-history", "--history-bars", "--history-1s"):
        assert flag in text


def test_a_market_pick_is_kept_for_the_engine_to_resolve():
    opts = APP["parse_options"](["--symbols", " TOP:20 "])
    assert opts.symbols == ("top:20",)
    assert APP["parse_options"](["--symbols", "all"]).symbols == ("all",)
