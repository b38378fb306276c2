"""The outbox and its sender, on SQLite and PostgreSQL, against real SMTP and HTTP receivers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests.conftest import FakeClock
from tests.receivers import SmtpReceiver, WebhookReceiver
from tocsin.core.outbox import retry_delay
from tocsin.engine.loop import Engine
from tocsin.engine.outbox_sender import OutboxSender
from tocsin.notify.base import Channel, OutgoingMessage
from tocsin.notify.email import message_id
from tocsin.notify.registry import ChannelRegistry, email_channel, webhook_channel
from tocsin.notify.webhook import WebhookChannel
from tocsin.services import outbox
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import (
    ChannelSettingsRow,
    EscalationPolicyRow,
    EscalationRow,
    NotificationLogRow,
    OutboxRow,
    PageRow,
)
from tocsin.storage.tables import UserRow

LEASE = timedelta(seconds=60)


def put(database: Database, now: datetime, key: str, **kw: Any) -> int | None:
    """Enqueue one message and commit."""
    values: dict[str, Any] = {
        "key": key,
        "kind": "page",
        "channel": "webhook",
        "destination": "http://127.0.0.1:9/hook",
        "title": f"Message {key}",
        "body": "Checkout is down",
        "payload": {"key": key},
        "now": now,
    }
    values.update(kw)
    with database.write() as session:
        outbox_id = outbox.enqueue(session, **values)
        session.commit()
    return outbox_id


def row(database: Database, outbox_id: int) -> OutboxRow:
    with database.read() as session:
        found = session.get(OutboxRow, outbox_id)
    assert found is not None
    return found


def log_kinds(database: Database) -> list[tuple[str, int | None]]:
    with database.read() as session:
        rows = session.scalars(select(NotificationLogRow).order_by(NotificationLogRow.id))
        return [(entry.kind, entry.outbox_id) for entry in rows]


def make_page(database: Database, now: datetime, next_at: datetime) -> int:
    """An active page of ann on incident 7, whose next rule is due at `next_at`."""
    with database.write() as session:
        session.add(UserRow(id="ann", name="Ann"))
        session.add(EscalationPolicyRow(id="web", name="Web"))
        session.flush()
        escalation = EscalationRow(
            subject_type="incident",
            subject_id=7,
            policy_id="web",
            urgency="high",
            status="active",
            run_started_at=now,
            created_at=now,
        )
        session.add(escalation)
        session.flush()
        page = PageRow(
            escalation_id=escalation.id,
            user_id="ann",
            urgency="high",
            run=0,
            cycle=0,
            step=0,
            status="active",
            next_rule=1,
            next_at=next_at,
            created_at=now,
        )
        session.add(page)
        session.commit()
        return page.id


def page_next_at(database: Database, page_id: int) -> datetime | None:
    with database.read() as session:
        page = session.get(PageRow, page_id)
        assert page is not None
        return page.next_at


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def webhook() -> Iterator[WebhookChannel]:
    channel = WebhookChannel(timeout=2.0)
    yield channel
    channel.close()


@pytest.fixture
def sender(webhook: WebhookChannel) -> Iterator[OutboxSender]:
    built = OutboxSender({"webhook": webhook}, owner="engine-1")
    yield built
    built.close()


# --- enqueue ---


def test_enqueue_is_idempotent_on_the_key(database: Database, clock: FakeClock) -> None:
    first = put(database, clock(), "k1", user_id="ann", subject_type="incident", subject_id=7)
    assert first is not None
    assert put(database, clock(), "k1", title="another title") is None
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 1
    stored = row(database, first)
    assert (stored.status, stored.attempts, stored.title) == ("pending", 0, "Message k1")
    assert stored.next_attempt_at == stored.created_at == clock()
    assert (stored.user_id, stored.subject_type, stored.subject_id) == ("ann", "incident", 7)


def test_a_repeated_key_leaves_the_transaction_usable(database: Database, clock: FakeClock) -> None:
    put(database, clock(), "k1")
    with database.write() as session:
        assert (
            outbox.enqueue(
                session,
                key="k1",
                kind="page",
                channel="webhook",
                destination="x",
                title="",
                body="",
                payload={},
                now=clock(),
            )
            is None
        )
        assert outbox.enqueue(
            session,
            key="k2",
            kind="page",
            channel="webhook",
            destination="x",
            title="",
            body="",
            payload={},
            now=clock(),
        )
        session.commit()
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 2


def test_concurrent_enqueues_of_one_key_insert_it_once(
    database: Database, clock: FakeClock
) -> None:
    writers = 8
    barrier = threading.Barrier(writers)
    results: list[int | None] = []
    errors: list[BaseException] = []

    def enqueue() -> None:
        try:
            with database.write() as session:
                if not database.is_sqlite:
                    # Everyone inserts inside an open transaction at the same moment.
                    session.execute(select(1))
                    barrier.wait(timeout=10)
                results.append(
                    outbox.enqueue(
                        session,
                        key="same",
                        kind="page",
                        channel="webhook",
                        destination="x",
                        title="",
                        body="",
                        payload={},
                        now=clock(),
                    )
                )
                session.commit()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=enqueue) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(results) == writers
    assert len([r for r in results if r is not None]) == 1
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 1


# --- claim ---


def test_claim_takes_due_messages_for_a_lease(database: Database, clock: FakeClock) -> None:
    now = clock()
    due = [put(database, now - timedelta(seconds=s), f"due-{s}") for s in (3, 1, 2)]
    later = put(database, now + timedelta(minutes=5), "later")
    with database.write() as session:
        claimed = outbox.claim(session, now, owner="a", limit=10, lease=LEASE)
        session.commit()
    assert [c.id for c in claimed] == [due[0], due[2], due[1]]  # oldest due first
    assert all(c.claimed_by == "a" and c.claimed_until == now + LEASE for c in claimed)
    assert all(c.attempts == 1 for c in claimed)
    with database.write() as session:
        assert outbox.claim(session, now + LEASE / 2, owner="b", limit=10, lease=LEASE) == []
        assert outbox.next_due(session) == now + LEASE  # the lease runs out first
        session.commit()
    with database.write() as session:
        again = outbox.claim(session, now + LEASE, owner="b", limit=2, lease=LEASE)
        session.commit()
    # The lease ran out: another sender takes them, oldest first.
    assert [c.id for c in again] == [due[0], due[2]]
    assert [(c.claimed_by, c.attempts) for c in again] == [("b", 2), ("b", 2)]
    assert later not in [c.id for c in again]


def test_concurrent_claimers_never_share_a_message(database: Database, clock: FakeClock) -> None:
    total = 300
    with database.write() as session:
        for n in range(total):
            outbox.enqueue(
                session,
                key=f"m{n}",
                kind="page",
                channel="webhook",
                destination="x",
                title="",
                body="",
                payload={},
                now=clock(),
            )
        session.commit()
    claimed: dict[str, list[int]] = {}

    def claimer(owner: str) -> None:
        mine = claimed.setdefault(owner, [])
        while True:
            with database.write() as session:
                rows = outbox.claim(session, clock(), owner=owner, limit=7, lease=LEASE)
                # Hold the rows a moment, so the others have to skip past them.
                time.sleep(0.002)
                session.commit()
            if not rows:
                return
            mine.extend(r.id for r in rows)

    threads = [threading.Thread(target=claimer, args=(f"c{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [outbox_id for ids in claimed.values() for outbox_id in ids]
    assert len(every) == len(set(every)) == total
    if not database.is_sqlite:
        assert sum(1 for ids in claimed.values() if ids) > 1  # they really shared the work


def test_claim_skips_rows_another_claimer_holds_without_waiting(
    database: Database, clock: FakeClock
) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite has one writer: claimers queue on the write lock instead")
    for n in range(4):
        put(database, clock(), f"m{n}")
    with database.write() as holder:
        held = outbox.claim(holder, clock(), owner="a", limit=2, lease=LEASE)
        # Not committed yet: the rows are locked. Another claimer must not block on them.
        started = time.monotonic()
        with database.write() as other:
            other.execute(select(1))
            other.connection().exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            taken = outbox.claim(other, clock(), owner="b", limit=10, lease=LEASE)
            other.commit()
        assert time.monotonic() - started < 1
        holder.commit()
    assert {r.id for r in held}.isdisjoint({r.id for r in taken})
    assert len(held) + len(taken) == 4


# --- the sender ---


def test_sender_sends_each_message_once_with_its_key(
    database: Database, clock: FakeClock, hooks: WebhookReceiver, smtp: SmtpReceiver
) -> None:
    now = clock()
    hook_ids = [
        put(
            database,
            now,
            f"hook-{n}",
            destination=hooks.url(f"/h{n}"),
            user_id="ann",
            subject_type="incident",
            subject_id=7,
        )
        for n in range(3)
    ]
    mail_id = put(
        database,
        now,
        "mail-1",
        channel="email",
        destination="ann@example.com",
        subject_type="incident",
        subject_id=7,
    )
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(),
        "email": email_channel(smtp.settings()),
    }
    sender = OutboxSender(channels, owner="engine-1")
    try:
        assert sender.run(database, now) is None  # nothing left pending
    finally:
        sender.close()
    requests = hooks.wait_for(3)
    assert sorted(r.headers["idempotency-key"] for r in requests) == ["hook-0", "hook-1", "hook-2"]
    assert sorted(r.path for r in requests) == ["/h0", "/h1", "/h2"]
    (received,) = smtp.wait_for(1)
    assert received.message["X-Tocsin-Idempotency-Key"] == "mail-1"
    for outbox_id in [*hook_ids, mail_id]:
        assert outbox_id is not None
        sent = row(database, outbox_id)
        assert (sent.status, sent.attempts, sent.sent_at, sent.claimed_until) == (
            "sent",
            1,
            now,
            None,
        )
    assert sorted(log_kinds(database)) == sorted(("message_sent", i) for i in [*hook_ids, mail_id])
    with database.read() as session:
        entry = session.scalars(
            select(NotificationLogRow).where(NotificationLogRow.outbox_id == mail_id)
        ).one()
    assert entry.text == "Email to ann@example.com sent."
    assert entry.detail["provider_id"] == message_id("mail-1")
    assert entry.detail["channel"] == "email"
    assert entry.detail["destination"] == "ann@example.com"
    # A second run finds nothing to send.
    sender = OutboxSender(channels, owner="engine-1")
    assert sender.run(database, clock.advance(minutes=5)) is None
    sender.close()
    assert len(hooks.requests) == 3
    assert len(smtp.messages) == 1


def test_a_503_is_retried_after_the_backoff_with_the_same_key(
    database: Database, clock: FakeClock, hooks: WebhookReceiver, sender: OutboxSender
) -> None:
    now = clock()
    outbox_id = put(
        database,
        now,
        "retry-me",
        destination=hooks.url(),
        user_id="ann",
        subject_type="incident",
        subject_id=7,
    )
    assert outbox_id is not None
    hooks.respond(503, body="maintenance")
    # The 5 s backoff, moved by this message's own jitter (at most ±20 %).
    delay = retry_delay(1, key="retry-me")
    assert delay is not None
    assert timedelta(seconds=4) <= delay <= timedelta(seconds=6)
    assert sender.run(database, now) == now + delay
    failed = row(database, outbox_id)
    assert (failed.status, failed.attempts) == ("pending", 1)
    assert failed.next_attempt_at == now + delay
    assert failed.last_error == "webhook answered HTTP 503: maintenance"
    assert failed.claimed_until is None
    # Not yet due: nothing is sent.
    assert sender.run(database, clock.advance(seconds=3)) == now + delay
    assert len(hooks.requests) == 1
    clock.now = now + delay
    assert sender.run(database, clock()) is None
    first, second = hooks.wait_for(2)
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "retry-me"
    done = row(database, outbox_id)
    assert (done.status, done.attempts, done.sent_at) == ("sent", 2, clock())
    assert log_kinds(database) == [("message_retry", outbox_id), ("message_sent", outbox_id)]
    with database.read() as session:
        retry = session.scalars(select(NotificationLogRow).order_by(NotificationLogRow.id)).first()
    assert retry is not None
    assert retry.text == (
        f"Webhook to 127.0.0.1 (ann) failed (attempt 1); trying again in "
        f"{round(delay.total_seconds())} s: webhook answered HTTP 503: maintenance"
    )
    assert retry.detail["next_attempt_at"] == (now + delay).isoformat()


def test_retry_after_pushes_the_next_attempt_back(
    database: Database, clock: FakeClock, hooks: WebhookReceiver, sender: OutboxSender
) -> None:
    outbox_id = put(database, clock(), "slow-down", destination=hooks.url())
    assert outbox_id is not None
    hooks.respond(429, headers={"Retry-After": "30"})
    assert sender.run(database, clock()) == clock() + timedelta(seconds=30)
    assert row(database, outbox_id).next_attempt_at == clock() + timedelta(seconds=30)
    assert log_kinds(database) == []  # no subject, no log line


def test_a_permanent_failure_fails_the_message_and_moves_the_page_on(
    database: Database, clock: FakeClock, hooks: WebhookReceiver, sender: OutboxSender
) -> None:
    now = clock()
    page_id = make_page(database, now, next_at=now + timedelta(minutes=5))
    outbox_id = put(
        database,
        now,
        "bad-request",
        destination=hooks.url(),
        user_id="ann",
        subject_type="incident",
        subject_id=7,
        page_id=page_id,
    )
    assert outbox_id is not None
    hooks.respond(400, body="unknown field")
    # The run asks to run again now: the person's next rule (their email) is due at once.
    assert sender.run(database, now) == now
    failed = row(database, outbox_id)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error == "webhook answered HTTP 400: unknown field"
    assert page_next_at(database, page_id) == now
    assert log_kinds(database) == [("message_failed", outbox_id)]
    with database.read() as session:
        entry = session.scalars(select(NotificationLogRow)).one()
    assert entry.user_id == "ann"
    assert entry.escalation_id is None
    assert entry.text == (
        "Webhook to 127.0.0.1 (ann) could not be sent after 1 attempt(s): "
        "webhook answered HTTP 400: unknown field"
    )
    assert sender.run(database, clock.advance(minutes=10)) is None
    assert len(hooks.requests) == 1


def test_exhausted_retries_fail_the_message_and_move_the_page_on(
    database: Database, clock: FakeClock, hooks: WebhookReceiver, sender: OutboxSender
) -> None:
    now = clock()
    page_id = make_page(database, now, next_at=now + timedelta(hours=2))
    outbox_id = put(database, now, "hopeless", destination=hooks.url(), page_id=page_id)
    assert outbox_id is not None
    hooks.respond(503, times=100)
    deadline = sender.run(database, now)
    attempts = 1
    while deadline is not None and deadline > clock():
        clock.now = deadline
        deadline = sender.run(database, clock())
        attempts += 1
    assert deadline == clock()
    assert attempts == len(hooks.requests) == 10
    # The jittered backoff of each attempt, about 50 minutes in all.
    waits = [retry_delay(n, key="hopeless") for n in range(1, 10)]
    assert clock() - now == sum((w for w in waits if w is not None), timedelta())
    assert timedelta(minutes=45) <= clock() - now <= timedelta(minutes=55)
    assert row(database, outbox_id).status == "failed"
    assert page_next_at(database, page_id) == clock()


def test_a_page_that_is_no_longer_active_is_left_alone(
    database: Database, clock: FakeClock, hooks: WebhookReceiver, sender: OutboxSender
) -> None:
    now = clock()
    page_id = make_page(database, now, next_at=now + timedelta(minutes=5))
    with database.write() as session:
        session.execute(update(PageRow).values(status="acknowledged"))
        session.commit()
    put(database, now, "late", destination=hooks.url(), page_id=page_id)
    hooks.respond(404)
    assert sender.run(database, now) is None
    assert page_next_at(database, page_id) == now + timedelta(minutes=5)


def test_a_crashed_sender_s_messages_are_sent_again_after_the_lease(
    database: Database, clock: FakeClock, hooks: WebhookReceiver, sender: OutboxSender
) -> None:
    now = clock()
    outbox_id = put(database, now, "in-flight", destination=hooks.url())
    assert outbox_id is not None
    # Another engine claimed it, maybe even sent it, and was killed before recording that.
    with database.write() as session:
        outbox.claim(session, now, owner="engine-0", limit=10, lease=LEASE)
        session.commit()
    assert sender.run(database, now) == now + LEASE
    assert hooks.requests == []
    assert sender.run(database, clock.advance(seconds=59)) == now + LEASE
    assert sender.run(database, clock.advance(seconds=1)) is None
    (request,) = hooks.wait_for(1)
    assert request.headers["idempotency-key"] == "in-flight"
    sent = row(database, outbox_id)
    assert (sent.status, sent.attempts, sent.claimed_by) == ("sent", 2, "engine-1")


def test_each_outcome_is_recorded_as_soon_as_its_message_is_done(
    database: Database, clock: FakeClock
) -> None:
    release = threading.Event()

    class Blocking:
        name = "webhook"

        def send(self, message: OutgoingMessage) -> str | None:
            if message.key == "slow":
                release.wait(10)
            return None

    ids = [put(database, clock(), key) for key in ("fast-1", "slow", "fast-2")]
    sender = OutboxSender({"webhook": Blocking()}, owner="engine-1")
    runner = threading.Thread(target=sender.run, args=(database, clock()))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            statuses = [row(database, i).status for i in ids if i is not None]
            if statuses == ["sent", "pending", "sent"]:
                break
            time.sleep(0.01)
        # Killed now, only "slow" would be sent again.
        assert statuses == ["sent", "pending", "sent"]
    finally:
        release.set()
        runner.join(10)
        sender.close()
    assert [row(database, i).status for i in ids if i is not None] == ["sent"] * 3


def test_no_transaction_is_open_while_sending(database: Database, clock: FakeClock) -> None:
    writes: list[bool] = []

    class Writing:
        """Writes the very row being sent, from another thread, while send() runs."""

        name = "webhook"

        def send(self, message: OutgoingMessage) -> str | None:
            def write() -> None:
                with database.write() as session:
                    session.execute(
                        update(OutboxRow).where(OutboxRow.id == message.id).values(body="seen")
                    )
                    session.commit()
                writes.append(True)

            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            # Held locks (SQLite's write lock, PostgreSQL's row lock) would block the writer.
            writer.join(5)
            return None

    outbox_id = put(database, clock(), "k")
    assert outbox_id is not None
    sender = OutboxSender({"webhook": Writing()}, owner="engine-1")
    sender.run(database, clock())
    sender.close()
    assert writes == [True]
    assert (row(database, outbox_id).status, row(database, outbox_id).body) == ("sent", "seen")


def test_messages_are_sent_concurrently_in_batches(
    database: Database, clock: FakeClock, hooks: WebhookReceiver
) -> None:
    count = 40
    with database.write() as session:
        for n in range(count):
            outbox.enqueue(
                session,
                key=f"m{n}",
                kind="page",
                channel="webhook",
                destination=hooks.url(),
                title="",
                body="",
                payload={},
                now=clock(),
            )
        session.commit()
    hooks.delay(0.2, times=count)
    webhook = WebhookChannel()
    # A budget past the whole run: this test is about batches, not about yielding the loop.
    sender = OutboxSender({"webhook": webhook}, owner="engine-1", batch=15, workers=20, budget=60.0)
    started = time.monotonic()
    assert sender.run(database, clock()) is None  # three batches, until nothing was left
    elapsed = time.monotonic() - started
    sender.close()
    webhook.close()
    assert len(hooks.requests) == count
    assert len({r.headers["idempotency-key"] for r in hooks.requests}) == count
    # One at a time would take 8 s; three concurrent batches ~0.6 s. Half of 8 s leaves room
    # for a loaded machine (a fresh-clone CI run once took 2.1 s) and still fails serial sends.
    assert elapsed < count * 0.2 / 2


def test_unknown_channels_and_crashing_channels(database: Database, clock: FakeClock) -> None:
    class Crashing:
        name = "webhook"

        def send(self, message: OutgoingMessage) -> str | None:
            raise KeyError("bug")

    sms = put(
        database,
        clock(),
        "sms-1",
        channel="sms",
        destination="+15550100",
        subject_type="incident",
        subject_id=7,
    )
    crash = put(database, clock(), "crash-1")
    assert sms is not None
    assert crash is not None
    sender = OutboxSender({"webhook": Crashing()}, owner="engine-1")
    delay = retry_delay(1, key="crash-1")
    assert delay is not None
    assert sender.run(database, clock()) == clock() + delay
    sender.close()
    assert row(database, sms).status == "failed"
    assert row(database, sms).last_error == "no channel named 'sms' is installed"
    # An unforeseen error is retried: better a late page than a lost one.
    assert (row(database, crash).status, row(database, crash).last_error) == (
        "pending",
        "KeyError: 'bug'",
    )


def test_channels_come_from_the_stored_settings(
    database: Database, clock: FakeClock, smtp: SmtpReceiver, hooks: WebhookReceiver
) -> None:
    now = clock()
    page_id = make_page(database, now, next_at=now + timedelta(minutes=5))
    first = put(
        database,
        now,
        "mail-1",
        channel="email",
        destination="ann@example.com",
        page_id=page_id,
        subject_type="incident",
        subject_id=7,
    )
    put(database, now, "hook-1", destination=hooks.url())
    registry = ChannelRegistry({"email": email_channel, "webhook": webhook_channel})
    sender = OutboxSender(registry, owner="engine-1")
    # No SMTP server configured: the email fails for good, saying so; the webhook goes out.
    assert sender.run(database, now) == now
    assert first is not None
    failed = row(database, first)
    assert failed.status == "failed"
    assert failed.last_error == (
        "email channel is not usable: no SMTP server is set up (config section channels.email)"
    )
    assert page_next_at(database, page_id) == now
    assert len(hooks.wait_for(1)) == 1
    # Configured later (config applied): the next email goes out without a restart.
    with database.write() as session:
        session.add(ChannelSettingsRow(name="email", settings=smtp.settings()))
        session.commit()
    second = put(database, now, "mail-2", channel="email", destination="ann@example.com")
    webhook_before = registry(database)["webhook"]
    assert sender.run(database, now) is None
    assert second is not None
    assert row(database, second).status == "sent"
    (received,) = smtp.wait_for(1)
    assert received.message["X-Tocsin-Idempotency-Key"] == "mail-2"
    assert registry(database)["webhook"] is webhook_before  # unchanged settings: kept
    sender.close()
    registry.close()


def test_message_log_lists_a_subjects_messages(database: Database, clock: FakeClock) -> None:
    a = put(database, clock(), "a", subject_type="incident", subject_id=7)
    put(database, clock(), "b", subject_type="incident", subject_id=8)
    c = put(database, clock(), "c", subject_type="incident", subject_id=7, channel="email")
    put(database, clock(), "d")
    with database.read() as session:
        messages = outbox.message_log(session, "incident", 7)
    assert [(m.id, m.idempotency_key) for m in messages] == [(a, "a"), (c, "c")]


# --- in the engine loop ---


class Recorder:
    name = "rules"
    on_work = True

    def __init__(self) -> None:
        self.runs: list[datetime] = []

    def update(self, session: Session, now: datetime) -> datetime | None:
        self.runs.append(now)
        return now + timedelta(hours=1)


def test_the_engine_runs_the_sender_and_hurries_work_it_made_due(
    database: Database, clock: FakeClock, hooks: WebhookReceiver, webhook: WebhookChannel
) -> None:
    rules = Recorder()
    sender = OutboxSender({"webhook": webhook}, owner="engine-1")
    # The rules module comes first: what the sender makes due can only reach it next cycle.
    engine = Engine(database, clock, [rules, sender], registry=CollectorRegistry())
    now = clock()
    put(database, now, "first", destination=hooks.url())
    assert engine.run_once() == now + timedelta(seconds=30)  # sender: nothing left
    assert len(hooks.wait_for(1)) == 1
    assert rules.runs == [now]
    # Half a minute later the sender is due again (the rules module is not) and a message
    # of an active page fails for good: the rules run in the very next cycle, not in an hour.
    page_id = make_page(database, now, next_at=now + timedelta(minutes=5))
    put(database, now, "broken", destination=hooks.url(), page_id=page_id)
    hooks.respond(410)
    later = clock.advance(seconds=30)
    assert engine.run_once(woken=False) == later
    assert rules.runs == [now]
    assert page_next_at(database, page_id) == later
    engine.run_once(woken=False)
    assert rules.runs == [now, later]
    sender.close()


def test_the_engine_counts_a_sender_failure_and_retries_soon(
    clock: FakeClock, database: Database
) -> None:
    def loader(db: Database) -> Mapping[str, Channel]:
        raise RuntimeError("settings unreadable")

    sender = OutboxSender(loader, owner="engine-1")
    engine = Engine(database, clock, [sender], registry=CollectorRegistry())
    outbox_id = put(database, clock(), "k")
    assert outbox_id is not None
    assert engine.run_once() == clock() + timedelta(seconds=5)
    assert engine.failures.labels("outbox")._value.get() == 1
    # Nothing was claimed, so the message goes out as soon as the channels load again.
    assert (row(database, outbox_id).claimed_until, row(database, outbox_id).attempts) == (None, 0)
    sender.close()
