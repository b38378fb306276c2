"""One applier per section: how its entries are read from, compared with and written to rows.

Every applier speaks the file's vocabulary (respond_within "15m", team "platform", members
[...]) so one generic engine in apply.py can diff, validate references and report for all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tocsin.configfile.schema import Spec, section_spec
from tocsin.core.durations import format_duration, parse_duration
from tocsin.storage.tables import (
    Base,
    ChecklistTemplateItemRow,
    IncidentRoleRow,
    ServiceRow,
    SeverityRow,
    TeamMemberRow,
    TeamRow,
    UserRow,
)

Fields = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Current:
    """An object as the database has it now."""

    fields: Fields
    archived: bool = False


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference from an entry (at sub-path `path`) to another section's object."""

    path: str
    section: str
    key: str


class Section(ABC):
    """How one section of the file maps onto the database."""

    name: ClassVar[str]
    # Sections whose file order is meaningful store it in a `position` column.
    ordered: ClassVar[bool] = False
    # Fields written by export even at their default value, because they matter to a reader.
    explicit: ClassVar[frozenset[str]] = frozenset()

    @property
    def spec(self) -> type[Spec]:
        """Return the pydantic model of one entry."""
        return section_spec(self.name)

    @property
    def noun(self) -> str:
        """Return what one entry is called in messages ('team', 'severity')."""
        return self.spec.noun

    def desired(self, spec: Spec, position: int) -> Fields:
        """Return an entry's fields in the canonical form load() produces."""
        fields: Fields = {"position": position} if self.ordered else {}
        for name in type(spec).model_fields:
            if name != spec.key_field:
                fields[name] = _canonical(getattr(spec, name))
        return fields

    def refs(self, fields: Fields) -> list[Ref]:
        """Return the references an entry makes to other sections."""
        return []

    def export_entry(self, key: str, fields: Fields) -> dict[str, Any]:
        """Return the file entry for a live object, leaving out fields at their default."""
        entry: dict[str, Any] = {self.spec.key_field: key}
        for name, info in self.spec.model_fields.items():
            if name == self.spec.key_field:
                continue
            value = fields[name]
            if name in self.explicit or value != info.get_default(call_default_factory=True):
                entry[name] = value
        return entry

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        """Return the fields with references to archived objects dropped (None: skip it)."""
        return fields

    @abstractmethod
    def load(self, session: Session) -> dict[str, Current]:
        """Return every object of this section in the database, archived ones included."""

    @abstractmethod
    def write(self, session: Session, key: str, fields: Fields) -> None:
        """Create or update (and un-archive) the object `key`."""

    @abstractmethod
    def remove(self, session: Session, key: str) -> None:
        """Take the object out of the live configuration."""


class _RowSection(Section):
    """A section stored as one row per entry, removed by archiving (incidents refer to it)."""

    row_type: ClassVar[type[Base]]

    @abstractmethod
    def to_fields(self, row: Any) -> Fields:
        """Read a row into file fields."""

    @abstractmethod
    def assign(self, row: Any, fields: Fields) -> None:
        """Copy file fields onto a row."""

    def load(self, session: Session) -> dict[str, Current]:
        rows: Sequence[Any] = session.scalars(select(self.row_type)).all()
        return {self._key(row): Current(self.to_fields(row), bool(row.archived)) for row in rows}

    def write(self, session: Session, key: str, fields: Fields) -> None:
        # Typed Any: every row type here has `archived`, which Base itself does not declare.
        row: Any = session.get(self.row_type, key)
        if row is None:
            row = self.row_type(**{self._key_column(): key})
            session.add(row)
        self.assign(row, fields)
        row.archived = False

    def remove(self, session: Session, key: str) -> None:
        row: Any = session.get(self.row_type, key)
        if row is not None:
            row.archived = True

    def _key_column(self) -> str:
        return "name" if self.spec.key_field == "name" else "id"

    def _key(self, row: Any) -> str:
        return str(getattr(row, self._key_column()))


class SeveritySection(_RowSection):
    name = "severities"
    ordered = True
    explicit = frozenset({"pages"})
    row_type = SeverityRow

    def to_fields(self, row: SeverityRow) -> Fields:
        return {
            "position": row.position,
            "label": row.label,
            "description": row.description,
            "respond_within": _format_seconds(row.respond_within_s),
            "update_every": _format_seconds(row.update_every_s),
            "pages": row.pages,
        }

    def assign(self, row: SeverityRow, fields: Fields) -> None:
        row.position = fields["position"]
        row.label = fields["label"]
        row.description = fields["description"]
        row.respond_within_s = _seconds(fields["respond_within"])
        row.update_every_s = _seconds(fields["update_every"])
        row.pages = fields["pages"]


class IncidentRoleSection(_RowSection):
    name = "incident_roles"
    ordered = True
    row_type = IncidentRoleRow

    def to_fields(self, row: IncidentRoleRow) -> Fields:
        return {
            "position": row.position,
            "label": row.label,
            "description": row.description,
            "required": row.required,
        }

    def assign(self, row: IncidentRoleRow, fields: Fields) -> None:
        row.position = fields["position"]
        row.label = fields["label"]
        row.description = fields["description"]
        row.required = fields["required"]


