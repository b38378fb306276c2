"""Ingest writes in a process of their own, so that parsing and committing run on two cores.

One Python process serves HTTP, parses payloads, runs the group-commit writer and the engine,
all under one interpreter lock: under load the writer's work and the request handling take
turns instead of overlapping, and each hand-over of the lock costs more. With this, the API
process parses and validates as before and sends each loop turn's deliveries, pickled, over a
Unix socket to a child process that writes them with `ingest_many` in one transaction per
batch and answers with the results once the COMMIT has returned. A 2xx still means
committed. At most IN_FLIGHT batches are out at once; what arrives meanwhile forms the next
batch, and the child writes the batches that queued up while it was busy in one transaction,
so transactions grow with load (group commit) and a lone event waits for nobody.

The child is this module run with `python -m`; it exits when the socket closes (the API
process stopped, even by kill -9). If the child dies, the batches it had are answered with
WriterGone (the API says 503: the client retries, and a retried event dedups onto the alert
it may already have made) and the next delivery starts a new child.

Configuration read by the child (`alerting_config`) is cached per process: each batch carries
the API process's configuration generation, and the child drops its cache when it changes,
so an `apply` is seen by the next batch as it is in one process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError, IntegrityError

log = logging.getLogger("tocsin.ingest_process")

# Batches out at once. The child writes those that queued up behind the one it was writing
# in one transaction (_gather): more in flight lets a busy child's transactions grow, but each
# batch is a frame and an answer to pickle, so too many cost more than they save (16 and 32
# did worse than 8 in bench/ingest.py).
IN_FLIGHT = 8
MAX_BATCH = 512
# The most deliveries the child writes in one transaction (several batches: _gather).
MAX_MERGED = 2048
_HEADER = 4
# Per delivery of a batch: (True, its result) or (False, the exception it raised).
Outcomes = list[tuple[bool, Any]]
_READY = "ready"


class WriterGone(Exception):
    """The ingest writer process ended before answering: the batch may not be committed."""


class IngestProcess:
    """The API side: queue deliveries, ship them to the child in batches, hand back results."""

    def __init__(
        self,
        url: str,
        *,
        generation: Callable[[], int] | None = None,
        child: str = __name__,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        # Returns the configuration generation (catalog.generation).
        self._generation = generation
        # The module run as the child (`python -m`), and what its hello frame carries besides
        # the URL (the API's settings, whether to run the engine).
        self._child_module = child
        self._options = dict(options or {})
        # Whether the child runs the engine (then wake() reaches it).
        self.runs_engine = bool(self._options.get("engine"))
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._in_flight: collections.deque[list[asyncio.Future[Any]]] = collections.deque()
        self._metrics: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_pending = False
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._restarting: asyncio.Future[None] | None = None
        self._pump_scheduled = False
        self._closed = False
        self.batches = 0
        self.items_done = 0

    async def start(self) -> None:
        """Start the child and wait until it has opened the database."""
        if self._writer is not None:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._spawn())
        try:
            await asyncio.shield(self._starting)
        finally:
            if self._starting is not None and self._starting.done():
                self._starting = None

    async def submit(self, item: Any) -> Any:
        """Write `item` with the next batch; return its result once committed, or raise."""
        if self._closed:
            raise WriterGone("the ingest writer is stopped")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None:
            await self.start()
        self._schedule_pump()
        return await future

    def wake(self) -> None:
        """Wake the engine in the child (work was committed here); any thread may call."""
        loop = self._loop
        if loop is None or self._closed or not self.runs_engine:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._want_wake()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: shutting down
                loop.call_soon_threadsafe(self._want_wake)

    # Wakeable: lifecycle.wake_on_commit(ingest_process) wakes the child's engine.
    notify = wake

    async def metrics(self, timeout: float = 2.0) -> bytes:
        """The child's Prometheus metrics (its engine's), or nothing if it runs no engine or
        does not answer in time."""
        writer = self._writer
        if writer is None or not self.runs_engine:
            return b""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._metrics.append(future)
        _write_frame(writer, ("metrics",))
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except (TimeoutError, WriterGone):
            return b""

    async def close(self) -> None:
        """Stop the child after it has answered what it holds."""
        self._closed = True
        if self._writer is not None:
            # Half-close: the child answers what it holds, sees the end and exits.
            with contextlib.suppress(OSError):
                self._writer.write_eof()
        if self._reader_task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader_task, 10)
        if self._child is not None:
            try:
                await asyncio.to_thread(self._child.wait, 10)
            except subprocess.TimeoutExpired:
                self._child.kill()
        self._fail(self._pending, WriterGone("the ingest writer stopped"))

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    # --- internals ---

    async def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", self._child_module, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self._loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        # The URL goes over the socket, not the command line (it may hold a password).
        _write_frame(writer, {**self._options, "url": self.url})
        try:
            ready = await _read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            ready = f"it ended ({exc}); see the log above"
        if ready != _READY:
            writer.close()
            child.kill()
            await asyncio.to_thread(child.wait)
            raise WriterGone(f"the ingest writer did not start: {ready!r}")
        self._child = child
        self._writer = writer
        self._reader_task = asyncio.ensure_future(self._read_answers(reader))
        log.info("ingest writer process %d started", child.pid)

    def _schedule_pump(self) -> None:
        # Deferred to the end of this loop turn: requests parsed in the same turn share a batch.
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _want_wake(self) -> None:
        self._wake_pending = True
        self._schedule_pump()

    def _pump(self) -> None:
        self._pump_scheduled = False
        writer = self._writer
        if writer is None:
            if self._pending and not self._closed and self._restarting is None:
                self._restarting = asyncio.ensure_future(self._restart())
            return
        while self._pending and len(self._in_flight) < IN_FLIGHT:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            generation = self._generation() if self._generation is not None else None
            _write_frame(writer, ("batch", generation, [item for item, _ in batch]))
            self._in_flight.append([future for _, future in batch])
            self._wake_pending = False  # the child wakes its engine after every batch
        if self._wake_pending:
            self._wake_pending = False
            _write_frame(writer, ("wake",))

    async def _restart(self) -> None:
        try:
            await self.start()
        except Exception as exc:
            log.exception("could not start the ingest writer process")
            self._fail(self._pending, WriterGone(str(exc)))
            self._pending = []
            return
        finally:
            self._restarting = None
        self._schedule_pump()

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                kind, answers = await _read_frame(reader)
                if kind == "metrics":
                    future = self._metrics.popleft()
                    if not future.done():
                        future.set_result(answers)
                    continue
                self._settle(self._in_flight.popleft(), answers)
                self._pump()
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            if not self._closed:
                log.error("the ingest writer process ended (%s); starting another", exc)
        finally:
            gone = WriterGone("the ingest writer process ended before answering")
            while self._in_flight:
                self._fail([(None, f) for f in self._in_flight.popleft()], gone)
            self._fail([(None, f) for f in self._metrics], gone)
            self._metrics.clear()
            self._writer = None
            if self._child is not None and self._child.poll() is None and not self._closed:
                self._child.kill()
            if self._pending and not self._closed:
                asyncio.get_running_loop().call_soon(self._pump)

    def _settle(self, futures: list[asyncio.Future[Any]], answers: list[Any]) -> None:
        self.batches += 1
        self.items_done += len(futures)
        for future, (ok, value) in zip(futures, answers, strict=True):
            if future.done():
                continue  # the caller gave up; its write stands
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    @staticmethod
    def _fail(batch: Sequence[tuple[Any, asyncio.Future[Any]]], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)


def _frame(value: Any) -> bytes:
    """Return `value` pickled behind its length: one frame on the socket."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER, "big") + data


