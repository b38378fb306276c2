"""Engine modules of the on-call part: escalations fire their steps; pages walk people's
notification rules into the outbox.

Both are set-based and keep their state in rows: a due escalation (next_at <= now) is read,
advanced by the pure core, and written back with the pages it creates, in one transaction.
A crash before commit loses nothing (the rows are still due); a crash after commit repeats
nothing (the rows are no longer due, and pages and outbox keys are unique).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tocsin.core import escalation as core
from tocsin.core.oncall import schedule as schedule_core
from tocsin.services import escalations, outbox, schedules
from tocsin.services.page_messages import LinkSettings, page_message
from tocsin.storage.oncall_tables import (
    ContactMethodRow,
    EscalationPolicyRow,
    EscalationRow,
    EscalationStepRow,
    NotificationLogRow,
    NotificationRuleRow,
    PageRow,
)
from tocsin.storage.tables import AlertGroupRow, IncidentRow, TeamMemberRow

log = logging.getLogger("tocsin.engine.oncall")
BATCH = 500
_OPEN = ("active", "acknowledged")


def _next_due(
    session: Session, column: Any, status_column: Any, statuses: Sequence[str]
) -> datetime | None:
    # One min() per status: with an equality on the status, each is a one-row walk of the
    # (status, next_at) index; min() over `status IN (...)` reads every row of those
    # statuses (tens of thousands of acknowledged escalations) on each engine cycle.
    parts = [select(func.min(column).label("due")).where(status_column == s) for s in statuses]
    query = parts[0] if len(parts) == 1 else select(func.min(union_all(*parts).subquery().c.due))
    found: datetime | None = session.scalar(query)
    return found


class EscalationModule:
    """Fire due escalation steps, SLA breaches and ack timeouts."""

    name = "escalations"
    on_work = True
    version = 1

    def update(self, session: Session, now: datetime) -> datetime | None:
        rows = list(
            session.scalars(
                select(EscalationRow)
                .where(EscalationRow.status.in_(_OPEN), EscalationRow.next_at <= now)
                .order_by(EscalationRow.next_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if rows:
            _Firing(session, now).run(rows)
        if len(rows) == BATCH:
            return now
        return _next_due(session, EscalationRow.next_at, EscalationRow.status, _OPEN)


class _Firing:
    """One pass over due escalations, with lookups shared across them."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.policies: dict[str, tuple[core.Policy, list[EscalationStepRow]]] = {}
        self.schedules: dict[str, schedule_core.Schedule | None] = {}
        self.teams: dict[str, tuple[str, ...]] = {}
        self.pages: list[dict[str, Any]] = []
        self.logs: list[NotificationLogRow] = []

    def run(self, rows: list[EscalationRow]) -> None:
        statuses = self._subject_statuses(rows)
        for row in rows:
            subject_status = statuses.get((row.subject_type, row.subject_id))
            if subject_status in (None, "resolved", "closed", "suppressed"):
                # The subject ended without its hook reaching us (or it was deleted).
                escalations.resolve(
                    self.session, row.subject_type, [row.subject_id], self.now, "tocsin"
                )
                continue
            self._advance(row)
        self._write_pages()
        self.session.add_all(self.logs)

    def _subject_statuses(self, rows: list[EscalationRow]) -> dict[tuple[str, int], str]:
        out: dict[tuple[str, int], str] = {}
        groups = [r.subject_id for r in rows if r.subject_type == escalations.GROUP]
        incidents = [r.subject_id for r in rows if r.subject_type == escalations.INCIDENT]
        if groups:
            query = select(AlertGroupRow.id, AlertGroupRow.status).where(
                AlertGroupRow.id.in_(groups)
            )
            out.update(((escalations.GROUP, i), s) for i, s in self.session.execute(query))
        if incidents:
            query = select(IncidentRow.id, IncidentRow.status).where(IncidentRow.id.in_(incidents))
            out.update(((escalations.INCIDENT, i), s) for i, s in self.session.execute(query))
        return out

    def _policy(self, policy_id: str) -> tuple[core.Policy, list[EscalationStepRow]] | None:
        if policy_id not in self.policies:
            row = self.session.get(EscalationPolicyRow, policy_id)
            steps = list(
                self.session.scalars(
                    select(EscalationStepRow)
                    .where(EscalationStepRow.policy_id == policy_id)
                    .order_by(EscalationStepRow.position)
                )
            )
            if row is None or not steps:
                return None
            policy = core.Policy(
                policy_id,
                tuple(
                    core.Step(timedelta(seconds=s.after_s), tuple(s.targets), s.round_robin)
                    for s in steps
                ),
                row.repeat,
                timedelta(seconds=row.ack_timeout_s) if row.ack_timeout_s else None,
                tuple(row.sla_notify or ()),
            )
            self.policies[policy_id] = (policy, steps)
        return self.policies[policy_id]

    def _advance(self, row: EscalationRow) -> None:
        found = self._policy(row.policy_id)
        if found is None:
            self._log(row, "escalation_failed", f"policy {row.policy_id!r} has no steps")
            row.next_at = None
            return
        policy, step_rows = found
        state = core.State(
            status=row.status,  # type: ignore[arg-type]
            run_started_at=row.run_started_at,
            run=row.run,
            cycle=row.cycle,
            step=row.step,
            acknowledged_at=row.acknowledged_at,
            sla_due_at=row.sla_due_at,
            sla_breached_at=row.sla_breached_at,
        )
        decision = core.advance(policy, state, self.now)
        if decision.ack_timed_out:
            self._log(row, "ack_timed_out", "Acknowledgement timed out; escalation restarts")
        if decision.sla_breached:
            self._log(row, "sla_breached", "Respond-within target passed unacknowledged")
            if policy.sla_targets:
                users = self._expand(policy.sla_targets, decision.state.sla_breached_at or self.now)
                self._page(row, users, decision.state.run, decision.state.cycle, -1,
                           decision.state.sla_breached_at or self.now)  # fmt: skip
        for fire in decision.fires:
            users = self._expand(fire.targets, fire.due_at)
            if fire.round_robin:
                step_row = step_rows[fire.step]
                users, step_row.rr_next = core.round_robin_pick(users, step_row.rr_next)
            self._log(
                row,
                "step_fired",
                f"Step {fire.step + 1} (pass {fire.cycle + 1}): "
                + (", ".join(users) if users else "nobody on call to page"),
                {"step": fire.step, "cycle": fire.cycle, "run": fire.run, "users": list(users),
                 "targets": list(fire.targets), "due_at": fire.due_at.isoformat()},
            )  # fmt: skip
            self._page(row, users, fire.run, fire.cycle, fire.step, fire.due_at)
        if decision.exhausted:
            self._log(row, "escalation_exhausted", "Every step fired and nobody acknowledged")
        new = decision.state
        row.status = new.status
        row.run, row.cycle, row.step = new.run, new.cycle, new.step
        row.run_started_at = new.run_started_at
        row.acknowledged_at = new.acknowledged_at
        row.sla_breached_at = new.sla_breached_at
        row.next_at = core.next_deadline(policy, new)

    def _expand(self, targets: Sequence[str], at: datetime) -> tuple[str, ...]:
        return core.expand_targets(targets, lambda s: self._on_call(s, at), self._team)

    def _on_call(self, schedule_id: str, at: datetime) -> Sequence[str]:
        if schedule_id not in self.schedules:
            try:
                self.schedules[schedule_id] = schedules.load(self.session, schedule_id, since=at)
            except Exception:
                log.exception("schedule %s cannot be evaluated", schedule_id)
                self.schedules[schedule_id] = None
        found = self.schedules[schedule_id]
        return schedule_core.on_call_at(found, at) if found is not None else ()

    def _team(self, team_id: str) -> Sequence[str]:
        if team_id not in self.teams:
            self.teams[team_id] = tuple(
                self.session.scalars(
                    select(TeamMemberRow.user_id)
                    .where(TeamMemberRow.team_id == team_id)
                    .order_by(TeamMemberRow.position)
                )
            )
        return self.teams[team_id]

    def _page(
        self,
        row: EscalationRow,
        users: Sequence[str],
        run: int,
        cycle: int,
        step: int,
        at: datetime,
    ) -> None:
        for user in users:
            self.pages.append(
                {
                    "escalation_id": row.id,
                    "user_id": user,
                    "urgency": row.urgency,
                    "run": run,
                    "cycle": cycle,
                    "step": step,
                    "status": "active",
                    "next_rule": 0,
                    # Rules count from when the step was due, so a late engine catches up.
                    "next_at": at,
                    "created_at": at,
                }
            )

    def _write_pages(self) -> None:
        if not self.pages:
            return
        dialect = sqlite if self.session.get_bind().dialect.name == "sqlite" else postgresql
        statement = dialect.insert(PageRow).on_conflict_do_nothing(
            index_elements=["escalation_id", "run", "cycle", "step", "user_id"]
        )
        self.session.execute(statement, self.pages)

    def _log(
        self, row: EscalationRow, kind: str, text: str, detail: dict[str, Any] | None = None
    ) -> None:
        self.logs.append(
            NotificationLogRow(
                at=self.now,
                subject_type=row.subject_type,
                subject_id=row.subject_id,
                escalation_id=row.id,
                kind=kind,
                text=text,
                detail=detail or {},
            )
        )


