"""Rich renderings of API answers for terminal commands (pure: data in, renderables out)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {
    "triggered": "bold red",
    "investigating": "yellow",
    "identified": "yellow",
    "monitoring": "cyan",
    "resolved": "green",
    "closed": "dim",
}


def as_json(data: Any, *, compact: bool = False) -> str:
    """Return `data` as JSON text, indented unless `compact` (one line, for JSON lines)."""
    return json.dumps(data, ensure_ascii=False, indent=None if compact else 2)


def parse_time(value: str) -> datetime:
    """Parse an API timestamp; a naive one is taken as UTC."""
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def when(value: str | None) -> str:
    """Return an API timestamp as 'YYYY-MM-DD HH:MM:SSZ' in UTC, or '-'."""
    return parse_time(value).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def age(value: str | None, now: datetime | None = None) -> str:
    """Return how long ago `value` was, compactly: 45s, 12m, 3h 5m, 2d 4h."""
    if not value:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - parse_time(value)).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return f"{seconds}s"
    if minutes < 60:
        return f"{minutes}m"
    if hours < 24:
        return f"{hours}h {minutes % 60}m" if minutes % 60 else f"{hours}h"
    return f"{days}d {hours % 24}h" if hours % 24 else f"{days}d"


def status_text(value: str) -> Text:
    """Return a status name coloured by how urgent it is."""
    return Text(value, style=STATUS_STYLE.get(value, ""))


def change_line(incident: dict[str, Any], what: str) -> Text:
    """Return 'INC-3 <what>; status X (next: …)' for the answer of a change."""
    line = Text(f"{incident['ref']} {what}; status ")
    line.append_text(status_text(incident["status"]))
    nxt = ", ".join(incident.get("allowed_next") or []) or "none"
    line.append(f" (next: {nxt})", style="dim")
    return line


def event_line(event: dict[str, Any]) -> Text:
    """Return one timeline event as a line: time, id, actor (source), kind and text."""
    line = Text(f"{when(event['at'])}  #{event['id']:<5} ", style="dim")
    line.append(f"{event['actor']} ({event['source']})  ", style="cyan")
    line.append(f"{event['kind']}: ", style="bold")
    line.append(event["text"])
    if event.get("pinned"):
        line.append("  [pinned]", style="magenta")
    return line


def checklist_lines(items: Iterable[dict[str, Any]]) -> list[Text]:
    """Return checklist items as '[x] #id text (who, when)' lines."""
    lines = []
    for item in items:
        line = Text(f"  {'[x]' if item['done'] else '[ ]'} ", style="green" if item["done"] else "")
        line.append(f"#{item['id']:<4} ", style="dim")
        line.append(item["text"])
        if item["done"] and item.get("done_by"):
            line.append(f"  ({item['done_by']}, {when(item['done_at'])})", style="dim")
        lines.append(line)
    return lines


def incidents_table(items: Iterable[dict[str, Any]], now: datetime | None = None) -> Table:
    """Return a page of incidents as a table: ref, severity, status, title, services, age."""
    table = Table("Ref", "Sev", "Status", "Title", "Services", "Commander", "Age")
    for item in items:
        table.add_row(
            Text(item["ref"], style="bold"),
            Text(item["severity"]),
            status_text(item["status"]),
            Text(item["title"]),
            Text(", ".join(item["services"]) or "-"),
            Text(item["roles"].get("commander") or "-"),
            age(item["milestones"].get("declared") or item["created_at"], now),
        )
    return table


def incident_view(incident: dict[str, Any], now: datetime | None = None) -> Group:
    """Return an incident's details and checklist."""
    parts: list[RenderableType] = [
        Text.assemble((incident["ref"], "bold"), "  ", (incident["title"], "bold"))
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    nxt = ", ".join(incident["allowed_next"]) or "none"
    grid.add_row("status", status_text(incident["status"]).append(f"  (next: {nxt})", style="dim"))
    grid.add_row("severity", Text(incident["severity"]))
    grid.add_row("services", Text(", ".join(incident["services"]) or "-"))
    roles = ", ".join(f"{role}: {user}" for role, user in sorted(incident["roles"].items()))
    grid.add_row("roles", Text(roles or "-"))
    if incident["tags"]:
        grid.add_row("tags", Text(", ".join(incident["tags"])))
    for name, at in incident["milestones"].items():
        if at:
            grid.add_row(name, f"{when(at)}  ({age(at, now)} ago)")
    if incident.get("respond_by") and not incident["milestones"].get("acknowledged"):
        grid.add_row("respond by", when(incident["respond_by"]))
    grid.add_row("id / slug", f"{incident['id']} / {incident['slug']}")
    for label, key in (
        ("description", "description"),
        ("impact", "customer_impact"),
        ("resolution", "resolution"),
    ):
        if incident[key]:
            grid.add_row(label, Text(incident[key]))
    parts.append(grid)
    items = incident.get("checklist") or []
    if items:
        done, total = incident["checklist_done"], incident["checklist_total"]
        parts.append(Text(f"\nChecklist ({done}/{total} done)", style="bold"))
        parts.extend(checklist_lines(items))
    return Group(*parts)


# --- alerting ---

ALERT_STATUS_STYLE = {
    "firing": "bold red",
    "acknowledged": "cyan",
    "suppressed": "magenta",
    "resolved": "green",
    "ok": "green",
    "overdue": "bold red",
    "waiting": "dim",
    "active": "magenta",
    "scheduled": "cyan",
    "ended": "dim",
}


def alert_status_text(value: str) -> Text:
    """Return an alert, alert group, heartbeat or silence state coloured by urgency."""
    return Text(value, style=ALERT_STATUS_STYLE.get(value, ""))


def matchers_text(matchers: dict[str, Any]) -> str:
    """Return silence matchers as `name=value` terms (=~, !=, !~ and other operators spelled)."""
    symbols = {"eq": "=", "ne": "!=", "regex": "=~", "not_regex": "!~"}
    terms = []
    for name, condition in matchers.items():
        if isinstance(condition, dict):
            for op, value in condition.items():
                symbol = symbols.get(op)
                terms.append(f"{name}{symbol}{value}" if symbol else f"{name} {op} {value}")
        elif isinstance(condition, list):
            terms.append(f"{name} in [{', '.join(map(str, condition))}]")
        else:
            terms.append(f"{name}={condition}")
    return ", ".join(terms)


def alerts_table(items: Iterable[dict[str, Any]], now: datetime | None = None) -> Table:
    """Return a page of alerts: id, status, severity, title, service, group, events, last seen."""
    table = Table("ID", "Status", "Sev", "Title", "Service", "Group", "Events", "Last seen")
    for item in items:
        table.add_row(
            Text(str(item["id"]), style="bold"),
            alert_status_text(item["status"]),
            Text(item["severity"] or "-"),
            Text(item["title"]),
            Text(item["service"]),
            Text(str(item["group_id"])),
            Text(str(item["event_count"])),
            age(item["last_seen_at"], now),
        )
    return table


def alert_groups_table(items: Iterable[dict[str, Any]], now: datetime | None = None) -> Table:
    """Return a page of alert groups: id, status, urgency, title, service, alerts, incident, age."""
    table = Table("ID", "Status", "Urgency", "Title", "Service", "Alerts", "Incident", "Age")
    for item in items:
        incident = item["incident_id"]
        table.add_row(
            Text(str(item["id"]), style="bold"),
            alert_status_text(item["status"]),
            Text(item["urgency"]),
            Text(item["title"]),
            Text(item["service"]),
            Text(str(item["alert_count"])),
            Text(f"INC-{incident}" if incident else "-"),
            age(item["created_at"], now),
        )
    return table


def history_line(entry: dict[str, Any]) -> Text:
    """Return one alert or group history entry: time, actor, kind, alert, payload and text."""
    line = Text(f"{when(entry['at'])}  ", style="dim")
    line.append(f"{entry['actor']}  ", style="cyan")
    line.append(entry["kind"], style="bold")
    if entry.get("alert_id"):
        line.append(f"  alert {entry['alert_id']}", style="dim")
    if entry.get("text"):
        line.append(f": {entry['text']}")
    if entry.get("payload_id"):
        line.append(f"  (payload {entry['payload_id']})", style="dim")
    return line


def _links(items: Iterable[dict[str, str]], key: str) -> str:
    return "\n".join(
        f"{i.get('text') or i.get('alt') or ''} {i.get(key) or ''}".strip() for i in items
    )


def alert_view(alert: dict[str, Any], now: datetime | None = None) -> Group:
    """Return one alert's fields, labels and links."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    grid.add_row("status", alert_status_text(alert["status"]))
    for label, key in (
        ("dedup key", "dedup_key"), ("service", "service"), ("group", "group_id"),
        ("severity", "severity"), ("urgency", "urgency"), ("source", "source"),
        ("component", "component"), ("group name", "group"), ("class", "class"),
        ("suppressed by", "suppressed_by"),
    ):  # fmt: skip
        if alert.get(key) not in (None, ""):
            grid.add_row(label, Text(str(alert[key])))
    if alert["labels"]:
        labels = "  ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        grid.add_row("labels", Text(labels))
    if alert["links"]:
        grid.add_row("links", Text(_links(alert["links"], "href")))
    if alert["images"]:
        grid.add_row("images", Text(_links(alert["images"], "src")))
    grid.add_row("events", str(alert["event_count"]))
    for label, key in (("first seen", "first_seen_at"), ("last seen", "last_seen_at")):
        grid.add_row(label, f"{when(alert[key])}  ({age(alert[key], now)} ago)")
    title = Text.assemble((f"alert {alert['id']}", "bold"), "  ", (alert["title"], "bold"))
    return Group(title, grid)


def alert_group_view(group: dict[str, Any], now: datetime | None = None) -> Group:
    """Return an alert group's summary and its alerts."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(group["counts"].items()) if n)
    grid.add_row("status", alert_status_text(group["status"]))
    grid.add_row("service", Text(group["service"]))
    grid.add_row("urgency", Text(group["urgency"]))
    grid.add_row("alerts", Text(f"{group['alert_count']}" + (f"  ({counts})" if counts else "")))
    if group["incident_id"]:
        grid.add_row("incident", Text(f"INC-{group['incident_id']}"))
    elif group["incident_severity"]:
        grid.add_row("declares as", Text(group["incident_severity"]))
    grid.add_row("started", f"{when(group['created_at'])}  ({age(group['created_at'], now)} ago)")
    grid.add_row("last alert", when(group["last_alert_at"]))
    for label, at, by in (
        ("acknowledged", "acknowledged_at", "acknowledged_by"),
        ("resolved", "resolved_at", "resolved_by"),
    ):
        if group[at]:
            grid.add_row(label, Text(f"{when(group[at])} by {group[by]}"))
    title = Text.assemble((f"alert group {group['id']}", "bold"), "  ", (group["title"], "bold"))
    parts: list[RenderableType] = [title, grid]
    if group.get("alerts"):
        parts.append(Text(f"\nAlerts ({len(group['alerts'])})", style="bold"))
        parts.append(alerts_table(group["alerts"], now))
    return Group(*parts)


def _window_state(item: dict[str, Any], now: datetime | None) -> Text:
    current = now or datetime.now(UTC)
    if item["active"]:
        return alert_status_text("active")
    ended = parse_time(item["ends_at"]) <= current
    return alert_status_text("ended" if ended else "scheduled")


def silences_table(items: Iterable[dict[str, Any]], now: datetime | None = None) -> Table:
    """Return silences: id, state, matchers, start, end, who, comment."""
    table = Table("ID", "State", "Matchers", "Starts", "Ends", "By", "Comment")
    for item in items:
        by = item["created_by"] + (" (config)" if item["from_config"] else "")
        table.add_row(
            Text(str(item["id"]), style="bold"),
            _window_state(item, now),
            Text(matchers_text(item["matchers"])),
            when(item["starts_at"]),
            when(item["ends_at"]),
            Text(by),
            Text(item["comment"] or "-"),
        )
    return table


def windows_table(items: Iterable[dict[str, Any]], now: datetime | None = None) -> Table:
    """Return maintenance windows: id, state, service, start, end, who, comment."""
    table = Table("ID", "State", "Service", "Starts", "Ends", "By", "Comment")
    for item in items:
        by = item["created_by"] + (" (config)" if item["from_config"] else "")
        table.add_row(
            Text(str(item["id"]), style="bold"),
            _window_state(item, now),
            Text(item["service"]),
            when(item["starts_at"]),
            when(item["ends_at"]),
            Text(by),
            Text(item["comment"] or "-"),
        )
    return table


def heartbeats_table(items: Iterable[dict[str, Any]], now: datetime | None = None) -> Table:
    """Return heartbeats: key, name, service, status, interval, last ping, due."""
    table = Table("Key", "Name", "Service", "Status", "Every", "Last ping", "Due")
    for item in items:
        last = item["last_ping_at"]
        table.add_row(
            Text(item["key"], style="bold"),
            Text(item["name"] or "-"),
            Text(item["service"]),
            alert_status_text(item["status"]),
            Text(item["interval"]),
            f"{age(last, now)} ago" if last else "never",
            when(item["due_at"]),
        )
    return table
