"""`tocsin schedule|oncall|escalation-policy|notifications|contact-method …` against a real
server over HTTP, configured with examples/core.yaml, alerting.yaml and oncall.yaml; SQLite and
PostgreSQL. The server runs on the real clock, so times are given explicitly where they matter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from tests.conftest import ADMIN_TOKEN, EXAMPLES, apply_yaml
from tests.integration.test_api_oncall import CALENDAR
from tests.integration.test_cli_incidents import failed, ok, server
from tocsin.cli import oncall_cmds
from tocsin.cli.main import app
from tocsin.services import access
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import OutboxRow

__all__ = ["server"]  # a fixture, imported for pytest to find
Run = Callable[..., Result]


@pytest.fixture
def run(server: str, core_config: Database, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Invoke `tocsin ARGS --server URL --token T` on a server with the on-call example."""
    apply_yaml(core_config, (EXAMPLES / "alerting.yaml").read_text())
    apply_yaml(core_config, (EXAMPLES / "oncall.yaml").read_text())
    monkeypatch.setattr(oncall_cmds.out, "width", 200)

    def _run(*args: str, token: str | None = ADMIN_TOKEN, url: str = server) -> Result:
        extra = ["--server", url] + (["--token", token] if token is not None else [])
        env = {"TOCSIN_SERVER": None, "TOCSIN_TOKEN": None}
        return CliRunner().invoke(app, [*args, *extra], env=env)

    return _run


def user_token(database: Database, user: str, scope: str) -> str:
    with database.write() as session:
        issued = access.create_token(
            session, datetime.now(UTC), name=f"{user}-cli", scopes=[scope], user_id=user
        )
        session.commit()
    return issued.token


def test_schedule_list_show_and_oncall(run: Run) -> None:
    table = ok(run("schedule", "list"))
    for header in ("Schedule", "Name", "Time zone", "On call now"):
        assert header in table
    assert re.search(r"primary\s.*Europe/Berlin\s.*(Alice|Bob) Example", table)
    assert "America/Chicago" in table
    assert ok(run("oncall")) == table
    items = json.loads(ok(run("oncall", "--json")))["items"]
    assert [s["id"] for s in items] == ["primary", "secondary"]

    shown = ok(run("schedule", "show", "secondary"))
    assert "secondary (secondary)" in shown
    assert "time zone America/Chicago" in shown
    assert "daily, handoff 08:00, from 2026-01-05: bob, alice" in shown
    assert "[mon,tue,wed,thu,fri 08:00-18:00]" in shown
    assert "Next shifts" in shown
    assert "Gaps in the next 14 days" in shown
    data = json.loads(ok(run("schedule", "show", "primary", "--json")))
    assert len(data["next_shifts"]) == 10
    assert "schedule 'nope' not found" in failed(run("schedule", "show", "nope"))


def test_on_call_at_and_shifts(run: Run) -> None:
    out = ok(run("schedule", "on-call", "primary", "--at", "2026-01-05T09:30+01:00"))
    assert out.strip() == "primary at 2026-01-05 08:30:00Z: Alice Example (alice)"
    out = ok(run("schedule", "on-call", "primary", "--at", "2026-01-12T10:00+01:00"))
    assert "Bob Example (bob)" in out
    out = ok(run("schedule", "on-call", "secondary", "--at", "2026-01-10T16:00"))  # Sat, UTC
    assert out.strip().endswith(": nobody")
    data = json.loads(ok(run("schedule", "on-call", "secondary", "--at", "2026-01-05T16:00Z",
                             "--json")))  # fmt: skip
    assert [u["id"] for u in data["users"]] == ["bob"]
    assert "not an ISO 8601 time" in failed(run("schedule", "on-call", "primary", "--at", "soon"))

    table = ok(run("schedule", "shifts", "secondary", "--start", "2026-01-05T14:00Z",
                   "--end", "2026-01-06T14:00Z"))  # fmt: skip
    assert re.search(r"Bob Example \(bob\)\s.*2026-01-05 14:00:00Z\s.*2026-01-06 00:00:00Z\s.*10h",
                     table)  # fmt: skip
    assert re.search(r"\(nobody: gap\)\s.*2026-01-06 00:00:00Z\s.*2026-01-06 14:00:00Z\s.*14h",
                     table)  # fmt: skip
    data = json.loads(ok(run("schedule", "shifts", "primary", "--count", "3", "--json")))
    assert len([s for s in data["items"] if not s["gap"]]) == 3
    assert "not both" in failed(run("schedule", "shifts", "primary", "-n", "2", "--start",
                                    "2026-01-05T00:00Z"))  # fmt: skip


