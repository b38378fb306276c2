"""Mattermost through an incoming webhook: {"text": markdown, "username": optional}."""

from __future__ import annotations

from typing import Any

from tocsin.notify.base import OutgoingMessage
from tocsin.notify.http import HttpPoster
from tocsin.notify.teams import webhook_destination

TIMEOUT = 10.0
# Mattermost cuts posts at 16,383 characters; a longer one is refused whole.
TEXT_CHARS = 16000


def post_body(message: OutgoingMessage, username: str | None = None) -> dict[str, Any]:
    """Return the webhook JSON: the title as a heading, the body below it."""
    title, body = message.title.strip(), message.body.strip()
    text = f"#### {title}\n{body}" if title and body else f"#### {title}" if title else body
    out: dict[str, Any] = {"text": text[:TEXT_CHARS]}
    if username:
        out["username"] = username
    return out


class MattermostChannel:
    """POST to Mattermost incoming webhooks through one pooled client (thread-safe)."""

    name = "mattermost"

    def __init__(self, *, timeout: float = TIMEOUT, username: str | None = None) -> None:
        self.username = username
        self.poster = HttpPoster("Mattermost webhook", timeout=timeout)

    def send(self, message: OutgoingMessage) -> str | None:
        """Post the text; Mattermost answers "ok" and no id."""
        url = webhook_destination("mattermost", message.destination)
        self.poster.post(
            url, json=post_body(message, self.username), headers={"Idempotency-Key": message.key}
        )
        return None

    def close(self) -> None:
        """Close the connection pool."""
        self.poster.close()
