"""The alert rules file (backend/alerts/rules.py): the contract's example reads as written; a bad
file is one line naming its line and key; secrets are names of variables, never values."""

from __future__ import annotations

import pytest

from backend.alerts.rules import RulesError, load_rules, parse_rules

CONTRACT = """\
[[channel]]
name = "desk"
kind = "webhook"            # webhook | telegram | email
url = "http://127.0.0.1:9000/hook"

[[rule]]
name = "btc above"
kind = "price"              # price | volume | zscore | coint | beta_drift | funding | feed
symbol = "BTCUSDT"          # zscore/coint/beta_drift: y = "...", x = "..."
timeframe = "1s"
above = 43000.0             # fires when a closed bar's close crosses above (below = ... likewise)
cooldown_s = 0
channels = ["desk"]
"""

MORE = """
[[channel]]
name = "phone"
kind = "telegram"
chat_id = "12345"
token_env = "PAIRDASH_TELEGRAM_TOKEN"

[[channel]]
name = "mail"
kind = "email"
smtp = "127.0.0.1:2525"
from = "alerts@desk.example"
to = ["trader@desk.example"]
password_env = "PAIRDASH_SMTP_PASSWORD"

[[rule]]
name = "eth/btc z"
kind = "zscore"
y = "ethusdt"
x = "BTCUSDT"
timeframe = "1m"
above = 2.0
below = -2.0
cooldown_s = 60
channels = ["desk", "phone", "mail"]
message = "{rule}: z {value:+.2f} on {timeframe}"
method = "ols"
window = 60
"""


def test_the_contract_example_reads_as_written(tmp_path):
    path = tmp_path / "alerts.toml"
    path.write_text(CONTRACT + MORE)
    rules = load_rules(path)
    assert list(rules.channels) == ["desk", "phone", "mail"]
    desk = rules.channels["desk"]
    assert (desk.kind, desk.url, desk.style) == ("webhook", "http://127.0.0.1:9000/hook", "json")
    assert rules.channels["phone"].token_env == "PAIRDASH_TELEGRAM_TOKEN"
    assert rules.channels["mail"].to == ("trader@desk.example",)
    btc, z = rules.rules
    assert (btc.kind, btc.symbol, btc.timeframe, btc.above, btc.below) == (
        "price", "BTCUSDT", "1s", 43000.0, None)  # fmt: skip
    assert btc.cooldown_s == 0.0 and btc.channels == ("desk",) and btc.symbols == ("BTCUSDT",)
    assert z.symbols == ("ETHUSDT", "BTCUSDT") and (z.above, z.below) == (2.0, -2.0)
    assert z.extra == {"method": "ols", "window": 60}  # keys added freely are kept


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("change", "key", "says"),
    [
        (('kind = "price"', 'kind = "pricey"'), "kind", "choose one of price, volume"),
        (('timeframe = "1s"', 'timeframe = "2m"'), "timeframe", "choose one of 1s, 1m"),
        (('symbol = "BTCUSDT"', 'symbol = "BTC USDT"'), "symbol", "a symbol such as BTCUSDT"),
        (("above = 43000.0", "above = nan"), "above", "a finite number"),
        (("above = 43000.0", 'above = "high"'), "above", "a number"),
        (("cooldown_s = 0", "cooldown_s = -5"), "cooldown_s", "must be >= 0"),
        (('channels = ["desk"]', 'channels = ["pager"]'), "channels", "no channel named 'pager'"),
        (('url = "http://127.0.0.1:9000/hook"', 'url = "ftp://x"'), "url", "not an http(s) URL"),
        (('kind = "webhook"', 'kind = "pigeon"'), "kind", "choose one of webhook, telegram"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_line_and_the_key(change, key, says):
    text = CONTRACT.replace(*change)
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "alerts.toml")
    message = str(caught.value)
    assert message.startswith(f"alerts.toml:{line_of(text, change[1])}: key '{key}':"), message
    assert says in message and "\n" not in message


def test_missing_keys_broken_toml_and_secrets_are_named():
    # A missing key: the line of its table.
    with pytest.raises(RulesError, match=r"alerts.toml:6: key 'above': give a level"):
        parse_rules(CONTRACT.replace("above = 43000.0", ""), "alerts.toml")
    with pytest.raises(RulesError, match=r"alerts.toml:3: not TOML"):
        parse_rules('[[rule]]\nname = "x"\nkind = \n', "alerts.toml")
    text = CONTRACT.replace(
        'url = "http://127.0.0.1:9000/hook"', 'url = "http://h/x"\ntoken = "s3cr3t"'
    )
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "alerts.toml")
    assert "token_env" in str(caught.value) and "s3cr3t" not in str(caught.value)
    with pytest.raises(RulesError, match="a second rule named 'btc above'"):
        parse_rules(CONTRACT + CONTRACT.split("\n\n", 1)[1], "alerts.toml")
    with pytest.raises(RulesError, match="key 'x': y and x must be two different"):
        parse_rules(CONTRACT + MORE.replace('y = "ethusdt"', 'y = "BTCUSDT"'), "alerts.toml")


def test_an_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(RulesError, match="cannot read it"):
        load_rules(tmp_path / "missing.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00rule")
    with pytest.raises(RulesError, match="cannot read it"):
        load_rules(tmp_path / "bin.toml")


@pytest.mark.parametrize("value", ["1", "[60]", "6.5", '"60"', "true", "1000000"])
def test_windows_in_bars_are_whole_numbers_in_range(value):
    text = (
        '[[rule]]\nname = "z"\nkind = "zscore"\ny = "ETHUSDT"\nx = "BTCUSDT"\nabove = 2.0\n'
        f"window = {value}\n"
    )
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "alerts.toml")
    assert str(caught.value).startswith("alerts.toml:7: key 'window': ")
    assert "a whole number of bars from 2 to 100,000" in str(caught.value)
