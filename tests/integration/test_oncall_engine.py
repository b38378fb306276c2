"""On-call behaviour with a fake clock: load a config, declare, fast-forward, assert who got
what and when. Timings are the issue's example (examples/oncall.yaml) unless a test adds its
own policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tests.oncall_harness import Harness
from tocsin.core.actors import SYSTEM
from tocsin.services import alert_groups, escalations, incidents
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import EscalationRow, NotificationLogRow

ALICE_HOOK = "http://127.0.0.1:9911/alice"
BOB_HOOK = "http://127.0.0.1:9911/bob"
ALICE_MAIL = "alice@example.test"
# Monday 2026-03-16 16:00 UTC: 17:00 in Berlin (primary: alice's week), 11:00 in Chicago
# (secondary: bob's day, inside the weekday 08:00-18:00 restriction).
T0 = datetime(2026, 3, 16, 16, 0, tzinfo=UTC)


@pytest.fixture
def oncall(core_config: Database) -> Database:
    apply_yaml(core_config, (EXAMPLES / "alerting.yaml").read_text())
    apply_yaml(core_config, (EXAMPLES / "oncall.yaml").read_text())
    return core_config


@pytest.fixture
def harness(oncall: Database) -> Iterator[Harness]:
    clock = FakeClock(T0)
    h = Harness(oncall, clock)
    yield h
    h.close()


def declare(h: Harness, severity: str = "P1", service: str = "api") -> int:
    with h.db.write() as session:
        incident = incidents.declare(
            session,
            SYSTEM,
            h.clock(),
            incidents.Declaration(title="API down", severity=severity, services=[service]),
        )
        session.commit()
        return incident.id


def act(h: Harness, incident_id: int, what: str) -> None:
    with h.db.write() as session:
        if what == "acknowledge":
            incidents.acknowledge(session, SYSTEM, h.clock(), incident_id)
        else:
            incidents.change_status(
                session, SYSTEM, h.clock(), incident_id, incidents.Status.RESOLVED
            )
        session.commit()


def log_kinds(h: Harness, incident_id: int) -> list[str]:
    with h.db.read() as session:
        return list(
            session.scalars(
                select(NotificationLogRow.kind)
                .where(
                    NotificationLogRow.subject_type == "incident",
                    NotificationLogRow.subject_id == incident_id,
                )
                .order_by(NotificationLogRow.id)
            )
        )


def test_the_example_policy_pages_in_order_and_repeats_twice(harness: Harness) -> None:
    incident = declare(harness)
    harness.forward(hours=3)
    # Steps at 0 / 15 / 30 min, a pass every 45 min (the last gap repeated), 3 passes;
    # alice's own rules add her email 5 min after each of her pages; carol has no way to be
    # reached, which is logged, not silently dropped.
    assert harness.timeline(T0) == [
        (0, ALICE_HOOK),
        (5, ALICE_MAIL),
        (15, BOB_HOOK),
        (45, ALICE_HOOK),
        (50, ALICE_MAIL),
        (60, BOB_HOOK),
        (90, ALICE_HOOK),
        (95, ALICE_MAIL),
        (105, BOB_HOOK),
    ]
    kinds = log_kinds(harness, incident)
    assert kinds.count("step_fired") == 9
    assert kinds.count("not_notified") == 3  # carol, three passes
    assert kinds[-1] == "escalation_exhausted" or "escalation_exhausted" in kinds
    # Every message went out exactly once, with its own key.
    keys = [s.key for s in harness.sent()]
    assert len(keys) == len(set(keys))


def test_acknowledge_stops_the_escalation_and_pending_rules(harness: Harness) -> None:
    incident = declare(harness)
    harness.forward(minutes=3)
    act(harness, incident, "acknowledge")
    harness.forward(hours=3)
    assert harness.timeline(T0) == [(0, ALICE_HOOK)]  # no email at 5 min, no bob at 15
    assert "escalation_acknowledged" in log_kinds(harness, incident)


def test_resolve_stops_everything(harness: Harness) -> None:
    incident = declare(harness)
    harness.forward(minutes=16)
    act(harness, incident, "resolve")
    harness.forward(hours=3)
    assert harness.timeline(T0) == [(0, ALICE_HOOK), (5, ALICE_MAIL), (15, BOB_HOOK)]
    with harness.db.read() as session:
        row = escalations.open_escalation(session, "incident", incident)
        assert row is not None
        assert row.status == "resolved"
        assert row.next_at is None


def test_an_acknowledgement_times_out_and_restarts_the_policy(harness: Harness) -> None:
    apply_yaml(
        harness.db,
        """
escalation_policies:
  - id: api-default
    ack_timeout: 20m
    steps:
      - {after: 0m, notify: [schedule:primary]}
      - {after: 15m, notify: [schedule:secondary]}
""",
    )
    incident = declare(harness)
    harness.forward(minutes=2)
    act(harness, incident, "acknowledge")
    harness.forward(minutes=40)
    # Acked at 2 min, timed out at 22 min: the policy starts over from step 1 at 22 min.
    assert harness.timeline(T0) == [(0, ALICE_HOOK), (22, ALICE_HOOK), (27, ALICE_MAIL),
                                     (37, BOB_HOOK)]  # fmt: skip
    assert "ack_timed_out" in log_kinds(harness, incident)


def test_sla_breach_is_recorded_and_fires_the_extra_step(harness: Harness) -> None:
    apply_yaml(
        harness.db,
        """
