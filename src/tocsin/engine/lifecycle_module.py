"""The engine module that tells the world about lifecycle events.

Each run claims a batch of pending events in order, hands every event to every reactor
(outgoing webhooks, stakeholder communication …), queues the outbox messages they return and
marks the events done, all in ONE transaction (a run stops early after BUDGET; the events
it did not reach stay pending for the next). A crash before the commit leaves the events
pending and queues nothing; a crash after it leaves nothing to repeat; and the reactors' keys
(e.g. f"evt:{event.id}:{target}") make even a repeated event queue nothing twice.

A reactor that raises on one event does not hold up the others: its work on that event is
rolled back to a savepoint, the error is logged and recorded on the event (status failed),
and the other reactors' messages for it still go out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tocsin.core.lifecycle import LifecycleEvent
from tocsin.engine.coordination import instance_name
from tocsin.services import lifecycle, outbox

log = logging.getLogger("tocsin.engine.lifecycle")

Reactor = Callable[[Session, LifecycleEvent, datetime], list[dict[str, Any]]]
# Events per run: 100 events to 10 webhooks are 1,000 messages, a few hundred milliseconds;
# a bigger batch would hold up an escalation step due meanwhile (the loop runs one module
# at a time).
BATCH = 100
# Events run through the reactors together under one savepoint, and the run stops taking
# new chunks after BUDGET seconds: a backlog of events (10,000 incidents declared at once)
# is worked off between other modules' runs instead of holding up a page for 0.5 s a batch.
CHUNK = 10
BUDGET = 0.05
# What outbox.enqueue_many needs of every message; checked per reactor, so one malformed
# message fails its event instead of the whole batch's INSERT.
REQUIRED = ("key", "kind", "channel", "destination", "title", "body", "payload", "now")


class LifecycleModule:
    """Run every reactor on each pending lifecycle event; see the module docstring."""

    name = "lifecycle"
    on_work = True
    version = 1

    def __init__(
        self,
        reactors: Sequence[Reactor],
        *,
        batch: int = BATCH,
        owner: str | None = None,
        budget: float = BUDGET,
    ) -> None:
        self.reactors = list(reactors)
        self.batch = batch
        self.budget = budget
        self.owner = owner or instance_name()

    def update(self, session: Session, now: datetime) -> datetime | None:
        """Handle pending events for up to `budget`; return now when more work waits."""
        rows = lifecycle.claim_pending(session, self.batch)
        started = time.monotonic()
        handled = 0
        messages: list[dict[str, Any]] = []
        done: list[int] = []
        for chunk in _chunks(rows, CHUNK):
            if handled and time.monotonic() - started > self.budget:
                break  # the rest stay pending for the next run, after the other modules
            messages += self._handle(session, chunk, now, done)
            handled += len(chunk)
        # One UPDATE for the run, not one per chunk: most events (a new alert group nobody
        # subscribed to) make no message, and marking them was most of the engine's work
        # during an alert storm.
        lifecycle.mark_done(session, done, now, self.owner)
        if messages:
            with session.no_autoflush:
                outbox.enqueue_many(session, messages, ids=False)
        # Queued messages are for the sender, which runs before this module (pages first):
        # returning now has the engine run it again at once. Events left over mean more
        # wait; otherwise new events wake the engine.
        more = handled < len(rows) or len(rows) == self.batch
        return now if messages or more else None

    def _handle(
        self, session: Session, rows: Sequence[Any], now: datetime, done: list[int]
    ) -> list[dict[str, Any]]:
        """Run every reactor on a few events; return their messages, add the handled to `done`.

        Failed events are marked here; the caller marks `done` once for the whole run.

        Optimistic first: one savepoint around the whole chunk. Only if something fails is
        the chunk run again with a savepoint per reactor and event, so that the failure
        takes back only its own work (two round trips per reactor and event saved when, as
        nearly always, nothing fails).
        """
        try:
            with session.begin_nested():
                messages = [
                    message
                    for row in rows
                    for reactor in self.reactors
                    for message in _checked(reactor(session, lifecycle.to_event(row), now))
                ]
            done.extend(row.id for row in rows)
            return messages
        except Exception:  # noqa: BLE001 - run again event by event to find and record it
            log.debug("a reactor failed in a chunk of %d events; isolating", len(rows))
        messages = []
        for row in rows:
            event = lifecycle.to_event(row)
            errors = []
            for reactor in self.reactors:
                try:
                    messages.extend(self._react(session, reactor, event, now))
                except Exception as exc:
                    log.exception("reactor %s failed on event %s (%s)", _name(reactor),
                                  event.id, event.kind)  # fmt: skip
                    errors.append(f"{_name(reactor)}: {type(exc).__name__}: {exc}")
            if errors:
                lifecycle.mark_failed(session, event.id, now, self.owner, "; ".join(errors))
            else:
                done.append(event.id)
        return messages

    def _react(
        self, session: Session, reactor: Reactor, event: LifecycleEvent, now: datetime
    ) -> list[dict[str, Any]]:
        # A savepoint: a reactor that wrote and then raised (or hit a database error, which
        # aborts a PostgreSQL transaction) takes back only its own work on this event.
        with session.begin_nested():
            return _checked(reactor(session, event, now))


def _checked(produced: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    found = list(produced)
    for message in found:
        _check(message)
    return found


def _chunks(rows: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _check(message: Mapping[str, Any]) -> None:
    missing = [key for key in REQUIRED if key not in message]
    if missing:
        raise ValueError(f"outbox message lacks {', '.join(missing)}")


def _name(reactor: Reactor) -> str:
    name = getattr(reactor, "__qualname__", None) or type(reactor).__qualname__
    module = getattr(reactor, "__module__", "") or ""
    return f"{module}.{name}" if module else str(name)
