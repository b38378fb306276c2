"""Outgoing webhooks of lifecycle events (SQLite, PostgreSQL): the `webhooks` config section,
signed deliveries checked by a real receiver that verifies signature and timestamp, filters,
retries with fresh signatures, and permanent failures shown on the incident."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from tests.conftest import EXAMPLES, FakeClock
from tests.receivers import SigningWebhookReceiver
from tocsin.configfile import ApplyReport, ConfigError, apply_config, export_config, load_config
from tocsin.core.actors import Actor, Scope
from tocsin.core.alerts import Action, Signal
from tocsin.core.incidents import Status
from tocsin.engine.lifecycle_module import LifecycleModule
from tocsin.engine.loop import Engine
from tocsin.engine.outbox_sender import OutboxSender
from tocsin.notify.base import OutgoingMessage
from tocsin.notify.signing import verify
from tocsin.notify.webhook import WebhookChannel
from tocsin.services import incidents, outbox
from tocsin.services.alerting_config import alerting_config
from tocsin.services.ingest import Delivery, ingest_many
from tocsin.services.outgoing_webhooks import WebhookReactor
from tocsin.storage.db import Database
from tocsin.storage.lifecycle_tables import WebhookSubscriptionRow
from tocsin.storage.oncall_tables import OutboxRow
from tocsin.storage.tables import TimelineEventRow
from tocsin.web.paging import paging_panel

SECRET = "example-webhook-secret"
ALICE = Actor("alice", frozenset(Scope), user_id="alice", source="api")


def apply(db: Database, text: str, *, prune: bool = False) -> ApplyReport:
    with db.write() as session:
        report = apply_config(session, load_config(text, "test.yaml"), prune=prune)
        session.commit()
    return report


def problems(db: Database, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught, db.write() as session:
        apply_config(session, load_config(text, "test.yaml"))
    return [str(issue) for issue in caught.value.errors]


# --- the config section ---

WEBHOOKS = """
webhooks:
  - id: ops-feed
    url: http://127.0.0.1:9911/ops
    secret: example-webhook-secret
  - id: api-incidents
    url: https://hooks.example.test/tocsin?token=abc
    events: [incident.*, alert_group.resolved]
    services: [api]
  - {id: paused, url: "http://127.0.0.1:9911/paused", enabled: false}
