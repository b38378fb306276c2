"""The schedules module: notices handoffs, so "who is on call" is a row away and every
change of the on-call set is known (and logged) once, at the moment it happens."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.oncall import schedule as core
from tocsin.services import schedules
from tocsin.storage.oncall_tables import ScheduleOnCallRow

log = logging.getLogger("tocsin.engine.schedules")


class ScheduleModule:
    """Keep schedule_on_call current and sleep until the next handoff of any schedule."""

    name = "schedules"
    # Paging evaluates schedules itself; this table is informational, so the module keeps to
    # its deadlines (the next handoff, or MAX_SLEEP after a change) instead of every wake-up.
    on_work = False
    version = 1

    def update(self, session: Session, now: datetime) -> datetime | None:
        rows = schedules.live_schedules(session)
        known = {r.schedule_id: r for r in session.scalars(select(ScheduleOnCallRow))}
        built = schedules.load_many(session, rows, since=now)
        earliest: datetime | None = None
        for row in rows:
            state = known.get(row.id)
            try:
                users = list(core.on_call_at(built[row.id], now))
                upcoming = core.next_change(built[row.id], now)
            except Exception:
                log.exception("schedule %s cannot be evaluated", row.id)
                continue
            if state is None:
                state = ScheduleOnCallRow(schedule_id=row.id, users=users, since=now)
                session.add(state)
            elif list(state.users) != users:
                log.info("on call for %s: %s → %s", row.id, state.users, users)
                state.users, state.since = users, now
            state.next_change_at = upcoming
            if upcoming is not None and (earliest is None or upcoming < earliest):
                earliest = upcoming
        return earliest
