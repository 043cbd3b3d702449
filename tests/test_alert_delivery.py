"""Delivery to local receivers: webhook bodies, the Telegram Bot API shape, e-mail over
STARTTLS with a login, the courier's retries, and secrets kept out of every error."""

import logging
import time

import pytest

from backend.alerts.delivery import Courier, DeliveryError, send, webhook_body
from backend.alerts.rules import parse_rules
from backend.storage import open_store
from backend.store.records import AlertRecord
from tests.conftest import wait_for

TOKEN = "123456:bot-token-SECRET-t0k3n"
PASSWORD = "smtp-pass-SECRET-pw"


def alert(bar_ms: int = 1_765_000_000_000, rule: str = "spread wide", channels=()) -> AlertRecord:
    return AlertRecord(
        f"desk|{rule}|{bar_ms}", "desk", rule, "zscore", ("ETHUSDT", "BTCUSDT"), "1s", bar_ms,
        3.25, 3.0, f"{rule}: z 3.25 above 3", 1, {c: {"status": "pending"} for c in channels},
    )  # fmt: skip


def channels(text: str):
    return parse_rules(text).channels


def test_webhook_bodies_carry_the_contract_fields(receivers):
    hook = receivers.http()
    chans = channels(
        f'[[channel]]\nname = "j"\nkind = "webhook"\nurl = "{hook.url}/j"\n'
        f'[[channel]]\nname = "s"\nkind = "webhook"\nurl = "{hook.url}/s"\nstyle = "slack"\n'
        f'[[channel]]\nname = "d"\nkind = "webhook"\nurl = "{hook.url}/d"\nstyle = "discord"\n'
    )
    for c in chans.values():
        send(c, alert(), {})
    by_path = {r.path: r.body for r in hook.received}
    expected = {
        "id": "desk|spread wide|1765000000000", "rule": "spread wide", "kind": "zscore",
        "symbols": ["ETHUSDT", "BTCUSDT"], "timeframe": "1s", "bar_open_time": 1765000000000,
        "value": 3.25, "threshold": 3.0, "message": "spread wide: z 3.25 above 3",
    }  # fmt: skip
    assert by_path["/j"] == expected
    assert by_path["/s"] == {"text": expected["message"], **expected}
    assert by_path["/d"] == {"content": expected["message"], **expected}
    assert webhook_body(chans["j"], alert()) == expected


def test_telegram_bot_api_shape_with_the_token_from_the_environment(receivers):
    stub = receivers.http()
    (tg,) = channels(
        f'[[channel]]\nname = "tg"\nkind = "telegram"\nurl = "{stub.url}"\nchat_id = "-10042"\n'
        'token_env = "TG_TOKEN"\n'
    ).values()
    send(tg, alert(), {"TG_TOKEN": TOKEN})
    (got,) = stub.received
    assert got.path == f"/bot{TOKEN}/sendMessage"
    assert got.body == {"chat_id": "-10042", "text": "spread wide: z 3.25 above 3"}
    with pytest.raises(DeliveryError, match="TG_TOKEN is not set"):
        send(tg, alert(), {})


def test_email_over_starttls_with_a_login(receivers):
    smtp = receivers.smtp("desk@example.com", PASSWORD)
    (mail,) = channels(
        f'[[channel]]\nname = "mail"\nkind = "email"\nsmtp = "{smtp.address}"\n'
        'from = "pairdash@example.com"\nto = ["trader@example.com"]\n'
        f'user_env = "SMTP_USER"\npassword_env = "SMTP_PASS"\nca_file = "{smtp.ca_file}"\n'
    ).values()
    send(mail, alert(), {"SMTP_USER": "desk@example.com", "SMTP_PASS": PASSWORD})
    ((_, msg),) = smtp.messages
    assert smtp.logins == [True]
    assert msg["Subject"] == "spread wide: z 3.25 above 3"
    assert msg["To"] == "trader@example.com"
    assert "bar open: 2025-12-06 05:46:40 UTC" in msg.get_payload()
    # a wrong password is one line, without the password tried
    with pytest.raises(DeliveryError) as err:
        send(mail, alert(), {"SMTP_USER": "desk@example.com", "SMTP_PASS": "wrong-" + PASSWORD})
    assert "mail" in str(err.value) and PASSWORD not in str(err.value)
    # without the CA the server's certificate is refused: never sent in clear
    (untrusted,) = channels(
        f'[[channel]]\nname = "m2"\nkind = "email"\nsmtp = "{smtp.address}"\n'
        'from = "a@example.com"\nto = "b@example.com"\n'
    ).values()
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        send(untrusted, alert(), {})
    assert len(smtp.messages) == 1


