"""Who the engine pages, by rotation type and across DST changes (America/Chicago,
Europe/Berlin): load a schedule, declare at a moment, see whose pager rings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tests.oncall_harness import Harness
from tocsin.core.actors import SYSTEM
from tocsin.services import incidents
from tocsin.storage.db import Database

HOOKS = {"http://127.0.0.1:9911/alice": "alice", "http://127.0.0.1:9911/bob": "bob"}


def paged(database: Database, zone: str, layer: str, at: datetime) -> list[str]:
    """Return who is paged first for an incident declared at `at` on schedule `rot`."""
    apply_yaml(database, (EXAMPLES / "alerting.yaml").read_text())
    apply_yaml(database, (EXAMPLES / "oncall.yaml").read_text())
    apply_yaml(
        database,
        f"""
schedules:
  - id: rot
    time_zone: {zone}
    layers:
      - {layer}
escalation_policies:
  - id: api-default
    steps:
      - {{after: 0m, notify: [schedule:rot]}}
""",
    )
    h = Harness(database, FakeClock(at))
    try:
        with database.write() as session:
            incidents.declare(
                session,
                SYSTEM,
                at,
                incidents.Declaration(title="Down", severity="P1", services=["api"]),
            )
            session.commit()
        h.settle()
        return [HOOKS[s.destination] for s in h.sent() if s.destination in HOOKS]
    finally:
        h.close()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CASES = [
    # (zone, layer, moment UTC, who) — two moments either side of one handoff per case.
    ("UTC", "{rotation: {type: hourly, handoff: ':30', start: '2026-03-16'}, "
     "users: [alice, bob]}", "2026-03-16T00:29", []),
    ("UTC", "{rotation: {type: hourly, handoff: ':30', start: '2026-03-16'}, "
     "users: [alice, bob]}", "2026-03-16T00:30", ["alice"]),
    ("UTC", "{rotation: {type: hourly, handoff: ':30', start: '2026-03-16'}, "
     "users: [alice, bob]}", "2026-03-16T01:30", ["bob"]),
    ("Europe/Berlin", "{rotation: {type: weekly, handoff: 'monday 09:00', start: '2026-01-05'},"
     " users: [alice, bob]}", "2026-01-12T07:59", ["alice"]),
    ("Europe/Berlin", "{rotation: {type: weekly, handoff: 'monday 09:00', start: '2026-01-05'},"
     " users: [alice, bob]}", "2026-01-12T08:00", ["bob"]),
    ("UTC", "{rotation: {type: monthly, handoff: '1 09:00', start: '2026-01-01'}, "
     "users: [alice, bob]}", "2026-02-01T08:59", ["alice"]),
    ("UTC", "{rotation: {type: monthly, handoff: '1 09:00', start: '2026-01-01'}, "
     "users: [alice, bob]}", "2026-02-01T09:00", ["bob"]),
    ("UTC", "{rotation: {type: custom, length: 12h, handoff: '08:00', start: '2026-03-16'}, "
     "users: [alice, bob]}", "2026-03-16T19:59", ["alice"]),
    ("UTC", "{rotation: {type: custom, length: 12h, handoff: '08:00', start: '2026-03-16'}, "
     "users: [alice, bob]}", "2026-03-16T20:00", ["bob"]),
    # Chicago springs forward on 2026-03-08: the 09:00 handoff is at 14:00 UTC that day
    # (15:00 UTC the day before).
    ("America/Chicago", "{rotation: {type: daily, handoff: '09:00', start: '2026-03-01'}, "
     "users: [alice, bob]}", "2026-03-08T13:59", ["alice"]),
    ("America/Chicago", "{rotation: {type: daily, handoff: '09:00', start: '2026-03-01'}, "
     "users: [alice, bob]}", "2026-03-08T14:00", ["bob"]),
    # Berlin springs forward on 2026-03-29: 02:30 does not exist; that handoff is at 03:30
    # local, 01:30 UTC.
    ("Europe/Berlin", "{rotation: {type: daily, handoff: '02:30', start: '2026-03-22'}, "
     "users: [alice, bob]}", "2026-03-29T01:29", ["alice"]),
    ("Europe/Berlin", "{rotation: {type: daily, handoff: '02:30', start: '2026-03-22'}, "
     "users: [alice, bob]}", "2026-03-29T01:30", ["bob"]),
    # Berlin falls back on 2026-10-25: 09:00 local is 08:00 UTC that day.
    ("Europe/Berlin", "{rotation: {type: daily, handoff: '09:00', start: '2026-10-18'}, "
     "users: [alice, bob]}", "2026-10-25T07:59", ["alice"]),
    ("Europe/Berlin", "{rotation: {type: daily, handoff: '09:00', start: '2026-10-18'}, "
     "users: [alice, bob]}", "2026-10-25T08:00", ["bob"]),
    # Restricted to weekdays 09:00-17:00 local: nobody on a Saturday.
    ("Europe/Berlin", "{rotation: {type: daily, handoff: '09:00', start: '2026-03-02'}, "
     "users: [alice, bob], restrict: [{days: [mon, tue, wed, thu, fri], from: '09:00', "
     "to: '17:00'}]}", "2026-03-14T12:00", []),
    ("Europe/Berlin", "{rotation: {type: daily, handoff: '09:00', start: '2026-03-02'}, "
     "users: [alice, bob], restrict: [{days: [mon, tue, wed, thu, fri], from: '09:00', "
     "to: '17:00'}]}", "2026-03-13T12:00", ["bob"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("zone", "layer", "moment", "who"),
    CASES,
    ids=[f"{z.split('/')[-1]}-{m}" for z, _, m, _ in CASES],
)
def test_who_is_paged(
    core_config: Database, zone: str, layer: str, moment: str, who: list[str]
) -> None:
    assert paged(core_config, zone, layer, utc(moment)) == who
