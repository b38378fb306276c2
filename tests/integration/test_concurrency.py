"""Two writers on one incident: neither update is lost (row lock / serialised writers)."""

from __future__ import annotations

import threading

from tests.conftest import FakeClock
from tocsin.core.actors import SYSTEM
from tocsin.services import incidents, timeline
from tocsin.storage.db import Database

ROUNDS = 25


def test_concurrent_updates_never_lose_either(core_config: Database, clock: FakeClock) -> None:
    db = core_config
    with db.write() as session:
        incident_id = incidents.declare(
            session, SYSTEM, clock(), incidents.Declaration(title="race", severity="P2")
        ).id
        session.commit()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def retitle() -> None:
        try:
            barrier.wait()
            for i in range(ROUNDS):
                with db.write() as session:
                    incidents.update_incident(
                        session, SYSTEM, clock(), incident_id, incidents.Changes(title=f"title {i}")
                    )
                    session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def annotate() -> None:
        try:
            barrier.wait()
            for i in range(ROUNDS):
                with db.write() as session:
                    timeline.add_note(session, SYSTEM, clock(), incident_id, f"note {i}")
                    session.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=retitle), threading.Thread(target=annotate)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with db.read() as session:
        row = incidents.get(session, incident_id)
        events = timeline.events(session, incident_id)
    assert row.title == f"title {ROUNDS - 1}"
    # every write bumped the version exactly once: a lost update would leave it short
    assert row.version == 1 + 2 * ROUNDS
    assert sum(e.kind == "note" for e in events) == ROUNDS
    assert sum(e.kind == "field_changed" for e in events) == ROUNDS
