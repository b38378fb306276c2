"""Read side of on-call: schedules with who is on call, shifts and gaps, calendar feeds,
escalation policies, running escalations and what was sent about an incident or alert group."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.errors import InvalidInput, NotFound
from tocsin.core.oncall import schedule as core
from tocsin.core.oncall.ical import export_calendar
from tocsin.services import escalations, schedules
from tocsin.services.outbox import message_log
from tocsin.services.queries import decode_cursor, encode_cursor
from tocsin.storage.oncall_tables import (
    EscalationPolicyRow,
    EscalationRow,
    EscalationStepRow,
    NotificationLogRow,
    OutboxRow,
    ScheduleLayerRow,
    ScheduleOverrideRow,
    ScheduleRow,
)
from tocsin.storage.tables import ServiceRow, TeamRow, UserRow

# What a calendar feed covers, around now.
FEED_PAST = timedelta(days=30)
FEED_AHEAD = timedelta(days=180)
DETAIL_SHIFTS = 10
DETAIL_GAP_WINDOW = timedelta(days=14)
ESCALATION_STATUSES = ("active", "acknowledged", "resolved")
SUBJECT_TYPES = (escalations.GROUP, escalations.INCIDENT)
_CALENDAR_SALT = b"tocsin-user-calendar:"


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Slot:
    """A shift of one person, or a gap (user None) with nobody on call."""

    user: str | None
    starts_at: datetime
    ends_at: datetime

    @property
    def gap(self) -> bool:
        return self.user is None


@dataclass(frozen=True, slots=True)
class ScheduleDetail:
    row: ScheduleRow
    layers: list[ScheduleLayerRow]
    overrides: list[ScheduleOverrideRow]
    on_call: tuple[str, ...]
    next_shifts: list[core.Shift]
    gaps: list[tuple[datetime, datetime]]


@dataclass(frozen=True, slots=True)
class PolicyDetail:
    row: EscalationPolicyRow
    steps: list[EscalationStepRow]
    services: list[str]


@dataclass(frozen=True, slots=True)
class SubjectNotifications:
    escalation: EscalationRow | None
    log: list[NotificationLogRow]
    messages: list[OutboxRow]


def people(session: Session, ids: Iterable[str]) -> dict[str, Person]:
    """Return name and email of these users (archived ones too: history names them)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(UserRow.id, UserRow.name, UserRow.email).where(UserRow.id.in_(wanted))
    ).all()
    return {r.id: Person(r.id, r.name, r.email) for r in rows}


def person_of(found: dict[str, Person], user_id: str) -> Person:
    """Return a user from `people`, or a stand-in naming only the id (deleted users)."""
    return found.get(user_id) or Person(user_id, user_id, "")


# --- schedules ---


def schedule_row(session: Session, schedule_id: str) -> ScheduleRow:
    row = session.get(ScheduleRow, schedule_id)
    if row is None or row.archived:
        raise NotFound(f"schedule {schedule_id!r} not found")
    return row


def on_call_now(session: Session, now: datetime) -> list[tuple[ScheduleRow, tuple[str, ...]]]:
    """Return every live schedule with the users on call on it at `now`."""
    rows = schedules.live_schedules(session)
    built = schedules.load_many(session, rows, since=now)
    return [(row, core.on_call_at(built[row.id], now)) for row in rows]


def schedule_detail(session: Session, schedule_id: str, now: datetime) -> ScheduleDetail:
    """Return a schedule's layers, upcoming overrides, who is on call and what comes next."""
    row = schedule_row(session, schedule_id)
    built = schedules.load(session, schedule_id, since=now)
    layers = list(
        session.scalars(
            select(ScheduleLayerRow)
            .where(ScheduleLayerRow.schedule_id == schedule_id)
            .order_by(ScheduleLayerRow.position)
        )
    )
    return ScheduleDetail(
        row=row,
        layers=layers,
        overrides=overrides(session, schedule_id, now),
        on_call=core.on_call_at(built, now),
        next_shifts=core.next_shifts(built, now, DETAIL_SHIFTS),
        gaps=core.gaps(built, now, now + DETAIL_GAP_WINDOW),
    )


