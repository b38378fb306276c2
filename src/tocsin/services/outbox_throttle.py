"""Throttles in the outbox: which claimed messages go out now, which wait, which are bundled.

Called in the sender's claim transaction. The delivery times of each throttled destination
are kept in a delivery_throttles row that is locked (FOR UPDATE on PostgreSQL, in a fixed
order so two senders never deadlock) while deciding, and the slot is taken right there: two
senders on two instances never both send the one SMS a minute allows. A delivery that then
fails gives its slot back (free_slot), so a retry is not held back by its own failure.

Messages that must wait are handed back (pending, unclaimed, the attempt not counted) with
next_attempt_at at the moment the window allows; when several are due for one destination at
once they become one delivery: the oldest carries them all, the others are recorded as sent
"bundled into #id" once it is delivered (outbox.mark_sent_many). Pure decisions are in
core/throttle.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tocsin.core import throttle as core
from tocsin.core.throttle import Throttle
from tocsin.services import outbox
from tocsin.storage.lifecycle_tables import DeliveryThrottleRow
from tocsin.storage.oncall_tables import ChannelSettingsRow, OutboxRow

Key = tuple[str, str]  # (channel, destination)


@dataclass(slots=True)
class Delivery:
    """One send: a message, the messages bundled into it, and the throttle slot it took."""

    row: OutboxRow
    members: list[OutboxRow] = field(default_factory=list)
    reserved_at: datetime | None = None


def channel_throttles(session: Session) -> dict[str, Throttle]:
    """Return each throttled channel's throttle: the defaults and the stored `throttle`s."""
    rows = session.execute(
        select(ChannelSettingsRow.name, ChannelSettingsRow.settings).where(
            ChannelSettingsRow.archived.is_(False)
        )
    ).all()
    return core.channel_throttles({name: dict(settings or {}) for name, settings in rows})


def plan(
    session: Session, rows: Sequence[OutboxRow], now: datetime, throttles: Mapping[str, Throttle]
) -> list[Delivery]:
    """Decide what of a claimed batch is sent now; hand back what must wait."""
    out: list[Delivery] = []
    groups: dict[Key, list[OutboxRow]] = {}
    for row in rows:
        if row.channel in throttles:
            groups.setdefault((row.channel, row.destination), []).append(row)
        else:
            out.append(Delivery(row))
    if not groups:
        return out
    windows = _lock(session, sorted(groups), now)
    for key in sorted(groups):
        throttle, window = throttles[key[0]], windows[key]
        due = sorted(groups[key], key=lambda r: r.id)
        sent = [_time(t) for t in window.sent or []]
        decision = core.decide(sent, throttle, now, len(due))
        if decision.deliveries == 0:
            assert decision.wait_until is not None
            for row in due:
                outbox.hold(session, row, now, until=decision.wait_until, why=str(throttle))
            continue
        kept = core.record(sent, throttle, now, decision.deliveries)
        window.sent = [t.isoformat() for t in kept]
        window.updated_at = now
        if decision.bundle:
            out.append(Delivery(due[0], due[1:], reserved_at=now))
        else:
            out.extend(Delivery(row, reserved_at=now) for row in due)
    session.flush()
    return out


def free_slot(session: Session, channel: str, destination: str, at: datetime) -> None:
    """Give back the slot a delivery took at `at` (it failed, so it did not reach anyone)."""
    window = _lock(session, [(channel, destination)], at).get((channel, destination))
    if window is None:
        return
    sent = list(window.sent or [])
    stamp = at.isoformat()
    if stamp in sent:
        sent.remove(stamp)
        window.sent = sent


def _lock(session: Session, keys: Sequence[Key], now: datetime) -> dict[Key, DeliveryThrottleRow]:
    """Create the destinations' rows if missing and lock them, in key order."""
    is_pg = session.get_bind().dialect.name == "postgresql"
    dialect = postgresql if is_pg else sqlite
    session.execute(
        dialect.insert(DeliveryThrottleRow)
        .values([{"channel": c, "destination": d, "sent": [], "updated_at": now} for c, d in keys])
        .on_conflict_do_nothing(index_elements=["channel", "destination"])
    )
    query = (
        select(DeliveryThrottleRow)
        .where(tuple_(DeliveryThrottleRow.channel, DeliveryThrottleRow.destination).in_(keys))
        .order_by(DeliveryThrottleRow.channel, DeliveryThrottleRow.destination)
        .execution_options(populate_existing=True)
    )
    if is_pg:
        query = query.with_for_update()
    return {(r.channel, r.destination): r for r in session.scalars(query)}


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
