"""Appliers of the communication sections: audiences, communication rules, message templates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tocsin.configfile.comm_schema import RESPONDERS, AudienceSpec, MessageTemplateSpec
from tocsin.configfile.errors import ConfigError, ConfigIssue
from tocsin.configfile.sections import (
    Current,
    Fields,
    Ref,
    Section,
    _PositionalSection,
    _RowSection,
)
from tocsin.configfile.types import Spec
from tocsin.storage.comm_tables import AudienceRow, CommunicationRuleRow, MessageTemplateRow

# The keys an audience keeps in its settings column, and which other section each names.
_SETTINGS = (
    "to", "channel", "create_incident_channel", "invite", "channel_name", "url", "secret",
    "users", "teams", "schedules",
)  # fmt: skip
_PEOPLE = {"users": "users", "teams": "teams", "schedules": "schedules"}


class AudienceSection(_RowSection):
    name = "audiences"
    explicit = frozenset({"type"})
    row_type = AudienceRow

    def to_fields(self, row: AudienceRow) -> Fields:
        settings = dict(row.settings or {})
        return {"type": row.type, "name": row.name, **{k: settings.get(k) for k in _SETTINGS}}

    def assign(self, row: AudienceRow, fields: Fields) -> None:
        row.type = fields["type"]
        row.name = fields["name"]
        row.settings = {k: fields[k] for k in _SETTINGS if fields.get(k) is not None}

    def desired(self, spec: Spec, position: int) -> Fields:
        assert isinstance(spec, AudienceSpec)
        fields: Fields = {"type": spec.type, "name": spec.name, **dict.fromkeys(_SETTINGS)}
        return fields | spec.settings()

    def refs(self, fields: Fields) -> list[Ref]:
        refs = [
            Ref(f"{key}[{i}]", section, value)
            for key, section in _PEOPLE.items()
            for i, value in enumerate(fields.get(key) or [])
        ]
        refs += [
            Ref(f"invite[{i}]", "incident_roles", role)
            for i, role in enumerate(fields.get("invite") or [])
            if role != RESPONDERS
        ]
        return refs

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        out = dict(fields)
        for key, section in _PEOPLE.items():
            if out.get(key) is not None:
                out[key] = [v for v in out[key] if v in live[section]]
        if out.get("invite") is not None:
            out["invite"] = [
                r for r in out["invite"] if r == RESPONDERS or r in live["incident_roles"]
            ]
        if out["type"] == "people" and not any(out.get(k) for k in _PEOPLE):
            return None
        return out


class CommunicationSection(_PositionalSection):
    name = "communication"
    row_type = CommunicationRuleRow

    def to_fields(self, row: CommunicationRuleRow) -> Fields:
        return {
            "severities": list(row.severities),
            "audiences": list(row.audiences),
            "messages": list(row.messages),
            "services": list(row.services),
        }

    def assign(self, row: CommunicationRuleRow, fields: Fields) -> None:
        row.severities = list(fields["severities"])
        row.audiences = list(fields["audiences"])
        row.messages = list(fields["messages"])
        row.services = list(fields["services"])

    def refs(self, fields: Fields) -> list[Ref]:
        refs = [Ref(f"audiences[{i}]", "audiences", a) for i, a in enumerate(fields["audiences"])]
        refs += [
            Ref(f"severities[{i}]", "severities", s, ignore_case=True)
            for i, s in enumerate(fields["severities"])
        ]
        refs += [Ref(f"services[{i}]", "services", s) for i, s in enumerate(fields["services"])]
        return refs

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        severities = {s.casefold() for s in live["severities"]}
        out = {
            **fields,
            "severities": [s for s in fields["severities"] if s.casefold() in severities],
            "audiences": [a for a in fields["audiences"] if a in live["audiences"]],
            "services": [s for s in fields["services"] if s in live["services"]],
        }
        if not out["severities"] or not out["audiences"]:
            return None
        return out


class MessageTemplateSection(Section):
    """Templates are named by what they are for; the file's list replaces the stored one."""

    name = "message_templates"
    positional = True

    def key_of(self, spec: Spec, position: int) -> str:
        assert isinstance(spec, MessageTemplateSpec)
        return spec.selector()

    def entries(self, document: Any) -> list[Spec] | None:
        entries: list[Spec] | None = getattr(document, self.name)
        if entries is None:
            return None
        first: dict[str, int] = {}
        issues = []
        for index, spec in enumerate(entries):
            key = self.key_of(spec, index)
            if key in first:
                path = f"{self.name}[{index}]"
                message = (
                    f"a second template for '{key}' (also at {self.name}[{first[key]}]); "
                    "narrow one with severity, service or audience_type"
                )
                issues.append(ConfigIssue(path, message, document.line_of(path)))
            first.setdefault(key, index)
        if issues:
            raise ConfigError(issues, document.source)
        return entries

    def load(self, session: Session) -> dict[str, Current]:
        return {
            row.key: Current(
                {
                    "kind": row.kind,
                    "severity": row.severity,
                    "service": row.service,
                    "audience_type": row.audience_type,
                    "title": row.title,
                    "body": row.body,
                }
            )
            for row in session.scalars(select(MessageTemplateRow))
        }

    def write(self, session: Session, key: str, fields: Fields) -> None:
        row = session.get(MessageTemplateRow, key)
        if row is None:
            row = MessageTemplateRow(key=key)
            session.add(row)
        row.kind = fields["kind"]
        row.severity = fields["severity"]
        row.service = fields["service"]
        row.audience_type = fields["audience_type"]
        row.title = fields["title"]
        row.body = fields["body"]

    def remove(self, session: Session, key: str) -> None:
        session.execute(delete(MessageTemplateRow).where(MessageTemplateRow.key == key))

    def refs(self, fields: Fields) -> list[Ref]:
        refs = []
        if fields["severity"]:
            refs.append(Ref("severity", "severities", fields["severity"], ignore_case=True))
        if fields["service"]:
            refs.append(Ref("service", "services", fields["service"]))
        return refs

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        severity, service = fields["severity"], fields["service"]
        if severity and severity.casefold() not in {s.casefold() for s in live["severities"]}:
            return None
        if service and service not in live["services"]:
            return None
        return fields
