"""The communication sections of the config file (`audiences`, `communication`,
`message_templates`): applied, exported and applied back unchanged, and refused with every
problem named by path and line, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tocsin.configfile import ApplyReport, ConfigError, apply_config, export_config, load_config
from tocsin.storage.comm_tables import AudienceRow, MessageTemplateRow
from tocsin.storage.db import Database

EXAMPLES = Path(__file__).parents[2] / "examples"
SEEDS = sorted((EXAMPLES / "seeds").glob("*.yaml"))


def apply(db: Database, text: str, *, prune: bool = False) -> ApplyReport:
    with db.write() as session:
        report = apply_config(session, load_config(text, "test.yaml"), prune=prune)
        session.commit()
    return report


def errors(db: Database, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        apply(db, text)
    return [str(e) for e in caught.value.errors]


def changes(report: ApplyReport, section: str) -> list[tuple[str, str]]:
    return [(c.key, c.action) for c in report.changes if c.section == section]


@pytest.fixture
def db(database: Database) -> Database:
    apply(database, (EXAMPLES / "core.yaml").read_text())
    return database


@pytest.mark.parametrize("seed", SEEDS, ids=[p.stem for p in SEEDS])
def test_seed_communication_exports_and_applies_back_unchanged(
    database: Database, seed: Path
) -> None:
    apply(database, seed.read_text())
    with database.read() as session:
        exported = export_config(session)
    report = apply(database, exported, prune=True)
    assert not report.changed
    # Templates (multi-line, emoji) come back as written.
    exported_templates = load_config(exported).message_templates or []
    written = load_config(seed.read_text()).message_templates or []
    assert exported_templates
    assert sorted(t.model_dump_json() for t in exported_templates) == sorted(
        t.model_dump_json() for t in written
    )


def test_the_issue_example_applies_after_the_earlier_ones(db: Database) -> None:
    for name in ("alerting.yaml", "oncall.yaml"):
        apply(db, (EXAMPLES / name).read_text())
    report = apply(db, (EXAMPLES / "communication.yaml").read_text())
    assert changes(report, "audiences") == [
        ("stakeholders", "created"),
        ("incident-room", "created"),
        ("ops-feed", "created"),
    ]
    assert changes(report, "communication") == [("#1", "created"), ("#2", "created")]
    with db.read() as session:
        room = session.get(AudienceRow, "incident-room")
        assert room is not None
        assert room.settings == {
            "create_incident_channel": True,
            "invite": ["commander", "responders"],
        }


def test_rules_and_templates_are_replaced_whole_by_the_file(db: Database) -> None:
    apply(
        db,
        """
audiences:
  - {id: feed, type: webhook, url: "http://127.0.0.1:9/feed"}
communication:
  - {severities: [P0], audiences: [feed]}
  - {severities: [P1], audiences: [feed], messages: [initial]}
message_templates:
  - {kind: update, title: "A {{ ref }}", body: "a"}
  - {kind: update, severity: P0, title: "B", body: "b"}
""",
    )
    report = apply(
        db,
        """
communication:
  - {severities: [P0, P1], audiences: [feed]}
message_templates:
  - {kind: update, severity: P0, title: "B2", body: "b"}
""",
    )
    assert changes(report, "communication") == [("#1", "updated"), ("#2", "archived")]
    assert changes(report, "message_templates") == [
        ("update severity=P0", "updated"),
        ("update", "archived"),
    ]
    with db.read() as session:
        keys = session.scalars(select(MessageTemplateRow.key)).all()
    assert keys == ["update severity=P0"]


def test_pruning_an_audience_still_in_use_is_refused(db: Database) -> None:
    apply(
        db,
        """
audiences:
  - {id: feed, type: webhook, url: "http://127.0.0.1:9/feed"}
  - {id: mail, type: email, to: [ops@example.test]}
communication:
  - {severities: [P0], audiences: [feed, mail]}
""",
    )
    with pytest.raises(ConfigError) as caught:
        apply(db, "audiences:\n  - {id: feed, type: webhook, url: 'http://127.0.0.1:9/f'}\n",
              prune=True)  # fmt: skip
    assert [str(e) for e in caught.value.errors] == [
        "audiences: prune would archive audience 'mail', still used by communication rule "
        "'#1' which this file does not declare (line 1)"
    ]


def test_audience_mistakes_name_path_and_line(db: Database) -> None:
    assert errors(
        db,
        """audiences:
  - {id: a, type: email, to: [not-an-address]}
  - {id: b, type: slack, channel: "#ops", invite: [commander]}
  - {id: c, type: people}
  - {id: d, type: sms, to: ["5550100"]}
  - {id: e, type: webhook, url: "http://127.0.0.1:9/", to: [x@example.test]}
  - {id: f, type: slack}
  - {id: g, type: pager, url: "http://127.0.0.1:9/"}
  - {id: h, type: slack, channel: "ops"}
  - {id: i, type: teams, url: "ftp://example.test/x"}