"""


def test_webhooks_apply_and_export_round_trip(core_config: Database) -> None:
    report = apply(core_config, WEBHOOKS)
    assert [(c.key, c.action) for c in report.changes if c.section == "webhooks"] == [
        ("ops-feed", "created"),
        ("api-incidents", "created"),
        ("paused", "created"),
    ]
    with core_config.read() as session:
        rows = {r.id: r for r in session.scalars(select(WebhookSubscriptionRow))}
    assert rows["ops-feed"].secret == SECRET
    assert (rows["ops-feed"].events, rows["ops-feed"].services) == ([], [])
    assert rows["api-incidents"].events == ["incident.*", "alert_group.resolved"]
    assert rows["api-incidents"].services == ["api"]
    assert rows["paused"].enabled is False
    with core_config.read() as session:
        exported = export_config(session)
    section = exported[exported.index("webhooks:") :].split("\n\n")[0]
    assert "secret: example-webhook-secret" in section
    assert "enabled: false" in section
    assert "events:" in section
    # What export writes applies back unchanged.
    again = apply(core_config, exported)
    assert not again.changed
    # A change is reported as a diff; prune archives a webhook left out.
    changed = apply(
        core_config,
        "webhooks:\n  - {id: ops-feed, url: 'http://127.0.0.1:9911/ops2', secret: new}\n",
        prune=True,
    )
    by_key = {c.key: c for c in changed.changes if c.section == "webhooks"}
    assert by_key["ops-feed"].action == "updated"
    assert by_key["ops-feed"].diffs["url"] == (
        "http://127.0.0.1:9911/ops",
        "http://127.0.0.1:9911/ops2",
    )
    assert by_key["api-incidents"].action == by_key["paused"].action == "archived"
    with core_config.read() as session:
        assert "api-incidents" not in export_config(session)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "webhooks:\n  - id: a\n    url: http://x.test/\n    events: [incident.declared, "
            "incident.resolve]\n",
            "webhooks[0].events[1]: unknown event 'incident.resolve' (did you mean "
            "'incident.resolved'?); use an event kind such as incident.resolved, a subject "
            "pattern such as incident.* or alert_group.*, or * (line 4)",
        ),
        (
            "webhooks:\n  - id: a\n    url: ftp://x.test/\n",
            "webhooks[0].url: 'ftp://x.test/' is not an http(s) URL (line 3)",
        ),
        (
            "webhooks:\n  - id: a\n    url: http://x.test/\n    services: [api, nowhere]\n",
            "webhooks[0].services[1]: unknown service 'nowhere' (line 4)",
        ),
        (
            "webhooks:\n  - {id: a, url: 'http://x.test/'}\n  - {id: a, url: 'http://y.test/'}\n",
            "webhooks[1].id: duplicate webhook id 'a' (also at webhooks[0]) (line 3)",
        ),
        (
            "webhooks:\n  - {id: a, url: 'http://x.test/', secret: ''}\n",
            "webhooks[0].secret: must not be empty (line 2)",
        ),
        (
            "webhooks:\n  - {id: a, url: 'http://x.test/', event: ['*']}\n",
            "webhooks[0].event: unknown key 'event' (did you mean 'events'?) (line 2)",
        ),
        (
            "webhooks:\n",
            "webhooks: section is empty; write [] to declare it with no entries (line 1)",
        ),
    ],
)
def test_mistakes_are_named_with_path_and_line(
    core_config: Database, text: str, message: str
) -> None:
    assert message in problems(core_config, text)


# --- deliveries ---


@pytest.fixture
def receiver() -> Iterator[SigningWebhookReceiver]:
    with SigningWebhookReceiver(SECRET) as hooks:
        yield hooks


class Stack:
    """The engine's lifecycle module and sender over a real webhook channel."""

    def __init__(self, db: Database, clock: FakeClock, unix: list[float]) -> None:
        self.db = db
        self.clock = clock
        self.channel = WebhookChannel(timeout=2.0, clock=lambda: unix[0])
        self.sender = OutboxSender({"webhook": self.channel}, owner="engine-1", clock=clock)
        self.engine = Engine(
            db,
            clock,
            [LifecycleModule([WebhookReactor("http://tocsin.test")]), self.sender],
            registry=CollectorRegistry(),
        )

    def run(self) -> None:
        for _ in range(5):
            deadline = self.engine.run_once(woken=True)
            if deadline is None or deadline > self.clock():
                return

    def close(self) -> None:
        self.sender.close()
        self.channel.close()


@pytest.fixture
def unix() -> list[float]:
    # The sender's wall clock (signature timestamps); the receiver checks against real time.
    return [datetime.now(UTC).timestamp()]


@pytest.fixture
def stack(core_config: Database, clock: FakeClock, unix: list[float]) -> Iterator[Stack]:
    built = Stack(core_config, clock, unix)
    yield built
    built.close()


def hooks_config(receiver: SigningWebhookReceiver) -> str:
    return f"""
webhooks:
  - {{id: everything, url: "{receiver.url("/all")}", secret: {SECRET}}}
  - id: resolved-api
    url: "{receiver.url("/resolved")}"
    secret: {SECRET}
    events: [incident.resolved, alert_group.*]
    services: [api]
  - {{id: db-only, url: "{receiver.url("/db")}", secret: {SECRET}, services: [database]}}
  - {{id: paused, url: "{receiver.url("/paused")}", secret: {SECRET}, enabled: false}}
"""


def declare(db: Database, now: datetime, **kw: Any) -> int:
    values: dict[str, Any] = {"title": "API down", "severity": "P1", "services": ["api"]}
    values.update(kw)
    with db.write() as session:
        incident = incidents.declare(session, ALICE, now, incidents.Declaration(**values))
        session.commit()
        return incident.id


