"""The alerting configuration as the ingest pipeline reads it: domain objects, cached briefly.

Like the catalog (services/catalog.py), it changes through `tocsin apply` (and, for silences and
maintenance windows, through the API), yet every alert needs it, so it is read into a snapshot
kept for SNAPSHOT_SECONDS per database. `catalog.invalidate()` drops it too, which an apply
does once it committed; whoever writes silences or windows elsewhere calls invalidate().

The snapshot is shared between threads: treat its mappings as read-only.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tocsin.core.alerts import (
    DeclareRule,
    GroupingRule,
    InhibitRule,
    MaintenanceWindow,
    Matcher,
    Route,
    Silence,
    Urgency,
    parse_matchers,
)
from tocsin.services import catalog
from tocsin.storage.tables import (
    AlertRouteRow,
    GroupingRuleRow,
    HeartbeatRow,
    InhibitRuleRow,
    IntegrationRow,
    MaintenanceWindowRow,
    SeverityRow,
    SilenceRow,
)

log = logging.getLogger(__name__)

SNAPSHOT_SECONDS = catalog.SNAPSHOT_SECONDS

_RATE = re.compile(r"(\d+(?:\.\d+)?)/([smh])")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A steady rate, with a burst of the whole count N of "N/period" (at least one)."""

    per_second: float
    burst: float


@dataclass(frozen=True, slots=True)
class IntegrationConfig:
    key: str
    type: str
    service: str
    # The configured name, or the key when none is configured.
    name: str
    # Only generic integrations have one; empty for the others.
    mapping: Mapping[str, Any]
    # None: the server-wide default (Settings.ingest_rate_limit) applies.
    rate_limit: RateLimit | None


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    key: str
    service: str
    # The configured name, or the key when none is configured.
    name: str
    interval: timedelta


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    """Everything ingest decides with, at one moment."""

    integrations: Mapping[str, IntegrationConfig]  # active only, by key
    routes: tuple[Route, ...]  # in file order
    grouping: Mapping[str, GroupingRule]  # by service id
    inhibit_rules: tuple[InhibitRule, ...]  # in file order
    silences: tuple[Silence, ...]  # not yet ended when loaded; config and API ones
    windows: tuple[MaintenanceWindow, ...]  # not yet ended when loaded
    heartbeats: Mapping[str, HeartbeatConfig]  # active only, by key
    severities: tuple[str, ...]  # active severity names, most severe first


def parse_rate_limit(text: str) -> RateLimit:
    """Parse "N/s", "N/m" or "N/h" (N a positive number); raise ValueError otherwise."""
    hit = _RATE.fullmatch(text)
    if not hit:
        raise ValueError(
            f"invalid rate limit {text!r}: use N/s, N/m or N/h, such as 100/s or 600/m"
        )
    count = float(hit.group(1))
    if count <= 0:
        raise ValueError(f"rate limit {text!r} must allow more than zero requests")
    per_second = count / _PER[hit.group(2)]
    # N per period allows all N at once (a burst), then refills at the average rate.
    return RateLimit(per_second=per_second, burst=max(count, 1.0))


_lock = threading.Lock()
_cache: dict[str, tuple[float, AlertingConfig]] = {}


def invalidate() -> None:
    """Forget every cached snapshot (after the configuration, a silence or a window changed)."""
    with _lock:
        _cache.clear()
        _noise.clear()


catalog.on_invalidate(invalidate)


def alerting_config(session: Session) -> AlertingConfig:
    """Return the alerting configuration, read from the database at most every few seconds."""
    key = str(session.get_bind().engine.url)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached and now - cached[0] < SNAPSHOT_SECONDS:
        return cached[1]
    fresh = _load(session, datetime.now(UTC))
    with _lock:
        _cache[key] = (now, fresh)
    return fresh


def cached_config(engine: Engine) -> AlertingConfig | None:
    """Return the snapshot for `engine`'s database if it is fresh, without opening a session."""
    cached = _cache.get(str(engine.url))
    if cached and time.monotonic() - cached[0] < SNAPSHOT_SECONDS:
        return cached[1]
    return None


def _load(session: Session, now: datetime) -> AlertingConfig:
    noise = _not_ended(session, now)
    severities = tuple(
        session.scalars(
            select(SeverityRow.name)
            .where(SeverityRow.archived.is_(False))
            .order_by(SeverityRow.position)
        )
    )
    return AlertingConfig(
        integrations=_integrations(session),
        routes=_routes(session, severities),
        grouping={
            row.service_id: GroupingRule(
                service=row.service_id,
                by=tuple(row.by or ()),
                template=row.template,
                window=_delta(row.window_s),
            )
            for row in session.scalars(select(GroupingRuleRow))
        },
        inhibit_rules=_inhibit_rules(session),
        silences=noise[0],
        windows=noise[1],
        heartbeats={
            row.key: HeartbeatConfig(
                key=row.key,
                service=row.service_id,
                name=row.name or row.key,
                interval=timedelta(seconds=row.interval_s),
            )
            for row in session.scalars(select(HeartbeatRow).where(HeartbeatRow.archived.is_(False)))
        },
        severities=severities,
    )


