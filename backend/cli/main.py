"""``python -m backend collect|serve|soak|import|watch``: the headless collector, the local
exchange, the soak run, the bulk import of klines and the headless alert watcher."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import threading

from backend import options
from backend.config import (
    SHARED_SAMPLE,
    SIM_DEEP_DAYS,
    ConfigError,
    FeedConfig,
    check_files,
    check_url,
    keep_1s_seconds,
    market_pick,
    parse_symbols,
)
from backend.signals import stop_on_signals
from backend.storage import StorageError, open_store

log = logging.getLogger("backend")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m backend", description=__doc__)
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser(
        "collect", help="ingest live trades and persist bars of every timeframe (1s ... 1d)"
    )
    options.add(
        c, "--symbols", "--ws-url", "--rest-url", "--db", "--duration", "--flush-interval",
        "--resume-max-age", "--history-bars", "--history-1s", "--keep-1s", "--rules",
        **{"--keep-1s": {"help": "1s bars kept in memory (the database keeps all; 0 keeps all "
                                 "in memory too)"},
           # only from the flag: PAIRDASH_RULES (a dashboard's, a watcher's) must not turn
           # every collector into a second watcher of those rules
           "--rules": {"default": None, "env": None,
                       "help": "also evaluate these alert rules on the bars stored (README: "
                               "Alerts)"}},
    )  # fmt: skip

    i = sub.add_parser(
        "import", help="months of klines from data.binance.vision (REST where a file fails)"
    )
    options.add(i, "--symbols", "--timeframes", "--vision-url", "--rest-url", "--db")
    i.add_argument("--start", required=True, metavar="YYYY-MM-DD", help="first UTC day")
    i.add_argument("--end", required=True, metavar="YYYY-MM-DD", help="last UTC day (inclusive)")

    w = sub.add_parser(
        "watch", help="evaluate alert rules on a live feed (or --source db) and deliver them"
    )
    w.add_argument("--source", choices=["live", "db"], default="live",
                   help="live: stream trades; db: the bars collectors store in --db")  # fmt: skip
    options.add(
        w, "--rules", "--symbols", "--ws-url", "--rest-url", "--db", "--duration",
        "--history-bars", "--history-1s",
        **{"--rules": {"default": None, "help": "the rules file (TOML; README: Alerts)"},
           "--symbols": {"default": None, "help": "comma-separated (default: the symbols the "
                                                  "rules name)"}},
    )  # fmt: skip

    k = sub.add_parser(
        "soak", help="local exchange + collector at a fixed rate; reports each minute"
    )
    k.add_argument("--minutes", type=options.SOAK_MINUTES, default=30.0)
    k.add_argument("--rate", type=options.SOAK_RATE, default=1_000.0, help="messages per second")
    k.add_argument(
        "--db", type=options.DB, default=None, help="SQLite file (default: a temporary one)"
    )
    k.add_argument("--report-every", type=options.REPORT_EVERY_S, default=60.0, metavar="SECONDS")

    s = sub.add_parser("serve", help="run the local Binance-compatible exchange")
    s.add_argument("--source", choices=["replay", "simulate"], default="replay")
    s.add_argument("--files", nargs="*", default=None, help="NDJSON / aggTrades CSV to replay")
    options.add(s, "--symbols", **{"--symbols": {"help": "simulated symbols"}})
    s.add_argument("--seed", type=options.SEED, default=7)
    s.add_argument("--host", type=options.HOST, default="127.0.0.1")
    s.add_argument("--port", type=options.PORT, default=0, help="0 picks a free port")
    s.add_argument(
        "--speed", type=options.REPLAY_SPEED, default=1.0, help="0 = as fast as possible"
    )
    options.add(s, "--duration")
    s.add_argument(
        "--history",
        type=options.SIM_HISTORY_S,
        default=None,
        metavar="SECONDS",
        help="replay: the recording's first SECONDS are history (REST only), streaming starts "
        "after them (default 0); simulate: SECONDS generated before now (default 4 days)",
    )
    s.add_argument(
        "--deep-days",
        type=options.DEEP_DAYS,
        default=SIM_DEEP_DAYS,
        metavar="DAYS",
        help="simulate: days of 1m bars before the trades (klines and data.binance.vision "
        "files under /data/futures/um/...; 0 = none)",
    )
    s.add_argument(
        "--cycles",
        type=options.CYCLES,
        default=1,
        help="replay the recording N times, ids and times moving on each pass (0 = forever)",
    )
    for flag, help_text in (
        ("--drop-every", "abort connections after every N messages"),
        ("--skip-on-drop", "trades not streamed after a drop (REST still has them)"),
        ("--duplicate-every", "send every Nth message twice"),
        ("--malformed-every", "a junk frame after every Nth message"),
        ("--refuse-connections", "refuse the first N WebSocket connections"),
        ("--silence-after", "go silent (no data, no pongs) after N messages"),
        ("--rest-429", "answer the first N aggTrades requests with 429"),
        ("--rest-418", "answer the first N aggTrades requests with 418"),
        ("--rest-5xx", "answer the first N aggTrades requests with 503"),
    ):
        s.add_argument(flag, type=options.FAULT_COUNT, default=0, help=help_text)
    s.add_argument("--rest-down", action="store_true", help="every REST request fails")
    s.add_argument(
        "--max-connection-age", type=options.CONNECTION_AGE_S, default=0.0, metavar="SECONDS"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if (bad := options.check_argv(argv)) is not None:
        parser.error(bad)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "collect":
            return _collect(args)
        if args.command == "soak":
            return _soak(args)
        if args.command == "import":
            return _import(args)
        if args.command == "watch":
            return _watch(args)
        return _serve(args)
    except (ConfigError, StorageError) as exc:
        sys.stderr.write(f"python -m backend {args.command}: error: {exc}\n")
        return 2


def _import(args) -> int:
    from backend.cli.importer import Importer, SourceUnreachable, parse_day
    from backend.feed.rest import RestClient, RestError, pick_symbols
    from backend.store.timeframes import KLINE_TIMEFRAMES

    vision_url = check_url(args.vision_url, ("http", "https"), "--vision-url")
    rest_url = check_url(args.rest_url, ("http", "https"), "--rest-url")
    try:
        start, end = parse_day(args.start, "--start"), parse_day(args.end, "--end")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if end < start:
        raise ConfigError(f"--end {end} is before --start {start}")
    if start > dt.datetime.now(dt.UTC).date():
        raise ConfigError(f"--start {start} is in the future")
    timeframes = [t.strip() for t in args.timeframes.split(",") if t.strip()]
    bad = [t for t in timeframes if t not in KLINE_TIMEFRAMES]
    if bad or not timeframes:
        raise ConfigError(
            f"--timeframes {args.timeframes!r}: choose from {', '.join(reversed(KLINE_TIMEFRAMES))}"
        )
    picked, top = market_pick(args.symbols)
    rest = RestClient(rest_url)
    try:
        symbols = pick_symbols(rest_url, top) if picked else parse_symbols(args.symbols)
        listed = rest.trading_symbols()
    except RestError as exc:
        sys.stderr.write(f"python -m backend import: error: {rest_url} unreachable: {exc}\n")
        return 1
    unknown = [s for s in symbols if s not in listed]
    if unknown:
        raise ConfigError(f"unknown symbol(s) {', '.join(unknown)} at {rest_url}")
    db = open_store(args.db)
    try:
        summary = Importer(db, vision_url, rest).run(
            symbols, timeframes, start, end, progress=sys.stderr.isatty()
        )
    except SourceUnreachable as exc:
        sys.stderr.write(f"python -m backend import: error: {exc}\n")
        return 1
    finally:
        db.close()
    for line in summary.lines():
        print(f"# import: {line}")
    return 0 if summary.ok else 1


def _collect(args) -> int:
    from backend.cli.collector import run_collector
    from backend.feed.rest import pick_symbols, unknown_symbols

    ws_url = check_url(args.ws_url, ("ws", "wss"), "--ws-url")
    rest_url = check_url(args.rest_url, ("http", "https"), "--rest-url")
    if args.rules is not None:
        _check_rules_file(args.rules)  # before asking the exchange anything
    picked, top = market_pick(args.symbols)
    symbols = pick_symbols(rest_url, top) if picked else parse_symbols(args.symbols)
    # The collector stores bars only: no mark-price or book stream.
    cfg = FeedConfig(
        symbols=symbols,
        ws_url=ws_url,
        rest_url=rest_url,
        funding=False,
        quotes=False,
        keep_1s_s=keep_1s_seconds(args.keep_1s),
    )
    unknown = [] if picked else unknown_symbols(cfg.rest_url, cfg.symbols)
    if unknown:
        raise ConfigError(f"unknown symbol(s) {', '.join(unknown)} at {cfg.rest_url}")
    open_store(args.db).close()  # an unusable path fails here, in one line, before any thread
    from backend.feed.history import HistoryOptions

    return run_collector(
        cfg,
        args.db,
        args.duration,
        args.flush_interval,
        resume_max_age_s=args.resume_max_age,
        history=HistoryOptions(args.history_bars, args.history_1s),
        rules=args.rules,
    )


def _check_rules_file(path: str):
    """The rules of ``path``, read before any thread starts: a bad file is one line."""
    from backend.alerts.rules import RulesError, load_rules

    try:
        return load_rules(path)
    except RulesError as exc:
        raise ConfigError(str(exc)) from None


def _watch(args) -> int:
    from backend.cli.watch import run_watch
    from backend.engine import EngineOptions

    if not args.rules:
        raise ConfigError("--rules FILE is required (README: Alerts)")
    rules = _check_rules_file(args.rules)
    if args.symbols is not None:
        symbols = parse_symbols(args.symbols)
    else:
        symbols = list(dict.fromkeys(s for r in rules.rules for s in r.symbols if s))
        if not symbols:
            raise ConfigError(f"{args.rules}: no rule names a symbol; give --symbols")
    opts = EngineOptions(
        source=args.source,
        symbols=tuple(symbols),
        ws_url=check_url(args.ws_url, ("ws", "wss"), "--ws-url"),
        rest_url=check_url(args.rest_url, ("http", "https"), "--rest-url"),
        db=args.db,
        history_bars=args.history_bars,
        history_1s_s=args.history_1s,
    )
    return run_watch(opts, args.rules, args.duration)


def _soak(args) -> int:
    from backend.cli.soak import SoakOptions, run_soak

    opts = SoakOptions(
        minutes=args.minutes,
        rate_msgs_per_s=args.rate,
        db=args.db,
        report_every_s=args.report_every,
    )
    stop = threading.Event()
    stop_on_signals(stop)  # SIGTERM / SIGINT end the soak with its last report
    return run_soak(opts, stop=stop)


def _serve(args) -> int:
    from backend.exchange.server import FaultPlan, LocalExchange
    from backend.exchange.sources import Simulator, SourceFormatError, load_files

    faults = FaultPlan(
        drop_every=args.drop_every,
        skip_on_drop=args.skip_on_drop,
        duplicate_every=args.duplicate_every,
        malformed_every=args.malformed_every,
        refuse_connections=args.refuse_connections,
        silence_after=args.silence_after,
        rest_429=args.rest_429,
        rest_418=args.rest_418,
        rest_5xx=args.rest_5xx,
        rest_down=args.rest_down,
        max_connection_age_s=args.max_connection_age,
    )
    history_s = args.history
    if args.source == "simulate":
        source = {
            "simulator": Simulator(parse_symbols(args.symbols), seed=args.seed),
            "deep_days": args.deep_days,
        }
        history_s = 4 * 86_400 if history_s is None else history_s
    else:
        files = check_files(args.files or [str(SHARED_SAMPLE)])
        try:
            source = {"trades": load_files(files)}
        except SourceFormatError as exc:
            raise ConfigError(str(exc)) from exc
    exchange = LocalExchange(
        **source,
        speed=args.speed or None,
        loop=args.cycles != 1,
        cycles=args.cycles or None,
        faults=faults,
        host=args.host,
        port=args.port,
        history_s=history_s or 0.0,
    )
    stop = threading.Event()
    stop_on_signals(stop)  # before the port is printed: whoever reads it may signal at once
    try:
        port = exchange.start()
    except OSError as exc:
        raise ConfigError(str(exc)) from None
    print(f"LOCAL_EXCHANGE_PORT={port}", flush=True)
    print(f"ws-url {exchange.ws_url}  rest-url {exchange.rest_url}", flush=True)
    stop.wait(args.duration)
    exchange.stop()
    return 0
