"""The `tocsin` command: server, database and admin tasks, config-as-code, incidents."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tocsin.config import Settings

app = typer.Typer(
    name="tocsin",
    help="Tocsin: self-hosted incident response.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Users (web login).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")

console = Console()
err = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**values)  # type: ignore[arg-type]


def _apply_file(settings: Settings, path: Path) -> None:
    from tocsin.configfile import ConfigError, apply_config, load_config
    from tocsin.storage.db import Database

    try:
        doc = load_config(path.read_text(encoding="utf-8"), str(path))
        db = Database(settings.resolved_database_url())
        with db.write() as session:
            report = apply_config(session, doc)
            session.commit()
        db.dispose()
    except ConfigError as exc:
        err.print(f"[red]{path}: configuration rejected[/red]", highlight=False)
        err.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(1) from exc
    console.print(report.render(), highlight=False, markup=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [TOCSIN_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [TOCSIN_PORT].")] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="YAML applied at start-up [TOCSIN_CONFIG_FILE]."),
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="[TOCSIN_DATABASE_URL]")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL only).")] = 1,
) -> None:
    """Migrate the database, apply --config, and serve the API and web UI."""
    import uvicorn

    from tocsin import logs
    from tocsin.api.http_protocol import OneSendHttpProtocol
    from tocsin.storage.db import upgrade

    settings = _settings(host=host, port=port, config_file=config, database_url=database_url)
    logs.setup(settings.log_level, settings.log_format)
    url = settings.resolved_database_url()
    upgrade(url)
    if settings.config_file:
        _apply_file(settings, settings.config_file)
    else:
        _apply_defaults(settings)
    settings.resolved_secret_key()
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    console.print(f"Tocsin serving on [bold]{base}[/bold] (database: {_redact(url)})")
    if workers > 1 and url.startswith("sqlite"):
        err.print("[yellow]SQLite has one writer: serving with a single worker[/yellow]")
        workers = 1
    if workers > 1:
        # Worker processes build their own Settings from the environment: hand the flags on.
        import os

        os.environ["TOCSIN_DATABASE_URL"] = url
        os.environ["TOCSIN_SECRET_KEY"] = settings.resolved_secret_key()
        uvicorn.run(
            "tocsin.api.asgi:app",
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level=settings.log_level.lower(),
            access_log=False,
            http=OneSendHttpProtocol,
        )
        return
    from tocsin.api.app import create_app

    application = create_app(settings, run_engine=settings.engine)
    _tune_gc()
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        http=OneSendHttpProtocol,
    )


@app.command()
def engine(
    database_url: Annotated[str | None, typer.Option(help="[TOCSIN_DATABASE_URL]")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="TOCSIN_ENGINE_METRICS_PORT",
            help="Serve the engine's Prometheus metrics (/metrics) on this port "
            "[TOCSIN_ENGINE_METRICS_PORT].",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            envvar="TOCSIN_ENGINE_METRICS_HOST", help="... on this interface (127.0.0.1)."
        ),
    ] = "127.0.0.1",
) -> None:
    """Run the engine alone (heartbeats, payload retention …) until interrupted.

    `tocsin serve` runs the engine too; run it on its own to scale the two apart. On
    PostgreSQL it wakes on NOTIFY from every server process.
    """
    import signal
    import threading

    from prometheus_client import start_http_server

    from tocsin import logs
    from tocsin.api.app import engine_apart
    from tocsin.engine.coordination import EngineAlreadyRunning
    from tocsin.engine.loop import listen_postgres, watch_sqlite
    from tocsin.storage.db import Database, upgrade

    settings = _settings(database_url=database_url)
    logs.setup(settings.log_level, settings.log_format)
    url = settings.resolved_database_url()
    upgrade(url)
    db = Database(url)
    loop, _ctx, registry = engine_apart(settings, db)
    try:
        loop.acquire()
    except EngineAlreadyRunning as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    stop = threading.Event()
    if db.is_sqlite:
        # The API's process wakes its own engine directly; this one hears of commits so.
        database = db.engine.url.database or ""
        threading.Thread(
            target=watch_sqlite, args=(database, loop.waker, stop), daemon=True
        ).start()
    else:
        threading.Thread(
            target=listen_postgres, args=(db.url, loop.waker, stop), daemon=True
        ).start()

    def _stop(_signum: int, _frame: object) -> None:
        stop.set()
        loop.stop(timeout=0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if metrics_port is not None:
        # The engine's own figures (wake delay, module run times, failures): a server with
        # TOCSIN_ENGINE=false has none of them on its /metrics.
        start_http_server(metrics_port, addr=metrics_host, registry=registry)
    console.print(f"Tocsin engine running (database: {_redact(url)})")
    loop.run_forever()
    db.dispose()


def _tune_gc() -> None:
    from tocsin import runtime

    runtime.tune_gc()
    runtime.tune_switch_interval()


def _apply_defaults(settings: Settings) -> None:
    from tocsin.configfile.defaults import apply_defaults_if_unconfigured
    from tocsin.storage.db import Database

    db = Database(settings.resolved_database_url())
    with db.write() as session:
        report = apply_defaults_if_unconfigured(session)
        session.commit()
    db.dispose()
    if report is not None:
        console.print("no configuration yet: applied the built-in P0–P4 scheme and roles")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(
    database_url: Annotated[str | None, typer.Option(help="[TOCSIN_DATABASE_URL]")] = None,
) -> None:
    """Migrate the database to the newest schema."""
    from tocsin.storage.db import upgrade

    settings = _settings(database_url=database_url)
    upgrade(settings.resolved_database_url())
    console.print("database is at the newest schema")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")],
    scope: Annotated[
        list[str], typer.Option("--scope", "-s", help="read, respond or admin; repeatable.")
    ],
    user: Annotated[
        str | None, typer.Option(help="Attribute the token's writes to this user.")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="[TOCSIN_DATABASE_URL]")] = None,
) -> None:
    """Create an API token (printed once; only its hash is stored)."""
    from tocsin.core.errors import DomainError
    from tocsin.services import access
    from tocsin.storage.db import Database, upgrade

    settings = _settings(database_url=database_url)
    upgrade(settings.resolved_database_url())
    db = Database(settings.resolved_database_url())
    try:
        with db.write() as session:
            issued = access.create_token(
                session, datetime.now(UTC), name=name, scopes=scope, user_id=user
            )
            session.commit()
    except DomainError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    console.print(issued.token, highlight=False, markup=False, soft_wrap=True)
    err.print(f"token {issued.name!r} (id {issued.id}) with scopes {', '.join(issued.scopes)}")


@user_app.command("set-password")
def user_set_password(
    user_id: Annotated[str, typer.Argument(help="User id from the configuration.")],
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="New password."),
    ],
    database_url: Annotated[str | None, typer.Option(help="[TOCSIN_DATABASE_URL]")] = None,
    if_unset: Annotated[bool, typer.Option(help="Only when the user has no password yet.")] = False,
) -> None:
    """Set a user's web login password."""
    from tocsin.core.errors import DomainError
    from tocsin.services import access
    from tocsin.storage.db import Database
    from tocsin.storage.tables import UserRow

    settings = _settings(database_url=database_url)
    db = Database(settings.resolved_database_url())
    try:
        with db.write() as session:
            user = session.get(UserRow, user_id)
            if if_unset and user is not None and user.password_hash:
                console.print(f"{user_id} already has a password; left as it is")
                return
            access.set_password(session, user_id, password)
            session.commit()
    except DomainError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"password set for {user_id}")


def _register_extensions() -> None:
    from tocsin.cli import alert_cmds, comm_cmds, config_cmds, incident_cmds, oncall_cmds

    config_cmds.register(app)
    incident_cmds.register(app)
    comm_cmds.register(app)
    alert_cmds.register(app)
    oncall_cmds.register(app)


_register_extensions()
