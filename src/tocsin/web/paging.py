"""The "Paging" panel of the incident and alert group pages: the escalation's state, what the
engine did (the notification log) and the messages sent, with destinations masked.

Kept apart from oncall.py so pages.py and alerts.py can import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core import escalation as core
from tocsin.services import oncall_queries as q
from tocsin.storage.oncall_tables import (
    EscalationPolicyRow,
    EscalationRow,
    EscalationStepRow,
    NotificationLogRow,
    OutboxRow,
)

# A long-running incident can collect thousands of log rows; the panel shows the newest.
LOG_LIMIT = 200
MESSAGE_LIMIT = 100
LOG_KINDS = {
    "escalation_started": "Started",
    "escalation_acknowledged": "Acknowledged",
    "escalation_resolved": "Stopped",
    "escalation_handed_over": "Handed over",
    "escalation_exhausted": "Exhausted",
    "escalation_failed": "Failed",
    "step_fired": "Step fired",
    "sla_breached": "SLA breached",
    "ack_timed_out": "Ack timed out",
    "not_notified": "Not notified",
    "notification_queued": "Queued",
    "message_sent": "Sent",
    "message_retry": "Retrying",
    "message_failed": "Failed",
}


@dataclass(frozen=True, slots=True)
class EscalationView:
    """Where an escalation stands, phrased for the panel."""

    id: int
    status: str
    urgency: str
    policy_id: str
    policy_name: str
    steps: int
    passes: int
    step: int
    cycle: int
    next_step_at: datetime | None
    next_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    sla_due_at: datetime | None
    sla_breached_at: datetime | None
    resolved_at: datetime | None
    created_at: datetime

    @property
    def exhausted(self) -> bool:
        """Return True when every step of every pass has fired."""
        return self.status == "active" and self.next_step_at is None

    @property
    def ack_runs_out_at(self) -> datetime | None:
        """Return when an acknowledgement restarts paging (policies with an ack timeout)."""
        return self.next_at if self.status == "acknowledged" else None


@dataclass(frozen=True, slots=True)
class LogView:
    at: datetime
    kind: str
    label: str
    text: str
    user: str


@dataclass(frozen=True, slots=True)
class MessageView:
    id: int
    kind: str
    channel: str
    destination: str
    user: str
    status: str
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class PagingView:
    """Everything the panel shows about one incident or alert group."""

    escalation: EscalationView | None
    log: list[LogView]
    log_total: int
    messages: list[MessageView]
    messages_total: int
    # An alert group whose paging moved to the incident it was linked to.
    handed_to: int | None = None


def paging_panel(
    session: Session, subject_type: str, subject_id: int, *, handed_to: int | None = None
) -> PagingView:
    """Return the paging panel of an incident or alert group."""
    found = q.subject_notifications(session, subject_type, subject_id)
    masks = {
        m.id: (m.destination, q.mask_destination(m.channel, m.destination)) for m in found.messages
    }
    users = {r.user_id for r in found.log if r.user_id} | {
        m.user_id for m in found.messages if m.user_id
    }
    names = {p.id: p.name for p in q.people(session, users).values()}
    log = [_log_view(r, masks, names) for r in found.log[-LOG_LIMIT:]]
    messages = [_message_view(m, masks, names) for m in found.messages[-MESSAGE_LIMIT:]]
    log.reverse()  # newest first: the latest attempt is what a responder looks for
    messages.reverse()
    escalation = _escalation_view(session, found.escalation) if found.escalation else None
    # Only a group that was paging can have handed its paging over.
    started = any(r.kind == "escalation_started" for r in found.log)
    moved = handed_to if escalation is None and started else None
    return PagingView(escalation, log, len(found.log), messages, len(found.messages), moved)


def _masked(text: str, masks: Iterable[tuple[str, str]]) -> str:
    for full, shown in masks:
        if full:
            text = text.replace(full, shown)
    return text


def _log_view(
    row: NotificationLogRow, masks: dict[int, tuple[str, str]], names: dict[str, str]
) -> LogView:
    # Only the message's own address is known to be in its log text; the others are masked
    # too, as a log line may quote a neighbour's error.
    text = _masked(row.text, masks.values())
    return LogView(
        at=row.at,
        kind=row.kind,
        label=LOG_KINDS.get(row.kind, row.kind.replace("_", " ").capitalize()),
        text=text,
        user=names.get(row.user_id, row.user_id) if row.user_id else "",
    )


def _message_view(
    row: OutboxRow, masks: dict[int, tuple[str, str]], names: dict[str, str]
) -> MessageView:
    return MessageView(
        id=row.id,
        kind=row.kind,
        channel=row.channel,
        destination=masks[row.id][1],
        user=names.get(row.user_id, row.user_id) if row.user_id else "",
        status=row.status,
        attempts=row.attempts,
        last_error=_masked(row.last_error or "", masks.values()),
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


def _escalation_view(session: Session, row: EscalationRow) -> EscalationView:
    policy = session.get(EscalationPolicyRow, row.policy_id)
    steps = list(
        session.scalars(
            select(EscalationStepRow)
            .where(EscalationStepRow.policy_id == row.policy_id)
            .order_by(EscalationStepRow.position)
        )
    )
    repeat = policy.repeat if policy is not None else 0
    next_step_at = None
    if steps and row.status == "active":
        # The same arithmetic as the engine: next_at may be the SLA deadline instead.
        rules = core.Policy(
            row.policy_id,
            tuple(core.Step(timedelta(seconds=s.after_s), tuple(s.targets)) for s in steps),
            repeat,
        )
        state = core.State("active", row.run_started_at, row.run, row.cycle, row.step)
        next_step_at = core.step_due(rules, state)
    return EscalationView(
        id=row.id,
        status=row.status,
        urgency=row.urgency,
        policy_id=row.policy_id,
        policy_name=(policy.name or policy.id) if policy is not None else row.policy_id,
        steps=len(steps),
        passes=repeat + 1,
        step=row.step,
        cycle=row.cycle,
        next_step_at=next_step_at,
        next_at=row.next_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        sla_due_at=row.sla_due_at,
        sla_breached_at=row.sla_breached_at,
        resolved_at=row.resolved_at,
        created_at=row.created_at,
    )
