"""Web UI on call: schedules, overrides, escalation policies, the paging panel and people's own
contact methods and rules, on the example configuration (core + alerting + on-call), as users.

The fake clock stands at Saturday 2026-03-14 09:26:53 UTC: week 9 of the primary rotation
(Europe/Berlin, weekly from Monday 2026-01-05 09:00, alice then bob) is bob's; the secondary
schedule (America/Chicago, weekdays 08:00-18:00 only) has nobody on call: a gap.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.conftest import EXAMPLES, FakeClock, apply_yaml
from tests.integration.test_web_alerts import PASSWORD, Web
from tests.oncall_harness import LINKS
from tocsin.api.app import create_app
from tocsin.engine.oncall import EscalationModule, NotificationRuleModule
from tocsin.services import access
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import (
    ContactMethodRow,
    EscalationRow,
    NotificationRuleRow,
    OutboxRow,
    ScheduleOverrideRow,
    ScheduleRow,
)

_TAGS = re.compile(r"<[^>]+>")


def text_of(page: str) -> str:
    """Return a page's visible text with whitespace collapsed, for phrase assertions."""
    body = page[page.index("<main") :]
    text = re.sub(r"\s+", " ", html.unescape(_TAGS.sub(" ", body)))
    return re.sub(r"\( ", "(", re.sub(r" ([),.;])", r"\1", text))


def section(page: str, element_id: str) -> str:
    """Return the text of the element with this id (up to the next section)."""
    start = page.index(">", page.index(f'id="{element_id}"')) + 1
    end = page.find("<section", start)
    return text_of("<main>" + page[start : end if end > 0 else None]).strip()


@pytest.fixture
def web(
    core_config: Database, make_settings: Callable[..., Any], clock: FakeClock
) -> Iterator[Web]:
    for name in ("alerting.yaml", "oncall.yaml"):
        apply_yaml(core_config, (EXAMPLES / name).read_text())
    with core_config.write() as session:
        for user in ("alice", "bob", "carol"):
            access.set_password(session, user, PASSWORD)
        session.commit()
    app = create_app(make_settings(core_config.url), core_config, clock)
    with TestClient(app) as client:
        w = Web(client, core_config)
        w.login("bob")
        yield w


def run_engine(db: Database, now: datetime) -> None:
    """Fire due escalation steps and turn pages into outbox messages, as the engine would."""
    with db.write() as session:
        EscalationModule().update(session, now)
        session.commit()
    with db.write() as session:
        NotificationRuleModule(LINKS).update(session, now)
        session.commit()


def overrides(db: Database) -> list[ScheduleOverrideRow]:
    with db.read() as session:
        return list(session.scalars(select(ScheduleOverrideRow).order_by(ScheduleOverrideRow.id)))


# --- schedules ---


def test_schedule_list_shows_who_is_on_call_and_the_next_handoff(web: Web) -> None:
    page = text_of(web.page("/schedules"))
    assert "primary Europe/Berlin On call now: Bob Example" in page
    assert "Next handoff 2026-03-16 09:00 CET (in 1d22h) → Alice Example" in page
    assert "secondary America/Chicago On call now: nobody (gap)" in page
    # Monday 08:00 in Chicago (daylight time since 8 March): bob's daily shift.
    assert "Next handoff 2026-03-16 08:00 CDT (in 2d3h) → Bob Example" in page
    nav = web.page("/schedules")
    assert '<a href="/schedules" aria-current="page">On call</a>' in nav


def test_schedule_page_shows_two_weeks_layers_and_the_feed(web: Web) -> None:
    raw = web.page("/schedules/primary")
    assert section(raw, "now").startswith(
        "On call now Bob Example Next handoff 2026-03-16 09:00 CET"
    )
    days = section(raw, "days")
    assert "Somebody is on call at every moment of the next 14 days." in days
    assert "Sat 14 Mar all day Bob Example now Sun 15 Mar all day Bob Example" in days
    assert "Mon 16 Mar 00:00–09:00 Bob Example 09:00–24:00 Alice Example" in days
    assert "Mon 23 Mar 00:00–09:00 Alice Example 09:00–24:00 Bob Example" in days
    assert "Fri 27 Mar all day Bob Example" in days
    assert "Sat 28 Mar" not in days  # today and 13 more days
    layers = section(raw, "layers")
    assert "weekly rotation handoff monday 09:00 · since 2026-01-05" in layers
    assert "Users, in turn: Alice Example, Bob Example" in layers
    with web.db.read() as session:
        row = session.get(ScheduleRow, "primary")
        assert row is not None
        token = row.calendar_token
    feed = f"http://testserver/api/v1/schedules/primary/calendar.ics?token={token}"
    assert f'value="{feed}"' in raw
    calendar = web.client.get(feed.removeprefix("http://testserver"))
    assert calendar.status_code == 200
    assert "BEGIN:VCALENDAR" in calendar.text


