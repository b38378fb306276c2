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

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from tocsin import __version__
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.notify.signing import signature_headers

TIMEOUT = 10.0
USER_AGENT = f"Tocsin/{__version__}"
RETRYABLE_STATUSES = frozenset({408, 425, 429})
# How much of the receiver's answer to keep in the error (it lands in the log).
ERROR_BODY_CHARS = 200


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
        self._own_client = client is None
        self.client = client or httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
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
        try:
            response = self.client.post(message.destination, content=content, headers=headers)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DeliveryError(f"bad webhook URL: {exc}", retryable=False) from exc
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"webhook timed out ({type(exc).__name__})", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise DeliveryError(f"webhook unreachable: {detail}", retryable=True) from exc
        status = response.status_code
        if 200 <= status < 300:
            request_id = response.headers.get("X-Request-Id")
            return str(request_id) if request_id else None
        retryable = status in RETRYABLE_STATUSES or 500 <= status < 600
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        text = " ".join(response.text[:ERROR_BODY_CHARS].split())
        raise DeliveryError(
            f"webhook answered HTTP {status}{': ' + text if text else ''}",
            retryable=retryable,
            retry_after=retry_after,
        )

    def close(self) -> None:
        if self._own_client:
            self.client.close()


def _webhook_part(message: OutgoingMessage) -> dict[str, Any] | None:
    part = message.payload.get("webhook") if message.payload else None
    return part if isinstance(part, dict) else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return Retry-After in seconds (delay-seconds or an HTTP date), or None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, math.ceil(seconds))