def test_overrides(run: Run) -> None:
    out = ok(run("schedule", "override", "add", "primary", "--user", "carol", "--replaces",
                 "alice", "--start", "2026-01-05T10:00+01:00", "--end", "2026-01-05T12:00+01:00",
                 "-m", "dentist"))  # fmt: skip
    assert re.match(
        r"override (\d+) on primary: replace carol for alice, 2026-01-05 09:00:00Z", out
    )
    override_id = re.match(r"override (\d+)", out).group(1)  # type: ignore[union-attr]
    at = ("--at", "2026-01-05T11:00+01:00")
    assert "Carol Example (carol)" in ok(run("schedule", "on-call", "primary", *at))
    assert "no overrides" in ok(run("schedule", "override", "list", "primary"))  # ended
    listed = ok(run("schedule", "override", "list", "primary", "--all"))
    assert re.search(
        rf"{override_id}\s.*replace\s.*carol\s.*alice\s.*dentist\s.*admin-token", listed
    )
    assert f"override {override_id} removed" in ok(
        run("schedule", "override", "remove", "primary", override_id)
    )
    assert "Alice Example (alice)" in ok(run("schedule", "on-call", "primary", *at))
    assert "not found" in failed(run("schedule", "override", "remove", "primary", override_id))
    err = failed(run("schedule", "override", "add", "primary", "--user", "zed", "--start",
                     "2026-01-05T10:00Z", "--end", "2026-01-05T11:00Z"))  # fmt: skip
    assert "unknown user 'zed'" in err
    err = failed(run("schedule", "override", "add", "primary", "--user", "bob", "--kind", "swap",
                     "--start", "2026-01-05T10:00Z", "--end", "2026-01-05T11:00Z"))  # fmt: skip
    assert "kind" in err


def test_import_and_calendar_url(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "cover.ics"
    path.write_text(CALENDAR)
    out = ok(run("schedule", "import", "primary", str(path)))
    assert "imported a calendar into primary: 2 event(s)" in out
    assert "matched: bob (bob@example.test)" in out
    assert "not matched to any user: Nobody Known" in out
    assert "replaced the calendar of primary" in ok(run("schedule", "import", "primary", str(path)))
    assert "Bob Example" in ok(run("schedule", "on-call", "primary", "--at", "2026-01-06T10:00Z"))
    bad = tmp_path / "bad.ics"
    bad.write_text("hello")
    assert "not an iCalendar file" in failed(run("schedule", "import", "primary", str(bad)))
    url = ok(run("schedule", "calendar-url", "primary")).strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:8080/api/v1/schedules/primary/calendar\.ics\?token=\S+",
                        url)  # fmt: skip


def test_escalation_policies_and_notifications(run: Run) -> None:
    table = ok(run("escalation-policy", "list"))
    assert re.search(r"api-default\s.*api-default\s.*3\s.*2\s.*-\s.*api", table)
    shown = ok(run("escalation-policy", "show", "api-default"))
    assert "3 pass(es) through the steps; used by: api" in shown
    assert re.search(r"2\s.*15m\s.*schedule secondary", shown)
    assert re.search(r"3\s.*30m\s.*user Carol Example", shown)
    assert "not found" in failed(run("escalation-policy", "show", "nope"))

    declared = json.loads(ok(run("incident", "declare", "Checkout down", "-s", "P1",
                                 "--service", "api", "--json")))  # fmt: skip
    out = ok(run("notifications", "incident", declared["ref"]))
    assert "escalation active · policy api-default · step 1 · pass 1" in out
    assert "escalation_started: Escalation started (policy api-default)" in out
    data = json.loads(ok(run("notifications", "incident", str(declared["id"]), "--json")))
    assert data["escalation"]["status"] == "active"
    assert "not found" in failed(run("notifications", "alert-group", "99"))
    assert "not an incident id" in failed(run("notifications", "incident", "x"))


def test_contact_methods_for_the_current_user(run: Run, core_config: Database) -> None:
    bob = user_token(core_config, "bob", "respond")
    table = ok(run("contact-method", "list", token=bob))
    assert re.search(
        r"bob-hook\s.*webhook\s.*http://127.0.0.1:9911/bob\s.*-\s.*yes\s.*config", table
    )
    out = ok(run("contact-method", "add", "email", "bob.home@example.test", "--name", "Home",
                 token=bob))  # fmt: skip
    method_id = re.search(r"as (\S+)", out).group(1)  # type: ignore[union-attr]
    assert f"run: tocsin contact-method verify {method_id} CODE" in out
    with core_config.read() as session:
        code = session.scalars(
            select(OutboxRow.payload).where(OutboxRow.contact_method_id == method_id)
        ).one()["code"]
    assert "a code was sent less than a minute ago" in failed(
        run("contact-method", "send-code", method_id, token=bob)
    )
    wrong = "000000" if code != "000000" else "111111"
    assert "wrong code; 4 attempt(s) left" in failed(
        run("contact-method", "verify", method_id, wrong, token=bob)
    )
    assert f"{method_id} is verified" in ok(
        run("contact-method", "verify", method_id, code, token=bob)
    )
    assert re.search(rf"{method_id}\s.*email\s.*bob.home@example.test\s.*Home\s.*yes\s.*user",
                     ok(run("contact-method", "list", token=bob)))  # fmt: skip
    assert "declared in the configuration" in failed(
        run("contact-method", "remove", "bob-hook", token=bob)
    )
    assert f"contact method {method_id} removed" in ok(
        run("contact-method", "remove", method_id, token=bob)
    )
    # Admins manage anyone's with --user; others only their own.
    assert "alice-mail" in ok(run("contact-method", "list", "--user", "alice"))
    assert "only the user themselves or an admin" in failed(
        run("contact-method", "list", "--user", "alice", token=bob)
    )
    assert "not bound to a user" in failed(run("contact-method", "list"))
    assert "unknown type 'pager'" in failed(run("contact-method", "add", "pager", "1", token=bob))
    assert "E.164" in failed(run("contact-method", "add", "sms", "123", token=bob))