def _write_frame(writer: asyncio.StreamWriter, value: Any) -> None:
    writer.write(_frame(value))


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    size = int.from_bytes(await reader.readexactly(_HEADER), "big")
    return pickle.loads(await reader.readexactly(size))  # noqa: S301 - our own child


# --- the child ---


class ChildHooks(Protocol):
    """What else the child runs beside the writer (the engine, in `tocsin serve`)."""

    def committed(self) -> None:
        """The server committed work (a wake frame): wake the engine."""

    def metrics(self) -> bytes:
        """Prometheus text of the child's own metrics."""

    def close(self) -> None: ...


def child_main(fd: int, hooks: Callable[[Any, dict[str, Any]], ChildHooks | None]) -> None:
    """Run the child on socket `fd` until the server closes it; `hooks(db, hello)` adds work."""
    from tocsin import logs
    from tocsin.config import Settings

    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the child keeps
    # writing what it holds and exits when the server closes the socket (at the end of its
    # graceful shutdown, or when the kernel closes it after a kill -9).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = Settings()
    logs.setup(settings.log_level, settings.log_format)
    # The server may go away mid-answer: what was committed stays committed.
    with contextlib.suppress(BrokenPipeError, ConnectionError):
        _serve(fd, hooks)


def _serve(fd: int, hooks: Callable[[Any, dict[str, Any]], ChildHooks | None]) -> None:
    from tocsin import runtime
    from tocsin.services import catalog
    from tocsin.services.ingest import ingest_many
    from tocsin.storage.db import Database

    with (
        socket.socket(fileno=fd) as sock,
        sock.makefile("rb") as incoming,
        sock.makefile("wb") as stream,
    ):
        hello = _recv(incoming)
        if hello is None:
            return
        db = Database(hello["url"], pool_size=4)
        extra = hooks(db, hello)
        runtime.tune_gc()
        # The engine thread beside the writer: at the default 5 ms the writer waited that
        # long for the interpreter after each database call while the engine was busy.
        runtime.tune_switch_interval()
        _send(stream, _READY)
        frames = _read_ahead(incoming)
        seen: Any = None
        # A frame taken off the queue while gathering batches, to be handled next.
        backlog: collections.deque[Any] = collections.deque()
        try:
            while (frame := backlog.popleft() if backlog else frames.get()) is not None:
                if frame[0] == "metrics":
                    _send(stream, ("metrics", extra.metrics() if extra else b""))
                    continue
                if frame[0] == "batch":
                    _, generation, items = frame
                    if generation != seen:
                        if seen is not None:
                            catalog.invalidate()
                        seen = generation
                    # No wake here: a batch that gave the engine work (a group opened,
                    # acknowledged or resolved; an incident declared) emitted lifecycle
                    # events, whose commit wakes it (lifecycle.wake_on_commit). Waking it
                    # after every batch made it run idle cycles, competing with the writer.
                    sizes = [len(items)]
                    items = _gather(frames, backlog, generation, list(items), sizes)
                    answer = _Answer(stream, sizes)
                    answers = _write(db, ingest_many, items, answer)
                    if not answer.sent:
                        answer(answers)
                    if answer.error is not None:
                        raise answer.error
                elif extra is not None:  # "wake"
                    extra.committed()
        finally:
            if extra is not None:
                extra.close()
            db.dispose()


