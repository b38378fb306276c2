"""Rich renderings of the on-call API's answers (pure: data in, renderables out)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tocsin.cli.render import parse_time, when

ESCALATION_STYLE = {"active": "bold red", "acknowledged": "yellow", "resolved": "green"}
MESSAGE_STYLE = {"pending": "yellow", "sent": "green", "failed": "bold red"}


def people_text(people: Iterable[dict[str, Any]]) -> Text:
    """Return 'Alice Example (alice), …' or a dim 'nobody'."""
    names = [f"{p['name']} ({p['id']})" if p["name"] != p["id"] else p["id"] for p in people]
    return Text(", ".join(names)) if names else Text("nobody", style="dim")


def length(start: str, end: str) -> str:
    """Return the span between two API times compactly: 7d, 10h, 3d 4h, 45m."""
    delta = parse_time(end) - parse_time(start)
    days, rest = divmod(int(delta.total_seconds()), 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    return " ".join(parts) or "<1m"


def schedules_table(items: Iterable[dict[str, Any]]) -> Table:
    """Return schedules and who is on call on each now."""
    table = Table("Schedule", "Name", "Time zone", "On call now")
    for item in items:
        table.add_row(
            Text(item["id"], style="bold"),
            Text(item["name"]),
            Text(item["time_zone"]),
            people_text(item["on_call"]),
        )
    return table


def slots_table(items: Iterable[dict[str, Any]]) -> Table:
    """Return shifts and gaps: who, from, until, how long."""
    table = Table("On call", "From", "Until", "Length")
    for item in items:
        who = (
            Text("(nobody: gap)", style="bold red")
            if item["gap"]
            else Text(f"{item['name']} ({item['user']})")
        )
        table.add_row(
            who,
            Text(when(item["starts_at"])),
            Text(when(item["ends_at"])),
            Text(length(item["starts_at"], item["ends_at"])),
        )
    return table


def overrides_table(items: Iterable[dict[str, Any]]) -> Table:
    """Return overrides: id, kind, who (for whom), from, until, note."""
    table = Table("ID", "Kind", "User", "Replaces", "From", "Until", "Note", "By")
    for item in items:
        table.add_row(
            Text(str(item["id"]), style="bold"),
            Text(item["kind"]),
            Text(item["user"]),
            Text(item["replaces"] or "-"),
            Text(when(item["starts_at"])),
            Text(when(item["ends_at"])),
            Text(item["note"] or "-"),
            Text(item["created_by"]),
        )
    return table


def _layer_line(layer: dict[str, Any]) -> Text:
    line = Text(f"  {layer['position']}. ", style="dim")
    if layer["calendar"]:
        line.append("imported calendar: ")
        line.append(", ".join(layer["calendar_users"]) or "nobody matched")
        if layer["calendar_unmatched"]:
            line.append(f" (unmatched: {', '.join(layer['calendar_unmatched'])})", style="yellow")
        return line
    rotation = layer["rotation"] or {}
    what = rotation.get("type", "all at once")
    if rotation.get("handoff"):
        what += f", handoff {rotation['handoff']}"
    if rotation.get("start"):
        what += f", from {rotation['start']}"
    line.append(f"{what}: {', '.join(layer['users'])}")
    for window in layer["restrict"]:
        days = window.get("days", [])
        shown = ",".join(days) if isinstance(days, list) else str(days)
        line.append(f"  [{shown} {window.get('from', '')}-{window.get('to', '')}]", style="cyan")
    return line


def schedule_view(schedule: dict[str, Any]) -> Group:
    """Return a schedule's layers, who is on call, overrides, next shifts and gaps."""
    parts: list[RenderableType] = [
        Text(f"{schedule['name']} ({schedule['id']})", style="bold"),
        Text(f"time zone {schedule['time_zone']}", style="dim"),
    ]
    if schedule["description"]:
        parts.append(Text(schedule["description"]))
    on_call = Text("on call now: ")
    on_call.append_text(people_text(schedule["on_call"]))
    parts += [on_call, Text("\nLayers (later ones win)", style="bold")]
    parts += [_layer_line(layer) for layer in schedule["layers"]]
    if schedule["overrides"]:
        parts += [Text("\nOverrides", style="bold"), overrides_table(schedule["overrides"])]
    parts += [Text("\nNext shifts", style="bold"), slots_table(schedule["next_shifts"])]
    if schedule["gaps"]:
        parts.append(Text("\nGaps in the next 14 days (nobody on call)", style="bold red"))
        parts += [
            Text(f"  {when(g['starts_at'])} → {when(g['ends_at'])}") for g in schedule["gaps"]
        ]
    else:
        parts.append(Text("\nno gaps in the next 14 days", style="green"))
    return Group(*parts)


