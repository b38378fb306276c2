"""The working state of one ingest batch: decide per signal in memory, write once.

Decisions are the pure functions of tocsin.core.alerts; this module holds what a batch has
loaded (open alerts, collecting groups) and turns its decisions into a few bulk statements."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping, Select, insert, or_, select, update
from sqlalchemy.orm import Session

from tocsin.core.alerts import (
    AlertStatus,
    DeclareRule,
    Routing,
    Signal,
    Suppression,
    default_urgency,
    group_status,
    incident_severity_for,
    joins_group,
    match_view,
    matches_all,
    suppression,
)
from tocsin.core.lifecycle import (
    ALERT_GROUP,
    ALERT_GROUP_ACKNOWLEDGED,
    ALERT_GROUP_RESOLVED,
    ALERT_GROUP_TRIGGERED,
)
from tocsin.services import escalations, inhibit_sources, lifecycle
from tocsin.services.alerting_config import (
    AlertingConfig,
    active_noise_control,
)
from tocsin.services.group_declare import declare_groups
from tocsin.services.ingest_model import Delivery, Outcome, open_key
from tocsin.services.ingest_prepare import (
    ENCODED_COLUMNS,
    Assessor,
    Prepared,
    content,
    full_signal,
    prepared_view,
    projection,
)
from tocsin.services.ingest_rows import (
    ALERT_COLUMNS,
    ALERTS,
    GROUP_COLUMNS,
    GROUPS,
    GROUPS_BY_ID,
    GROUPS_BY_OPEN_KEY,
    LOCKING,
    LOGS,
    OPEN_ALERTS,
    OPEN_COUNTS,
    UPDATE_ALERT,
    UPDATE_GROUP,
    alert_row,
    chunks,
    source_condition,
    stored_view,
    update_params,
    why_text,
)
from tocsin.storage.bulk import insert_rows, insert_with_ids
from tocsin.storage.tables import (
    AlertGroupRow,
    AlertLogRow,
    AlertRow,
)

# Inhibition looks at this many of the most recent firing alerts as possible sources.
INHIBIT_SOURCES = 5000


@dataclass(slots=True)
class _Alert:
    """An open alert as this batch sees it (loaded, or created in this batch)."""

    row: dict[str, Any]
    view: dict[str, Any]
    new: bool
    dirty: bool = False


@dataclass(frozen=True, slots=True)
class _Done:
    """What a signal did, before the batch is written and ids are known."""

    dedup_key: str
    action: str
    alert: _Alert | None
    status: str | None

    def outcome(self) -> Outcome:
        if self.alert is None:
            return Outcome(self.dedup_key, self.action)
        row = self.alert.row
        return Outcome(self.dedup_key, self.action, row["id"], row["group_id"], self.status)


@dataclass(slots=True)
class _Group:
    row: dict[str, Any]
    new: bool
    touched: bool = True
    new_alerts: list[datetime] = field(default_factory=list)
    # An alert of the group was acknowledged or resolved: its status needs a count.
    recount: bool = False


class _Batch:
    """The working state of one ingest batch; writes happen in flush()."""

    def __init__(self, session: Session, config: AlertingConfig, now: datetime) -> None:
        self.session = session
        self.config = config
        self.now = now
        self.alerts: dict[str, _Alert] = {}
        self.groups: dict[str, _Group] = {}
        self.loaded_groups: dict[int, _Group] = {}
        self.resolved: list[_Alert] = []
        self.logs: list[dict[str, Any]] = []
        self._firing_stored: list[Mapping[str, Any]] | None = None
        self._batch_sources: list[Mapping[str, Any]] = []
        self._forgetting = False
        self.silences, self.windows = active_noise_control(session, now)
        self._fetched: set[str] = set()
        self.postgres = session.get_bind().dialect.name == "postgresql"
        # Routing of re-fired alerts (new ones come routed: ingest_prepare).
        self.assessor = Assessor(config)
        # Silences, maintenance windows and inhibit rules decide by the fields they read:
        # alike alerts of a batch share one answer (see suppressed).
        rules = config.inhibit_rules
        self._noise_fields = _fields_read(
            [s.matchers for s in self.silences] + [r.target for r in rules], "service"
        )
        self._noise: dict[tuple[Any, ...], tuple[Suppression | None, bool]] = {}
        self._source_fields = _fields_read([r.source for r in rules])
        self._sources: dict[tuple[Any, ...], bool] = {}
        self._noisy = bool(self.silences or self.windows or rules)

    # --- prefetch ---

    def prefetch_alerts(self, keys: set[str]) -> None:
        """Load (and on PostgreSQL lock) the open alerts these keys name, and their groups."""
        group_ids: set[int] = set()
        for chunk in chunks(sorted(keys)):
            for row in self._read(OPEN_ALERTS, chunk):
                data = dict(row)
                self.alerts[data["open_key"]] = _Alert(data, stored_view(data), new=False)
                group_ids.add(data["group_id"])
        self._load_groups(GROUPS_BY_ID, sorted(group_ids))

    def prefetch_groups(self, keys: set[str]) -> None:
        """Load (and lock) the collecting groups these open keys name."""
        missing = sorted(k for k in keys if k not in self.groups and k not in self._fetched)
        self._fetched.update(missing)
        self._load_groups(GROUPS_BY_OPEN_KEY, missing)

    def _load_groups(self, query: Select[Any], values: Sequence[Any]) -> None:
        for chunk in chunks(values):
            for row in self._read(query, chunk):
                if row["id"] in self.loaded_groups:
                    continue
                group = _Group(dict(row), new=False, touched=False)
                self.loaded_groups[row["id"]] = group
                if row["open_key"]:
                    self.groups.setdefault(row["open_key"], group)

    def _read(self, query: Select[Any], keys: Sequence[Any]) -> Iterable[RowMapping]:
        if not keys:
            return ()
        # Two processes ingesting the same keys on PostgreSQL take turns (see LOCKING).
        statement = LOCKING[query] if self.postgres else query
        return self.session.execute(statement, {"keys": list(keys)}).mappings()

    def group_by_id(self, group_id: int) -> _Group:
        if group_id not in self.loaded_groups:
            self._load_groups(GROUPS_BY_ID, [group_id])
        return self.loaded_groups[group_id]

    # --- decisions ---

    def routing(self, view: Mapping[str, Any]) -> Routing:
        return self.assessor.routing(view)

    def suppressed(self, view: dict[str, Any]) -> Suppression | None:
        rules = self.config.inhibit_rules
        memo = projection(view, self._noise_fields)
        static = self._noise.get(memo) if memo is not None else None
        if static is None:
            # Windows and silences, and whether some inhibit rule targets the alert: all
            # decided by the fields they read, so alike alerts of a batch share one answer.
            found = suppression(
                view, now=self.now, silences=self.silences, windows=self.windows,
                inhibit_rules=(), firing=(),
            )  # fmt: skip
            static = (found, any(matches_all(rule.target, view) for rule in rules))
            if memo is not None:
                self._noise[memo] = static
        found, targeted = static
        if found is not None or not targeted:
            return found
        # Only an alert some rule targets needs the possible sources.
        return suppression(
            view,
            now=self.now,
            silences=self.silences,
            windows=self.windows,
            inhibit_rules=rules,
            firing=self._batch_sources + self._stored_sources(),
        )

    def note_source(self, view: Mapping[str, Any]) -> None:
        """Remember a firing alert of this batch that could inhibit others."""
        if self._is_source(view):
            self._batch_sources.append(view)
            self._sources_changed()

    def _is_source(self, view: Mapping[str, Any]) -> bool:
        memo = projection(view, self._source_fields)
        found = self._sources.get(memo) if memo is not None else None
        if found is None:
            found = any(matches_all(rule.source, view) for rule in self.config.inhibit_rules)
            if memo is not None:
                self._sources[memo] = found
        return found

    def _sources_changed(self) -> None:
        """This batch changes the firing sources: other batches must not reuse a snapshot."""
        if not self._forgetting:
            self._forgetting = True
            inhibit_sources.forget_after_commit(self.session)

    def _stored_sources(self) -> list[Mapping[str, Any]]:
        """Return stored firing alerts that match some rule's source (see inhibit_sources)."""
        if self._firing_stored is None:
            self._firing_stored = inhibit_sources.firing_sources(
                self.session, self.config.inhibit_rules, self._load_sources
            )
        return self._firing_stored

    def _load_sources(self) -> list[Mapping[str, Any]]:
        """Query the firing alerts that match some rule's source.

        Equality matchers narrow the query in the database (label or column); the rest is
        checked in Python, on at most INHIBIT_SOURCES of the most recent candidates.
        """
        conditions = [source_condition(rule.source) for rule in self.config.inhibit_rules]
        query = (
            select(AlertRow.labels, AlertRow.severity, AlertRow.title, AlertRow.dedup_key,
                   AlertRow.service_id)
            .where(AlertRow.status == "firing", or_(*conditions))
            .order_by(AlertRow.id.desc())
            .limit(INHIBIT_SOURCES)
        )  # fmt: skip
        rows = self.session.execute(query)
        views = [
            {"severity": sev, "title": title, "dedup_key": key, "service": svc, **labels}
            for labels, sev, title, key, svc in rows
        ]
        return [v for v in views if self._is_source(v)]

    def window(self, service: str) -> timedelta | None:
        rule = self.config.grouping.get(service)
        return rule.window if rule else None

    # --- signals ---

    def prefetch_for(self, deliveries: Sequence[Delivery]) -> None:
        """Load every group the batch's new alerts may join, in one query per 500 keys."""
        wanted = set()
        for delivery in deliveries:
            for prep in delivery.prepared:
                if prep is not None and prep.open_key not in self.alerts:
                    wanted.add(prep.group_open_key)
        self.prefetch_groups(wanted)

    def trigger(self, delivery: Delivery, signal: Signal, plan: Prepared, payload_id: int) -> _Done:
        integration = delivery.integration
        key = plan.open_key
        existing = self.alerts.get(key)
        if existing is not None:
            signal = full_signal(signal, plan)
            view = match_view(
                signal,
                service=existing.row["service_id"],
                integration=integration.key,
                now=self.now,
            )
            # A new alert of this batch is inserted with encoded content (see _write_alerts).
            fresh = plan.content if existing.new else content(signal)
            return self._refire(existing, fresh, view, self.routing(view), payload_id)
        decided, service = plan.decided, plan.service
        # Only noise control reads a new alert's view: without it the writer makes none.
        seen: dict[str, Any] = {}
        why = None
        if self._noisy:
            seen = prepared_view(delivery, signal, plan)
            why = self.suppressed(seen)
        group = self._group_for(plan, signal)
        status = AlertStatus.SUPPRESSED if why else AlertStatus.FIRING
        row = alert_row(signal, plan.content, integration.key, service, key, status, self.now)
        row["urgency"] = (decided.urgency or default_urgency(signal)).value
        row["suppressed_by"] = f"{why.kind}:{why.ref}" if why else None
        row["_group"] = group
        alert = _Alert(row, seen, new=True, dirty=True)
        self.alerts[key] = alert
        group.new_alerts.append(self.now)
        group.row["last_alert_at"] = self.now
        group.row["alert_count"] += 1
        group.touched = True
        self._declare_rule(group, decided)
        kind = "suppressed" if why else "fired"
        if why is None and self.config.inhibit_rules:
            self.note_source(seen)
        self._log(alert, kind, payload_id, delivery.actor, why_text(why))
        return _Done(signal.dedup_key, "created", alert, status.value)

    def _refire(
        self,
        alert: _Alert,
        fresh: Mapping[str, Any],
        view: dict[str, Any],
        decided: Routing,
        payload_id: int,
    ) -> _Done:
        row = alert.row
        view["service"] = row["service_id"]
        row.update(fresh)
        row["last_seen_at"] = self.now
        row["event_count"] += 1
        alert.view = view
        alert.dirty = True
        kind = "refired"
        if row["status"] == AlertStatus.SUPPRESSED:
            why = self.suppressed(view)
            if why is None:
                row["status"] = AlertStatus.FIRING.value
                row["suppressed_by"] = None
                kind = "unsuppressed"
                self.note_source(view)
        group = self._group_of(alert)
        group.touched = True
        self._declare_rule(group, decided)
        self._log(alert, kind, payload_id, "integration")
        return _Done(row["dedup_key"], "refired", alert, row["status"])

    def acknowledge(self, delivery: Delivery, signal: Signal, payload_id: int) -> _Done:
        alert = self.alerts.get(open_key(delivery.integration.key, signal.dedup_key))
        if alert is None:
            return _Done(signal.dedup_key, "dropped", None, None)
        row = alert.row
        if row["status"] == AlertStatus.FIRING:
            if self.config.inhibit_rules and self._is_source(alert.view):
                self._sources_changed()
            row["status"] = AlertStatus.ACKNOWLEDGED.value
            row["acknowledged_at"] = self.now
            alert.dirty = True
            self._changed_group_of(alert)
        self._log(alert, "acknowledged", payload_id, delivery.actor)
        return _Done(signal.dedup_key, "acknowledged", alert, row["status"])

    def resolve(self, delivery: Delivery, signal: Signal, payload_id: int) -> _Done:
        key = open_key(delivery.integration.key, signal.dedup_key)
        alert = self.alerts.get(key)
        if alert is None:
            return _Done(signal.dedup_key, "dropped", None, None)
        self._resolve_alert(alert, signal.ends_at)
        del self.alerts[key]
        self._log(alert, "resolved", payload_id, delivery.actor)
        return _Done(signal.dedup_key, "resolved", alert, "resolved")

    def _resolve_alert(self, alert: _Alert, ends_at: datetime | None) -> None:
        row = alert.row
        if self.config.inhibit_rules and self._is_source(alert.view):
            self._sources_changed()
        row["status"] = AlertStatus.RESOLVED.value
        row["resolved_at"] = self.now
        row["ends_at"] = ends_at or self.now
        row["open_key"] = None
        alert.dirty = True
        self._changed_group_of(alert)
        self.resolved.append(alert)

    # --- groups ---

    def _group_of(self, alert: _Alert) -> _Group:
        group = alert.row.get("_group")
        if group is None:
            group = self.group_by_id(alert.row["group_id"])
            alert.row["_group"] = group
        assert isinstance(group, _Group)
        return group

    def _changed_group_of(self, alert: _Alert) -> None:
        group = self._group_of(alert)
        group.touched = True
        group.recount = True

    def _group_for(self, plan: Prepared, signal: Signal) -> _Group:
        service, decided, okey = plan.service, plan.decided, plan.group_open_key
        if okey not in self.groups and okey not in self._fetched:
            self.prefetch_groups({okey})
        group = self.groups.get(okey)
        if group is not None and joins_group(
            group.row["last_alert_at"], self.window(service), self.now
        ):
            return group
        if group is not None:
            # The window passed: the old group stops collecting; this alert starts a new one.
            group.row["open_key"] = None
            group.touched = True
        severity = decided.incident_severity or incident_severity_for(
            signal.severity, self.config.severities
        )
        row = {
            "id": None,
            "service_id": service,
            "group_key": plan.group_key,
            "open_key": okey,
            "status": AlertStatus.FIRING.value,
            "title": signal.title[:1024],
            "urgency": (decided.urgency or default_urgency(signal)).value,
            "incident_severity": severity,
            "declare": None,
            "incident_id": None,
            "alert_count": 0,
            "created_at": self.now,
            "last_alert_at": self.now,
            "acknowledged_at": None,
            "acknowledged_by": None,
            "resolved_at": None,
            "resolved_by": None,
            "version": 1,
        }
        fresh = _Group(row, new=True)
        self.groups[okey] = fresh
        return fresh

    def _declare_rule(self, group: _Group, decided: Routing) -> None:
        if decided.declare is not None and group.row["declare"] is None:
            group.row["declare"] = {
                "min_alerts": decided.declare.min_alerts,
                "within_s": int(decided.declare.within.total_seconds())
                if decided.declare.within
                else None,
            }
            if decided.incident_severity:
                group.row["incident_severity"] = decided.incident_severity

    def _log(
        self, alert: _Alert, kind: str, payload_id: int | None, actor: str, text_: str = ""
    ) -> None:
        self.logs.append(
            {
                "_alert": alert,
                "payload_id": payload_id,
                "at": self.now,
                "kind": kind,
                "actor": actor,
                "text": text_,
            }
        )

    # --- writing ---

    def flush(self) -> None:
        """Write groups, alerts, logs and group statuses; declare incidents where due."""
        session = self.session
        all_groups = {id(g): g for g in self.groups.values()}
        all_groups.update({id(g): g for g in self.loaded_groups.values()})
        everything = list(self.alerts.values()) + self.resolved
        for alert in everything:
            group = alert.row.get("_group")
            if isinstance(group, _Group):
                all_groups[id(group)] = group
        due = self._insert_new_groups([g for g in all_groups.values() if g.new], everything)
        self._write_alerts(everything)
        if self.logs:
            for entry in self.logs:
                alert = entry.pop("_alert")
                entry["alert_id"] = alert.row["id"]
                entry["group_id"] = alert.row["group_id"] or alert.row["_group"].row["id"]
            insert_rows(session, LOGS, self.logs)
        touched = [g for g in all_groups.values() if g.touched]
        if touched:
            due += self._settle_stored(touched)
        for group in due:
            if group.row.get("_resolved_now"):
                self._group_log(group.row["id"], "resolved", "all alerts resolved")
        due = [g for g in due if not g.row.pop("_resolved_now", False)]
        if due:
            self._declare(due)
        self._escalate(all_groups.values())

    def _escalate(self, groups: Iterable[_Group]) -> None:
        """Start, acknowledge or resolve the escalations of groups whose status changed."""
        changes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for group in groups:
            change = group.row.pop("_escalate", None)
            if change is not None:
                changes[change].append(group.row)
        # A group declared into an incident is escalated as that incident.
        starting = [row for row in changes["start"] if row["incident_id"] is None]
        escalations.start(self.session, [group_subject(row) for row in starting], self.now)
        for change in ("acknowledge", "resolve"):
            ids = [row["id"] for row in changes[change]]
            getattr(escalations, change)(
                self.session, escalations.GROUP, ids, self.now, "integration"
            )
        lifecycle.emit_many(self.session, group_events(changes, self.now))

    def _insert_new_groups(
        self, new_groups: list[_Group], everything: list[_Alert]
    ) -> list[_Group]:
        """Insert the groups opened in this batch, settled in memory; return those due."""
        if not new_groups:
            return []
        # Every alert of a group created in this batch is in this batch: count in memory.
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        for alert in everything:
            group = alert.row.get("_group")
            status = alert.row["status"]
            if isinstance(group, _Group) and group.new and status != "resolved":
                tally = counts[id(group)]
                tally[status] = tally.get(status, 0) + 1
        due = [g for g in new_groups if self._settle(g, counts[id(g)])]
        rows = [
            {k: v for k, v in g.row.items() if k in GROUP_COLUMNS and k != "id"} for g in new_groups
        ]
        ids = insert_with_ids(self.session, GROUPS, rows)
        for group, group_id in zip(new_groups, ids, strict=True):
            group.row["id"] = group_id
            group.new = False
            group.touched = False
            self.loaded_groups[group_id] = group
        return due

    def _write_alerts(self, everything: list[_Alert]) -> None:
        dirty = {id(a): a for a in everything if a.dirty}
        new_alerts = [a for a in dirty.values() if a.new]
        if new_alerts:
            rows = []
            for alert in new_alerts:
                alert.row["group_id"] = alert.row["_group"].row["id"]
                rows.append(alert.row)
            # The rows themselves (the insert picks the table's columns out of them); this
            # sets each row's "id".
            insert_with_ids(self.session, ALERTS, rows, ENCODED_COLUMNS)
        changed = [update_params(a.row, ALERT_COLUMNS) for a in dirty.values() if not a.new]
        for alert in new_alerts:
            alert.new = False
        if changed:
            self.session.execute(UPDATE_ALERT, changed)

    def _settle(self, group: _Group, counts: Mapping[str, int] | None) -> bool:
        """Set a group's status from its alert counts (None: unchanged); return whether it may
        need declaring."""
        row = group.row
        acknowledged = row["acknowledged_at"] is not None
        status = (
            AlertStatus(row["status"])
            if counts is None
            else group_status(counts, acknowledged=acknowledged)
        )
        previous = row["status"]
        resolved_now = status == AlertStatus.RESOLVED and previous != AlertStatus.RESOLVED
        row["_escalate"] = _escalation_change(previous, status, new=group.new)
        if resolved_now:
            row["resolved_at"] = self.now
            row["resolved_by"] = row["resolved_by"] or "integration"
            row["open_key"] = None
            row["_resolved_now"] = True
        row["status"] = status.value
        row["version"] += 1
        wants = row["incident_id"] is None and bool(row["declare"]) and status == AlertStatus.FIRING
        return wants or resolved_now

    def _settle_stored(self, touched: list[_Group]) -> list[_Group]:
        # A live group that only gained alerts keeps its status: new or re-fired alerts never
        # lower its count of firing ones. Counting, on the other hand, reads every open alert
        # of the group, thousands after a long storm.
        counted = [g.row["id"] for g in touched if g.recount or not _live(g.row)]
        counts: dict[int, dict[str, int]] = {group_id: {} for group_id in counted}
        for chunk in chunks(counted):
            for group_id, status, count in self.session.execute(OPEN_COUNTS, {"keys": chunk}):
                counts[group_id][status] = count
        due = [g for g in touched if self._settle(g, counts.get(g.row["id"]))]
        self.session.execute(UPDATE_GROUP, [update_params(g.row, GROUP_COLUMNS) for g in touched])
        return due

    def _group_log(self, group_id: int, kind: str, text_: str) -> None:
        self.session.execute(
            insert(AlertLogRow),
            [
                {
                    "alert_id": None,
                    "group_id": group_id,
                    "payload_id": None,
                    "at": self.now,
                    "kind": kind,
                    "actor": "tocsin",
                    "text": text_,
                }
            ],
        )

    def _declare(self, groups: list[_Group]) -> None:
        ready: list[_Group] = []
        for group in groups:
            rule = DeclareRule(
                group.row["declare"]["min_alerts"],
                timedelta(seconds=group.row["declare"]["within_s"])
                if group.row["declare"]["within_s"]
                else None,
            )
            if rule.min_alerts <= 1:
                ready.append(group)
                continue
            query = select(AlertRow.first_seen_at).where(AlertRow.group_id == group.row["id"])
            if rule.within:
                query = query.where(AlertRow.first_seen_at > self.now - rule.within)
            if rule.holds(list(self.session.scalars(query)), self.now):
                ready.append(group)
        if ready:
            declare_groups(self.session, ready_rows := [g.row for g in ready], self.now)
            for row in ready_rows:
                self.session.execute(
                    update(AlertGroupRow)
                    .where(AlertGroupRow.id == row["id"])
                    .values(incident_id=row["incident_id"])
                )


