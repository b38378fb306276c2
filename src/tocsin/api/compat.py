"""The incident API seed 001's runbook scripts against: /api/monitoring/incidents.

Its severities (critical/high/medium/low) map onto the configured scheme by rank; its fields are
camelCase; resolvedAt is epoch milliseconds. It needs a token with the respond scope like the
rest of the API (the runbook's scripts run inside an authenticated app).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tocsin.api.deps import Ctx, Responder
from tocsin.api.schemas import MAX_ID, IncidentOut, LongText, NoNul, Title
from tocsin.api.views import incident_out
from tocsin.core.actors import Actor, Scope
from tocsin.core.errors import InvalidInput, NotFound
from tocsin.core.incidents import Milestone, Status, parse_reference
from tocsin.core.severity import map_legacy_severity
from tocsin.services import catalog, incidents
from tocsin.services.timeline import record

router = APIRouter(prefix="/api/monitoring/incidents", tags=["compatibility"])

Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoNul]
# Earliest and latest epoch-ms values we accept: year 2000 to year 2200.
_MIN_MS, _MAX_MS = 946_684_800_000, 7_258_118_400_000


class MonitoringIncidentCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: Title
    description: LongText = ""
    severity: Word
    affectedServices: list[Word] = Field(default_factory=list, max_length=100)  # noqa: N815
    createdBy: Annotated[str, Field(max_length=200), NoNul] | None = None  # noqa: N815


class MonitoringIncidentPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Word | None = None
    resolution: LongText | None = None
    resolvedBy: Annotated[str, Field(max_length=200), NoNul] | None = None  # noqa: N815
    resolvedAt: Annotated[int, Field(ge=_MIN_MS, le=_MAX_MS)] | None = None  # noqa: N815
    title: Title | None = None
    description: LongText | None = None
    severity: Word | None = None


class MonitoringIncidentOut(BaseModel):
    id: int
    ref: str
    title: str
    description: str
    severity: str
    status: str
    affectedServices: list[str]  # noqa: N815
    createdBy: str | None  # noqa: N815
    createdAt: int  # noqa: N815
    resolvedAt: int | None  # noqa: N815
    resolution: str
    incident: IncidentOut


_STATUS_WORDS = {
    "open": Status.INVESTIGATING,
    "active": Status.INVESTIGATING,
    "ongoing": Status.INVESTIGATING,
}


def _status(word: str) -> Status:
    lowered = word.lower()
    if lowered in _STATUS_WORDS:
        return _STATUS_WORDS[lowered]
    try:
        return Status(lowered)
    except ValueError as exc:
        valid = [s.value for s in Status]
        raise InvalidInput(
            f"unknown status {word!r}; valid: {', '.join(valid)}", field="status", valid=valid
        ) from exc


def _ms(value: datetime | None) -> int | None:
    return int(value.timestamp() * 1000) if value else None


def _out(session: Any, row: Any, created_by: str | None) -> MonitoringIncidentOut:
    full = incident_out(session, row)
    return MonitoringIncidentOut(
        id=full.id,
        ref=full.ref,
        title=full.title,
        description=full.description,
        severity=full.severity,
        status=full.status.value,
        affectedServices=full.services,
        createdBy=created_by,
        createdAt=_ms(full.created_at) or 0,
        resolvedAt=_ms(full.milestones.resolved),
        resolution=full.resolution,
        incident=full,
    )


@router.post("", status_code=201, response_model=MonitoringIncidentOut)
def create(body: MonitoringIncidentCreate, ctx: Ctx, actor: Responder) -> MonitoringIncidentOut:
    actor = actor.with_source("monitoring-api")
    with ctx.db.write() as session:
        severity = map_legacy_severity(body.severity, catalog.severities(session))
        decl = incidents.Declaration(
            title=body.title,
            severity=severity.name,
            description=body.description,
            services=body.affectedServices,
        )
        row = incidents.declare(session, actor, ctx.clock(), decl)
        if body.createdBy:
            record(session, row.id, actor, ctx.clock(), "note", f"Reported by {body.createdBy}",
                   {"created_by": body.createdBy})  # fmt: skip
        out = _out(session, row, body.createdBy)
        session.commit()
    ctx.wake()  # the incident's escalation is due now
    return out


@router.patch("/{incident_id}", response_model=MonitoringIncidentOut)
def patch(
    incident_id: Annotated[str, Path(max_length=40)],
    body: MonitoringIncidentPatch,
    ctx: Ctx,
    actor: Responder,
) -> MonitoringIncidentOut:
    number = parse_reference(incident_id)
    if number is None or number > MAX_ID:
        raise NotFound(f"incident {incident_id!r} not found")
    actor = actor.with_source("monitoring-api")
    now = ctx.clock()
    with ctx.db.write() as session:
        severity = None
        if body.severity is not None:
            severity = map_legacy_severity(body.severity, catalog.severities(session)).name
        note = f"Resolved by {body.resolvedBy}" if body.resolvedBy else None
        changes = incidents.Changes(
            title=body.title,
            description=body.description,
            severity=severity,
            status=_status(body.status) if body.status else None,
            resolution=body.resolution,
            note=note,
        )
        row = incidents.update_incident(session, actor, now, number, changes)
        if body.resolvedAt is not None and row.status in (Status.RESOLVED, Status.CLOSED):
            at = datetime.fromtimestamp(body.resolvedAt / 1000, tz=UTC)
            if row.resolved_at != at:
                # The caller states when it was resolved; record it as a correction so the
                # timeline shows both the API time and the reported time.
                trusted = Actor(
                    actor.id, frozenset(Scope), actor.user_id, actor.source, actor.display
                )
                row = incidents.correct_milestone(
                    session, trusted, now, number, Milestone.RESOLVED, at,
                    "resolvedAt reported by the monitoring API",
                )  # fmt: skip
        out = _out(session, row, None)
        session.commit()
    return out