def overrides(
    session: Session, schedule_id: str, now: datetime, *, include_past: bool = False
) -> list[ScheduleOverrideRow]:
    """Return a schedule's overrides that have not ended (or all), by start."""
    schedule_row(session, schedule_id)
    query = select(ScheduleOverrideRow).where(ScheduleOverrideRow.schedule_id == schedule_id)
    if not include_past:
        query = query.where(ScheduleOverrideRow.ends_at > now)
    order = (ScheduleOverrideRow.starts_at, ScheduleOverrideRow.id)
    return list(session.scalars(query.order_by(*order).limit(1000)))


def slots(schedule: core.Schedule, start: datetime, end: datetime) -> list[Slot]:
    """Return the final shifts and the gaps in [start, end), by start (gaps first on ties)."""
    found = [Slot(s.user, s.starts_at, s.ends_at) for s in core.shifts(schedule, start, end)]
    found += [Slot(None, begins, ends) for begins, ends in core.gaps(schedule, start, end)]
    return sorted(found, key=lambda s: (s.starts_at, s.user is not None, s.user or ""))


def next_slots(schedule: core.Schedule, now: datetime, count: int) -> list[Slot]:
    """Return the next `count` shifts (the current one clipped to now) and the gaps among them."""
    upcoming = core.next_shifts(schedule, now, count)
    found = [Slot(s.user, s.starts_at, s.ends_at) for s in upcoming]
    if upcoming:
        until = max(s.ends_at for s in upcoming)
        found += [Slot(None, b, e) for b, e in core.gaps(schedule, now, until)]
    return sorted(found, key=lambda s: (s.starts_at, s.user is not None, s.user or ""))


# --- calendar feeds ---


def user_calendar_token(secret: str, user_id: str) -> str:
    """Return the token that lets a calendar app read one person's on-call feed.

    An HMAC of the user id under the secret key: nothing to store, and changing the secret key
    revokes every such URL at once.
    """
    digest = hmac.new(secret.encode(), _CALENDAR_SALT + user_id.encode(), hashlib.sha256)
    return digest.hexdigest()[:40]


def check_user_calendar_token(secret: str, user_id: str, token: str) -> bool:
    return hmac.compare_digest(user_calendar_token(secret, user_id).encode(), token.encode())


def check_schedule_calendar_token(row: ScheduleRow, token: str) -> bool:
    return bool(row.calendar_token) and hmac.compare_digest(
        row.calendar_token.encode(), token.encode()
    )


def schedule_feed(session: Session, schedule_id: str, now: datetime) -> bytes:
    """Return a schedule's shifts from 30 days back to 180 days ahead as iCalendar."""
    row = schedule_row(session, schedule_id)
    built = schedules.load(session, schedule_id, since=now - FEED_PAST)
    found = core.shifts(built, now - FEED_PAST, now + FEED_AHEAD)
    names = {p.id: p.name for p in people(session, {s.user for s in found}).values()}
    return export_calendar(
        f"On call: {row.name or row.id}",
        found,
        user_names=names,
        uid_suffix=f"{row.id}.schedule.tocsin",
    )


def user_feed(session: Session, user_id: str, now: datetime) -> bytes:
    """Return one person's shifts on every schedule, 30 days back to 180 ahead, as iCalendar.

    Each event is named after the schedule ("On call: Primary"): in a personal calendar the
    person is known and the schedule is the news.
    """
    user = session.get(UserRow, user_id)
    if user is None or user.archived:
        raise NotFound(f"user {user_id!r} not found")
    rows = schedules.live_schedules(session)
    built = schedules.load_many(session, rows, since=now - FEED_PAST)
    mine: list[core.Shift] = []
    for row in rows:
        for shift in core.shifts(built[row.id], now - FEED_PAST, now + FEED_AHEAD):
            if shift.user == user_id:
                # The feed's "user" is the schedule: its name becomes the event summary and
                # the UID stays unique per schedule and start.
                mine.append(core.Shift(row.id, shift.starts_at, shift.ends_at))
    mine.sort(key=lambda s: (s.starts_at, s.user))
    return export_calendar(
        f"On call: {user.name}",
        mine,
        user_names={row.id: row.name or row.id for row in rows},
        uid_suffix=f"{user_id}.user.tocsin",
    )


# --- escalation policies ---


def policies(session: Session) -> list[PolicyDetail]:
    """Return every live escalation policy with its steps and the services using it."""
    rows = list(
        session.scalars(
            select(EscalationPolicyRow)
            .where(EscalationPolicyRow.archived.is_(False))
            .order_by(EscalationPolicyRow.id)
        )
    )
    return _with_steps(session, rows)