def _gather(
    frames: queue.SimpleQueue[Any],
    backlog: collections.deque[Any],
    generation: Any,
    items: list[Any],
    sizes: list[int],
) -> list[Any]:
    """Add the batches already queued behind this one, so that one transaction writes them.

    A batch's commit, its answer and its turn at the write lock cost about the same whatever
    its size: writing what queued up meanwhile together spreads them over more deliveries
    (group commit across batches, as the API process does across requests). Stops at a frame
    of another kind or configuration generation, which is kept for next.
    """
    while len(items) < MAX_MERGED:
        try:
            frame = frames.get_nowait()
        except queue.Empty:
            break
        if frame is None or frame[0] != "batch" or frame[1] != generation:
            backlog.append(frame)
            break
        items += frame[2]
        sizes.append(len(frame[2]))
    return items


class _Answer:
    """Answers each batch frame that went into one transaction, in order, with one flush.

    Called right after the COMMIT, before the write lock is let go: the engine thread, which
    waits for that lock, cannot then take the interpreter while the answer is on its way (a
    socket write releases it, and winning it back from a busy thread costs a switch interval).
    A failure to send is kept for the caller, never taken for a failed write.
    """

    def __init__(self, stream: Any, sizes: list[int]) -> None:
        self.stream = stream
        self.sizes = sizes
        self.sent = False
        self.error: Exception | None = None

    def __call__(self, answers: Outcomes) -> None:
        self.sent = True
        try:
            start = 0
            for size in self.sizes:
                self.stream.write(_frame(("answers", answers[start : start + size])))
                start += size
            self.stream.flush()
        except Exception as exc:  # noqa: BLE001 - raised by the caller, after the write
            self.error = exc


