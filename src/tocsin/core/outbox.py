"""When to try an outgoing message again after it failed.

Pure decisions only; the outbox service stores them and the sender acts on them.

The delay grows threefold from 5 s (5 s, 15 s, 45 s, 2 min 15 s, 6 min 45 s) and is capped at
10 minutes. After MAX_ATTEMPTS attempts (about 50 minutes after the first) the message is given
up. There is no random jitter: a retry time must be reproducible in tests and logs, and the
sender already spreads a burst of retries over its batches.
"""

from __future__ import annotations

from datetime import timedelta

FIRST_DELAY = timedelta(seconds=5)
FACTOR = 3
MAX_DELAY = timedelta(minutes=10)
MAX_ATTEMPTS = 10


def backoff(attempts: int) -> timedelta | None:
    """Return how long to wait after `attempts` failed attempts, or None to give up."""
    if attempts < 1:
        raise ValueError("attempts counts the attempts made, so it is at least 1")
    if attempts >= MAX_ATTEMPTS:
        return None
    # Compare before multiplying further so huge exponents never build huge numbers.
    delay = FIRST_DELAY
    for _ in range(attempts - 1):
        delay *= FACTOR
        if delay >= MAX_DELAY:
            return MAX_DELAY
    return delay


def retry_delay(attempts: int, retry_after: float | None = None) -> timedelta | None:
    """Return the wait before the next attempt, honouring the receiver's Retry-After.

    The receiver's wish counts only up to MAX_DELAY, so a peer answering "Retry-After: one
    day" cannot park a page; the attempt budget is the same either way.
    """
    delay = backoff(attempts)
    if delay is None or retry_after is None or retry_after <= 0:
        return delay
    return max(delay, min(timedelta(seconds=retry_after), MAX_DELAY))


def total_retry_window() -> timedelta:
    """Return the time from the first attempt to the last one, if every attempt fails."""
    total = timedelta()
    for attempts in range(1, MAX_ATTEMPTS):
        delay = backoff(attempts)
        assert delay is not None
        total += delay
    return total