def test_gaps_in_coverage_are_flagged(web: Web) -> None:
    raw = web.page("/schedules/secondary")
    assert "On call now Nobody: this is a gap in coverage" in section(raw, "now")
    days = section(raw, "days")
    # Weekdays 08:00-18:00 Chicago time only: every day has a gap; the weekend is one.
    assert "Coverage gaps on 14 of 14 days" in days
    assert "Sat 14 Mar all day Gap: nobody now" in days
    assert (
        "Mon 16 Mar 00:00–08:00 Gap: nobody 08:00–18:00 Bob Example 18:00–24:00 Gap: nobody" in days
    )
    assert 'class="entry gap current"' in raw
    assert "Only: Mon–Fri 08:00–18:00" in section(raw, "layers")
    listing = web.page("/schedules")
    assert "status-edge-gap" in listing


def test_add_and_delete_overrides_through_the_form(web: Web) -> None:
    form = web.page("/schedules/primary")
    # The form offers the common case: from now until the next handoff.
    assert '<input type="datetime-local" name="starts" value="2026-03-14T10:26"' in form
    assert '<input type="datetime-local" name="ends" value="2026-03-16T09:00"' in form
    response = web.post(
        "/schedules/primary/overrides", kind="replace", user="alice", replaces="bob",
        starts="2026-03-14T12:00", ends="2026-03-14T18:30", note="dentist",
    )  # fmt: skip
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/schedules/primary#overrides"
    (row,) = overrides(web.db)
    # Wall-clock times in Europe/Berlin (CET, UTC+1 in March before the 29th).
    assert (row.kind, row.user_id, row.replaces_user_id, row.note, row.created_by) == (
        "replace", "alice", "bob", "dentist", "bob",
    )  # fmt: skip
    assert row.starts_at == datetime(2026, 3, 14, 11, 0, tzinfo=UTC)
    assert row.ends_at == datetime(2026, 3, 14, 17, 30, tzinfo=UTC)
    raw = web.page("/schedules/primary")
    listed = section(raw, "overrides")
    assert (
        "Alice Example covers for Bob Example 2026-03-14 12:00 CET → 2026-03-14 18:30 CET" in listed
    )
    assert "dentist" in listed
    days = section(raw, "days")
    assert (
        "Sat 14 Mar 00:00–12:00 Bob Example now 12:00–18:30 Alice Example "
        "18:30–24:00 Bob Example" in days
    )

    # One that is active now changes who is on call now, here and on the list.
    response = web.post(
        "/schedules/primary/overrides", kind="add", user="carol", replaces="alice",
        starts="2026-03-14T10:00", ends="2026-03-14T11:00",
    )  # fmt: skip
    assert response.status_code == 303, response.text
    assert overrides(web.db)[1].replaces_user_id is None  # only a replacement names one
    assert "On call now Bob Example, Carol Example" in section(
        web.page("/schedules/primary"), "now"
    )
    assert "On call now: Bob Example, Carol Example" in text_of(web.page("/schedules"))

    first = overrides(web.db)[0].id
    response = web.post(f"/schedules/primary/overrides/{first}/delete")
    assert response.status_code == 303
    assert [o.kind for o in overrides(web.db)] == ["add"]
    assert "covers for" not in section(web.page("/schedules/primary"), "overrides")
    # Deleting it again (another tab): a message on the page, not a crash.
    again = web.post(f"/schedules/primary/overrides/{first}/delete")
    assert again.status_code == 404
    assert f"override {first} not found" in again.text
    assert web.post("/schedules/primary/overrides/x/delete").status_code == 404


