"""Alert rules and channels from one TOML file (stdlib ``tomllib``), read the same way by the page
and by the headless watcher. The contract (keys may be added; these stay)::

    [[channel]]
    name = "desk"
    kind = "webhook"            # webhook | telegram | email
    url = "http://127.0.0.1:9000/hook"

    [[rule]]
    name = "btc above"
    kind = "price"              # price | volume | zscore | coint | beta_drift | funding | feed
    symbol = "BTCUSDT"          # zscore/coint/beta_drift: y = "...", x = "..."
    timeframe = "1s"
    above = 43000.0             # fires when a closed bar's close crosses above (below = … likewise)
    cooldown_s = 0
    channels = ["desk"]

Secrets never live in the file: a channel names the environment variable holding its token or
password (``token_env``, ``password_env``). A bad file is one ``RulesError`` line naming the
file, the line and the key.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from backend.store.timeframes import TIMEFRAMES_MS

CHANNEL_KINDS = ("webhook", "telegram", "email")
RULE_KINDS = ("price", "volume", "zscore", "coint", "beta_drift", "funding", "feed", "halflife",
              "carry")  # fmt: skip
PAIR_KINDS = ("zscore", "coint", "beta_drift", "halflife", "carry")
WEBHOOK_STYLES = ("json", "slack", "discord")
MAX_RULES_BYTES = 1 << 20
_SYMBOL = re.compile(r"[A-Z0-9]{2,30}")
# What a rule's ``message`` template may name, and the message of a rule that gives none.
MESSAGE_FIELDS = ("rule", "kind", "symbols", "timeframe", "value", "threshold", "side", "time")
DEFAULT_MESSAGE = (
    "{rule}: {kind} of {symbols} {side} {threshold:g} ({value:.6g}) on the {timeframe} bar of "
    "{time}"
)


class RulesError(ValueError):
    """A rules file that cannot be used, in one line: ``FILE:LINE: key 'k': what is wrong``."""


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str  # webhook | telegram | email
    url: str = ""  # webhook: the POST target; telegram: the Bot API base (default Telegram's)
    style: str = "json"  # webhook body: json | slack | discord
    chat_id: str = ""  # telegram
    token_env: str = ""  # telegram: the variable holding the bot token
    smtp: str = ""  # email: host:port (STARTTLS)
    sender: str = ""
    to: tuple[str, ...] = ()
    user_env: str = ""  # email: the variables holding the login
    password_env: str = ""
    url_env: str = ""  # webhook: the variable holding a URL that is a secret itself
    ca_file: str = ""  # email: a CA bundle to trust (a private SMTP server); empty: the system's


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    timeframe: str = "1m"
    symbol: str = ""  # price, volume, funding, feed
    y: str = ""  # zscore, coint, beta_drift
    x: str = ""
    above: float | None = None
    below: float | None = None
    cooldown_s: float = 0.0
    channels: tuple[str, ...] = ()
    message: str = ""  # a template (MESSAGE_FIELDS); empty: DEFAULT_MESSAGE
    extra: dict = field(default_factory=dict)  # further keys, kept for the kinds that use them

    @property
    def symbols(self) -> tuple[str, ...]:
        if self.kind in PAIR_KINDS:
            return self.y, self.x
        return (self.symbol,) if self.symbol else ()


@dataclass(frozen=True)
class RuleSet:
    channels: dict[str, Channel]
    rules: tuple[Rule, ...]
    name: str = ""  # the top-level ``ruleset = "..."``; empty: the file's name without .toml


def load_rules(path: str | Path) -> RuleSet:
    """The rules and channels of ``path``; ``RulesError`` (one line) for anything wrong."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_RULES_BYTES:
            raise RulesError(f"{p}: larger than {MAX_RULES_BYTES >> 10} KB")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{p}: cannot read it ({exc.__class__.__name__})") from None
    rules = parse_rules(text, str(p))
    return rules if rules.name else replace(rules, name=p.stem)


