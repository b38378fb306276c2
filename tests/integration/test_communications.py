"""Stakeholder communication on SQLite and PostgreSQL: automatic notices from lifecycle events,
the commander's updates (preview, send), people audiences, template choice and fallbacks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tocsin.core.actors import Actor, Scope
from tocsin.core.errors import IllegalTransition
from tocsin.core.incidents import Status
from tocsin.core.lifecycle import LifecycleEvent
from tocsin.services import communications, incidents, lifecycle, outbox
from tocsin.services.comm_context import UpdateText
from tocsin.storage.comm_tables import MessageTemplateRow, StakeholderUpdateRow
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import OutboxRow
from tocsin.storage.tables import TimelineEventRow

BASE = "https://tocsin.example"
ALICE = Actor("alice", frozenset(Scope), user_id="alice", source="api")

COMMUNICATION = """
audiences:
  - {id: stakeholders, type: email, to: [stakeholders@example.test, execs@example.test]}
  - {id: incident-room, type: slack, create_incident_channel: true, invite: [commander, responders]}
  - {id: ops-feed, type: webhook, url: "http://127.0.0.1:9911/ops", secret: example-webhook-secret}
  - {id: status, type: statuspage}
  - {id: managers, type: people, users: [bob], teams: [platform]}
  - {id: pager, type: sms, to: ["+15550100001", "+15550100002"]}
  - {id: ops-room, type: slack, channel: "#ops"}
communication:
  - severities: [P0, P1]
    audiences: [incident-room, stakeholders, ops-feed, status]
    messages: [initial, update, resolution]
  - {severities: [P0], audiences: [managers, pager, ops-room], messages: [initial]}
  - severities: [P2]
    audiences: [ops-feed]
    messages: [initial, resolution]
