"""`tocsin incident …`: declare and work incidents on a Tocsin server from a terminal."""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from time import sleep
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from tocsin.cli import render
from tocsin.cli.client import DEFAULT_SERVER, TocsinClient, reported
from tocsin.core.incidents import Status, parse_reference

incident_app = typer.Typer(
    help="Declare and work incidents on a Tocsin server.", no_args_is_help=True
)
# soft_wrap: long notes stay one line, so piped output can be grepped; terminals wrap anyway.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

Server = Annotated[
    str,
    typer.Option("--server", envvar="TOCSIN_SERVER", help="Tocsin base URL.", show_envvar=True),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="TOCSIN_TOKEN", help="API token.", show_envvar=True, show_default=False
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer as it is.")]
IncidentId = Annotated[
    str, typer.Argument(metavar="ID", help="Incident number (42) or reference (INC-42).")
]

_STATUSES = ", ".join(s.value for s in Status)


def register(app: typer.Typer) -> None:
    """Add the `incident` command group to `app`."""
    app.add_typer(incident_app, name="incident")


@contextmanager
def _api(server: str, token: str | None) -> Iterator[TocsinClient]:
    with reported(err), TocsinClient(server, token) as client:
        yield client


def _number(value: str) -> int:
    number = parse_reference(value)
    if number is None:
        err.print(Text(f"not an incident id: {value!r} (use 42 or INC-42)", style="red"))
        raise typer.Exit(1)
    return number


def _json(data: Any, *, compact: bool = False) -> None:
    typer.echo(render.as_json(data, compact=compact))


def _changed(incident: dict[str, Any], verb: str, *, as_json: bool) -> None:
    """Print an incident the server has just changed: raw JSON or one summary line."""
    if as_json:
        _json(incident)
    else:
        out.print(render.change_line(incident, verb))


@incident_app.command()
def declare(
    title: Annotated[str, typer.Argument(help="What is wrong, in a few words.")],
    severity: Annotated[str, typer.Option("--severity", "-s", help="Severity, e.g. P1.")],
    service: Annotated[
        list[str] | None,
        typer.Option("--service", metavar="SERVICE", help="Affected service id; repeatable."),
    ] = None,
    description: Annotated[str, typer.Option("--description", "-d", help="Details.")] = "",
    impact: Annotated[str, typer.Option("--impact", help="Customer impact.")] = "",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="TAG", help="Tag; repeatable.")
    ] = None,
    commander: Annotated[
        str | None, typer.Option("--commander", help="User id of the incident commander.")
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Declare an incident and print its reference, slug and id."""
    body: dict[str, Any] = {
        "title": title,
        "severity": severity,
        "services": service or [],
        "description": description,
        "customer_impact": impact,
        "tags": tag or [],
    }
    if commander:
        body["roles"] = {"commander": commander}
    with _api(server, token) as api:
        incident = api.post("/api/v1/incidents", body)
    if as_json:
        _json(incident)
        return
    line = Text("Declared ")
    line.append(incident["ref"], style="bold")
    line.append(f" ({incident['severity']}): {incident['title']}")
    out.print(line)
    out.print(f"  id {incident['id']} · slug {incident['slug']} · status {incident['status']}")


@incident_app.command("list")
def list_incidents(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", metavar="STATUS", help=f"Repeatable: {_STATUSES}."),
    ] = None,
    severity: Annotated[
        list[str] | None,
        typer.Option("--severity", "-s", metavar="SEVERITY", help="Repeatable, e.g. P0."),
    ] = None,
    service: Annotated[str | None, typer.Option("--service", help="Service id.")] = None,
    open_only: Annotated[
        bool, typer.Option("--open/--all", help="Open incidents only (default), or all.")
    ] = True,
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Text in title or description.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=200, help="Page size.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue a listing.")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List incidents, newest first."""
    params: dict[str, Any] = {
        "status": [s.lower() for s in status or []],
        "severity": severity or [],
        "service": service,
        "open": True if open_only else None,
        "q": query,
        "limit": limit,
        "cursor": cursor,
    }
    with _api(server, token) as api:
        page = api.get("/api/v1/incidents", params)
    if as_json:
        _json(page)
        return
    if not page["items"]:
        out.print("no incidents match" + ("" if not open_only else " (open only; --all for all)"))
    else:
        out.print(render.incidents_table(page["items"]))
    if page.get("next_cursor"):
        out.print(f"more: repeat with --cursor {page['next_cursor']}", style="dim")


@incident_app.command()
def show(
    incident_id: IncidentId,
    events: Annotated[
        int, typer.Option("--events", "-n", min=0, help="Timeline events to show (latest).")
    ] = 10,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show an incident with its checklist and latest timeline events."""
    number = _number(incident_id)
    with _api(server, token) as api:
        incident = api.get(f"/api/v1/incidents/{number}")
        timeline = api.get(f"/api/v1/incidents/{number}/timeline")["items"] if events else []
    latest = timeline[-events:] if events else []
    if as_json:
        _json({**incident, "timeline": latest})
        return
    out.print(render.incident_view(incident))
    if latest:
        out.print(Text(f"\nTimeline (latest {len(latest)} of {len(timeline)})", style="bold"))
        for event in latest:
            out.print(render.event_line(event))


@incident_app.command()
def ack(
    incident_id: IncidentId,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Acknowledge an incident (a triggered one moves to investigating)."""
    number = _number(incident_id)
    with _api(server, token) as api:
        incident = api.post(f"/api/v1/incidents/{number}/acknowledge")
    _changed(incident, "acknowledged", as_json=as_json)


@incident_app.command("status")
def change_status(
    incident_id: IncidentId,
    status: Annotated[str, typer.Argument(metavar="STATUS", help=f"One of: {_STATUSES}.")],
    note: Annotated[str | None, typer.Option("--note", help="Recorded with the change.")] = None,
    resolution: Annotated[
        str | None, typer.Option("--resolution", help="How it was resolved.")
    ] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Move an incident to another status."""
    number = _number(incident_id)
    body = {"status": status.strip().lower(), "note": note, "resolution": resolution}
    with _api(server, token) as api:
        incident = api.post(f"/api/v1/incidents/{number}/status", body)
    _changed(incident, "updated", as_json=as_json)


@incident_app.command()
def resolve(
    incident_id: IncidentId,
    resolution: Annotated[
        str | None, typer.Option("--resolution", "-r", help="How it was resolved.")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Recorded with the change.")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Resolve an incident."""
    number = _number(incident_id)
    with _api(server, token) as api:
        incident = api.post(
            f"/api/v1/incidents/{number}/resolve", {"resolution": resolution, "note": note}
        )
    _changed(incident, "resolved", as_json=as_json)


@incident_app.command()
def note(
    incident_id: IncidentId,
    text: Annotated[str, typer.Argument(help="The note; '-' reads it from standard input.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Add a note to an incident's timeline."""
    number = _number(incident_id)
    body = sys.stdin.read() if text == "-" else text
    with _api(server, token) as api:
        event = api.post(f"/api/v1/incidents/{number}/notes", {"text": body})
    if as_json:
        _json(event)
        return
    out.print(f"note #{event['id']} added to INC-{number}")


@incident_app.command()
def timeline(
    incident_id: IncidentId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")
    ] = False,
    after: Annotated[
        int | None, typer.Option("--after", min=0, help="Only events after this event id.")
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, help="Seconds between polls with --follow.")
    ] = 2.0,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Print an incident's timeline; with --follow, poll for new events (JSON lines with --json)."""
    number = _number(incident_id)
    path = f"/api/v1/incidents/{number}/timeline"
    with _api(server, token) as api:
        page = api.get(path, {"after": after})
        if as_json and not follow:
            _json(page)
            return
        last = after or 0
        try:
            while True:
                for event in page["items"]:
                    if as_json:
                        _json(event, compact=True)
                    else:
                        out.print(render.event_line(event))
                    last = max(last, int(event["id"]))
                if not follow:
                    return
                sleep(interval)
                page = api.get(path, {"after": last})
        except KeyboardInterrupt:
            return


@incident_app.command()
def assign(
    incident_id: IncidentId,
    role: Annotated[str, typer.Argument(help="Incident role, e.g. commander.")],
    user: Annotated[str, typer.Argument(help="User id.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Give an incident role to a user."""
    number = _number(incident_id)
    with _api(server, token) as api:
        incident = api.put(
            f"/api/v1/incidents/{number}/roles/{urllib.parse.quote(role, safe='')}", {"user": user}
        )
    if as_json:
        _json(incident)
        return
    out.print(f"{incident['ref']}: {role} is {incident['roles'].get(role, '-')}")


@incident_app.command()
def tick(
    incident_id: IncidentId,
    item_id: Annotated[int, typer.Argument(min=1, help="Checklist item id (see `show`).")],
    undo: Annotated[bool, typer.Option("--undo", help="Mark the item not done again.")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Tick a checklist item (or untick it with --undo)."""
    number = _number(incident_id)
    with _api(server, token) as api:
        checklist = api.post(f"/api/v1/incidents/{number}/checklist/{item_id}", {"done": not undo})
    if as_json:
        _json(checklist)
        return
    items = checklist["items"]
    done = sum(1 for i in items if i["done"])
    out.print(Text(f"INC-{number} checklist ({done}/{len(items)} done)", style="bold"))
    out.print(*render.checklist_lines(items), sep="\n")
