"""Delivery policy in the sender (SQLite, PostgreSQL): per-destination throttles hold messages
back and bundle those due together into one delivery (never lost, never sent twice); a
permanent failure lands on the incident's timeline and moves the page on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tests.oncall_harness import LINKS, Harness, RecordingChannel
from tocsin.core.actors import SYSTEM
from tocsin.core.outbox import retry_delay
from tocsin.engine.loop import Engine
from tocsin.engine.oncall import EscalationModule, NotificationRuleModule
from tocsin.engine.outbox_sender import OutboxSender
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.services import incidents, outbox, outbox_throttle
from tocsin.storage.db import Database
from tocsin.storage.lifecycle_tables import DeliveryThrottleRow
from tocsin.storage.oncall_tables import ChannelSettingsRow, NotificationLogRow, OutboxRow
from tocsin.storage.tables import TimelineEventRow

PHONE = "+14155550100"
OTHER = "+14155550199"
LEASE = timedelta(seconds=30)


class Phone:
    """An SMS channel that records what it sends and can be told to fail."""

    name = "sms"

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []
        self.failures: list[DeliveryError] = []
        self.lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> str | None:
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(message)
            return f"SM{len(self.sent)}"


@pytest.fixture
def phone() -> Phone:
    return Phone()


@pytest.fixture
def sender(phone: Phone, clock: FakeClock) -> Iterator[OutboxSender]:
    built = OutboxSender({"sms": phone, "email": phone}, owner="engine-1", clock=clock, workers=2)
    yield built
    built.close()


def text(database: Database, now: datetime, key: str, to: str = PHONE, **kw: Any) -> int:
    values: dict[str, Any] = {
        "key": key,
        "kind": "page",
        "channel": "sms",
        "destination": to,
        "title": f"Alert {key}",
        "body": f"details of {key}",
        "payload": {},
        "now": now,
        "subject_type": "incident",
        "subject_id": 7,
        "user_id": "ann",
    }
    values.update(kw)
    with database.write() as session:
        outbox_id = outbox.enqueue(session, **values)
        session.commit()
    assert outbox_id is not None
    return outbox_id


def row(database: Database, outbox_id: int) -> OutboxRow:
    with database.read() as session:
        found = session.get(OutboxRow, outbox_id)
    assert found is not None
    return found


def log(database: Database) -> list[tuple[str, int | None, str]]:
    with database.read() as session:
        rows = session.scalars(select(NotificationLogRow).order_by(NotificationLogRow.id))
        return [(r.kind, r.outbox_id, r.text) for r in rows]


def test_messages_due_together_go_out_as_one_bundle(
    database: Database, clock: FakeClock, phone: Phone, sender: OutboxSender
) -> None:
    ids = [text(database, clock(), key) for key in ("a", "b", "c")]
    other = text(database, clock(), "other", to=OTHER)
    assert sender.run(database, clock()) is None
    assert sorted(m.destination for m in phone.sent) == [PHONE, OTHER]
    bundle = next(m for m in phone.sent if m.destination == PHONE)
    assert bundle.key == "a"  # the oldest carries the bundle, under its own key
    assert bundle.title == "3 alerts: Alert a; Alert b; Alert c"
    assert bundle.body == (
        "1. Alert a\ndetails of a\n\n2. Alert b\ndetails of b\n\n3. Alert c\ndetails of c"
    )
    assert [m["key"] for m in bundle.payload["bundle"]] == ["a", "b", "c"]
    assert [row(database, i).status for i in [*ids, other]] == ["sent"] * 4
    assert {row(database, i).sent_at for i in ids} == {clock()}
    kinds = [(kind, outbox_id) for kind, outbox_id, _ in log(database)]
    assert ("message_sent", ids[0]) in kinds
    assert ("message_bundled", ids[1]) in kinds
    assert ("message_bundled", ids[2]) in kinds
    texts = {outbox_id: line for _, outbox_id, line in log(database)}
    assert texts[ids[1]] == f"SMS to {PHONE} (ann) sent, bundled into #{ids[0]}."
    assert texts[ids[0]] == f"SMS to {PHONE} (ann) sent, with 2 more message(s) bundled into it."
    # Nothing is sent twice.
    assert sender.run(database, clock.advance(minutes=5)) is None
    assert len(phone.sent) == 2


def test_a_message_waits_until_the_window_allows_and_later_ones_join_it(
    database: Database, clock: FakeClock, phone: Phone, sender: OutboxSender
) -> None:
    start = clock()
    first = text(database, start, "first")
    sender.run(database, start)
    assert len(phone.sent) == 1
    second = text(database, clock.advance(seconds=10), "second")
    # Held back until a minute after the first: not an attempt, just a wait.
    assert sender.run(database, clock()) == start + timedelta(minutes=1)
    held = row(database, second)
    assert (held.status, held.attempts, held.next_attempt_at, held.claimed_until) == (
        "pending",
        0,
        start + timedelta(minutes=1),
        None,
    )
    assert log(database)[-1] == (
        "message_throttled",
        second,
        f"SMS to {PHONE} (ann) held back by the sms throttle (1/minute) for 50 s.",
    )
    third = text(database, clock.advance(seconds=20), "third")
    assert sender.run(database, clock()) == start + timedelta(minutes=1)
    assert len(phone.sent) == 1
    # The window opens: both go out together, once.
    assert sender.run(database, clock.advance(seconds=30)) is None
    assert len(phone.sent) == 2
    assert phone.sent[1].title == "2 alerts: Alert second; Alert third"
    assert [row(database, i).status for i in (first, second, third)] == ["sent"] * 3
    assert row(database, second).attempts == 1
    # The next one waits a minute from this delivery.
    fourth = text(database, clock.advance(seconds=5), "fourth")
    assert sender.run(database, clock()) == start + timedelta(minutes=2)
    assert row(database, fourth).status == "pending"


def test_stored_settings_set_or_lift_a_channel_s_throttle(
    database: Database, clock: FakeClock, phone: Phone, sender: OutboxSender
) -> None:
    with database.write() as session:
        session.add(ChannelSettingsRow(name="sms", settings={"throttle": "2/minute"}))
        session.add(ChannelSettingsRow(name="email", settings={"throttle": "off"}))
        session.commit()
    for key in ("a", "b"):
        text(database, clock(), key)
    for key in ("m1", "m2", "m3"):
        text(database, clock(), key, channel="email", to="ann@example.test")
    sender.run(database, clock())
    # Two SMS a minute: both go out on their own; email is not throttled at all.
    assert sorted(m.key for m in phone.sent) == ["a", "b", "m1", "m2", "m3"]
    with database.write() as session:
        session.execute(
            ChannelSettingsRow.__table__.update()
            .where(ChannelSettingsRow.name == "sms")
            .values(settings={"throttle": "off"})
        )
        session.commit()
    later = OutboxSender({"sms": phone}, owner="engine-1", clock=clock)
    for key in ("c", "d", "e"):
        text(database, clock(), key)
    later.run(database, clock())
    later.close()
    assert len(phone.sent) == 8


def test_a_failed_bundle_is_retried_whole_and_gives_its_slot_back(
    database: Database, clock: FakeClock, phone: Phone, sender: OutboxSender
) -> None:
    ids = [text(database, clock(), key) for key in ("a", "b")]
    phone.failures.append(DeliveryError("provider busy", retryable=True))
    delay = retry_delay(1, key="a")
    assert delay is not None
    assert sender.run(database, clock()) == clock() + delay
    both = [row(database, i) for i in ids]
    assert [(r.status, r.next_attempt_at) for r in both] == [("pending", clock() + delay)] * 2
    assert both[1].last_error == f"sent bundled into #{ids[0]}: provider busy"
    with database.read() as session:
        window = session.get(DeliveryThrottleRow, ("sms", PHONE))
    assert window is not None
    assert window.sent == []  # the failed attempt reached nobody
    # The retry is not held back by the failed attempt: the bundle goes out, once.
    assert sender.run(database, clock.advance(seconds=delay.total_seconds())) is None
    (bundle,) = phone.sent
    assert bundle.key == "a"
    assert bundle.title == "2 alerts: Alert a; Alert b"
    assert [row(database, i).status for i in ids] == ["sent", "sent"]


def test_a_bundle_that_fails_for_good_fails_every_message_in_it(
    core_config: Database, clock: FakeClock, phone: Phone, sender: OutboxSender
) -> None:
    with core_config.write() as session:
        incident = incidents.declare(
            session, SYSTEM, clock(), incidents.Declaration(title="API down", severity="P1")
        )
        session.commit()
    ids = [text(core_config, clock(), key, subject_id=incident.id) for key in ("a", "b")]
    phone.failures.append(DeliveryError("number unreachable", retryable=False))
    sender.run(core_config, clock())
    assert [row(core_config, i).status for i in ids] == ["failed", "failed"]
    with core_config.read() as session:
        failures = list(
            session.scalars(
                select(TimelineEventRow)
                .where(TimelineEventRow.kind == "delivery_failed")
                .order_by(TimelineEventRow.id)
            )
        )
    assert [e.data["outbox_id"] for e in failures] == ids
    assert failures[0].text == (
        "SMS page to +*** for ann could not be delivered after 1 attempt(s): number unreachable"
    )


def test_a_crashed_sender_s_bundle_goes_out_later_under_the_same_key(
    database: Database, clock: FakeClock, phone: Phone, sender: OutboxSender
) -> None:
    start = clock()
    for key in ("a", "b"):
        text(database, start, key)
    # Another engine claimed and planned the bundle, then died before recording anything.
    with database.write() as session:
        rows = outbox.claim(session, start, owner="engine-0", limit=10, lease=LEASE)
        throttles = outbox_throttle.channel_throttles(session)
        planned = outbox_throttle.plan(session, rows, start, throttles)
        session.commit()
    assert [(d.row.idempotency_key, len(d.members)) for d in planned] == [("a", 1)]
    # Its lease runs out after 30 s, its slot a minute after it was taken.
    assert sender.run(database, clock.advance(seconds=30)) == start + timedelta(minutes=1)
    assert phone.sent == []
    assert sender.run(database, clock.advance(seconds=30)) is None
    (bundle,) = phone.sent
    assert bundle.key == "a"  # a receiver that saw the first attempt drops this one
    assert bundle.title == "2 alerts: Alert a; Alert b"


def test_two_senders_never_share_a_destination_s_window(
    database: Database, clock: FakeClock
) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite has one writer: senders take turns on the write lock")
    first_id = text(database, clock(), "a")
    second_id = text(database, clock(), "b")
    with database.write() as first:
        (mine,) = outbox.claim(first, clock(), owner="e1", limit=1, lease=LEASE)
        throttles = outbox_throttle.channel_throttles(first)
        sent_first = outbox_throttle.plan(first, [mine], clock(), throttles)
        result: list[list[outbox_throttle.Delivery]] = []

        def other() -> None:
            with database.write() as second:
                theirs = outbox.claim(second, clock(), owner="e2", limit=1, lease=LEASE)
                # Waits on the destination's row until the first sender commits.
                result.append(outbox_throttle.plan(second, theirs, clock(), throttles))
                second.commit()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # blocked on the throttle row, not deciding blindly
        first.commit()
    thread.join(10)
    assert [d.row.id for d in sent_first] == [first_id]
    assert result == [[]]  # the second message waits for the window
    held = row(database, second_id)
    assert (held.next_attempt_at, held.claimed_by) == (clock() + timedelta(minutes=1), None)


# --- permanent failures of pages ---


# Monday 2026-03-16 16:00 UTC: alice is primary, bob secondary (as in test_oncall_engine).
T0 = datetime(2026, 3, 16, 16, 0, tzinfo=UTC)


@pytest.fixture
def oncall(core_config: Database, clock: FakeClock) -> Database:
    clock.now = T0
    apply_yaml(core_config, (EXAMPLES / "alerting.yaml").read_text())
    apply_yaml(core_config, (EXAMPLES / "oncall.yaml").read_text())
    return core_config


def test_a_page_that_fails_for_good_is_on_the_timeline_and_moves_on(
    oncall: Database, clock: FakeClock
) -> None:
    harness = Harness(oncall, clock)
    try:
        harness.webhook.refuse.add("http://127.0.0.1:9911/alice")
        with oncall.write() as session:
            incident = incidents.declare(
                session,
                SYSTEM,
                clock(),
                incidents.Declaration(title="API down", severity="P1", services=["api"]),
            )
            session.commit()
        start = clock()
        harness.forward(minutes=1)
        # The webhook refused for good: alice's next rule (email, due at 5 min) went at once.
        assert [(s.channel, s.at) for s in harness.sent()] == [("email", start)]
    finally:
        harness.close()
    with oncall.read() as session:
        (event,) = session.scalars(
            select(TimelineEventRow).where(TimelineEventRow.kind == "delivery_failed")
        )
    assert event.incident_id == incident.id
    assert event.text == (
        "Webhook page to http://127.0.0.1/*** for alice could not be delivered after "
        "1 attempt(s): refused by the test"
    )


def test_throttled_pages_are_bundled_and_escalation_carries_on(
    oncall: Database, clock: FakeClock
) -> None:
    """Pages to a throttled webhook: the second incident's page waits for the window, then
    goes out bundled with the third; bob's step 2 pages still fire on time."""
    with oncall.write() as session:
        session.add(ChannelSettingsRow(name="webhook", settings={"throttle": "1/minute"}))
        session.commit()
    hook = RecordingChannel("webhook", clock)
    mail = RecordingChannel("email", clock)
    sender = OutboxSender({"webhook": hook, "email": mail}, owner="t", workers=2, clock=clock)
    engine = Engine(
        oncall,
        clock,
        [EscalationModule(), NotificationRuleModule(LINKS), sender],
        registry=CollectorRegistry(),
    )
    start = clock()

    def settle() -> datetime | None:
        deadline = None
        for _ in range(20):
            deadline = engine.run_once(woken=True)
            if deadline is None or deadline > clock():
                break
        return deadline

    def run_until(target: datetime) -> None:
        deadline = settle()
        while deadline is not None and deadline <= target:
            clock.now = max(deadline, clock.now)
            deadline = settle()
        clock.now = target
        settle()

    def declare(title: str) -> None:
        with oncall.write() as session:
            incidents.declare(session, SYSTEM, clock(), incidents.Declaration(
                title=title, severity="P1", services=["api"]))  # fmt: skip
            session.commit()

    try:
        declare("one")
        run_until(start + timedelta(seconds=10))
        declare("two")
        run_until(start + timedelta(seconds=20))
        declare("three")
        run_until(start + timedelta(minutes=17))
    finally:
        sender.close()
    # (seconds after the first declaration, who, how many pages in the delivery)
    got = [
        (int((s.at - start).total_seconds()), s.destination.rsplit("/", 1)[1],
         len(s.payload.get("bundle", [None])))
        for s in hook.sent
    ]  # fmt: skip
    assert got == [(0, "alice", 1), (60, "alice", 2), (900, "bob", 1), (960, "bob", 2)]
    assert hook.sent[1].payload["kind"] == "bundle"
    assert [m["type"] for m in hook.sent[1].payload["messages"]] == ["page", "page"]
    # Alice's emails (not throttled) went out 5 minutes after each of her pages was due.
    assert sorted(int((s.at - start).total_seconds()) for s in mail.sent) == [300, 310, 320]
    with oncall.read() as session:
        statuses = {r.idempotency_key: r.status for r in session.scalars(select(OutboxRow))}
    assert set(statuses.values()) == {"sent"}
    assert len(statuses) == 9  # 3 × (alice's page, alice's email, bob's page), none lost


# --- a backlog does not hold up pages ---


def test_pages_go_first_and_a_backlog_yields_the_loop(
    database: Database, clock: FakeClock, phone: Phone
) -> None:
    backlog = [
        text(database, clock(), f"update-{n}", kind="event", channel="email", to=f"s{n}@x.test")
        for n in range(25)
    ]
    page = text(database, clock() + timedelta(seconds=1), "page-1", channel="email",
                to="ann@example.test")  # fmt: skip
    later = clock.advance(seconds=1)
    # No time to spare: one batch per run, then the loop gets its turn (returns now).
    sender = OutboxSender({"email": phone}, owner="engine-1", clock=clock, batch=10, budget=0.0)
    try:
        assert sender.run(database, later) == later
        assert phone.sent[0].key == "page-1"  # queued last, sent first
        assert len(phone.sent) == 10
        assert sender.run(database, later) == later
        assert sender.run(database, later) is None  # the last, short batch: nothing left
    finally:
        sender.close()
    assert len(phone.sent) == 26
    assert [row(database, i).status for i in [*backlog, page]] == ["sent"] * 26
