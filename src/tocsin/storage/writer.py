"""Group commit: one writer thread runs queued units of work, many per transaction.

SQLite has one writer at a time and each COMMIT costs an fsync (synchronous=FULL). Running
queued writes back to back in one transaction and committing once gives every caller the same
guarantee (its answer is released only after the COMMIT that holds its change has returned)
at a fraction of the cost.

A batch first runs optimistically, with no savepoints. If any job fails, the whole transaction
is rolled back and the batch runs again with a SAVEPOINT around each job, so the failure rolls
back only itself. Failures are rare (input is validated before it is queued), so the common
case saves two statements per job. Jobs of the same batch kind queued one after another (e.g.
declarations) are handed to their batch function together, to be written with executemany.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from tocsin.storage.db import Database

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the item type of a batch function
BatchFn = Callable[[Session, Sequence[Any]], Sequence[Any]]
log = logging.getLogger("tocsin.writer")
_STOP = object()


@dataclass(slots=True)
class _Job:
    # Settled on its loop, all of a batch's answers in one callback.
    future: asyncio.Future[Any]
    run: Callable[[Session], Any] | None = None
    kind: str | None = None
    item: Any = None
    batch_fn: BatchFn | None = None


class _Retry(Exception):
    pass


class GroupCommitWriter:
    """A single writer thread that batches submitted units of work into shared commits."""

    def __init__(self, db: Database, *, max_batch: int = 128) -> None:
        self.db = db
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0
        self.jobs_done = 0

    def submit(self, job: Callable[[Session], T]) -> asyncio.Future[T]:
        """Queue `job(session)` from an event loop; the future resolves on that loop after the
        commit that includes the job."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put(_Job(future, run=job))
        return future

    def submit_batched(self, kind: str, item: I, batch_fn: BatchFn) -> asyncio.Future[Any]:
        """Queue `item` for `batch_fn(session, items)`: a result or an exception per item.

        A batch's answers reach their loop in one call_soon_threadsafe, not one per job (a
        wrapped concurrent future cost a cross-thread wake-up and a few callbacks each).
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Job(future, kind=kind, item=item, batch_fn=batch_fn))
        return future

    def close(self) -> None:
        """Finish queued work and stop the thread."""
        if self._thread is not None:
            self._jobs.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None

    def _put(self, job: _Job) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="tocsin-writer", daemon=True
                    )
                    self._thread.start()
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            first = self._jobs.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        try:
            try:
                outcomes = self._attempt(batch, isolated=False)
            except _Retry:
                outcomes = self._attempt(batch, isolated=True)
        except Exception as exc:
            log.exception("group commit of %d jobs failed", len(batch))
            _answer(batch, [(False, exc)] * len(batch))
            return
        self.batches += 1
        self.jobs_done += len(batch)
        _answer(batch, outcomes)

    def _attempt(self, batch: list[_Job], *, isolated: bool) -> list[tuple[bool, Any]]:
        """Run the batch in one transaction; without isolation, any failure means _Retry."""
        outcomes: list[tuple[bool, Any]] = []
        with self.db.write() as session:
            for group in _groups(batch):
                outcomes += self._run_group(session, group, isolated=isolated)
            session.commit()
        return outcomes

    def _run_group(
        self, session: Session, group: list[_Job], *, isolated: bool
    ) -> list[tuple[bool, Any]]:
        savepoint = session.begin_nested() if isolated else None
        try:
            head = group[0]
            if head.batch_fn is not None:
                results = head.batch_fn(session, [job.item for job in group])
                outcomes = [(not isinstance(r, Exception), r) for r in results]
            else:
                assert head.run is not None
                outcomes = [(True, head.run(session))]
        except Exception as exc:
            if savepoint is None:
                raise _Retry from exc
            if savepoint.is_active:
                savepoint.rollback()
            return [(False, exc)] * len(group)
        if savepoint is not None:
            savepoint.commit()
        return outcomes


def _answer(batch: list[_Job], outcomes: list[tuple[bool, Any]]) -> None:
    """Settle every job's future on its event loop."""
    on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for (ok, value), job in zip(outcomes, batch, strict=True):
        on_loops.setdefault(job.future.get_loop(), []).append((job.future, ok, value))
    for loop, answers in on_loops.items():
        try:
            loop.call_soon_threadsafe(_settle, answers)
        except RuntimeError:
            # The loop was closed (shutdown): nobody is waiting for these answers.
            log.debug("event loop closed before %d answers", len(answers))


def _settle(answers: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in answers:
        if future.done():
            continue  # the caller gave up (cancelled); its write stands
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _groups(batch: list[_Job]) -> list[list[_Job]]:
    """Split into runs: consecutive jobs of one batch kind together, other jobs alone."""
    groups: list[list[_Job]] = []
    for job in batch:
        if job.kind is not None and groups and groups[-1][0].kind == job.kind:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups
