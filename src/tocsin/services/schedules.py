"""Schedules as the core evaluates them, read from their rows; overrides; who is on call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.errors import InvalidInput, NotFound
from tocsin.core.oncall import schedule as core
from tocsin.core.oncall.ical import parse_calendar
from tocsin.storage.oncall_tables import ScheduleLayerRow, ScheduleOverrideRow, ScheduleRow
from tocsin.storage.tables import UserRow

# Overrides further back than this cannot change who is on call now or later.
OVERRIDE_LOOKBACK = timedelta(days=400)


def user_resolver(session: Session) -> Callable[[str], str | None]:
    """Return a function mapping an email, id or name (from a calendar) to a user id."""
    users = session.execute(select(UserRow.id, UserRow.email, UserRow.name)).all()
    index: dict[str, str] = {}
    for user_id, email, name in users:
        for key in (user_id, email, name):
            if key:
                index.setdefault(key.casefold(), user_id)

    def resolve(text: str) -> str | None:
        return index.get(text.strip().removeprefix("mailto:").casefold())

    return resolve


def build(
    session: Session,
    row: ScheduleRow,
    layers: Sequence[ScheduleLayerRow],
    overrides: Sequence[ScheduleOverrideRow],
) -> core.Schedule:
    """Return the core schedule of a row, its layers and overrides."""
    built: list[core.Layer] = []
    resolver = None
    for layer in sorted(layers, key=lambda item: item.position):
        restrictions = tuple(core.parse_restriction(r) for r in layer.restrict or [])
        if layer.calendar:
            resolver = resolver or user_resolver(session)
            calendar = parse_calendar(layer.calendar, resolver, default_zone=row.time_zone)
            built.append(core.Layer((), None, restrictions, calendar))
        elif layer.rotation:
            rotation = core.parse_rotation(layer.rotation)
            built.append(core.Layer(tuple(layer.users or ()), rotation, restrictions))
    return core.Schedule(
        row.id,
        row.time_zone,
        tuple(built),
        tuple(
            core.Override(o.starts_at, o.ends_at, o.kind, o.user_id, o.replaces_user_id)  # type: ignore[arg-type]
            for o in sorted(overrides, key=lambda item: (item.starts_at, item.id))
        ),
    )


def load(session: Session, schedule_id: str, *, since: datetime | None = None) -> core.Schedule:
    """Return a live schedule by id (overrides ending after `since`); NotFound otherwise."""
    row = session.get(ScheduleRow, schedule_id)
    if row is None or row.archived:
        raise NotFound(f"schedule {schedule_id!r} not found")
    return load_many(session, [row], since=since)[row.id]


def load_many(
    session: Session, rows: Sequence[ScheduleRow], *, since: datetime | None = None
) -> dict[str, core.Schedule]:
    """Return the core schedules of these rows, with two queries for all of them."""
    ids = [row.id for row in rows]
    layers: dict[str, list[ScheduleLayerRow]] = {i: [] for i in ids}
    for layer in session.scalars(
        select(ScheduleLayerRow).where(ScheduleLayerRow.schedule_id.in_(ids))
    ):
        layers[layer.schedule_id].append(layer)
    overrides: dict[str, list[ScheduleOverrideRow]] = {i: [] for i in ids}
    query = select(ScheduleOverrideRow).where(ScheduleOverrideRow.schedule_id.in_(ids))
    if since is not None:
        query = query.where(ScheduleOverrideRow.ends_at > since - OVERRIDE_LOOKBACK)
    for override in session.scalars(query):
        overrides[override.schedule_id].append(override)
    return {row.id: build(session, row, layers[row.id], overrides[row.id]) for row in rows}


def live_schedules(session: Session) -> list[ScheduleRow]:
    return list(
        session.scalars(
            select(ScheduleRow).where(ScheduleRow.archived.is_(False)).order_by(ScheduleRow.id)
        )
    )


def on_call(session: Session, schedule_id: str, at: datetime) -> tuple[str, ...]:
    """Return the users on call on a schedule at `at`."""
    return core.on_call_at(load(session, schedule_id, since=at), at)


def add_override(
    session: Session,
    schedule_id: str,
    *,
    kind: str,
    user_id: str,
    replaces: str | None,
    starts_at: datetime,
    ends_at: datetime,
    note: str,
    actor: str,
    now: datetime,
) -> ScheduleOverrideRow:
    """Record a temporary change of who is on call."""
    row = session.get(ScheduleRow, schedule_id)
    if row is None or row.archived:
        raise NotFound(f"schedule {schedule_id!r} not found")
    if kind not in ("add", "remove", "replace"):
        raise InvalidInput("kind must be add, remove or replace", field="kind")
    if ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at", field="ends_at")
    for field, value in (("user", user_id), ("replaces", replaces)):
        if value is not None:
            user = session.get(UserRow, value)
            if user is None or user.archived:
                raise InvalidInput(f"unknown user '{value}'", field=field)
    if kind != "replace" and replaces is not None:
        raise InvalidInput("replaces is only for kind replace", field="replaces")
    override = ScheduleOverrideRow(
        schedule_id=schedule_id,
        kind=kind,
        user_id=user_id,
        replaces_user_id=replaces,
        starts_at=starts_at,
        ends_at=ends_at,
        note=note,
        created_by=actor,
        created_at=now,
    )
    session.add(override)
    session.flush()
    return override


def remove_override(session: Session, schedule_id: str, override_id: int) -> None:
    row = session.get(ScheduleOverrideRow, override_id)
    if row is None or row.schedule_id != schedule_id:
        raise NotFound(f"override {override_id} not found")
    session.delete(row)
