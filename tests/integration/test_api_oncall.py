"""The on-call API over HTTP: schedules, overrides, calendars, escalation policies,
notifications, contact methods, notification rules and signed action links.

Runs on a database configured with examples/core.yaml, alerting.yaml and oncall.yaml, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest
from fastapi.testclient import TestClient
from itsdangerous.timed import TimestampSigner
from sqlalchemy import select

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tocsin.api.links import links_of
from tocsin.services import outbox
from tocsin.services.page_messages import ActionClaim, action_url
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import EscalationRow, OutboxRow

MONDAY = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
Headers = dict[str, str]


@pytest.fixture
def oncall_api(alerting_api: TestClient, core_config: Database) -> TestClient:
    """The API on core + alerting + on-call examples (the issue's example, applied verbatim)."""
    apply_yaml(core_config, (EXAMPLES / "oncall.yaml").read_text())
    return alerting_api


def token_for(api: TestClient, user: str, scope: str) -> Headers:
    body = {"name": f"{user}-{scope}", "scopes": [scope], "user": user}
    token = api.post("/api/v1/tokens", json=body).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def on_call(api: TestClient, schedule: str, at: str) -> list[str]:
    res = api.get(f"/api/v1/schedules/{schedule}/on-call", params={"at": at})
    assert res.status_code == 200, res.text
    return [u["id"] for u in res.json()["users"]]


def declare(api: TestClient, severity: str = "P1") -> dict[str, Any]:
    body = {"title": "Checkout is down", "severity": severity, "services": ["api"]}
    res = api.post("/api/v1/incidents", json=body)
    assert res.status_code == 201, res.text
    data: dict[str, Any] = res.json()
    return data


def link_path(api: TestClient, subject_type: str, subject_id: int, action: str) -> str:
    ctx = api.app.state.ctx  # type: ignore[attr-defined]
    url = action_url(links_of(ctx), ActionClaim(subject_type, subject_id, action, "alice"))
    return url[url.index("/a/") :]


# --- schedules ---


def test_on_call_at_given_times(oncall_api: TestClient) -> None:
    api = oncall_api
    assert on_call(api, "primary", "2026-01-05T09:30+01:00") == ["alice"]
    assert on_call(api, "primary", "2026-01-12T10:00+01:00") == ["bob"]
    assert on_call(api, "primary", "2026-01-19T08:59:59+01:00") == ["bob"]
    assert on_call(api, "primary", "2026-01-19T09:00:00+01:00") == ["alice"]
    assert on_call(api, "secondary", "2026-01-05T10:00-06:00") == ["bob"]
    assert on_call(api, "secondary", "2026-01-06T10:00-06:00") == ["alice"]
    assert on_call(api, "secondary", "2026-01-05T19:00-06:00") == []  # after 18:00
    assert on_call(api, "secondary", "2026-01-10T10:00-06:00") == []  # Saturday
    res = api.get("/api/v1/schedules/primary/on-call", params={"at": "2026-01-05T08:30:00Z"})
    assert res.json() == {
        "schedule": "primary",
        "at": "2026-01-05T08:30:00Z",
        "users": [{"id": "alice", "name": "Alice Example", "email": "alice@example.test"}],
    }
    # An unencoded "+" arrives as a space; it is read as the offset it was meant to be.
    assert (
        api.get("/api/v1/schedules/primary/on-call?at=2026-01-12T10:00+01:00").json()["users"][0][
            "id"
        ]
        == "bob"
    )


def test_on_call_bad_time_and_unknown_schedule(oncall_api: TestClient) -> None:
    api = oncall_api
    res = api.get("/api/v1/schedules/primary/on-call", params={"at": "next tuesday"})
    assert res.status_code == 422
    assert "RFC 3339" in res.json()["detail"]
    res = api.get("/api/v1/schedules/primary/on-call", params={"at": "2026-01-05T09:30"})
    assert res.status_code == 422
    assert "offset" in res.json()["detail"]
    assert api.get("/api/v1/schedules/nope/on-call").status_code == 404
    assert api.get("/api/v1/schedules/nope").status_code == 404


def test_list_and_detail(oncall_api: TestClient, clock: FakeClock) -> None:
    api = oncall_api  # the clock: Saturday 2026-03-14 09:26 UTC
    items = {s["id"]: s for s in api.get("/api/v1/schedules").json()["items"]}
    assert items["primary"]["time_zone"] == "Europe/Berlin"
    assert [u["id"] for u in items["primary"]["on_call"]] == ["bob"]
    assert items["secondary"]["on_call"] == []
    detail = api.get("/api/v1/schedules/secondary").json()
    assert detail["layers"] == [
        {
            "position": 0,
            "name": "",
            "rotation": {"type": "daily", "handoff": "08:00", "start": "2026-01-05"},
            "users": ["bob", "alice"],
            "restrict": [
                {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "18:00"}
            ],
            "calendar": False,
            "calendar_users": [],
            "calendar_unmatched": [],
        }
    ]
    assert len(detail["next_shifts"]) == 10
    first = detail["next_shifts"][0]
    # Monday 2026-03-16 is day 70 of the rotation: bob, 08:00-18:00 CDT (UTC-5 since 8 March).
    assert first == {
        "user": "bob",
        "name": "Bob Example",
        "starts_at": "2026-03-16T13:00:00Z",
        "ends_at": "2026-03-16T23:00:00Z",
        "gap": False,
    }
    assert detail["gaps"][0] == {"starts_at": clock.now.isoformat().replace("+00:00", "Z"),
                                 "ends_at": "2026-03-16T13:00:00Z"}  # fmt: skip
    assert detail["on_call"] == []


def test_shifts_window_and_count(oncall_api: TestClient) -> None:
    api = oncall_api
    res = api.get(
        "/api/v1/schedules/primary/shifts",
        params={"start": "2026-01-05T08:00:00Z", "end": "2026-01-19T08:00:00Z"},
    ).json()
    assert [(s["user"], s["starts_at"], s["ends_at"], s["gap"]) for s in res["items"]] == [
        ("alice", "2026-01-05T08:00:00Z", "2026-01-12T08:00:00Z", False),
        ("bob", "2026-01-12T08:00:00Z", "2026-01-19T08:00:00Z", False),
    ]
    res = api.get(
        "/api/v1/schedules/secondary/shifts",
        params={"start": "2026-01-05T14:00:00Z", "end": "2026-01-06T14:00:00Z"},
    ).json()
    assert [(s["user"], s["starts_at"], s["ends_at"], s["gap"]) for s in res["items"]] == [
        ("bob", "2026-01-05T14:00:00Z", "2026-01-06T00:00:00Z", False),
        (None, "2026-01-06T00:00:00Z", "2026-01-06T14:00:00Z", True),
    ]
    # From Saturday 2026-03-14 on: bob's week, alice's, then bob's from 09:00 CEST (07:00 UTC).
    res = api.get("/api/v1/schedules/primary/shifts", params={"count": 3}).json()
    assert [(s["user"], s["ends_at"]) for s in res["items"]] == [
        ("bob", "2026-03-16T08:00:00Z"),
        ("alice", "2026-03-23T08:00:00Z"),
        ("bob", "2026-03-30T07:00:00Z"),
    ]
    assert res["start"] == "2026-03-14T09:26:53Z"
    for params, word in [
        ({"start": "2026-01-05T00:00:00Z", "end": "2026-01-04T00:00:00Z"}, "after start"),
        ({"start": "2026-01-05T00:00:00Z", "end": "2027-06-01T00:00:00Z"}, "366 days"),
        ({"count": 3, "start": "2026-01-05T00:00:00Z"}, "not both"),
    ]:
        res = api.get("/api/v1/schedules/primary/shifts", params=params)
        assert res.status_code == 422
        assert word in res.json()["detail"]


# --- calendar feeds ---


def events(body: bytes) -> list[tuple[str, datetime, datetime]]:
    found: list[Any] = icalendar.Calendar.from_ical(body).walk("VEVENT")
    return [(str(e["SUMMARY"]), e["DTSTART"].dt, e["DTEND"].dt) for e in found]


def test_schedule_calendar_with_token_or_auth(oncall_api: TestClient) -> None:
    api = oncall_api
    res = api.get("/api/v1/schedules/primary/calendar.ics")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/calendar")
    found = events(res.content)
    # 30 days back and 180 ahead of 2026-03-14: weekly shifts from mid-February to September.
    assert 28 <= len(found) <= 31
    assert {summary for summary, _, _ in found} == {
        "On call: Alice Example",
        "On call: Bob Example",
    }
    assert min(start for _, start, _ in found) <= datetime(2026, 2, 13, tzinfo=UTC)
    assert max(end for _, _, end in found) >= datetime(2026, 9, 9, tzinfo=UTC)

    url = api.get("/api/v1/schedules/primary/calendar-url").json()["url"]
    assert url.startswith("http://127.0.0.1:8080/api/v1/schedules/primary/calendar.ics?token=")
    path = url.removeprefix("http://127.0.0.1:8080")
    anonymous = {"Authorization": ""}
    res = api.get(path, headers=anonymous)
    assert res.status_code == 200
    assert events(res.content) == found
    assert api.get("/api/v1/schedules/primary/calendar.ics", headers=anonymous).status_code == 401
    wrong = api.get("/api/v1/schedules/primary/calendar.ics?token=wrong", headers=anonymous)
    assert wrong.status_code == 404
    other = path.replace("/primary/", "/secondary/")  # primary's token does not open secondary
    assert api.get(other, headers=anonymous).status_code == 404
    assert api.get("/api/v1/schedules/nope/calendar.ics?token=x", headers=anonymous).json() == {
        "detail": "schedule 'nope' not found"
    }


def test_user_calendar_across_schedules(oncall_api: TestClient) -> None:
    api = oncall_api
    url = api.get("/api/v1/users/alice/calendar-url").json()["url"]
    path = url.removeprefix("http://127.0.0.1:8080")
    res = api.get(path, headers={"Authorization": ""})
    assert res.status_code == 200
    found = events(res.content)
    summaries = {summary for summary, _, _ in found}
    assert summaries == {"On call: primary", "On call: secondary"}
    assert api.get(path.replace("alice", "bob"), headers={"Authorization": ""}).status_code == 404
    assert api.get("/api/v1/users/alice/calendar.ics").status_code == 200
    # Only alice herself (or an admin) may fetch her secret URL.
    bob = token_for(api, "bob", "respond")
    assert api.get("/api/v1/users/alice/calendar-url", headers=bob).status_code == 403
    assert (
        api.get("/api/v1/users/me/calendar-url", headers=bob)
        .json()["url"]
        .startswith("http://127.0.0.1:8080/api/v1/users/bob/calendar.ics?token=")
    )


# --- overrides ---


def test_overrides_add_replace_remove(oncall_api: TestClient) -> None:
    api = oncall_api
    base = "/api/v1/schedules/primary/overrides"
    replace = api.post(
        base,
        json={"user": "carol", "replaces": "alice", "starts_at": "2026-01-05T10:00:00+01:00",
              "ends_at": "2026-01-05T12:00:00+01:00", "note": "dentist"},
    )  # fmt: skip
    assert replace.status_code == 201, replace.text
    body = replace.json()
    assert body["kind"] == "replace"
    assert body["created_by"] == "admin-token"
    assert replace.headers["location"] == f"{base}/{body['id']}"
    assert on_call(api, "primary", "2026-01-05T11:00:00+01:00") == ["carol"]
    assert on_call(api, "primary", "2026-01-05T12:00:00+01:00") == ["alice"]

    added = api.post(
        "/api/v1/schedules/secondary/overrides",
        json={"kind": "add", "user": "carol", "starts_at": "2026-01-10T00:00:00-06:00",
              "ends_at": "2026-01-11T00:00:00-06:00"},
    )  # fmt: skip
    assert added.status_code == 201
    assert on_call(api, "secondary", "2026-01-10T10:00-06:00") == ["carol"]

    removed = api.post(
        base,
        json={"kind": "remove", "user": "bob", "starts_at": "2026-01-12T08:00:00Z",
              "ends_at": "2026-01-13T08:00:00Z"},
    )  # fmt: skip
    assert on_call(api, "primary", "2026-01-12T10:00+01:00") == []
    assert api.delete(f"{base}/{removed.json()['id']}").status_code == 204
    assert on_call(api, "primary", "2026-01-12T10:00+01:00") == ["bob"]
    assert api.delete(f"{base}/{removed.json()['id']}").status_code == 404

    # The clock is in March: January's overrides have ended.
    assert api.get(base).json()["items"] == []
    assert [o["id"] for o in api.get(base, params={"past": True}).json()["items"]] == [body["id"]]


def test_override_validation_and_scope(oncall_api: TestClient) -> None:
    api = oncall_api
    base = "/api/v1/schedules/primary/overrides"
    span = {"starts_at": "2026-01-05T10:00:00Z", "ends_at": "2026-01-05T12:00:00Z"}
    res = api.post(base, json={"user": "zed", **span})
    assert res.status_code == 422
    assert "unknown user 'zed'" in res.json()["detail"]
    res = api.post(
        base, json={"user": "bob", "starts_at": span["ends_at"], "ends_at": span["starts_at"]}
    )
    assert res.status_code == 422
    res = api.post(base, json={"user": "bob", "kind": "add", "replaces": "alice", **span})
    assert res.status_code == 422
    far = {"starts_at": "9999-12-31T23:00:00-14:00", "ends_at": "9999-12-31T23:30:00-14:00"}
    res = api.post(base, json={"user": "bob", **far})
    assert res.status_code == 422
    assert "starts_at: 9999-12-31T23:00:00-14:00 is out of range" in res.json()["detail"]
    res = api.post(
        base, json={"user": "bob", "starts_at": "2026-01-05T10:00:00", "ends_at": span["ends_at"]}
    )
    assert res.status_code == 422
    assert (
        api.post("/api/v1/schedules/nope/overrides", json={"user": "bob", **span}).status_code
        == 404
    )
    carol = token_for(api, "carol", "read")
    assert api.post(base, json={"user": "bob", **span}, headers=carol).status_code == 403
    bob = token_for(api, "bob", "respond")
    assert api.post(base, json={"user": "bob", **span}, headers=bob).status_code == 201


# --- calendar import ---

CALENDAR = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Test//EN
BEGIN:VEVENT
UID:one@test
DTSTAMP:20260101T000000Z
DTSTART:20260106T090000Z
DTEND:20260106T110000Z
SUMMARY:Bob covers
ATTENDEE:mailto:bob@example.test
END:VEVENT
BEGIN:VEVENT
UID:two@test
DTSTAMP:20260101T000000Z
DTSTART:20260107T090000Z
DTEND:20260107T110000Z
SUMMARY:On call: Nobody Known
END:VEVENT
END:VCALENDAR
"""


def test_calendar_import_layers_on_top(oncall_api: TestClient) -> None:
    api = oncall_api
    url = "/api/v1/schedules/primary/calendar"
    res = api.post(url, content=CALENDAR, headers={"Content-Type": "text/calendar"})
    assert res.status_code == 200, res.text
    assert res.json() == {
        "schedule": "primary",
        "events": 2,
        "matched_users": [{"calendar_name": "bob@example.test", "user": "bob"}],
        "unmatched": ["Nobody Known"],
        "layer": 1,
        "replaced": False,
    }
    assert on_call(api, "primary", "2026-01-06T10:00:00Z") == ["bob"]
    assert on_call(api, "primary", "2026-01-06T12:00:00Z") == ["alice"]
    layers = api.get("/api/v1/schedules/primary").json()["layers"]
    assert [layer["calendar"] for layer in layers] == [False, True]
    assert layers[1]["calendar_users"] == ["bob"]
    assert layers[1]["calendar_unmatched"] == ["Nobody Known"]

    # Again as JSON: the earlier calendar is replaced, the rotation stays.
    moved = CALENDAR.replace("20260106T09", "20260108T09").replace("20260106T11", "20260108T11")
    res = api.post(url, json={"calendar": moved})
    assert res.json()["replaced"] is True
    assert res.json()["layer"] == 1
    assert on_call(api, "primary", "2026-01-06T10:00:00Z") == ["alice"]
    assert on_call(api, "primary", "2026-01-08T10:00:00Z") == ["bob"]
    assert len(api.get("/api/v1/schedules/primary").json()["layers"]) == 2

    assert api.delete(url).status_code == 204
    assert api.delete(url).status_code == 404
    assert on_call(api, "primary", "2026-01-08T10:00:00Z") == ["alice"]


def test_calendar_import_refuses_bad_input(oncall_api: TestClient) -> None:
    api = oncall_api
    url = "/api/v1/schedules/primary/calendar"
    text = {"Content-Type": "text/calendar"}
    res = api.post(url, content="hello", headers=text)
    assert res.status_code == 422
    assert "not an iCalendar file" in res.json()["detail"]
    broken = CALENDAR.replace("DTSTART:20260106T090000Z\n", "")
    res = api.post(url, content=broken, headers=text)
    assert res.status_code == 422
    assert "'Bob covers' has no DTSTART" in res.json()["detail"]
    res = api.post(url, content="", headers=text)
    assert res.status_code == 422
    res = api.post(url, json={"calendar": 5})
    assert res.status_code == 422
    res = api.post(url, content="BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n", headers=text)
    assert res.status_code == 422
    assert "no events" in res.json()["detail"]
    every_minute = CALENDAR.replace(
        "SUMMARY:Bob covers\n", "SUMMARY:Bob covers\nRRULE:FREQ=MINUTELY\n"
    )
    res = api.post(url, content=every_minute, headers=text)
    assert res.status_code == 422
    assert "'Bob covers' repeats about 1440 times a day" in res.json()["detail"]
    assert (
        api.post("/api/v1/schedules/nope/calendar", content=CALENDAR, headers=text).status_code
        == 404
    )
    bob = token_for(api, "bob", "respond")
    assert api.post(url, content=CALENDAR, headers={**text, **bob}).status_code == 403
    # Nothing was changed by any of these.
    assert len(api.get("/api/v1/schedules/primary").json()["layers"]) == 1


# --- escalation policies and escalations ---


def test_escalation_policies(oncall_api: TestClient) -> None:
    api = oncall_api
    items = api.get("/api/v1/escalation-policies").json()["items"]
    assert [p["id"] for p in items] == ["api-default"]
    policy = api.get("/api/v1/escalation-policies/api-default").json()
    assert policy["repeat"] == 2
    assert policy["ack_timeout"] is None
    assert policy["on_sla_breach"] == []
    assert policy["services"] == ["api"]
    assert [(s["after"], s["after_seconds"]) for s in policy["steps"]] == [
        ("0s", 0), ("15m", 900), ("30m", 1800)
    ]  # fmt: skip
    assert policy["steps"][1]["targets"] == [
        {"target": "schedule:secondary", "type": "schedule", "id": "secondary", "name": "secondary"}
    ]
    assert policy["steps"][2]["targets"][0]["name"] == "Carol Example"
    assert api.get("/api/v1/escalation-policies/nope").status_code == 404


def test_escalations_and_incident_notifications(
    oncall_api: TestClient, core_config: Database, clock: FakeClock
) -> None:
    api = oncall_api
    incident = declare(api)
    page = api.get("/api/v1/escalations", params={"status": "active"}).json()
    assert [(e["subject_type"], e["subject_id"]) for e in page["items"]] == [
        ("incident", incident["id"])
    ]
    assert page["items"][0]["policy"] == "api-default"
    assert api.get("/api/v1/escalations", params={"status": "resolved"}).json()["items"] == []
    assert (
        api.get("/api/v1/escalations", params={"subject_type": "alert_group"}).json()["items"] == []
    )
    assert api.get("/api/v1/escalations", params={"status": "bogus"}).status_code == 422
    assert api.get("/api/v1/escalations", params={"cursor": "zzz"}).status_code == 422

    with core_config.write() as session:
        escalation = session.scalars(select(EscalationRow)).one()
        message_id = outbox.enqueue(
            session, key="test-1", kind="page", channel="email",
            destination="alice@example.test", title="Checkout is down", body="…", payload={},
            now=clock.now, user_id="alice", contact_method_id="alice-mail",
            subject_type="incident", subject_id=incident["id"], escalation_id=escalation.id,
        )  # fmt: skip
        assert message_id is not None
        outbox.mark_sent(session, message_id, clock.now)
        retried = outbox.enqueue(
            session, key="test-2", kind="page", channel="email",
            destination="alice@example.test", title="Checkout is down", body="…", payload={},
            now=clock.now, user_id="alice", subject_type="incident", subject_id=incident["id"],
        )  # fmt: skip
        assert retried is not None
        outbox.mark_retry(
            session, retried, clock.now, error="550 alice@example.test: mailbox full",
            next_attempt_at=clock.now + timedelta(minutes=1),
        )  # fmt: skip
        session.commit()

    url = f"/api/v1/incidents/{incident['id']}/notifications"
    full = api.get(url).json()
    assert full["escalation"]["status"] == "active"
    assert full["escalation"]["sla_due_at"] == "2026-03-14T10:26:53Z"  # P1 respond_within 1h
    assert [e["kind"] for e in full["log"]] == [
        "escalation_started", "message_sent", "message_retry"
    ]  # fmt: skip
    assert full["messages"][1]["last_error"] == "550 alice@example.test: mailbox full"
    assert full["messages"][0]["destination"] == "alice@example.test"
    assert full["messages"][0]["status"] == "sent"
    assert "alice@example.test" in full["log"][1]["text"]

    bob = token_for(api, "bob", "respond")
    masked = api.get(f"/api/v1/incidents/INC-{incident['id']}/notifications", headers=bob).json()
    assert masked["messages"][0]["destination"] == "a***@example.test"
    assert masked["messages"][1]["last_error"] == "550 a***@example.test: mailbox full"
    assert "alice@example.test" not in str(masked)
    assert "a***@example.test" in masked["log"][1]["text"]

    api.post(f"/api/v1/incidents/{incident['id']}/acknowledge")
    state = api.get(url).json()["escalation"]
    assert state["status"] == "acknowledged"
    assert state["acknowledged_by"] == "admin-token"
    assert api.get("/api/v1/incidents/999999/notifications").status_code == 404
    assert api.get("/api/v1/alert-groups/999999/notifications").status_code == 404


# --- contact methods and notification rules ---


def verification(database: Database, method_id: str) -> OutboxRow:
    with database.read() as session:
        row = session.scalars(
            select(OutboxRow)
            .where(OutboxRow.contact_method_id == method_id, OutboxRow.kind == "verification")
            .order_by(OutboxRow.id.desc())
        ).first()
        assert row is not None
        return row


def test_contact_method_verification(
    oncall_api: TestClient, core_config: Database, clock: FakeClock
) -> None:
    api = oncall_api
    base = "/api/v1/users/alice/contact-methods"
    res = api.post(
        base, json={"type": "email", "address": "alice.home@example.test", "name": "Home"}
    )
    assert res.status_code == 201, res.text
    method = res.json()
    assert method["verified"] is False
    assert method["source"] == "user"
    sent = verification(core_config, method["id"])
    assert sent.idempotency_key == f"verify-{method['id']}-1"
    assert sent.title == "Your Tocsin verification code"
    assert sent.channel == "email"
    assert sent.destination == "alice.home@example.test"
    code = sent.payload["code"]
    assert len(code) == 6
    assert code.isdigit()
    assert code in sent.body

    wrong = "000000" if code != "000000" else "111111"
    res = api.post(f"{base}/{method['id']}/verify", json={"code": wrong})
    assert res.status_code == 422
    assert res.json()["detail"] == "wrong code; 4 attempt(s) left"
    res = api.post(f"{base}/{method['id']}/verify", json={"code": code})
    assert res.status_code == 200
    assert res.json()["verified"] is True
    listed = {m["id"]: m for m in api.get(base).json()["items"]}
    assert set(listed) == {"alice-hook", "alice-mail", method["id"]}
    assert listed["alice-hook"]["source"] == "config"
    assert listed["alice-hook"]["verified"] is True

    res = api.post(f"{base}/{method['id']}/send-code")
    assert res.status_code == 409  # already verified


def test_contact_method_codes_expire_resend_and_lock(
    oncall_api: TestClient, core_config: Database, clock: FakeClock
) -> None:
    api = oncall_api
    base = "/api/v1/users/me/contact-methods"
    bob = token_for(api, "bob", "respond")
    res = api.post(
        base, json={"type": "webhook", "url": "http://127.0.0.1:9911/bob-2"}, headers=bob
    )
    assert res.status_code == 201, res.text
    method = res.json()
    assert method["user"] == "bob"
    first = verification(core_config, method["id"])
    assert first.payload["type"] == "verification"
    assert first.channel == "webhook"

    res = api.post(f"{base}/{method['id']}/send-code", headers=bob)
    assert res.status_code == 429
    assert res.headers["retry-after"] == "60"
    clock.advance(seconds=61)
    assert api.post(f"{base}/{method['id']}/send-code", headers=bob).status_code == 200
    second = verification(core_config, method["id"])
    assert second.idempotency_key == f"verify-{method['id']}-2"

    clock.advance(minutes=16)
    res = api.post(
        f"{base}/{method['id']}/verify", json={"code": second.payload["code"]}, headers=bob
    )
    assert res.status_code == 422
    assert "expired" in res.json()["detail"]

    assert api.post(f"{base}/{method['id']}/send-code", headers=bob).status_code == 200
    third = verification(core_config, method["id"])
    wrong = "000000" if third.payload["code"] != "000000" else "111111"
    for left in (4, 3, 2, 1):
        res = api.post(f"{base}/{method['id']}/verify", json={"code": wrong}, headers=bob)
        assert res.json()["detail"] == f"wrong code; {left} attempt(s) left"
    res = api.post(f"{base}/{method['id']}/verify", json={"code": wrong}, headers=bob)
    assert res.json()["detail"] == "wrong code; no attempts left"
    res = api.post(
        f"{base}/{method['id']}/verify", json={"code": third.payload["code"]}, headers=bob
    )
    assert res.status_code == 429
    assert "too many" in res.json()["detail"]


def test_contact_method_ownership_and_removal(oncall_api: TestClient) -> None:
    api = oncall_api
    bob = token_for(api, "bob", "respond")
    assert api.get("/api/v1/users/alice/contact-methods", headers=bob).status_code == 403
    mine = api.get("/api/v1/users/me/contact-methods", headers=bob).json()["items"]
    assert [m["id"] for m in mine] == ["bob-hook"]
    assert api.get("/api/v1/users/me/contact-methods").status_code == 422  # admin token: no user
    assert api.get("/api/v1/users/zed/contact-methods").status_code == 404

    res = api.delete("/api/v1/users/alice/contact-methods/alice-hook")
    assert res.status_code == 409
    assert "declared in the configuration" in res.json()["detail"]
    for body, word in [
        ({"type": "email", "address": "not-an-address"}, "not an email address"),
        ({"type": "webhook", "url": "ftp://example.test/x"}, "not an http(s) URL"),
        ({"type": "webhook", "address": "a@example.test"}, "needs `url`"),
        ({"type": "email", "address": "alice@example.test"}, "already contact method 'alice-mail'"),
    ]:
        res = api.post("/api/v1/users/alice/contact-methods", json=body)
        assert res.status_code == 422, body
        assert word in res.json()["detail"]

    added = api.post(
        "/api/v1/users/bob/contact-methods", json={"type": "email", "address": "b@example.test"}
    ).json()
    rules = {"high": [{"after": "0m", "via": "bob-hook"}, {"after": "2m", "via": added["id"]}]}
    assert api.put("/api/v1/users/bob/notification-rules", json=rules).status_code == 200
    path = f"/api/v1/users/me/contact-methods/{added['id']}"
    assert api.delete(path, headers=bob).status_code == 204
    assert api.delete(path, headers=bob).status_code == 404
    assert [r["via"] for r in api.get("/api/v1/users/bob/notification-rules").json()["high"]] == [
        "bob-hook"
    ]


def test_notification_rules_get_put(oncall_api: TestClient) -> None:
    api = oncall_api
    url = "/api/v1/users/alice/notification-rules"
    assert api.get(url).json() == {
        "user": "alice",
        "high": [
            {"after": "0s", "after_seconds": 0, "via": "alice-hook", "verified": True},
            {"after": "5m", "after_seconds": 300, "via": "alice-mail", "verified": True},
        ],
        "low": [{"after": "0s", "after_seconds": 0, "via": "alice-mail", "verified": True}],
    }
    wanted = {"high": [{"after": "10m", "via": "alice-hook"}, {"after": "0m", "via": "alice-mail"}]}
    res = api.put(url, json=wanted)
    assert res.status_code == 200
    assert [(r["after"], r["via"]) for r in res.json()["high"]] == [
        ("0s", "alice-mail"), ("10m", "alice-hook")
    ]  # fmt: skip
    assert res.json()["low"] == []
    assert api.get(url).json() == res.json()
    res = api.put(url, json={"high": [{"after": "0m", "via": "bob-hook"}]})
    assert res.status_code == 422
    assert res.json()["valid"] == ["alice-hook", "alice-mail"]
    res = api.put(url, json={"high": [{"after": "soon", "via": "alice-hook"}]})
    assert res.status_code == 422
    assert res.json()["errors"][0]["field"] == "high[0].after"
    bob = token_for(api, "bob", "respond")
    assert api.put(url, json=wanted, headers=bob).status_code == 403


# --- signed action links ---


def test_action_link_acknowledges_an_incident(oncall_api: TestClient) -> None:
    api = oncall_api
    incident = declare(api)
    path = link_path(api, "incident", incident["id"], "acknowledge")
    res = api.get(path, headers={"Authorization": ""})
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert res.headers["referrer-policy"] == "no-referrer"
    assert f"Incident #{incident['id']} is acknowledged" in res.text
    assert api.get(f"/api/v1/incidents/{incident['id']}").json()["status"] == "investigating"
    timeline = api.get(f"/api/v1/incidents/{incident['id']}/timeline").json()["items"]
    acked = next(e for e in timeline if e["kind"] == "acknowledged")
    assert acked["actor"] == "alice"
    assert acked["source"] == "link"
    state = api.get(f"/api/v1/incidents/{incident['id']}/notifications").json()["escalation"]
    assert state["status"] == "acknowledged"

    again = api.get(path, headers={"Accept": "application/json"})
    assert again.status_code == 200
    assert again.json()["result"] == "already"
    assert "already acknowledged" in again.json()["message"]


def test_action_link_resolve_asks_first(oncall_api: TestClient) -> None:
    api = oncall_api
    incident = declare(api)
    path = link_path(api, "incident", incident["id"], "resolve")
    page = api.get(path)
    assert page.status_code == 200
    assert f'<form method="post" action="{path}">' in page.text
    # A mail scanner opening the link changes nothing.
    assert api.get(f"/api/v1/incidents/{incident['id']}").json()["status"] == "triggered"
    done = api.post(path, headers={"Accept": "application/json"})
    assert done.status_code == 200
    assert done.json()["result"] == "done"
    assert done.json()["status"] == "resolved"
    assert api.get(f"/api/v1/incidents/{incident['id']}").json()["status"] == "resolved"
    assert "already resolved" in api.post(path).text
    ack = link_path(api, "incident", incident["id"], "acknowledge")
    assert "already resolved" in api.get(ack).text


def test_action_link_on_an_alert_group(oncall_api: TestClient) -> None:
    api = oncall_api
    alert = {"status": "firing", "labels": {"alertname": "HighLatency", "cluster": "eu-1"},
             "annotations": {"summary": "slow"}}  # fmt: skip
    res = api.post("/api/v1/ingest/am-production-0001", json={"version": "4", "alerts": [alert]})
    assert res.status_code == 202, res.text
    group = api.get("/api/v1/alert-groups").json()["items"][0]
    path = link_path(api, "alert_group", group["id"], "acknowledge")
    res = api.get(path, headers={"Accept": "application/json"})
    assert res.json()["result"] == "done"
    assert api.get(f"/api/v1/alert-groups/{group['id']}").json()["acknowledged_by"] == "alice"
    notes = api.get(f"/api/v1/alert-groups/{group['id']}/notifications").json()
    assert notes["escalation"]["status"] == "acknowledged"
    resolve = link_path(api, "alert_group", group["id"], "resolve")
    assert api.post(resolve).status_code == 200
    assert api.get(f"/api/v1/alert-groups/{group['id']}").json()["status"] == "resolved"


def test_action_link_expired_or_forged(
    oncall_api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = oncall_api
    incident = declare(api)
    with monkeypatch.context() as patch:
        two_days_ago = int(time.time() - timedelta(days=2).total_seconds())
        patch.setattr(TimestampSigner, "get_timestamp", lambda _self: two_days_ago)
        old = link_path(api, "incident", incident["id"], "acknowledge")
    res = api.get(old)
    assert res.status_code == 410
    assert "expired" in res.text
    assert api.get(old, headers={"Accept": "application/json"}).json() == {
        "detail": "this link has expired; open Tocsin to act on the page"
    }
    assert api.get(f"/api/v1/incidents/{incident['id']}").json()["status"] == "triggered"
    good = link_path(api, "incident", incident["id"], "acknowledge")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert api.get(forged).status_code == 404
    assert api.post("/a/not-a-token").status_code == 404
    missing = link_path(api, "incident", 999999, "acknowledge")
    assert api.get(missing).status_code == 404
