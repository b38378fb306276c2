"""One stakeholder message, rendered per audience and turned into outbox messages by the
payload contract of each channel (email threads, Slack incident channels, signed webhooks …)."""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core import communications as core
from tocsin.core.actors import Actor
from tocsin.core.incidents import incident_reference
from tocsin.services import schedules, timeline
from tocsin.services.comm_context import (
    Audience,
    CommConfig,
    IncidentFacts,
    UpdateText,
    render_context,
)
from tocsin.services.stakeholder_templates import DEFAULTS, render_message
from tocsin.storage.oncall_tables import ContactMethodRow, NotificationRuleRow
from tocsin.storage.tables import TeamMemberRow

log = logging.getLogger("tocsin.communications")
OUTBOX_KIND = "stakeholder"
_KEY_MAX = 200
_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True, slots=True)
class Rendered:
    """One audience's rendering of a message."""

    audience: Audience
    title: str
    body: str
    # The config template used (None: the shipped default), and why it could not be, if so.
    template: str | None = None
    error: str | None = None


def render_for(
    config: CommConfig,
    facts: IncidentFacts,
    audience: Audience,
    *,
    kind: str,
    now: datetime,
    text: UpdateText | None = None,
) -> Rendered:
    """Render `kind` for one audience; a config template that fails falls back to the default."""
    template, key = config.template(kind, facts.incident.severity, facts.service_ids, audience.type)
    context = render_context(facts, kind=kind, now=now, text=text, audience=audience)
    try:
        title, body = render_message(template, context)
    except Exception as exc:  # noqa: BLE001 - a broken template must not lose the message
        log.warning("template %r failed for incident %s: %s", key, facts.incident.id, exc)
        title, body = render_message(DEFAULTS[kind], context)
        return Rendered(audience, title, body, None, f"template '{key}' failed: {exc}")
    return Rendered(audience, title, body, key)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where one copy goes: a channel and destination, and the person if it is one."""

    channel: str
    destination: str
    user_id: str | None = None
    contact_method_id: str | None = None

    @property
    def name(self) -> str:
        """Return what identifies the recipient in keys and previews."""
        return self.contact_method_id or self.destination


def recipients(
    session: Session, facts: IncidentFacts, audience: Audience, now: datetime
) -> list[Recipient]:
    """Return every destination of an audience (a status page has none: it is recorded)."""
    settings = audience.settings
    kind = audience.type
    if kind in ("email", "sms"):
        return [Recipient(kind, target) for target in settings.get("to") or []]
    if kind == "slack":
        return [Recipient("slack", settings.get("channel") or facts.channel)]
    if kind in ("webhook", "teams", "mattermost"):
        return [Recipient(kind, str(settings["url"]))]
    if kind == "people":
        return people_recipients(session, people_of(session, audience, now))
    return []


def people_of(session: Session, audience: Audience, now: datetime) -> list[str]:
    """Return the users a people audience names: users, team members, who is on call now."""
    users: list[str] = list(audience.settings.get("users") or [])
    teams = list(audience.settings.get("teams") or [])
    if teams:
        users += session.scalars(
            select(TeamMemberRow.user_id)
            .where(TeamMemberRow.team_id.in_(teams))
            .order_by(TeamMemberRow.team_id, TeamMemberRow.position)
        )
    for schedule_id in audience.settings.get("schedules") or []:
        try:
            users += schedules.on_call(session, schedule_id, now)
        except Exception:  # one broken schedule must not silence the others
            log.exception("schedule %s cannot be evaluated", schedule_id)
    return list(dict.fromkeys(users))


def people_recipients(session: Session, users: Sequence[str]) -> list[Recipient]:
    """Return how to reach each person: the contact methods of their immediate high-urgency
    rules (what pages them first), else every verified contact method they have."""
    if not users:
        return []
    methods = {
        m.id: m
        for m in session.scalars(
            select(ContactMethodRow).where(
                ContactMethodRow.user_id.in_(list(users)),
                ContactMethodRow.archived.is_(False),
                ContactMethodRow.verified_at.is_not(None),
            )
        )
    }
    first: dict[str, list[tuple[int, str]]] = {}
    for rule in session.scalars(
        select(NotificationRuleRow)
        .where(NotificationRuleRow.user_id.in_(list(users)), NotificationRuleRow.urgency == "high")
        .order_by(NotificationRuleRow.position)
    ):
        if rule.contact_method_id in methods:
            first.setdefault(rule.user_id, []).append((rule.after_s, rule.contact_method_id))
    out = []
    for user in users:
        chosen = first.get(user)
        if chosen:
            soonest = min(after for after, _ in chosen)
            ids = [m for after, m in chosen if after == soonest]
        else:
            ids = sorted(m.id for m in methods.values() if m.user_id == user)
        for method_id in dict.fromkeys(ids):
            method = methods[method_id]
            out.append(Recipient(method.type, method.target, user, method.id))
    return out


def outbox_key(incident_id: int, ref: str, audience: str, recipient: str) -> str:
    """Return the idempotency key of one copy; a long recipient (a URL) is hashed to fit."""
    key = f"comm:{incident_id}:{ref}:{audience}:{recipient}"
    if len(key) <= _KEY_MAX:
        return key
    digest = hashlib.sha256(recipient.encode()).hexdigest()[:24]
    return f"comm:{incident_id}:{ref}:{audience}:{digest}"[:_KEY_MAX]


def webhook_body(
    facts: IncidentFacts,
    rendered: Rendered,
    *,
    kind: str,
    now: datetime,
    text: UpdateText | None,
    update_id: int | None,
) -> dict[str, Any]:
    """Return the JSON a webhook audience receives: the text and the incident's fields."""
    incident = facts.incident
    commander = facts.commander
    return {
        "type": "incident.stakeholder_message",
        "message_kind": kind,
        "audience": rendered.audience.id,
        "title": rendered.title,
        "text": rendered.body,
        "sent_at": now.isoformat(),
        "incident": {
            "id": incident.id,
            "ref": incident_reference(incident.id),
            "slug": incident.slug,
            "title": incident.title,
            "severity": incident.severity,
            "status": incident.status,
            "impact": incident.customer_impact,
            "commander": commander.id if commander else None,
            "services": facts.service_ids,
            "declared_at": incident.declared_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "url": facts.url(),
        },
        "update": (
            {
                "id": update_id,
                "message": text.message,
                "next_steps": text.next_steps,
                "eta": text.eta,
            }
            if text is not None and kind != core.INITIAL
            else None
        ),
    }


