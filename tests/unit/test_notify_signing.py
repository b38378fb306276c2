"""Webhook signatures: HMAC-SHA256 over timestamp and body, checked in constant time, with a
replay window."""

from __future__ import annotations

import hashlib
import hmac

from tocsin.notify.signing import sign, signature_headers, verify

BODY = b'{"id":1,"kind":"incident.declared"}'
NOW = 1_774_000_000


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", NOW, BODY) == f"v1={expected}"
    assert sign("s3cret", str(NOW), BODY.decode()) == f"v1={expected}"
    headers = signature_headers("s3cret", BODY, NOW + 0.7)
    assert headers == {"X-Tocsin-Timestamp": str(NOW), "X-Tocsin-Signature": f"v1={expected}"}


def test_verify_accepts_the_signature_within_the_tolerance() -> None:
    signature = sign("s3cret", NOW, BODY)
    assert verify("s3cret", str(NOW), BODY, signature, 300, now=NOW + 299)
    assert verify("s3cret", NOW, BODY, signature, 300, now=NOW - 299)  # a receiver's clock ahead
    # Several values (secret rotation): one valid one suffices.
    assert verify("s3cret", NOW, BODY, f"v1=00ff, {signature}", now=NOW)


def test_verify_rejects_tampering_replays_and_garbage() -> None:
    signature = sign("s3cret", NOW, BODY)
    assert not verify("other", NOW, BODY, signature, now=NOW)
    assert not verify("s3cret", NOW, BODY + b" ", signature, now=NOW)
    assert not verify("s3cret", NOW + 1, BODY, signature, now=NOW)  # timestamp changed
    assert not verify("s3cret", NOW, BODY, signature, 300, now=NOW + 301)  # replayed later
    for timestamp, value in [(None, signature), (NOW, None), ("soon", signature), (NOW, "")]:
        assert not verify("s3cret", timestamp, BODY, value, now=NOW)
    assert not verify("s3cret", NOW, BODY, signature.removeprefix("v1="), now=NOW)
