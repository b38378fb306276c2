"""The alerting sections of `tocsin apply`, and the read model ingest uses (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tocsin.configfile import ApplyReport, ConfigError, apply_config, export_config, load_config
from tocsin.core.alerts import (
    DeclareRule,
    GroupingRule,
    InhibitRule,
    Matcher,
    Route,
    Urgency,
)
from tocsin.services.alerting_config import (
    HeartbeatConfig,
    RateLimit,
    alerting_config,
    invalidate,
    parse_rate_limit,
)
from tocsin.storage.db import Database
from tocsin.storage.tables import (
    AlertRouteRow,
    GroupingRuleRow,
    HeartbeatRow,
    IntegrationRow,
    MaintenanceWindowRow,
    SilenceRow,
)

EXAMPLES = Path(__file__).parents[2] / "examples"
ALERTING = (EXAMPLES / "alerting.yaml").read_text()
ALERTING_SECTIONS = (
    "integrations",
    "routes",
    "grouping",
    "heartbeats",
    "silences",
    "maintenance_windows",
    "inhibit_rules",
)

# Everything the sections can say, beyond the example: operators, rate limits, templates, windows.
FULL = """\
integrations:
  - {key: am-production-0001, type: alertmanager, service: api, name: Prometheus, rate_limit: 50/s}
  - {key: grafana-main-0001, type: grafana, service: api, rate_limit: 120/m}
  - key: uptime-generic-0001
    type: generic
    service: api
    rate_limit: 10/h
    mapping:
      title: "{{ body.check }} is {{ body.state }}"
      dedup_key: {jmespath: "body.check"}
      labels: {team: platform, region: "{{ body.region }}"}
      links: {jmespath: "body.links"}
      details: {check: {jmespath: "body"}}
      items: {jmespath: "checks[]"}
routes:
  - match:
      severity: [critical, error]
      env: {ne: staging}
      duration: {gte: 5m}
    continue: true
    service: database
    urgency: high
    incident_severity: p1
    declare_incident: {min_alerts: 3, within: 10m}
  - match: {alertname: {regex: "Disk.*"}, team: {exists: true}}
    urgency: low
    declare_incident: {min_alerts: 2}
  - match: {}
grouping:
  - {service: api, template: "{{ labels.cluster }}/{{ alertname }}"}
  - {service: database, by: [alertname]}
heartbeats:
  - {key: nightly-backup-0001, service: database, interval: 25h}
silences:
  - matchers: {alertname: DiskSpaceLow}
    starts_at: 2026-01-01T02:00:00+02:00
    ends_at: "2027-01-01T00:00:00Z"
maintenance_windows:
  - service: database
    starts_at: "2036-06-01T22:00:00Z"
    ends_at: "2036-06-02T02:00:00Z"
    comment: upgrade
inhibit_rules:
  - {source_match: {alertname: ClusterDown}, target_match: {}}
