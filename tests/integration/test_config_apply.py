"""`tocsin apply` / `tocsin export` against real SQLite and PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from click.testing import Result
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tests.e2e.serving import in_thread
from tocsin.cli import config_cmds
from tocsin.configfile import (
    ApplyReport,
    ConfigError,
    apply_config,
    export_config,
    load_config,
)
from tocsin.storage.db import Database, upgrade
from tocsin.storage.tables import (
    Base,
    ChecklistTemplateItemRow,
    ServiceRow,
    SeverityRow,
    TeamMemberRow,
    UserRow,
)

EXAMPLES = Path(__file__).parents[2] / "examples"
CORE = (EXAMPLES / "core.yaml").read_text()


@pytest.fixture
def db(database: Database) -> Database:
    """A fresh migrated database, on SQLite and PostgreSQL in turn (tests/conftest.py)."""
    return database


def apply(
    db: Database, yaml_text: str, *, prune: bool = False, dry_run: bool = False
) -> ApplyReport:
    doc = load_config(yaml_text, "test.yaml")
    with db.write() as session:
        report = apply_config(session, doc, prune=prune, dry_run=dry_run)
        if dry_run:
            session.rollback()
        else:
            session.commit()
    return report


def apply_errors(db: Database, yaml_text: str, *, prune: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as caught, db.write() as session:
        apply_config(session, load_config(yaml_text, "test.yaml"), prune=prune)
    return [str(issue) for issue in caught.value.errors]


def by_key(report: ApplyReport) -> dict[tuple[str, str], str]:
    return {(c.section, c.key): c.action for c in report.changes}


def count(session: Session, row_type: type[Base]) -> int:
    return session.scalar(select(func.count()).select_from(row_type)) or 0


# --- applying ---


def test_core_applies(db: Database) -> None:
    report = apply(db, CORE)
    assert report.counts() == {"created": 15, "updated": 0, "unchanged": 0, "archived": 0}
    assert report.changed
    with db.read() as session:
        p0 = session.get(SeverityRow, "P0")
        assert p0 is not None
        assert (p0.position, p0.respond_within_s, p0.update_every_s, p0.pages) == (
            0,
            900,
            1800,
            True,
        )
        p3 = session.get(SeverityRow, "P3")
        assert p3 is not None
        assert (p3.position, p3.respond_within_s, p3.update_every_s) == (3, 86400, None)
        members = session.scalars(select(TeamMemberRow).order_by(TeamMemberRow.position)).all()
        assert [(m.team_id, m.user_id) for m in members] == [
            ("platform", "alice"),
            ("platform", "bob"),
        ]
        items = session.scalars(
            select(ChecklistTemplateItemRow.text)
            .where(ChecklistTemplateItemRow.severity == "P1")
            .order_by(ChecklistTemplateItemRow.position)
        ).all()
        assert items[0] == "Acknowledge alert within 15 minutes"
        assert len(items) == 4


def test_reapply_is_unchanged(db: Database) -> None:
    apply(db, CORE)
    report = apply(db, CORE)
    assert not report.changed
    assert {c.action for c in report.changes} == {"unchanged"}
    assert len(report.changes) == 15


def test_changes_are_reported_with_their_diff(db: Database) -> None:
    apply(db, CORE)
    changed = (
        CORE.replace("respond_within: 15m", "respond_within: 10m")
        .replace("members: [alice, bob]", "members: [bob, carol]")
        .replace("      - Update stakeholders\n", "")
        .replace("role: viewer}", "role: viewer, time_zone: Europe/Berlin}")
    )
    report = apply(db, changed)
    updated = {(c.section, c.key): c.diffs for c in report.changes if c.action == "updated"}
    assert updated == {
        ("severities", "P0"): {"respond_within": ("15m", "10m")},
        ("users", "carol"): {"time_zone": (None, "Europe/Berlin")},
        ("teams", "platform"): {"members": (["alice", "bob"], ["bob", "carol"])},
        ("checklists", "P1"): {
            "items": (
                [
                    "Acknowledge alert within 15 minutes",
                    "Create incident channel",
                    "Begin investigation",
                    "Update stakeholders",
                ],
                [
                    "Acknowledge alert within 15 minutes",
                    "Create incident channel",
                    "Begin investigation",
                ],
            )
        },
    }
    assert not apply(db, changed).changed


def test_durations_compare_by_value(db: Database) -> None:
    apply(db, CORE)
    assert not apply(db, CORE.replace("respond_within: 1h", "respond_within: 60m")).changed


def test_reordering_changes_positions(db: Database) -> None:
    apply(db, "incident_roles:\n  - {name: a, label: A}\n  - {name: b, label: B}\n")
    report = apply(db, "incident_roles:\n  - {name: b, label: B}\n  - {name: a, label: A}\n")
    assert [(c.key, c.diffs) for c in report.changes] == [
        ("b", {"position": (1, 0)}),
        ("a", {"position": (0, 1)}),
    ]


def test_checklists_grow_and_shrink_in_place(db: Database) -> None:
    base = "severities:\n  - {name: P1, label: High}\nchecklists:\n  - severity: P1\n    items: "
    apply(db, base + "[a, b, c]\n")
    apply(db, base + "[c, a, b, d]\n")
    apply(db, base + "[d]\n")
    with db.read() as session:
        rows = session.scalars(select(ChecklistTemplateItemRow)).all()
        assert [(r.position, r.text) for r in rows] == [(0, "d")]


def test_dry_run_writes_nothing(db: Database) -> None:
    apply(db, CORE)
    changed = (
        CORE.replace("label: Critical", "label: Outage") + "  - severity: P2\n    items: [x]\n"
    )
    report = apply(db, changed, dry_run=True, prune=True)
    assert report.dry_run
    assert by_key(report)[("severities", "P0")] == "updated"
    assert by_key(report)[("checklists", "P2")] == "created"
    assert "(dry run: nothing was written)" in report.render()
    with db.read() as session:
        p0 = session.get(SeverityRow, "P0")
        assert p0 is not None
        assert p0.label == "Critical"
        assert count(session, ChecklistTemplateItemRow) == 11


def test_dry_run_on_an_empty_database_writes_nothing(db: Database) -> None:
    report = apply(db, CORE, dry_run=True)
    assert report.counts()["created"] == 15
    with db.read() as session:
        assert count(session, SeverityRow) == 0


def test_prune_archives_what_the_file_no_longer_declares(db: Database) -> None:
    apply(db, CORE)
    smaller = (
        CORE.replace(
            "  - {id: carol, name: Carol Example, email: carol@example.test, role: viewer}\n", ""
        )
        .replace("  - {id: database, name: Database, team: platform}\n", "")
        .split("  - severity: P1\n")[0]
    )
    without_prune = apply(db, smaller)
    assert not without_prune.changed
    report = apply(db, smaller, prune=True)
    archived = [(c.section, c.key) for c in report.changes if c.action == "archived"]
    assert archived == [("users", "carol"), ("services", "database"), ("checklists", "P1")]
    with db.read() as session:
        carol = session.get(UserRow, "carol")
        assert carol is not None
        assert carol.archived
        database = session.get(ServiceRow, "database")
        assert database is not None
        assert database.archived
        assert count(session, ChecklistTemplateItemRow) == 7  # P1's items deleted, P0's kept
    assert not apply(db, smaller, prune=True).changed


def test_prune_leaves_sections_absent_from_the_file_alone(db: Database) -> None:
    apply(db, CORE)
    report = apply(db, "services:\n  - {id: api, name: Public API, team: platform}\n", prune=True)
    assert [(c.key, c.action) for c in report.changes] == [
        ("api", "unchanged"),
        ("database", "archived"),
    ]
    with db.read() as session:
        assert session.scalars(select(UserRow.id).where(UserRow.archived.is_(False))).all()


def test_redeclaring_an_archived_object_restores_it_as_updated(db: Database) -> None:
    apply(db, CORE)
    apply(db, "services:\n  - {id: api, name: Public API, team: platform}\n", prune=True)
    report = apply(db, "services:\n  - {id: database, name: DB, team: platform}\n")
    (change,) = report.changes
    assert change.action == "updated"
    assert change.diffs == {"name": ("Database", "DB"), "archived": (True, False)}
    with db.read() as session:
        row = session.get(ServiceRow, "database")
        assert row is not None
        assert not row.archived


def test_export_applies_back_unchanged(db: Database) -> None:
    apply(db, (EXAMPLES / "demo.yaml").read_text())
    with db.read() as session:
        exported = export_config(session)
    assert "respond_within: 15m" in exported
    assert "respond_within: 1d" in exported
    report = apply(db, exported, prune=True)
    assert not report.changed
    assert len(report.changes) == 30  # 21 core objects, 6 of alert intake, 3 of on-call


def test_export_leaves_out_archived_objects(db: Database) -> None:
    apply(db, CORE)
    apply(db, "services:\n  - {id: api, name: Public API, team: platform}\n", prune=True)
    with db.read() as session:
        exported = load_config(export_config(session))
    assert exported.services is not None
    assert [s.id for s in exported.services] == ["api"]


def test_export_of_an_empty_database(db: Database) -> None:
    with db.read() as session:
        doc = load_config(export_config(session))
    assert doc.present_sections() == list(type(doc).model_fields)


@pytest.mark.parametrize(
    "example",
    sorted(EXAMPLES.glob("**/*.yaml")),
    ids=lambda p: str(p.relative_to(EXAMPLES)),
)
def test_every_example_applies(db: Database, example: Path) -> None:
    before = BUILDS_ON.get(example.name, ())
    for earlier in before:
        apply(db, (EXAMPLES / earlier).read_text())
    report = apply(db, example.read_text())
    if not before:
        assert report.counts()["created"] == len(report.changes) > 0
    assert report.changed
    assert not apply(db, example.read_text()).changed


# The on-call example is the issue's text verbatim, which adds to users the core example
# declares (so it cannot also declare carol, whom its policy pages).
BUILDS_ON = {
    "oncall.yaml": ("core.yaml", "alerting.yaml"),
    "communication.yaml": ("core.yaml", "alerting.yaml", "oncall.yaml"),
}


# --- rejected files ---


def test_unknown_reference_names_path_and_line(db: Database) -> None:
    apply(db, CORE)
    bad = (
        "services:\n"
        "  - {id: api, name: API, team: platform}\n"
        "  - id: web\n"
        "    name: Web\n"
        "    team: plattform\n"
    )
    assert apply_errors(db, bad) == ["services[1].team: unknown team 'plattform' (line 5)"]


def test_references_resolve_against_the_file_and_the_database(db: Database) -> None:
    apply(db, CORE)
    report = apply(
        db,
        "teams:\n  - {id: web, name: Web, members: [carol]}\n"
        "services:\n  - {id: site, name: Site, team: web}\n",
    )
    assert by_key(report) == {("teams", "web"): "created", ("services", "site"): "created"}


def test_every_reference_is_checked(db: Database) -> None:
    bad = (
        "severities:\n"
        "  - {name: P1, label: High}\n"
        "teams:\n"
        "  - {id: t, name: T, members: [ghost, alice]}\n"
        "users:\n"
        "  - {id: alice, name: Alice, email: a@x.test}\n"
        "checklists:\n"
        "  - {severity: P0, items: [x]}\n"
    )
    assert apply_errors(db, bad) == [
        "teams[0].members[0]: unknown user 'ghost' (line 4)",
        "checklists[0].severity: unknown severity 'P0' (line 8)",
    ]


def test_reference_to_an_archived_object_is_an_error(db: Database) -> None:
    apply(db, CORE)
    apply(db, "teams:\n  - {id: ops, name: Ops}\nservices: []\n", prune=True)
    assert apply_errors(db, "services:\n  - {id: api, name: API, team: platform}\n") == [
        "services[0].team: team 'platform' is archived (declare it in teams to restore it) (line 2)"
    ]


def test_prune_may_not_strand_a_live_object_outside_the_file(db: Database) -> None:
    apply(db, CORE)
    assert apply_errors(db, "teams:\n  - {id: ops, name: Ops}\n", prune=True) == [
        "teams: prune would archive team 'platform', still used by service 'api' which this file "
        "does not declare (line 1)",
        "teams: prune would archive team 'platform', still used by service 'database' which this "
        "file does not declare (line 1)",
    ]


def test_a_new_severity_may_not_differ_from_an_old_one_only_in_case(db: Database) -> None:
    apply(db, CORE)
    assert apply_errors(db, "severities:\n  - {name: p0, label: x}\n") == [
        "severities[0].name: severity 'p0' differs only in case from existing 'P0' (line 2)"
    ]


def test_a_bad_file_changes_nothing(db: Database) -> None:
    bad = CORE.replace("team: platform}\n  - {id: database", "team: plattform}\n  - {id: database")
    errors = apply_errors(db, bad)
    assert errors == ["services[0].team: unknown team 'plattform' (line 36)"]
    with db.read() as session:
        assert count(session, SeverityRow) == 0
        assert count(session, UserRow) == 0


# --- the CLI, on a database and through a server ---


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[typer.Typer, str]:
    """A Typer app with the config commands, on a SQLite file that has never been migrated."""
    url = f"sqlite:///{tmp_path / 'cli' / 'tocsin.db'}"
    monkeypatch.setenv("TOCSIN_DATABASE_URL", url)
    monkeypatch.delenv("TOCSIN_SERVER", raising=False)
    monkeypatch.delenv("TOCSIN_TOKEN", raising=False)
    app = typer.Typer()
    config_cmds.register(app)
    return app, url


def run(app: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def test_cli_applies_to_a_fresh_database(cli: tuple[typer.Typer, str], tmp_path: Path) -> None:
    app, _ = cli
    core = write(tmp_path, "core.yaml", CORE)
    first = run(app, "apply", "-f", core)
    assert first.exit_code == 0, first.output
    assert "15 created, 0 updated, 0 unchanged, 0 archived" in first.stdout
    again = run(app, "apply", "--file", core)
    assert "0 created, 0 updated, 15 unchanged, 0 archived" in again.stdout


def test_cli_dry_run_shows_the_diff(cli: tuple[typer.Typer, str], tmp_path: Path) -> None:
    app, url = cli
    run(app, "apply", "-f", write(tmp_path, "core.yaml", CORE))
    changed = write(
        tmp_path, "changed.yaml", CORE.replace("respond_within: 15m", "respond_within: 10m")
    )
    result = run(app, "apply", "-f", changed, "--dry-run")
    assert result.exit_code == 0
    assert "~ P0 updated" in result.stdout
    assert "respond_within: 15m → 10m" in result.stdout
    assert "(dry run: nothing was written)" in result.stdout
    with Database(url).read() as session:
        p0 = session.get(SeverityRow, "P0")
        assert p0 is not None
        assert p0.respond_within_s == 900


def test_cli_rejects_a_bad_file_with_every_error(
    cli: tuple[typer.Typer, str], tmp_path: Path
) -> None:
    app, url = cli
    bad = write(
        tmp_path,
        "bad.yaml",
        CORE.replace("team: platform}\n  - {id: database", "team: plattform}\n  - {id: database"),
    )
    result = run(app, "apply", "-f", bad)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{bad}: 1 error, nothing applied",
        "services[0].team: unknown team 'plattform' (line 36)",
    ]
    typo = write(
        tmp_path,
        "typo.yaml",
        "severities:\n  - {name: P0, label: x, respond_within: 15x}\nservics: []\n",
    )
    result = run(app, "apply", "-f", typo)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1:] == [
        "severities[0].respond_within: invalid duration '15x': use forms like 30s, 15m, 1h, 1d, "
        "1h30m (line 2)",
        "servics: unknown section 'servics' (did you mean 'services'?) (line 3)",
    ]
    with Database(url).read() as session:
        assert count(session, SeverityRow) == 0


def test_cli_reports_an_unreadable_file(cli: tuple[typer.Typer, str], tmp_path: Path) -> None:
    app, _ = cli
    result = run(app, "apply", "-f", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_cli_export_round_trip(cli: tuple[typer.Typer, str], tmp_path: Path) -> None:
    app, _ = cli
    run(app, "apply", "-f", write(tmp_path, "core.yaml", CORE))
    stdout = run(app, "export")
    assert stdout.exit_code == 0
    assert load_config(stdout.stdout).present_sections()
    out = tmp_path / "exported.yaml"
    assert run(app, "export", "-o", str(out)).exit_code == 0
    assert out.read_text() == stdout.stdout
    result = run(app, "apply", "-f", str(out), "--prune")
    assert "0 created, 0 updated, 15 unchanged, 0 archived" in result.stdout


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server speaking the config API contract, for the CLI's --server mode."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade(url)
    database = Database(url)
    api = FastAPI()

    @api.post("/api/v1/config/apply")
    async def post_apply(request: Request, dry_run: bool = False, prune: bool = False) -> Response:
        if request.headers.get("authorization") != "Bearer s3cret":
            return JSONResponse({"detail": "invalid token"}, status_code=401)
        assert request.headers["content-type"] == "application/yaml"
        try:
            doc = load_config((await request.body()).decode(), "request body")
            with database.write() as session:
                report = apply_config(session, doc, prune=prune, dry_run=dry_run)
                session.rollback() if dry_run else session.commit()
        except ConfigError as exc:
            return JSONResponse(exc.to_dict(), status_code=422)
        return JSONResponse(report.to_dict())

    @api.get("/api/v1/config/export")
    def get_export() -> Response:
        with database.read() as session:
            return PlainTextResponse(export_config(session), media_type="application/yaml")

    with in_thread(api) as base:
        yield base
    database.dispose()


def test_cli_through_a_server(
    cli: tuple[typer.Typer, str], server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = cli
    monkeypatch.setenv("TOCSIN_TOKEN", "s3cret")
    core = write(tmp_path, "core.yaml", CORE)
    dry = run(app, "apply", "-f", core, "--server", server, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "15 created" in dry.stdout
    assert "(dry run: nothing was written)" in dry.stdout
    applied = run(app, "apply", "-f", core, "--server", server)
    assert "15 created" in applied.stdout
    exported = run(app, "export", "--server", server)
    assert exported.exit_code == 0
    assert "name: P0" in exported.stdout

    bad = write(tmp_path, "bad.yaml", "services:\n  - {id: web, name: Web, team: plattform}\n")
    rejected = run(app, "apply", "-f", bad, "--server", server)
    assert rejected.exit_code == 1
    assert rejected.stderr.splitlines() == [
        f"{bad}: 1 error, nothing applied",
        "services[0].team: unknown team 'plattform' (line 2)",
    ]
    denied = run(app, "apply", "-f", core, "--server", server, "--token", "wrong")
    assert denied.exit_code == 1
    assert "answered 401: invalid token" in denied.stderr
