"""Appliers of the on-call sections: users (with contact methods and notification rules),
services (with their escalation policy), schedules, escalation policies and channels."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tocsin.configfile.oncall_schema import (
    TARGET_KINDS,
    ChannelsSpec,
    EscalationPolicySpec,
    ScheduleSpec,
    ServiceSpec,
    UserSpec,
    split_target,
)
from tocsin.configfile.schema import ChannelSpec
from tocsin.configfile.sections import Current, Fields, Ref, Section, _RowSection
from tocsin.configfile.types import Spec
from tocsin.core.durations import format_duration, parse_duration
from tocsin.services.contact_methods import TARGET_FIELDS
from tocsin.storage.oncall_tables import (
    IMPORTED_CALENDAR,
    ChannelSettingsRow,
    ContactMethodRow,
    EscalationPolicyRow,
    EscalationStepRow,
    NotificationRuleRow,
    ScheduleLayerRow,
    ScheduleRow,
)
from tocsin.storage.tables import ServiceRow, UserRow

URGENCIES = ("high", "low")


def _delay(delta: timedelta) -> str:
    return format_duration(delta)


def _seconds(text: str) -> int:
    return int(parse_duration(text).total_seconds())


class UserSection(_RowSection):
    name = "users"
    explicit = frozenset({"role"})
    row_type = UserRow

    def desired(self, spec: Spec, position: int) -> Fields:
        assert isinstance(spec, UserSpec)
        fields: Fields = {
            "name": spec.name,
            "email": spec.email,
            "role": spec.role,
            "time_zone": spec.time_zone,
            "contact_methods": [
                _method_entry(m.id, m.type, m.target(), m.name) for m in spec.contact_methods
            ],
        }
        rules = spec.notification_rules
        if rules is not None:
            # Left out when the file says nothing, so rules people keep themselves stay.
            fields["notification_rules"] = {
                urgency: [
                    {"after": _delay(rule.after), "via": rule.via}
                    for rule in getattr(rules, urgency)
                ]
                for urgency in URGENCIES
            }
        return fields

    def load(self, session: Session) -> dict[str, Current]:
        methods: dict[str, list[dict[str, Any]]] = {}
        query = select(ContactMethodRow).where(
            ContactMethodRow.source == "config", ContactMethodRow.archived.is_(False)
        )
        for method in session.scalars(
            query.order_by(ContactMethodRow.created_at, ContactMethodRow.id)
        ):
            methods.setdefault(method.user_id, []).append(
                _method_entry(method.id, method.type, method.target, method.name)
            )
        rules: dict[str, dict[str, list[dict[str, str]]]] = {}
        order = (
            NotificationRuleRow.user_id,
            NotificationRuleRow.urgency,
            NotificationRuleRow.position,
        )
        for rule in session.scalars(select(NotificationRuleRow).order_by(*order)):
            per_user = rules.setdefault(rule.user_id, {u: [] for u in URGENCIES})
            per_user.setdefault(rule.urgency, []).append(
                {"after": _delay(timedelta(seconds=rule.after_s)), "via": rule.contact_method_id}
            )
        out = {}
        for key, current in super().load(session).items():
            fields = {
                **current.fields,
                "contact_methods": methods.get(key, []),
                "notification_rules": rules.get(key),
            }
            out[key] = Current(fields, current.archived)
        return out

    def to_fields(self, row: UserRow) -> Fields:
        return {"name": row.name, "email": row.email, "role": row.role, "time_zone": row.time_zone}

    def assign(self, row: UserRow, fields: Fields) -> None:
        # password_hash is not configuration: a re-apply must never log anybody out.
        row.name = fields["name"]
        row.email = fields["email"]
        row.role = fields["role"]
        row.time_zone = fields["time_zone"]

    def write(self, session: Session, key: str, fields: Fields) -> None:
        super().write(session, key, fields)
        session.flush()
        now = datetime.now(UTC)
        wanted = {m["id"]: m for m in fields["contact_methods"]}
        owned = session.scalars(
            select(ContactMethodRow).where(
                ContactMethodRow.user_id == key, ContactMethodRow.source == "config"
            )
        ).all()
        for method in owned:
            if method.id not in wanted:
                method.archived = True
        for position, (method_id, entry) in enumerate(wanted.items()):
            row = session.get(ContactMethodRow, method_id)
            if row is None:
                row = ContactMethodRow(
                    id=method_id, created_at=now + timedelta(microseconds=position)
                )
                session.add(row)
            row.user_id = key
            row.type = entry["type"]
            row.target = entry[TARGET_FIELDS[entry["type"]]]
            row.name = entry.get("name", "")
            # Declared by an admin in the config: trusted as it is, no code sent.
            row.source = "config"
            row.verified_at = row.verified_at or now
            row.archived = False
        session.flush()
        if "notification_rules" in fields:
            session.execute(delete(NotificationRuleRow).where(NotificationRuleRow.user_id == key))
            for urgency in URGENCIES:
                for position, rule in enumerate(fields["notification_rules"][urgency]):
                    session.add(
                        NotificationRuleRow(
                            user_id=key,
                            urgency=urgency,
                            position=position,
                            after_s=_seconds(rule["after"]),
                            contact_method_id=rule["via"],
                        )
                    )

    def export_entry(self, key: str, fields: Fields) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": key,
            "name": fields["name"],
            "email": fields["email"],
            "role": fields["role"],
        }
        if fields["time_zone"]:
            entry["time_zone"] = fields["time_zone"]
        if fields["contact_methods"]:
            entry["contact_methods"] = fields["contact_methods"]
        rules = fields.get("notification_rules")
        if rules:
            entry["notification_rules"] = {u: r for u, r in rules.items() if r}
        return entry


def _method_entry(method_id: str, kind: str, target: str, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": method_id, "type": kind}
    entry[TARGET_FIELDS.get(kind, "url")] = target
    if name:
        entry["name"] = name
    return entry


class ServiceSection(_RowSection):
    name = "services"
    row_type = ServiceRow

    def to_fields(self, row: ServiceRow) -> Fields:
        return {
            "name": row.name,
            "description": row.description,
            "team": row.team_id,
            "escalation_policy": row.escalation_policy_id,
            "escalation_policy_by_severity": dict(row.severity_policies or {}),
        }

    def assign(self, row: ServiceRow, fields: Fields) -> None:
        row.name = fields["name"]
        row.description = fields["description"]
        row.team_id = fields["team"]
        row.escalation_policy_id = fields["escalation_policy"]
        row.severity_policies = dict(fields["escalation_policy_by_severity"])

    def desired(self, spec: Spec, position: int) -> Fields:
        assert isinstance(spec, ServiceSpec)
        return {
            **super().desired(spec, position),
            "escalation_policy_by_severity": dict(spec.escalation_policy_by_severity),
        }

    def refs(self, fields: Fields) -> list[Ref]:
        refs = [Ref("team", "teams", fields["team"])] if fields["team"] else []
        if fields["escalation_policy"]:
            refs.append(
                Ref("escalation_policy", "escalation_policies", fields["escalation_policy"])
            )
        for severity, policy in fields["escalation_policy_by_severity"].items():
            path = f"escalation_policy_by_severity.{severity}"
            refs.append(Ref(path, "escalation_policies", policy))
            refs.append(Ref(path, "severities", severity, ignore_case=True))
        return refs

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        out = dict(fields)
        if out["team"] not in live["teams"]:
            out["team"] = None
        policies = live["escalation_policies"]
        if out["escalation_policy"] not in policies:
            out["escalation_policy"] = None
        out["escalation_policy_by_severity"] = {
            s: p for s, p in out["escalation_policy_by_severity"].items() if p in policies
        }
        return out


class ScheduleSection(_RowSection):
    name = "schedules"
    row_type = ScheduleRow

    def desired(self, spec: Spec, position: int) -> Fields:
        assert isinstance(spec, ScheduleSpec)
        return {
            "name": spec.name,
            "description": spec.description,
            "time_zone": spec.time_zone,
            "layers": [
                _layer_entry(layer.model_dump(exclude_defaults=True)) for layer in spec.layers
            ],
        }

    def load(self, session: Session) -> dict[str, Current]:
        layers: dict[str, list[dict[str, Any]]] = {}
        order = (ScheduleLayerRow.schedule_id, ScheduleLayerRow.position)
        for row in session.scalars(select(ScheduleLayerRow).order_by(*order)):
            if _imported(row):
                continue  # imported through the API: not part of the file
            layers.setdefault(row.schedule_id, []).append(
                _layer_entry(
                    {
                        "name": row.name,
                        "rotation": row.rotation,
                        "users": list(row.users or []),
                        "restrict": list(row.restrict or []),
                        "calendar": row.calendar,
                    }
                )
            )
        return {
            key: Current({**current.fields, "layers": layers.get(key, [])}, current.archived)
            for key, current in super().load(session).items()
        }

    def to_fields(self, row: ScheduleRow) -> Fields:
        return {
            "name": row.name,
            "description": row.description,
            "time_zone": row.time_zone,
            "layers": [],
        }

    def assign(self, row: ScheduleRow, fields: Fields) -> None:
        row.name = fields["name"]
        row.description = fields["description"]
        row.time_zone = fields["time_zone"]
        if not row.calendar_token:
            row.calendar_token = secrets.token_urlsafe(24)

    def write(self, session: Session, key: str, fields: Fields) -> None:
        super().write(session, key, fields)
        session.flush()
        existing = session.scalars(
            select(ScheduleLayerRow).where(ScheduleLayerRow.schedule_id == key)
        ).all()
        kept = [row for row in existing if _imported(row)]
        for row in existing:
            if not _imported(row):
                session.delete(row)
        session.flush()
        # A calendar imported through the API stays, on top of the file's layers.
        for offset, row in enumerate(kept):
            row.position = len(fields["layers"]) + offset + 1000
        session.flush()
        for offset, row in enumerate(kept):
            row.position = len(fields["layers"]) + offset
        for position, layer in enumerate(fields["layers"]):
            session.add(
                ScheduleLayerRow(
                    schedule_id=key,
                    position=position,
                    name=layer.get("name", ""),
                    rotation=layer.get("rotation"),
                    users=list(layer.get("users", [])),
                    restrict=list(layer.get("restrict", [])),
                    calendar=layer.get("calendar"),
                )
            )

    def refs(self, fields: Fields) -> list[Ref]:
        return [
            Ref(f"layers[{i}].users[{j}]", "users", user)
            for i, layer in enumerate(fields["layers"])
            for j, user in enumerate(layer.get("users", []))
        ]

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        layers = []
        for layer in fields["layers"]:
            users = [u for u in layer.get("users", []) if u in live["users"]]
            if layer.get("rotation") and not users:
                continue
            layers.append({**layer, "users": users} if "users" in layer else layer)
        return {**fields, "layers": layers} if layers else None

    def export_entry(self, key: str, fields: Fields) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": key}
        for name in ("name", "description"):
            if fields[name]:
                entry[name] = fields[name]
        entry["time_zone"] = fields["time_zone"]
        entry["layers"] = fields["layers"]
        return entry


def _imported(row: ScheduleLayerRow) -> bool:
    return row.calendar is not None and row.name == IMPORTED_CALENDAR


def _layer_entry(layer: dict[str, Any]) -> dict[str, Any]:
    """Return a layer in canonical file form: empty parts left out."""
    out: dict[str, Any] = {}
    if layer.get("name"):
        out["name"] = layer["name"]
    if layer.get("rotation"):
        out["rotation"] = dict(layer["rotation"])
    if layer.get("users"):
        out["users"] = list(layer["users"])
    if layer.get("restrict"):
        out["restrict"] = [dict(r) for r in layer["restrict"]]
    if layer.get("calendar"):
        out["calendar"] = layer["calendar"]
    return out


class EscalationPolicySection(_RowSection):
    name = "escalation_policies"
    row_type = EscalationPolicyRow

    def desired(self, spec: Spec, position: int) -> Fields:
        assert isinstance(spec, EscalationPolicySpec)
        return {
            "name": spec.name,
            "description": spec.description,
            "repeat": spec.repeat,
            "ack_timeout": None if spec.ack_timeout is None else _delay(spec.ack_timeout),
            "on_sla_breach": (
                None if spec.on_sla_breach is None else {"notify": list(spec.on_sla_breach.notify)}
            ),
            "steps": [_step_entry(_delay(s.after), s.notify, s.round_robin) for s in spec.steps],
        }

    def load(self, session: Session) -> dict[str, Current]:
        steps: dict[str, list[dict[str, Any]]] = {}
        order = (EscalationStepRow.policy_id, EscalationStepRow.position)
        for row in session.scalars(select(EscalationStepRow).order_by(*order)):
            steps.setdefault(row.policy_id, []).append(
                _step_entry(_delay(timedelta(seconds=row.after_s)), row.targets, row.round_robin)
            )
        return {
            key: Current({**current.fields, "steps": steps.get(key, [])}, current.archived)
            for key, current in super().load(session).items()
        }

    def to_fields(self, row: EscalationPolicyRow) -> Fields:
        return {
            "name": row.name,
            "description": row.description,
            "repeat": row.repeat,
            "ack_timeout": (
                None if row.ack_timeout_s is None else _delay(timedelta(seconds=row.ack_timeout_s))
            ),
            "on_sla_breach": {"notify": list(row.sla_notify)} if row.sla_notify else None,
            "steps": [],
        }

    def assign(self, row: EscalationPolicyRow, fields: Fields) -> None:
        row.name = fields["name"]
        row.description = fields["description"]
        row.repeat = fields["repeat"]
        row.ack_timeout_s = (
            None if fields["ack_timeout"] is None else _seconds(fields["ack_timeout"])
        )
        row.sla_notify = list((fields["on_sla_breach"] or {}).get("notify", []))

    def write(self, session: Session, key: str, fields: Fields) -> None:
        super().write(session, key, fields)
        session.flush()
        existing = {
            row.position: row
            for row in session.scalars(
                select(EscalationStepRow).where(EscalationStepRow.policy_id == key)
            )
        }
        for position, step in enumerate(fields["steps"]):
            row = existing.pop(position, None)
            if row is None:
                row = EscalationStepRow(policy_id=key, position=position, rr_next=0)
                session.add(row)
            row.after_s = _seconds(step["after"])
            row.targets = list(step["notify"])
            row.round_robin = bool(step.get("round_robin", False))
        for row in existing.values():
            session.delete(row)

    def refs(self, fields: Fields) -> list[Ref]:
        refs = []
        for i, step in enumerate(fields["steps"]):
            for j, target in enumerate(step["notify"]):
                kind, key = split_target(target)
                refs.append(Ref(f"steps[{i}].notify[{j}]", TARGET_KINDS[kind], key))
        for j, target in enumerate((fields["on_sla_breach"] or {}).get("notify", [])):
            kind, key = split_target(target)
            refs.append(Ref(f"on_sla_breach.notify[{j}]", TARGET_KINDS[kind], key))
        return refs

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        def alive(target: str) -> bool:
            kind, key = split_target(target)
            return key in live[TARGET_KINDS[kind]]

        steps = []
        for step in fields["steps"]:
            targets = [t for t in step["notify"] if alive(t)]
            if targets:
                steps.append({**step, "notify": targets})
        if not steps:
            return None
        sla = fields["on_sla_breach"]
        if sla:
            kept = [t for t in sla["notify"] if alive(t)]
            sla = {"notify": kept} if kept else None
        return {**fields, "steps": steps, "on_sla_breach": sla}

    def export_entry(self, key: str, fields: Fields) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": key}
        for name in ("name", "description"):
            if fields[name]:
                entry[name] = fields[name]
        if fields["repeat"]:
            entry["repeat"] = fields["repeat"]
        if fields["ack_timeout"]:
            entry["ack_timeout"] = fields["ack_timeout"]
        if fields["on_sla_breach"]:
            entry["on_sla_breach"] = fields["on_sla_breach"]
        entry["steps"] = fields["steps"]
        return entry


def _step_entry(after: str, targets: list[str], round_robin: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"after": after, "notify": list(targets)}
    if round_robin:
        entry["round_robin"] = True
    return entry


class ChannelSection(Section):
    """The `channels` mapping (email: SMTP settings …): one settings row per channel."""

    name = "channels"

    @property
    def spec(self) -> type[Spec]:
        return ChannelSpec

    def entries(self, document: Any) -> list[Spec] | None:
        channels: ChannelsSpec | None = document.channels
        if channels is None:
            return None
        out: list[Spec] = []
        for name in type(channels).model_fields:
            settings = getattr(channels, name)
            if settings is not None:
                dumped = settings.model_dump(by_alias=True, exclude_defaults=True)
                out.append(ChannelSpec(name=name, settings=dumped))
        return out

    def desired(self, spec: Spec, position: int) -> Fields:
        assert isinstance(spec, ChannelSpec)
        return {"settings": dict(spec.settings)}

    def load(self, session: Session) -> dict[str, Current]:
        return {
            row.name: Current({"settings": dict(row.settings)}, row.archived)
            for row in session.scalars(select(ChannelSettingsRow))
        }

    def write(self, session: Session, key: str, fields: Fields) -> None:
        row = session.get(ChannelSettingsRow, key)
        if row is None:
            row = ChannelSettingsRow(name=key)
            session.add(row)
        row.settings = dict(fields["settings"])
        row.archived = False

    def remove(self, session: Session, key: str) -> None:
        row = session.get(ChannelSettingsRow, key)
        if row is not None:
            row.archived = True

    def export_document(self, entries: list[dict[str, Any]]) -> Any:
        return {entry["name"]: entry["settings"] for entry in entries}

    def export_entry(self, key: str, fields: Fields) -> dict[str, Any]:
        return {"name": key, "settings": fields["settings"]}
