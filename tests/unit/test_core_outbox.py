"""Retry timing of outgoing messages: exponential, capped, deterministic, finite."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tocsin.core.outbox import MAX_ATTEMPTS, MAX_DELAY, backoff, retry_delay, total_retry_window


def test_backoff_grows_threefold_from_five_seconds_up_to_ten_minutes() -> None:
    delays = [backoff(n) for n in range(1, MAX_ATTEMPTS)]
    assert [d.total_seconds() for d in delays if d] == [5, 15, 45, 135, 405, 600, 600, 600, 600]


def test_backoff_gives_up_after_the_last_attempt() -> None:
    assert backoff(MAX_ATTEMPTS - 1) == MAX_DELAY
    assert backoff(MAX_ATTEMPTS) is None
    assert backoff(10_000) is None


def test_backoff_is_deterministic_and_rejects_zero_attempts() -> None:
    assert [backoff(3) for _ in range(5)] == [timedelta(seconds=45)] * 5
    with pytest.raises(ValueError, match="at least 1"):
        backoff(0)


def test_every_failing_message_is_given_up_within_the_hour() -> None:
    window = total_retry_window()
    assert timedelta(minutes=45) <= window <= timedelta(hours=1)


def test_retry_after_lengthens_the_wait_but_never_past_the_cap() -> None:
    assert retry_delay(1) == timedelta(seconds=5)
    assert retry_delay(1, 30) == timedelta(seconds=30)
    assert retry_delay(3, 2) == timedelta(seconds=45)  # shorter than our own backoff: ours
    assert retry_delay(1, 86_400) == MAX_DELAY  # "come back tomorrow" cannot park a page
    assert retry_delay(1, 0) == timedelta(seconds=5)
    assert retry_delay(MAX_ATTEMPTS, 30) is None  # Retry-After does not add attempts
