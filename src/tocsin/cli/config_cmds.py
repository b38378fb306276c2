"""`tocsin apply -f FILE` and `tocsin export`: on the database directly, or through a server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from tocsin.configfile.errors import ConfigError, ConfigIssue
from tocsin.configfile.report import ApplyReport, Change, show_value

if TYPE_CHECKING:
    from tocsin.storage.db import Database

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="TOCSIN_SERVER",
        help="Base URL of a Tocsin server; without it the command works on the database.",
    ),
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="TOCSIN_TOKEN", help="API token for --server.")
]
_STYLE = {"created": "green", "updated": "yellow", "unchanged": "dim", "archived": "red"}
_MARK = {"created": "+", "updated": "~", "unchanged": "=", "archived": "-"}
_TIMEOUT_S = 60.0


def register(app: typer.Typer) -> None:
    """Add the `apply` and `export` commands to the Tocsin CLI."""
    app.command("apply")(apply_command)
    app.command("export")(export_command)


def apply_command(
    file: Annotated[str, typer.Option("-f", "--file", help="YAML file to apply; - reads stdin.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; write nothing.")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Archive what sections in the file no longer declare.")
    ] = False,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Apply a configuration file in one transaction and report what changed."""
    source = "<stdin>" if file == "-" else file
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"{source}: cannot read: {exc.strerror or exc}")
    if server:
        report = _apply_remote(server, token, text, source, dry_run=dry_run, prune=prune)
    else:
        report = _apply_local(text, source, dry_run=dry_run, prune=prune)
    _print_report(report)


def export_command(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file instead of stdout.")
    ] = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Print the live configuration as YAML that applies back to the same state."""
    text = _export_remote(server, token) if server else _export_local()
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    Console(stderr=True).print(f"wrote {output}", highlight=False)


def _apply_local(text: str, source: str, *, dry_run: bool, prune: bool) -> ApplyReport:
    from tocsin.configfile import apply_config, load_config

    try:
        doc = load_config(text, source)  # a bad file is refused before the database is opened
    except ConfigError as exc:
        _fail_config(exc.errors, source)
    db = _open_database()
    try:
        with db.write() as session:
            try:
                report = apply_config(session, doc, prune=prune, dry_run=dry_run)
            except ConfigError as exc:
                _fail_config(exc.errors, source)
            if dry_run:
                session.rollback()
            else:
                session.commit()
    finally:
        db.dispose()
    return report


def _export_local() -> str:
    from tocsin.configfile import export_config

    db = _open_database()
    try:
        with db.read() as session:
            return export_config(session)
    finally:
        db.dispose()


def _open_database() -> Database:
    from tocsin.config import Settings
    from tocsin.storage.db import Database, upgrade

    # Database() creates the SQLite file's directory, which the migration needs to exist.
    db = Database(Settings().resolved_database_url())
    # Migrating first lets `tocsin apply` set up a brand-new database in one step.
    upgrade(db.url)
    return db


def _apply_remote(
    server: str, token: str | None, text: str, source: str, *, dry_run: bool, prune: bool
) -> ApplyReport:
    params = {"dry_run": str(dry_run).lower(), "prune": str(prune).lower()}
    headers = {"Content-Type": "application/yaml"}
    response = _request(
        "POST", server, "/api/v1/config/apply", token, params=params, content=text, headers=headers
    )
    body = _json(response)
    if response.status_code == 422 and isinstance(body.get("errors"), list):
        issues = [
            ConfigIssue(str(e.get("path", "")), str(e.get("message", "")), e.get("line"))
            for e in body["errors"]
        ]
        _fail_config(issues, source)
    if response.status_code != 200:
        _fail(f"{server} answered {response.status_code}: {body.get('detail', response.text)}")
    return ApplyReport.from_dict(body)


def _export_remote(server: str, token: str | None) -> str:
    response = _request("GET", server, "/api/v1/config/export", token)
    if response.status_code != 200:
        detail = _json(response).get("detail", response.text)
        _fail(f"{server} answered {response.status_code}: {detail}")
    return str(response.text)


def _request(method: str, server: str, path: str, token: str | None, **kwargs: Any) -> Any:
    import httpx

    headers: dict[str, str] = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = server.rstrip("/") + path
    try:
        return httpx.request(method, url, headers=headers, timeout=_TIMEOUT_S, **kwargs)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}")


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _print_report(report: ApplyReport) -> None:
    console = Console(highlight=False)
    sections: dict[str, list[Change]] = {}
    for change in report.changes:
        sections.setdefault(change.section, []).append(change)
    for section, changes in sections.items():
        unchanged = sum(1 for change in changes if change.action == "unchanged")
        header = Text(f"{section}:", style="bold")
        if unchanged:
            header.append(f" {unchanged} unchanged", style="dim")
        console.print(header)
        for change in changes:
            if change.action != "unchanged":
                _print_change(console, change)
    counts = report.counts()
    summary = Text(", ".join(f"{counts[a]} {a}" for a in _STYLE))
    if report.dry_run:
        summary.append(" (dry run: nothing was written)", style="bold")
    console.print(summary)


def _print_change(console: Console, change: Change) -> None:
    line = Text(f"  {_MARK[change.action]} {change.key} ", style=_STYLE[change.action])
    line.append(change.action)
    console.print(line)
    for name, (old, new) in change.diffs.items():
        console.print(Text(f"      {name}: {show_value(old)} → {show_value(new)}"))


def _fail_config(issues: list[ConfigIssue], source: str) -> NoReturn:
    # Plain text, one error a line, so editors and CI logs can pick out path and line.
    count = len(issues)
    typer.echo(f"{source}: {count} error{'s' if count != 1 else ''}, nothing applied", err=True)
    for issue in issues:
        typer.echo(str(issue), err=True)
    raise typer.Exit(1)


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(1)
