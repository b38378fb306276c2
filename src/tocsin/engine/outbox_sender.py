"""The engine module that sends the outbox.

Unlike other modules it manages its own transactions, because sending talks to the network
and no transaction may stay open meanwhile (it would hold SQLite's only write lock, or
PostgreSQL row locks, for as long as the slowest SMTP server takes). A run:

1. claims a batch of due messages in one short committed transaction (a lease, see
   services/outbox.py);
2. sends them concurrently in a thread pool, with no transaction open;
3. records each outcome in its own short transaction as soon as that message is done, so a
   sender killed mid-batch re-sends only the messages that were in flight;
4. repeats until nothing due is left, then returns the next deadline.

A message that fails for good (or runs out of attempts) hurries its page on: the person's
next notification rule becomes due at once, and the run returns `now` so the engine runs the
notification rules without waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from tocsin.core.outbox import retry_delay
from tocsin.notify.base import Channel, DeliveryError, OutgoingMessage
from tocsin.services import outbox
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import OutboxRow

log = logging.getLogger("tocsin.engine.outbox")

ChannelLoader = Callable[[Database], Mapping[str, Channel]]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    """What happened to one message in a run."""

    outbox_id: int
    status: str  # sent | retry | failed
    error: str | None = None
    page_hurried: bool = False


class OutboxSender:
    """Send due outbox messages through their channels; see the module docstring."""

    name = "outbox"
    on_work = True
    own_transactions = True

    def __init__(
        self,
        channels: Mapping[str, Channel] | ChannelLoader,
        *,
        owner: str,
        batch: int = 64,
        lease: timedelta = timedelta(seconds=30),
        workers: int = 16,
        clock: Clock | None = None,
    ) -> None:
        self._channels = channels
        self.owner = owner
        self.batch = batch
        self.lease = lease
        # Outcomes are stamped with the clock when given; otherwise with the run's `now`.
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tocsin-outbox")

    def run(self, db: Database, now: datetime) -> datetime | None:
        """Send everything due; return the next deadline (now when a page was hurried)."""
        # Look before claiming: most wake-ups find nothing due, and a read takes no write
        # lock (SQLite's single writer is the ingest path's too).
        with db.read() as session:
            deadline = outbox.next_due(session)
        if deadline is None or deadline > self._now(now):
            return deadline
        # Channels are loaded before anything is claimed: if that fails, nothing sits
        # claimed until its lease runs out.
        channels = self._load(db)
        outcomes: list[Outcome] = []
        while True:
            with db.write() as session:
                rows = outbox.claim(
                    session, self._now(now), owner=self.owner, limit=self.batch, lease=self.lease
                )
                messages = [_message(row) for row in rows]
                session.commit()
            if not messages:
                break
            outcomes.extend(self._send_all(db, channels, messages, now))
            if len(messages) < self.batch:
                break
        if any(outcome.page_hurried for outcome in outcomes):
            return now
        with db.read() as session:
            return outbox.next_due(session)

    def close(self) -> None:
        """Stop the worker threads (after the messages in flight)."""
        self._pool.shutdown(wait=True)

    def _load(self, db: Database) -> Mapping[str, Channel]:
        if isinstance(self._channels, Mapping):
            return self._channels
        return self._channels(db)

    def _now(self, now: datetime) -> datetime:
        return self.clock() if self.clock is not None else now

    def _send_all(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        messages: list[OutgoingMessage],
        now: datetime,
    ) -> list[Outcome]:
        futures = {
            self._pool.submit(self._attempt, channels, message): message for message in messages
        }
        # Outcomes are recorded as they come, all those finished meanwhile in one short
        # transaction: soon after each message (a kill -9 re-sends only what was in flight)
        # without a commit per message.
        outcomes: list[Outcome] = []
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            results = [(futures[future], future.result()) for future in done]
            outcomes.extend(self._record(db, results, now))
        return outcomes

    def _attempt(
        self, channels: Mapping[str, Channel], message: OutgoingMessage
    ) -> str | DeliveryError | None:
        """Send one message; return the provider id, or the error (never raise)."""
        channel = channels.get(message.channel)
        try:
            if channel is None:
                raise DeliveryError(
                    f"no channel named {message.channel!r} is installed", retryable=False
                )
            return channel.send(message)
        except DeliveryError as exc:
            return exc
        except Exception as exc:
            # A bug or an unforeseen error in a channel: retry rather than drop a page.
            log.exception("channel %s raised on message %s", message.channel, message.id)
            return DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True)

    def _record(
        self,
        db: Database,
        results: list[tuple[OutgoingMessage, str | DeliveryError | None]],
        now: datetime,
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        at = self._now(now)
        with db.write() as session:
            for message, result in results:
                assert message.id is not None
                if isinstance(result, DeliveryError):
                    outcomes.append(self._record_failure(session, message, result, at))
                else:
                    outbox.mark_sent(session, message.id, at, provider_id=result)
                    outcomes.append(Outcome(message.id, "sent"))
            session.commit()
        return outcomes

    def _record_failure(
        self, session: Session, message: OutgoingMessage, error: DeliveryError, at: datetime
    ) -> Outcome:
        assert message.id is not None
        delay = retry_delay(message.attempt, error.retry_after) if error.retryable else None
        text = str(error)
        if delay is not None:
            outbox.mark_retry(session, message.id, at, error=text, next_attempt_at=at + delay)
            return Outcome(message.id, "retry", text)
        row = outbox.mark_failed(session, message.id, at, error=text)
        hurried = False
        if row is not None and row.page_id is not None:
            hurried = outbox.hurry_page(session, row.page_id, at)
        log.warning("message %s (%s) failed for good: %s", message.id, message.channel, text)
        return Outcome(message.id, "failed", text, page_hurried=hurried)


def _message(row: OutboxRow) -> OutgoingMessage:
    return OutgoingMessage(
        key=row.idempotency_key,
        channel=row.channel,
        destination=row.destination,
        title=row.title,
        body=row.body,
        payload=dict(row.payload or {}),
        kind=row.kind,
        id=row.id,
        attempt=row.attempts,
    )
