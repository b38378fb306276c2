"""The data of the incident page's "Stakeholder update" panel (kept apart from the routes in
web/communications.py so pages.py can import it without a cycle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from tocsin.services import communications
from tocsin.storage.comm_tables import StakeholderUpdateRow

RECENT = 5


@dataclass(frozen=True, slots=True)
class CommPanel:
    """What the panel shows: the cadence, the audiences and the latest messages sent."""

    state: communications.CommunicationState
    recent: list[StakeholderUpdateRow]
    sent_total: int


def comm_panel(session: Session, incident_id: int, now: datetime) -> CommPanel:
    """Return the stakeholder panel of an incident."""
    updates = communications.list_updates(session, incident_id)
    state = communications.communication_state(session, incident_id, now)
    return CommPanel(state, list(reversed(updates[-RECENT:])), len(updates))
