"""The update-cadence module with a fake clock, on SQLite and PostgreSQL: the commander is
reminded when an update is due, the next escalation step is told when it is overdue, each
once per due time; a new update moves the deadlines on."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tocsin.core.actors import Actor, Scope
from tocsin.engine.cadence import CadenceModule
from tocsin.engine.oncall import EscalationModule
from tocsin.services import communications, incidents
from tocsin.services.comm_context import UpdateText
from tocsin.storage.comm_tables import UpdateReminderRow
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import OutboxRow
from tocsin.storage.tables import TimelineEventRow

ALICE = Actor("alice", frozenset(Scope), user_id="alice", source="api")
POLICY = """
escalation_policies:
  - id: comm-test
    steps:
      - {after: 0m, notify: [user:alice]}
      - {after: 10m, notify: [user:bob]}
      - {after: 20m, notify: [user:carol]}
services:
  - {id: api, name: Public API, team: platform, escalation_policy: comm-test}
"""


@pytest.fixture
def db(database: Database) -> Database:
    for name in ("core.yaml", "alerting.yaml", "oncall.yaml"):
        apply_yaml(database, (EXAMPLES / name).read_text())
    apply_yaml(database, POLICY)
    return database


def declare(db: Database, clock: FakeClock, severity: str, service: str = "api") -> int:
    decl = incidents.Declaration(title="Checkout fails", severity=severity, services=[service])
    with db.write() as session:
        incident = incidents.declare(session, ALICE, clock(), decl).id
        session.commit()
    return incident


def run(db: Database, module: object, now: datetime) -> datetime | None:
    with db.write() as session:
        deadline = module.update(session, now)  # type: ignore[attr-defined]
        session.commit()
    return deadline  # type: ignore[no-any-return]


def sent(db: Database, incident: int) -> list[tuple[str, str, str | None]]:
    """Return (kind, destination, user) of the cadence messages about an incident."""
    with db.read() as session:
        rows = session.scalars(
            select(OutboxRow)
            .where(OutboxRow.subject_id == incident, OutboxRow.kind.like("update_%"))
            .order_by(OutboxRow.id)
        )
        return [(r.kind, r.destination, r.user_id) for r in rows]


def timeline(db: Database, incident: int, *kinds: str) -> list[str]:
    with db.read() as session:
        rows = session.scalars(
            select(TimelineEventRow)
            .where(TimelineEventRow.incident_id == incident, TimelineEventRow.kind.in_(kinds))
            .order_by(TimelineEventRow.id)
        )
        return [r.text for r in rows]


ALICE_HOOK = "http://127.0.0.1:9911/alice"
BOB_HOOK = "http://127.0.0.1:9911/bob"


def test_due_reminds_the_commander_and_overdue_tells_the_next_step(
    db: Database, clock: FakeClock
) -> None:
    start = clock()
    incident = declare(db, clock, "P0")  # update_every 30m
    run(db, EscalationModule(), clock())  # step 1 pages alice
    clock.advance(minutes=2)
    with db.write() as session:
        incidents.acknowledge(session, ALICE, clock(), incident)  # before bob's step
        session.commit()
    cadence = CadenceModule(base_url="https://tocsin.example")
    assert run(db, cadence, start + timedelta(minutes=29)) == start + timedelta(minutes=30)
    assert sent(db, incident) == []

    # Reminded; the overdue time is far, so the module looks again within a minute (new
    # incidents may be due sooner).
    assert run(db, cadence, start + timedelta(minutes=30)) == start + timedelta(minutes=31)
    assert sent(db, incident) == [("update_reminder", ALICE_HOOK, "alice")]
    assert timeline(db, incident, "update_due") == [
        "Stakeholder update due (every 30 minutes); reminded Alice Example"
    ]
    run(db, cadence, start + timedelta(minutes=31))  # once per due time
    assert len(sent(db, incident)) == 1

    run(db, cadence, start + timedelta(minutes=45))
    assert sent(db, incident)[1:] == [("update_overdue", BOB_HOOK, "bob")]
    (overdue,) = timeline(db, incident, "update_overdue")
    assert overdue == (
        "Stakeholder update overdue (due 09:56 UTC); told Bob Example "
        "(escalation step 2 of comm-test)"
    )
    run(db, cadence, start + timedelta(minutes=50))
    assert len(sent(db, incident)) == 2
    with db.read() as session:
        stages = session.scalars(select(UpdateReminderRow.stage).order_by(UpdateReminderRow.at))
        assert list(stages) == ["due", "overdue"]
        message = session.scalars(select(OutboxRow).where(OutboxRow.kind == "update_overdue"))
        body = message.one().payload["webhook"]["body"]
    assert body["type"] == "incident.update_overdue"
    assert "https://tocsin.example/incidents/" in body["text"]


def test_an_update_moves_the_deadlines_on(db: Database, clock: FakeClock) -> None:
    start = clock()
    incident = declare(db, clock, "P0")
    cadence = CadenceModule()
    run(db, cadence, start + timedelta(minutes=30))
    assert len(sent(db, incident)) == 1
    clock.now = start + timedelta(minutes=35)
    with db.write() as session:
        communications.send_update(session, ALICE, clock(), incident, UpdateText("Rolled back"))
        session.commit()
    # Due again 30 minutes after the update; the old overdue time passes quietly.
    run(db, cadence, start + timedelta(minutes=45))
    assert len(sent(db, incident)) == 1
    run(db, cadence, start + timedelta(minutes=65))
    assert [k for k, _, _ in sent(db, incident)] == ["update_reminder", "update_reminder"]


def test_a_late_engine_reminds_and_escalates_at_once(db: Database, clock: FakeClock) -> None:
    start = clock()
    incident = declare(db, clock, "P1")  # every hour: due 60m, overdue 90m
    run(db, CadenceModule(), start + timedelta(hours=3))
    assert [k for k, _, _ in sent(db, incident)] == ["update_reminder", "update_overdue"]


def test_without_escalation_the_commanders_team_is_told(db: Database, clock: FakeClock) -> None:
    start = clock()
    incident = declare(db, clock, "P0", service="database")  # no escalation policy
    run(db, CadenceModule(), start + timedelta(minutes=45))
    assert sent(db, incident) == [
        ("update_reminder", ALICE_HOOK, "alice"),
        ("update_overdue", BOB_HOOK, "bob"),  # platform = alice (the commander) and bob
    ]
    assert "(team platform)" in timeline(db, incident, "update_overdue")[0]


def test_no_cadence_for_resolved_incidents_or_severities_without_one(
    db: Database, clock: FakeClock
) -> None:
    start = clock()
    quiet = declare(db, clock, "P3")  # no update_every
    done = declare(db, clock, "P0")
    with db.write() as session:
        incidents.change_status(session, ALICE, clock(), done, incidents.Status.RESOLVED)
        session.commit()
    deadline = run(db, CadenceModule(), start + timedelta(hours=5))
    assert sent(db, quiet) == []
    assert sent(db, done) == []
    # Nothing pending: the module looks again within a minute for new incidents.
    assert deadline == start + timedelta(hours=5, minutes=1)


def test_no_commander_means_no_reminder_but_a_record(db: Database, clock: FakeClock) -> None:
    start = clock()
    automation = Actor("alertmanager", frozenset(Scope), source="api")
    decl = incidents.Declaration(title="Disk full", severity="P0", services=["database"])
    with db.write() as session:
        incident = incidents.declare(session, automation, clock(), decl).id
        session.commit()
    run(db, CadenceModule(), start + timedelta(minutes=30))
    assert sent(db, incident) == []
    assert timeline(db, incident, "update_due") == [
        "Stakeholder update due (every 30 minutes); no commander to remind"
    ]
