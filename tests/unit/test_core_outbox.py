"""Retry timing of outgoing messages: exponential, capped, jittered per message yet
reproducible, finite."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tocsin.core.outbox import (
    JITTER,
    MAX_ATTEMPTS,
    MAX_DELAY,
    backoff,
    jitter_factor,
    retry_delay,
    total_retry_window,
)


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


# --- jitter ---


def test_jitter_is_reproducible_for_one_message_and_attempt() -> None:
    assert [retry_delay(2, key="page-7-rule-0") for _ in range(5)] == [
        retry_delay(2, key="page-7-rule-0")
    ] * 5
    assert jitter_factor("page-7-rule-0", 2) == jitter_factor("page-7-rule-0", 2)
    # Another attempt of the same message moves differently.
    assert jitter_factor("page-7-rule-0", 2) != jitter_factor("page-7-rule-0", 3)


def test_jitter_stays_within_twenty_percent_and_spreads_a_burst() -> None:
    keys = [f"page-{n}-rule-0" for n in range(1000)]
    factors = [jitter_factor(key, 1) for key in keys]
    assert all(1 - JITTER <= f <= 1 + JITTER for f in factors)
    # A burst of 1,000 messages failing together comes back spread over the whole ±20 %.
    assert min(factors) < 0.82
    assert max(factors) > 1.18
    below = sum(1 for f in factors if f < 1)
    assert 400 < below < 600
    delays = {retry_delay(1, key=key) for key in keys}
    # 1,000 messages over 2,000 possible milliseconds: ~790 distinct if spread evenly.
    assert len(delays) > 700
    for delay in delays:
        assert delay is not None
        assert timedelta(seconds=4) <= delay <= timedelta(seconds=6)


def test_jitter_never_passes_the_cap_and_keeps_the_budget() -> None:
    for n in range(1000):
        key = f"m{n}"
        for attempts in range(1, MAX_ATTEMPTS):
            delay = retry_delay(attempts, key=key)
            base = backoff(attempts)
            assert delay is not None
            assert base is not None
            assert delay <= MAX_DELAY
            assert delay >= base * (1 - JITTER) - timedelta(milliseconds=1)
        assert retry_delay(MAX_ATTEMPTS, key=key) is None
    # Even the unluckiest message is given up within the hour.
    worst = sum(
        (min((backoff(n) or MAX_DELAY) * (1 + JITTER), MAX_DELAY) for n in range(1, MAX_ATTEMPTS)),
        timedelta(),
    )
    assert worst < timedelta(hours=1)


def test_retry_after_is_honoured_over_the_jitter() -> None:
    for n in range(200):
        key = f"m{n}"
        assert retry_delay(1, 30, key=key) == timedelta(seconds=30)
        assert retry_delay(1, 86_400, key=key) == MAX_DELAY
        # A Retry-After shorter than our jittered backoff: ours.
        assert retry_delay(3, 2, key=key) == retry_delay(3, key=key)