"""


@pytest.fixture
def db(core_config: Database) -> Database:
    """A database with the core example applied (tests/conftest.py)."""
    return core_config


def apply(db: Database, yaml_text: str, *, prune: bool = False) -> ApplyReport:
    with db.write() as session:
        report = apply_config(session, load_config(yaml_text, "test.yaml"), prune=prune)
        session.commit()
    return report


def apply_errors(db: Database, yaml_text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught, db.write() as session:
        apply_config(session, load_config(yaml_text, "test.yaml"))
    return [str(issue) for issue in caught.value.errors]


def actions(report: ApplyReport, *sections: str) -> list[tuple[str, str, str]]:
    return [(c.section, c.key, c.action) for c in report.changes if c.section in sections]


# --- the example ---


def test_the_example_applies_after_core_and_again_unchanged(db: Database) -> None:
    before = datetime.now(UTC)
    report = apply(db, ALERTING)
    core = [c for c in report.changes if c.section not in ALERTING_SECTIONS]
    assert {c.action for c in core} == {"unchanged"}  # the repeated core objects
    assert actions(report, *ALERTING_SECTIONS) == [
        ("integrations", "am-production-0001", "created"),
        ("integrations", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "created"),
        ("integrations", "grafana-main-0001", "created"),
        ("integrations", "uptime-generic-0001", "created"),
        ("routes", "#1", "created"),
        ("routes", "#2", "created"),
        ("grouping", "api", "created"),
        ("heartbeats", "nightly-backup-0001", "created"),
        ("silences", "#1", "created"),
        ("inhibit_rules", "#1", "created"),
    ]
    again = apply(db, ALERTING)
    assert not again.changed
    assert len(again.changes) == len(report.changes)

    with db.read() as session:
        routes = session.scalars(select(AlertRouteRow).order_by(AlertRouteRow.position)).all()
        assert [(r.position, r.match, r.urgency, r.declare) for r in routes] == [
            (0, {"severity": "critical"}, "high", {"min_alerts": 1, "within_s": None}),
            (1, {"severity": "warning"}, "low", None),
        ]
        heartbeat = session.get(HeartbeatRow, "nightly-backup-0001")
        assert heartbeat is not None
        assert heartbeat.interval_s == 25 * 3600
        assert heartbeat.last_ping_at is None
        assert before <= heartbeat.created_at <= datetime.now(UTC)
        (silence,) = session.scalars(select(SilenceRow)).all()
        assert (silence.config_position, silence.created_by) == (0, "config")
        assert silence.starts_at == datetime(2026, 1, 1, tzinfo=UTC)
        generic = session.get(IntegrationRow, "uptime-generic-0001")
        assert generic is not None
        assert generic.mapping["severity"] == "{{ body.level | default('error') }}"


def test_the_example_is_read_into_domain_objects(db: Database) -> None:
    apply(db, ALERTING)
    with db.read() as session:
        config = alerting_config(session)
    assert config.routes == (
        Route(
            matchers={"severity": (Matcher("eq", "critical"),)},
            urgency=Urgency.HIGH,
            incident_severity="P0",
            declare=DeclareRule(),
        ),
        Route(matchers={"severity": (Matcher("eq", "warning"),)}, urgency=Urgency.LOW),
    )
    assert config.grouping == {
        "api": GroupingRule("api", by=("alertname", "cluster"), window=timedelta(minutes=5))
    }
    assert config.inhibit_rules == (
        InhibitRule(
            source={"alertname": (Matcher("eq", "ClusterDown"),)},
            target={"severity": (Matcher("eq", "warning"),)},
            equal=("cluster",),
        ),
    )
    (silence,) = config.silences
    assert silence.matchers == {
        "alertname": (Matcher("eq", "DiskSpaceLow"),),
        "env": (Matcher("eq", "staging"),),
    }
    assert (silence.starts_at, silence.ends_at) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert config.heartbeats == {
        "nightly-backup-0001": HeartbeatConfig(
            "nightly-backup-0001", "database", "Nightly backup", timedelta(hours=25)
        )
    }
    assert sorted(config.integrations) == [
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "am-production-0001",
        "grafana-main-0001",
        "uptime-generic-0001",
    ]
    pagerduty = config.integrations["0f1e2d3c4b5a69788796a5b4c3d2e1f0"]
    assert (pagerduty.type, pagerduty.service, pagerduty.mapping, pagerduty.rate_limit) == (
        "pagerduty",
        "database",
        {},
        None,
    )
    assert config.integrations["uptime-generic-0001"].mapping["dedup_key"] == "{{ body.check }}"
    assert config.windows == ()
    assert config.severities == ("P0", "P1", "P2", "P3")


def test_everything_the_sections_say_is_read(db: Database) -> None:
    apply(db, FULL)
    with db.read() as session:
        config = alerting_config(session)
    limits = {key: i.rate_limit for key, i in config.integrations.items()}
    assert limits == {
        "am-production-0001": RateLimit(per_second=50, burst=50),
        "grafana-main-0001": RateLimit(per_second=2, burst=120),
        "uptime-generic-0001": RateLimit(per_second=10 / 3600, burst=10),
    }
    assert config.integrations["am-production-0001"].name == "Prometheus"
    first, second, third = config.routes
    assert first == Route(
        matchers={
            "severity": (Matcher("in", ("critical", "error")),),
            "env": (Matcher("ne", "staging"),),
            "duration": (Matcher("gte", "5m"),),
        },
        continue_=True,
        service="database",
        urgency=Urgency.HIGH,
        incident_severity="P1",  # written p1: severity names are matched case-insensitively
        declare=DeclareRule(min_alerts=3, within=timedelta(minutes=10)),
    )
    assert second.declare == DeclareRule(min_alerts=2)
    assert (third.matchers, third.declare, third.urgency) == ({}, None, None)
    assert config.grouping["api"].template == "{{ labels.cluster }}/{{ alertname }}"
    assert config.grouping["database"] == GroupingRule("database", by=("alertname",))
    assert config.heartbeats["nightly-backup-0001"].name == "nightly-backup-0001"
    (window,) = config.windows
    assert (window.service, window.starts_at) == ("database", datetime(2036, 6, 1, 22, tzinfo=UTC))
    (silence,) = config.silences
    assert silence.starts_at == datetime(2026, 1, 1, tzinfo=UTC)  # 02:00+02:00
    assert config.inhibit_rules[0].target == {}


def test_export_applies_back_unchanged(db: Database) -> None:
    apply(db, FULL)
    with db.read() as session:
        exported = export_config(session)
    assert "declare_incident:\n      min_alerts: 3\n      within: 10m" in exported
    assert "continue: true" in exported
    assert "starts_at: '2026-01-01T00:00:00Z'" in exported
    report = apply(db, exported, prune=True)
    assert not report.changed, report.render()
    assert len(actions(report, *ALERTING_SECTIONS)) == 12
    # And the example's own export, with its true / false declare_incident.
    apply(db, ALERTING)
    with db.read() as session:
        exported = export_config(session)
    assert not apply(db, exported).changed


def test_alerting_config_sees_an_apply_at_once(db: Database) -> None:
    apply(db, ALERTING)
    with db.read() as session:
        assert len(alerting_config(session).routes) == 2
    apply(db, "routes: []\n")
    with db.read() as session:
        assert alerting_config(session).routes == ()


# --- keyless lists: the file's list replaces the stored one ---


def test_shrinking_routes_removes_the_tail_without_prune(db: Database) -> None:
    three = "routes:\n  - match: {a: '1'}\n  - match: {a: '2'}\n  - match: {a: '3'}\n"
    apply(db, three)
    report = apply(db, "routes:\n  - match: {a: '1'}\n  - match: {a: '9'}\n")
    assert actions(report, "routes") == [
        ("routes", "#1", "unchanged"),
        ("routes", "#2", "updated"),
        ("routes", "#3", "archived"),
    ]
    assert report.changes[1].diffs == {"match": ({"a": "2"}, {"a": "9"})}
    with db.read() as session:
        rows = session.scalars(select(AlertRouteRow).order_by(AlertRouteRow.position)).all()
        assert [(r.position, r.match) for r in rows] == [(0, {"a": "1"}), (1, {"a": "9"})]
    assert not apply(db, three.replace("'2'", "'9'").rsplit("  - ", 1)[0]).changed
    assert actions(apply(db, three), "routes")[2] == ("routes", "#3", "created")


def test_silences_from_the_api_survive_an_apply(db: Database) -> None:
    apply(db, ALERTING)
    now = datetime.now(UTC)
    with db.write() as session:
        session.add(
            SilenceRow(
                matchers={"alertname": "Flapping"},
                starts_at=now,
                ends_at=now + timedelta(hours=1),
                created_by="alice",
                comment="from the API",
                created_at=now,
                config_position=None,
            )
        )
        session.add(
            MaintenanceWindowRow(
                service_id="api",
                starts_at=now,
                ends_at=now + timedelta(hours=1),
                created_by="alice",
                created_at=now,
                config_position=None,
            )
        )
        session.commit()
    report = apply(db, "silences: []\nmaintenance_windows: []\n", prune=True)
    assert actions(report, "silences", "maintenance_windows") == [("silences", "#1", "archived")]
    with db.read() as session:
        (silence,) = session.scalars(select(SilenceRow)).all()
        assert (silence.created_by, silence.config_position) == ("alice", None)
        assert session.scalars(select(MaintenanceWindowRow)).one().created_by == "alice"
        invalidate()
        config = alerting_config(session)
        assert [s.matchers for s in config.silences] == [
            {"alertname": (Matcher("eq", "Flapping"),)}
        ]
        assert [w.service for w in config.windows] == ["api"]
    with db.read() as session:
        exported = load_config(export_config(session))
    assert exported.silences == []
    assert exported.maintenance_windows == []


def test_ended_silences_and_windows_are_not_loaded(db: Database) -> None:
    apply(
        db,
        "silences:\n"
        "  - matchers: {a: b}\n"
        "    starts_at: '2020-01-01T00:00:00Z'\n"
        "    ends_at: '2020-01-02T00:00:00Z'\n"
        "maintenance_windows:\n"
        "  - {service: api, starts_at: '2020-01-01T00:00:00Z', ends_at: '2020-01-02T00:00:00Z'}\n",
    )
    with db.read() as session:
        config = alerting_config(session)
    assert (config.silences, config.windows) == ((), ())


# --- keyed sections ---


def test_removed_integrations_and_heartbeats_are_archived_and_can_return(db: Database) -> None:
    apply(db, ALERTING)
    smaller = (
        "integrations:\n  - {key: grafana-main-0001, type: grafana, service: api}\n"
        "heartbeats: []\ngrouping: []\n"
    )
    # Keyed sections lose entries only with prune.
    assert actions(apply(db, smaller), "integrations", "heartbeats", "grouping") == [
        ("integrations", "grafana-main-0001", "unchanged")
    ]
    report = apply(db, smaller, prune=True)
    assert sorted(actions(report, "integrations", "heartbeats", "grouping")) == [
        ("grouping", "api", "archived"),
        ("heartbeats", "nightly-backup-0001", "archived"),
        ("integrations", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "archived"),
        ("integrations", "am-production-0001", "archived"),
        ("integrations", "grafana-main-0001", "unchanged"),
        ("integrations", "uptime-generic-0001", "archived"),
    ]
    with db.read() as session:
        row = session.get(IntegrationRow, "am-production-0001")
        assert row is not None
        assert row.archived
        assert session.scalars(select(GroupingRuleRow)).all() == []
        invalidate()
        config = alerting_config(session)
        assert list(config.integrations) == ["grafana-main-0001"]
        assert config.heartbeats == {}
    with db.write() as session:
        row = session.get(HeartbeatRow, "nightly-backup-0001")
        assert row is not None
        row.last_ping_at = datetime(2026, 1, 1, tzinfo=UTC)
        session.commit()
    before = datetime.now(UTC)
    restored = apply(db, ALERTING)
    change = next(c for c in restored.changes if c.key == "am-production-0001")
    assert (change.action, change.diffs) == ("updated", {"archived": (True, False)})
    with db.read() as session:
        heartbeat = session.get(HeartbeatRow, "nightly-backup-0001")
        assert heartbeat is not None
        # Restored, it starts a new interval instead of being overdue at once.
        assert (heartbeat.archived, heartbeat.last_ping_at) == (False, None)
        assert heartbeat.created_at >= before


def test_changing_a_heartbeat_keeps_its_clock(db: Database) -> None:
    apply(db, ALERTING)
    pinged = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with db.write() as session:
        row = session.get(HeartbeatRow, "nightly-backup-0001")
        assert row is not None
        row.created_at = datetime(2026, 2, 1, tzinfo=UTC)
        row.last_ping_at = pinged
        session.commit()
    report = apply(db, ALERTING.replace("interval: 25h", "interval: 26h"))
    (change,) = [c for c in report.changes if c.section == "heartbeats"]
    assert change.diffs == {"interval": ("1d1h", "1d2h")}
    with db.read() as session:
        row = session.get(HeartbeatRow, "nightly-backup-0001")
        assert row is not None
        assert (row.interval_s, row.created_at, row.last_ping_at) == (
            26 * 3600,
            datetime(2026, 2, 1, tzinfo=UTC),
            pinged,
        )


def test_prune_may_not_strand_an_integration(db: Database) -> None:
    apply(db, ALERTING)
    errors = apply_errors_pruned(db, "services:\n  - {id: api, name: Public API, team: platform}\n")
    assert errors == [
        "services: prune would archive service 'database', still used by integration "
        "'0f1e2d3c4b5a69788796a5b4c3d2e1f0' which this file does not declare (line 1)",
        "services: prune would archive service 'database', still used by heartbeat "
        "'nightly-backup-0001' which this file does not declare (line 1)",
    ]


def apply_errors_pruned(db: Database, yaml_text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught, db.write() as session:
        apply_config(session, load_config(yaml_text, "test.yaml"), prune=True)
    return [str(issue) for issue in caught.value.errors]


# --- rejected files ---


GENERIC = "integrations:\n  - key: hook\n    type: generic\n    service: api\n    mapping:\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "integrations:\n  - {key: k, type: nagios, service: api}\n",
            [
                "integrations[0].type: must be one of 'alertmanager', 'grafana', 'pagerduty' or "
                "'generic', got 'nagios' (line 2)"
            ],
            id="unknown-type",
        ),
        pytest.param(
            "integrations:\n  - {key: k, type: generic, service: api}\n",
            [
                "integrations[0].mapping: required for type generic (at least mapping.title) "
                "(line 2)"
            ],
            id="generic-without-mapping",
        ),
        pytest.param(
            "integrations:\n  - key: k\n    type: grafana\n    service: api\n"
            "    mapping: {title: x}\n",
            [
                "integrations[0].mapping: only type generic takes a mapping, not type grafana "
                "(line 5)"
            ],
            id="mapping-on-grafana",
        ),
        pytest.param(
            GENERIC + "      title: x\n      labels:\n        team: '{{ body.team }'\n",
            ["integrations[0].mapping.labels.team: template syntax error: unexpected '}' (line 8)"],
            id="jinja-syntax",
        ),
        pytest.param(
            GENERIC + "      dedup_key: {jmespath: 'alerts[0'}\n      titel: x\n",
            [
                "integrations[0].mapping.title: required key is missing (line 5)",
                "integrations[0].mapping.dedup_key.jmespath: JMESPath syntax error: incomplete "
                "expression (line 6)",
                "integrations[0].mapping.titel: unknown key 'titel' (did you mean 'title'?) "
                "(line 7)",
            ],
            id="jmespath-syntax-and-keys",
        ),
        pytest.param(
            GENERIC + "      title: x\n      labels: '{{ body.labels }}'\n"
            "      items: '{{ body.alerts }}'\n",
            [
                "integrations[0].mapping.labels: expected {jmespath: EXPRESSION} or a mapping "
                "of names to templates (line 7)",
                "integrations[0].mapping.items: expected {jmespath: EXPRESSION} giving the list "
                "of alerts (line 8)",
            ],
            id="mapping-shapes",
        ),
        pytest.param(
            GENERIC + "      title: {jmespath: 'shout(body.title)'}\n",
            [
                "integrations[0].mapping: does not compile: title.jmespath: invalid JMESPath "
                "expression: unknown function shout() (line 5)"
            ],
            id="jmespath-unknown-function",
        ),
        pytest.param(
            "integrations:\n  - {key: k, type: grafana, service: api, rate_limit: 10/d}\n",
            [
                "integrations[0].rate_limit: invalid rate limit '10/d': use N/s, N/m or N/h, "
                "such as 100/s or 600/m (line 2)"
            ],
            id="rate-limit",
        ),
        pytest.param(
            "routes:\n  - match: {severity: {like: crit}}\n",
            [
                "routes[0].match.severity.like: unknown operator 'like' for 'severity'; use one "
                "of eq, ne, regex, not_regex, in, not_in, gt, gte, lt, lte, exists (line 2)"
            ],
            id="unknown-operator",
        ),
        pytest.param(
            "routes:\n  - match:\n      severity: critical\n      alertname: {regex: '(Disk'}\n",
            [
                "routes[0].match.alertname.regex: invalid regular expression: missing ), "
                "unterminated subpattern at position 0 (line 4)"
            ],
            id="bad-regex",
        ),
        pytest.param(
            "routes:\n  - match: {}\n    declare_incident: {min_alerts: 0}\n",
            [
                "routes[0].declare_incident: min_alerts must be a whole number of at least 1, "
                "got 0 (line 3)"
            ],
            id="min-alerts-zero",
        ),
        pytest.param(
            "routes:\n  - match: {}\n    contine: true\n",
            ["routes[0].contine: unknown key 'contine' (did you mean 'continue'?) (line 3)"],
            id="continue-typo",
        ),
        pytest.param(
            "routes:\n  - match: {}\n    service: web\n    incident_severity: P9\n",
            [
                "routes[0].service: unknown service 'web' (line 3)",
                "routes[0].incident_severity: unknown severity 'P9' (line 4)",
            ],
            id="unknown-refs",
        ),
        pytest.param(
            "heartbeats:\n  - {key: hb, service: web, interval: 1h}\n"
            "grouping:\n  - {service: web, by: [alertname]}\n"
            "maintenance_windows:\n  - service: web\n"
            "    starts_at: '2026-01-01T00:00:00Z'\n    ends_at: '2026-01-02T00:00:00Z'\n",
            [
                "heartbeats[0].service: unknown service 'web' (line 2)",
                "grouping[0].service: unknown service 'web' (line 4)",
                "maintenance_windows[0].service: unknown service 'web' (line 6)",
            ],
            id="unknown-services",
        ),
        pytest.param(
            "silences:\n  - matchers: {alertname: X}\n    starts_at: 2026-02-01T00:00:00Z\n"
            "    ends_at: '2026-02-01T00:30:00+01:00'\n",
            ["silences[0].ends_at: must be after starts_at (line 4)"],
            id="ends-before-start",
        ),
        pytest.param(
            "silences:\n"
            "  - {matchers: {}, starts_at: '2026-01-01T00:00:00', ends_at: 2027-01-01}\n",
            [
                "silences[0].matchers: needs at least 1 entry (line 2)",
                "silences[0].starts_at: time 2026-01-01T00:00:00 needs a zone: end it with Z or "
                "an offset like +02:00 (line 2)",
                "silences[0].ends_at: expected a time such as 2026-01-01T09:00:00Z, got "
                "2027-01-01 (line 2)",
            ],
            id="silence-fields",
        ),
        pytest.param(
            "grouping:\n  - {service: api, by: [alertname], template: '{{ x }}'}\n"
            "  - {service: database, template: '{{ x '}\n",
            [
                "grouping[0]: set exactly one of by (label names) or template (line 2)",
                "grouping[1].template: template syntax error: unexpected end of template, "
                "expected 'end of print statement'. (line 3)",
            ],
            id="grouping",
        ),
        pytest.param(
            "inhibit_rules:\n  - source_match: {alertname: {regex: '['}}\n    target_match: {}\n",
            [
                "inhibit_rules[0].source_match.alertname.regex: invalid regular expression: "
                "unterminated character set at position 0 (line 2)"
            ],
            id="inhibit-regex",
        ),
    ],
)
def test_bad_alerting_config_is_rejected(db: Database, text: str, expected: list[str]) -> None:
    assert apply_errors(db, text) == expected


def test_a_rejected_file_writes_nothing(db: Database) -> None:
    bad = ALERTING.replace("incident_severity: P0", "incident_severity: P7")
    assert apply_errors(db, bad) == ["routes[0].incident_severity: unknown severity 'P7' (line 29)"]
    with db.read() as session:
        assert session.scalars(select(IntegrationRow)).all() == []


# --- rate limits ---


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("100/s", RateLimit(100, 100)),
        ("0.5/s", RateLimit(0.5, 1)),  # a burst of at least one request
        ("600/m", RateLimit(10, 600)),  # N per period may arrive at once
        ("36/h", RateLimit(0.01, 36)),
    ],
)
def test_parse_rate_limit(text: str, limit: RateLimit) -> None:
    parsed = parse_rate_limit(text)
    assert (parsed.per_second, parsed.burst) == pytest.approx((limit.per_second, limit.burst))


@pytest.mark.parametrize("text", ["", "10", "10/d", "-1/s", "0/s", "ten/s", "10 / s", "1e3/s"])
def test_parse_rate_limit_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        parse_rate_limit(text)
