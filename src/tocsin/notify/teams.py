"""Microsoft Teams through an incoming webhook (a Workflows or connector URL as destination).

The message is an Adaptive Card in a message envelope, the format both Teams' Workflows
webhooks and the older connector webhooks accept: the title in bold, the text below it, and
"Open" / "Acknowledge" / "Resolve" buttons when the message carries those links (pages do).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tocsin.notify import settings as read
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.notify.http import HttpPoster

TIMEOUT = 10.0
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
_LINK_LABELS = {"acknowledge": "Acknowledge", "resolve": "Resolve"}


def webhook_destination(name: str, destination: str) -> str:
    """Return the destination if it is an http(s) URL; otherwise fail for good, saying so."""
    destination = destination.strip()
    if not destination:
        raise DeliveryError(
            f"{name} channel is not set up for this message: no incoming-webhook URL "
            "was given as its destination",
            retryable=False,
        )
    if not read.is_http_url(destination):
        raise DeliveryError(
            f"{destination!r} is not a {name} incoming-webhook URL (http or https)",
            retryable=False,
        )
    return destination


def card(message: OutgoingMessage) -> dict[str, Any]:
    """Return the Teams message for an outgoing message."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": message.title or "Tocsin", "weight": "Bolder",
         "size": "Medium", "wrap": True},
    ]  # fmt: skip
    if message.body:
        body.append({"type": "TextBlock", "text": message.body, "wrap": True})
    content: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    links = _links(message.payload)
    if links:
        content["actions"] = [
            {"type": "Action.OpenUrl", "title": title, "url": url} for title, url in links
        ]
    return {
        "type": "message",
        "summary": message.title[:200],
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": content}
        ],
    }


def _links(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return the buttons a page's payload offers: the subject, then its action links."""
    out: list[tuple[str, str]] = []
    subject = payload.get("subject")
    if isinstance(subject, Mapping) and isinstance(subject.get("url"), str):
        out.append(("Open", subject["url"]))
    actions = payload.get("actions")
    if isinstance(actions, Mapping):
        for action, label in _LINK_LABELS.items():
            link = actions.get(action)
            if isinstance(link, str) and read.is_http_url(link):
                out.append((label, link))
    return out


class TeamsChannel:
    """POST cards to Teams incoming webhooks through one pooled client (thread-safe)."""

    name = "teams"

    def __init__(self, *, timeout: float = TIMEOUT) -> None:
        self.poster = HttpPoster("Teams webhook", timeout=timeout)

    def send(self, message: OutgoingMessage) -> str | None:
        """Post the card; Teams answers with no id to keep."""
        url = webhook_destination("teams", message.destination)
        self.poster.post(url, json=card(message), headers={"Idempotency-Key": message.key})
        return None

    def close(self) -> None:
        """Close the connection pool."""
        self.poster.close()