def email_html(title: str, body: str) -> str:
    """Return the HTML part of an email: the text, paragraphs kept, links clickable."""
    paragraphs = []
    for block in body.split("\n\n"):
        lines = [_linked(line) for line in block.splitlines()]
        paragraphs.append("<p>" + "<br>\n".join(lines) + "</p>")
    return (
        '<div style="font-family: system-ui, sans-serif; line-height: 1.4">'
        f"<h2>{html.escape(title)}</h2>\n" + "\n".join(paragraphs) + "</div>"
    )


def _linked(line: str) -> str:
    out, last = [], 0
    for found in _URL.finditer(line):
        out.append(html.escape(line[last : found.start()]))
        url = html.escape(found.group(0))
        out.append(f'<a href="{url}">{url}</a>')
        last = found.end()
    out.append(html.escape(line[last:]))
    return "".join(out)


def payload_for(
    facts: IncidentFacts,
    rendered: Rendered,
    recipient: Recipient,
    *,
    kind: str,
    now: datetime,
    text: UpdateText | None,
    update_id: int | None,
) -> dict[str, Any]:
    """Return the outbox payload of one copy, by the channel's payload contract."""
    audience = rendered.audience
    incident = facts.incident
    if recipient.channel == "email":
        thread = f"incident-{incident.id}"
        return {"email": {"html": email_html(rendered.title, rendered.body), "thread": thread}}
    if recipient.channel == "webhook":
        body = webhook_body(facts, rendered, kind=kind, now=now, text=text, update_id=update_id)
        secret = audience.settings.get("secret") if audience.type == "webhook" else None
        return {"webhook": {"body": body, "secret": secret}}
    if recipient.channel == "slack" and audience.incident_channel:
        slack: dict[str, Any] = {"ensure_channel": True}
        if kind == core.INITIAL:
            slack.update(
                topic=f"[{incident.severity}] {incident.title}"[:250],
                invite={"user_ids": [], "emails": invitees(facts, audience)},
                pin=True,
                actions=[
                    {"action": action, "subject_type": "incident", "subject_id": incident.id}
                    for action in ("acknowledge", "resolve")
                ],
            )
        return {"slack": slack}
    if recipient.channel == "slack":
        return {"slack": {}}
    return {}