OVERRIDE_REFUSALS = [
    ({"kind": "swap"}, "Choose what the override does."),
    ({"user": ""}, "Choose who is on call (or off call)."),
    ({"user": "zed"}, "Unknown user &#39;zed&#39;."),
    ({"user": "bob", "replaces": "bob"}, "Someone cannot take over from themselves."),
    ({"starts": "tomorrow"}, "The start &#39;tomorrow&#39; is not a date and time"),
    ({"starts": ""}, "Give the start date and time."),
    ({"ends": "2026-03-14T11:00"}, "The end must be after the start."),
    ({"starts": "2026-03-13T08:00", "ends": "2026-03-13T09:00"}, "That period is already over"),
    ({"ends": "99999-01-01T00:00"}, "is not a date and time"),
    ({"ends": "9999-12-31T23:59"}, "between the years 2000 and 2200"),
    ({"note": "x" * 2001}, "Keep the note under 2000 characters."),
    ({"user": "bo\x00b"}, "The user contains a character that is not allowed."),
    ({"user": "u" * 65}, "Keep the user under 64 characters."),
]


def test_a_refused_override_says_why(web: Web) -> None:
    for fields, message in OVERRIDE_REFUSALS:
        data = {
            "kind": "replace", "user": "alice", "replaces": "", "starts": "2026-03-14T12:00",
            "ends": "2026-03-14T18:00", "note": "", **fields,
        }  # fmt: skip
        response = web.post("/schedules/primary/overrides", **data)
        assert response.status_code == 422, (fields, response.text)
        assert message in response.text, fields
        assert "The override was not added" in response.text
        assert '<details class="add-override" open>' in response.text  # the form comes back
    assert overrides(web.db) == []


def test_override_changes_need_a_responder_and_the_form_token(web: Web) -> None:
    data = {
        "kind": "add",
        "user": "carol",
        "starts": "2026-03-14T12:00",
        "ends": "2026-03-14T13:00",
    }
    forged = web.client.post(
        "/schedules/primary/overrides", data={**data, "csrf": "forged"}, follow_redirects=False
    )
    assert forged.status_code == 403
    web.login("carol")  # a viewer
    page = web.page("/schedules/primary")
    assert 'action="/schedules/primary/overrides"' not in page
    assert web.post("/schedules/primary/overrides", **data).status_code == 403
    assert overrides(web.db) == []


@pytest.mark.parametrize("path", ["/schedules/nope", "/schedules/" + "s" * 300, "/schedules/a%00b"])
def test_unknown_schedules_are_a_404_page(web: Web, path: str) -> None:
    response = web.client.get(path)
    assert response.status_code == 404
    assert "not found" in response.text
    posted = web.post(path + "/overrides", kind="add", user="bob")
    assert posted.status_code == 404


def test_pages_need_a_login(web: Web) -> None:
    web.client.cookies.clear()
    for path in ("/schedules", "/schedules/primary", "/escalation-policies", "/profile"):
        response = web.client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


# --- escalation policies ---


def test_policy_pages_show_steps_in_time_order_with_who_they_reach_now(web: Web) -> None:
    listing = text_of(web.page("/escalation-policies"))
    assert "api-default repeats 2×" in listing
    assert "Used by: Public API" in listing
    raw = web.page("/escalation-policies/api-default")
    steps = section(raw, "steps")
    assert (
        "at 0 min schedule primary (now: Bob Example) "
        "at 15 min schedule secondary (now: nobody) "
        "at 30 min Carol Example" in steps
    )
    assert "the steps run again 2 more times, starting every 45m" in steps
    assert 'href="/schedules/primary"' in raw
    rules = section(raw, "rules")
    assert "Stops paging until the incident or alert is resolved." in rules
    assert "A missed respond-within is logged; nobody extra is paged." in rules
    assert "P0 15m, P1 1h" in rules
    assert "Services Public API" in rules
    missing = web.client.get("/escalation-policies/nope")
    assert missing.status_code == 404


