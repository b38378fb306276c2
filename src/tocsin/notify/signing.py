"""Signatures of outgoing webhooks: HMAC-SHA256 over the send time and the body.

The sender adds two headers to a signed request:

    X-Tocsin-Timestamp: 1774603000              (unix seconds when this attempt was sent)
    X-Tocsin-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

A receiver recomputes the HMAC over the timestamp header, a dot and the raw body bytes,
compares in constant time, and rejects a timestamp too far from its own clock: a captured
request replayed later fails the check, and the Idempotency-Key drops honest repeats. Every
attempt is signed anew, so a retry an hour later carries a fresh timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Tocsin-Timestamp"
SIGNATURE_HEADER = "X-Tocsin-Signature"
VERSION = "v1"
# How far a receiver may trust a timestamp from its own clock, by default (seconds).
TOLERANCE = 300


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """Return the signature header value ("v1=<hex>") of a body sent at `timestamp`."""
    raw = body.encode() if isinstance(body, str) else body
    message = f"{timestamp}.".encode() + raw
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def signature_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Return the timestamp and signature headers of one attempt sent now."""
    timestamp = int(now if now is not None else time.time())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secret: str,
    timestamp: str | int | None,
    body: bytes | str,
    signature: str | None,
    tolerance: float = TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """Return True when `signature` signs `body` at `timestamp`, within `tolerance` seconds.

    `signature` may list several values separated by commas (e.g. while a secret is being
    rotated); one valid v1 value suffices.
    """
    if not timestamp or not signature:
        return False
    try:
        sent = int(str(timestamp).strip())
    except ValueError:
        return False
    current = now if now is not None else time.time()
    if abs(current - sent) > tolerance:
        return False
    expected = sign(secret, sent, body)
    return any(
        hmac.compare_digest(candidate.strip().encode(), expected.encode())
        for candidate in signature.split(",")
    )