"""


@pytest.fixture
def db(database: Database) -> Database:
    for name in ("core.yaml", "alerting.yaml", "oncall.yaml"):
        apply_yaml(database, (EXAMPLES / name).read_text())
    apply_yaml(database, COMMUNICATION)
    return database


def declare(db: Database, clock: FakeClock, severity: str = "P1", **kw: Any) -> int:
    decl = incidents.Declaration(
        title="Checkout fails", severity=severity, services=["api"],
        customer_impact="Some checkouts fail", **kw,
    )  # fmt: skip
    with db.write() as session:
        row = incidents.declare(session, ALICE, clock(), decl)
        session.commit()
        return row.id


def events(db: Database, incident_id: int, kind: str) -> list[LifecycleEvent]:
    with db.read() as session:
        rows = lifecycle.events_of(session, "incident", incident_id)
        return [lifecycle.to_event(r) for r in rows if r.kind == kind]


def react(db: Database, event: LifecycleEvent, now: datetime) -> list[dict[str, Any]]:
    """Run the reactor as the lifecycle module does: queue what it returns, commit."""
    with db.write() as session:
        messages = communications.on_lifecycle_event(session, event, now, base_url=BASE)
        outbox.enqueue_many(session, messages)
        session.commit()
    return messages


def by_audience(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        out.setdefault(message["key"].split(":")[3], []).append(message)
    return out


def timeline_kinds(db: Database, incident_id: int) -> list[TimelineEventRow]:
    with db.read() as session:
        return list(
            session.scalars(
                select(TimelineEventRow)
                .where(TimelineEventRow.incident_id == incident_id)
                .order_by(TimelineEventRow.id)
            )
        )


def test_declaring_sends_the_initial_notice_to_every_audience(
    db: Database, clock: FakeClock
) -> None:
    incident = declare(db, clock, "P0")
    (event,) = events(db, incident, "incident.declared")
    messages = react(db, event, clock())
    sent = by_audience(messages)
    assert sorted(sent) == ["incident-room", "managers", "ops-feed", "ops-room", "pager",
                            "stakeholders"]  # fmt: skip
    slug = f"incident-{clock().date().isoformat()}-001"

    (room,) = sent["incident-room"]
    assert room["channel"] == "slack"
    assert room["destination"] == f"#{slug}"
    slack = room["payload"]["slack"]
    assert slack["ensure_channel"]
    assert slack["pin"]
    assert slack["topic"] == "[P0] Checkout fails"
    # The declarer is commander (alice); she is also the one paged first.
    assert slack["invite"]["emails"] == ["alice@example.test"]
    assert [a["action"] for a in slack["actions"]] == ["acknowledge", "resolve"]
    assert room["title"] == "🚨 INCIDENT ALERT - P0: Checkout fails"
    assert "Incident Commander: @alice" in room["body"]
    assert f"Channel: #{slug}" in room["body"]
    assert "Next Update: 2026-03-14 09:56 UTC" in room["body"]  # update_every 30m from 09:26

    mails = sent["stakeholders"]
    assert [m["destination"] for m in mails] == ["stakeholders@example.test", "execs@example.test"]
    assert mails[0]["payload"]["email"]["thread"] == f"incident-{incident}"
    assert "<h2>🚨 INCIDENT ALERT - P0: Checkout fails</h2>" in mails[0]["payload"]["email"]["html"]
    assert mails[0]["key"] == f"comm:{incident}:e{event.id}:stakeholders:stakeholders@example.test"

    (hook,) = sent["ops-feed"]
    assert hook["destination"] == "http://127.0.0.1:9911/ops"
    assert hook["payload"]["webhook"]["secret"] == "example-webhook-secret"
    body = hook["payload"]["webhook"]["body"]
    assert body["message_kind"] == "initial"
    assert body["incident"]["ref"] == f"INC-{incident}"
    assert body["text"] == room["body"]

    assert [m["destination"] for m in sent["pager"]] == ["+15550100001", "+15550100002"]
    assert sent["ops-room"][0]["destination"] == "#ops"
    assert sent["ops-room"][0]["payload"] == {"slack": {}}
    # People are reached through what pages them first: alice's webhook (her email comes 5
    # minutes later in her rules), bob's webhook; bob is named and in the team: once.
    assert [(m["user_id"], m["contact_method_id"]) for m in sent["managers"]] == [
        ("bob", "bob-hook"),
        ("alice", "alice-hook"),
    ]
    # The status page's text is recorded, not sent.
    events_ = timeline_kinds(db, incident)
    status = [e for e in events_ if e.kind == "status_page_update"]
    assert len(status) == 1
    assert status[0].data["public_status"] == "Investigating"
    told = [e for e in events_ if e.kind == "stakeholder_update"]
    assert told[-1].text == (
        "Initial notice sent to incident-room, stakeholders, ops-feed, status, managers, pager, "
        "ops-room"
    )


def test_an_event_is_answered_once(db: Database, clock: FakeClock) -> None:
    incident = declare(db, clock, "P1")
    (event,) = events(db, incident, "incident.declared")
    assert react(db, event, clock())
    assert react(db, event, clock()) == []
    with db.read() as session:
        rows = session.scalars(select(StakeholderUpdateRow)).all()
        assert [(r.kind, r.event_id) for r in rows] == [("initial", event.id)]


def test_rules_choose_audiences_and_kinds_by_severity(db: Database, clock: FakeClock) -> None:
    p2 = declare(db, clock, "P2")
    (event,) = events(db, p2, "incident.declared")
    assert sorted(by_audience(react(db, event, clock()))) == ["ops-feed"]
    p3 = declare(db, clock, "P3")
    (event,) = events(db, p3, "incident.declared")
    assert react(db, event, clock()) == []
    # P2 gets no updates: a preview reaches nobody.
    with db.read() as session:
        preview = communications.preview_update(session, p2, clock(), UpdateText("x"))
    assert preview.kind == "update"
    assert preview.audiences == []


def test_raising_the_severity_tells_the_audiences_it_adds(db: Database, clock: FakeClock) -> None:
    incident = declare(db, clock, "P2")
    (declared,) = events(db, incident, "incident.declared")
    react(db, declared, clock())
    clock.advance(minutes=10)
    with db.write() as session:
        incidents.update_incident(
            session, ALICE, clock(), incident, incidents.Changes(severity="P0")
        )
        session.commit()
    (raised,) = events(db, incident, "incident.severity_changed")
    sent = by_audience(react(db, raised, clock()))
    # ops-feed already had its initial notice as a P2.
    assert sorted(sent) == ["incident-room", "managers", "ops-room", "pager", "stakeholders"]
    assert sent["stakeholders"][0]["title"].startswith("🚨 INCIDENT ALERT - P0")


def test_resolving_sends_the_resolution_notice(db: Database, clock: FakeClock) -> None:
    incident = declare(db, clock, "P1")
    clock.advance(minutes=50)
    with db.write() as session:
        incidents.change_status(
            session, ALICE, clock(), incident, Status.RESOLVED, resolution="Rolled back v2.3"
        )
        session.commit()
    (event,) = events(db, incident, "incident.resolved")
    sent = by_audience(react(db, event, clock()))
    assert sorted(sent) == ["incident-room", "ops-feed", "stakeholders"]
    room = sent["incident-room"][0]
    assert room["title"] == "✅ INCIDENT RESOLVED - P1: Checkout fails"
    assert "Duration: 50m" in room["body"]
    assert "Root Cause: Rolled back v2.3" in room["body"]
    # Later messages go to the same channel but do not recreate, re-invite or pin.
    assert room["payload"]["slack"] == {"ensure_channel": True}


def test_a_resolution_is_not_told_when_reopened_before_it_goes_out(
    db: Database, clock: FakeClock
) -> None:
    incident = declare(db, clock, "P1")
    with db.write() as session:
        incidents.change_status(session, ALICE, clock(), incident, Status.RESOLVED)
        incidents.change_status(session, ALICE, clock(), incident, Status.INVESTIGATING)
        session.commit()
    (event,) = events(db, incident, "incident.resolved")
    assert react(db, event, clock()) == []


def test_the_commander_previews_and_sends_an_update(db: Database, clock: FakeClock) -> None:
    incident = declare(db, clock, "P1")
    clock.advance(minutes=20)
    text = UpdateText("Rolled back the payment client\nWatching error rates", "Confirm", "1h")
    with db.read() as session:
        preview = communications.preview_update(
            session, incident, clock(), text, status=Status.IDENTIFIED, base_url=BASE
        )
    assert preview.kind == "update"
    assert preview.status == "identified"
    assert [a.audience for a in preview.audiences] == [
        "incident-room", "stakeholders", "ops-feed", "status",
    ]  # fmt: skip
    room = preview.audiences[0]
    assert room.title == "📊 INCIDENT UPDATE - P1: Checkout fails"
    assert "Status: IDENTIFIED" in room.body
    assert "- Rolled back the payment client\n- Watching error rates" in room.body
    assert "ETA: 1h" in room.body
    assert "Next Update: 2026-03-14 10:46 UTC" in room.body  # now + 1h (P1)
    assert preview.audiences[1].recipients == ["stakeholders@example.test", "execs@example.test"]
    assert preview.audiences[2].recipients == ["127.0.0.1"]  # the webhook's secret path hidden
    with db.read() as session:  # a preview changes nothing
        assert incidents.get(session, incident).status == "triggered"

    with db.write() as session:
        sent = communications.send_update(
            session, ALICE, clock(), incident, text, status=Status.IDENTIFIED, base_url=BASE
        )
        session.commit()
        update_id = sent.update.id
    assert sent.queued == 4  # room, two emails, webhook; the status page is recorded
    assert [a.body for a in sent.preview.audiences] == [a.body for a in preview.audiences]
    with db.read() as session:
        assert incidents.get(session, incident).status == "identified"
        keys = session.scalars(select(OutboxRow.idempotency_key).where(
            OutboxRow.idempotency_key.like(f"comm:{incident}:u%"))).all()  # fmt: skip
        assert f"comm:{incident}:u{update_id}:ops-feed:http://127.0.0.1:9911/ops" in keys
        posted = [
            e for e in lifecycle.events_of(session, "incident", incident)
            if e.kind == "incident.update_posted"
        ]  # fmt: skip
        assert posted[0].data["update_id"] == update_id
        (row,) = communications.list_updates(session, incident)
        assert (row.kind, row.status, row.messages) == ("update", "identified", 4)
    kinds = [e.kind for e in timeline_kinds(db, incident)]
    assert kinds[-3:] == ["status_changed", "status_page_update", "stakeholder_update"]


def test_an_update_that_resolves_is_the_resolution_notice(db: Database, clock: FakeClock) -> None:
    incident = declare(db, clock, "P1")
    clock.advance(minutes=30)
    with db.write() as session:
        sent = communications.send_update(
            session, ALICE, clock(), incident, UpdateText("Fixed by a rollback"),
            status=Status.RESOLVED,
        )  # fmt: skip
        session.commit()
    assert sent.preview.kind == "resolution"
    assert sent.preview.audiences[0].title.startswith("✅ INCIDENT RESOLVED")
    (event,) = events(db, incident, "incident.resolved")
    assert react(db, event, clock()) == []  # already told


def test_an_illegal_status_is_refused_before_anything_is_sent(
    db: Database, clock: FakeClock
) -> None:
    incident = declare(db, clock, "P1")
    with db.write() as session:
        incidents.change_status(session, ALICE, clock(), incident, Status.RESOLVED)
        incidents.change_status(session, ALICE, clock(), incident, Status.CLOSED)
        session.commit()
    with db.read() as session, pytest.raises(IllegalTransition):
        communications.preview_update(session, incident, clock(), UpdateText("x"),
                                      status=Status.MONITORING)  # fmt: skip


def test_missing_data_renders_sensibly(db: Database, clock: FakeClock) -> None:
    decl = incidents.Declaration(title="Disk filling up", severity="P0")
    automation = Actor("alertmanager", frozenset(Scope), source="api")
    with db.write() as session:
        incident = incidents.declare(session, automation, clock(), decl).id
        session.commit()
    with db.read() as session:
        preview = communications.preview_update(session, incident, clock(), UpdateText(""))
    body = preview.audiences[0].body
    assert "Incident Commander: not assigned yet" in body
    assert "Impact: Being assessed" in body
    assert "Progress" not in body


def test_the_most_specific_template_wins(db: Database, clock: FakeClock) -> None:
    apply_yaml(
        db,
        """
