"""The on-call sections of `tocsin apply`: users' contact methods and rules, schedules,
escalation policies, services' policies and channels (SQLite, PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import EXAMPLES
from tocsin.configfile import ApplyReport, ConfigError, apply_config, export_config, load_config
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import (
    ChannelSettingsRow,
    ContactMethodRow,
    EscalationStepRow,
    NotificationRuleRow,
    ScheduleLayerRow,
    ScheduleRow,
)
from tocsin.storage.tables import ServiceRow

ONCALL = (EXAMPLES / "oncall.yaml").read_text()
POLICY = "escalation_policies:\n  - id: p\n    steps:\n"
DAILY = "{type: daily, handoff: '09:00', start: '2026-01-05'}"
CHANNELS = """
channels:
  email: {host: smtp.example.test, port: 587, from: tocsin@example.test, tls: starttls,
          username: tocsin, password: s3cret}
"""


@pytest.fixture
def db(core_config: Database) -> Database:
    apply(core_config, (EXAMPLES / "alerting.yaml").read_text())
    return core_config


def apply(db: Database, text: str, *, prune: bool = False) -> ApplyReport:
    with db.write() as session:
        report = apply_config(session, load_config(text, "test.yaml"), prune=prune)
        session.commit()
    return report


def errors(db: Database, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught, db.write() as session:
        apply_config(session, load_config(text, "test.yaml"))
    return [str(issue) for issue in caught.value.errors]


def test_the_issue_example_applies_and_is_stored(db: Database) -> None:
    report = apply(db, ONCALL)
    assert report.changed
    with db.read() as session:
        methods = {m.id: m for m in session.scalars(select(ContactMethodRow))}
        assert methods["alice-hook"].target == "http://127.0.0.1:9911/alice"
        assert methods["alice-mail"].type == "email"
        # Declared by an admin: trusted without a code.
        assert all(m.verified_at is not None and m.source == "config" for m in methods.values())
        rules = session.scalars(
            select(NotificationRuleRow).order_by(
                NotificationRuleRow.user_id,
                NotificationRuleRow.urgency,
                NotificationRuleRow.position,
            )
        ).all()
        assert [(r.user_id, r.urgency, r.after_s, r.contact_method_id) for r in rules] == [
            ("alice", "high", 0, "alice-hook"),
            ("alice", "high", 300, "alice-mail"),
            ("alice", "low", 0, "alice-mail"),
            ("bob", "high", 0, "bob-hook"),
        ]
        assert session.get(ScheduleRow, "primary").time_zone == "Europe/Berlin"  # type: ignore[union-attr]
        layer = session.scalars(
            select(ScheduleLayerRow).where(ScheduleLayerRow.schedule_id == "secondary")
        ).one()
        assert layer.users == ["bob", "alice"]
        assert layer.restrict[0]["from"] == "08:00"
        steps = session.scalars(
            select(EscalationStepRow).order_by(EscalationStepRow.position)
        ).all()
        assert [(s.after_s, s.targets) for s in steps] == [
            (0, ["schedule:primary"]),
            (900, ["schedule:secondary"]),
            (1800, ["user:carol"]),
        ]
        assert session.get(ServiceRow, "api").escalation_policy_id == "api-default"  # type: ignore[union-attr]
    assert not apply(db, ONCALL).changed


def test_export_applies_back_unchanged(db: Database) -> None:
    apply(db, ONCALL + CHANNELS)
    with db.read() as session:
        exported = export_config(session)
    assert "escalation_policy: api-default" in exported
    assert "channels:\n  email:" in exported
    report = apply(db, exported, prune=True)
    assert not report.changed, report.render()


def test_channels_are_stored(db: Database) -> None:
    apply(db, CHANNELS)
    with db.read() as session:
        row = session.get(ChannelSettingsRow, "email")
        assert row is not None
        assert row.settings["from"] == "tocsin@example.test"
        assert row.settings["tls"] == "starttls"


def test_removing_a_contact_method_archives_it(db: Database) -> None:
    apply(db, ONCALL)
    apply(
        db,
        """
users:
  - id: bob
    name: Bob Example
    email: bob@example.test
    contact_methods: []
    notification_rules: {high: []}