def parse_rules(text: str, where: str = "rules") -> RuleSet:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise RulesError(f"{where}:{line[1] if line else '?'}: not TOML ({exc})") from None
    locate = _Locator(text, where)
    unknown = sorted(set(doc) - {"channel", "rule", "ruleset"})
    if unknown:
        raise locate.error(unknown[0], None, "unknown table (expected [[channel]] and [[rule]])")
    name = doc.get("ruleset", "")
    if not isinstance(name, str):
        raise locate.error("ruleset", None, "the rule set's name, a string")
    channels: dict[str, Channel] = {}
    for i, raw in enumerate(_tables(doc, "channel", locate)):
        ch = _channel(raw, locate.at("channel", i))
        if ch.name in channels:
            raise locate.at("channel", i).error("name", f"a second channel named {ch.name!r}")
        channels[ch.name] = ch
    rules, names = [], set()
    for i, raw in enumerate(_tables(doc, "rule", locate)):
        rule = _rule(raw, locate.at("rule", i), channels)
        if rule.name in names:
            raise locate.at("rule", i).error("name", f"a second rule named {rule.name!r}")
        names.add(rule.name)
        rules.append(rule)
    return RuleSet(channels, tuple(rules), name.strip())


def _tables(doc: dict, key: str, locate: _Locator) -> list[dict]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise locate.error(key, None, f"write it as [[{key}]] tables")
    return value


def _channel(raw: dict, at: _Located) -> Channel:
    name = at.text(raw, "name", required=True)
    kind = at.choice(raw, "kind", CHANNEL_KINDS)
    for secret in ("token", "password", "secret"):
        if secret in raw:
            raise at.error(secret, f"no secret in the file: name its variable ({secret}_env)")
    url_env = at.text(raw, "url_env")  # a webhook URL that is itself a secret (Slack, Discord)
    url = at.text(raw, "url", required=kind == "webhook" and not url_env)
    if url and not re.match(r"https?://[^\s/]+", url):
        raise at.error("url", f"not an http(s) URL: {url!r}")
    extra = {}
    if kind == "telegram":
        extra = {"chat_id": at.text(raw, "chat_id", required=True),
                 "token_env": at.text(raw, "token_env", required=True)}  # fmt: skip
    if kind == "email":
        to = raw.get("to", [])
        if isinstance(to, str):
            to = [to]
        if not to or not all(isinstance(t, str) and "@" in t for t in to):
            raise at.error("to", "one address or a list of addresses")
        if not re.fullmatch(r"[^\s:]+:\d{1,5}", at.text(raw, "smtp", required=True)):
            raise at.error(
                "smtp", "host:port of the SMTP server (STARTTLS), e.g. smtp.example.com:587"
            )
        extra = {"smtp": at.text(raw, "smtp", required=True),
                 "sender": at.text(raw, "from", required=True), "to": tuple(to),
                 "user_env": at.text(raw, "user_env"),
                 "password_env": at.text(raw, "password_env"),
                 "ca_file": at.text(raw, "ca_file")}  # fmt: skip
    style = at.choice(raw, "style", WEBHOOK_STYLES, default="json")
    return Channel(name, kind, url, style, url_env=url_env, **extra)


def _rule(raw: dict, at: _Located, channels: dict[str, Channel]) -> Rule:
    name = at.text(raw, "name", required=True)
    kind = at.choice(raw, "kind", RULE_KINDS)
    timeframe = at.choice(raw, "timeframe", tuple(TIMEFRAMES_MS), default="1m")
    symbol = y = x = ""
    if kind in PAIR_KINDS:
        y, x = at.symbol(raw, "y"), at.symbol(raw, "x")
        if y == x:
            raise at.error("x", "y and x must be two different symbols")
    elif kind != "feed" or "symbol" in raw:
        symbol = at.symbol(raw, "symbol")
    above, below = at.number(raw, "above"), at.number(raw, "below")
    if kind != "feed" and above is None and below is None:
        raise at.error("above", "give a level: above = … or below = …")
    cooldown = at.number(raw, "cooldown_s") or 0.0
    if cooldown < 0:
        raise at.error("cooldown_s", "must be >= 0 seconds")
    wanted = raw.get("channels", [])
    if not isinstance(wanted, list) or not all(isinstance(c, str) for c in wanted):
        raise at.error("channels", "a list of channel names")
    missing = [c for c in wanted if c not in channels]
    if missing:
        raise at.error("channels", f"no channel named {missing[0]!r}")
    for key in ("lookback", "window", "bars"):  # windows in bars, where a kind takes them
        if key in raw:
            at.whole(raw, key, 2, 100_000)
    if "side" in raw:
        at.choice(raw, "side", ("long", "short"))
    for key in ("gap", "log_prices"):
        if key in raw and not isinstance(raw[key], bool):
            raise at.error(key, f"{raw[key]!r}: true or false")
    if "method" in raw:
        at.text(raw, "method", required=True)
    message = at.text(raw, "message")
    try:
        message.format_map({f: 1.0 if f in ("value", "threshold") else f for f in MESSAGE_FIELDS})
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise at.error("message", f"bad template ({exc!r}); it may name {MESSAGE_FIELDS}") from None
    known = {"name", "kind", "timeframe", "symbol", "y", "x", "above", "below", "cooldown_s",
             "channels", "message"}  # fmt: skip
    extra = {k: v for k, v in raw.items() if k not in known}
    return Rule(name, kind, timeframe, symbol, y, x, above, below, cooldown, tuple(wanted),
                message, extra)  # fmt: skip


