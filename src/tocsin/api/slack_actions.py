"""What a click on a Tocsin button in Slack does: find the Tocsin user behind the Slack member,
then acknowledge or resolve the incident or alert group as that user (source "slack").

A Slack member is a Tocsin user through a verified `slack` contact method whose target is the
member id, or else through the email address Slack has for the member (users.info) being the
user's email. Everything here runs inside the caller's unit of work and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tocsin.core.actors import Actor, Scope
from tocsin.core.alerts import AlertStatus
from tocsin.core.incidents import Status
from tocsin.notify.slack_format import SlackAction
from tocsin.services import access, alert_groups, escalations, incidents
from tocsin.services.page_messages import subject_label
from tocsin.storage.oncall_tables import ContactMethodRow
from tocsin.storage.tables import UserRow

SOURCE = "slack"
_ENDED_INCIDENT = (Status.RESOLVED.value, Status.CLOSED.value)


@dataclass(frozen=True, slots=True)
class Answer:
    """What to tell the person who clicked; `changed` when something was done (wake the engine)."""

    text: str
    changed: bool = False


def user_by_member(session: Session, member: str) -> UserRow | None:
    """Return the user whose verified slack contact method is this member id."""
    user_id = session.scalar(
        select(ContactMethodRow.user_id)
        .where(
            ContactMethodRow.type == "slack",
            ContactMethodRow.target == member,
            ContactMethodRow.archived.is_(False),
            ContactMethodRow.verified_at.is_not(None),
        )
        .order_by(ContactMethodRow.created_at)
        .limit(1)
    )
    user = session.get(UserRow, user_id) if user_id else None
    return user if user is not None and not user.archived else None


def user_by_email(session: Session, email: str) -> UserRow | None:
    """Return the active user with this email address (compared without case)."""
    return session.scalar(
        select(UserRow)
        .where(func.lower(UserRow.email) == email.strip().lower(), UserRow.archived.is_(False))
        .order_by(UserRow.id)
        .limit(1)
    )


def act(session: Session, user_id: str, action: SlackAction, now: datetime) -> Answer:
    """Perform a button's action as the user; say what happened (or why nothing did)."""
    user = session.get(UserRow, user_id)
    if user is None or user.archived:
        return Answer("Your Tocsin user no longer exists.")
    actor = access.actor_for_user(user, SOURCE)
    if not actor.can(Scope.RESPOND):
        return Answer(
            f"Your Tocsin role ({user.role}) may not {action.action} incidents or alert groups."
        )
    if action.subject_type == escalations.INCIDENT:
        return _incident(session, actor, action, now)
    return _group(session, actor, action, now)


def _incident(session: Session, actor: Actor, action: SlackAction, now: datetime) -> Answer:
    incident = incidents.get(session, action.subject_id)
    label = f"{subject_label(action.subject_type, action.subject_id)} ({incident.title})"
    if incident.status in _ENDED_INCIDENT:
        return Answer(f"{label} is already {incident.status}; nothing to do.")
    if action.action == "acknowledge":
        if incident.acknowledged_at is not None and incident.status != Status.TRIGGERED:
            return Answer(f"{label} was already acknowledged; no more pages.")
        incidents.acknowledge(session, actor, now, incident.id)
        return Answer(f"{label} is acknowledged by {actor.display}; no more pages.", True)
    incidents.change_status(session, actor, now, incident.id, Status.RESOLVED)
    return Answer(f"{label} is resolved by {actor.display}.", True)


def _group(session: Session, actor: Actor, action: SlackAction, now: datetime) -> Answer:
    group = alert_groups.get_group(session, action.subject_id)
    label = f"{subject_label(action.subject_type, action.subject_id)} ({group.title})"
    if group.status == AlertStatus.RESOLVED:
        return Answer(f"{label} is already resolved; nothing to do.")
    if action.action == "acknowledge":
        if group.acknowledged_at is not None:
            by = f" by {group.acknowledged_by}" if group.acknowledged_by else ""
            return Answer(f"{label} was already acknowledged{by}; no more pages.")
        alert_groups.acknowledge(session, actor, now, group.id)
        return Answer(f"{label} is acknowledged by {actor.display}; no more pages.", True)
    alert_groups.resolve(session, actor, now, group.id)
    return Answer(f"{label} is resolved by {actor.display}.", True)
