"""The ingest child's handling of queued batches: gathered into one transaction, each answered."""

from __future__ import annotations

import collections
import io
import pickle
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tocsin.services import ingest_process
from tocsin.services.ingest_process import _Answer, _attempt, _gather


def _queue(*frames: Any) -> queue.SimpleQueue[Any]:
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for frame in frames:
        q.put(frame)
    return q


def test_queued_batches_of_the_same_configuration_are_written_together() -> None:
    frames = _queue(("batch", 7, ["c", "d"]), ("batch", 7, ["e"]), ("batch", 8, ["f"]))
    backlog: collections.deque[Any] = collections.deque()
    sizes = [2]
    items = _gather(frames, backlog, 7, ["a", "b"], sizes)
    assert items == ["a", "b", "c", "d", "e"]
    assert sizes == [2, 2, 1]
    # A batch of a newer configuration waits for its own transaction, first in line.
    assert list(backlog) == [("batch", 8, ["f"])]
    assert frames.empty()


@pytest.mark.parametrize("stop", [("wake",), ("metrics",), None])
def test_gathering_stops_at_another_frame_and_keeps_it(stop: Any) -> None:
    frames = _queue(("batch", 1, ["b"]), stop, ("batch", 1, ["c"]))
    backlog: collections.deque[Any] = collections.deque()
    sizes = [1]
    assert _gather(frames, backlog, 1, ["a"], sizes) == ["a", "b"]
    assert list(backlog) == [stop]
    assert frames.get_nowait() == ("batch", 1, ["c"])


def test_gathering_stops_at_the_transaction_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_process, "MAX_MERGED", 3)
    frames = _queue(("batch", 1, ["b", "c"]), ("batch", 1, ["d"]))
    sizes = [1]
    assert _gather(frames, collections.deque(), 1, ["a"], sizes) == ["a", "b", "c"]
    assert frames.get_nowait() == ("batch", 1, ["d"])


def _frames(data: bytes) -> list[Any]:
    stream, out = io.BytesIO(data), []
    while header := stream.read(4):
        out.append(pickle.loads(stream.read(int.from_bytes(header, "big"))))  # noqa: S301
    return out


def test_each_gathered_batch_gets_its_own_answer_in_order() -> None:
    stream = io.BytesIO()
    answer = _Answer(stream, [2, 1])
    answer([(True, "a"), (True, "b"), (False, "c")])
    assert answer.sent
    assert answer.error is None
    assert _frames(stream.getvalue()) == [
        ("answers", [(True, "a"), (True, "b")]),
        ("answers", [(False, "c")]),
    ]


def test_a_failed_answer_is_kept_not_raised() -> None:
    class Closed(io.BytesIO):
        def flush(self) -> None:
            raise BrokenPipeError("the server went away")

    answer = _Answer(Closed(), [1])
    answer([(True, "a")])
    assert isinstance(answer.error, BrokenPipeError)


class _FakeDb:
    """A database whose write() records whether it is held, and may fail on the way out."""

    def __init__(self, *, fail_on_close: bool = False) -> None:
        self.held = False
        self.fail_on_close = fail_on_close

    @contextmanager
    def write(self) -> Iterator[Any]:
        self.held = True
        try:
            yield _FakeSession()
        finally:
            self.held = False
        if self.fail_on_close:
            raise OSError("connection reset while returning it to the pool")


class _FakeSession:
    def commit(self) -> None:
        pass


def test_the_answer_goes_out_after_commit_while_the_write_lock_is_held() -> None:
    db = _FakeDb()
    seen: list[bool] = []
    outcomes = _attempt(db, lambda _s, items: items, ["a"], lambda _o: seen.append(db.held))
    assert outcomes == [(True, "a")]
    assert seen == [True]


def test_a_committed_batch_is_never_written_again() -> None:
    db = _FakeDb(fail_on_close=True)
    calls: list[list[str]] = []

    def batch(_session: Any, items: list[str]) -> list[str]:
        calls.append(items)
        return items

    assert _attempt(db, batch, ["a", "b"]) == [(True, "a"), (True, "b")]
    assert calls == [["a", "b"]]
