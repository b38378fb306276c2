"""One applier per section: how its entries are read from, compared with and written to rows.

Every applier speaks the file's vocabulary (respond_within "15m", team "platform", members
[...]) so one generic engine in apply.py can diff, validate references and report for all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tocsin.configfile.schema import section_spec
from tocsin.configfile.types import Spec
from tocsin.core.alerts import DeclareRule
from tocsin.core.durations import format_duration, parse_duration
from tocsin.storage.tables import (
    AlertRouteRow,
    Base,
    ChecklistTemplateItemRow,
    GroupingRuleRow,
    HeartbeatRow,
    IncidentRoleRow,
    InhibitRuleRow,
    IntegrationRow,
    MaintenanceWindowRow,
    SeverityRow,
    SilenceRow,
    TeamMemberRow,
    TeamRow,
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
    # Severity names are matched case-insensitively wherever an alert or a person names one.
    ignore_case: bool = False


class Section(ABC):
    """How one section of the file maps onto the database."""

    name: ClassVar[str]
    # Sections whose file order is meaningful store it in a `position` column.
    ordered: ClassVar[bool] = False
    # Keyless lists (routes, silences …): an entry is its position, and the file's list
    # replaces the stored one whole, so entries past its end go even without prune.
    positional: ClassVar[bool] = False
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

    def key_of(self, spec: Spec, position: int) -> str:
        """Return the key of the entry at `position` in the file."""
        return position_key(position) if self.positional else spec.config_key()

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

    def entries(self, document: Any) -> list[Spec] | None:
        """Return the file's entries of this section, or None when the file leaves it out."""
        entries: list[Spec] | None = getattr(document, self.name)
        return entries

    def export_document(self, entries: list[dict[str, Any]]) -> Any:
        """Return the section as the file writes it (a list; `channels` is a mapping)."""
        return entries

    def export_entry(self, key: str, fields: Fields) -> dict[str, Any]:
        """Return the file entry for a live object, leaving out fields at their default."""
        key_field = self.spec.key_field
        entry: dict[str, Any] = {key_field: key} if key_field else {}
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
        return self.spec.key_field if self.spec.key_field in ("name", "key") else "id"

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
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, list):
        return list(value)
    return value


def position_key(position: int) -> str:
    """Return the key reported for the entry at a 0-based position of a keyless list: #1 …"""
    return f"#{position + 1}"


def _position(key: str) -> int:
    return int(key.removeprefix("#")) - 1


