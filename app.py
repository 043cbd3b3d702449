"""Entry point: ``streamlit run app.py [-- --source live|replay|simulate --symbols ... ]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend import options
from backend.config import (
    ConfigError,
    check_files,
    check_url,
    keep_1s_seconds,
    market_pick,
    parse_symbols,
)
from backend.engine import SOURCES, EngineOptions


class HelpRequested(Exception):
    """``-- --help``: the page shows the options instead of a dashboard."""


class _Parser(argparse.ArgumentParser):
    """Errors become exceptions the page shows in one line (argparse would exit the server)."""

    def error(self, message: str):
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="streamlit run app.py --", exit_on_error=False, add_help=False)
    parser.add_argument("-h", "--help", action="store_true", help="show these options")
    # Options and their PAIRDASH_* variables are defined once (backend/options.py); flags win.
    # Without --db: market.db for live data, market-replay.db / market-simulate.db otherwise.
    options.add(
        parser, "--source", "--symbols", "--ws-url", "--rest-url", "--db",
        **{"--source": {"choices": SOURCES}, "--db": {"default": None}},
    )  # fmt: skip
    parser.add_argument("--replay-files", nargs="*", default=[])
    options.add(parser, "--replay-speed")
    parser.add_argument(
        "--replay-history",
        type=options.REPLAY_HISTORY_S,
        default=None,
        metavar="SECONDS",
        help="the recording's first SECONDS are served as history (default: all but its last hour)",
    )
    options.add(parser, "--history-bars", "--history-1s", "--keep-1s", "--rules")
    return parser


def parse_options(argv: list[str]) -> EngineOptions:
    """The engine's options from ``argv`` (and PAIRDASH_* variables); a bad one is a
    ``ConfigError`` naming it, in one line."""
    if (bad := options.check_argv(argv)) is not None:
        raise ConfigError(bad)
    try:
        args = build_parser().parse_args(argv)
    except argparse.ArgumentError as exc:
        raise ConfigError(str(exc)) from None
    if args.help:
        raise HelpRequested
    keep_1s_seconds(args.keep_1s)  # 0, or at least 5 minutes: one line
    if args.replay_files:
        check_files(args.replay_files)
    picked, _ = market_pick(args.symbols)
    if picked and args.source != "live":
        raise ConfigError(
            f"--symbols {args.symbols.strip()} picks from the live market by volume; with "
            f"--source {args.source} name the symbols (comma-separated)"
        )
    return EngineOptions(
        source=args.source,
        symbols=(args.symbols.strip().lower(),) if picked else tuple(parse_symbols(args.symbols)),
        ws_url=check_url(args.ws_url, ("ws", "wss"), "--ws-url"),
        rest_url=check_url(args.rest_url, ("http", "https"), "--rest-url"),
        db=args.db or "",
        replay_files=tuple(args.replay_files),
        replay_speed=args.replay_speed,
        replay_history_s=args.replay_history,
        history_bars=args.history_bars,
        history_1s_s=args.history_1s,
        keep_1s_h=args.keep_1s,
        rules=args.rules.strip(),
    )


def run() -> None:
    import streamlit as st

    # Under `streamlit run app.py -- ...` the options follow the script name; under AppTest
    # sys.argv is the test runner's, and only the environment applies.
    argv = sys.argv[1:] if Path(sys.argv[0]).name == "app.py" else []
    try:
        opts = parse_options(argv)
    except HelpRequested:
        st.title("Pair analytics: options")
        st.code(build_parser().format_help(), language="text")
        st.stop()
    except (argparse.ArgumentError, ConfigError, ValueError) as exc:
        st.error(f"Bad option: {exc}")
        st.code(
            "streamlit run app.py [streamlit options] -- --source live|replay|simulate|db "
            "--symbols BTCUSDT,ETHUSDT [--help for all]",
            language="text",
        )
        st.stop()
    from frontend.shell import main

    main(opts)


if __name__ == "__main__":  # streamlit run and AppTest run the file as __main__
    run()
elif __name__ == "app":
    # `streamlit run app.py` finds this App and serves it with uvicorn, which imports this file
    # as the module "app"; the App runs it as the page script (__main__) for each session. The
    # App adds one route: the live strip's HTML, which the page fetches itself between reruns
    # (frontend/strip.py). Imported any other way (tests, runpy) nothing starts.
    import streamlit as st

    from frontend.strip import routes

    app = st.App(__file__, routes=routes())