def test_a_receiver_echoing_the_token_leaves_no_secret_in_errors_or_logs(receivers, caplog):
    stub = receivers.http(status=500, reason=f"no bot {TOKEN} here")
    (tg,) = channels(
        f'[[channel]]\nname = "tg"\nkind = "telegram"\nurl = "{stub.url}"\nchat_id = "1"\n'
        'token_env = "TG_TOKEN"\n'
    ).values()
    with pytest.raises(DeliveryError) as err:
        send(tg, alert(), {"TG_TOKEN": TOKEN})
    assert "500" in str(err.value) and TOKEN not in str(err.value) and "***" in str(err.value)


def test_the_courier_keeps_an_undelivered_alert_and_sends_it_when_the_receiver_is_back(
    receivers, tmp_path, caplog
):
    hook = receivers.http()
    port = hook.port
    hook.stop()  # down
    chans = channels(f'[[channel]]\nname = "desk"\nkind = "webhook"\nurl = "{hook.url}/h"\n')
    db = open_store(tmp_path / "a.db")
    first, second = alert(1000, "a", ["desk"]), alert(2000, "b", ["desk"])
    db.record_alerts("desk", [first, second], {})
    courier = Courier(db, "desk", chans, {}, base_backoff_s=0.2, max_backoff_s=0.5)
    caplog.set_level(logging.WARNING)
    courier.start()
    try:
        wait_for(lambda: db.alerts("desk")[-1].deliveries["desk"].get("attempts", 0) >= 2, 10,
                 "retries while the receiver is down")  # fmt: skip
        pending = {a.rule: a.deliveries["desk"] for a in db.pending_alerts("desk")}
        assert set(pending) == {"a", "b"} and "Connection refused" in pending["a"]["error"]
        assert pending["b"].get("attempts", 0) == 0  # the older alert goes first; the channel waits
        hook.port = port
        hook.start()  # back
        wait_for(lambda: not db.pending_alerts("desk"), 10, "delivery once it is back")
    finally:
        courier.stop()
    assert [b["rule"] for b in hook.bodies()] == ["a", "b"]  # in order, once each
    assert all(a.deliveries["desk"]["status"] == "sent" for a in db.alerts("desk"))
    assert any("not delivered" in r.getMessage() for r in caplog.records)
    db.close()
    time.sleep(0)  # nothing left running: the courier joined above
    assert not courier.is_alive()


def test_a_webhook_url_that_is_a_secret_comes_from_the_environment(receivers):
    hook = receivers.http()
    secret_url = f"{hook.url}/services/T0/B0/SECRET-path"
    (chan,) = channels('[[channel]]\nname = "slack"\nkind = "webhook"\nurl_env = "SLACK_HOOK"\n'
                       'style = "slack"\n').values()  # fmt: skip
    send(chan, alert(), {"SLACK_HOOK": secret_url})
    assert hook.received[0].path == "/services/T0/B0/SECRET-path"
    assert hook.received[0].body["text"] == "spread wide: z 3.25 above 3"
    hook.stop()
    with pytest.raises(DeliveryError) as err:
        send(chan, alert(), {"SLACK_HOOK": secret_url})
    assert "SECRET" not in str(err.value) and "slack" in str(err.value)
    with pytest.raises(DeliveryError, match="SLACK_HOOK is not set"):
        send(chan, alert(), {})