class _Locator:
    """Finds the line a table or key of the file is on, for one-line errors."""

    def __init__(self, text: str, where: str) -> None:
        self.lines = text.splitlines()
        self.where = where
        self.starts: dict[str, list[int]] = {}
        for n, line in enumerate(self.lines, 1):
            m = re.match(r"\s*\[\[\s*([A-Za-z_]+)\s*\]\]", line)
            if m:
                self.starts.setdefault(m[1], []).append(n)

    def at(self, table: str, index: int) -> _Located:
        first = self.starts.get(table, [1])
        start = first[index] if index < len(first) else 1
        following = [s for t in self.starts.values() for s in t if s > start]
        end = min(following, default=len(self.lines) + 1)
        return _Located(self, start, end)

    def error(self, key: str, line: int | None, what: str) -> RulesError:
        if line is None:
            line = next(
                (n for n, t in enumerate(self.lines, 1) if re.match(rf"\s*\[*\s*{key}\b", t)), 1
            )
        return RulesError(f"{self.where}:{line}: key '{key}': {what}")


@dataclass
class _Located:
    """One [[table]] of the file: its lines, and checks that name them."""

    locator: _Locator
    start: int
    end: int

    def line_of(self, key: str) -> int:
        for n in range(self.start, self.end):
            if re.match(rf"\s*{re.escape(key)}\s*=", self.locator.lines[n - 1]):
                return n
        return self.start

    def error(self, key: str, what: str) -> RulesError:
        return self.locator.error(key, self.line_of(key), what)

    def text(self, raw: dict, key: str, required: bool = False) -> str:
        value = raw.get(key, "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.error(key, "a non-empty string" if required else "a string")
        return value.strip()

    def choice(self, raw: dict, key: str, options: tuple, default: str | None = None) -> str:
        value = raw.get(key, default)
        if value not in options:
            raise self.error(key, f"{value!r}: choose one of {', '.join(options)}")
        return value

    def symbol(self, raw: dict, key: str) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not _SYMBOL.fullmatch(value.strip().upper()):
            raise self.error(key, f"{value!r}: a symbol such as BTCUSDT")
        return value.strip().upper()

    def whole(self, raw: dict, key: str, lo: int, hi: int) -> int:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(key, f"{value!r}: a whole number of bars from {lo} to {hi:,}")
        return value

    def number(self, raw: dict, key: str) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"{value!r}: a number")
        if not math.isfinite(value):
            raise self.error(key, f"{value!r}: a finite number")
        return float(value)


def rule_toml(fields: dict) -> str:
    """One ``[[rule]]`` table of ``fields`` (strings, finite numbers, lists of strings), as the
    page's form writes it; ``parse_rules`` checks it with the rest of the file."""
    lines = ["[[rule]]"]
    for key, value in fields.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            if not math.isfinite(value):
                raise RulesError(f"key '{key}': {value!r} is not a finite number")
            text = repr(float(value)) if isinstance(value, float) else str(value)
        elif isinstance(value, list | tuple):
            text = "[" + ", ".join(_toml_string(str(v)) for v in value) + "]"
        else:
            text = _toml_string(str(value))
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; no control characters left raw)."""
    import json

    return json.dumps(text, ensure_ascii=False)
