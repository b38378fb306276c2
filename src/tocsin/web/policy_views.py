"""What the escalation policy pages show: steps in time order, and who each target (a
schedule, a team, a user) reaches right now."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core import escalation as escalation_core
from tocsin.core.durations import format_duration
from tocsin.core.errors import DomainError
from tocsin.services import oncall_queries as q
from tocsin.services import schedules
from tocsin.storage.tables import ServiceRow, SeverityRow, TeamMemberRow


@dataclass(frozen=True, slots=True)
class TargetView:
    """A step's target: a schedule (with who is on call now), a team or one user."""

    target: str
    kind: str
    key: str
    name: str
    href: str
    now: list[q.Person] | None

    @property
    def reaches_nobody(self) -> bool:
        return self.now is not None and not self.now


@dataclass(frozen=True, slots=True)
class StepView:
    position: int
    after: timedelta
    targets: list[TargetView]
    round_robin: bool

    @property
    def at(self) -> str:
        """Return 'at 0 min', 'at 15 min', 'at 1h30m'."""
        minutes = int(self.after.total_seconds() // 60)
        if self.after.total_seconds() % 60 == 0 and minutes < 120:
            return f"at {minutes} min"
        return f"at {format_duration(self.after)}"


@dataclass(frozen=True, slots=True)
class PolicyView:
    id: str
    name: str
    description: str
    steps: list[StepView]
    repeat: int
    cycle: str
    ack_timeout: str
    sla_targets: list[TargetView]
    services: list[tuple[str, str]]


class _Resolver:
    """Who a target reaches at one instant; schedules and teams read once per page."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.on_call: dict[str, tuple[str, ...] | None] = {}
        self.teams: dict[str, tuple[str, ...]] = {}

    def schedule(self, schedule_id: str) -> tuple[str, ...] | None:
        if schedule_id not in self.on_call:
            try:
                self.on_call[schedule_id] = schedules.on_call(self.session, schedule_id, self.now)
            except (DomainError, ValueError):
                # Archived, missing or unreadable: the step reaches nobody through it.
                self.on_call[schedule_id] = None
        return self.on_call[schedule_id]

    def team(self, team_id: str) -> tuple[str, ...]:
        if team_id not in self.teams:
            self.teams[team_id] = tuple(
                self.session.scalars(
                    select(TeamMemberRow.user_id)
                    .where(TeamMemberRow.team_id == team_id)
                    .order_by(TeamMemberRow.position)
                )
            )
        return self.teams[team_id]


def _targets(
    targets: Iterable[str], names: dict[str, str], resolve: _Resolver
) -> list[tuple[str, str, str, str, str, tuple[str, ...] | None]]:
    out = []
    for target in targets:
        kind, _, key = target.partition(":")
        users: tuple[str, ...] | None = None
        href = ""
        if kind == "schedule":
            users = resolve.schedule(key) or ()
            href = f"/schedules/{key}"
        elif kind == "team":
            users = resolve.team(key)
        out.append((target, kind, key, names.get(target, key), href, users))
    return out


def policy_views(
    session: Session, details: Sequence[q.PolicyDetail], now: datetime
) -> list[PolicyView]:
    """Return policies with their steps in time order and who each target reaches now."""
    every = [t for d in details for s in d.steps for t in s.targets]
    every += [t for d in details for t in d.row.sla_notify or []]
    names = q.target_names(session, every)
    resolve = _Resolver(session, now)
    raw = {
        d.row.id: (
            [_targets(s.targets, names, resolve) for s in d.steps],
            _targets(d.row.sla_notify or [], names, resolve),
        )
        for d in details
    }
    user_ids = {
        key if kind == "user" else u
        for steps, sla in raw.values()
        for items in (*steps, sla)
        for _, kind, key, _, _, users in items
        for u in ((key,) if kind == "user" else users or ())
    }
    people = q.people(session, user_ids)
    rows = session.execute(select(ServiceRow.id, ServiceRow.name)).all()
    service_names: dict[str, str] = {row.id: row.name for row in rows}

    def views(
        items: list[tuple[str, str, str, str, str, tuple[str, ...] | None]],
    ) -> list[TargetView]:
        return [
            TargetView(
                target=target,
                kind=kind,
                key=key,
                name=people[key].name if kind == "user" and key in people else name,
                href=href,
                now=None if users is None else [q.person_of(people, u) for u in users],
            )
            for target, kind, key, name, href, users in items
        ]

    out = []
    for d in details:
        steps, sla = raw[d.row.id]
        step_views = [
            StepView(s.position, timedelta(seconds=s.after_s), views(targets), s.round_robin)
            for s, targets in zip(d.steps, steps, strict=True)
        ]
        cycle = ""
        if step_views and d.row.repeat:
            # In position order, as the engine walks them.
            policy = escalation_core.Policy(
                d.row.id, tuple(escalation_core.Step(s.after, ()) for s in step_views)
            )
            cycle = format_duration(policy.cycle_length)
        step_views.sort(key=lambda s: (s.after, s.position))
        out.append(
            PolicyView(
                id=d.row.id,
                name=d.row.name or d.row.id,
                description=d.row.description,
                steps=step_views,
                repeat=d.row.repeat,
                cycle=cycle,
                ack_timeout=(
                    format_duration(timedelta(seconds=d.row.ack_timeout_s))
                    if d.row.ack_timeout_s
                    else ""
                ),
                sla_targets=views(sla),
                services=[(s, service_names.get(s) or s) for s in d.services],
            )
        )
    return out


def respond_within(session: Session) -> list[tuple[str, str]]:
    """Return each severity's respond-within target (the SLA deadline of an escalation)."""
    rows = session.scalars(
        select(SeverityRow)
        .where(SeverityRow.archived.is_(False), SeverityRow.respond_within_s.is_not(None))
        .order_by(SeverityRow.position)
    )
    return [(r.name, format_duration(timedelta(seconds=r.respond_within_s or 0))) for r in rows]
