"""`tocsin alert|alert-group|silence|maintenance|heartbeat …`: alerting from a terminal.

Every command talks to the REST API like `tocsin incident …` does (same --server/--token,
tables by default, --json for scripts, exit 1 when the server refuses, 2 when unreachable).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from tocsin.cli import render
from tocsin.cli.client import DEFAULT_SERVER, TocsinClient, reported
from tocsin.cli.incident_cmds import AsJson, Server, Token
from tocsin.core.alerts import matchers_from_terms

alert_app = typer.Typer(help="Alerts as they came in.", no_args_is_help=True)
group_app = typer.Typer(
    help="Alert groups: acknowledge, resolve, silence, declare an incident.", no_args_is_help=True
)
silence_app = typer.Typer(
    help="Silences: matching alerts are recorded, not paged.", no_args_is_help=True
)
maintenance_app = typer.Typer(
    help="Maintenance windows: a service's alerts page nobody.", no_args_is_help=True
)
heartbeat_app = typer.Typer(help="Heartbeats: jobs that must check in.", no_args_is_help=True)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_STATUSES = "firing, acknowledged, suppressed, resolved"
ServiceOpt = Annotated[str | None, typer.Option("--service", help="Service id.")]
StatusOpt = Annotated[
    list[str] | None,
    typer.Option("--status", metavar="STATUS", help=f"Repeatable: {_STATUSES}."),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option("--label", "-l", metavar="NAME=VALUE", help="Repeatable; all must hold."),
]
DedupOpt = Annotated[str | None, typer.Option("--dedup-key", help="Alerts with this dedup key.")]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=200, help="Page size.")]
CursorOpt = Annotated[str | None, typer.Option("--cursor", help="Continue a listing.")]
Id = Annotated[str, typer.Argument(metavar="ID", help="Numeric id (see `list`).")]
ForOpt = Annotated[str | None, typer.Option("--for", metavar="DURATION", help="e.g. 30m, 2h, 1d.")]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", metavar="TIME", help="ISO 8601 end time; without an offset, UTC."),
]
CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="Why, for whoever sees it later.")]
# Alertmanager's matcher syntax, longest operator first so "!=" is not read as "=".


def register(app: typer.Typer) -> None:
    """Add the alerting command groups to `app`."""
    app.add_typer(alert_app, name="alert")
    app.add_typer(group_app, name="alert-group")
    app.add_typer(silence_app, name="silence")
    app.add_typer(maintenance_app, name="maintenance")
    app.add_typer(heartbeat_app, name="heartbeat")


@contextmanager
def _api(server: str, token: str | None) -> Iterator[TocsinClient]:
    with reported(err), TocsinClient(server, token) as client:
        yield client


def _fail(message: str) -> typer.Exit:
    err.print(Text(message, style="red"))
    return typer.Exit(1)


def _id(value: str) -> int:
    """Return a numeric id; anything else fails with exit 1 like other refused input."""
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= 2**62:
        raise _fail(f"not an id: {value!r} (use the number from `list`)")
    return int(value)


def _json(data: Any) -> None:
    typer.echo(render.as_json(data))


def _moment(value: str | None, option: str) -> str | None:
    """Return an ISO 8601 time with its offset (UTC when none was given), or fail."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _fail(f"{option}: {value!r} is not an ISO 8601 time (2026-03-14T18:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _span(duration: str | None, until: str | None) -> dict[str, str | None]:
    """Return the API's duration/ends_at pair for exactly one of --for and --until."""
    if (duration is None) == (until is None):
        raise _fail("give exactly one of --for DURATION and --until TIME")
    return {"duration": duration, "ends_at": _moment(until, "--until")}


def matchers_of(terms: list[str]) -> dict[str, Any]:
    """Return API matchers: a plain value for equality, {op: value} for the others."""
    try:
        return matchers_from_terms(terms)
    except ValueError as exc:
        raise _fail(f"--match: {exc}") from None


def _listing(
    service: str | None,
    status: list[str] | None,
    label: list[str] | None,
    dedup_key: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    return {
        "service": service,
        "status": [s.strip().lower() for s in status or []],
        "label": label or [],
        "dedup_key": dedup_key,
        "limit": limit,
        "cursor": cursor,
    }


def _more(page: dict[str, Any]) -> None:
    if page.get("next_cursor"):
        out.print(f"more: repeat with --cursor {page['next_cursor']}", style="dim")


# --- alerts ---


@alert_app.command("list")
def list_alerts(
    service: ServiceOpt = None,
    status: StatusOpt = None,
    label: LabelOpt = None,
    dedup_key: DedupOpt = None,
    limit: LimitOpt = 50,
    cursor: CursorOpt = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List alerts, newest first."""
    with _api(server, token) as api:
        page = api.get("/api/v1/alerts", _listing(service, status, label, dedup_key, limit, cursor))
    if as_json:
        _json(page)
        return
    out.print(render.alerts_table(page["items"]) if page["items"] else "no alerts match")
    _more(page)


@alert_app.command("show")
def show_alert(
    alert_id: Id, server: Server = DEFAULT_SERVER, token: Token = None, as_json: AsJson = False
) -> None:
    """Show an alert with its labels, links and history."""
    with _api(server, token) as api:
        alert = api.get(f"/api/v1/alerts/{_id(alert_id)}")
    if as_json:
        _json(alert)
        return
    out.print(render.alert_view(alert))
    if alert["history"]:
        out.print(Text("\nHistory", style="bold"))
        for entry in alert["history"]:
            out.print(render.history_line(entry))


# --- alert groups ---


@group_app.command("list")
def list_groups(
    service: ServiceOpt = None,
    status: StatusOpt = None,
    label: LabelOpt = None,
    dedup_key: DedupOpt = None,
    limit: LimitOpt = 50,
    cursor: CursorOpt = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List alert groups, newest first (label and dedup-key filters match any alert)."""
    with _api(server, token) as api:
        page = api.get(
            "/api/v1/alert-groups", _listing(service, status, label, dedup_key, limit, cursor)
        )
    if as_json:
        _json(page)
        return
    out.print(render.alert_groups_table(page["items"]) if page["items"] else "no groups match")
    _more(page)


@group_app.command("show")
def show_group(
    group_id: Id,
    events: Annotated[
        int, typer.Option("--events", "-n", min=0, help="History entries to show (latest).")
    ] = 10,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show an alert group, its alerts and its latest history."""
    with _api(server, token) as api:
        group = api.get(f"/api/v1/alert-groups/{_id(group_id)}")
    if as_json:
        _json(group)
        return
    out.print(render.alert_group_view(group))
    # The API sends history newest first; print the latest few oldest first, like a log.
    latest = list(reversed(group["history"][:events]))
    if latest:
        out.print(Text(f"\nHistory (latest {len(latest)} of {len(group['history'])})", "bold"))
        for entry in latest:
            out.print(render.history_line(entry))


def _group_changed(group: dict[str, Any], what: str, *, as_json: bool) -> None:
    if as_json:
        _json(group)
        return
    line = Text(f"alert group {group['id']} {what}; status ")
    line.append_text(render.alert_status_text(group["status"]))
    out.print(line)


@group_app.command("ack")
def ack(
    group_id: Id, server: Server = DEFAULT_SERVER, token: Token = None, as_json: AsJson = False
) -> None:
    """Acknowledge an alert group and its firing alerts."""
    with _api(server, token) as api:
        group = api.post(f"/api/v1/alert-groups/{_id(group_id)}/acknowledge")
    _group_changed(group, "acknowledged", as_json=as_json)


@group_app.command("resolve")
def resolve(
    group_id: Id, server: Server = DEFAULT_SERVER, token: Token = None, as_json: AsJson = False
) -> None:
    """Resolve an alert group and all its open alerts."""
    with _api(server, token) as api:
        group = api.post(f"/api/v1/alert-groups/{_id(group_id)}/resolve")
    _group_changed(group, "resolved", as_json=as_json)


@group_app.command("silence")
def silence_group(
    group_id: Id,
    duration: ForOpt = None,
    until: UntilOpt = None,
    comment: CommentOpt = "",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Silence what the group's alerts share, for a while (--for 2h or --until TIME)."""
    body = {**_span(duration, until), "comment": comment}
    with _api(server, token) as api:
        group = api.post(f"/api/v1/alert-groups/{_id(group_id)}/silence", body)
    _group_changed(group, "silenced", as_json=as_json)


@group_app.command("declare")
def declare(
    group_id: Id,
    severity: Annotated[
        str | None, typer.Option("--severity", "-s", help="Default: the route's, or by severity.")
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Default: the group's.")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Declare an incident from an alert group."""
    with _api(server, token) as api:
        group = api.post(
            f"/api/v1/alert-groups/{_id(group_id)}/declare", {"severity": severity, "title": title}
        )
    _group_changed(group, f"declared as INC-{group['incident_id']}", as_json=as_json)


@group_app.command("merge")
def merge(
    group_id: Id,
    incident: Annotated[str, typer.Argument(help="Open incident: 42 or INC-42.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Link an alert group to an open incident."""
    with _api(server, token) as api:
        group = api.post(f"/api/v1/alert-groups/{_id(group_id)}/merge", {"incident": incident})
    _group_changed(group, f"merged into INC-{group['incident_id']}", as_json=as_json)


# --- silences ---


@silence_app.command("list")
def list_silences(
    include_ended: Annotated[bool, typer.Option("--all", help="Include ended silences.")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List current and future silences."""
    with _api(server, token) as api:
        page = api.get("/api/v1/silences", {"expired": True if include_ended else None})
    if as_json:
        _json(page)
        return
    out.print(render.silences_table(page["items"]) if page["items"] else "no silences")


@silence_app.command("create")
def create_silence(
    match: Annotated[
        list[str],
        typer.Option("--match", metavar="NAME=VALUE", help="Repeatable; also !=, =~, !~."),
    ],
    duration: ForOpt = None,
    until: UntilOpt = None,
    start: Annotated[
        str | None, typer.Option("--start", metavar="TIME", help="Default: now.")
    ] = None,
    comment: CommentOpt = "",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create a silence (--for 2h or --until TIME)."""
    body = {
        "matchers": matchers_of(match),
        "starts_at": _moment(start, "--start"),
        **_span(duration, until),
        "comment": comment,
    }
    with _api(server, token) as api:
        silence = api.post("/api/v1/silences", body)
    if as_json:
        _json(silence)
        return
    out.print(
        f"silence {silence['id']} ({render.matchers_text(silence['matchers'])}) "
        f"until {render.when(silence['ends_at'])}"
    )


@silence_app.command("expire")
def expire_silence(
    silence_id: Id, server: Server = DEFAULT_SERVER, token: Token = None, as_json: AsJson = False
) -> None:
    """End a silence now (it stays on record)."""
    with _api(server, token) as api:
        silence = api.request("DELETE", f"/api/v1/silences/{_id(silence_id)}")
    if as_json:
        _json(silence)
        return
    out.print(f"silence {silence['id']} expired at {render.when(silence['ends_at'])}")


# --- maintenance windows ---


@maintenance_app.command("list")
def list_windows(
    service: ServiceOpt = None,
    include_ended: Annotated[bool, typer.Option("--all", help="Include ended windows.")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List current and scheduled maintenance windows."""
    params = {"service": service, "expired": True if include_ended else None}
    with _api(server, token) as api:
        page = api.get("/api/v1/maintenance-windows", params)
    if as_json:
        _json(page)
        return
    out.print(render.windows_table(page["items"]) if page["items"] else "no maintenance windows")


@maintenance_app.command("create")
def create_window(
    service: Annotated[str, typer.Argument(help="Service id.")],
    duration: ForOpt = None,
    until: UntilOpt = None,
    start: Annotated[
        str | None, typer.Option("--start", metavar="TIME", help="Default: now.")
    ] = None,
    comment: CommentOpt = "",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Schedule a maintenance window on a service (--for 2h or --until TIME)."""
    body = {
        "service": service,
        "starts_at": _moment(start, "--start"),
        **_span(duration, until),
        "comment": comment,
    }
    with _api(server, token) as api:
        window = api.post("/api/v1/maintenance-windows", body)
    if as_json:
        _json(window)
        return
    out.print(
        f"maintenance window {window['id']} on {window['service']}: "
        f"{render.when(window['starts_at'])} → {render.when(window['ends_at'])}"
    )


@maintenance_app.command("end")
def end_window(
    window_id: Id, server: Server = DEFAULT_SERVER, token: Token = None, as_json: AsJson = False
) -> None:
    """End a maintenance window now (or cancel one that has not started)."""
    with _api(server, token) as api:
        window = api.request("DELETE", f"/api/v1/maintenance-windows/{_id(window_id)}")
    if as_json:
        _json(window)
        return
    out.print(f"maintenance window {window['id']} ended at {render.when(window['ends_at'])}")


# --- heartbeats ---


@heartbeat_app.command("list")
def list_heartbeats(
    server: Server = DEFAULT_SERVER, token: Token = None, as_json: AsJson = False
) -> None:
    """List heartbeats: ok, overdue or waiting (never pinged yet)."""
    with _api(server, token) as api:
        page = api.get("/api/v1/heartbeats")
    if as_json:
        _json(page)
        return
    out.print(render.heartbeats_table(page["items"]) if page["items"] else "no heartbeats")


@heartbeat_app.command("ping")
def ping(
    key: Annotated[str, typer.Argument(help="The heartbeat's key.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Ping a heartbeat now (what the job itself would do at the end of a run)."""
    with _api(server, token) as api:
        answer = api.post(f"/api/v1/heartbeats/{urllib.parse.quote(key, safe='')}")
    if as_json:
        _json(answer)
        return
    recovered = "; its missed-heartbeat alert is resolved" if answer.get("recovered") else ""
    out.print(f"heartbeat {answer['key']} pinged at {render.when(answer['at'])}{recovered}")