class NotificationRuleModule:
    """Send each paged person's notification rules, in time, through the outbox."""

    name = "notification-rules"
    on_work = True
    version = 1

    def __init__(self, links: LinkSettings) -> None:
        self.links = links

    def update(self, session: Session, now: datetime) -> datetime | None:
        pages = list(
            session.scalars(
                select(PageRow)
                .where(PageRow.status == "active", PageRow.next_at <= now)
                .order_by(PageRow.next_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if pages:
            self._notify(session, pages, now)
        if len(pages) == BATCH:
            return now
        return _next_due(session, PageRow.next_at, PageRow.status, ("active",))

    def _notify(self, session: Session, pages: list[PageRow], now: datetime) -> None:
        escalation_ids = {p.escalation_id for p in pages}
        found = session.scalars(select(EscalationRow).where(EscalationRow.id.in_(escalation_ids)))
        by_id = {row.id: row for row in found}
        users = {p.user_id for p in pages}
        rules: dict[tuple[str, str], list[core.Rule]] = defaultdict(list)
        query = (
            select(NotificationRuleRow)
            .where(NotificationRuleRow.user_id.in_(users))
            .order_by(NotificationRuleRow.position)
        )
        for rule in session.scalars(query):
            rules[(rule.user_id, rule.urgency)].append(
                core.Rule(timedelta(seconds=rule.after_s), rule.contact_method_id)
            )
        methods = {
            m.id: m
            for m in session.scalars(
                select(ContactMethodRow).where(ContactMethodRow.user_id.in_(users))
            )
        }
        logs: list[NotificationLogRow] = []
        queued: list[tuple[dict[str, Any], NotificationLogRow]] = []
        for page in pages:
            escalation = by_id.get(page.escalation_id)
            if escalation is None or escalation.status != "active":
                page.status, page.next_at = "stopped", None
                continue
            chosen = rules.get((page.user_id, page.urgency)) or rules.get((page.user_id, "high"))
            ordered = sorted(chosen or [], key=lambda r: r.after)
            if not ordered:
                logs.append(_page_log(escalation, page, now, "not_notified",
                                      f"{page.user_id} has no notification rules"))  # fmt: skip
                page.status, page.next_at = "done", None
                continue
            due, next_rule, next_at = core.due_rules(ordered, page.created_at, page.next_rule, now)
            if not due and next_rule < len(ordered):
                # Due before its time: the previous message failed for good and the sender
                # hurried this page on, so the next rule goes out now.
                due, next_rule, next_at = core.due_rules(
                    ordered, page.created_at, next_rule + 1, now
                )
                due.insert(0, next_rule - len(due) - 1)
            for index in due:
                method = methods.get(ordered[index].contact_method)
                logs.append(self._send(escalation, page, index, method, now, queued))
            page.next_rule, page.next_at = next_rule, next_at
            if next_at is None:
                page.status = "done"
        # One INSERT for every message of this pass (not one per message, each flushing the
        # pending page updates first).
        with session.no_autoflush:
            ids = outbox.enqueue_many(session, [message for message, _ in queued])
        for message, entry in queued:
            entry.outbox_id = ids.get(message["key"])
        session.add_all(logs)

    def _send(
        self,
        escalation: EscalationRow,
        page: PageRow,
        index: int,
        method: ContactMethodRow | None,
        now: datetime,
        queued: list[tuple[dict[str, Any], NotificationLogRow]],
    ) -> NotificationLogRow:
        """Build rule `index`'s message for the page into `queued`; return its log entry."""
        if method is None or method.archived or method.verified_at is None:
            why = "missing" if method is None or method.archived else "not verified"
            text = f"rule {index + 1} of {page.user_id}: contact method {why}"
            return _page_log(escalation, page, now, "not_notified", text)
        key = f"page-{page.id}-rule-{index}"
        title, body, payload = page_message(
            self.links, escalation, page, key=key, channel=method.type, now=now
        )
        message = {
            "key": key,
            "kind": "page",
            "channel": method.type,
            "destination": method.target,
            "title": title,
            "body": body,
            "payload": payload,
            "now": now,
            "user_id": page.user_id,
            "contact_method_id": method.id,
            "subject_type": escalation.subject_type,
            "subject_id": escalation.subject_id,
            "escalation_id": escalation.id,
            "page_id": page.id,
        }
        entry = _page_log(escalation, page, now, "notification_queued",
                          f"{page.user_id} via {method.type} ({method.id})")  # fmt: skip
        entry.detail = {**entry.detail, "contact_method": method.id, "rule": index}
        queued.append((message, entry))
        return entry


def _page_log(
    escalation: EscalationRow, page: PageRow, now: datetime, kind: str, text: str
) -> NotificationLogRow:
    return NotificationLogRow(
        at=now,
        subject_type=escalation.subject_type,
        subject_id=escalation.subject_id,
        escalation_id=escalation.id,
        kind=kind,
        user_id=page.user_id,
        text=text,
        detail={"page": page.id, "step": page.step, "cycle": page.cycle},
    )