escalation_policies:
  - id: api-default
    on_sla_breach: {notify: [user:bob]}
    steps:
      - {after: 0m, notify: [schedule:primary]}
      - {after: 1h, notify: [team:platform]}
""",
    )
    incident = declare(harness, severity="P0")  # respond_within 15m
    harness.forward(minutes=20)
    assert harness.timeline(T0) == [(0, ALICE_HOOK), (5, ALICE_MAIL), (15, BOB_HOOK)]
    assert log_kinds(harness, incident).count("sla_breached") == 1
    sla_page = next(s for s in harness.sent() if s.destination == BOB_HOOK)
    assert sla_page.payload["escalation"]["sla_breach"] is True  # type: ignore[index]


def test_no_breach_when_acknowledged_in_time(harness: Harness) -> None:
    incident = declare(harness, severity="P0")
    harness.forward(minutes=10)
    act(harness, incident, "acknowledge")
    harness.forward(minutes=30)
    assert "sla_breached" not in log_kinds(harness, incident)


def test_round_robin_takes_turns_across_escalations(harness: Harness) -> None:
    apply_yaml(
        harness.db,
        """
escalation_policies:
  - id: api-default
    steps:
      - {after: 0m, notify: [user:alice, user:bob], round_robin: true}
""",
    )
    for _ in range(3):
        declare(harness)
        harness.forward(minutes=1)
    firsts = [s.destination for s in harness.sent() if s.channel == "webhook"]
    assert firsts == [ALICE_HOOK, BOB_HOOK, ALICE_HOOK]


def test_team_target_pages_every_member(harness: Harness) -> None:
    apply_yaml(
        harness.db,
        """
escalation_policies:
  - id: api-default
    steps:
      - {after: 0m, notify: [team:platform]}
""",
    )
    declare(harness)
    harness.forward(minutes=1)
    assert sorted(d for _, d in harness.timeline(T0)) == [ALICE_HOOK, BOB_HOOK]


def test_an_override_changes_who_is_paged(harness: Harness) -> None:
    from tocsin.services import schedules

    with harness.db.write() as session:
        schedules.add_override(
            session, "primary", kind="replace", user_id="bob", replaces="alice",
            starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=1), note="swap",
            actor="alice", now=T0,
        )  # fmt: skip
        session.commit()
    declare(harness)
    harness.forward(minutes=1)
    assert harness.timeline(T0) == [(0, BOB_HOOK)]


def test_low_urgency_uses_the_low_rules(harness: Harness) -> None:
    declare(harness, severity="P2")  # pages: false → low urgency
    harness.forward(minutes=20)
    # alice: low rule is email at 0m; bob has no low rules, so his high rules are used.
    assert harness.timeline(T0) == [(0, ALICE_MAIL), (15, BOB_HOOK)]


def test_a_refused_message_moves_on_to_the_next_rule_at_once(harness: Harness) -> None:
    harness.webhook.refuse.add(ALICE_HOOK)
    declare(harness)
    harness.forward(minutes=2)
    # The webhook failed for good at 0 min: the 5-min email went out at once instead.
    assert [(m, d) for m, d in harness.timeline(T0)] == [(0, ALICE_MAIL)]
    with harness.db.read() as session:
        kinds = list(session.scalars(select(NotificationLogRow.kind)))
    assert "message_failed" in kinds


def test_a_late_engine_fires_every_missed_step_once(harness: Harness) -> None:
    declare(harness)
    # The engine was down for 40 minutes: nothing ran in between.
    harness.clock.advance(minutes=40)
    harness.settle()
    harness.settle()
    sent = harness.sent()
    assert sorted(s.destination for s in sent) == sorted([ALICE_HOOK, ALICE_MAIL, BOB_HOOK])
    assert all(s.at == T0 + timedelta(minutes=40) for s in sent)


def test_alert_groups_escalate_and_stop_on_acknowledge(harness: Harness) -> None:
    from tocsin.core.alerts import Action, Signal
    from tocsin.services.alerting_config import alerting_config
    from tocsin.services.ingest import Delivery, ingest_many

    with harness.db.write() as session:
        integration = alerting_config(session).integrations["am-production-0001"]
        signal = Signal(Action.TRIGGER, "disk-1", "disk full", severity="warning", source="db1")
        delivery = Delivery(integration, "generic", "{}", harness.clock(), (signal,))
        (result,) = ingest_many(session, [delivery])
        session.commit()
    assert not isinstance(result, Exception)
    harness.forward(minutes=1)
    assert harness.timeline(T0)[0] == (0, ALICE_MAIL)  # a warning is low urgency
    with harness.db.write() as session:
        group_id = session.scalars(select(EscalationRow.subject_id)).one()
        alert_groups.acknowledge(session, SYSTEM, harness.clock(), group_id)
        session.commit()
    before = len(harness.sent())
    harness.forward(hours=2)
    assert len(harness.sent()) == before