def _targets(targets: Iterable[dict[str, Any]]) -> str:
    return ", ".join(f"{t['type']} {t['name']}" for t in targets) or "-"


def policies_table(items: Iterable[dict[str, Any]]) -> Table:
    """Return escalation policies: id, name, steps, repeat, services."""
    table = Table("Policy", "Name", "Steps", "Repeat", "Ack timeout", "Services")
    for item in items:
        table.add_row(
            Text(item["id"], style="bold"),
            Text(item["name"]),
            Text(str(len(item["steps"]))),
            Text(str(item["repeat"])),
            Text(item["ack_timeout"] or "-"),
            Text(", ".join(item["services"]) or "-"),
        )
    return table


def policy_view(policy: dict[str, Any]) -> Group:
    """Return a policy's steps with their delays and targets."""
    parts: list[RenderableType] = [Text(f"{policy['name']} ({policy['id']})", style="bold")]
    if policy["description"]:
        parts.append(Text(policy["description"]))
    passes = policy["repeat"] + 1
    parts.append(Text(f"{passes} pass(es) through the steps; used by: "
                      f"{', '.join(policy['services']) or 'no service'}"))  # fmt: skip
    if policy["ack_timeout"]:
        parts.append(Text(f"acknowledgements expire after {policy['ack_timeout']}"))
    table = Table("Step", "After", "Notify", "Round robin")
    for step in policy["steps"]:
        table.add_row(
            Text(str(step["position"] + 1)),
            Text(step["after"]),
            Text(_targets(step["targets"])),
            Text("yes" if step["round_robin"] else "-"),
        )
    parts.append(table)
    if policy["on_sla_breach"]:
        parts.append(Text(f"on SLA breach: {_targets(policy['on_sla_breach'])}", style="yellow"))
    return Group(*parts)


def escalation_line(escalation: dict[str, Any] | None) -> Text:
    """Return an escalation's state in one line."""
    if escalation is None:
        return Text("no escalation (the service has no escalation policy)", style="dim")
    line = Text("escalation ")
    line.append(escalation["status"], style=ESCALATION_STYLE.get(escalation["status"], ""))
    line.append(
        f" · policy {escalation['policy']} · step {escalation['step'] + 1}"
        f" · pass {escalation['cycle'] + 1}"
    )
    if escalation["next_at"]:
        line.append(f" · next at {when(escalation['next_at'])}")
    if escalation["sla_breached_at"]:
        line.append(f" · SLA breached {when(escalation['sla_breached_at'])}", style="bold red")
    elif escalation["sla_due_at"]:
        line.append(f" · SLA due {when(escalation['sla_due_at'])}")
    return line


def notifications_view(data: dict[str, Any]) -> Group:
    """Return the escalation state, the notification log and the messages of a subject."""
    parts: list[RenderableType] = [escalation_line(data["escalation"])]
    parts.append(Text("\nLog", style="bold"))
    if not data["log"]:
        parts.append(Text("  nothing yet", style="dim"))
    for entry in data["log"]:
        line = Text(f"{when(entry['at'])}  ", style="dim")
        line.append(f"{entry['kind']}: ", style="bold")
        line.append(entry["text"])
        parts.append(line)
    if data["messages"]:
        table = Table("ID", "Kind", "Channel", "To", "User", "Status", "Tries", "Sent", "Error")
        for m in data["messages"]:
            table.add_row(
                Text(str(m["id"])),
                Text(m["kind"]),
                Text(m["channel"]),
                Text(m["destination"]),
                Text(m["user"] or "-"),
                Text(m["status"], style=MESSAGE_STYLE.get(m["status"], "")),
                Text(str(m["attempts"])),
                Text(when(m["sent_at"])),
                Text((m["last_error"] or "-")[:60]),
            )
        parts += [Text("\nMessages", style="bold"), table]
    return Group(*parts)


_TARGETS = ("address", "url", "number", "member", "topic")


def methods_table(items: Iterable[dict[str, Any]]) -> Table:
    """Return contact methods: id, type, address, name, verified, source."""
    table = Table("ID", "Type", "Address", "Name", "Verified", "From")
    for item in items:
        table.add_row(
            Text(item["id"], style="bold"),
            Text(item["type"]),
            Text(next((item[k] for k in _TARGETS if item.get(k)), "-")),
            Text(item["name"] or "-"),
            Text("yes", style="green") if item["verified"] else Text("no", style="yellow"),
            Text(item["source"]),
        )
    return table
