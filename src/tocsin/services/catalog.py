"""Lookups of configured objects (severities, services, roles, users) with clear errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.errors import InvalidInput
from tocsin.core.severity import Severity
from tocsin.storage.tables import IncidentRoleRow, ServiceRow, SeverityRow, UserRow


def severities(session: Session) -> list[Severity]:
    """Return the active severity scheme, most severe first."""
    rows = session.scalars(
        select(SeverityRow).where(SeverityRow.archived.is_(False)).order_by(SeverityRow.position)
    ).all()
    return [
        Severity(
            name=r.name,
            label=r.label,
            description=r.description,
            respond_within=timedelta(seconds=r.respond_within_s) if r.respond_within_s else None,
            update_every=timedelta(seconds=r.update_every_s) if r.update_every_s else None,
            pages=r.pages,
            rank=r.position,
        )
        for r in rows
    ]


def check_services(session: Session, wanted: Sequence[str]) -> list[str]:
    """Return the service ids in order without duplicates, or fail listing the valid ones."""
    unique = list(dict.fromkeys(s.strip() for s in wanted if s.strip()))
    if not unique:
        return []
    found = set(
        session.scalars(
            select(ServiceRow.id).where(ServiceRow.id.in_(unique), ServiceRow.archived.is_(False))
        )
    )
    unknown = [s for s in unique if s not in found]
    if unknown:
        valid = list(
            session.scalars(
                select(ServiceRow.id).where(ServiceRow.archived.is_(False)).order_by(ServiceRow.id)
            )
        )
        names = ", ".join(map(repr, unknown))
        raise InvalidInput(
            f"unknown service {names}; valid: {', '.join(valid) or '(none)'}",
            field="services",
            valid=valid,
        )
    return unique


def role_exists(session: Session, name: str) -> bool:
    return (
        session.scalar(
            select(IncidentRoleRow.name).where(
                IncidentRoleRow.name == name, IncidentRoleRow.archived.is_(False)
            )
        )
        is not None
    )


def check_role_name(session: Session, name: str) -> None:
    """Fail unless `name` is a configured incident role."""
    if not role_exists(session, name):
        valid = list(
            session.scalars(
                select(IncidentRoleRow.name)
                .where(IncidentRoleRow.archived.is_(False))
                .order_by(IncidentRoleRow.position)
            )
        )
        raise InvalidInput(
            f"unknown role {name!r}; valid: {', '.join(valid) or '(none)'}",
            field="roles",
            valid=valid,
        )


def check_roles(session: Session, roles: Mapping[str, str]) -> None:
    """Fail unless every role is configured and every assignee is an active user."""
    for role in roles:
        check_role_name(session, role)
    users = set(roles.values())
    if not users:
        return
    found = set(
        session.scalars(
            select(UserRow.id).where(UserRow.id.in_(users), UserRow.archived.is_(False))
        )
    )
    unknown = sorted(users - found)
    if unknown:
        raise InvalidInput(
            f"unknown user {', '.join(map(repr, unknown))}",
            field="roles",
            valid=active_user_ids(session),
        )


def active_user_ids(session: Session) -> list[str]:
    return list(
        session.scalars(select(UserRow.id).where(UserRow.archived.is_(False)).order_by(UserRow.id))
    )
