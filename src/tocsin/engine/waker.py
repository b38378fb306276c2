"""Wake the engine at once when new work is committed, instead of polling on a timer."""

from __future__ import annotations

import threading
import time


class Waker:
    """A flag the API sets after a commit and the engine loop waits on."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._first: float | None = None

    def notify(self) -> None:
        """Signal new work; remember when the oldest unserved signal was raised."""
        with self._lock:
            if self._first is None:
                self._first = time.monotonic()
        self._event.set()

    def wait(self, timeout: float | None) -> float | None:
        """Sleep until notified or `timeout`; return how long the signal waited, or None."""
        self._event.wait(timeout)
        with self._lock:
            self._event.clear()
            first, self._first = self._first, None
        return None if first is None else time.monotonic() - first
