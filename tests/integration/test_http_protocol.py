"""The served HTTP protocol: one send per response, and responses still whole and in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.e2e.serving import in_thread
from tocsin.api.http_protocol import CorkedTransport, OneSendHttpProtocol


class _Recorder(asyncio.Transport):
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted


def test_writes_of_one_turn_leave_as_one() -> None:
    asyncio.run(_test_writes_of_one_turn_leave_as_one())


async def _test_writes_of_one_turn_leave_as_one() -> None:
    real = _Recorder()
    corked = CorkedTransport(real, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n")
    corked.write(b"{}")
    corked.write(b"")
    assert real.sent == []  # held until the loop turns
    await asyncio.sleep(0)
    assert real.sent == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"]
    corked.write(memoryview(b"next"))
    await asyncio.sleep(0)
    assert real.sent[1:] == [b"next"]


def test_close_sends_what_was_written_abort_drops_it() -> None:
    asyncio.run(_test_close_sends_what_was_written_abort_drops_it())


async def _test_close_sends_what_was_written_abort_drops_it() -> None:
    real = _Recorder()
    corked = CorkedTransport(real, asyncio.get_running_loop())
    corked.write(b"last words")
    corked.close()
    assert real.sent == [b"last words"]
    assert real.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
    assert real.sent == [b"last words"]

    other = _Recorder()
    corked = CorkedTransport(other, asyncio.get_running_loop())
    corked.write(b"never")
    corked.abort()
    await asyncio.sleep(0)
    assert other.sent == []
    assert other.aborted


def test_nothing_is_written_to_a_connection_that_went_away() -> None:
    asyncio.run(_test_nothing_is_written_to_a_connection_that_went_away())


async def _test_nothing_is_written_to_a_connection_that_went_away() -> None:
    real = _Recorder()
    corked = CorkedTransport(real, asyncio.get_running_loop())
    corked.write(b"late")
    real.closed = True  # the peer hung up before the loop turned
    await asyncio.sleep(0)
    assert real.sent == []


async def _chunks() -> AsyncIterator[bytes]:
    for i in range(5):
        await asyncio.sleep(0.01)
        yield f"chunk {i}\n".encode()


async def _echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


_app = Starlette(
    routes=[
        Route("/small", lambda _r: JSONResponse({"status": "accepted"}, status_code=202)),
        Route("/big", lambda _r: PlainTextResponse("x" * 3_000_000)),
        Route("/stream", lambda _r: StreamingResponse(_chunks(), media_type="text/plain")),
        Route("/empty", lambda _r: Response(status_code=204)),
        Route("/echo", _echo, methods=["POST"]),
    ]
)


_WRITES: list[bytes] = []


class _Counted:
    """The real transport, with its writes recorded."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: Any) -> None:
        _WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _CountedProtocol(OneSendHttpProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Counted(transport))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with in_thread(_app, http=_CountedProtocol) as base:
        yield base


def test_responses_arrive_whole_on_one_keep_alive_connection(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        for _ in range(3):
            small = client.get("/small")
            assert small.status_code == 202
            assert small.json() == {"status": "accepted"}
            assert len(client.get("/big").text) == 3_000_000
            assert client.get("/stream").text == "".join(f"chunk {i}\n" for i in range(5))
            assert client.get("/empty").status_code == 204
            assert client.head("/small").content == b""
            body = bytes(range(256)) * 4000
            assert client.post("/echo", content=body).content == body


def test_connection_close_still_gets_its_answer(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        answer = client.get("/small", headers={"Connection": "close"})
    assert answer.status_code == 202
    assert answer.json() == {"status": "accepted"}


def test_a_response_is_one_send(served: str) -> None:
    """Head and body of each response reach the socket's transport in one write."""
    _WRITES.clear()
    with httpx.Client(base_url=served, timeout=10) as client:
        for _ in range(5):
            assert client.get("/small").status_code == 202
            assert client.post("/echo", content=b"ping").content == b"ping"
    assert len(_WRITES) == 10
    assert all(w.startswith(b"HTTP/1.1 ") and w.endswith((b"}", b"ping")) for w in _WRITES)
