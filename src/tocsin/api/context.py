"""What every request handler needs, built once per process and kept on app.state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import URLSafeTimedSerializer

from tocsin.config import Settings
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

    @classmethod
    def build(cls, settings: Settings, db: Database, clock: Clock = utc_now) -> AppContext:
        signer = URLSafeTimedSerializer(settings.resolved_secret_key(), salt="tocsin-session")
        return cls(settings=settings, db=db, clock=clock, signer=signer)