""",
    ) == [
        "audiences[0]: 'not-an-address' is not an email address (line 2)",
        "audiences[1]: `invite` and `channel_name` go with `create_incident_channel: true` "
        "(line 3)",
        "audiences[2]: a people audience needs `users`, `teams` or `schedules` (line 4)",
        "audiences[3]: '5550100' is not an E.164 phone number such as +15551234567 (line 5)",
        "audiences[4]: a webhook audience takes `url`, `secret`, not `to` (line 6)",
        'audiences[5]: a slack audience takes either `channel: "#name"` or '
        "`create_incident_channel: true` (line 7)",
        "audiences[6].type: must be one of 'email', 'slack', 'webhook', 'teams', 'mattermost', "
        "'sms', 'people' or 'statuspage', got 'pager' (line 8)",
        "audiences[7].channel: 'ops' is not a Slack channel name: write '#' and lowercase "
        "letters, digits, '-', '_' or '.' (line 9)",
        "audiences[8].url: 'ftp://example.test/x' is not an http(s) URL (line 10)",
    ]


def test_references_are_checked(db: Database) -> None:
    assert errors(
        db,
        """audiences:
  - {id: people, type: people, users: [nobody], teams: [platform], schedules: [nights]}
  - {id: room, type: slack, create_incident_channel: true, invite: [captain, responders]}
communication:
  - {severities: [P9], audiences: [room, nowhere], services: [web]}
message_templates:
  - {kind: update, severity: P7, service: api, title: t, body: b}
""",
    ) == [
        "audiences[0].users[0]: unknown user 'nobody' (line 2)",
        "audiences[0].schedules[0]: unknown schedule 'nights' (line 2)",
        "audiences[1].invite[0]: unknown incident role 'captain' (line 3)",
        "communication[0].audiences[1]: unknown audience 'nowhere' (line 5)",
        "communication[0].severities[0]: unknown severity 'P9' (line 5)",
        "communication[0].services[0]: unknown service 'web' (line 5)",
        "message_templates[0].severity: unknown severity 'P7' (line 7)",
    ]


def test_template_mistakes_are_refused_with_their_line(db: Database) -> None:
    assert errors(
        db,
        """message_templates:
  - kind: initial
    title: "{{ titel }}"
    body: |
      Status: {{ status_label }}
      {% if impact %}
      Impact: {{ impact }
  - kind: update
    title: ok
    body: "Lead: {{ commander.upper() }}"
  - {kind: farewell, title: t, body: b}
""",
    ) == [
        "message_templates[0].title: unknown field 'titel' (did you mean 'title'?) "
        "(template line 1) (line 3)",
        "message_templates[0].body: template syntax error: unexpected '}' (template line 3) "
        "(line 4)",
        "message_templates[1].body: fails while optional fields are empty (no commander, "
        "impact, next update …): 'None' has no attribute 'upper'; guard them with "
        "{% if … %} or `or` (template line 1) (line 10)",
        "message_templates[2].kind: must be one of 'initial', 'update' or 'resolution', got "
        "'farewell' (line 11)",
    ]


def test_two_templates_for_the_same_thing_are_refused(db: Database) -> None:
    assert errors(
        db,
        """message_templates:
  - {kind: update, severity: P1, title: a, body: a}
  - {kind: update, title: b, body: b}
  - {kind: update, severity: P1, title: c, body: c}
""",
    ) == [
        "message_templates[2]: a second template for 'update severity=P1' (also at "
        "message_templates[0]); narrow one with severity, service or audience_type (line 4)"
    ]


def test_an_incident_channel_name_template_is_checked(db: Database) -> None:
    assert errors(
        db,
        """audiences:
  - {id: room, type: slack, create_incident_channel: true, channel_name: "inc-{{ slugg }}"}
""",
    ) == [
        "audiences[0]: channel_name: unknown field 'slugg' (did you mean 'slug'?) "
        "(template line 1) (line 2)"
    ]