def test_every_event_reaches_the_matching_webhooks_signed(
    stack: Stack, receiver: SigningWebhookReceiver, clock: FakeClock
) -> None:
    apply(stack.db, hooks_config(receiver))
    incident = declare(stack.db, clock())
    with stack.db.write() as session:
        incidents.change_status(session, ALICE, clock(), incident, Status.RESOLVED)
        session.commit()
    stack.run()
    requests = receiver.wait_for(4)
    assert all(v.ok for v in receiver.verified), [v.reason for v in receiver.verified]
    assert sorted((r.path, r.json["kind"]) for r in requests) == [
        ("/all", "incident.declared"),
        ("/all", "incident.resolved"),
        ("/all", "incident.status_changed"),
        ("/resolved", "incident.resolved"),
    ]
    resolved = next(r for r in requests if r.path == "/resolved")
    body = resolved.json
    assert body["kind"] == "incident.resolved"
    assert body["subject"] == {
        "type": "incident",
        "id": incident,
        "url": f"http://tocsin.test/incidents/{incident}",
    }
    assert body["webhook"] == "resolved-api"
    assert body["actor"] == "alice"
    assert body["at"] == clock().isoformat()
    assert body["data"]["status"] == "resolved"
    assert body["data"]["services"] == ["api"]
    assert body["data"]["slug"] == "incident-2026-03-14-001"
    headers = resolved.headers
    assert headers["x-tocsin-event"] == "incident.resolved"
    assert headers["idempotency-key"] == f"evt:{body['id']}:resolved-api"
    assert headers["content-type"] == "application/json"
    assert verify(SECRET, headers["x-tocsin-timestamp"], resolved.body,
                  headers["x-tocsin-signature"])  # fmt: skip
    # The database-only and paused webhooks got nothing; everything was sent once.
    assert not any(r.path in ("/db", "/paused") for r in requests)
    stack.run()
    assert len(receiver.requests) == 4
    with stack.db.read() as session:
        assert {r.status for r in session.scalars(select(OutboxRow))} == {"sent"}


def test_alert_group_events_follow_the_service_filter(
    stack: Stack, receiver: SigningWebhookReceiver, clock: FakeClock
) -> None:
    apply(stack.db, (EXAMPLES / "alerting.yaml").read_text())
    apply(stack.db, hooks_config(receiver))
    with stack.db.write() as session:
        config = alerting_config(session)
        deliveries = [
            Delivery(config.integrations["am-production-0001"], "alertmanager", "{}", clock(),
                     (Signal(Action.TRIGGER, "disk", "Disk full", severity="warning",
                             labels={"alertname": "Disk"}),)),
            Delivery(config.integrations["0f1e2d3c4b5a69788796a5b4c3d2e1f0"], "pagerduty", "{}",
                     clock(), (Signal(Action.TRIGGER, "db", "DB slow", severity="warning"),)),
        ]  # fmt: skip
        ingest_many(session, deliveries)
        session.commit()
    stack.run()
    requests = receiver.wait_for(4)
    assert sorted((r.path, r.json["data"]["service"]) for r in requests) == [
        ("/all", "api"),
        ("/all", "database"),
        ("/db", "database"),
        ("/resolved", "api"),
    ]
    assert {r.json["kind"] for r in requests} == {"alert_group.triggered"}
    assert all(v.ok for v in receiver.verified)


def test_a_retry_is_signed_again_with_a_fresh_timestamp(
    stack: Stack, receiver: SigningWebhookReceiver, clock: FakeClock, unix: list[float]
) -> None:
    apply(stack.db, f'webhooks:\n  - {{id: a, url: "{receiver.url()}", secret: {SECRET}}}\n')
    declare(stack.db, clock())
    receiver.respond(503, headers={"Retry-After": "20"})
    stack.run()
    first = receiver.wait_for(1)[0]
    # Twenty seconds later, by both clocks.
    clock.advance(seconds=20)
    unix[0] += 20
    stack.run()
    first, second = receiver.wait_for(2)
    assert first.status == 503
    assert second.status == 200
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.body == second.body
    assert (
        int(second.headers["x-tocsin-timestamp"]) == int(first.headers["x-tocsin-timestamp"]) + 20
    )
    assert first.headers["x-tocsin-signature"] != second.headers["x-tocsin-signature"]
    # The first request, replayed ten minutes on, is refused by the receiver's window.
    later = datetime.now(UTC).timestamp() + 600
    assert not verify(SECRET, first.headers["x-tocsin-timestamp"], first.body,
                      first.headers["x-tocsin-signature"], 300, now=later)  # fmt: skip


