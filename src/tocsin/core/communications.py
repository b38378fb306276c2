"""Stakeholder communication as pure decisions: who is told what, which template says it, and
when the next update is due or overdue.

Decisions, written down once:
- A communication rule names severities, optionally services, the audiences it tells and the
  message kinds they get. Every rule that matches an incident adds its audiences; an audience
  named by several rules is told once, in the order of first mention.
- A message template may be narrowed to a severity, a service and an audience type. The most
  specific template that fits wins (the number of narrowing fields it sets); between equally
  specific ones severity counts before service, service before audience type.
- The cadence runs from the last update (or the declaration): the next update is due one
  `update_every` later, and it is overdue half an interval after that (P0 every 30 min: due
  at 30 min, overdue at 45 min), when the next escalation step is told.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

INITIAL = "initial"
UPDATE = "update"
RESOLUTION = "resolution"
MESSAGE_KINDS = (INITIAL, UPDATE, RESOLUTION)

AUDIENCE_TYPES = (
    "email",
    "slack",
    "webhook",
    "teams",
    "mattermost",
    "sms",
    "people",
    "statuspage",
)

# The words a status page and stakeholders use (seed 002): a triggered incident is already
# being investigated as far as anyone outside is concerned.
PUBLIC_STATUS = {
    "triggered": "Investigating",
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
    "closed": "Resolved",
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of `communication`: these severities (and services) tell these audiences."""

    severities: tuple[str, ...]
    audiences: tuple[str, ...]
    messages: tuple[str, ...] = MESSAGE_KINDS
    services: tuple[str, ...] = ()

    def applies(self, severity: str, services: Iterable[str], kind: str) -> bool:
        """Return True when the rule covers an incident of `severity` on `services`."""
        if kind not in self.messages:
            return False
        if severity.casefold() not in {s.casefold() for s in self.severities}:
            return False
        return not self.services or bool(set(self.services) & set(services))


def audiences_for(
    rules: Sequence[Rule], severity: str, services: Iterable[str], kind: str
) -> list[str]:
    """Return the audience ids that get a `kind` message, each once, in order of mention."""
    wanted = list(services)
    out: list[str] = []
    for rule in rules:
        if rule.applies(severity, wanted, kind):
            out.extend(a for a in rule.audiences if a not in out)
    return out


def kinds_for(
    rules: Sequence[Rule], severity: str, services: Iterable[str], audience: str
) -> list[str]:
    """Return the message kinds `audience` gets for an incident, in the usual order."""
    wanted = list(services)
    return [
        kind
        for kind in MESSAGE_KINDS
        if any(
            rule.applies(severity, wanted, kind) and audience in rule.audiences for rule in rules
        )
    ]


@dataclass(frozen=True, slots=True)
class TemplateChoice:
    """Where one title/body pair applies; None fields match anything."""

    key: str
    kind: str
    severity: str | None = None
    service: str | None = None
    audience_type: str | None = None

    def fits(self, kind: str, severity: str, services: Iterable[str], audience_type: str) -> bool:
        """Return True when this template may be used for such a message."""
        if self.kind != kind:
            return False
        if self.severity is not None and self.severity.casefold() != severity.casefold():
            return False
        if self.service is not None and self.service not in set(services):
            return False
        return self.audience_type is None or self.audience_type == audience_type

    def rank(self) -> tuple[int, int, int, int]:
        """Return how specific the template is (higher wins)."""
        severity, service = int(self.severity is not None), int(self.service is not None)
        audience = int(self.audience_type is not None)
        return (severity + service + audience, severity, service, audience)


def pick_template(
    choices: Iterable[TemplateChoice],
    kind: str,
    severity: str,
    services: Iterable[str],
    audience_type: str,
) -> TemplateChoice | None:
    """Return the most specific configured template for a message, or None (use the default)."""
    wanted = list(services)
    fitting = [c for c in choices if c.fits(kind, severity, wanted, audience_type)]
    if not fitting:
        return None
    return max(fitting, key=lambda c: (c.rank(), c.key))


def selector_key(
    kind: str, severity: str | None, service: str | None, audience_type: str | None
) -> str:
    """Return the name of a template entry: its kind and what narrows it, e.g. 'update P1 slack'."""
    parts = [kind]
    for label, value in (("severity", severity), ("service", service), ("audience", audience_type)):
        if value is not None:
            parts.append(f"{label}={value}")
    return " ".join(parts)


# --- cadence ---


@dataclass(frozen=True, slots=True)
class Cadence:
    """When the next stakeholder update is due, and when missing it becomes overdue."""

    last_update_at: datetime
    due_at: datetime
    overdue_at: datetime


def cadence(
    update_every: timedelta | None, declared_at: datetime, last_update_at: datetime | None
) -> Cadence | None:
    """Return the update deadlines of an open incident, or None when its severity sets none."""
    if update_every is None or update_every <= timedelta(0):
        return None
    last = max(declared_at, last_update_at) if last_update_at else declared_at
    due = last + update_every
    return Cadence(last, due, due + overdue_grace(update_every))


def overdue_grace(update_every: timedelta) -> timedelta:
    """Return how long after the due time an update counts as overdue (half an interval)."""
    return update_every / 2


@dataclass(frozen=True, slots=True)
class CadenceStep:
    """What the cadence module should do for one incident now."""

    remind: bool
    escalate: bool
    next_at: datetime | None


def cadence_step(
    deadlines: Cadence, now: datetime, *, reminded: bool, escalated: bool
) -> CadenceStep:
    """Return whether to remind the commander or tell the next escalation step at `now`.

    `reminded` / `escalated` say whether that was already done for this due time; each happens
    once per due time. A late engine that finds both due does both.
    """
    remind = not reminded and deadlines.due_at <= now
    escalate = not escalated and deadlines.overdue_at <= now
    pending = []
    if not reminded and not remind:
        pending.append(deadlines.due_at)
    if not escalated and not escalate:
        pending.append(deadlines.overdue_at)
    return CadenceStep(remind, escalate, min(pending, default=None))


def next_step_index(step: int, cycle: int, run: int, steps: int) -> int | None:
    """Return the escalation step after the one that fired last, or None without steps.

    An escalation row points at the step it fires next; when it has wrapped around (every step
    fired), there is no later step, so the last one, the highest level, is told.
    """
    if steps <= 0:
        return None
    if step == 0 and (cycle > 0 or run > 0):
        return steps - 1
    return min(step, steps - 1)


def humanize(delta: timedelta | None) -> str:
    """Return a span in words: '30 minutes', '1 hour', '4 hours 30 minutes', '2 days'."""
    if delta is None:
        return ""
    seconds = max(0, int(delta.total_seconds()))
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    if not parts:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return " ".join(parts[:2])


def short_span(delta: timedelta) -> str:
    """Return a span as responders write it: '45m', '1h 5m', '2d 3h'."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"
