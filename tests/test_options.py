"""Every option of the dashboard and of every command against junk: NaN, infinities, negative,
zero, huge, empty and not-a-number values. Each is either taken (finite, in its range) or
refused in one line naming the flag (exit 2 for a command), never a traceback."""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import app
from backend import cli, options
from backend.config import ConfigError
from tests.conftest import ROOT

JUNK = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-1", "-0", "0", "1e308", "-1e308",
        "1e12", "99999999999999999999", "", " ", "abc", "1,5", "0x10", "1e", "--", "٣"]  # fmt: skip
values = st.one_of(
    st.sampled_from(JUNK),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(max_size=6),
)


def _numbers(parser: argparse.ArgumentParser) -> dict[str, options.Number]:
    return {
        a.option_strings[-1]: a.type for a in parser._actions if isinstance(a.type, options.Number)
    }


COMMANDS = {
    name: sub for name, sub in cli.build_parser()._subparsers._group_actions[0].choices.items()
}
CLI_OPTIONS = [(cmd, flag, kind) for cmd, sub in COMMANDS.items()
               for flag, kind in _numbers(sub).items()]  # fmt: skip
APP_OPTIONS = list(_numbers(app.build_parser()).items())


def test_every_numeric_option_is_declared_with_a_range():
    assert {cmd for cmd, _, _ in CLI_OPTIONS} == {"collect", "serve", "soak", "watch"}
    # serve --deep-days: the 26th; watch --duration, --history-bars, --history-1s
    assert len(CLI_OPTIONS) == 29 and len(APP_OPTIONS) == 5
    parsers = [*COMMANDS.values(), app.build_parser()]
    assert not [a for p in parsers for a in p._actions if a.type in (int, float)]
    for _, _, kind in CLI_OPTIONS + [(None, *o) for o in APP_OPTIONS]:
        assert math.isfinite(kind.hi)  # nothing unbounded: "huge" is refused too


def _taken(value, kind: options.Number) -> None:
    assert math.isfinite(value) and value <= kind.hi
    assert value >= kind.lo or (kind.allow_zero and value == 0)
    assert not (kind.lo_open and value == kind.lo and not kind.allow_zero)


@pytest.mark.parametrize(("command", "flag", "kind"), CLI_OPTIONS, ids=lambda v: str(v))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=values)
def test_command_options_take_a_value_in_range_or_refuse_it_in_one_line(
    capsys, command, flag, kind, value
):
    parser = cli.build_parser()
    argv = [command, f"{flag}={value}"]
    try:
        if (bad := options.check_argv(argv)) is not None:  # as cli.main does first
            parser.error(bad)
        args = parser.parse_args(argv)
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code == 2 and "Traceback" not in err
        assert err.count("\n") == 1 and err.startswith("python -m backend"), err
        return
    _taken(getattr(args, flag.lstrip("-").replace("-", "_")), kind)


@pytest.mark.parametrize(("flag", "kind"), APP_OPTIONS, ids=lambda v: str(v))
@settings(max_examples=40, deadline=None)
@given(value=values)
def test_dashboard_options_take_a_value_in_range_or_refuse_it_in_one_line(flag, kind, value):
    try:
        opts = app.parse_options([f"{flag}={value}"])
    except ConfigError as exc:
        assert "\n" not in str(exc) and flag in str(exc)
        return
    field = {"--replay-speed": "replay_speed", "--replay-history": "replay_history_s",
             "--history-bars": "history_bars", "--history-1s": "history_1s_s",
             "--keep-1s": "keep_1s_h"}[flag]  # fmt: skip
    _taken(getattr(opts, field), kind)


@pytest.mark.parametrize(
    "argv",
    [
        ["--db="],
        ["--db=  "],
        ["--rest-url=http://exa mple.com"],
        ["--ws-url=wss://a\tb"],
        ["--symbols="],
        ["--source=nowhere"],
    ],
)
def test_dashboard_text_options_refuse_junk_in_one_line(argv):
    with pytest.raises(ConfigError) as info:
        app.parse_options(argv)
    assert "\n" not in str(info.value)