def test_policy_page_shows_ack_timeout_and_sla_targets(web: Web) -> None:
    strict = (
        "  - id: strict\n"
        "    name: Strict\n"
        "    ack_timeout: 30m\n"
        "    on_sla_breach: {notify: [team:platform]}\n"
        "    steps:\n"
        "      - {after: 0m, notify: [schedule:primary], round_robin: true}\n"
        "      - {after: 1h30m, notify: [user:alice, schedule:secondary]}\n"
    )
    config = (EXAMPLES / "oncall.yaml").read_text().replace("services:", strict + "services:")
    apply_yaml(web.db, config)
    raw = web.page("/escalation-policies/strict")
    steps = section(raw, "steps")
    assert (
        "at 0 min schedule primary (now: Bob Example) round robin "
        "at 90 min Alice Example; schedule secondary (now: nobody)" in steps
    )
    assert "they do not repeat" in steps
    rules = section(raw, "rules")
    assert "Lasts 30m; if not resolved by then, paging starts again" in rules
    assert "page team Platform (Alice Example, Bob Example)" in rules
    assert "No service uses this policy." in rules


# --- the paging panel ---


def test_paging_panel_on_an_incident(web: Web, clock: FakeClock) -> None:
    response = web.post("/incidents", title="Checkout is down", severity="P1", services="api")
    assert response.status_code == 303, response.text
    number = int(response.headers["location"].rsplit("/", 1)[1])
    panel = section(web.page(f"/incidents/{number}"), "paging")
    assert "Paging Active High urgency api-default" in panel
    assert "Step 1 of 3, pass 1 of 3 at 2026-03-14 09:26 UTC (due now)" in panel
    assert "Respond by 2026-03-14 10:26 UTC (in 1h)" in panel
    assert "Started Escalation started (policy api-default)" in panel

    run_engine(web.db, clock.now)
    raw = web.page(f"/incidents/{number}")
    panel = section(raw, "paging")
    assert "Step 2 of 3, pass 1 of 3 at 2026-03-14 09:41 UTC (in 15m)" in panel
    assert "Step fired Step 1 (pass 1): bob" in panel
    assert "Queued Bob Example bob via webhook (bob-hook)" in panel
    # The message, with its address masked: a webhook URL often carries a secret.
    assert "Pending webhook to Bob Example http://127.0.0.1/***" in panel
    assert "9911/bob" not in raw

    with web.db.write() as session:
        session.execute(
            update(OutboxRow).values(
                status="failed", attempts=3,
                last_error="connection refused: http://127.0.0.1:9911/bob",
            )
        )  # fmt: skip
        session.commit()
    clock.advance(hours=1, minutes=1)
    run_engine(web.db, clock.now)
    raw = web.page(f"/incidents/{number}")
    panel = section(raw, "paging")
    assert "Failed webhook to Bob Example http://127.0.0.1/*** page" in panel
    assert "3 attempts Last error: connection refused: http://127.0.0.1/***" in panel
    assert "9911/bob" not in raw
    assert "Breached at 2026-03-14 10:26 UTC" in panel
    assert "SLA breached Respond-within target passed unacknowledged" in panel
    assert "Step fired Step 3 (pass 1): carol" in panel

    assert web.post(f"/incidents/{number}/acknowledge").status_code == 303
    panel = section(web.page(f"/incidents/{number}"), "paging")
    assert "Paging Acknowledged" in panel
    assert "Acknowledged by bob at 2026-03-14 10:27 UTC" in panel


def test_paging_panel_when_nobody_is_paged(web: Web) -> None:
    response = web.post("/incidents", title="Slow queries", severity="P2", services="database")
    number = int(response.headers["location"].rsplit("/", 1)[1])
    panel = section(web.page(f"/incidents/{number}"), "paging")
    assert "Nobody is paged about this: no escalation policy applies to its service." in panel


def test_paging_panel_on_an_alert_group_and_its_hand_over(web: Web, clock: FakeClock) -> None:
    web.alertmanager()  # service api
    with web.db.read() as session:
        escalation = session.scalars(select(EscalationRow)).one()
    assert (escalation.subject_type, escalation.subject_id) == ("alert_group", 1)
    run_engine(web.db, clock.now)
    panel = section(web.page("/alerts/1"), "paging")
    assert "Paging Active High urgency api-default" in panel
    assert "Step fired Step 1 (pass 1): bob" in panel
    assert "http://127.0.0.1/***" in panel

    response = web.post("/alerts/1/declare", severity="P1", title="")
    assert response.status_code == 303, response.text
    number = int(response.headers["location"].rsplit("/", 1)[1])
    panel = section(web.page("/alerts/1"), "paging")
    assert f"Paging for this alert group continues on INC-{number}." in panel
    assert "Step fired Step 1 (pass 1): bob" in panel  # what happened before stays
    incident = section(web.page(f"/incidents/{number}"), "paging")
    assert "Handed over Escalation continues from alert group 1" in incident

    # A group of a service without a policy never paged, so it hands nothing over.
    web.pagerduty()  # service database
    assert web.post("/alerts/2/declare", severity="P2", title="").status_code == 303
    quiet = section(web.page("/alerts/2"), "paging")
    assert "Nobody is paged about this: no escalation policy applies to its service." in quiet


