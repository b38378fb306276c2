"""Group commit on SQLite: batches share a COMMIT, one failure never sinks the others."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import FakeClock
from tocsin.core.actors import SYSTEM
from tocsin.core.errors import InvalidInput
from tocsin.services import incidents
from tocsin.storage.db import Database
from tocsin.storage.tables import IncidentRow
from tocsin.storage.writer import GroupCommitWriter


def _count(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(IncidentRow)) or 0)


def _declare_job(clock: FakeClock, title: str, severity: str = "P1"):  # type: ignore[no-untyped-def]
    decl = incidents.Declaration(title=title, severity=severity, services=["api"])
    return lambda s: incidents.declare(s, SYSTEM, clock(), decl).id


def test_a_failing_job_rolls_back_only_itself(core_config: Database, clock: FakeClock) -> None:
    writer = GroupCommitWriter(core_config)
    gate = threading.Event()

    async def main() -> list[object]:
        # Hold the writer on a first job so the next three queue up and run as one batch.
        first = writer.submit(lambda _s: gate.wait(10))
        ok1 = writer.submit(_declare_job(clock, "first"))
        bad = writer.submit(_declare_job(clock, "bad", severity="P9"))
        ok2 = writer.submit(_declare_job(clock, "second"))
        gate.set()
        assert await asyncio.wait_for(first, 10) is True
        ids = [await asyncio.wait_for(ok1, 10), await asyncio.wait_for(ok2, 10)]
        with pytest.raises(InvalidInput):
            await asyncio.wait_for(bad, 10)
        return ids

    try:
        ids = asyncio.run(main())
    finally:
        writer.close()
    assert _count(core_config) == 2
    with core_config.read() as session:
        titles = session.scalars(select(IncidentRow.title).where(IncidentRow.id.in_(ids))).all()
    assert sorted(titles) == ["first", "second"]


def test_batched_declarations_get_unique_slugs_and_errors_per_item(
    core_config: Database, clock: FakeClock
) -> None:
    writer = GroupCommitWriter(core_config)
    gate = threading.Event()

    async def main() -> list[Any]:
        writer.submit(lambda _s: gate.wait(10))
        futures = []
        for n in range(30):
            decl = incidents.Declaration(
                title=f"storm {n}", severity="P9" if n == 7 else "P0", services=["api"]
            )
            futures.append(writer.submit_batched("declare", (SYSTEM, clock(), decl), _many))
        gate.set()
        results = []
        for n, future in enumerate(futures):
            if n == 7:
                with pytest.raises(InvalidInput):
                    await asyncio.wait_for(future, 10)
            else:
                results.append(await asyncio.wait_for(future, 10))
        return results

    try:
        results = asyncio.run(main())
    finally:
        writer.close()
    assert writer.batches <= 3  # the 29 declarations shared a transaction
    slugs = [r.incident.slug for r in results]
    assert len(set(slugs)) == 29
    assert slugs[0] == "incident-2026-03-14-001"
    assert all(len(r.checklist) == 7 for r in results)
    assert _count(core_config) == 29


def _many(session: Session, items: list[object]) -> list[object]:
    return list(incidents.declare_many(session, items))  # type: ignore[arg-type]


def test_many_concurrent_api_declarations_all_commit(api: object) -> None:
    from fastapi.testclient import TestClient

    assert isinstance(api, TestClient)
    errors: list[str] = []

    def declare(n: int) -> None:
        res = api.post("/api/v1/incidents", json={"title": f"c{n}", "severity": "P1"})
        if res.status_code != 201:
            errors.append(res.text)

    threads = [threading.Thread(target=declare, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    page = api.get("/api/v1/incidents", params={"limit": 100}).json()["items"]
    assert len(page) == 40
    assert len({i["slug"] for i in page}) == 40


def test_answers_on_an_event_loop_come_per_item_and_survive_a_caller_leaving(
    core_config: Database, clock: FakeClock
) -> None:
    """Awaited submissions: one loop callback per batch settles each item's own answer."""
    writer = GroupCommitWriter(core_config)
    gate = threading.Event()

    async def main() -> list[object]:
        writer.submit(lambda _s: gate.wait(10))
        waiting = []
        for n in range(6):
            decl = incidents.Declaration(
                title=f"async {n}", severity="P9" if n == 2 else "P1", services=["api"]
            )
            waiting.append(writer.submit_batched("declare", (SYSTEM, clock(), decl), _many))
        single = writer.submit(_declare_job(clock, "alone"))
        waiting[4].cancel()  # its caller went away; the write still happens
        gate.set()
        results = await asyncio.gather(*waiting, single, return_exceptions=True)
        return list(results)

    try:
        results = asyncio.run(main())
    finally:
        writer.close()
    assert isinstance(results[2], InvalidInput)
    assert isinstance(results[4], asyncio.CancelledError)
    assert [r.incident.title for r in (results[0], results[1], results[3], results[5])] == [  # type: ignore[union-attr]
        "async 0",
        "async 1",
        "async 3",
        "async 5",
    ]
    assert isinstance(results[6], int)
    assert _count(core_config) == 6  # five declarations (one refused) and the lone one
