"""What every request handler needs, built once per process and kept on app.state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from itsdangerous import URLSafeTimedSerializer

from tocsin.config import Settings
from tocsin.engine.waker import Waker
from tocsin.services.ingest_process import IngestProcess
from tocsin.storage.db import Database

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    signer: URLSafeTimedSerializer
    waker: Waker = field(default_factory=Waker)
    # Per-process helpers that handlers create on first use (rate limiter buckets …).
    extras: dict[str, Any] = field(default_factory=dict)
    # Set with Settings.ingest_process: ingest writes go to a child process.
    ingest: IngestProcess | None = None

    def wake(self) -> None:
        """Tell the engine new work is committed."""
        self.waker.notify()
        if self.ingest is not None:
            # The engine may run in the ingest process (tocsin serve).
            self.ingest.wake()

    @classmethod
    def build(cls, settings: Settings, db: Database, clock: Clock = utc_now) -> AppContext:
        signer = URLSafeTimedSerializer(settings.resolved_secret_key(), salt="tocsin-session")
        return cls(settings=settings, db=db, clock=clock, signer=signer)
