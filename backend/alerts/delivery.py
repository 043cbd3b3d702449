"""Delivering alerts: one webhook POST, one Telegram message or one e-mail per alert and channel,
and the courier that keeps trying until each is delivered.

Secrets (a bot token, an SMTP password) are read from the environment when a message is sent,
and never written anywhere: not in a log line, an error, the store or the page. Errors are
one line naming the channel; any secret is blanked out of them first, as a library may echo
a URL (Telegram's carries the token).

The courier reads the alerts still to deliver from the store (``pending_alerts``), so an alert
recorded while a receiver is down, or before a restart, is sent when the receiver is back:
retries back off from ``base_backoff_s`` doubling to ``max_backoff_s``, per channel and in
the order the alerts fired. A delivery is marked sent only after the receiver accepted it (a
2xx answer, the SMTP server's acceptance); the alert's ``id`` travels with it, so a receiver
can drop the one repeat a crash between the two would cause.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from email.message import EmailMessage

from backend.alerts.rules import Channel
from backend.store.records import AlertRecord

log = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"
SEND_TIMEOUT_S = 5.0


class DeliveryError(RuntimeError):
    """A delivery that failed, in one line naming the channel (no secret in it)."""


def webhook_body(channel: Channel, alert: AlertRecord) -> dict:
    """The JSON of one webhook POST: the alert's fields (``json``), or Slack's ``text`` /
    Discord's ``content`` message with the same fields beside it."""
    body = {
        "id": alert.id,
        "rule": alert.rule,
        "kind": alert.kind,
        "symbols": list(alert.symbols),
        "timeframe": alert.timeframe,
        "bar_open_time": alert.bar_open_time_ms,
        "value": _finite(alert.value),
        "threshold": _finite(alert.threshold),
        "message": alert.message,
    }
    if channel.style == "slack":
        return {"text": alert.message, **body}
    if channel.style == "discord":
        return {"content": alert.message, **body}
    return body


def send(channel: Channel, alert: AlertRecord, env: Mapping[str, str] | None = None) -> None:
    """Deliver ``alert`` on ``channel`` once; ``DeliveryError`` (one line) if it was not."""
    env = os.environ if env is None else env
    secrets = _secrets(channel, env)
    try:
        if channel.kind == "webhook":
            url = _needed(env, channel.url_env, channel) if channel.url_env else channel.url
            _post(url, webhook_body(channel, alert))
        elif channel.kind == "telegram":
            token = _needed(env, channel.token_env, channel)
            base = (channel.url or TELEGRAM_API).rstrip("/")
            _post(f"{base}/bot{token}/sendMessage", {"chat_id": channel.chat_id,
                                                      "text": alert.message})  # fmt: skip
        else:
            _email(channel, alert, env)
    except DeliveryError:
        raise
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        text = " ".join(f"{exc.__class__.__name__}: {exc}".split())
        for secret in secrets:
            text = text.replace(secret, "***")
        raise DeliveryError(f"channel {channel.name!r} ({channel.kind}): {text}") from None


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "pairdash-alerts"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:  # noqa: S310
        response.read(1 << 16)


def _email(channel: Channel, alert: AlertRecord, env: Mapping[str, str]) -> None:
    host, _, port = channel.smtp.rpartition(":")
    msg = EmailMessage()
    msg["Subject"] = alert.message[:150]
    msg["From"] = channel.sender
    msg["To"] = ", ".join(channel.to)
    msg.set_content(_email_text(alert))
    context = ssl.create_default_context(cafile=channel.ca_file or None)
    with smtplib.SMTP(host, int(port), timeout=SEND_TIMEOUT_S) as smtp:
        smtp.starttls(context=context)  # never in clear: a server without STARTTLS refuses
        if channel.user_env:
            user = _needed(env, channel.user_env, channel)
            smtp.login(user, _needed(env, channel.password_env, channel))
        smtp.send_message(msg)


def _email_text(alert: AlertRecord) -> str:
    bar = dt.datetime.fromtimestamp(alert.bar_open_time_ms / 1000, dt.UTC)
    return (
        f"{alert.message}\n\nrule: {alert.rule} ({alert.kind})\nsymbols: "
        f"{', '.join(alert.symbols)}\ntimeframe: {alert.timeframe}\nbar open: "
        f"{bar:%Y-%m-%d %H:%M:%S} UTC\nvalue: {alert.value:.6g}\nthreshold: "
        f"{alert.threshold:g}\nid: {alert.id}\n"
    )


