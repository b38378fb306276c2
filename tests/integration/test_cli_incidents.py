"""`tocsin incident …` against a real server over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import ADMIN_TOKEN
from tests.e2e.serving import in_thread
from tocsin.api.app import create_app
from tocsin.cli.client import TocsinClient
from tocsin.cli.main import app
from tocsin.services import access
from tocsin.storage.db import Database

Run = Callable[..., Result]


@pytest.fixture
def server(core_config: Database, make_settings: Callable[..., Any]) -> Iterator[str]:
    """A Tocsin server on a free port in a background thread; yields its base URL."""
    web = create_app(make_settings(core_config.url), core_config)
    with in_thread(web) as base:
        yield base


@pytest.fixture
def run(server: str) -> Run:
    """Invoke `tocsin incident ARGS --server URL --token T` and return the result."""

    def _run(*args: str, token: str | None = ADMIN_TOKEN, url: str = server) -> Result:
        extra = ["--server", url] + (["--token", token] if token is not None else [])
        env = {"TOCSIN_SERVER": None, "TOCSIN_TOKEN": None}
        return CliRunner().invoke(app, ["incident", *args, *extra], env=env)

    return _run


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    assert not result.stderr
    return result.stdout


def failed(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert not result.stdout
    return " ".join(result.stderr.split())


def declare(run: Run, title: str = "Checkout down", *extra: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(run("declare", title, "-s", "P1", *extra, "--json")))
    return data


def test_declare_prints_ref_slug_and_id(run: Run) -> None:
    out = ok(run("declare", "Checkout down", "--severity", "P1", "--service", "api",
                 "--service", "database", "--description", "500s", "--impact", "no orders",
                 "--tag", "payments"))  # fmt: skip
    today = datetime.now(UTC).date().isoformat()
    assert "Declared INC-1 (P1): Checkout down" in out
    assert f"id 1 · slug incident-{today}-001 · status triggered" in out
    data = declare(run, "Search slow", "--service", "api", "--commander", "bob")
    assert data["ref"] == "INC-2"
    assert data["services"] == ["api"]
    assert data["roles"] == {"commander": "bob"}
    assert data["checklist_total"] == 4


def test_list_table_json_filters_and_cursor(run: Run) -> None:
    for n in range(3):
        declare(run, f"Outage {n}")
    declare(run, "Small thing")
    ok(run("status", "INC-4", "resolved"))
    table = ok(run("list"))
    for header in ("Ref", "Sev", "Status", "Title", "Services", "Commander", "Age"):
        assert header in table
    assert re.search(r"INC-3\s.*P1\s.*triggered\s.*Outage 2", table)
    assert "INC-4" not in table  # resolved: not open
    assert "INC-4" in ok(run("list", "--all"))
    assert "INC-4" in ok(run("list", "--status", "resolved"))
    assert "no incidents match" in ok(run("list", "-q", "nothing like this"))
    page = json.loads(ok(run("list", "--all", "--json")))
    assert [i["ref"] for i in page["items"]] == ["INC-4", "INC-3", "INC-2", "INC-1"]
    assert page["next_cursor"] is None
    first = ok(run("list", "--limit", "2"))
    hint = re.search(r"--cursor (\S+)", first)
    assert hint
    assert "INC-3" in first
    assert "INC-1" not in first
    rest = ok(run("list", "--limit", "2", "--cursor", hint.group(1)))
    assert "INC-1" in rest
    assert "INC-3" not in rest


def test_show_details_checklist_and_timeline(run: Run) -> None:
    declare(run, "Checkout down", "--service", "api", "--tag", "payments")
    ok(run("note", "INC-1", "looking at the load balancer"))
    out = ok(run("show", "INC-1"))
    assert "INC-1  Checkout down" in out
    assert "triggered  (next: investigating, identified, monitoring, resolved)" in out
    assert "Checklist (0/4 done)" in out
    assert "[ ] #1    Acknowledge alert within 15 minutes" in out
    assert "Timeline (latest 2 of 2)" in out
    assert "admin-token (cli)  note: looking at the load balancer" in out
    assert "Timeline" not in ok(run("show", "1", "--events", "0"))
    data = json.loads(ok(run("show", "INC-1", "--json", "-n", "1")))
    assert data["ref"] == "INC-1"
    assert len(data["checklist"]) == 4
    assert [e["kind"] for e in data["timeline"]] == ["note"]


def test_lifecycle_ack_status_note_resolve(run: Run) -> None:
    declare(run)
    assert "INC-1 acknowledged; status investigating" in ok(run("ack", "INC-1"))
    assert json.loads(ok(run("ack", "1", "--json")))["status"] == "investigating"
    out = ok(run("status", "INC-1", "Identified", "--note", "bad deploy"))
    assert "INC-1 updated; status identified (next: investigating, monitoring, resolved)" in out
    data = json.loads(ok(run("status", "1", "monitoring", "--json")))
    assert data["status"] == "monitoring"
    assert data["milestones"]["mitigated"] is not None
    assert ok(run("note", "INC-1", "error rate back to normal")).startswith("note #")
    event = json.loads(ok(run("note", "1", "second note", "--json")))
    assert (event["kind"], event["source"], event["text"]) == ("note", "cli", "second note")
    out = ok(run("resolve", "INC-1", "--resolution", "rolled back"))
    assert "INC-1 resolved; status resolved (next: investigating, closed)" in out
    assert json.loads(ok(run("show", "1", "--json")))["resolution"] == "rolled back"
    data = json.loads(ok(run("resolve", "1", "--json")))
    assert data["status"] == "resolved"
    timeline = json.loads(ok(run("timeline", "INC-1", "--json")))["items"]
    assert {e["source"] for e in timeline} == {"cli"}  # X-Tocsin-Source reached the timeline


def test_timeline_prints_and_follows(
    run: Run, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    declare(run)
    ok(run("note", "1", "first"))
    out = ok(run("timeline", "INC-1"))
    assert "declared: Declared P1 incident: Checkout down" in out
    assert "#2     admin-token (cli)  note: first" in out
    assert "first" not in ok(run("timeline", "1", "--after", "2"))
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        # Another responder writes while the CLI waits; the second wait is Ctrl-C.
        sleeps.append(seconds)
        if len(sleeps) > 1:
            raise KeyboardInterrupt
        with TocsinClient(server, ADMIN_TOKEN) as other:
            other.post("/api/v1/incidents/1/notes", {"text": "from elsewhere"})

    monkeypatch.setattr("tocsin.cli.incident_cmds.sleep", fake_sleep)
    out = ok(run("timeline", "INC-1", "--follow", "--interval", "0.5"))
    assert out.index("note: first") < out.index("note: from elsewhere")
    assert sleeps == [0.5, 0.5]
    sleeps.clear()
    lines = ok(run("timeline", "1", "-f", "--json", "--after", "2")).splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["from elsewhere"] * 2


def test_assign_and_tick(run: Run) -> None:
    declare(run)
    assert "INC-1: commander is bob" in ok(run("assign", "INC-1", "commander", "bob"))
    data = json.loads(ok(run("assign", "1", "scribe", "alice", "--json")))
    assert data["roles"] == {"commander": "bob", "scribe": "alice"}
    out = ok(run("tick", "INC-1", "2"))
    assert "INC-1 checklist (1/4 done)" in out
    assert "[x] #2    Create incident channel  (admin-token," in out
    items = json.loads(ok(run("tick", "1", "2", "--undo", "--json")))["items"]
    assert [i["done"] for i in items] == [False] * 4
    assert "│ bob " in ok(run("list"))


def test_illegal_transition_names_the_allowed_states(run: Run) -> None:
    declare(run)
    err = failed(run("status", "INC-1", "closed"))
    assert "cannot move from 'triggered' to 'closed'" in err
    assert "allowed next states: investigating, identified, monitoring, resolved" in err
    ok(run("resolve", "1"))
    ok(run("status", "1", "closed"))
    assert "allowed next states: none" in failed(run("ack", "1"))


def test_invalid_input_lists_valid_names(run: Run) -> None:
    assert "unknown severity 'P9'; valid: P0, P1, P2, P3" in failed(
        run("declare", "x", "--severity", "P9")
    )
    assert "valid: api, database" in failed(run("declare", "x", "-s", "P1", "--service", "web"))
    declare(run)
    assert "valid: commander, communications, scribe" in failed(
        run("assign", "1", "captain", "bob")
    )
    assert "valid values: alice, bob, carol" in failed(run("assign", "1", "commander", "zed"))
    assert "status: Input should be" in failed(run("status", "1", "sleeping"))
    assert "incident 99 not found" in failed(run("show", "INC-99"))
    assert "not an incident id: 'abc'" in failed(run("ack", "abc"))


def test_token_problems_exit_1_with_an_explanation(run: Run, core_config: Database) -> None:
    declare(run)
    err = failed(run("list", token="wrong-token"))
    assert "the server rejected the token: invalid or revoked token" in err
    assert "TOCSIN_TOKEN" in err
    err = failed(run("list", token=None))
    assert "not authenticated" in err
    assert "--token" in err
    with core_config.write() as session:
        issued = access.create_token(session, datetime.now(UTC), name="ro", scopes=["read"])
        session.commit()
    assert "INC-1" in ok(run("list", token=issued.token))
    err = failed(run("ack", "1", token=issued.token))
    assert "not allowed: this needs the 'respond' scope" in err


def test_server_and_token_from_the_environment(server: str) -> None:
    env = {"TOCSIN_SERVER": server, "TOCSIN_TOKEN": ADMIN_TOKEN}
    result = CliRunner().invoke(app, ["incident", "list", "--json"], env=env)
    assert json.loads(ok(result)) == {"items": [], "next_cursor": None}


def test_unreachable_server_exits_2(run: Run) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes
    err = failed(run("list", url=f"http://127.0.0.1:{port}"), code=2)
    assert f"cannot reach Tocsin at http://127.0.0.1:{port}:" in err