def invitees(facts: IncidentFacts, audience: Audience) -> list[str]:
    """Return the emails of the people an incident channel invites (roles, 'responders')."""
    users: list[str] = []
    for entry in audience.settings.get("invite") or []:
        if entry == "responders":
            users += facts.responder_ids()
        elif entry in facts.roles:
            users.append(facts.roles[entry])
    emails = [facts.people[u].email for u in dict.fromkeys(users) if u in facts.people]
    return [e for e in emails if e]


def outbox_messages(
    facts: IncidentFacts,
    rendered: Rendered,
    targets: Sequence[Recipient],
    *,
    kind: str,
    ref: str,
    now: datetime,
    text: UpdateText | None = None,
    update_id: int | None = None,
) -> list[dict[str, Any]]:
    """Return the outbox messages (services.outbox.enqueue_many form) of one audience."""
    return [
        {
            "key": outbox_key(facts.incident.id, ref, rendered.audience.id, target.name),
            "kind": OUTBOX_KIND,
            "channel": target.channel,
            "destination": target.destination,
            "title": rendered.title,
            "body": rendered.body,
            "payload": payload_for(
                facts, rendered, target, kind=kind, now=now, text=text, update_id=update_id
            ),
            "now": now,
            "user_id": target.user_id,
            "contact_method_id": target.contact_method_id,
            "subject_type": "incident",
            "subject_id": facts.incident.id,
        }
        for target in targets
    ]


def record_status_page(
    session: Session,
    facts: IncidentFacts,
    rendered: Rendered,
    actor: Actor,
    now: datetime,
    kind: str,
) -> None:
    """Record a status page audience's text as the incident's public status, on the timeline."""
    incident = facts.incident
    timeline.record(
        session,
        incident.id,
        actor,
        now,
        "status_page_update",
        f"Public status: {rendered.title}\n{rendered.body}",
        {
            "title": rendered.title,
            "body": rendered.body,
            "audience": rendered.audience.id,
            "message_kind": kind,
            "status": incident.status,
            "public_status": core.PUBLIC_STATUS.get(incident.status, incident.status),
        },
    )


def deliver(
    session: Session,
    facts: IncidentFacts,
    rendered: Sequence[Rendered],
    actor: Actor,
    kind: str,
    ref: str,
    now: datetime,
    text: UpdateText | None = None,
    update_id: int | None = None,
) -> list[dict[str, Any]]:
    """Record status page texts and return every other audience's outbox messages."""
    messages: list[dict[str, Any]] = []
    for item in rendered:
        if item.audience.type == "statuspage":
            record_status_page(session, facts, item, actor, now, kind)
            continue
        targets = recipients(session, facts, item.audience, now)
        messages += outbox_messages(
            facts, item, targets, kind=kind, ref=ref, now=now, text=text, update_id=update_id
        )
    return messages
