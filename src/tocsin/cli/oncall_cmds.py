"""`tocsin schedule|oncall|escalation-policy|notifications|contact-method …`: on-call from a
terminal.

Every command talks to the REST API like `tocsin incident …` does (same --server/--token,
tables by default, --json for scripts, exit 1 when the server refuses, 2 when unreachable).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from tocsin.cli import oncall_render as show
from tocsin.cli import render
from tocsin.cli.client import DEFAULT_SERVER, TocsinClient, reported
from tocsin.cli.incident_cmds import AsJson, Server, Token
from tocsin.core.incidents import parse_reference

schedule_app = typer.Typer(
    help="Schedules: who is on call, shifts, overrides, calendars.", no_args_is_help=True
)
override_app = typer.Typer(
    help="Overrides: someone else on call for a while.", no_args_is_help=True
)
policy_app = typer.Typer(help="Escalation policies: who is paged, when.", no_args_is_help=True)
notifications_app = typer.Typer(
    help="Who was paged about an incident or alert group, and how.", no_args_is_help=True
)
method_app = typer.Typer(
    help="Contact methods: where you are paged (yours unless --user).", no_args_is_help=True
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ScheduleArg = Annotated[str, typer.Argument(metavar="SCHEDULE", help="Schedule id.")]
TimeOpt = Annotated[
    str | None, typer.Option(metavar="TIME", help="ISO 8601 time; without an offset, UTC.")
]
UserOpt = Annotated[
    str, typer.Option("--user", "-u", help="Whose methods (admins: anyone's); default: yours.")
]
MethodArg = Annotated[str, typer.Argument(metavar="METHOD", help="Contact method id.")]


def register(app: typer.Typer) -> None:
    """Add the on-call command groups to `app`."""
    schedule_app.add_typer(override_app, name="override")
    app.add_typer(schedule_app, name="schedule")
    app.command("oncall")(oncall_now)
    app.add_typer(policy_app, name="escalation-policy")
    app.add_typer(notifications_app, name="notifications")
    app.add_typer(method_app, name="contact-method")


@contextmanager
def _api(server: str, token: str | None) -> Iterator[TocsinClient]:
    with reported(err), TocsinClient(server, token) as client:
        yield client


def _fail(message: str) -> typer.Exit:
    err.print(Text(message, style="red"))
    return typer.Exit(1)


def _json(data: Any) -> None:
    typer.echo(render.as_json(data))


def _part(value: str) -> str:
    """Quote an id for a URL path (ids may hold dots; nothing may add a slash)."""
    return urllib.parse.quote(value, safe="")


def _moment(value: str | None, option: str) -> str | None:
    """Return an ISO 8601 time with its offset (UTC when none was given), or fail."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _fail(f"{option}: {value!r} is not an ISO 8601 time (2026-03-14T18:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _schedule(schedule_id: str) -> str:
    return f"/api/v1/schedules/{_part(schedule_id)}"


# --- schedules ---


@schedule_app.command("list")
def list_schedules(
    server: Server = DEFAULT_SERVER, token: Token = None, as_json: AsJson = False
) -> None:
    """List schedules and who is on call on each now."""
    with _api(server, token) as api:
        page = api.get("/api/v1/schedules")
    if as_json:
        _json(page)
        return
    out.print(show.schedules_table(page["items"]) if page["items"] else "no schedules")


def oncall_now(
    server: Server = DEFAULT_SERVER, token: Token = None, as_json: AsJson = False
) -> None:
    """Who is on call now, on every schedule."""
    list_schedules(server, token, as_json)


@schedule_app.command("show")
def show_schedule(
    schedule_id: ScheduleArg,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show a schedule: layers, who is on call, overrides, next shifts and gaps."""
    with _api(server, token) as api:
        schedule = api.get(_schedule(schedule_id))
    if as_json:
        _json(schedule)
        return
    out.print(show.schedule_view(schedule))


@schedule_app.command("on-call")
def on_call(
    schedule_id: ScheduleArg,
    at: TimeOpt = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Who is on call on a schedule now, or --at a time."""
    with _api(server, token) as api:
        answer = api.get(f"{_schedule(schedule_id)}/on-call", {"at": _moment(at, "--at")})
    if as_json:
        _json(answer)
        return
    line = Text(f"{answer['schedule']} at {render.when(answer['at'])}: ")
    line.append_text(show.people_text(answer["users"]))
    out.print(line)


@schedule_app.command("shifts")
def shifts(
    schedule_id: ScheduleArg,
    count: Annotated[
        int | None, typer.Option("--count", "-n", min=1, max=200, help="The next N shifts.")
    ] = None,
    start: TimeOpt = None,
    end: TimeOpt = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List shifts and gaps: the next --count, or between --start and --end (default 14 days)."""
    params = {"count": count, "start": _moment(start, "--start"), "end": _moment(end, "--end")}
    with _api(server, token) as api:
        answer = api.get(f"{_schedule(schedule_id)}/shifts", params)
    if as_json:
        _json(answer)
        return
    if not answer["items"]:
        out.print("no shifts in this window")
        return
    out.print(show.slots_table(answer["items"]))


@schedule_app.command("import")
def import_calendar(
    schedule_id: ScheduleArg,
    file: Annotated[
        Path, typer.Argument(metavar="FILE.ics", exists=True, dir_okay=False, readable=True)
    ],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Import an iCalendar file as the schedule's calendar layer (replacing an earlier one)."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {file}: {exc}") from None
    with _api(server, token) as api:
        answer = api.post(f"{_schedule(schedule_id)}/calendar", {"calendar": text})
    if as_json:
        _json(answer)
        return
    verb = "replaced the calendar of" if answer["replaced"] else "imported a calendar into"
    out.print(f"{verb} {answer['schedule']}: {answer['events']} event(s)")
    matched = ", ".join(f"{m['user']} ({m['calendar_name']})" for m in answer["matched_users"])
    out.print(f"matched: {matched or 'nobody'}")
    if answer["unmatched"]:
        out.print(
            Text(f"not matched to any user: {', '.join(answer['unmatched'])}", style="yellow")
        )


@schedule_app.command("calendar-url")
def calendar_url(
    schedule_id: ScheduleArg,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Print the URL calendar apps subscribe to (keep it private: it needs no login)."""
    with _api(server, token) as api:
        answer = api.get(f"{_schedule(schedule_id)}/calendar-url")
    if as_json:
        _json(answer)
        return
    out.print(answer["url"])


# --- overrides ---


@override_app.command("add")
def add_override(
    schedule_id: ScheduleArg,
    user: Annotated[str, typer.Option("--user", "-u", help="Who goes on (or off) call.")],
    start: Annotated[str, typer.Option("--start", metavar="TIME", help="ISO 8601 time.")],
    end: Annotated[str, typer.Option("--end", metavar="TIME", help="ISO 8601 time.")],
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="add, remove or replace (default: replace with --replaces)."),
    ] = None,
    replaces: Annotated[
        str | None, typer.Option("--replaces", help="Whom --user stands in for.")
    ] = None,
    note: Annotated[str, typer.Option("--note", "-m", help="Why.")] = "",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Put someone on call (or take them off) between --start and --end."""
    body = {
        "kind": kind.strip().lower() if kind else None,
        "user": user,
        "replaces": replaces,
        "starts_at": _moment(start, "--start"),
        "ends_at": _moment(end, "--end"),
        "note": note,
    }
    with _api(server, token) as api:
        made = api.post(f"{_schedule(schedule_id)}/overrides", body)
    if as_json:
        _json(made)
        return
    who = f"{made['user']} for {made['replaces']}" if made["replaces"] else made["user"]
    out.print(
        f"override {made['id']} on {made['schedule']}: {made['kind']} {who}, "
        f"{render.when(made['starts_at'])} → {render.when(made['ends_at'])}"
    )


@override_app.command("list")
def list_overrides(
    schedule_id: ScheduleArg,
    include_past: Annotated[bool, typer.Option("--all", help="Include ended overrides.")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List a schedule's overrides that have not ended."""
    with _api(server, token) as api:
        page = api.get(
            f"{_schedule(schedule_id)}/overrides", {"past": True if include_past else None}
        )
    if as_json:
        _json(page)
        return
    out.print(show.overrides_table(page["items"]) if page["items"] else "no overrides")


@override_app.command("remove")
def remove_override(
    schedule_id: ScheduleArg,
    override_id: Annotated[int, typer.Argument(metavar="OVERRIDE", min=1, help="Override id.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Delete an override."""
    with _api(server, token) as api:
        api.request("DELETE", f"{_schedule(schedule_id)}/overrides/{override_id}")
    out.print(f"override {override_id} removed")


# --- escalation policies ---


@policy_app.command("list")
def list_policies(
    server: Server = DEFAULT_SERVER, token: Token = None, as_json: AsJson = False
) -> None:
    """List escalation policies."""
    with _api(server, token) as api:
        page = api.get("/api/v1/escalation-policies")
    if as_json:
        _json(page)
        return
    out.print(show.policies_table(page["items"]) if page["items"] else "no escalation policies")


@policy_app.command("show")
def show_policy(
    policy_id: Annotated[str, typer.Argument(metavar="POLICY", help="Policy id.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show a policy's steps, delays and targets."""
    with _api(server, token) as api:
        policy = api.get(f"/api/v1/escalation-policies/{_part(policy_id)}")
    if as_json:
        _json(policy)
        return
    out.print(show.policy_view(policy))


# --- notifications ---


def _notifications(path: str, server: str, token: str | None, as_json: bool) -> None:
    with _api(server, token) as api:
        data = api.get(path)
    if as_json:
        _json(data)
        return
    out.print(show.notifications_view(data))


@notifications_app.command("incident")
def incident_notifications(
    incident: Annotated[str, typer.Argument(metavar="ID", help="42 or INC-42.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show an incident's escalation, notification log and messages."""
    number = parse_reference(incident)
    if number is None:
        raise _fail(f"not an incident id: {incident!r} (use 42 or INC-42)")
    _notifications(f"/api/v1/incidents/{number}/notifications", server, token, as_json)


@notifications_app.command("alert-group")
def group_notifications(
    group: Annotated[int, typer.Argument(metavar="ID", min=1, help="Alert group id.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Show an alert group's escalation, notification log and messages."""
    _notifications(f"/api/v1/alert-groups/{group}/notifications", server, token, as_json)


# --- contact methods ---


def _methods(user: str) -> str:
    return f"/api/v1/users/{_part(user)}/contact-methods"


@method_app.command("list")
def list_methods(
    user: UserOpt = "me", server: Server = DEFAULT_SERVER, token: Token = None,
    as_json: AsJson = False,
) -> None:  # fmt: skip
    """List contact methods."""
    with _api(server, token) as api:
        page = api.get(_methods(user))
    if as_json:
        _json(page)
        return
    out.print(show.methods_table(page["items"]) if page["items"] else "no contact methods")


# The API field of each contact method type's target (services.contact_methods.TARGET_FIELDS).
_TARGET_FIELDS = {
    "email": "address", "webhook": "url", "sms": "number", "voice": "number",
    "slack": "member", "ntfy": "topic",
}  # fmt: skip


@method_app.command("add")
def add_method(
    kind: Annotated[
        str, typer.Argument(metavar="TYPE", help="email, webhook, sms, voice, slack or ntfy.")
    ],
    target: Annotated[
        str,
        typer.Argument(
            metavar="ADDRESS",
            help="Email address, URL, phone number (+14155550100), Slack member id or ntfy topic.",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="A label, e.g. Work phone.")] = "",
    user: UserOpt = "me",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Add a contact method; a code is sent to it, enter it with `verify`."""
    kind = kind.strip().lower()
    if kind not in _TARGET_FIELDS:
        raise _fail(f"unknown type {kind!r}; valid: {', '.join(_TARGET_FIELDS)}")
    body = {"type": kind, _TARGET_FIELDS[kind]: target, "name": name}
    with _api(server, token) as api:
        made = api.post(_methods(user), body)
    if as_json:
        _json(made)
        return
    out.print(f"added {made['type']} {made[_TARGET_FIELDS[kind]]} as {made['id']}")
    out.print(f"a verification code was sent; run: tocsin contact-method verify {made['id']} CODE")


@method_app.command("verify")
def verify_method(
    method_id: MethodArg,
    code: Annotated[str, typer.Argument(metavar="CODE", help="The 6-digit code.")],
    user: UserOpt = "me",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Verify a contact method with the code it received."""
    with _api(server, token) as api:
        method = api.post(f"{_methods(user)}/{_part(method_id)}/verify", {"code": code})
    if as_json:
        _json(method)
        return
    out.print(f"{method['id']} is verified; pages can reach you there")


@method_app.command("send-code")
def send_code(
    method_id: MethodArg,
    user: UserOpt = "me",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Send a new verification code (at most one a minute)."""
    with _api(server, token) as api:
        answer = api.post(f"{_methods(user)}/{_part(method_id)}/send-code")
    if as_json:
        _json(answer)
        return
    out.print(f"a new code was sent to {answer['contact_method']}; it expires at "
              f"{render.when(answer['expires_at'])}")  # fmt: skip


@method_app.command("remove")
def remove_method(
    method_id: MethodArg, user: UserOpt = "me", server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:  # fmt: skip
    """Remove a contact method you added (and the notification rules using it)."""
    with _api(server, token) as api:
        api.request("DELETE", f"{_methods(user)}/{_part(method_id)}")
    out.print(f"contact method {method_id} removed")
