"""The incident lifecycle: statuses, legal transitions, milestones and references."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from tocsin.core.errors import IllegalTransition


class Status(StrEnum):
    """Where an incident is in its life."""

    TRIGGERED = "triggered"
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATUSES = frozenset(
    {Status.TRIGGERED, Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING}
)

# Work may move back (a fix that did not hold sends monitoring back to investigating) and a
# resolved incident may reopen; closed is final because it means the post-incident work is done.
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.TRIGGERED: (
        Status.INVESTIGATING,
        Status.IDENTIFIED,
        Status.MONITORING,
        Status.RESOLVED,
    ),
    Status.INVESTIGATING: (Status.IDENTIFIED, Status.MONITORING, Status.RESOLVED),
    Status.IDENTIFIED: (Status.INVESTIGATING, Status.MONITORING, Status.RESOLVED),
    Status.MONITORING: (Status.INVESTIGATING, Status.IDENTIFIED, Status.RESOLVED),
    Status.RESOLVED: (Status.INVESTIGATING, Status.CLOSED),
    Status.CLOSED: (),
}


class Milestone(StrEnum):
    """Timestamps that metrics (time to acknowledge, mitigate, resolve) are computed from."""

    DETECTED = "detected"
    DECLARED = "declared"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Milestones:
    """The milestone timestamps of one incident."""

    detected: datetime | None = None
    declared: datetime | None = None
    acknowledged: datetime | None = None
    mitigated: datetime | None = None
    resolved: datetime | None = None
    closed: datetime | None = None


def allowed_next(current: Status) -> tuple[Status, ...]:
    """Return the states an incident in `current` may move to."""
    return TRANSITIONS[current]


def check_transition(current: Status, requested: Status) -> None:
    """Raise IllegalTransition unless current -> requested is allowed (same state is a no-op)."""
    if requested == current:
        return
    if requested not in TRANSITIONS[current]:
        raise IllegalTransition(
            current.value, requested.value, [s.value for s in TRANSITIONS[current]]
        )


def milestones_after_transition(
    current: Milestones, new_status: Status, now: datetime
) -> Milestones:
    """Return the milestones once the incident has moved to `new_status` at `now`.

    Leaving `triggered` by any path means a human has the incident, so it counts as acknowledged.
    Resolving without passing `monitoring` still mitigates (a resolved incident has no impact).
    Reopening clears resolved/closed so the next resolution is measured afresh.
    """
    acknowledged = current.acknowledged
    mitigated = current.mitigated
    resolved = current.resolved
    closed = current.closed
    if new_status != Status.TRIGGERED and acknowledged is None:
        acknowledged = now
    if new_status in (Status.MONITORING, Status.RESOLVED) and mitigated is None:
        mitigated = now
    if new_status == Status.RESOLVED:
        resolved = now
        closed = None
    elif new_status == Status.CLOSED:
        closed = now
        resolved = resolved or now
    elif new_status in OPEN_STATUSES:
        resolved = None
        closed = None
    return Milestones(
        detected=current.detected,
        declared=current.declared,
        acknowledged=acknowledged,
        mitigated=mitigated,
        resolved=resolved,
        closed=closed,
    )


def incident_reference(number: int) -> str:
    """Return the human reference of incident number `number`, e.g. INC-42."""
    return f"INC-{number}"


def incident_slug(day: date, sequence: int) -> str:
    """Return the channel-style slug from the runbooks: incident-YYYY-MM-DD-NNN."""
    return f"incident-{day.isoformat()}-{sequence:03d}"


def parse_reference(text: str) -> int | None:
    """Return the incident number in 'INC-42' or '42', or None if it is neither."""
    cleaned = text.strip().upper().removeprefix("INC-")
    # isascii: str.isdigit() also accepts digits such as "²" that int() rejects.
    return int(cleaned) if cleaned.isascii() and cleaned.isdigit() else None
