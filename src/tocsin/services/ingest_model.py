"""What goes into the ingest pipeline and what comes out."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from tocsin.core.alerts import (
    ChangeEvent,
    Signal,
)
from tocsin.core.wire import fast_pickle
from tocsin.services.alerting_config import IntegrationConfig

if TYPE_CHECKING:
    from tocsin.services.ingest_prepare import Prepared


@fast_pickle
@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted request for one integration: its raw body and what it said."""

    integration: IntegrationConfig
    format: str
    body: str | None
    received_at: datetime
    signals: Sequence[Signal] = ()
    changes: Sequence[ChangeEvent] = ()
    actor: str = "integration"
    # One per signal, in order: the trigger signals worked out ahead (ingest_prepare).
    prepared: tuple[Prepared | None, ...] = ()


@fast_pickle
@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one signal: which alert and group, and what happened to them."""

    dedup_key: str
    action: str  # created, refired, acknowledged, resolved, dropped
    alert_id: int | None = None
    group_id: int | None = None
    status: str | None = None


@fast_pickle
@dataclass(frozen=True, slots=True)
class Ingested:
    payload_id: int
    outcomes: tuple[Outcome, ...]
    changes: int = 0


@lru_cache(maxsize=65536)
def open_key(*parts: str) -> str:
    """Return the fixed-length key under which an open alert or collecting group is unique."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
