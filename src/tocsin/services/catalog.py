"""Lookups of configured objects (severities, services, roles, users) with clear errors.

The catalog changes only through `tocsin apply`, but every write checks names against it, so it
is read once into a snapshot and kept briefly. `apply_config` calls invalidate() so this process
sees its own change at once; other processes see it within SNAPSHOT_SECONDS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.errors import InvalidInput
from tocsin.core.severity import Severity
from tocsin.storage.tables import (
    ChecklistTemplateItemRow,
    IncidentRoleRow,
    ServiceRow,
    SeverityRow,
    UserRow,
)

SNAPSHOT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The active (non-archived) catalog at one moment."""

    severities: tuple[Severity, ...]
    roles: tuple[str, ...]
    services: tuple[str, ...]
    users: frozenset[str]
    checklists: Mapping[str, tuple[str, ...]]


_lock = threading.Lock()
_cache: dict[str, tuple[float, Snapshot]] = {}
# Other read models of the configuration (alerting_config) that must be dropped with it.
_listeners: list[Callable[[], None]] = []
# Counts invalidations, so that a process holding its own caches (the ingest writer) can tell.
_generation = 0


def on_invalidate(callback: Callable[[], None]) -> None:
    """Have invalidate() also call `callback` (to drop another cache of the configuration)."""
    if callback not in _listeners:
        _listeners.append(callback)


def invalidate() -> None:
    """Forget every cached snapshot (after the configuration changed)."""
    global _generation  # noqa: PLW0603 - one counter per process, by design
    with _lock:
        _cache.clear()
        _generation += 1
    for callback in _listeners:
        callback()


def generation() -> int:
    """How many times this process has invalidated the configuration caches."""
    return _generation


def snapshot(session: Session) -> Snapshot:
    """Return the catalog, read from the database at most every SNAPSHOT_SECONDS."""
    key = str(session.get_bind().engine.url)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached and now - cached[0] < SNAPSHOT_SECONDS:
        return cached[1]
    fresh = _load(session)
    with _lock:
        _cache[key] = (now, fresh)
    return fresh


def _load(session: Session) -> Snapshot:
    rows = session.scalars(
        select(SeverityRow).where(SeverityRow.archived.is_(False)).order_by(SeverityRow.position)
    ).all()
    severities = tuple(
        Severity(
            name=r.name,
            label=r.label,
            description=r.description,
            respond_within=timedelta(seconds=r.respond_within_s) if r.respond_within_s else None,
            update_every=timedelta(seconds=r.update_every_s) if r.update_every_s else None,
            pages=r.pages,
            rank=r.position,
        )
        for r in rows
    )
    checklists: dict[str, list[str]] = {}
    for severity, text in session.execute(
        select(ChecklistTemplateItemRow.severity, ChecklistTemplateItemRow.text).order_by(
            ChecklistTemplateItemRow.severity, ChecklistTemplateItemRow.position
        )
    ):
        checklists.setdefault(severity, []).append(text)
    return Snapshot(
        severities=severities,
        roles=tuple(
            session.scalars(
                select(IncidentRoleRow.name)
                .where(IncidentRoleRow.archived.is_(False))
                .order_by(IncidentRoleRow.position)
            )
        ),
        services=tuple(
            session.scalars(
                select(ServiceRow.id).where(ServiceRow.archived.is_(False)).order_by(ServiceRow.id)
            )
        ),
        users=frozenset(session.scalars(select(UserRow.id).where(UserRow.archived.is_(False)))),
        checklists={k: tuple(v) for k, v in checklists.items()},
    )


def severities(session: Session) -> list[Severity]:
    """Return the active severity scheme, most severe first."""
    return list(snapshot(session).severities)


def checklist_template(session: Session, severity: str) -> tuple[str, ...]:
    """Return the configured checklist items of a severity, in order."""
    return snapshot(session).checklists.get(severity, ())


def check_services(session: Session, wanted: Sequence[str]) -> list[str]:
    """Return the service ids in order without duplicates, or fail listing the valid ones."""
    unique = list(dict.fromkeys(s.strip() for s in wanted if s.strip()))
    if not unique:
        return []
    valid = snapshot(session).services
    unknown = [s for s in unique if s not in valid]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise InvalidInput(
            f"unknown service {names}; valid: {', '.join(valid) or '(none)'}",
            field="services",
            valid=list(valid),
        )
    return unique


def role_exists(session: Session, name: str) -> bool:
    return name in snapshot(session).roles


def check_role_name(session: Session, name: str) -> None:
    """Fail unless `name` is a configured incident role."""
    valid = snapshot(session).roles
    if name not in valid:
        raise InvalidInput(
            f"unknown role {name!r}; valid: {', '.join(valid) or '(none)'}",
            field="roles",
            valid=list(valid),
        )


def check_roles(session: Session, roles: Mapping[str, str]) -> None:
    """Fail unless every role is configured and every assignee is an active user."""
    for role in roles:
        check_role_name(session, role)
    unknown = sorted(set(roles.values()) - snapshot(session).users)
    if unknown:
        raise InvalidInput(
            f"unknown user {', '.join(map(repr, unknown))}",
            field="roles",
            valid=active_user_ids(session),
        )


def active_user_ids(session: Session) -> list[str]:
    return sorted(snapshot(session).users)