def _integrations(session: Session) -> dict[str, IntegrationConfig]:
    out = {}
    query = select(IntegrationRow).where(IntegrationRow.archived.is_(False))
    for row in session.scalars(query):
        limit = None
        if row.rate_limit:
            try:
                limit = parse_rate_limit(row.rate_limit)
            except ValueError:
                log.error("integration %s: ignoring invalid rate limit %r", row.key, row.rate_limit)
        out[row.key] = IntegrationConfig(
            key=row.key,
            type=row.type,
            service=row.service_id,
            name=row.name or row.key,
            mapping=row.mapping or {},
            rate_limit=limit,
        )
    return out


def _routes(session: Session, severities: Sequence[str]) -> tuple[Route, ...]:
    # Config matches severity names case-insensitively; hand ingest the configured spelling,
    # or None (ingest then maps the alert's own severity) if that severity has gone.
    by_folded = {name.casefold(): name for name in severities}
    out = []
    for row in session.scalars(select(AlertRouteRow).order_by(AlertRouteRow.position)):
        matchers = _matchers(row.match, f"route {row.position + 1}")
        if matchers is None:
            continue
        severity = row.incident_severity
        out.append(
            Route(
                matchers=matchers,
                continue_=row.continue_,
                service=row.service_id,
                urgency=Urgency(row.urgency) if row.urgency else None,
                incident_severity=by_folded.get(severity.casefold()) if severity else None,
                declare=_declare(row.declare),
            )
        )
    return tuple(out)


def _declare(stored: Mapping[str, Any] | None) -> DeclareRule | None:
    if stored is None:
        return None
    return DeclareRule(
        min_alerts=int(stored.get("min_alerts") or 1), within=_delta(stored.get("within_s"))
    )


def _inhibit_rules(session: Session) -> tuple[InhibitRule, ...]:
    out = []
    for row in session.scalars(select(InhibitRuleRow).order_by(InhibitRuleRow.position)):
        where = f"inhibit rule {row.position + 1}"
        source = _matchers(row.source_match, where)
        target = _matchers(row.target_match, where)
        if source is not None and target is not None:
            out.append(InhibitRule(source=source, target=target, equal=tuple(row.equal or ())))
    return tuple(out)


def _matchers(stored: Mapping[str, Any], where: str) -> dict[str, tuple[Matcher, ...]] | None:
    """Parse stored matchers; a row that does not parse is skipped, never fatal to ingest."""
    try:
        return parse_matchers(stored)
    except (ValueError, TypeError) as exc:
        log.error("%s: ignoring invalid matchers %r: %s", where, stored, exc)
        return None


def _delta(seconds: int | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


# Silences and maintenance windows are read fresh at most this often (and at once in the
# process that changes one); other processes see a change within this delay.
NOISE_SECONDS = 1.0
_noise: dict[str, tuple[float, datetime, tuple[Silence, ...], tuple[MaintenanceWindow, ...]]] = {}


def active_noise_control(
    session: Session, now: datetime
) -> tuple[tuple[Silence, ...], tuple[MaintenanceWindow, ...]]:
    """Return the silences and maintenance windows in force at `now`.

    Everything not yet ended is read at most every NOISE_SECONDS (two small indexed queries
    on columns) and filtered by `now` here, so a silence takes effect within a second in every
    process without a query per ingest batch.
    """
    key = str(session.get_bind().engine.url)
    tick = time.monotonic()
    cached = _noise.get(key)
    if cached is None or tick - cached[0] >= NOISE_SECONDS or now < cached[1]:
        cached = (tick, now, *_not_ended(session, now))
        with _lock:
            _noise[key] = cached
    _, _, silences, windows = cached
    return (
        tuple(s for s in silences if s.active(now)),
        tuple(w for w in windows if w.active(now)),
    )


def _not_ended(
    session: Session, now: datetime
) -> tuple[tuple[Silence, ...], tuple[MaintenanceWindow, ...]]:
    silences = []
    s = SilenceRow
    query = select(s.id, s.matchers, s.starts_at, s.ends_at).where(s.ends_at > now)
    for silence_id, stored, starts_at, ends_at in session.execute(
        query.order_by(s.starts_at, s.id)
    ):
        matchers = _matchers(stored, f"silence {silence_id}")
        if matchers is not None:
            silences.append(Silence(silence_id, matchers, starts_at, ends_at))
    w = MaintenanceWindowRow
    query = select(w.id, w.service_id, w.starts_at, w.ends_at).where(w.ends_at > now)
    windows = tuple(
        MaintenanceWindow(*row) for row in session.execute(query.order_by(w.starts_at, w.id))
    )
    return tuple(silences), windows
