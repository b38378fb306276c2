"""The two escalation matrices of the reference runbooks, as configuration, play out on time:
004 (0 / 15 / 30 / 60 / 120 min) and 000 (L1 / L2 / L3, different times for P1 and P2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tests.oncall_harness import Harness
from tocsin.core.actors import SYSTEM
from tocsin.services import incidents
from tocsin.storage.db import Database

# Monday 2026-03-16 10:00 UTC: week 10 of both rotations (even: the first user).
T0 = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)


def harness_for(database: Database, seed: str) -> Harness:
    apply_yaml(database, (EXAMPLES / "seeds" / seed).read_text())
    return Harness(database, FakeClock(T0))


@pytest.fixture
def screenshot(database: Database) -> Iterator[Harness]:
    h = harness_for(database, "004_screenshot_service.yaml")
    yield h
    h.close()


@pytest.fixture
def image(database: Database) -> Iterator[Harness]:
    h = harness_for(database, "000_image_optimization.yaml")
    yield h
    h.close()


def declare(h: Harness, severity: str, service: str) -> None:
    with h.db.write() as session:
        incidents.declare(
            session,
            SYSTEM,
            h.clock(),
            incidents.Declaration(title="Down", severity=severity, services=[service]),
        )
        session.commit()


def test_seed_004_matrix(screenshot: Harness) -> None:
    declare(screenshot, "SEV1", "screenshot-algo")
    screenshot.forward(hours=3)
    base = "http://127.0.0.1:9912/"
    assert screenshot.timeline(T0) == [
        (0, base + "oncall-a"),
        (15, base + "oncall-b"),
        (30, base + "lead"),
        (60, base + "em"),
        (120, base + "vp"),
    ]


@pytest.mark.parametrize(
    ("severity", "l2", "l3"), [("P1", 30, 45), ("P2", 60, 90)], ids=["P1", "P2"]
)
def test_seed_000_levels_by_severity(image: Harness, severity: str, l2: int, l3: int) -> None:
    declare(image, severity, "image-optimizer")
    image.forward(hours=3)
    base = "http://127.0.0.1:9913/"
    pages = [(m, d) for m, d in image.timeline(T0) if d.startswith("http")]
    assert pages == [(0, base + "engineer-a"), (l2, base + "senior"), (l3, base + "manager")]


def test_seed_000_p3_stays_with_the_on_call_engineer(image: Harness) -> None:
    declare(image, "P3", "image-optimizer")  # pages: false → low urgency: email
    image.forward(hours=3)
    assert image.timeline(T0) == [(0, "engineer-a@example.test")]
