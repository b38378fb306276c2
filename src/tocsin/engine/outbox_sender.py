"""The engine module that sends the outbox.

Unlike other modules it manages its own transactions, because sending talks to the network
and no transaction may stay open meanwhile (it would hold SQLite's only write lock, or
PostgreSQL row locks, for as long as the slowest SMTP server takes). A run:

1. claims a batch of due messages in one short committed transaction (a lease, see
   services/outbox.py); in the same transaction the throttles decide (services/
   outbox_throttle.py): a message to a throttled destination (an SMS number: one a minute)
   waits until the window allows, and several due for one destination at once go out as
   one delivery that lists them all;
2. sends them concurrently in a thread pool, with no transaction open;
3. records each outcome in its own short transaction as soon as that message is done, so a
   sender killed mid-batch re-sends only the messages that were in flight;
4. repeats until nothing due is left, then returns the next deadline; or, after BUDGET of
   sending with more still due, returns `now`, so the loop runs the other modules (an
   escalation step due meanwhile) and comes straight back: a burst of 10,000 webhooks never
   holds up a page, and pages are claimed before other messages.

Retries back off exponentially with a per-message jitter, honouring Retry-After
(core/outbox.py). A message that fails for good (or runs out of attempts) is put on its
incident's timeline and hurries its page on: the person's next notification rule becomes due
at once, and the run returns `now` so the engine runs the notification rules without waiting.
Messages bundled into another share its fate: sent with it, retried with it, failed with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tocsin.core.outbox import retry_delay
from tocsin.core.throttle import Throttle, bundle_text
from tocsin.notify.base import Channel, DeliveryError, OutgoingMessage
from tocsin.services import outbox, outbox_throttle
from tocsin.services.outbox_throttle import Delivery
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import OutboxRow

log = logging.getLogger("tocsin.engine.outbox")

ChannelLoader = Callable[[Database], Mapping[str, Channel]]
Clock = Callable[[], datetime]
# How long one run sends before it lets the other modules have the loop (seconds).
BUDGET = 0.2
# How long finished messages wait to be recorded together with those finishing next.
RECORD_EVERY = 0.05


@dataclass(frozen=True)
class Outcome:
    """What happened to one message in a run."""

    outbox_id: int
    status: str  # sent | retry | failed
    error: str | None = None
    page_hurried: bool = False
    next_attempt_at: datetime | None = None


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
        budget: float = BUDGET,
    ) -> None:
        self._channels = channels
        self.owner = owner
        self.batch = batch
        self.lease = lease
        self.budget = budget
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
        throttles: dict[str, Throttle] | None = None
        started = time.monotonic()
        while True:
            with db.write() as session:
                at = self._now(now)
                rows = outbox.claim(
                    session, at, owner=self.owner, limit=self.batch, lease=self.lease
                )
                if rows and throttles is None:
                    throttles = outbox_throttle.channel_throttles(session)
                deliveries = outbox_throttle.plan(session, rows, at, throttles or {})
                messages = [(delivery, _message(delivery)) for delivery in deliveries]
                session.commit()
            if messages:
                outcomes.extend(self._send_all(db, channels, messages, now))
            if len(rows) < self.batch:
                break
            if time.monotonic() - started > self.budget:
                return now  # more is due: after the other modules have had their turn
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
        messages: list[tuple[Delivery, OutgoingMessage]],
        now: datetime,
    ) -> list[Outcome]:
        futures = {self._pool.submit(self._attempt, channels, m[1]): m for m in messages}
        # Outcomes are recorded as they come, in short transactions: those finished within
        # RECORD_EVERY of the first unrecorded one go together (a kill -9 re-sends at most
        # what was in flight or finished in that moment), without a commit per message.
        outcomes: list[Outcome] = []
        pending = set(futures)
        finished: list[Any] = []
        first_done = 0.0
        while pending:
            timeout = (
                None if not finished else max(0.0, first_done + RECORD_EVERY - time.monotonic())
            )
            done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if done and not finished:
                first_done = time.monotonic()
            finished += done
            if finished and (not pending or time.monotonic() >= first_done + RECORD_EVERY):
                results = [(futures[future], future.result()) for future in finished]
                outcomes.extend(self._record(db, results, now))
                finished = []
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
        results: list[tuple[tuple[Delivery, OutgoingMessage], str | DeliveryError | None]],
        now: datetime,
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        at = self._now(now)
        sent: list[outbox.Sent] = []
        with db.write() as session:
            for (delivery, message), result in results:
                assert message.id is not None
                members = [m.id for m in delivery.members]
                if not isinstance(result, DeliveryError):
                    sent.append(outbox.Sent(message.id, result, members))
                    outcomes.append(Outcome(message.id, "sent"))
                    continue
                outcome = self._record_failure(session, message, result, at)
                outcomes.append(outcome)
                outcomes += [self._share(session, m, outcome, at) for m in delivery.members]
                if delivery.reserved_at is not None:
                    outbox_throttle.free_slot(
                        session, message.channel, message.destination, delivery.reserved_at
                    )
            # The successes, which are nearly all, in two statements.
            outbox.mark_sent_many(session, sent, at)
            session.commit()
        return outcomes

    def _share(
        self, session: Session, member: OutboxRow, carrier: Outcome, at: datetime
    ) -> Outcome:
        """Give a bundled message its carrier's failure: retried with it, or failed with it."""
        error = f"sent bundled into #{carrier.outbox_id}: {carrier.error}"
        if carrier.status == "retry" and carrier.next_attempt_at is not None:
            # The same moment as the carrier, so the bundle forms again.
            outbox.mark_retry(session, member.id, at, error=error,
                              next_attempt_at=carrier.next_attempt_at)  # fmt: skip
            return Outcome(member.id, "retry", error, next_attempt_at=carrier.next_attempt_at)
        row = outbox.mark_failed(session, member.id, at, error=error)
        hurried = False
        if row is not None and row.page_id is not None:
            hurried = outbox.hurry_page(session, row.page_id, at)
        return Outcome(member.id, "failed", error, page_hurried=hurried)

    def _record_failure(
        self, session: Session, message: OutgoingMessage, error: DeliveryError, at: datetime
    ) -> Outcome:
        assert message.id is not None
        delay = (
            retry_delay(message.attempt, error.retry_after, key=message.key)
            if error.retryable
            else None
        )
        text = str(error)
        if delay is not None:
            outbox.mark_retry(session, message.id, at, error=text, next_attempt_at=at + delay)
            return Outcome(message.id, "retry", text, next_attempt_at=at + delay)
        row = outbox.mark_failed(session, message.id, at, error=text)
        hurried = False
        if row is not None and row.page_id is not None:
            hurried = outbox.hurry_page(session, row.page_id, at)
        log.warning("message %s (%s) failed for good: %s", message.id, message.channel, text)
        return Outcome(message.id, "failed", text, page_hurried=hurried)