def _read_ahead(incoming: Any) -> queue.SimpleQueue[Any]:
    """Receive and unpickle frames in a thread of their own; None once the server is gone.

    The next batch arrives while this one is written: reading it (the server sends a large
    frame in pieces between its requests) and unpickling it then overlap the database work
    and its fsync, which release the interpreter, instead of adding to them.
    """
    frames: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def read() -> None:
        try:
            while (frame := _recv(incoming)) is not None:
                frames.put(frame)
        except (OSError, ValueError):
            pass  # the server went away (or the file closed at exit): end as at EOF
        except Exception:
            log.exception("could not read a frame from the server")
        finally:
            frames.put(None)

    threading.Thread(target=read, name="tocsin-ingest-reader", daemon=True).start()
    return frames


def _write(
    db: Any,
    batch_fn: Any,
    items: list[Any],
    answer: Callable[[Outcomes], None] | None = None,
) -> Outcomes:
    """One transaction for the batch; if it fails as a whole, each item in its own.

    `answer` is given the outcomes right after the batch's COMMIT, if it made one.
    """
    try:
        return _attempt(db, batch_fn, items, answer)
    except Exception as exc:
        if len(items) == 1:
            log.exception("ingest of a delivery failed")
            return [(False, _portable(exc))]
    return [_write(db, batch_fn, [item])[0] for item in items]


def _attempt(
    db: Any,
    batch_fn: Any,
    items: list[Any],
    answer: Callable[[Outcomes], None] | None = None,
) -> Outcomes:
    for attempt in range(3):
        outcomes: Outcomes | None = None
        try:
            with db.write() as session:
                results = batch_fn(session, items)
                session.commit()
                outcomes = [_outcome(result) for result in results]
                if answer is not None:
                    answer(outcomes)
            return outcomes
        except Exception as exc:
            if outcomes is not None:
                # Committed and answered: only giving the connection back failed. Writing
                # the batch again would store it twice.
                log.warning("closing a committed ingest transaction failed", exc_info=True)
                return outcomes
            # A unique violation or deadlock against another instance: the retry sees the
            # other's commit and joins it.
            if attempt == 2 or not isinstance(exc, DBAPIError) or not retryable(exc):
                raise
    raise AssertionError("unreachable")


def _outcome(result: Any) -> tuple[bool, Any]:
    if isinstance(result, Exception):
        return (False, _portable(result))
    return (True, result)


def _portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling (most do), else its description."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - round trip of our own object
    except Exception:  # noqa: BLE001 - any failure to pickle means: send a description
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def retryable(exc: DBAPIError) -> bool:
    """Unique violation, deadlock or serialization failure: worth another try."""
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


def _recv(stream: Any) -> Any:
    header = stream.read(_HEADER)
    if len(header) < _HEADER:
        return None
    data = stream.read(int.from_bytes(header, "big"))
    return pickle.loads(data)  # noqa: S301 - frames from our own parent


def _send(stream: Any, value: Any) -> None:
    stream.write(_frame(value))
    stream.flush()


if __name__ == "__main__":
    # The writer alone, the default child of IngestProcess (`tocsin serve` starts
    # tocsin.api.ingest_child, which can run the engine too).
    child_main(int(sys.argv[1]), lambda _db, _hello: None)
    os._exit(0)
