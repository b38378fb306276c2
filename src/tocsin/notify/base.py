"""What every channel shares: the message handed to it and the one error it raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    """One message as a channel sees it: who to reach, what to say, and its idempotency key.

    The key is the same on every attempt, so a receiver that saw it before can drop a repeat
    (a message is sent at least once, not exactly once).
    """

    key: str
    channel: str
    destination: str
    title: str
    body: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "message"
    # Outbox row id and attempt number (1 for the first), for logs; channels need neither.
    id: int | None = None
    attempt: int = 1


class DeliveryError(Exception):
    """Sending failed. `retryable` says whether a later attempt may succeed.

    `retry_after` is the receiver's own wish, in seconds, when it gave one (HTTP Retry-After).
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Channel(Protocol):
    """A way to reach people. send() returns the provider's id for the message, if any.

    send() is called from several threads at once and must be thread-safe. It raises
    DeliveryError for every failure it understands; anything else counts as retryable:

    * retryable=True when a later attempt may succeed: the peer is unreachable, slow, busy
      (HTTP 5xx, SMTP 4xx) or rate-limiting (429, with `retry_after` when it said how long);
    * retryable=False when only a person can fix it: bad credentials, an unknown destination,
      a refusal (most 4xx), or a channel that is not set up; the message says what to fix.

    A plug-in channel is a package with an entry point in the group `tocsin.notifiers` naming a
    factory `(settings: Mapping | None) -> Channel`, given the JSON of its `channels.<name>`
    config entry. It may also have close(), called when its settings change or at shutdown.
    tests/integration/test_notify_contract.py is the suite a channel is expected to pass.
    """

    name: str

    def send(self, message: OutgoingMessage) -> str | None: ...