def format_time(moment: datetime) -> str:
    """Format a time as RFC 3339 in UTC, the canonical form compared and exported."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _format_seconds(seconds: int | None) -> str | None:
    return None if seconds is None else format_duration(timedelta(seconds=seconds))


def _seconds(text: str | None) -> int | None:
    return None if text is None else int(parse_duration(text).total_seconds())


# --- alerting ---


def _live_service(fields: Fields, live: dict[str, set[str]]) -> bool:
    return fields["service"] in live["services"]


def _live_severity(name: str, live: dict[str, set[str]]) -> bool:
    return name.casefold() in {s.casefold() for s in live["severities"]}


class IntegrationSection(_RowSection):
    name = "integrations"
    explicit = frozenset({"type"})
    row_type = IntegrationRow

    def to_fields(self, row: IntegrationRow) -> Fields:
        return {
            "type": row.type,
            "service": row.service_id,
            "name": row.name,
            "mapping": row.mapping or None,
            "rate_limit": row.rate_limit,
        }

    def assign(self, row: IntegrationRow, fields: Fields) -> None:
        row.type = fields["type"]
        row.service_id = fields["service"]
        row.name = fields["name"]
        row.mapping = fields["mapping"] or {}
        row.rate_limit = fields["rate_limit"]

    def refs(self, fields: Fields) -> list[Ref]:
        return [Ref("service", "services", fields["service"])]

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        return fields if _live_service(fields, live) else None


class HeartbeatSection(_RowSection):
    name = "heartbeats"
    row_type = HeartbeatRow

    def to_fields(self, row: HeartbeatRow) -> Fields:
        return {
            "service": row.service_id,
            "interval": _format_seconds(row.interval_s),
            "name": row.name,
        }

    def assign(self, row: HeartbeatRow, fields: Fields) -> None:
        row.service_id = fields["service"]
        row.interval_s = int(parse_duration(fields["interval"]).total_seconds())
        row.name = fields["name"]

    def write(self, session: Session, key: str, fields: Fields) -> None:
        # A new or restored heartbeat gets one full interval before it can be overdue (the
        # deadline runs from the last ping, else from created_at); changing a live one keeps
        # its clock.
        row = session.get(HeartbeatRow, key)
        restart = row is None or row.archived
        if row is None:
            row = HeartbeatRow(key=key)
            session.add(row)
        if restart:
            row.created_at = datetime.now(UTC)
            row.last_ping_at = None
        self.assign(row, fields)
        row.archived = False

    def refs(self, fields: Fields) -> list[Ref]:
        return [Ref("service", "services", fields["service"])]

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        return fields if _live_service(fields, live) else None


class GroupingSection(Section):
    """One rule per service: a plain row, deleted when the rule goes."""

    name = "grouping"

    def load(self, session: Session) -> dict[str, Current]:
        return {
            row.service_id: Current(
                {
                    "service": row.service_id,
                    "by": list(row.by) if row.by else None,
                    "template": row.template,
                    "window": _format_seconds(row.window_s),
                }
            )
            for row in session.scalars(select(GroupingRuleRow))
        }

    def desired(self, spec: Spec, position: int) -> Fields:
        return {**super().desired(spec, position), "service": spec.config_key()}

    def write(self, session: Session, key: str, fields: Fields) -> None:
        row = session.get(GroupingRuleRow, key)
        if row is None:
            row = GroupingRuleRow(service_id=key)
            session.add(row)
        row.by = list(fields["by"] or [])
        row.template = fields["template"]
        row.window_s = _seconds(fields["window"])

    def remove(self, session: Session, key: str) -> None:
        session.execute(delete(GroupingRuleRow).where(GroupingRuleRow.service_id == key))

    def refs(self, fields: Fields) -> list[Ref]:
        return [Ref("service", "services", fields["service"])]

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        return fields if _live_service(fields, live) else None


class _PositionalSection(Section):
    """A keyless list stored as one row per entry under its position; removal deletes."""

    ordered = True
    positional = True
    row_type: ClassVar[type[Base]]
    # Silences and maintenance windows also come from the API; only rows with a position
    # (config_position) belong to the file.
    position_column: ClassVar[str] = "position"

    @abstractmethod
    def to_fields(self, row: Any) -> Fields:
        """Read a row into file fields (position aside)."""

    @abstractmethod
    def assign(self, row: Any, fields: Fields) -> None:
        """Copy file fields onto a row."""

    def new_row(self, position: int) -> Any:
        """Return a new row for `position` (not yet added to the session)."""
        return self.row_type(**{self.position_column: position})

    def load(self, session: Session) -> dict[str, Current]:
        column = getattr(self.row_type, self.position_column)
        query = select(self.row_type).where(column.is_not(None)).order_by(column)
        out = {}
        for row in session.scalars(query):
            position: int = getattr(row, self.position_column)
            out[position_key(position)] = Current({"position": position, **self.to_fields(row)})
        return out

    def write(self, session: Session, key: str, fields: Fields) -> None:
        # Update in place by position: positions are unique, and a flush inserts before it
        # deletes, so delete-and-insert would collide.
        position = _position(key)
        row = self._row(session, position)
        if row is None:
            row = self.new_row(position)
            session.add(row)
        self.assign(row, fields)

    def remove(self, session: Session, key: str) -> None:
        row = self._row(session, _position(key))
        if row is not None:
            session.delete(row)

    def _row(self, session: Session, position: int) -> Any:
        column = getattr(self.row_type, self.position_column)
        return session.scalars(select(self.row_type).where(column == position)).one_or_none()


class RouteSection(_PositionalSection):
    name = "routes"
    row_type = AlertRouteRow

    def to_fields(self, row: AlertRouteRow) -> Fields:
        return {
            "match": row.match,
            "continue": row.continue_,
            "service": row.service_id,
            "urgency": row.urgency,
            "incident_severity": row.incident_severity,
            "declare_incident": _declare_from_row(row.declare),
        }

    def desired(self, spec: Spec, position: int) -> Fields:
        fields = super().desired(spec, position)
        return {**fields, "declare_incident": _declare_canonical(fields["declare_incident"])}

    def assign(self, row: AlertRouteRow, fields: Fields) -> None:
        row.match = fields["match"]
        row.continue_ = fields["continue"]
        row.service_id = fields["service"]
        row.urgency = fields["urgency"]
        row.incident_severity = fields["incident_severity"]
        row.declare = _declare_to_row(fields["declare_incident"])

    def refs(self, fields: Fields) -> list[Ref]:
        refs = []
        if fields["service"]:
            refs.append(Ref("service", "services", fields["service"]))
        if fields["incident_severity"]:
            severity = fields["incident_severity"]
            refs.append(Ref("incident_severity", "severities", severity, ignore_case=True))
        return refs

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        out = dict(fields)
        if out["service"] and out["service"] not in live["services"]:
            out["service"] = None
        if out["incident_severity"] and not _live_severity(out["incident_severity"], live):
            out["incident_severity"] = None
        return out


def _declare_canonical(value: bool | DeclareRule) -> bool | dict[str, Any]:
    """Return declare_incident as the file says it most simply: true, false or a mapping."""
    if isinstance(value, bool):
        return value
    if value.min_alerts == 1 and value.within is None:
        return True
    out: dict[str, Any] = {"min_alerts": value.min_alerts}
    if value.within is not None:
        out["within"] = format_duration(value.within)
    return out


def _declare_to_row(value: bool | dict[str, Any]) -> dict[str, Any] | None:
    if value is False:
        return None
    if value is True:
        return {"min_alerts": 1, "within_s": None}
    assert isinstance(value, dict)
    return {"min_alerts": value["min_alerts"], "within_s": _seconds(value.get("within"))}


def _declare_from_row(stored: dict[str, Any] | None) -> bool | dict[str, Any]:
    if stored is None:
        return False
    within = stored.get("within_s")
    rule = DeclareRule(
        int(stored.get("min_alerts") or 1), None if within is None else timedelta(seconds=within)
    )
    return _declare_canonical(rule)


class _TimedSection(_PositionalSection):
    """Silences and maintenance windows: rows shared with the API, told apart by position."""

    position_column = "config_position"

    def to_fields(self, row: Any) -> Fields:
        return {
            "starts_at": format_time(row.starts_at),
            "ends_at": format_time(row.ends_at),
            "comment": row.comment,
        }

    def new_row(self, position: int) -> Any:
        row = super().new_row(position)
        row.created_by = "config"
        row.created_at = datetime.now(UTC)
        return row

    def assign(self, row: Any, fields: Fields) -> None:
        row.starts_at = datetime.fromisoformat(fields["starts_at"])
        row.ends_at = datetime.fromisoformat(fields["ends_at"])
        row.comment = fields["comment"]


class SilenceSection(_TimedSection):
    name = "silences"
    row_type = SilenceRow

    def to_fields(self, row: SilenceRow) -> Fields:
        return {"matchers": row.matchers, **super().to_fields(row)}

    def assign(self, row: SilenceRow, fields: Fields) -> None:
        super().assign(row, fields)
        row.matchers = fields["matchers"]


class MaintenanceWindowSection(_TimedSection):
    name = "maintenance_windows"
    row_type = MaintenanceWindowRow

    def to_fields(self, row: MaintenanceWindowRow) -> Fields:
        return {"service": row.service_id, **super().to_fields(row)}

    def assign(self, row: MaintenanceWindowRow, fields: Fields) -> None:
        super().assign(row, fields)
        row.service_id = fields["service"]

    def refs(self, fields: Fields) -> list[Ref]:
        return [Ref("service", "services", fields["service"])]

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        return fields if _live_service(fields, live) else None


class InhibitRuleSection(_PositionalSection):
    name = "inhibit_rules"
    row_type = InhibitRuleRow

    def to_fields(self, row: InhibitRuleRow) -> Fields:
        return {
            "source_match": row.source_match,
            "target_match": row.target_match,
            "equal": list(row.equal),
        }

    def assign(self, row: InhibitRuleRow, fields: Fields) -> None:
        row.source_match = fields["source_match"]
        row.target_match = fields["target_match"]
        row.equal = list(fields["equal"])
