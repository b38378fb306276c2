"""A small threaded HTTP server the vendor mocks build on: records every request, answers
through a handler, and can be told to fail the next requests of a kind."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from tests.receivers import _Recorder


@dataclass(frozen=True)
class Call:
    """One request as the mock saw it, and what it answered."""

    method: str  # the API method or resource ("chat.postMessage", "Messages")
    args: dict[str, Any]
    headers: dict[str, str]  # names lower-cased
    status: int
    answer: Any


@dataclass(frozen=True)
class Failure:
    """A scripted answer: status, JSON (or raw text) body, headers, delay."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    verb: str
    path: str
    headers: dict[str, str]
    args: dict[str, Any]


class MockServer:
    """Subclasses implement `route(request) -> (method name, status, JSON answer, headers)`."""

    thread_name = "mock-api"

    def __init__(self) -> None:
        self.calls_recorder: _Recorder[Call] = _Recorder()
        self._script: dict[str, deque[Failure]] = {}
        self.lock = threading.RLock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server._handle(self)

            def do_POST(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port: int = self._server.server_address[1]

    # --- to override ---

    def method_of(self, request: Request) -> str:
        raise NotImplementedError

    def route(self, method: str, request: Request) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    # --- scripting ---

    def fail(
        self,
        method: str,
        status: int,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` calls of `method` ("*": any) with this instead."""
        with self.lock:
            queue = self._script.setdefault(method, deque())
            queue.extend([Failure(status, body, dict(headers or {}), delay)] * times)

    def _scripted(self, method: str) -> Failure | None:
        with self.lock:
            for key in (method, "*"):
                queue = self._script.get(key)
                if queue:
                    return queue.popleft()
        return None

    # --- recording ---

    @property
    def calls(self) -> list[Call]:
        return self.calls_recorder.items()

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Call]:
        return self.calls_recorder.wait_for(count, timeout)

    # --- serving ---

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        parts = urlsplit(handler.path)
        args: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if headers.get("content-type", "").startswith("application/json") and raw:
            args.update(json.loads(raw))
        elif raw:
            args.update({k: v[-1] for k, v in parse_qs(raw.decode()).items()})
        request = Request(handler.command, parts.path, headers, args)
        method = self.method_of(request)
        failure = self._scripted(method)
        if failure is not None:
            if failure.delay:
                time.sleep(failure.delay)
            status, answer, extra = failure.status, failure.body, dict(failure.headers)
        else:
            with self.lock:
                status, answer, extra = self.route(method, request)
        self.calls_recorder.add(Call(method, args, headers, status, answer))
        if isinstance(answer, str):
            payload, kind = answer.encode(), "text/html"
        else:
            payload, kind = json.dumps(answer).encode(), "application/json; charset=utf-8"
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", kind)
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the client gave up

    def start(self) -> Self:
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=self.thread_name,
            daemon=True,
        ).start()
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