def _needed(env: Mapping[str, str], name: str, channel: Channel) -> str:
    value = env.get(name, "") if name else ""
    if not value:
        raise DeliveryError(
            f"channel {channel.name!r} ({channel.kind}): environment variable {name or '?'} "
            "is not set"
        )
    return value


def _secrets(channel: Channel, env: Mapping[str, str]) -> list[str]:
    names = (channel.token_env, channel.password_env, channel.user_env, channel.url_env)
    return sorted({env[n] for n in names if n and env.get(n)}, key=len, reverse=True)


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


class Courier(threading.Thread):
    """Delivers the store's pending alerts of one rule set until each is sent; ``wake()``
    after recording new ones, ``stop()`` to end (bounded by one send's timeout)."""

    def __init__(
        self,
        store,
        ruleset: str,
        channels: Mapping[str, Channel],
        env: Mapping[str, str] | None = None,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 10.0,
        sender: Callable[[Channel, AlertRecord, Mapping[str, str]], None] = send,
    ) -> None:
        super().__init__(name=f"alerts-courier-{ruleset}", daemon=True)
        self._store, self._ruleset = store, ruleset
        self.channels = dict(channels)  # replaced whole when the rules are reloaded
        self._env = os.environ if env is None else env
        self._base, self._max = base_backoff_s, max_backoff_s
        self._send = sender
        self._wake, self._halt = threading.Event(), threading.Event()
        self._retry_at: dict[str, float] = {}  # channel -> monotonic time of its next try
        self.sent = 0
        self.failing: dict[str, str] = {}  # channel -> its last error, until it delivers again

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()
        if self.is_alive():
            self.join(SEND_TIMEOUT_S * 3)

    def run(self) -> None:
        while not self._halt.is_set():
            self._wake.clear()
            try:
                self.deliver_pending()
            except Exception as exc:  # a store that is down: try again on the next round
                log.warning("alert deliveries not read: %s", exc)
            waits = [t - time.monotonic() for t in self._retry_at.values()]
            self._wake.wait(max(0.05, min([1.0, *waits])))

    def deliver_pending(self) -> None:
        """One round: every pending delivery whose channel is due, oldest alert first; a
        channel that fails waits for its backoff before its next alert."""
        failed: set[str] = set()
        for alert in self._store.pending_alerts(self._ruleset):
            for name in alert.pending:
                if self._halt.is_set():
                    return
                if name in failed or self._retry_at.get(name, 0.0) > time.monotonic():
                    continue
                if not self._attempt(alert, name):
                    failed.add(name)

    def _attempt(self, alert: AlertRecord, name: str) -> bool:
        state = dict(alert.deliveries.get(name, {}))
        attempts = int(state.get("attempts", 0)) + 1
        channel = self.channels.get(name)
        try:
            if channel is None:
                raise DeliveryError(f"channel {name!r} is no longer in the rules file")
            self._send(channel, alert, self._env)
        except DeliveryError as exc:
            delay = min(self._max, self._base * 2 ** min(attempts - 1, 16))
            self._retry_at[name] = time.monotonic() + delay
            self.failing[name] = str(exc)
            state.update(status="pending", attempts=attempts, error=str(exc))
            log.warning("alert %r not delivered (try %d, next in %.1f s): %s",
                        alert.rule, attempts, delay, exc)  # fmt: skip
            self._save(alert, name, state)
            return False
        self._retry_at.pop(name, None)
        self.failing.pop(name, None)
        state.update(status="sent", attempts=attempts, error=None,
                     at_ms=int(time.time() * 1000))  # fmt: skip
        self._save(alert, name, state)
        self.sent += 1
        log.info("alert %r sent to %s", alert.rule, name)
        return True

    def _save(self, alert: AlertRecord, name: str, state: dict) -> None:
        alert.deliveries[name] = state  # this round's copy, read again from the store next round
        self._store.set_deliveries(alert.id, alert.deliveries)
