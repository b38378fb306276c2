"""/api/v1/incidents/{id}/updates and …/communication: the commander's stakeholder updates
(preview, send, list) and who hears about an incident, when the next update is due."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from tocsin.api.deps import Ctx, Reader, Responder
from tocsin.api.links import public_base_url
from tocsin.api.responses import model_response
from tocsin.api.schemas import MAX_ID, LongText, NoNul
from tocsin.core.errors import NotFound
from tocsin.core.incidents import Status, parse_reference
from tocsin.services import communications
from tocsin.services.comm_context import UpdateText
from tocsin.storage.comm_tables import StakeholderUpdateRow

router = APIRouter(prefix="/api/v1/incidents", tags=["communication"])

IncidentId = Annotated[
    str, Path(description="Incident number (42) or reference (INC-42).", max_length=40)
]
Message = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000), NoNul
]


class UpdateIn(BaseModel):
    """A stakeholder update as the commander writes it."""

    model_config = ConfigDict(extra="forbid")

    message: Message = Field(description="What is happening: the update itself.")
    status: Status | None = Field(
        default=None, description="Move the incident to this status with the update."
    )
    next_steps: LongText = Field(default="", description="What the responders do next.")
    eta: Annotated[str, Field(max_length=200), NoNul] = Field(
        default="", description="Expected resolution time, as people should read it."
    )

    def text(self) -> UpdateText:
        return UpdateText(self.message, self.next_steps.strip(), self.eta.strip())


class AudienceMessageOut(BaseModel):
    audience: str
    type: str
    name: str
    title: str
    body: str
    recipients: list[str]
    template: str | None = Field(description="The config template used; null: the default.")
    error: str | None = Field(description="Why the config template could not be used.")


class PreviewOut(BaseModel):
    incident_id: int
    kind: str = Field(description="update, or resolution when the update resolves it")
    status: str
    audiences: list[AudienceMessageOut]
    next_update_at: datetime | None


class UpdateOut(BaseModel):
    id: int
    incident_id: int
    kind: str
    message: str
    next_steps: str
    eta: str
    status: str | None
    audiences: list[str]
    messages: int = Field(description="Outbox messages queued.")
    automatic: bool = Field(description="Sent by Tocsin (initial, resolution notices).")
    created_at: datetime
    created_by: str
    source: str


class SentOut(UpdateOut):
    sent: list[AudienceMessageOut]
    next_update_at: datetime | None


class UpdatesOut(BaseModel):
    items: list[UpdateOut]


class AudienceRuleOut(BaseModel):
    id: str
    type: str
    messages: list[str]


class CommunicationOut(BaseModel):
    incident_id: int
    audiences: list[AudienceRuleOut]
    update_every: str = Field(description="The severity's cadence in words; empty: none.")
    last_update_at: datetime | None
    next_update_at: datetime | None
    overdue_at: datetime | None
    due: bool
    overdue: bool


def _number(value: str) -> int:
    number = parse_reference(value)
    if number is None or number > MAX_ID:
        raise NotFound(f"incident {value!r} not found")
    return number


def _audiences(preview: communications.Preview) -> list[AudienceMessageOut]:
    return [
        AudienceMessageOut(
            audience=a.audience, type=a.type, name=a.name, title=a.title, body=a.body,
            recipients=a.recipients, template=a.template, error=a.error,
        )
        for a in preview.audiences
    ]  # fmt: skip


def update_out(row: StakeholderUpdateRow) -> UpdateOut:
    """Return the API view of a sent update."""
    return UpdateOut(
        id=row.id, incident_id=row.incident_id, kind=row.kind, message=row.message,
        next_steps=row.next_steps, eta=row.eta, status=row.status,
        audiences=list(row.audiences or []), messages=row.messages,
        automatic=row.event_id is not None, created_at=row.created_at,
        created_by=row.created_by, source=row.source,
    )  # fmt: skip


@router.post(
    "/{incident_id}/updates/preview",
    response_model=PreviewOut,
    summary="Render a stakeholder update for every audience, sending nothing",
)
def preview(incident_id: IncidentId, body: UpdateIn, ctx: Ctx, _actor: Responder) -> Response:
    number = _number(incident_id)
    base = public_base_url(ctx.settings)
    with ctx.db.read() as session:
        found = communications.preview_update(
            session, number, ctx.clock(), body.text(), status=body.status, base_url=base
        )
    out = PreviewOut(
        incident_id=found.incident_id, kind=found.kind, status=found.status,
        audiences=_audiences(found), next_update_at=found.next_update_at,
    )  # fmt: skip
    return model_response(out)


@router.post(
    "/{incident_id}/updates",
    status_code=201,
    response_model=SentOut,
    summary="Send a stakeholder update (and optionally change the status)",
)
async def send(incident_id: IncidentId, body: UpdateIn, ctx: Ctx, actor: Responder) -> Response:
    number = _number(incident_id)
    base = public_base_url(ctx.settings)

    def job(session: Session) -> SentOut:
        sent = communications.send_update(
            session, actor, ctx.clock(), number, body.text(), status=body.status, base_url=base
        )
        session.flush()
        return SentOut(
            **update_out(sent.update).model_dump(),
            sent=_audiences(sent.preview),
            next_update_at=sent.preview.next_update_at,
        )

    out = await ctx.db.run_write(job)
    ctx.wake()  # the messages are due now
    return model_response(out, 201, {"Location": f"/api/v1/incidents/{number}/updates"})


@router.get(
    "/{incident_id}/updates",
    response_model=UpdatesOut,
    summary="List the stakeholder messages sent about an incident",
)
def list_updates(incident_id: IncidentId, ctx: Ctx, _actor: Reader) -> Response:
    number = _number(incident_id)
    with ctx.db.read() as session:
        rows = communications.list_updates(session, number)
        return model_response(UpdatesOut(items=[update_out(r) for r in rows]))


@router.get(
    "/{incident_id}/communication",
    response_model=CommunicationOut,
    summary="Who hears about an incident, and when the next update is due",
)
def communication(incident_id: IncidentId, ctx: Ctx, _actor: Reader) -> Response:
    number = _number(incident_id)
    with ctx.db.read() as session:
        state = communications.communication_state(session, number, ctx.clock())
    out = CommunicationOut(
        incident_id=state.incident_id,
        audiences=[
            AudienceRuleOut(id=a, type=state.audience_types[a], messages=kinds)
            for a, kinds in state.audiences.items()
        ],
        update_every=state.update_every, last_update_at=state.last_update_at,
        next_update_at=state.next_update_at, overdue_at=state.overdue_at, due=state.due,
        overdue=state.overdue,
    )  # fmt: skip
    return model_response(out)
