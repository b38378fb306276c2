"""Real receivers for outgoing messages: an HTTP server for webhooks and an SMTP server.

Both run in this process on 127.0.0.1 with a free port, record what they receive with the
moment it arrived (monotonic, for latencies, and wall time), and can be told to misbehave.
Tests and benchmarks share them.

    with WebhookReceiver() as hooks:
        hooks.respond(503, times=2, headers={"Retry-After": "7"})
        ... send to hooks.url("/hook") ...
        first, second, third = hooks.wait_for(3)
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port nobody listens on right now (for servers that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Recorder(Generic[T]):
    """A thread-safe list that can be waited on."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._changed = threading.Condition()

    def add(self, item: T) -> None:
        with self._changed:
            self._items.append(item)
            self._changed.notify_all()

    def items(self) -> list[T]:
        with self._changed:
            return list(self._items)

    def wait_for(self, count: int, timeout: float) -> list[T]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._items) >= count, timeout):
                raise TimeoutError(f"{len(self._items)} received, {count} expected")
            return list(self._items)

    def clear(self) -> None:
        with self._changed:
            self._items.clear()


# --- webhooks ---


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    monotonic: float
    received_at: datetime
    status: int  # what the receiver answered

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class WebhookReceiver:
    """A threaded HTTP server that answers 200 unless told otherwise."""

    def __init__(self) -> None:
        self._received: _Recorder[ReceivedRequest] = _Recorder()
        self._script: deque[Reply] = deque()
        self._script_lock = threading.Lock()
        self.default = Reply()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real webhook receivers do

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def _next_reply(self) -> Reply:
        with self._script_lock:
            return self._script.popleft() if self._script else self.default

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        arrived, wall = time.monotonic(), datetime.now(UTC)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        reply = self._next_reply()
        headers = {name.lower(): value for name, value in request.headers.items()}
        # Recorded on arrival: a request the client gave up on (timeout) still arrived.
        self._received.add(
            ReceivedRequest(
                request.command, request.path, headers, body, arrived, wall, reply.status
            )
        )
        _answer(request, reply)

    def respond(
        self,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: str = "",
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests with this status (after `delay` seconds)."""
        with self._script_lock:
            self._script.extend([Reply(status, dict(headers or {}), body, delay)] * times)

    def delay(self, seconds: float, *, times: int = 1) -> None:
        """Answer the next `times` requests with 200, but only after `seconds`."""
        self.respond(200, times=times, delay=seconds)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self._received.items()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Return the requests once at least `count` arrived; TimeoutError otherwise."""
        return self._received.wait_for(count, timeout)

    def clear(self) -> None:
        self._received.clear()

    def start(self) -> Self:
        self._thread = threading.Thread(
            # A short poll interval keeps stop() (and so each test's teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="webhook-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- email ---


@dataclass(frozen=True)
class ReceivedMail:
    message: Message
    mail_from: str
    rcpt_tos: list[str]
    tls: bool
    login: str | None
    monotonic: float
    received_at: datetime


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        arrived, wall = time.monotonic(), datetime.now(UTC)
        reply = self.receiver._next_reply()
        if reply is not None:
            return reply
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.receiver._received.add(
            ReceivedMail(
                message, str(envelope.mail_from), list(envelope.rcpt_tos), tls, login, arrived, wall
            )
        )
        return "250 OK queued"


class SmtpReceiver:
    """An aiosmtpd server: plain, STARTTLS (`tls="starttls"`) or implicit TLS (`tls="ssl"`),
    optionally requiring AUTH with `users={"login": "password"}`.

    TLS uses a throwaway CA from trustme; point clients at `ca_file`.
    """

    def __init__(self, *, tls: str = "none", users: Mapping[str, str] | None = None) -> None:
        self.tls = tls
        self.users = dict(users or {})
        self._received: _Recorder[ReceivedMail] = _Recorder()
        self._script: deque[str] = deque()
        self._script_lock = threading.Lock()
        self._tmp = TemporaryDirectory(prefix="smtp-receiver-")
        self.ca = trustme.CA()
        self.ca_file = str(Path(self._tmp.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if tls == "ssl":
            kwargs["ssl_context"] = server_context
        elif tls == "starttls":
            kwargs["tls_context"] = server_context
            kwargs["require_starttls"] = True
        if self.users:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = tls != "none"
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **kwargs
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.users.get(data.login.decode()) == data.password.decode()
        )
        if ok:
            return AuthResult(success=True, auth_data=data)
        # handled=False: aiosmtpd itself answers 535.
        return AuthResult(success=False, handled=False)

    def _next_reply(self) -> str | None:
        with self._script_lock:
            return self._script.popleft() if self._script else None

    def reject(self, reply: str, *, times: int = 1) -> None:
        """Answer DATA of the next `times` messages with `reply` (e.g. "451 4.3.0 busy")."""
        with self._script_lock:
            self._script.extend([reply] * times)

    @property
    def messages(self) -> list[ReceivedMail]:
        return self._received.items()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Return the mails once at least `count` arrived; TimeoutError otherwise."""
        return self._received.wait_for(count, timeout)

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Return `channels.email` settings that reach this server."""
        raw: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "from": "Tocsin <tocsin@example.com>",
            "tls": self.tls,
            "ca_file": self.ca_file,
            "timeout": 5,
        }
        raw.update(overrides)
        return raw

    def start(self) -> Self:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- signed webhooks ---


@dataclass(frozen=True)
class Verified:
    """One request to a SigningWebhookReceiver and what its signature check found."""

    request: ReceivedRequest
    ok: bool
    reason: str


class SigningWebhookReceiver(WebhookReceiver):
    """A webhook receiver that checks Tocsin's signature as a real receiver would: the HMAC
    of the timestamp and the raw body under `secret`, and a timestamp no further than
    `tolerance` seconds from its own clock. A request that fails is answered 401 and
    recorded with why (in `verified`); scripted replies apply to the others.
    """

    def __init__(
        self, secret: str, *, tolerance: float = 300, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__()
        self.secret = secret
        self.tolerance = tolerance
        self.clock = clock
        self._checks: _Recorder[Verified] = _Recorder()

    def check(self, headers: Mapping[str, str], body: bytes) -> tuple[bool, str]:
        """Return whether a request's signature holds, and why not."""
        from tocsin.notify.signing import verify

        timestamp = headers.get("x-tocsin-timestamp")
        signature = headers.get("x-tocsin-signature")
        if not timestamp or not signature:
            return False, "unsigned"
        if verify(self.secret, timestamp, body, signature, self.tolerance, now=self.clock()):
            return True, ""
        fresh = verify(self.secret, timestamp, body, signature, float("inf"))
        return False, "stale timestamp" if fresh else "bad signature"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        arrived, wall = time.monotonic(), datetime.now(UTC)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in request.headers.items()}
        ok, reason = self.check(headers, body)
        reply = self._next_reply() if ok else Reply(401, body=f"signature refused: {reason}")
        received = ReceivedRequest(
            request.command, request.path, headers, body, arrived, wall, reply.status
        )
        self._checks.add(Verified(received, ok, reason))
        self._received.add(received)
        _answer(request, reply)

    @property
    def verified(self) -> list[Verified]:
        return self._checks.items()


def _answer(request: BaseHTTPRequestHandler, reply: Reply) -> None:
    """Send `reply` (after its delay); a client that hung up meanwhile is not an error."""
    if reply.delay:
        time.sleep(reply.delay)
    payload = reply.body.encode()
    try:
        request.send_response(reply.status)
        for name, value in reply.headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
    except OSError:
        pass  # the client hung up (it timed out)