message_templates:
  - {kind: update, title: "U {{ ref }}", body: "generic"}
  - {kind: update, severity: P1, title: "U1 {{ ref }}", body: "for P1"}
  - {kind: update, severity: P1, audience_type: slack, title: "S1", body: "*{{ status_label }}*"}
  - {kind: update, service: database, title: "DB", body: "db"}
""",
    )
    incident = declare(db, clock, "P1")
    with db.read() as session:
        preview = communications.preview_update(session, incident, clock(), UpdateText("x"))
    shown = {a.audience: (a.title, a.body, a.template) for a in preview.audiences}
    assert shown["incident-room"] == ("S1", "*Investigating*", "update severity=P1 audience=slack")
    assert shown["stakeholders"] == (f"U1 INC-{incident}", "for P1", "update severity=P1")


def test_a_template_that_fails_at_send_time_falls_back_to_the_default(
    db: Database, clock: FakeClock
) -> None:
    incident = declare(db, clock, "P1")
    with db.write() as session:  # written behind apply's back: apply would refuse it
        session.add(MessageTemplateRow(key="update", kind="update", title="{{ nope.x }}",
                                       body="b"))  # fmt: skip
        session.commit()
    with db.write() as session:
        sent = communications.send_update(session, ALICE, clock(), incident, UpdateText("hi"))
        session.commit()
    first = sent.preview.audiences[0]
    assert first.title.startswith("📊 INCIDENT UPDATE")
    assert first.error
    assert "template 'update' failed" in first.error
    assert sent.queued == 4


def test_communication_state_names_audiences_and_deadlines(db: Database, clock: FakeClock) -> None:
    incident = declare(db, clock, "P0")
    start = clock()
    with db.read() as session:
        state = communications.communication_state(session, incident, clock())
    assert state.audiences["pager"] == ["initial"]
    assert state.audiences["stakeholders"] == ["initial", "update", "resolution"]
    assert state.update_every == "30 minutes"
    assert (state.next_update_at, state.due, state.overdue) == (
        start.replace(minute=56), False, False
    )  # fmt: skip
    clock.advance(minutes=46)
    with db.read() as session:
        state = communications.communication_state(session, incident, clock())
    assert state.due
    assert state.overdue


def test_teams_mattermost_and_on_call_people(db: Database, clock: FakeClock) -> None:
    apply_yaml(
        db,
        """
audiences:
  - {id: teams-room, type: teams, url: "https://teams.example/hook"}
  - {id: mm-room, type: mattermost, url: "https://mm.example/hooks/abc"}
  - {id: on-call, type: people, schedules: [primary]}
communication:
  - {severities: [P1], audiences: [teams-room, mm-room, on-call]}
""",
    )
    incident = declare(db, clock, "P1")
    (event,) = events(db, incident, "incident.declared")
    sent = by_audience(react(db, event, clock()))
    (teams,) = sent["teams-room"]
    assert (teams["channel"], teams["destination"], teams["payload"]) == (
        "teams", "https://teams.example/hook", {},
    )  # fmt: skip
    assert sent["mm-room"][0]["channel"] == "mattermost"
    # The primary schedule (weekly from Monday 2026-01-05, alice then bob) has bob on call in
    # the week of 2026-03-14: his first method.
    assert [(m["user_id"], m["channel"]) for m in sent["on-call"]] == [("bob", "webhook")]
    assert sent["on-call"][0]["payload"]["webhook"]["secret"] is None
