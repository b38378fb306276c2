"""`tocsin incident update` and `tocsin incident updates`: the commander's stakeholder updates
from a terminal (preview every audience's copy, send), and what was sent and is due next."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from tocsin.cli.client import DEFAULT_SERVER
from tocsin.cli.incident_cmds import (
    AsJson,
    IncidentId,
    Server,
    Token,
    _api,
    _json,
    _number,
    incident_app,
    out,
)
from tocsin.core.incidents import Status

_STATUSES = ", ".join(s.value for s in Status)


def register(app: typer.Typer) -> None:
    """Add `update` and `updates` to the `incident` command group (registered on `app`)."""
    incident_app.command("update")(update)
    incident_app.command("updates")(updates)


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M %Z").strip()


def _print_copies(audiences: list[dict[str, Any]]) -> None:
    if not audiences:
        out.print("no audience gets this message (see `communication:` in the config)")
    for item in audiences:
        head = Text(f"── {item['audience']} ", style="bold")
        head.append(f"({item['type']} → {', '.join(item['recipients'])})", style="dim")
        out.print(head)
        if item.get("error"):
            out.print(Text(f"   {item['error']}; the default wording is used", style="yellow"))
        out.print(Text(item["title"], style="bold"))
        out.print(Text(item["body"]))
        out.print()


def update(
    incident_id: IncidentId,
    message: Annotated[
        str,
        typer.Option("--message", "-m", help="The update; '-' reads it from standard input."),
    ],
    status: Annotated[
        str | None,
        typer.Option("--status", help=f"Move the incident to this status too: {_STATUSES}."),
    ] = None,
    next_steps: Annotated[
        str, typer.Option("--next-steps", help="What the responders do next.")
    ] = "",
    eta: Annotated[str, typer.Option("--eta", help="Expected resolution time.")] = "",
    preview: Annotated[
        bool, typer.Option("--preview", help="Show every audience's copy; send nothing.")
    ] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Send a stakeholder update to the incident's audiences (or --preview it)."""
    number = _number(incident_id)
    text = sys.stdin.read() if message == "-" else message
    body: dict[str, Any] = {"message": text, "next_steps": next_steps, "eta": eta}
    if status:
        body["status"] = status.strip().lower()
    path = f"/api/v1/incidents/{number}/updates"
    with _api(server, token) as api:
        answer = api.post(f"{path}/preview" if preview else path, body)
    if as_json:
        _json(answer)
        return
    if preview:
        out.print(Text(f"Preview of the {answer['kind']} for INC-{number}:\n", style="bold"))
        _print_copies(answer["audiences"])
        out.print("nothing was sent; run again without --preview to send", style="dim")
        return
    names = ", ".join(answer["audiences"]) or "no audience"
    line = Text(f"{answer['kind'].capitalize()} #{answer['id']} for INC-{number} sent to ")
    line.append(names, style="bold")
    line.append(f" ({answer['messages']} message{'s' if answer['messages'] != 1 else ''})")
    out.print(line)
    if answer.get("status"):
        out.print(f"  status is now {answer['status']}")
    if answer.get("next_update_at"):
        out.print(f"  next update due {_when(answer['next_update_at'])}")


def updates(
    incident_id: IncidentId,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List the stakeholder messages sent about an incident and when the next one is due."""
    number = _number(incident_id)
    with _api(server, token) as api:
        sent = api.get(f"/api/v1/incidents/{number}/updates")["items"]
        state = api.get(f"/api/v1/incidents/{number}/communication")
    if as_json:
        _json({"items": sent, "communication": state})
        return
    if not sent:
        out.print(f"no stakeholder messages sent about INC-{number} yet")
    for item in sent:
        who = "tocsin" if item["automatic"] else item["created_by"]
        line = Text(f"#{item['id']} {_when(item['created_at'])} ")
        line.append(item["kind"], style="bold")
        line.append(f" by {who} to {', '.join(item['audiences']) or 'no audience'}")
        out.print(line)
        if item["message"]:
            out.print(Text(f"   {item['message']}"))
    for audience in state["audiences"]:
        out.print(
            f"audience {audience['id']} ({audience['type']}): {', '.join(audience['messages'])}",
            style="dim",
        )
    if state["next_update_at"]:
        due = _when(state["next_update_at"])
        flag = " (OVERDUE)" if state["overdue"] else " (due now)" if state["due"] else ""
        out.print(f"next update due {due}{flag}; every {state['update_every']}")
    else:
        out.print("no update cadence for this incident", style="dim")
