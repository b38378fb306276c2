"""The issue's incident-room audience all the way to Slack: the lifecycle module runs the
communication reactor, the outbox sender's Slack channel (the real slack_sdk client) talks to
the local Slack Web API mock: the incident's channel is created, the commander invited, the
topic set, the initial notice posted and pinned, and an update lands in the same channel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from tests.conftest import EXAMPLES, apply_yaml
from tests.mocks.slack_api import SlackApiMock
from tocsin.core.actors import Actor, Scope
from tocsin.engine.lifecycle_module import LifecycleModule
from tocsin.engine.loop import Engine
from tocsin.engine.outbox_sender import OutboxSender
from tocsin.notify.registry import ChannelRegistry
from tocsin.services import communications, incidents
from tocsin.services.comm_context import UpdateText
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import ChannelSettingsRow

ALICE = Actor("alice", frozenset(Scope), user_id="alice", source="api")


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def slack() -> Iterator[SlackApiMock]:
    with SlackApiMock() as mock:
        mock.add_user("U0ALICE", "alice@example.test", "alice")
        yield mock


@pytest.fixture
def engine(database: Database, slack: SlackApiMock) -> Iterator[Engine]:
    for name in ("core.yaml", "alerting.yaml", "oncall.yaml"):
        apply_yaml(database, (EXAMPLES / name).read_text())
    apply_yaml(
        database,
        """
audiences:
  - {id: incident-room, type: slack, create_incident_channel: true, invite: [commander, responders]}
communication:
  - {severities: [P1], audiences: [incident-room], messages: [initial, update, resolution]}
""",
    )
    with database.write() as session:
        session.add(ChannelSettingsRow(name="slack", settings=slack.settings(), archived=False))
        session.commit()
    sender = OutboxSender(ChannelRegistry(), owner="test", clock=now)
    lifecycle = LifecycleModule([communications.reactor("https://tocsin.example")], owner="test")
    yield Engine(database, now, [lifecycle, sender], registry=CollectorRegistry())
    sender.close()


def test_the_incident_room_is_opened_and_kept_up_to_date(
    database: Database, engine: Engine, slack: SlackApiMock
) -> None:
    decl = incidents.Declaration(
        title="Checkout fails", severity="P1", services=["database"], roles={"commander": "alice"}
    )
    with database.write() as session:
        declared = incidents.declare(session, ALICE, now(), decl)
        incident, slug = declared.id, declared.slug
        session.commit()
    engine.run_once()

    room = slack.channel_named(slug)
    assert room is not None, sorted(c.name for c in slack.channels.values())
    assert "U0ALICE" in room.members
    assert "Checkout fails" in room.topic
    (opening,) = slack.messages_in(room.id)
    assert opening.pinned
    assert "INCIDENT ALERT" in opening.text

    with database.write() as session:
        communications.send_update(session, ALICE, now(), incident, UpdateText("Rolled back"))
        session.commit()
    engine.run_once()
    first, update = slack.messages_in(room.id)
    assert first == opening
    assert "INCIDENT UPDATE" in update.text
    assert "Rolled back" in update.text
    assert not update.pinned
    assert len(slack.calls_to("conversations.create")) == 1
