"""Parsing and validating configuration files: every error by path and line, no database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tocsin.configfile import ConfigError, ConfigIssue, load_config

EXAMPLES = Path(__file__).parents[2] / "examples"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(text, "test.yaml")
    return [str(issue) for issue in caught.value.errors]


def test_core_example_parses_into_typed_sections() -> None:
    doc = load_config((EXAMPLES / "core.yaml").read_text(), "core.yaml")
    assert doc.severities is not None
    assert [s.name for s in doc.severities] == ["P0", "P1", "P2", "P3"]
    assert doc.severities[0].respond_within == timedelta(minutes=15)
    assert doc.severities[3].update_every is None
    assert doc.users is not None
    assert doc.users[1].role == "responder"
    assert doc.present_sections() == [
        "severities",
        "incident_roles",
        "users",
        "teams",
        "services",
        "checklists",
    ]
    assert doc.source == "core.yaml"


def test_absent_sections_stay_absent() -> None:
    doc = load_config("services:\n  - {id: api, name: API}\n")
    assert doc.present_sections() == ["services"]
    assert doc.users is None


def test_empty_file_declares_nothing() -> None:
    assert load_config("").present_sections() == []
    assert load_config("# only a comment\n").present_sections() == []


def test_yaml_syntax_error_has_its_line() -> None:
    assert errors_of("users:\n  - id: a\n    name: [unclosed\n") == [
        "test.yaml: invalid YAML: while parsing a flow sequence: expected ',' or ']', "
        "but got '<stream end>' (line 4)"
    ]


def test_top_level_must_be_sections() -> None:
    assert errors_of("- severities\n") == [
        "test.yaml: expected sections (severities:, users: …) at the top level (line 1)"
    ]


def test_unknown_section_and_key_suggest_the_near_miss() -> None:
    text = "servces: []\nservices:\n  - id: api\n    name: API\n    tema: platform\n"
    assert errors_of(text) == [
        "servces: unknown section 'servces' (did you mean 'services'?) (line 1)",
        "services[0].tema: unknown key 'tema' (did you mean 'team'?) (line 5)",
    ]


def test_unknown_user_keys_list_the_valid_ones() -> None:
    text = "users:\n  - id: a\n    name: A\n    email: a@x.test\n    phone: '+1'\n"
    assert errors_of(text) == [
        "users[0].phone: unknown key 'phone'; valid: id, name, email, role, time_zone, "
        "contact_methods, notification_rules (line 5)"
    ]


def test_duplicate_mapping_keys_are_errors() -> None:
    text = "services:\n  - id: api\n    name: API\n    name: Public API\n"
    assert errors_of(text) == ["services[0].name: duplicate key 'name' (first at line 3) (line 4)"]


def test_wrong_types_name_what_they_got() -> None:
    text = (
        "severities:\n"
        "  - name: P0\n"
        "    label: [Critical]\n"
        "    pages: maybe\n"
        "users:\n"
        "  - {id: a, name: A, email: a@x.test, role: root}\n"
        "teams: {id: t}\n"
        "services:\n"
        "  - 7\n"
    )
    assert errors_of(text) == [
        "severities[0].label: expected text, got a list (line 3)",
        "severities[0].pages: expected true or false, got 'maybe' (line 4)",
        "users[0].role: must be one of 'admin', 'responder' or 'viewer', got 'root' (line 6)",
        "teams: expected a list, got a mapping (line 7)",
        "services[0]: expected a mapping (key: value), got the number 7 (line 9)",
    ]


def test_bad_durations() -> None:
    text = (
        "severities:\n"
        "  - name: P0\n"
        "    label: Critical\n"
        "    respond_within: 15x\n"
        "    update_every: 30\n"
        "  - name: P1\n"
        "    label: High\n"
        "    respond_within: 0m\n"
    )
    assert errors_of(text) == [
        "severities[0].respond_within: invalid duration '15x': "
        "use forms like 30s, 15m, 1h, 1d, 1h30m (line 4)",
        "severities[0].update_every: expected a duration such as 15m, 1h or 1d, got 30 (line 5)",
        "severities[1].respond_within: duration '0m' must be longer than zero (line 8)",
    ]


def test_missing_required_key_points_at_its_entry() -> None:
    text = "services:\n  - id: api\n    name: API\n  - id: db\n"
    assert errors_of(text) == ["services[1].name: required key is missing (line 4)"]


def test_duplicate_ids_within_a_section() -> None:
    text = (
        "severities:\n"
        "  - {name: P1, label: High}\n"
        "  - {name: p1, label: Also high}\n"
        "services:\n"
        "  - {id: api, name: API}\n"
        "  - {id: db, name: DB}\n"
        "  - {id: api, name: API again}\n"
        "teams:\n"
        "  - {id: t, name: T, members: [a, b, a]}\n"
        "checklists:\n"
        "  - {severity: P1, items: [one]}\n"
        "  - {severity: P1, items: [two]}\n"
    )
    assert errors_of(text) == [
        "severities[1].name: duplicate severity name 'p1' (also at severities[0]) (line 3)",
        "services[2].id: duplicate service id 'api' (also at services[0]) (line 7)",
        "teams[0].members[2]: user 'a' is listed twice (line 9)",
        "checklists[1].severity: duplicate checklist severity 'P1' (also at checklists[0]) "
        "(line 12)",
    ]


def test_duplicates_are_reported_alongside_type_errors() -> None:
    text = "services:\n  - {id: api, name: API, tema: x}\n  - {id: api, name: 5}\n"
    assert errors_of(text) == [
        "services[0].tema: unknown key 'tema' (did you mean 'team'?) (line 2)",
        "services[1].id: duplicate service id 'api' (also at services[0]) (line 3)",
        "services[1].name: expected text, got the number 5 (line 3)",
    ]


def test_section_with_nothing_after_it_is_an_error() -> None:
    assert errors_of("users:\nservices: []\n") == [
        "users: section is empty; write [] to declare it with no entries (line 1)"
    ]


def test_values_are_checked() -> None:
    text = (
        "users:\n"
        "  - {id: 'al ice', name: '', email: nope, time_zone: Mars/Olympus}\n"
        "checklists:\n"
        "  - {severity: P1, items: []}\n"
    )
    assert errors_of(text) == [
        "users[0].id: invalid key 'al ice': use letters, digits, '.', '_' or '-', "
        "starting with a letter or digit (line 2)",
        "users[0].name: must not be empty (line 2)",
        "users[0].email: 'nope' is not an email address (line 2)",
        "users[0].time_zone: unknown time zone 'Mars/Olympus'; "
        "use an IANA name such as Europe/Berlin (line 2)",
        "checklists[0].items: needs at least 1 entry (line 4)",
    ]


def test_too_long_for_the_column() -> None:
    text = f"severities:\n  - {{name: {'S' * 33}, label: x}}\n"
    assert errors_of(text) == ["severities[0].name: is too long (at most 32 characters) (line 2)"]


def test_yaml_keys_are_always_text() -> None:
    # YAML 1.1 reads `yes:` as true; as a key it must stay the word the user wrote.
    assert errors_of("yes: 1\n") == [
        "yes: unknown section 'yes'; valid: severities, incident_roles, users, teams, "
        "schedules, escalation_policies, services, checklists, integrations, routes, "
        "grouping, heartbeats, silences, maintenance_windows, inhibit_rules, channels, "
        "webhooks, audiences, communication, message_templates (line 1)"
    ]


def test_unsafe_tags_are_refused() -> None:
    assert errors_of("services: !!python/object/apply:os.system [true]\n") == [
        "test.yaml: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system' (line 1)"
    ]


def test_anchors_and_aliases_share_lists() -> None:
    text = (
        "checklists:\n"
        "  - {severity: P1, items: &common [one, two]}\n"
        "  - {severity: P2, items: *common}\n"
    )
    doc = load_config(text)
    assert doc.checklists is not None
    assert doc.checklists[1].items == ["one", "two"]


def test_error_string_format() -> None:
    issue = ConfigIssue("services[1].team", "unknown team 'plattform'", 23)
    assert str(issue) == "services[1].team: unknown team 'plattform' (line 23)"
    assert str(ConfigIssue("f.yaml", "invalid YAML")) == "f.yaml: invalid YAML"
    error = ConfigError([issue, ConfigIssue("users", "x", 2)], "f.yaml")
    assert str(error) == "users: x (line 2)\nservices[1].team: unknown team 'plattform' (line 23)"
    assert error.to_dict() == {
        "detail": "f.yaml: 2 errors, nothing applied",
        "errors": [
            {"path": "users", "message": "x", "line": 2},
            {"path": "services[1].team", "message": "unknown team 'plattform'", "line": 23},
        ],
    }


def test_line_of_falls_back_to_the_nearest_ancestor() -> None:
    doc = load_config("services:\n  - id: api\n    name: API\n")
    assert doc.line_of("services[0].name") == 3
    assert doc.line_of("services[0].team") == 2
    assert doc.line_of("services") == 1
    assert doc.line_of("users[0].id") is None
