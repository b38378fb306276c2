"""Read side: filtered, cursor-paginated incident lists and the related rows a page needs."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, String, case, cast, func, or_, select
from sqlalchemy.orm import Session

from tocsin.core.errors import InvalidInput
from tocsin.storage.tables import (
    ChecklistItemRow,
    IncidentRoleAssignmentRow,
    IncidentRow,
    IncidentServiceRow,
)

MAX_PAGE = 200


@dataclass(slots=True)
class IncidentFilter:
    """What a list of incidents is narrowed by; every field is optional."""

    statuses: Sequence[str] = ()
    severities: Sequence[str] = ()
    service: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    tags: Sequence[str] = field(default_factory=tuple)


def encode_cursor(last_id: int) -> str:
    raw = json.dumps({"id": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Return the id the cursor points after; a tampered cursor is a 422, not a 500."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        value = data["id"]
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError
        return value
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "invalid cursor; pass next_cursor from a previous page", field="cursor"
        ) from exc


def list_incidents(
    session: Session, flt: IncidentFilter, *, cursor: str | None, limit: int
) -> tuple[list[Row[Any]], str | None]:
    """Return one page, newest first, and the cursor of the next page (None at the end).

    Keyset pagination on the primary key: a deep page costs the same as the first. The rows
    are plain Core rows with the incident's column names as attributes: the list is read-only,
    and skipping ORM instances and the ORM execution path halves the cost of a page.
    """
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(*IncidentRow.__table__.columns)
    if flt.statuses:
        stmt = stmt.where(IncidentRow.status.in_(list(flt.statuses)))
    if flt.severities:
        stmt = stmt.where(IncidentRow.severity.in_(list(flt.severities)))
    if flt.service:
        stmt = stmt.where(
            IncidentRow.id.in_(
                select(IncidentServiceRow.incident_id).where(
                    IncidentServiceRow.service_id == flt.service
                )
            )
        )
    if flt.since:
        stmt = stmt.where(IncidentRow.declared_at >= flt.since)
    if flt.until:
        stmt = stmt.where(IncidentRow.declared_at < flt.until)
    if flt.text:
        # Portable case-insensitive substring match (no backend-specific full-text search).
        pattern = f"%{_escape_like(flt.text.lower())}%"
        stmt = stmt.where(
            or_(
                func.lower(IncidentRow.title).like(pattern, escape="\\"),
                func.lower(IncidentRow.description).like(pattern, escape="\\"),
                func.lower(IncidentRow.slug).like(pattern, escape="\\"),
            )
        )
    for tag in flt.tags:
        # Tags live in a JSON list; matching its text form with the quoted tag is portable.
        quoted = _escape_like(json.dumps(tag))
        stmt = stmt.where(cast(IncidentRow.tags, String).like(f"%{quoted}%", escape="\\"))
    if cursor:
        stmt = stmt.where(IncidentRow.id < decode_cursor(cursor))
    rows = list(session.connection().execute(stmt.order_by(IncidentRow.id.desc()).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].id) if has_more and rows else None
    return rows, next_cursor


def services_by_incident(session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for incident_id, service_id in session.connection().execute(
            select(IncidentServiceRow.incident_id, IncidentServiceRow.service_id)
            .where(IncidentServiceRow.incident_id.in_(list(ids)))
            .order_by(IncidentServiceRow.service_id)
        ):
            out[incident_id].append(service_id)
    return out


def roles_by_incident(session: Session, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {i: {} for i in ids}
    if ids:
        for incident_id, role, user_id in session.connection().execute(
            select(
                IncidentRoleAssignmentRow.incident_id,
                IncidentRoleAssignmentRow.role,
                IncidentRoleAssignmentRow.user_id,
            ).where(IncidentRoleAssignmentRow.incident_id.in_(list(ids)))
        ):
            out[incident_id][role] = user_id
    return out


def checklist_progress(session: Session, ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Return (done, total) per incident."""
    out: dict[int, tuple[int, int]] = dict.fromkeys(ids, (0, 0))
    if ids:
        done_count = func.sum(case((ChecklistItemRow.done.is_(True), 1), else_=0))
        for incident_id, total, done in session.connection().execute(
            select(ChecklistItemRow.incident_id, func.count(), done_count)
            .where(ChecklistItemRow.incident_id.in_(list(ids)))
            .group_by(ChecklistItemRow.incident_id)
        ):
            out[incident_id] = (int(done or 0), int(total))
    return out


def open_counts_by_severity(session: Session) -> dict[str, int]:
    """Return the number of open incidents per severity (for /metrics)."""
    open_statuses = ["triggered", "investigating", "identified", "monitoring"]
    rows = session.execute(
        select(IncidentRow.severity, func.count())
        .where(IncidentRow.status.in_(open_statuses))
        .group_by(IncidentRow.severity)
    )
    return {str(severity): int(count) for severity, count in rows}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
