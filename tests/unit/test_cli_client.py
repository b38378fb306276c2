"""The CLI's HTTP client and renderings against small real HTTP peers (no Tocsin server)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from tocsin.cli.client import ApiError, TocsinClient, UnreachableError, explain
from tocsin.cli.main import app
from tocsin.cli.render import age, when


class Peer(BaseHTTPRequestHandler):
    """Answer every request with the class's canned status and body; remember the headers."""

    status: ClassVar[int] = 200
    body: ClassVar[bytes] = b"{}"
    content_type: ClassVar[str] = "application/json"
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[tuple[str, type[Peer]]]:
    handler = type("P", (Peer,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_sends_token_and_source_header(peer: tuple[str, type[Peer]]) -> None:
    url, handler = peer
    with TocsinClient(url + "/", "t0k") as client:
        assert client.get("/x") == {}
    headers = {k.lower(): v for k, v in handler.seen[0].items()}
    assert headers["authorization"] == "Bearer t0k"
    assert headers["x-tocsin-source"] == "cli"
    assert headers["user-agent"].startswith("tocsin-cli/")


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_count_as_unreachable(peer: tuple[str, type[Peer]], status: int) -> None:
    url, handler = peer
    handler.status, handler.body, handler.content_type = status, b"<html>bad</html>", "text/html"
    with TocsinClient(url, None) as client, pytest.raises(UnreachableError, match=f"HTTP {status}"):
        client.get("/")
    result = CliRunner().invoke(app, ["incident", "list", "--server", url])
    assert result.exit_code == 2
    assert f"cannot reach Tocsin at {url}: HTTP {status}" in result.stderr


def test_a_non_json_answer_is_an_error_not_a_traceback(peer: tuple[str, type[Peer]]) -> None:
    url, handler = peer
    handler.body, handler.content_type = b"<html>some other site</html>", "text/html"
    result = CliRunner().invoke(app, ["incident", "list", "--server", url, "--token", "x"])
    assert result.exit_code == 1
    assert "is not JSON; is this a Tocsin server?" in result.stderr
    assert "Traceback" not in result.output


def test_a_server_error_shows_its_detail(peer: tuple[str, type[Peer]]) -> None:
    url, handler = peer
    handler.status, handler.body = 500, b'{"detail": "internal error; see server log"}'
    with TocsinClient(url, None) as client, pytest.raises(ApiError) as caught:
        client.get("/")
    assert (caught.value.status, caught.value.detail) == (500, "internal error; see server log")


def test_a_silent_server_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete, but nothing ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with TocsinClient(url, None, timeout=0.2) as client, pytest.raises(UnreachableError) as exc:
            client.get("/")
    assert "timed out" in str(exc.value)


def test_a_malformed_server_url_exits_2() -> None:
    result = CliRunner().invoke(app, ["incident", "show", "1", "--server", "localhost:8080"])
    assert result.exit_code == 2
    assert "cannot reach Tocsin at localhost:8080" in result.stderr


def test_explain_adds_lists_the_detail_does_not_name() -> None:
    body = {"allowed_next": ["investigating", "closed"]}
    assert explain(ApiError(409, "cannot move", body)) == [
        "cannot move",
        "allowed next states: investigating, closed",
    ]
    said = "unknown severity 'P9'; valid: P0, P1"
    assert explain(ApiError(422, said, {"valid": ["P0", "P1"]})) == [said]
    assert explain(ApiError(409, "closed is final", {"allowed_next": []}))[1] == (
        "allowed next states: none"
    )
    assert (
        "TOCSIN_TOKEN" in explain(ApiError(401, "authentication required", {}, sent_token=False))[1]
    )
    assert "'respond' scope" in explain(ApiError(403, "this needs the 'respond' scope", {}))[1]


def test_age_and_when() -> None:
    now = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    assert age("2026-03-14T11:59:15Z", now) == "45s"
    assert age("2026-03-14T11:48:00Z", now) == "12m"
    assert age("2026-03-14T09:00:00+00:00", now) == "3h"
    assert age("2026-03-14T08:55:00", now) == "3h 5m"  # naive: taken as UTC
    assert age("2026-03-12T08:00:00Z", now) == "2d 4h"
    assert age("2026-03-15T00:00:00Z", now) == "0s"  # clock skew never shows a negative age
    assert age(None, now) == "-"
    assert when("2026-03-14T10:26:53+01:00") == "2026-03-14 09:26:53Z"
