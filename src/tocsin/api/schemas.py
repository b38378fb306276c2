"""Request and response bodies of the REST API (kept apart from the tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from tocsin.core.incidents import Milestone, Status

# Ids are 32-bit on PostgreSQL; a larger number can only be a 404, never a database error.
MAX_ID = 2**31 - 1


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; reject it here with a clear message on both backends.
    if "\x00" in value:
        raise ValueError("text must not contain NUL (\\x00) characters")
    return value


NoNul = AfterValidator(_no_nul)
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), NoNul
]
LongText = Annotated[str, Field(max_length=100_000), NoNul]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoNul]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoNul]
NoteText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000), NoNul
]


class IncidentCreate(BaseModel):
    """Declare an incident."""

    model_config = ConfigDict(extra="ignore")

    title: Title
    severity: Name
    description: LongText = ""
    services: list[Name] = Field(default_factory=list, max_length=100)
    customer_impact: LongText = ""
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    status: Status = Status.TRIGGERED
    detected_at: AwareDatetime | None = None
    roles: dict[Name, Name] = Field(default_factory=dict, max_length=20)


class IncidentPatch(BaseModel):
    """Change any field of an incident; absent fields stay as they are."""

    model_config = ConfigDict(extra="ignore")

    title: Title | None = None
    description: LongText | None = None
    severity: Name | None = None
    status: Status | None = None
    services: list[Name] | None = Field(default=None, max_length=100)
    customer_impact: LongText | None = None
    resolution: LongText | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    roles: dict[Name, Name | None] | None = Field(default=None, max_length=20)
    note: LongText | None = Field(
        default=None, description="Recorded on the timeline with the change."
    )
    version: int | None = Field(
        default=None, description="Expected version; 409 if the incident has moved on."
    )


class StatusChange(BaseModel):
    status: Status
    note: LongText | None = None
    resolution: LongText | None = None


class Resolve(BaseModel):
    model_config = ConfigDict(extra="ignore")

    resolution: LongText | None = None
    note: LongText | None = None


class NoteCreate(BaseModel):
    text: NoteText


class EventPatch(BaseModel):
    text: NoteText | None = None
    pinned: bool | None = None


class RoleAssign(BaseModel):
    user: Name | None = Field(description="User id, or null to clear the role.")


class MilestoneCorrection(BaseModel):
    at: AwareDatetime | None
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), NoNul
    ]


class ChecklistTick(BaseModel):
    done: bool = True


class TokenCreate(BaseModel):
    name: Name
    scopes: list[Name] = Field(min_length=1, max_length=3)
    user: Name | None = None


class MilestonesOut(BaseModel):
    detected: datetime | None
    declared: datetime | None
    acknowledged: datetime | None
    mitigated: datetime | None
    resolved: datetime | None
    closed: datetime | None


class ChecklistItemOut(BaseModel):
    id: int
    text: str
    severity: str
    done: bool
    done_at: datetime | None
    done_by: str | None


class IncidentOut(BaseModel):
    id: int
    ref: str
    slug: str
    title: str
    description: str
    severity: str
    status: Status
    allowed_next: list[Status]
    services: list[str]
    customer_impact: str
    resolution: str
    tags: list[str]
    roles: dict[str, str]
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int
    milestones: MilestonesOut
    respond_by: datetime | None = Field(
        description="Declared time + the severity's respond_within."
    )
    checklist_done: int
    checklist_total: int
    checklist: list[ChecklistItemOut] | None = None
    url: str


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    next_cursor: str | None


class RevisionOut(BaseModel):
    text: str
    replaced_at: datetime
    replaced_by: str


class EventOut(BaseModel):
    id: int
    incident_id: int
    at: datetime
    actor: str
    source: str
    kind: str
    text: str
    data: dict[str, Any]
    pinned: bool
    edited_at: datetime | None
    revisions: list[RevisionOut] = Field(default_factory=list)


class TimelineOut(BaseModel):
    items: list[EventOut]


class ChecklistOut(BaseModel):
    items: list[ChecklistItemOut]


__all__ = ["Milestone"]
