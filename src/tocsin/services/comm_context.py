"""What stakeholder messages are built from: the communication configuration as stored, and
everything known about an incident, turned into the fields templates render."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core import communications as core
from tocsin.core.errors import NotFound
from tocsin.core.incidents import OPEN_STATUSES, Status, incident_reference
from tocsin.services.stakeholder_templates import (
    DEFAULTS,
    FIELDS,
    MessageTemplate,
    render_text,
)
from tocsin.storage.comm_tables import (
    AudienceRow,
    CommunicationRuleRow,
    MessageTemplateRow,
    StakeholderUpdateRow,
)
from tocsin.storage.oncall_tables import EscalationRow, PageRow
from tocsin.storage.tables import (
    IncidentRoleAssignmentRow,
    IncidentRow,
    IncidentServiceRow,
    ServiceRow,
    SeverityRow,
    UserRow,
)

_NOT_IN_CHANNEL_NAME = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Audience:
    """One configured audience: its id, type and type-specific settings."""

    id: str
    type: str
    name: str
    settings: Mapping[str, Any]

    @property
    def incident_channel(self) -> bool:
        """Return True for a Slack audience that gets a channel per incident."""
        return self.type == "slack" and bool(self.settings.get("create_incident_channel"))


@dataclass(frozen=True, slots=True)
class CommConfig:
    """The live communication configuration."""

    audiences: dict[str, Audience]
    rules: list[core.Rule]
    templates: list[tuple[core.TemplateChoice, MessageTemplate]]

    def audiences_for(self, kind: str, severity: str, services: Iterable[str]) -> list[Audience]:
        """Return the audiences a `kind` message goes to (archived ones are skipped)."""
        ids = core.audiences_for(self.rules, severity, services, kind)
        return [self.audiences[i] for i in ids if i in self.audiences]

    def template(
        self, kind: str, severity: str, services: Iterable[str], audience_type: str
    ) -> tuple[MessageTemplate, str | None]:
        """Return the template for a message and its config key (None: the shipped default)."""
        by_choice = dict(self.templates)
        choice = core.pick_template(by_choice, kind, severity, services, audience_type)
        if choice is None:
            return DEFAULTS[kind], None
        return by_choice[choice], choice.key


def load_config(session: Session) -> CommConfig:
    """Read audiences, rules and templates as `tocsin apply` stored them."""
    audiences = {
        row.id: Audience(row.id, row.type, row.name, dict(row.settings or {}))
        for row in session.scalars(select(AudienceRow).where(AudienceRow.archived.is_(False)))
    }
    rules = [
        core.Rule(
            tuple(row.severities), tuple(row.audiences), tuple(row.messages), tuple(row.services)
        )
        for row in session.scalars(
            select(CommunicationRuleRow).order_by(CommunicationRuleRow.position)
        )
    ]
    templates = [
        (
            core.TemplateChoice(row.key, row.kind, row.severity, row.service, row.audience_type),
            MessageTemplate(row.title, row.body),
        )
        for row in session.scalars(select(MessageTemplateRow))
    ]
    return CommConfig(audiences, rules, templates)


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    email: str


@dataclass(slots=True)
class IncidentFacts:
    """One incident with what messages about it say: severity, services, people, cadence."""

    incident: IncidentRow
    severity_label: str
    severity_description: str
    update_every: timedelta | None
    services: list[tuple[str, str]]
    roles: dict[str, str]
    people: dict[str, Person]
    paged: list[str]
    last_update_at: datetime | None
    base_url: str = ""
    channel: str = field(default="")

    @property
    def service_ids(self) -> list[str]:
        return [service_id for service_id, _ in self.services]

    @property
    def commander(self) -> Person | None:
        user = self.roles.get("commander")
        return self.people.get(user) if user else None

    @property
    def is_open(self) -> bool:
        return Status(self.incident.status) in OPEN_STATUSES

    def responder_ids(self) -> list[str]:
        """Return who works the incident: the commander, other role holders, those paged."""
        ordered = sorted(self.roles.items(), key=lambda item: (item[0] != "commander", item[0]))
        out: list[str] = []
        for user in [u for _, u in ordered] + self.paged:
            if user not in out:
                out.append(user)
        return out

    def name_of(self, user_id: str) -> str:
        person = self.people.get(user_id)
        return person.name if person else user_id

    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/incidents/{self.incident.id}"


def incident_facts(
    session: Session, incident_id: int, *, base_url: str = "", config: CommConfig | None = None
) -> IncidentFacts:
    """Read an incident and everything its messages mention; NotFound if there is none."""
    incident = session.get(IncidentRow, incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    severity = session.get(SeverityRow, incident.severity)
    services = list(
        session.execute(
            select(ServiceRow.id, ServiceRow.name)
            .join(IncidentServiceRow, IncidentServiceRow.service_id == ServiceRow.id)
            .where(IncidentServiceRow.incident_id == incident_id)
            .order_by(ServiceRow.id)
        ).all()
    )
    roles = {
        row.role: row.user_id
        for row in session.scalars(
            select(IncidentRoleAssignmentRow).where(
                IncidentRoleAssignmentRow.incident_id == incident_id
            )
        )
    }
    paged = list(
        session.scalars(
            select(PageRow.user_id)
            .join(EscalationRow, EscalationRow.id == PageRow.escalation_id)
            .where(
                EscalationRow.subject_type == "incident", EscalationRow.subject_id == incident_id
            )
            .order_by(PageRow.id)
        )
    )
    last = session.scalar(
        select(StakeholderUpdateRow.created_at)
        .where(
            StakeholderUpdateRow.incident_id == incident_id, StakeholderUpdateRow.kind == "update"
        )
        .order_by(StakeholderUpdateRow.id.desc())
        .limit(1)
    )
    facts = IncidentFacts(
        incident=incident,
        severity_label=severity.label if severity else incident.severity,
        severity_description=severity.description if severity else "",
        update_every=(
            timedelta(seconds=severity.update_every_s)
            if severity is not None and severity.update_every_s
            else None
        ),
        services=[(service_id, name) for service_id, name in services],
        roles=roles,
        people=people(session, [*roles.values(), *paged]),
        paged=paged,
        last_update_at=last,
        base_url=base_url,
    )
    facts.channel = incident_channel(facts, config or load_config(session))
    return facts


def service_ids(session: Session, incident_id: int) -> list[str]:
    """Return the ids of an incident's services."""
    return list(
        session.scalars(
            select(IncidentServiceRow.service_id).where(
                IncidentServiceRow.incident_id == incident_id
            )
        )
    )


