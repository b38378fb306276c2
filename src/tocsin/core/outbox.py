"""When to try an outgoing message again after it failed.

Pure decisions only; the outbox service stores them and the sender acts on them.

The delay grows threefold from 5 s (5 s, 15 s, 45 s, 2 min 15 s, 6 min 45 s) and is capped at
10 minutes. After MAX_ATTEMPTS attempts (about 50 minutes after the first) the message is given
up.

Each message's delay is then moved by up to ±20 % (JITTER), so a burst of messages that failed
together (a receiver down for a minute) does not come back as a burst. The jitter is not
random: it is derived from the message's idempotency key and attempt number, so a retry time
is reproducible in tests and logs while different messages still spread out. Jitter never
takes a delay past the 10-minute cap, and a receiver's Retry-After is still honoured (the
wait is at least what it asked, up to the cap).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

FIRST_DELAY = timedelta(seconds=5)
FACTOR = 3
MAX_DELAY = timedelta(minutes=10)
MAX_ATTEMPTS = 10
JITTER = 0.2


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


def jitter_factor(key: str, attempts: int) -> float:
    """Return the factor (1 ± JITTER) one message's delay after `attempts` is multiplied by."""
    digest = hashlib.sha256(f"{key}\x00{attempts}".encode()).digest()
    # The first 8 bytes as a fraction in [0, 1): uniform enough to spread a burst.
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return 1 - JITTER + 2 * JITTER * fraction


def retry_delay(
    attempts: int, retry_after: float | None = None, *, key: str | None = None
) -> timedelta | None:
    """Return the wait before the next attempt, honouring the receiver's Retry-After.

    With the message's idempotency key the backoff is jittered (see the module docstring);
    without it the plain backoff is returned. The receiver's wish counts only up to
    MAX_DELAY, so a peer answering "Retry-After: one day" cannot park a page; the attempt
    budget is the same either way.
    """
    delay = backoff(attempts)
    if delay is None:
        return None
    if key is not None:
        # Whole milliseconds: stored times and log lines stay readable.
        jittered = round(delay.total_seconds() * jitter_factor(key, attempts), 3)
        delay = min(timedelta(seconds=jittered), MAX_DELAY)
    if retry_after is None or retry_after <= 0:
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