def _run(*args: str, timeout_s: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backend", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout_s, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("collect", "--db", ""),
        ("soak", "--db", ""),
        ("collect", "--rest-url", "http://exa mple.com"),
        ("serve", "--history", "1e12"),
        ("serve", "--host", " "),
    ],
)
def test_text_and_huge_values_are_one_line_and_exit_2(args):
    proc = _run(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_serve_on_a_port_in_use_says_so_and_exits_at_once():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        proc = _run("serve", "--source", "simulate", "--port", str(port), "--duration", "30")
    assert proc.returncode == 2 and time.monotonic() - started < 15
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


def _exchange_children() -> set[int]:
    found = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read().split(b"\0")
            except OSError:
                continue
            if b"serve" in cmd and b"--cycles" in cmd:  # the soak's exchange child
                found.add(int(pid))
    return found


def test_a_soak_whose_store_cannot_open_leaves_no_process_behind(tmp_path):
    before = _exchange_children()
    proc = _run("soak", "--minutes", "0.1", "--db", str(tmp_path / "no" / "such" / "dir.db"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert _exchange_children() <= before


def test_an_empty_replay_file_is_one_line_not_a_feed_that_never_connects(tmp_path):
    from backend.engine import Engine, EngineOptions

    empty = tmp_path / "empty.ndjson"
    empty.write_text("")
    proc = _run("serve", "--files", str(empty), "--duration", "5")
    assert proc.returncode == 2 and "no trade to replay in empty.ndjson" in proc.stderr
    with pytest.raises(ValueError, match="no trade to replay in empty.ndjson"):
        Engine(EngineOptions(source="replay", replay_files=(str(empty),), db=str(tmp_path / "d")))


def test_a_postgresql_password_is_never_in_a_message():
    from backend.storage import StorageError, open_store

    for url in (
        "postgresql://u:s3cr%t@127.0.0.1:1/db",
        "postgresql://u:s3cr et@127.0.0.1:1/db",
        "postgresql://u@127.0.0.1:1/db?password=s3cr%t",
    ):
        with pytest.raises(StorageError) as info:
            open_store(url)
        assert "s3cr" not in str(info.value) and "postgresql://u@127.0.0.1:1/db" in str(info.value)


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("BTCUSDT.csv", b"open_time,open,high,low\n0,1,1,1\n", "missing column(s) close"),
        ("BTCUSDT-1m.csv", b"time,open,high,low,volume\n0,1,1,1,1\n", "missing column(s) close"),
        (
            "ETHUSDT.csv",
            b"open_time,open,high,low,close\n0,1e308,1e308,1e308,1e308\n60000,1,1,1,1\n",
            "row 2: prices must be positive numbers up to 1e+09",
        ),
        ("BTCUSDT-aggTrades.csv", b"1,1e308,1,1,1,1000,true\n", "row 1: price and quantity"),
    ],
)
def test_uploads_name_the_missing_column_and_refuse_absurd_prices(name, body, message):
    from backend.engine.uploads import UploadError, parse_upload

    with pytest.raises(UploadError) as info:
        parse_upload(name, body)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_streamed_trade_at_an_absurd_price_is_skipped_and_counted():
    from backend.feed.wire import FrameDecoder

    good = (b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,'
            b'"p":"90000.1","q":"0.5","f":1,"l":1,"T":1,"m":true}}')  # fmt: skip
    huge = good.replace(b'"a":1', b'"a":2').replace(b"90000.1", b"1e308")
    decoded = FrameDecoder(["BTCUSDT"]).decode([good, huge])
    assert decoded.batches["BTCUSDT"].agg_id.tolist() == [1]
    assert decoded.skipped == {"bad_value": 1}


ENV_NUMBERS = [f for f in options.FLAGS.values() if f.env and isinstance(f.type, options.Number)]


@pytest.mark.parametrize("flag", ENV_NUMBERS, ids=lambda f: f.env)
@pytest.mark.parametrize("junk", ["nan", "-inf", "-1", "abc", "1e308"])
def test_a_junk_environment_variable_is_one_line_naming_its_flag(monkeypatch, flag, junk):
    monkeypatch.setenv(flag.env, junk)  # every range is finite and starts at 0 or above
    with pytest.raises(ConfigError) as caught:
        app.parse_options([])
    assert flag.flag in str(caught.value) and "\n" not in str(caught.value)


def test_a_variable_sets_the_default_and_the_flag_wins(monkeypatch):
    monkeypatch.setenv("PAIRDASH_HISTORY_BARS", "250")
    monkeypatch.setenv("PAIRDASH_SYMBOLS", "solusdt,xrpusdt")
    assert app.parse_options([]).history_bars == 250
    assert app.parse_options(["--history-bars", "40"]).history_bars == 40
    assert app.parse_options([]).symbols == ("SOLUSDT", "XRPUSDT")
    monkeypatch.setenv("PAIRDASH_HISTORY_BARS", " ")  # an empty variable is ignored
    assert app.parse_options([]).history_bars == 1000
    # The commands take the same variables and the same flags.
    args = cli.build_parser().parse_args(["collect"])
    assert args.symbols == "solusdt,xrpusdt" and args.history_bars == 1000
