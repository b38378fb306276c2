"""A generic webhook: POST the message's JSON to a URL.

What is sent: when the payload has a "webhook" part ({"body": {...}, "secret": str | None},
the outgoing webhooks of lifecycle events), the JSON is that body, signed with HMAC-SHA256
over the send time and the body when a secret is given (X-Tocsin-Timestamp and
X-Tocsin-Signature, see notify/signing.py). Otherwise (pages) the JSON is the payload itself.

The receiver gets `Idempotency-Key` (the same on every attempt, so it can drop repeats) and
`X-Tocsin-Event` (the event kind, or the message kind such as "page"), and answers with a
status that decides what happens next: 2xx delivered; 408, 425, 429 and 5xx (and timeouts,
refused or dropped connections) are tried again, honouring Retry-After; any other answer is
permanent. Redirects are not followed: a POST that moved is a config error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from tocsin.notify.base import OutgoingMessage
from tocsin.notify.http import USER_AGENT, HttpPoster, parse_retry_after
from tocsin.notify.signing import signature_headers

# Other channels and tests import it from here too.
__all__ = ["TIMEOUT", "WebhookChannel", "parse_retry_after"]

TIMEOUT = 10.0


class WebhookChannel:
    """POST messages with one shared, thread-safe connection pool."""

    name = "webhook"

    def __init__(
        self,
        *,
        timeout: float = TIMEOUT,
        client: httpx.Client | None = None,
        max_connections: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Unix time for the signature's timestamp (a test moves it to check replay windows).
        self.clock = clock
        self.poster = HttpPoster(
            "webhook", timeout=timeout, max_connections=max_connections, client=client
        )

    def body(self, message: OutgoingMessage) -> dict[str, Any]:
        """Return the JSON document sent: the webhook body, the payload, or title and body."""
        hook = _webhook_part(message)
        if hook is not None:
            return dict(hook.get("body") or {})
        if message.payload:
            return dict(message.payload)
        return {"kind": message.kind, "title": message.title, "body": message.body}

    def headers(self, message: OutgoingMessage, content: bytes) -> dict[str, str]:
        """Return the request headers, signed when the message's webhook part has a secret."""
        hook = _webhook_part(message) or {}
        event = (hook.get("body") or {}).get("kind") or message.kind
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.key,
            "User-Agent": USER_AGENT,
            "X-Tocsin-Event": str(event),
        }
        secret = hook.get("secret")
        if secret:
            # Signed at send time, so every retry carries a fresh timestamp.
            headers.update(signature_headers(str(secret), content, self.clock()))
        return headers

    def send(self, message: OutgoingMessage) -> str | None:
        """POST the message; return the receiver's X-Request-Id, if it sent one."""
        content = orjson.dumps(self.body(message))
        headers = self.headers(message, content)
        response = self.poster.post(message.destination, content=content, headers=headers)
        request_id = response.headers.get("X-Request-Id")
        return str(request_id) if request_id else None

    def close(self) -> None:
        self.poster.close()


def _webhook_part(message: OutgoingMessage) -> dict[str, Any] | None:
    part = message.payload.get("webhook") if message.payload else None
    return part if isinstance(part, dict) else None
