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