class UserSection(_RowSection):
    name = "users"
    explicit = frozenset({"role"})
    row_type = UserRow

    def to_fields(self, row: UserRow) -> Fields:
        return {"name": row.name, "email": row.email, "role": row.role, "time_zone": row.time_zone}

    def assign(self, row: UserRow, fields: Fields) -> None:
        # password_hash is not configuration: a re-apply must never log anybody out.
        row.name = fields["name"]
        row.email = fields["email"]
        row.role = fields["role"]
        row.time_zone = fields["time_zone"]


class TeamSection(_RowSection):
    name = "teams"
    row_type = TeamRow

    def load(self, session: Session) -> dict[str, Current]:
        members: dict[str, list[str]] = {}
        query = select(TeamMemberRow).order_by(TeamMemberRow.position, TeamMemberRow.user_id)
        for member in session.scalars(query):
            members.setdefault(member.team_id, []).append(member.user_id)
        return {
            key: Current({**current.fields, "members": members.get(key, [])}, current.archived)
            for key, current in super().load(session).items()
        }

    def to_fields(self, row: TeamRow) -> Fields:
        # Members live in their own table; load() fills them in with one query for all teams.
        return {"name": row.name, "description": row.description, "members": []}

    def assign(self, row: TeamRow, fields: Fields) -> None:
        row.name = fields["name"]
        row.description = fields["description"]

    def write(self, session: Session, key: str, fields: Fields) -> None:
        super().write(session, key, fields)
        wanted: list[str] = fields["members"]
        existing = {
            m.user_id: m
            for m in session.scalars(select(TeamMemberRow).where(TeamMemberRow.team_id == key))
        }
        for user_id, member in existing.items():
            if user_id not in wanted:
                session.delete(member)
        # Membership rows are keyed by (team, user), so reordering is an update in place.
        for position, user_id in enumerate(wanted):
            if user_id in existing:
                existing[user_id].position = position
            else:
                session.add(TeamMemberRow(team_id=key, user_id=user_id, position=position))

    def refs(self, fields: Fields) -> list[Ref]:
        return [Ref(f"members[{i}]", "users", m) for i, m in enumerate(fields["members"])]

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        return {**fields, "members": [m for m in fields["members"] if m in live["users"]]}


class ServiceSection(_RowSection):
    name = "services"
    row_type = ServiceRow

    def to_fields(self, row: ServiceRow) -> Fields:
        return {"name": row.name, "description": row.description, "team": row.team_id}

    def assign(self, row: ServiceRow, fields: Fields) -> None:
        row.name = fields["name"]
        row.description = fields["description"]
        row.team_id = fields["team"]

    def refs(self, fields: Fields) -> list[Ref]:
        return [Ref("team", "teams", fields["team"])] if fields["team"] else []

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        return fields if fields["team"] in live["teams"] else {**fields, "team": None}


class ChecklistSection(Section):
    """Template items are plain rows: replaced in place, deleted when a checklist goes."""

    name = "checklists"

    def load(self, session: Session) -> dict[str, Current]:
        items: dict[str, list[str]] = {}
        query = select(ChecklistTemplateItemRow).order_by(
            ChecklistTemplateItemRow.severity, ChecklistTemplateItemRow.position
        )
        for row in session.scalars(query):
            items.setdefault(row.severity, []).append(row.text)
        return {
            severity: Current({"items": texts, "severity": severity})
            for severity, texts in items.items()
        }

    def write(self, session: Session, key: str, fields: Fields) -> None:
        wanted: list[str] = fields["items"]
        where = ChecklistTemplateItemRow.severity == key
        rows = {
            row.position: row
            for row in session.scalars(select(ChecklistTemplateItemRow).where(where))
        }
        # Update by position rather than delete-and-insert: (severity, position) is unique
        # and a flush inserts before it deletes.
        for position, text in enumerate(wanted):
            if position in rows:
                rows[position].text = text
            else:
                session.add(ChecklistTemplateItemRow(severity=key, position=position, text=text))
        session.execute(
            delete(ChecklistTemplateItemRow).where(
                where, ChecklistTemplateItemRow.position >= len(wanted)
            )
        )

    def remove(self, session: Session, key: str) -> None:
        session.execute(
            delete(ChecklistTemplateItemRow).where(ChecklistTemplateItemRow.severity == key)
        )

    def refs(self, fields: Fields) -> list[Ref]:
        return [Ref("severity", "severities", fields["severity"])]

    def desired(self, spec: Spec, position: int) -> Fields:
        return {**super().desired(spec, position), "severity": spec.config_key()}

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        return fields if fields["severity"] in live["severities"] else None


def _canonical(value: Any) -> Any:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, list):
        return list(value)
    return value


def _format_seconds(seconds: int | None) -> str | None:
    return None if seconds is None else format_duration(timedelta(seconds=seconds))


def _seconds(text: str | None) -> int | None:
    return None if text is None else int(parse_duration(text).total_seconds())


# Apply order: a section comes after the sections it refers to (foreign keys).
SECTIONS: tuple[Section, ...] = (
    SeveritySection(),
    IncidentRoleSection(),
    UserSection(),
    TeamSection(),
    ServiceSection(),
    ChecklistSection(),
)