def _live(group: Mapping[str, Any]) -> bool:
    """Whether a stored group has live alerts by its status: firing, or acknowledged as a group
    (an acknowledged group without acknowledged_at is one whose firing alerts were all
    acknowledged one by one: a new firing alert makes it firing again)."""
    status = group["status"]
    return status == AlertStatus.FIRING or (
        status == AlertStatus.ACKNOWLEDGED and group["acknowledged_at"] is not None
    )


def _fields_read(matchers: Iterable[Mapping[str, Any]], *always: str) -> tuple[str, ...]:
    """Return the view fields a set of matcher maps reads, sorted (a projection's fields)."""
    return tuple(sorted({*always, *(name for m in matchers for name in m)}))


def _escalation_change(previous: str, status: AlertStatus, *, new: bool) -> str | None:
    """Return what a group's status change means for its escalation, if anything."""
    if status == AlertStatus.FIRING and (new or previous == AlertStatus.SUPPRESSED):
        return "start"
    if new or status.value == previous:
        return None
    if status == AlertStatus.ACKNOWLEDGED and previous == AlertStatus.FIRING:
        return "acknowledge"
    if status in (AlertStatus.RESOLVED, AlertStatus.SUPPRESSED):
        return "resolve"
    return None


_TOLD = {
    "start": ALERT_GROUP_TRIGGERED,
    "acknowledge": ALERT_GROUP_ACKNOWLEDGED,
    "resolve": ALERT_GROUP_RESOLVED,
}


def group_events(
    changes: Mapping[str, list[dict[str, Any]]], now: datetime
) -> list[lifecycle.NewEvent]:
    """Return the lifecycle events of the batch's group status changes (one insert for all)."""
    told = []
    for change, kind in _TOLD.items():
        for row in changes.get(change, ()):
            # A suppressed group stops paging too, but it was not resolved.
            if change == "resolve" and row["status"] != AlertStatus.RESOLVED:
                continue
            data = lifecycle.group_data(row)
            told.append(lifecycle.NewEvent(kind, ALERT_GROUP, row["id"], "integration", now, data))
    return told


def group_subject(row: Mapping[str, Any]) -> escalations.Subject:
    """Return the escalation subject of an alert group row."""
    return escalations.Subject(
        escalations.GROUP,
        row["id"],
        row["service_id"],
        row["incident_severity"],
        row["urgency"],
        row["title"],
    )