def people(session: Session, ids: Iterable[str]) -> dict[str, Person]:
    """Return the named users (archived ones too: they may still hold a role)."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(UserRow).where(UserRow.id.in_(wanted)))
    return {row.id: Person(row.id, row.name, row.email) for row in rows}


@dataclass(frozen=True, slots=True)
class UpdateText:
    """What the commander writes: the update itself, next steps and an ETA (both optional)."""

    message: str = ""
    next_steps: str = ""
    eta: str = ""


def next_update_at(facts: IncidentFacts, kind: str, now: datetime) -> datetime | None:
    """Return when the update after this message is due (None: no cadence, or it ends here)."""
    if facts.update_every is None or kind == core.RESOLUTION or not facts.is_open:
        return None
    # The initial notice counts from the declaration, like the cadence module does.
    start = facts.incident.declared_at if kind == core.INITIAL else now
    return start + facts.update_every


def render_context(
    facts: IncidentFacts,
    *,
    kind: str,
    now: datetime,
    text: UpdateText | None = None,
    audience: Audience | None = None,
) -> dict[str, Any]:
    """Return the template fields (stakeholder_templates.FIELDS) for one message."""
    incident = facts.incident
    text = text or UpdateText()
    started = incident.detected_at or incident.declared_at
    ended = incident.resolved_at if not facts.is_open else None
    commander = facts.commander
    context: dict[str, Any] = {
        "id": incident.id,
        "ref": incident_reference(incident.id),
        "title": incident.title,
        "description": incident.description,
        "slug": incident.slug,
        "url": facts.url(),
        "severity": incident.severity,
        "severity_label": facts.severity_label,
        "severity_description": facts.severity_description,
        "status": incident.status,
        "status_label": core.PUBLIC_STATUS.get(incident.status, incident.status.capitalize()),
        "impact": incident.customer_impact,
        "commander": commander.name if commander else None,
        "commander_id": commander.id if commander else None,
        "roles": {role: facts.name_of(user) for role, user in facts.roles.items()},
        "responders": [facts.name_of(user) for user in facts.responder_ids()],
        "services": [name for _, name in facts.services],
        "service_ids": facts.service_ids,
        "started_at": started,
        "declared_at": incident.declared_at,
        "resolved_at": incident.resolved_at,
        "now": now,
        "duration": core.short_span((ended or now) - started),
        "update_every": core.humanize(facts.update_every),
        "next_update_at": next_update_at(facts, kind, now),
        "resolution": incident.resolution,
        "root_cause": incident.resolution,
        "channel": facts.channel or f"#{incident.slug}",
        "kind": kind,
        "message": text.message,
        "next_steps": text.next_steps,
        "eta": text.eta,
        "audience": audience.id if audience else "",
        "audience_type": audience.type if audience else "",
    }
    assert set(context) == set(FIELDS)
    return context


def incident_channel(facts: IncidentFacts, config: CommConfig) -> str:
    """Return '#name' of the incident's own Slack channel: the first incident-channel
    audience's `channel_name` rendered, else the slug."""
    name = facts.incident.slug
    for audience in config.audiences.values():
        if audience.incident_channel:
            template = audience.settings.get("channel_name")
            if template:
                facts.channel = f"#{name}"  # a channel_name cannot refer to itself
                rendered = render_text(
                    template,
                    render_context(facts, kind=core.INITIAL, now=facts.incident.declared_at),
                )
                name = channel_name(rendered) or name
            break
    return f"#{name}"


def channel_name(text: str) -> str:
    """Return `text` as a valid Slack channel name (lowercase, no spaces, ≤ 80 characters)."""
    cleaned = _NOT_IN_CHANNEL_NAME.sub("-", text.strip().lstrip("#").lower()).strip("-")
    return cleaned[:80]


def known_kinds(config: CommConfig, facts: IncidentFacts) -> dict[str, list[str]]:
    """Return audience id → the message kinds it gets for this incident."""
    return {
        audience_id: core.kinds_for(
            config.rules, facts.incident.severity, facts.service_ids, audience_id
        )
        for audience_id in config.audiences
    }


def audiences_told(session: Session, incident_id: int, kinds: Sequence[str]) -> set[str]:
    """Return the audiences already sent a message of one of `kinds` about an incident."""
    rows = session.scalars(
        select(StakeholderUpdateRow.audiences).where(
            StakeholderUpdateRow.incident_id == incident_id,
            StakeholderUpdateRow.kind.in_(list(kinds)),
        )
    )
    return {audience for listed in rows for audience in listed or []}
