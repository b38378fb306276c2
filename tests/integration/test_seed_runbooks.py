"""Each reference runbook, as configuration, plays out: declare at its top severity, work it,
resolve it, close it (over the HTTP API, on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN, EXAMPLES, FakeClock, apply_yaml
from tocsin.api.app import create_app
from tocsin.storage.db import Database

SEEDS = sorted((EXAMPLES / "seeds").glob("*.yaml"))


@pytest.mark.parametrize("seed", SEEDS, ids=[p.stem for p in SEEDS])
def test_runbook_plays_out(
    seed: Path, database: Database, make_settings: Callable[..., object], clock: FakeClock
) -> None:
    config = yaml.safe_load(seed.read_text())
    apply_yaml(database, seed.read_text())
    top = config["severities"][0]["name"]
    service = config["services"][0]["id"]
    expected_items = next(
        (c["items"] for c in config.get("checklists", []) if c["severity"] == top), []
    )
    app = create_app(make_settings(database.url), database, clock)  # type: ignore[arg-type]
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as api:
        scheme = [s["name"] for s in api.get("/api/v1/severities").json()]
        assert scheme == [s["name"] for s in config["severities"]]
        inc = api.post(
            "/api/v1/incidents",
            json={"title": "Service down", "severity": top, "services": [service]},
        ).json()
        assert inc["severity"] == top
        assert [i["text"] for i in inc["checklist"]] == expected_items
        url = f"/api/v1/incidents/{inc['id']}"
        clock.advance(minutes=3)
        assert api.post(f"{url}/acknowledge").json()["status"] == "investigating"
        if inc["checklist"]:
            api.post(f"{url}/checklist/{inc['checklist'][0]['id']}", json={"done": True})
        if config.get("users"):
            api.put(f"{url}/roles/commander", json={"user": config["users"][0]["id"]})
        api.post(f"{url}/notes", json={"text": "mitigation applied"})
        for status in ("identified", "monitoring", "resolved", "closed"):
            clock.advance(minutes=5)
            assert api.post(f"{url}/status", json={"status": status}).json()["status"] == status
        final = api.get(url).json()
        assert all(
            final["milestones"][m] for m in ("acknowledged", "mitigated", "resolved", "closed")
        )
        assert final["checklist_done"] == (1 if expected_items else 0)
        kinds = [e["kind"] for e in api.get(f"{url}/timeline").json()["items"]]
        assert kinds.count("status_changed") == 5
