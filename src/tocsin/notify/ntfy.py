"""ntfy push notifications: POST the text to a topic on ntfy.sh or a self-hosted server.

The destination is a topic name (posted to `channels.ntfy.url`, default https://ntfy.sh) or a
whole topic URL. Headers carry the title, a priority from the message's urgency (high → 5,
urgent; low → 3, default), tags, a click-through link and "view" buttons for a page's
acknowledge / resolve links; `channels.ntfy.token` is sent as a bearer token.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tocsin.notify import settings as read
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.notify.http import HttpPoster

DEFAULT_URL = "https://ntfy.sh"
TIMEOUT = 10.0
TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")
PRIORITIES = {"high": 5, "low": 3}
DEFAULT_PRIORITY = 3
# ntfy turns longer bodies into attachments, which servers may not accept.
BODY_BYTES = 4000
_LINK_LABELS = {"acknowledge": "Acknowledge", "resolve": "Resolve"}


@dataclass(frozen=True, kw_only=True)
class NtfySettings:
    """Where the ntfy server is (config section `channels.ntfy`)."""

    url: str = DEFAULT_URL
    token: str | None = field(default=None, repr=False)
    timeout: float = TIMEOUT

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> NtfySettings:
        """Read `channels.ntfy`; ValueError names the bad key."""
        return cls(
            url=read.url(raw, "url", DEFAULT_URL) or DEFAULT_URL,
            token=read.text(raw, "token"),
            timeout=read.number(raw, "timeout", float, TIMEOUT),
        )


def topic_url(server: str, destination: str) -> str:
    """Return the URL to publish to for a topic name or a whole topic URL."""
    destination = destination.strip()
    if read.is_http_url(destination):
        return destination
    topic = destination.lstrip("/")
    if not TOPIC.fullmatch(topic):
        raise DeliveryError(
            f"{destination!r} is not an ntfy topic (letters, digits, - and _, at most 64) "
            "or topic URL",
            retryable=False,
        )
    return f"{server.rstrip('/')}/{topic}"


def headers(message: OutgoingMessage, token: str | None) -> dict[str, str]:
    """Return the publishing headers of a message."""
    payload = message.payload
    options = payload.get("ntfy")
    options = options if isinstance(options, Mapping) else {}
    out = {
        "Title": _header(message.title or "Tocsin"),
        "Priority": str(_priority(payload, options)),
    }
    tags = _tags(payload, options)
    if tags:
        out["Tags"] = _header(",".join(tags))
    subject = payload.get("subject")
    if isinstance(subject, Mapping) and _plain_url(subject.get("url")):
        out["Click"] = str(subject["url"])
    actions = payload.get("actions")
    if isinstance(actions, Mapping):
        buttons = [
            f"view, {label}, {actions[name]}"
            for name, label in _LINK_LABELS.items()
            if _plain_url(actions.get(name))
        ]
        if buttons:
            out["Actions"] = "; ".join(buttons)
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


def _priority(payload: Mapping[str, Any], options: Mapping[str, Any]) -> int:
    wanted = options.get("priority")
    if isinstance(wanted, int) and not isinstance(wanted, bool) and 1 <= wanted <= 5:
        return wanted
    return PRIORITIES.get(str(payload.get("urgency") or ""), DEFAULT_PRIORITY)


def _tags(payload: Mapping[str, Any], options: Mapping[str, Any]) -> list[str]:
    tags = options.get("tags")
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        return [tag.replace(",", " ").strip() for tag in tags if tag.strip()]
    out = ["rotating_light"] if payload.get("urgency") == "high" else []
    severity = payload.get("severity")
    if isinstance(severity, str) and severity:
        out.append(severity.replace(",", " "))
    return out


def _plain_url(value: object) -> bool:
    # "," and ";" separate ntfy's action fields; a URL with them cannot be a button.
    return isinstance(value, str) and read.is_http_url(value) and not set(value) & {",", ";"}


def _header(value: str) -> str:
    """Return a header value on one line; non-ASCII as an RFC 2047 word, which ntfy decodes."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    return f"=?UTF-8?B?{base64.b64encode(value.encode()).decode()}?="


def _body(message: OutgoingMessage) -> bytes:
    body = (message.body or message.title).encode()
    if len(body) <= BODY_BYTES:
        return body
    return body[:BODY_BYTES].decode(errors="ignore").encode() + "…".encode()


class NtfyChannel:
    """Publish to ntfy through one pooled client (thread-safe)."""

    name = "ntfy"

    def __init__(self, settings: NtfySettings) -> None:
        self.settings = settings
        self.poster = HttpPoster(f"ntfy server {settings.url}", timeout=settings.timeout)

    def send(self, message: OutgoingMessage) -> str | None:
        """Publish the message; return ntfy's message id."""
        if not message.destination.strip():
            raise DeliveryError(
                "ntfy channel is not set up for this message: no topic was given",
                retryable=False,
            )
        url = topic_url(self.settings.url, message.destination)
        response = self.poster.post(
            url, content=_body(message), headers=headers(message, self.settings.token)
        )
        try:
            answer = response.json()
        except ValueError:
            return None
        found = answer.get("id") if isinstance(answer, dict) else None
        return str(found) if found else None

    def close(self) -> None:
        """Close the connection pool."""
        self.poster.close()