""",
    )
    with db.read() as session:
        assert session.get(ContactMethodRow, "bob-hook").archived  # type: ignore[union-attr]


def test_rules_left_out_stay_as_they_are(db: Database) -> None:
    apply(db, ONCALL)
    apply(
        db,
        """
users:
  - id: alice
    name: Alice Example
    email: alice@example.test
    role: admin
    contact_methods:
      - {id: alice-hook, type: webhook, url: "http://127.0.0.1:9911/alice"}
      - {id: alice-mail, type: email, address: alice@example.test}
""",
    )
    with db.read() as session:
        count = len(
            session.scalars(
                select(NotificationRuleRow).where(NotificationRuleRow.user_id == "alice")
            ).all()
        )
    assert count == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            POLICY + "      - {after: 0m, notify: [user:nobody]}\n",
            "escalation_policies[0].steps[0].notify[0]: unknown user 'nobody' (line 4)",
        ),
        (
            POLICY + "      - {after: 0m, notify: [group:x]}\n",
            "escalation_policies[0].steps[0].notify[0]: invalid target 'group:x': write "
            "user:ID, schedule:ID or team:ID (line 4)",
        ),
        (
            POLICY + "      - {after: 15m, notify: [user:bob]}\n"
            "      - {after: 5m, notify: [user:bob]}\n",
            "escalation_policies[0]: steps[1].after comes before steps[0].after; `after` is "
            "counted from the start of the escalation, so steps go in time order (line 2)",
        ),
        (
            "services:\n  - {id: api, name: API, escalation_policy: nope}\n",
            "services[0].escalation_policy: unknown escalation policy 'nope' (line 2)",
        ),
        (
            "schedules:\n  - id: s\n    time_zone: Mars/Olympus\n    layers:\n"
            f"      - {{rotation: {DAILY}, users: [bob]}}\n",
            "schedules[0].time_zone: unknown time zone 'Mars/Olympus'; use an IANA name such "
            "as Europe/Berlin (line 3)",
        ),
        (
            "schedules:\n  - id: s\n    time_zone: UTC\n    layers:\n"
            f"      - {{rotation: {DAILY}, users: [zed]}}\n",
            "schedules[0].layers[0].users[0]: unknown user 'zed' (line 5)",
        ),
        (
            "users:\n  - id: bob\n    name: Bob\n    email: bob@example.test\n"
            "    contact_methods: [{id: m, type: webhook, address: bob@example.test}]\n",
            "users[0].contact_methods[0]: a webhook contact method needs `url` (line 5)",
        ),
        (
            "users:\n  - id: bob\n    name: Bob\n    email: bob@example.test\n"
            "    notification_rules: {high: [{after: 0m, via: nope}]}\n",
            "users[0]: notification_rules.high: via 'nope' is not one of this user's "
            "contact_methods (none) (line 2)",
        ),
    ],
    ids=[
        "unknown-user",
        "bad-target",
        "steps-order",
        "unknown-policy",
        "time-zone",
        "layer-user",
        "method-shape",
        "rule-via",
    ],
)
def test_mistakes_are_named_with_path_and_line(db: Database, text: str, message: str) -> None:
    assert errors(db, text) == [message]


ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:1@test
DTSTAMP:20260101T000000Z
DTSTART:20260105T080000Z
DTEND:20260105T160000Z
RRULE:FREQ=WEEKLY
SUMMARY:bob@example.test
END:VEVENT
END:VCALENDAR
"""


def test_an_imported_calendar_survives_a_re_apply(db: Database) -> None:
    from tocsin.services.calendar_import import import_calendar

    apply(db, ONCALL)
    with db.write() as session:
        import_calendar(session, "primary", ICS)
        session.commit()
    changed = ONCALL.replace('start: "2026-01-05"}\n        users: [alice, bob]',
                             'start: "2026-01-12"}\n        users: [alice, bob]')  # fmt: skip
    assert apply(db, changed).changed
    assert not apply(db, changed).changed  # the imported layer is not a difference
    with db.read() as session:
        layers = session.scalars(
            select(ScheduleLayerRow)
            .where(ScheduleLayerRow.schedule_id == "primary")
            .order_by(ScheduleLayerRow.position)
        ).all()
        assert [(layer.position, layer.calendar is not None) for layer in layers] == [
            (0, False),
            (1, True),
        ]
        assert layers[0].rotation["start"] == "2026-01-12"  # type: ignore[index]
