"""The update-cadence module: for open incidents whose severity sets `update_every`, remind the
commander when a stakeholder update is due and tell the next escalation step when it is
overdue, each once per due time.

State lives in rows: a reminder row per (incident, due time, stage) is written with the
messages it sends, so a crash before commit repeats the whole step and one after commit
repeats nothing. A new update moves the due time on, and the cycle starts again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tocsin.core import communications as core
from tocsin.core.actors import Actor
from tocsin.core.incidents import OPEN_STATUSES
from tocsin.services import outbox, timeline
from tocsin.services.comm_context import IncidentFacts, incident_facts, people
from tocsin.services.update_reminders import (
    DUE,
    OVERDUE,
    overdue_audience,
    reminder_messages,
)
from tocsin.storage.comm_tables import StakeholderUpdateRow, UpdateReminderRow
from tocsin.storage.tables import IncidentRow, SeverityRow

# A newly declared incident's first deadline is found within this long (the module keeps to
# its deadlines instead of running on every wake-up; a cadence is minutes long).
RECHECK = timedelta(seconds=60)
ACTOR = Actor(id="tocsin", scopes=frozenset(), source="engine")


class CadenceModule:
    """Remind commanders of due stakeholder updates; tell escalation of overdue ones."""

    name = "update-cadence"
    on_work = False
    version = 1

    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url

    def update(self, session: Session, now: datetime) -> datetime | None:
        open_ = [s.value for s in OPEN_STATUSES]
        rows = session.execute(
            select(IncidentRow.id, IncidentRow.declared_at, SeverityRow.update_every_s)
            .join(SeverityRow, SeverityRow.name == IncidentRow.severity)
            .where(IncidentRow.status.in_(open_), SeverityRow.update_every_s.is_not(None))
            .order_by(IncidentRow.id)
        ).all()
        ids = [row.id for row in rows]
        last = dict(
            session.execute(
                select(StakeholderUpdateRow.incident_id, func.max(StakeholderUpdateRow.created_at))
                .where(
                    StakeholderUpdateRow.incident_id.in_(ids),
                    StakeholderUpdateRow.kind == core.UPDATE,
                )
                .group_by(StakeholderUpdateRow.incident_id)
            ).all()
        )
        done = {
            (r.incident_id, _aware(r.due_at), r.stage)
            for r in session.execute(
                select(
                    UpdateReminderRow.incident_id, UpdateReminderRow.due_at, UpdateReminderRow.stage
                ).where(UpdateReminderRow.incident_id.in_(ids))
            )
        }
        earliest = now + RECHECK
        for row in rows:
            deadlines = core.cadence(
                timedelta(seconds=row.update_every_s), row.declared_at, _aware(last.get(row.id))
            )
            if deadlines is None:
                continue
            step = core.cadence_step(
                deadlines,
                now,
                reminded=(row.id, deadlines.due_at, DUE) in done,
                escalated=(row.id, deadlines.due_at, OVERDUE) in done,
            )
            if step.remind or step.escalate:
                facts = incident_facts(session, row.id, base_url=self.base_url)
                if step.remind:
                    self._tell(session, facts, DUE, deadlines, now)
                if step.escalate:
                    self._tell(session, facts, OVERDUE, deadlines, now)
            if step.next_at is not None and step.next_at < earliest:
                earliest = step.next_at
        return earliest

    def _tell(
        self,
        session: Session,
        facts: IncidentFacts,
        stage: str,
        deadlines: core.Cadence,
        now: datetime,
    ) -> None:
        if stage == DUE:
            commander = facts.roles.get("commander")
            users = [commander] if commander else []
            why = f"reminded {facts.name_of(commander)}" if commander else "no commander to remind"
        else:
            users, who = overdue_audience(session, facts, now)
            facts.people.update(people(session, users))
            names = ", ".join(facts.name_of(u) for u in users) or "nobody"
            why = f"told {names} ({who})"
        messages = reminder_messages(
            session, facts, users, stage=stage, due_at=deadlines.due_at,
            last=deadlines.last_update_at, now=now,
        )  # fmt: skip
        outbox.enqueue_many(session, messages)
        every = core.humanize(facts.update_every)
        text = (
            f"Stakeholder update due (every {every}); {why}"
            if stage == DUE
            else f"Stakeholder update overdue (due {deadlines.due_at:%H:%M} UTC); {why}"
        )
        session.add(
            UpdateReminderRow(
                incident_id=facts.incident.id, due_at=deadlines.due_at, stage=stage, at=now,
                notified=list(users), text=text,
            )
        )  # fmt: skip
        kind = "update_due" if stage == DUE else "update_overdue"
        timeline.record(
            session, facts.incident.id, ACTOR, now, kind, text,
            {"due_at": deadlines.due_at.isoformat(), "notified": list(users),
             "messages": len(messages), "last_update_at": deadlines.last_update_at.isoformat()},
        )  # fmt: skip


def _aware(value: datetime | str | None) -> datetime | None:
    # Aggregates over a TypeDecorator column come back raw on SQLite (a string, naive).
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
