"""Lifecycle events: what happened to an incident or an alert group, as others are told of it.

A service writes an event in the same transaction as the change it describes; the engine's
lifecycle module later hands each event to the reactors (outgoing webhooks, stakeholder
communication), which turn it into outbox messages. Writing the event with the change means no
change is ever left untold, and telling happens off the request path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

INCIDENT = "incident"
ALERT_GROUP = "alert_group"

INCIDENT_DECLARED = "incident.declared"
INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
INCIDENT_STATUS_CHANGED = "incident.status_changed"
INCIDENT_SEVERITY_CHANGED = "incident.severity_changed"
INCIDENT_RESOLVED = "incident.resolved"
INCIDENT_UPDATE_POSTED = "incident.update_posted"
ALERT_GROUP_TRIGGERED = "alert_group.triggered"
ALERT_GROUP_ACKNOWLEDGED = "alert_group.acknowledged"
ALERT_GROUP_RESOLVED = "alert_group.resolved"
STATUS_PAGE_UPDATED = "status_page.updated"

KINDS = (
    INCIDENT_DECLARED,
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_STATUS_CHANGED,
    INCIDENT_SEVERITY_CHANGED,
    INCIDENT_RESOLVED,
    INCIDENT_UPDATE_POSTED,
    ALERT_GROUP_TRIGGERED,
    ALERT_GROUP_ACKNOWLEDGED,
    ALERT_GROUP_RESOLVED,
    STATUS_PAGE_UPDATED,
)


@dataclass(frozen=True)
class LifecycleEvent:
    """One stored event. `id` orders events of one subject; `data` is kind-specific JSON."""

    id: int
    at: datetime
    kind: str
    subject_type: str
    subject_id: int
    actor: str
    data: Mapping[str, Any] = field(default_factory=dict)


# Subscriptions (outgoing webhooks) choose events by kind, by subject ("incident.*") or all.
ALL_EVENTS = "*"
SUBJECT_PATTERNS = ("incident.*", "alert_group.*", "status_page.*")
PATTERNS = (ALL_EVENTS, *SUBJECT_PATTERNS, *KINDS)


def kind_matches(pattern: str, kind: str) -> bool:
    """Return whether an event kind matches a pattern: a kind, "incident.*" or "*"."""
    if pattern == ALL_EVENTS:
        return True
    if pattern.endswith(".*"):
        return kind.startswith(pattern[:-1])
    return pattern == kind


def subject_path(subject_type: str, subject_id: int) -> str:
    """Return the web path of an event's subject (/incidents/42, /alerts/7)."""
    return f"/incidents/{subject_id}" if subject_type == INCIDENT else f"/alerts/{subject_id}"