# --- the profile ---


def verification_code(db: Database, method_id: str) -> str:
    with db.read() as session:
        row = session.scalars(
            select(OutboxRow)
            .where(OutboxRow.contact_method_id == method_id, OutboxRow.kind == "verification")
            .order_by(OutboxRow.id.desc())
        ).first()
    assert row is not None
    return str(row.payload["code"])


def methods_of(db: Database, user: str) -> dict[str, ContactMethodRow]:
    with db.read() as session:
        rows = session.scalars(
            select(ContactMethodRow).where(
                ContactMethodRow.user_id == user, ContactMethodRow.archived.is_(False)
            )
        )
        return {r.id: r for r in rows}


def rules_of(db: Database, user: str) -> list[tuple[str, int, str]]:
    with db.read() as session:
        rows = session.scalars(
            select(NotificationRuleRow)
            .where(NotificationRuleRow.user_id == user)
            .order_by(NotificationRuleRow.urgency, NotificationRuleRow.position)
        )
        return [(r.urgency, r.after_s, r.contact_method_id) for r in rows]


def test_profile_add_verify_and_remove_a_contact_method(web: Web, clock: FakeClock) -> None:
    page = text_of(web.page("/profile"))
    assert "Webhook webhook from configuration http://127.0.0.1:9911/bob id bob-hook" in page
    assert "High urgency after 0m via http://127.0.0.1:9911/bob (webhook)" in page
    assert "Low urgency None: low-urgency pages follow your high-urgency rules." in page
    assert web.client.get("/me", follow_redirects=False).headers["location"] == "/profile"

    response = web.post(
        "/profile/contact-methods", type="email", target=" bob@home.example ", name="Home"
    )
    assert response.status_code == 303, response.text
    (added,) = [m for m in methods_of(web.db, "bob").values() if m.source == "user"]
    assert (added.type, added.target, added.name, added.verified_at) == (
        "email", "bob@home.example", "Home", None,
    )  # fmt: skip
    assert response.headers["location"] == f"/profile?sent=1#method-{added.id}"
    raw = web.page(response.headers["location"])
    assert "We sent a code to the new contact method." in raw
    method = section(raw, f"method-{added.id}")
    assert "Home email Not verified bob@home.example" in method
    assert f'action="/profile/contact-methods/{added.id}/verify"' in raw

    code = verification_code(web.db, added.id)
    wrong = "000000" if code != "000000" else "111111"
    refused = web.post(f"/profile/contact-methods/{added.id}/verify", code=wrong)
    assert refused.status_code == 422
    assert "Wrong code; 4 attempt(s) left." in refused.text
    with web.db.read() as session:
        row = session.get(ContactMethodRow, added.id)
        assert row is not None
        assert row.verify_attempts == 1  # the wrong try was committed and counted
    too_soon = web.post(f"/profile/contact-methods/{added.id}/send-code")
    assert too_soon.status_code == 429
    assert "a code was sent less than a minute ago" in too_soon.text.lower()
    clock.advance(minutes=2)
    resent = web.post(f"/profile/contact-methods/{added.id}/send-code")
    assert resent.status_code == 303
    code = verification_code(web.db, added.id)
    ok = web.post(f"/profile/contact-methods/{added.id}/verify", code=f" {code} ")
    assert ok.status_code == 303, ok.text
    assert methods_of(web.db, "bob")[added.id].verified_at is not None
    assert "Home email Verified" in section(web.page("/profile"), f"method-{added.id}")

    # Config-declared methods are removed in the configuration, not here.
    kept = web.post("/profile/contact-methods/bob-hook/remove")
    assert kept.status_code == 409
    assert "declared in the configuration; remove it there" in kept.text
    # Someone else's method is not found, as if it did not exist.
    assert web.post("/profile/contact-methods/alice-hook/remove").status_code == 404
    gone = web.post(f"/profile/contact-methods/{added.id}/remove")
    assert gone.status_code == 303
    assert set(methods_of(web.db, "bob")) == {"bob-hook"}