def test_a_receiver_refusing_the_signature_shows_on_the_incident(
    stack: Stack, clock: FakeClock, api: TestClient
) -> None:
    with SigningWebhookReceiver("another-secret") as strict:
        url = strict.url("/hook/private-token")
        apply(stack.db, f'webhooks:\n  - {{id: strict, url: "{url}", secret: {SECRET}}}\n')
        incident = declare(stack.db, clock())
        stack.run()
        (refused,) = strict.verified
    assert (refused.ok, refused.reason, refused.request.status) == (False, "bad signature", 401)
    with stack.db.read() as session:
        message = session.scalars(select(OutboxRow)).one()
        event = session.scalars(
            select(TimelineEventRow).where(TimelineEventRow.kind == "delivery_failed")
        ).one()
    assert message.status == "failed"
    assert message.last_error == "webhook answered HTTP 401: signature refused: bad signature"
    assert event.incident_id == incident
    assert event.actor == "system"
    assert event.text == (
        "Webhook event to http://127.0.0.1/*** could not be delivered after 1 attempt(s): "
        "webhook answered HTTP 401: signature refused: bad signature"
    )
    assert event.data["destination"] == "http://127.0.0.1/***"
    assert "private-token" not in json.dumps(event.data)
    # Neither the API nor the paging panel ever shows the secret (nor, to readers, the URL).
    body = api.get(f"/api/v1/incidents/{incident}/notifications").text
    assert SECRET not in body
    assert "webhook" in body
    timeline = api.get(f"/api/v1/incidents/{incident}/timeline").text
    assert "delivery_failed" in timeline
    assert SECRET not in timeline
    with stack.db.read() as session:
        panel = paging_panel(session, "incident", incident)
    assert SECRET not in repr(panel)
    assert "private-token" not in repr(panel)


def test_pages_keep_their_unsigned_payload_body(receiver: SigningWebhookReceiver) -> None:
    channel = WebhookChannel(timeout=2.0)
    try:
        message = OutgoingMessage(
            key="page-1-rule-0",
            channel="webhook",
            destination=receiver.url("/page"),
            title="API down",
            body="",
            payload={"type": "page", "user": "alice"},
            kind="page",
        )
        with pytest.raises(Exception, match="401"):
            channel.send(message)
    finally:
        channel.close()
    (request,) = receiver.wait_for(1)
    assert request.json == {"type": "page", "user": "alice"}
    assert request.headers["x-tocsin-event"] == "page"
    assert "x-tocsin-signature" not in request.headers
    assert receiver.verified[0].reason == "unsigned"


def test_a_webhook_without_a_secret_is_sent_unsigned(clock: FakeClock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    channel = WebhookChannel(client=httpx.Client(transport=httpx.MockTransport(handler)))
    message = OutgoingMessage(
        key="evt:1:a",
        channel="webhook",
        destination="http://hooks.test/",
        title="t",
        body="",
        payload={"webhook": {"body": {"kind": "incident.declared", "id": 1}, "secret": None}},
        kind="event",
    )
    channel.send(message)
    (request,) = seen
    assert json.loads(request.content) == {"kind": "incident.declared", "id": 1}
    assert request.headers["x-tocsin-event"] == "incident.declared"
    assert "x-tocsin-signature" not in request.headers


def test_messages_name_their_subject(core_config: Database, clock: FakeClock) -> None:
    apply(core_config, WEBHOOKS)
    incident = declare(core_config, clock())
    with core_config.write() as session:
        LifecycleModule([WebhookReactor(None)]).update(session, clock())
        session.commit()
    with core_config.read() as session:
        messages = outbox.message_log(session, "incident", incident)
    assert [(m.idempotency_key, m.kind, m.channel) for m in messages] == [
        ("evt:1:api-incidents", "event", "webhook"),
        ("evt:1:ops-feed", "event", "webhook"),
    ]
    assert messages[0].title == "incident.declared: API down"
    # Without a public URL the body still carries the path.
    body = messages[0].payload["webhook"]["body"]
    assert "url" not in body["subject"]
    assert body["data"]["path"] == f"/incidents/{incident}"
    assert messages[1].payload["webhook"]["secret"] == SECRET
    assert messages[0].created_at == clock()
