"""Lifecycle events on SQLite and PostgreSQL: each incident and alert group transition writes
its event in the same transaction, and the engine's lifecycle module hands every event to
every reactor exactly once, in order, whatever fails or crashes."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tocsin.core.actors import SYSTEM, Actor, Scope
from tocsin.core.alerts import Action, Signal
from tocsin.core.incidents import Status
from tocsin.core.lifecycle import LifecycleEvent
from tocsin.engine.lifecycle_module import CHUNK, LifecycleModule
from tocsin.engine.waker import Waker
from tocsin.services import alert_groups, incidents, lifecycle
from tocsin.services.alerting_config import alerting_config
from tocsin.services.ingest import Delivery, ingest_many
from tocsin.storage.db import Database
from tocsin.storage.lifecycle_tables import LifecycleEventRow
from tocsin.storage.oncall_tables import OutboxRow
from tocsin.storage.tables import SilenceRow

ALICE = Actor("alice", frozenset(Scope), user_id="alice", source="api")


@pytest.fixture
def alerting(core_config: Database) -> Database:
    apply_yaml(core_config, (EXAMPLES / "alerting.yaml").read_text())
    return core_config


def declare(db: Database, now: datetime, **kw: Any) -> int:
    values: dict[str, Any] = {"title": "API down", "severity": "P1", "services": ["api"]}
    values.update(kw)
    with db.write() as session:
        incident = incidents.declare(session, ALICE, now, incidents.Declaration(**values))
        session.commit()
        return incident.id


def events(db: Database, subject_type: str | None = None) -> list[LifecycleEventRow]:
    query = select(LifecycleEventRow).order_by(LifecycleEventRow.id)
    if subject_type:
        query = query.where(LifecycleEventRow.subject_type == subject_type)
    with db.read() as session:
        return list(session.scalars(query))


def kinds(db: Database, subject_type: str | None = None) -> list[str]:
    return [e.kind for e in events(db, subject_type)]


def outbox_keys(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(OutboxRow.idempotency_key).order_by(OutboxRow.id)))


# --- emission: incidents ---


def test_every_incident_transition_writes_its_event(
    core_config: Database, clock: FakeClock
) -> None:
    db = core_config
    incident = declare(db, clock(), customer_impact="Checkout fails")
    (declared,) = events(db)
    assert (declared.kind, declared.subject_type, declared.subject_id) == (
        "incident.declared",
        "incident",
        incident,
    )
    assert (declared.actor, declared.at, declared.status) == ("alice", clock(), "pending")
    assert declared.data == {
        "title": "API down",
        "slug": "incident-2026-03-14-001",
        "severity": "P1",
        "status": "triggered",
        "customer_impact": "Checkout fails",
        "services": ["api"],
        "commander": "alice",  # the declarer
        "path": f"/incidents/{incident}",
    }
    with db.write() as session:
        incidents.acknowledge(session, ALICE, clock.advance(minutes=1), incident)
        session.commit()
    with db.write() as session:
        incidents.update_incident(
            session, ALICE, clock.advance(minutes=1), incident,
            incidents.Changes(severity="P0", status=Status.IDENTIFIED, note="bad deploy"),
        )  # fmt: skip
        session.commit()
    with db.write() as session:
        # A note alone is no lifecycle event (incident.update_posted is the commander's update).
        incidents.update_incident(
            session, ALICE, clock(), incident, incidents.Changes(note="still looking")
        )
        session.commit()
    with db.write() as session:
        incidents.change_status(session, ALICE, clock.advance(minutes=1), incident, Status.RESOLVED)
        session.commit()
    assert kinds(db) == [
        "incident.declared",
        "incident.status_changed",  # triggered → investigating: acknowledging starts work
        "incident.acknowledged",
        "incident.severity_changed",
        "incident.status_changed",
        "incident.status_changed",
        "incident.resolved",
    ]
    found = events(db)
    assert found[1].data["from"] == "triggered"
    assert found[1].data["to"] == "investigating"
    assert found[2].data["status"] == "investigating"
    assert (found[3].data["from"], found[3].data["to"], found[3].data["severity"]) == (
        "P1",
        "P0",
        "P0",
    )
    expected = {"from": "investigating", "to": "identified", "note": "bad deploy"}
    assert found[4].data.items() >= expected.items()
    assert found[5].data["to"] == found[6].data["to"] == "resolved"
    assert found[6].data["status"] == "resolved"
    assert all(e.data["services"] == ["api"] for e in found)
    assert [e.at for e in found] == [
        clock() - timedelta(minutes=3),
        *[clock() - timedelta(minutes=2)] * 2,
        *[clock() - timedelta(minutes=1)] * 2,
        clock(),
        clock(),
    ]


def test_a_declaration_batch_writes_one_event_per_incident(
    core_config: Database, clock: FakeClock
) -> None:
    items = [
        (ALICE, clock(), incidents.Declaration(title="one", severity="P1")),
        (ALICE, clock(), incidents.Declaration(title="bad", severity="P9")),
        (SYSTEM, clock(), incidents.Declaration(title="two", severity="P2", services=["api"])),
        (SYSTEM, clock(), incidents.Declaration(title="three", severity="P3",
                                                status=Status.MONITORING)),
    ]  # fmt: skip
    with core_config.write() as session:
        results = incidents.declare_many(session, items)
        session.commit()
    assert isinstance(results[1], Exception)
    found = events(core_config)
    assert [(e.kind, e.data["title"]) for e in found] == [
        ("incident.declared", "one"),
        ("incident.declared", "two"),
        ("incident.declared", "three"),
        ("incident.status_changed", "three"),  # declared straight into monitoring
    ]
    assert [e.actor for e in found] == ["alice", "system", "system", "system"]
    assert found[1].data["commander"] is None  # no human declared it


def test_an_event_exists_only_if_its_change_was_committed(
    core_config: Database, clock: FakeClock
) -> None:
    incident = declare(core_config, clock())
    with core_config.write() as session:
        incidents.acknowledge(session, ALICE, clock(), incident)
        session.rollback()
    assert kinds(core_config) == ["incident.declared"]


# --- emission: alert groups ---


def fire(db: Database, now: datetime, *signals: Signal) -> None:
    with db.write() as session:
        integration = alerting_config(session).integrations["am-production-0001"]
        delivery = Delivery(integration, "alertmanager", "{}", now, signals)
        (result,) = ingest_many(session, [delivery])
        session.commit()
    assert not isinstance(result, Exception)


def signal(action: Action, key: str, **labels: str) -> Signal:
    return Signal(action, key, f"{key} alert", severity="warning", labels=labels)


def test_alert_group_events_from_ingest_one_insert_per_batch(
    alerting: Database, clock: FakeClock
) -> None:
    db = alerting
    fire(
        db,
        clock(),
        signal(Action.TRIGGER, "disk-1", alertname="Disk", cluster="eu"),
        signal(Action.TRIGGER, "disk-2", alertname="Disk", cluster="eu"),
        signal(Action.TRIGGER, "cpu-1", alertname="Cpu", cluster="eu"),
    )
    found = events(db, "alert_group")
    assert [e.kind for e in found] == ["alert_group.triggered"] * 2  # two groups, three alerts
    disk = next(e for e in found if e.data["title"] == "disk-1 alert")
    assert (
        disk.data.items()
        >= {
            "status": "firing",
            "service": "api",
            "services": ["api"],
            "urgency": "low",
            "alert_count": 2,
            "incident_id": None,
            "path": f"/alerts/{disk.subject_id}",
        }.items()
    )
    assert disk.actor == "integration"
    fire(db, clock.advance(minutes=1), signal(Action.ACKNOWLEDGE, "cpu-1"))
    fire(db, clock.advance(minutes=1), signal(Action.RESOLVE, "disk-1"))  # disk-2 still fires
    fire(db, clock.advance(minutes=1), signal(Action.RESOLVE, "disk-2"))
    later = events(db, "alert_group")[2:]
    assert [(e.kind, e.data["title"], e.data["status"]) for e in later] == [
        ("alert_group.acknowledged", "cpu-1 alert", "acknowledged"),
        ("alert_group.resolved", "disk-1 alert", "resolved"),
    ]
    assert later[1].at == clock()


def test_a_group_declared_into_an_incident_tells_both(alerting: Database, clock: FakeClock) -> None:
    critical = Signal(Action.TRIGGER, "down", "Cluster down", severity="critical",
                      labels={"alertname": "ClusterDown", "cluster": "eu"})  # fmt: skip
    fire(alerting, clock(), critical)
    found = events(alerting)
    assert sorted(e.kind for e in found) == ["alert_group.triggered", "incident.declared"]
    group = next(e for e in found if e.subject_type == "alert_group")
    incident = next(e for e in found if e.subject_type == "incident")
    assert group.data["incident_id"] == incident.subject_id
    assert incident.data["severity"] == "P0"


def test_responders_acknowledge_and_resolve_groups(alerting: Database, clock: FakeClock) -> None:
    fire(alerting, clock(), signal(Action.TRIGGER, "disk-1", alertname="Disk", cluster="eu"))
    (triggered,) = events(alerting)
    group_id = triggered.subject_id
    with alerting.write() as session:
        alert_groups.acknowledge(session, ALICE, clock.advance(minutes=1), group_id)
        alert_groups.acknowledge(session, ALICE, clock(), group_id)  # again: nothing new
        session.commit()
    with alerting.write() as session:
        alert_groups.resolve(session, ALICE, clock.advance(minutes=1), group_id)
        alert_groups.resolve(session, ALICE, clock(), group_id)
        session.commit()
    found = events(alerting)[1:]
    assert [(e.kind, e.actor, e.data["status"]) for e in found] == [
        ("alert_group.acknowledged", "alice", "acknowledged"),
        ("alert_group.resolved", "alice", "resolved"),
    ]


def test_a_silenced_group_is_not_told_as_resolved(alerting: Database, clock: FakeClock) -> None:
    fire(alerting, clock(), signal(Action.TRIGGER, "disk-1", alertname="Disk", cluster="eu"))
    with alerting.write() as session:
        group_id = events(alerting)[0].subject_id
        alert_groups.silence_group(
            session, ALICE, clock(), group_id, clock() + timedelta(hours=1), "noisy"
        )
        session.commit()
    with alerting.read() as session:
        assert session.scalar(select(func.count()).select_from(SilenceRow)) >= 1
    assert kinds(alerting) == ["alert_group.triggered"]


# --- the module ---


class Recording:
    """A reactor that records what it saw and asks for one message per event."""

    def __init__(self, target: str, fail_on: set[str] | None = None) -> None:
        self.target = target
        self.fail_on = fail_on or set()
        self.seen: list[tuple[int, str]] = []

    def __call__(
        self, session: Session, event: LifecycleEvent, now: datetime
    ) -> list[dict[str, Any]]:
        self.seen.append((event.id, event.kind))
        if event.kind in self.fail_on:
            raise RuntimeError(f"{self.target} cannot handle {event.kind}")
        return [
            {
                "key": f"evt:{event.id}:{self.target}",
                "kind": "event",
                "channel": "webhook",
                "destination": f"http://127.0.0.1:9/{self.target}",
                "title": event.kind,
                "body": "",
                "payload": {"event": event.id},
                "now": now,
                "subject_type": event.subject_type,
                "subject_id": event.subject_id,
            }
        ]


def run(db: Database, module: LifecycleModule, now: datetime) -> datetime | None:
    with db.write() as session:
        deadline = module.update(session, now)
        session.commit()
    return deadline


def test_the_module_hands_every_event_to_every_reactor_in_order(
    core_config: Database, clock: FakeClock
) -> None:
    first = declare(core_config, clock())
    second = declare(core_config, clock(), title="DB slow")
    with core_config.write() as session:
        incidents.acknowledge(session, ALICE, clock(), first)
        session.commit()
    a, b = Recording("a"), Recording("b")
    module = LifecycleModule([a, b], owner="engine-1")
    # Messages were queued: the sender (before this module in a cycle) is to run at once.
    assert run(core_config, module, clock.advance(seconds=1)) == clock()
    ids = [e.id for e in events(core_config)]
    assert [i for i, _ in a.seen] == [i for i, _ in b.seen] == ids
    assert outbox_keys(core_config) == [f"evt:{i}:{t}" for i in ids for t in ("a", "b")]
    found = events(core_config)
    assert {(e.status, e.processed_by, e.processed_at, e.error) for e in found} == {
        ("done", "engine-1", clock(), None)
    }
    with core_config.read() as session:
        message = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).first()
    assert message is not None
    assert (message.subject_type, message.subject_id, message.status) == (
        "incident",
        first,
        "pending",
    )
    assert second in {e.subject_id for e in found}
    # Nothing pending: a second run hands out nothing again.
    assert run(core_config, module, clock()) is None
    assert len(a.seen) == len(ids)


def test_a_full_batch_asks_to_run_again_at_once(core_config: Database, clock: FakeClock) -> None:
    for n in range(5):
        declare(core_config, clock(), title=f"incident {n}")
    reactor = Recording("a")
    module = LifecycleModule([reactor], batch=2)
    assert run(core_config, module, clock()) == clock()
    assert run(core_config, module, clock()) == clock()
    assert run(core_config, module, clock()) == clock()  # the last event's message was queued
    assert run(core_config, module, clock()) is None
    assert len(reactor.seen) == 5
    assert len(outbox_keys(core_config)) == 5


def test_a_failing_reactor_blocks_neither_other_events_nor_other_reactors(
    core_config: Database, clock: FakeClock
) -> None:
    incident = declare(core_config, clock())
    with core_config.write() as session:
        incidents.acknowledge(session, ALICE, clock(), incident)
        session.commit()
    healthy = Recording("hooks")
    broken = Recording("comms", fail_on={"incident.status_changed"})
    module = LifecycleModule([broken, healthy])
    assert run(core_config, module, clock()) == clock()
    found = {e.kind: e for e in events(core_config)}
    failed = found["incident.status_changed"]
    assert failed.status == "failed"
    assert failed.error is not None
    assert "Recording: RuntimeError: comms cannot handle incident.status_changed" in failed.error
    assert found["incident.declared"].status == found["incident.acknowledged"].status == "done"
    # The healthy reactor's message for the failed event still goes out; the broken one's
    # messages for the other events too.
    assert sorted(outbox_keys(core_config)) == sorted(
        [f"evt:{e.id}:hooks" for e in found.values()]
        + [f"evt:{e.id}:comms" for e in found.values() if e.kind != "incident.status_changed"]
    )
    # Every event reached the broken reactor (a chunk that fails is run again event by
    # event, so some twice), and a failed event is not tried again by later runs.
    assert {kind for _, kind in broken.seen} == set(found)
    seen = len(broken.seen)
    assert run(core_config, module, clock()) is None
    assert len(broken.seen) == seen


def test_a_backlog_is_worked_off_a_chunk_at_a_time_between_other_modules(
    core_config: Database, clock: FakeClock
) -> None:
    for number in range(25):
        declare(core_config, clock(), title=f"incident {number}")
    recording = Recording("hooks")
    # A budget already spent: each run handles one chunk, then hands the loop back.
    module = LifecycleModule([recording], budget=0.0)
    assert run(core_config, module, clock()) == clock()
    assert len(recording.seen) == CHUNK
    assert sum(e.status == "done" for e in events(core_config)) == CHUNK
    while run(core_config, module, clock()) is not None:
        pass
    assert all(e.status == "done" for e in events(core_config))
    assert sorted(outbox_keys(core_config)) == sorted(
        f"evt:{e.id}:hooks" for e in events(core_config)
    )


def test_a_reactor_s_writes_are_undone_when_it_raises(
    core_config: Database, clock: FakeClock
) -> None:
    declare(core_config, clock())
    declare(core_config, clock(), title="second")

    def half_done(session: Session, event: LifecycleEvent, now: datetime) -> list[dict[str, Any]]:
        lifecycle.emit(session, kind="incident.update_posted", subject_type="incident",
                       subject_id=event.subject_id, actor="reactor", now=now)  # fmt: skip
        if event.data["title"] == "second":
            # A database error aborts a PostgreSQL transaction: the savepoint keeps it usable.
            session.execute(select(func.nonexistent_function()))
        return []

    module = LifecycleModule([half_done])
    run(core_config, module, clock())
    found = events(core_config)
    assert [(e.kind, e.status) for e in found] == [
        ("incident.declared", "done"),
        ("incident.declared", "failed"),
        ("incident.update_posted", "pending"),  # written by the first, kept; the second's undone
    ]
    assert "ProgrammingError" in (found[1].error or "") or "OperationalError" in (
        found[1].error or ""
    )


def test_a_malformed_message_fails_its_event_only(core_config: Database, clock: FakeClock) -> None:
    declare(core_config, clock())

    def sloppy(session: Session, event: LifecycleEvent, now: datetime) -> list[dict[str, Any]]:
        return [{"key": "x", "channel": "webhook"}]

    module = LifecycleModule([sloppy, Recording("ok")])
    run(core_config, module, clock())
    (event,) = events(core_config)
    assert event.status == "failed"
    assert "outbox message lacks kind, destination, title, body, payload, now" in (
        event.error or ""
    )
    assert outbox_keys(core_config) == [f"evt:{event.id}:ok"]


def test_a_crash_before_commit_repeats_nothing_and_loses_nothing(
    core_config: Database, clock: FakeClock
) -> None:
    declare(core_config, clock())
    declare(core_config, clock(), title="second")
    reactor = Recording("a")
    module = LifecycleModule([reactor])
    # Killed after the reactors ran and the messages were queued, before the commit.
    with core_config.write() as session:
        module.update(session, clock())
        session.rollback()
    assert outbox_keys(core_config) == []
    assert {e.status for e in events(core_config)} == {"pending"}
    # The next run (the same or another engine) does the whole batch, once.
    run(core_config, module, clock())
    run(core_config, module, clock())
    ids = [e.id for e in events(core_config)]
    assert outbox_keys(core_config) == [f"evt:{i}:a" for i in ids]
    # Even an event handed out again (a repair by hand) queues nothing twice: the keys.
    with core_config.write() as session:
        session.execute(update(LifecycleEventRow).values(status="pending"))
        session.commit()
    run(core_config, module, clock())
    assert outbox_keys(core_config) == [f"evt:{i}:a" for i in ids]
    assert {e.status for e in events(core_config)} == {"done"}


def test_two_claimers_never_share_an_event(core_config: Database, clock: FakeClock) -> None:
    if core_config.is_sqlite:
        pytest.skip("SQLite has one writer: claimers queue on the write lock instead")
    for n in range(6):
        declare(core_config, clock(), title=f"incident {n}")
    with core_config.write() as first:
        held = lifecycle.claim_pending(first, 4)
        with core_config.write() as second:
            second.execute(select(1))
            second.connection().exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            other = lifecycle.claim_pending(second, 10)
            second.commit()
        first.commit()
    assert len(held) == 4
    assert len(other) == 2
    assert {e.id for e in held}.isdisjoint({e.id for e in other})


# --- waking the engine ---


@pytest.fixture
def waker() -> Waker:
    found = Waker()
    lifecycle.wake_on_commit(found)
    return found


def test_a_commit_with_events_wakes_the_engine(
    core_config: Database, clock: FakeClock, waker: Waker
) -> None:
    incident = declare(core_config, clock())
    assert waker.wait(0) is not None  # the declaration's commit
    assert waker.wait(0) is None
    with core_config.write() as session:
        incidents.acknowledge(session, ALICE, clock(), incident)
        session.rollback()
    assert waker.wait(0) is None  # nothing committed, nobody woken
    woken = threading.Event()

    def wait() -> None:
        if waker.wait(5) is not None:
            woken.set()

    thread = threading.Thread(target=wait)
    thread.start()
    with core_config.write() as session:
        incidents.acknowledge(session, ALICE, clock(), incident)
        session.commit()
    thread.join(5)
    assert woken.is_set()
