"""Local alert receivers for the tests: an HTTP receiver (webhooks, and a Telegram-shaped Bot
API stub) and an SMTP server with STARTTLS and login (aiosmtpd), all on 127.0.0.1, each
recording what arrived and when (wall clock)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    path: str
    body: dict | str
    at_s: float  # time.time() of arrival


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpReceiver:
    """Records every POST (path and JSON body); answers ``status`` (200: ``{"ok": true}``, as
    Telegram's Bot API does). ``start()`` / ``stop()`` may be called again on the same port
    (a receiver that goes down and comes back)."""

    def __init__(self, port: int | None = None, status: int = 200, reason: str = "") -> None:
        self.port = port or free_port()
        self.status, self.reason = status, reason
        self.received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                with receiver._lock:
                    receiver.received.append(Received(self.path, body, time.time()))
                answer = b'{"ok": true}'
                self.send_response(receiver.status, receiver.reason or None)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self, rule: str | None = None) -> list[dict]:
        with self._lock:
            out = [r.body for r in self.received if isinstance(r.body, dict)]
        return [b for b in out if rule is None or b.get("rule") == rule]


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[float, object]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append((time.time(), message_from_bytes(envelope.content)))
        return "250 OK"


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 that requires STARTTLS and a login (``user`` /
    ``password``), with a certificate of its own throwaway CA (``ca_file`` for the client)."""

    def __init__(self, tmp_path, user: str, password: str) -> None:
        ca = trustme.CA()
        self.ca_file = str(tmp_path / "smtp-ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        cert = ca.issue_cert("127.0.0.1")
        context = cert.configure_cert  # applied to a server context below
        import ssl

        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context(server_context)
        self.mailbox = _Mailbox()
        self.logins: list[bool] = []

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            self.logins.append(ok)
            return AuthResult(success=ok)

        self.port = free_port()
        self._controller = Controller(
            self.mailbox,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=server_context,
            require_starttls=True,
            auth_require_tls=True,
            authenticator=authenticator,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[tuple[float, object]]:
        return list(self.mailbox.messages)