METHOD_REFUSALS = [
    ({"type": "pager", "target": "+4912345"}, 422, "Choose one of the contact method types."),
    ({"type": "sms", "target": "4912345"}, 422, "is not a phone number in E.164 form"),
    ({"type": "slack", "target": "@bob"}, 422, "is not a Slack member id"),
    ({"type": "email", "target": ""}, 422, "Give the address to reach you at."),
    ({"type": "email", "target": "not-an-address"}, 422, "is not an email address"),
    ({"type": "webhook", "target": "ftp://x.example/"}, 422, "is not an http(s) URL"),
    ({"type": "webhook", "target": "https://x.example/" + "a" * 3000}, 422, "under 2048"),
    ({"type": "email", "target": "a@b.example", "name": "n" * 201}, 422, "under 200"),
    ({"type": "email", "target": "a\x00@b.example"}, 422, "not allowed"),
    ({"type": "webhook", "target": "http://127.0.0.1:9911/bob"}, 422, "already contact method"),
]


def test_a_refused_contact_method_says_why(web: Web) -> None:
    for fields, status, message in METHOD_REFUSALS:
        response = web.post("/profile/contact-methods", **fields)
        assert response.status_code == status, (fields, response.text)
        assert message in html.unescape(response.text), fields
    assert set(methods_of(web.db, "bob")) == {"bob-hook"}


def test_profile_rules_edit_form(web: Web) -> None:
    web.login("alice")
    page = text_of(web.page("/profile"))
    assert "High urgency after 0m via http://127.0.0.1:9911/alice (webhook)" in page
    assert "after 5m via alice@example.test (email)" in page
    raw = web.page("/profile")
    # Two saved high rules and one low, each with two spare rows.
    assert raw.count('name="high_after"') == 4
    assert raw.count('name="low_after"') == 3
    response = web.client.post(
        "/profile/notification-rules",
        data={
            "csrf": web.csrf,
            "high_after": ["10m", "", "", "0m"],
            "high_via": ["alice-mail", "", "", "alice-hook"],
            "low_after": ["", "2m"],
            "low_via": ["", ""],
        },
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert "Low urgency, rule 2: choose a contact method." in response.text
    assert '<details class="edit-rules" open>' in response.text
    assert 'value="10m"' in response.text  # the form comes back as typed
    response = web.client.post(
        "/profile/notification-rules",
        data={
            "csrf": web.csrf,
            "high_after": ["10m", "", "", "0m"],
            "high_via": ["alice-mail", "", "", "alice-hook"],
            "low_after": [""],
            "low_via": ["alice-hook"],
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert rules_of(web.db, "alice") == [
        ("high", 0, "alice-hook"),
        ("high", 600, "alice-mail"),
        ("low", 0, "alice-hook"),
    ]
    for afters, vias, message in [
        (["soon"], ["alice-hook"], "High urgency, the rule &#39;soon via alice-hook&#39;"),
        (["2d"], ["alice-hook"], "a rule waits at most 1d"),
        (["0m"], ["bob-hook"], "&#39;bob-hook&#39; is not one of alice&#39;s contact methods"),
    ]:
        refused = web.client.post(
            "/profile/notification-rules",
            data={"csrf": web.csrf, "high_after": afters, "high_via": vias},
            follow_redirects=False,
        )
        assert refused.status_code == 422, refused.text
        assert message in refused.text
    assert len(rules_of(web.db, "alice")) == 3


def test_a_viewer_manages_their_own_methods(web: Web) -> None:
    web.login("carol")  # a viewer, yet step 3 of api-default pages her
    page = text_of(web.page("/profile"))
    assert "You have no contact methods: pages cannot reach you." in page
    assert "None: you are not notified when paged." in page
    response = web.post(
        "/profile/contact-methods", type="webhook", target="https://hooks.example/c"
    )
    assert response.status_code == 303
    assert len(methods_of(web.db, "carol")) == 1
    forged = web.client.post(
        "/profile/contact-methods",
        data={"type": "email", "target": "x@y.example", "csrf": "nope"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