def policy_detail(session: Session, policy_id: str) -> PolicyDetail:
    row = session.get(EscalationPolicyRow, policy_id)
    if row is None or row.archived:
        raise NotFound(f"escalation policy {policy_id!r} not found")
    return _with_steps(session, [row])[0]


def _with_steps(session: Session, rows: Sequence[EscalationPolicyRow]) -> list[PolicyDetail]:
    ids = [r.id for r in rows]
    steps: dict[str, list[EscalationStepRow]] = {i: [] for i in ids}
    for step in session.scalars(
        select(EscalationStepRow)
        .where(EscalationStepRow.policy_id.in_(ids))
        .order_by(EscalationStepRow.policy_id, EscalationStepRow.position)
    ):
        steps[step.policy_id].append(step)
    using: dict[str, list[str]] = {i: [] for i in ids}
    for service in session.scalars(
        select(ServiceRow).where(ServiceRow.archived.is_(False)).order_by(ServiceRow.id)
    ):
        named = {service.escalation_policy_id, *(service.severity_policies or {}).values()}
        for policy_id in named:
            if policy_id is not None and policy_id in using:
                using[policy_id].append(service.id)
    return [PolicyDetail(r, steps[r.id], using[r.id]) for r in rows]


def target_names(session: Session, targets: Iterable[str]) -> dict[str, str]:
    """Return a display name for each target such as schedule:primary or user:carol."""
    by_kind: dict[str, set[str]] = {"user": set(), "schedule": set(), "team": set()}
    for target in targets:
        kind, _, key = target.partition(":")
        by_kind.setdefault(kind, set()).add(key)
    tables: list[tuple[str, type[UserRow] | type[ScheduleRow] | type[TeamRow]]] = [
        ("user", UserRow),
        ("schedule", ScheduleRow),
        ("team", TeamRow),
    ]
    names: dict[str, str] = {}
    for kind, table in tables:
        if by_kind[kind]:
            for key, name in session.execute(
                select(table.id, table.name).where(table.id.in_(by_kind[kind]))
            ):
                names[f"{kind}:{key}"] = name or key
    return names


# --- escalations and notifications ---


def list_escalations(
    session: Session,
    *,
    status: Sequence[str],
    subject_type: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[EscalationRow], str | None]:
    """Return one page of escalations, newest first, and the next cursor."""
    for value in status:
        if value not in ESCALATION_STATUSES:
            raise InvalidInput(
                f"unknown escalation status {value!r}", field="status", valid=ESCALATION_STATUSES
            )
    if subject_type is not None and subject_type not in SUBJECT_TYPES:
        raise InvalidInput(
            f"unknown subject type {subject_type!r}", field="subject_type", valid=SUBJECT_TYPES
        )
    query = select(EscalationRow).order_by(EscalationRow.id.desc()).limit(limit + 1)
    if status:
        query = query.where(EscalationRow.status.in_(status))
    if subject_type:
        query = query.where(EscalationRow.subject_type == subject_type)
    if cursor:
        query = query.where(EscalationRow.id < decode_cursor(cursor))
    rows = list(session.scalars(query))
    has_more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if has_more and rows else None)


def subject_notifications(
    session: Session, subject_type: str, subject_id: int
) -> SubjectNotifications:
    """Return a subject's escalation, its notification log and the messages about it."""
    log = list(
        session.scalars(
            select(NotificationLogRow)
            .where(
                NotificationLogRow.subject_type == subject_type,
                NotificationLogRow.subject_id == subject_id,
            )
            .order_by(NotificationLogRow.id)
        )
    )
    return SubjectNotifications(
        escalation=escalations.open_escalation(session, subject_type, subject_id),
        log=log,
        messages=message_log(session, subject_type, subject_id),
    )


def mask_destination(channel: str, destination: str) -> str:
    """Show where a message went without handing out the address: a***@example.test.

    Webhook URLs keep only scheme and host; their paths often carry a secret.
    """
    if channel == "email" or ("@" in destination and "://" not in destination):
        local, _, domain = destination.rpartition("@")
        return f"{local[:1]}***@{domain}" if local else "***"
    if "://" in destination:
        parts = urlsplit(destination)
        return f"{parts.scheme}://{parts.hostname or '?'}/***"
    return f"{destination[:1]}***" if destination else ""
