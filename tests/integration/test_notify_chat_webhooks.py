"""Teams, Mattermost and ntfy: what each peer receives, against a real local HTTP receiver."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.receivers import WebhookReceiver
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.notify.registry import mattermost_channel, ntfy_channel, teams_channel

PAGE_PAYLOAD = {
    "type": "page",
    "urgency": "high",
    "severity": "P1",
    "subject": {"type": "incident", "id": 42, "url": "https://tocsin.example.test/incidents/42"},
    "actions": {
        "acknowledge": "https://tocsin.example.test/a/ack-token",
        "resolve": "https://tocsin.example.test/a/resolve-token",
    },
}


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def message(channel: str, destination: str, **kw: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "key": f"page:42:{channel}",
        "channel": channel,
        "destination": destination,
        "title": "[P1] Checkout is down",
        "body": "Incident #42 needs you.",
    }
    values.update(kw)
    return OutgoingMessage(**values)


# --- Teams ---


def test_teams_gets_an_adaptive_card_with_the_pages_links(hooks: WebhookReceiver) -> None:
    channel = teams_channel(None)
    assert channel.send(message("teams", hooks.url("/teams"), payload=PAGE_PAYLOAD)) is None
    (request,) = hooks.wait_for(1)
    assert request.headers["idempotency-key"] == "page:42:teams"
    body = request.json
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert [block["text"] for block in card["body"]] == [
        "[P1] Checkout is down",
        "Incident #42 needs you.",
    ]
    assert [(a["title"], a["url"]) for a in card["actions"]] == [
        ("Open", "https://tocsin.example.test/incidents/42"),
        ("Acknowledge", "https://tocsin.example.test/a/ack-token"),
        ("Resolve", "https://tocsin.example.test/a/resolve-token"),
    ]


def test_teams_without_links_has_no_buttons(hooks: WebhookReceiver) -> None:
    teams_channel({"timeout": 2}).send(message("teams", hooks.url(), body=""))
    card = hooks.wait_for(1)[0].json["attachments"][0]["content"]
    assert "actions" not in card
    assert len(card["body"]) == 1


def test_teams_destination_must_be_a_url() -> None:
    with pytest.raises(DeliveryError, match="is not a teams incoming-webhook URL") as caught:
        teams_channel(None).send(message("teams", "#general"))
    assert not caught.value.retryable


# --- Mattermost ---


def test_mattermost_gets_markdown_text_and_the_username(hooks: WebhookReceiver) -> None:
    channel = mattermost_channel({"username": "Tocsin"})
    channel.send(message("mattermost", hooks.url("/hooks/abc")))
    channel.send(message("mattermost", hooks.url("/hooks/abc"), body=""))
    first, second = hooks.wait_for(2)
    assert first.path == "/hooks/abc"
    assert first.json == {
        "text": "#### [P1] Checkout is down\nIncident #42 needs you.",
        "username": "Tocsin",
    }
    assert second.json["text"] == "#### [P1] Checkout is down"
    mattermost_channel(None).send(message("mattermost", hooks.url(), body="x" * 20000))
    third = hooks.wait_for(3)[2].json
    assert "username" not in third
    assert len(third["text"]) == 16000


# --- ntfy ---


def test_ntfy_publishes_with_title_priority_tags_and_buttons(hooks: WebhookReceiver) -> None:
    hooks.respond(200, body='{"id":"hwQ2YpKdmg","topic":"oncall-alice"}')
    channel = ntfy_channel({"url": hooks.url(""), "token": "tk_secret"})
    provider_id = channel.send(message("ntfy", "oncall-alice", payload=PAGE_PAYLOAD))
    (request,) = hooks.wait_for(1)
    assert provider_id == "hwQ2YpKdmg"
    assert request.path == "/oncall-alice"
    assert request.body == b"Incident #42 needs you."
    headers = request.headers
    assert headers["title"] == "[P1] Checkout is down"
    assert headers["priority"] == "5"
    assert headers["tags"] == "rotating_light,P1"
    assert headers["click"] == "https://tocsin.example.test/incidents/42"
    assert headers["actions"] == (
        "view, Acknowledge, https://tocsin.example.test/a/ack-token; "
        "view, Resolve, https://tocsin.example.test/a/resolve-token"
    )
    assert headers["authorization"] == "Bearer tk_secret"


@pytest.mark.parametrize(
    ("payload", "priority", "tags"),
    [
        ({"urgency": "low"}, "3", None),
        ({}, "3", None),
        (
            {"urgency": "high", "ntfy": {"priority": 4, "tags": ["warning", "db"]}},
            "4",
            "warning,db",
        ),
        ({"ntfy": {"priority": 9}}, "3", None),
    ],
)
def test_ntfy_priority_and_tags(
    hooks: WebhookReceiver, payload: dict[str, Any], priority: str, tags: str | None
) -> None:
    ntfy_channel({"url": hooks.url("")}).send(message("ntfy", "t", payload=payload))
    headers = hooks.wait_for(1)[0].headers
    assert headers["priority"] == priority
    assert headers.get("tags") == tags
    assert "authorization" not in headers


def test_ntfy_topic_urls_non_ascii_titles_and_long_bodies(hooks: WebhookReceiver) -> None:
    channel = ntfy_channel(None)  # ntfy.sh, unless the destination is a whole URL
    channel.send(message("ntfy", hooks.url("/self-hosted/topic"), title="Störung – Kasse"))
    channel.send(message("ntfy", hooks.url("/t"), body="é" * 3000))
    first, second = hooks.wait_for(2)
    assert first.path == "/self-hosted/topic"
    encoded = first.headers["title"]
    assert encoded.startswith("=?UTF-8?B?")
    assert base64.b64decode(encoded[10:-2]).decode() == "Störung – Kasse"
    assert len(second.body) <= 4003
    second.body.decode()  # cut on a character boundary


def test_ntfy_refuses_what_is_no_topic() -> None:
    for destination in ("two words", "a/b", "x" * 65):
        with pytest.raises(DeliveryError, match="is not an ntfy topic") as caught:
            ntfy_channel(None).send(message("ntfy", destination))
        assert not caught.value.retryable