def _message(delivery: Delivery) -> OutgoingMessage:
    """Return what the channel sends: the message, or one listing a bundle's messages.

    A bundle goes out under its oldest message's key, so a repeat after a crash (the same
    messages due together again) carries the same key.
    """
    row = delivery.row
    rows = [row, *delivery.members]
    title, body = bundle_text([(r.title, r.body) for r in rows])
    return OutgoingMessage(
        key=row.idempotency_key,
        channel=row.channel,
        destination=row.destination,
        title=title,
        body=body,
        payload=_bundle_payload(rows) if delivery.members else dict(row.payload or {}),
        kind=row.kind,
        id=row.id,
        attempt=row.attempts,
    )


def _bundle_payload(rows: list[OutboxRow]) -> dict[str, Any]:
    """Return the payload of a bundle: the first message's, listing every message.

    A signed webhook sends {"kind": "bundle", "messages": [each body]} under the first
    message's secret; other channels keep the first message's settings (an email's thread)
    without its HTML, which described that message alone.
    """
    first = dict(rows[0].payload or {})
    listed = [{"id": r.id, "key": r.idempotency_key, "title": r.title} for r in rows]
    hook = first.get("webhook")
    if isinstance(hook, dict):
        bodies = [((r.payload or {}).get("webhook") or {}).get("body") or r.payload for r in rows]
        first["webhook"] = {**hook, "body": {"kind": "bundle", "messages": bodies}}
    elif isinstance(first.get("email"), dict):
        first["email"] = {**first["email"], "html": None}
    if hook is None and "email" not in first:
        # Pages: the JSON is the payload itself.
        first = {"kind": "bundle", "messages": [dict(r.payload or {}) for r in rows]}
    first["bundle"] = listed
    return first
