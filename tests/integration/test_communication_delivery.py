"""Stakeholder messages all the way out: the lifecycle module runs the communication reactor,
the outbox sender delivers to a real SMTP server (one thread per incident, HTML part) and to a
webhook receiver that verifies the signature; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import EXAMPLES, apply_yaml
from tests.receivers import SigningWebhookReceiver, SmtpReceiver
from tocsin.core.actors import Actor, Scope
from tocsin.core.incidents import Status
from tocsin.engine.lifecycle_module import LifecycleModule
from tocsin.engine.loop import Engine
from tocsin.engine.outbox_sender import OutboxSender
from tocsin.notify.registry import ChannelRegistry
from tocsin.services import communications, incidents
from tocsin.services.comm_context import UpdateText
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import ChannelSettingsRow

ALICE = Actor("alice", frozenset(Scope), user_id="alice", source="api")
SECRET = "example-webhook-secret"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def hooks() -> Iterator[SigningWebhookReceiver]:
    with SigningWebhookReceiver(SECRET) as receiver:
        yield receiver


@pytest.fixture
def engine(
    database: Database, smtp: SmtpReceiver, hooks: SigningWebhookReceiver
) -> Iterator[Engine]:
    for name in ("core.yaml", "alerting.yaml", "oncall.yaml"):
        apply_yaml(database, (EXAMPLES / name).read_text())
    apply_yaml(
        database,
        f"""
audiences:
  - {{id: stakeholders, type: email, to: [a@example.test, b@example.test]}}
  - {{id: ops-feed, type: webhook, url: "{hooks.url("/ops")}", secret: {SECRET}}}
communication:
  - {{severities: [P1], audiences: [stakeholders, ops-feed]}}
""",
    )
    with database.write() as session:
        session.add(ChannelSettingsRow(name="email", settings=smtp.settings(), archived=False))
        session.commit()
    sender = OutboxSender(ChannelRegistry(), owner="test", clock=now)
    lifecycle = LifecycleModule([communications.reactor("https://tocsin.example")], owner="test")
    yield Engine(database, now, [lifecycle, sender], registry=CollectorRegistry())
    sender.close()


def test_initial_update_and_resolution_reach_real_peers(
    database: Database, engine: Engine, smtp: SmtpReceiver, hooks: SigningWebhookReceiver
) -> None:
    decl = incidents.Declaration(title="Checkout fails", severity="P1", services=["database"])
    with database.write() as session:
        incident = incidents.declare(session, ALICE, now(), decl).id
        session.commit()
    engine.run_once()
    with database.write() as session:
        communications.send_update(session, ALICE, now(), incident, UpdateText("Rolled back"))
        session.commit()
    engine.run_once()
    with database.write() as session:
        incidents.change_status(session, ALICE, now(), incident, Status.RESOLVED,
                                resolution="Rolled back v2.3")  # fmt: skip
        session.commit()
    engine.run_once()

    mails = smtp.wait_for(6, timeout=10)
    to_a = [m.message for m in mails if m.rcpt_tos == ["a@example.test"]]
    assert [m["Subject"] for m in to_a] == [
        "🚨 INCIDENT ALERT - P1: Checkout fails",
        "📊 INCIDENT UPDATE - P1: Checkout fails",
        "✅ INCIDENT RESOLVED - P1: Checkout fails",
    ]
    # One thread per incident: every message refers to the same root.
    roots = {m["References"].split()[0] for m in to_a if m["References"]}
    assert len(roots) == 1
    html = to_a[0].get_body(preferencelist=("html",))
    assert html is not None
    assert "<h2>🚨 INCIDENT ALERT - P1: Checkout fails</h2>" in html.get_content()

    requests = hooks.wait_for(3, timeout=10)
    assert all(v.ok for v in hooks.verified), [v.reason for v in hooks.verified]
    kinds = [r.json["message_kind"] for r in requests]
    assert kinds == ["initial", "update", "resolution"]
    assert requests[1].json["update"]["message"] == "Rolled back"
