"""The `channels` section and the new contact method types in `tocsin apply` / `tocsin export`,
and channels built from what was applied (SQLite, PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import EXAMPLES
from tests.mocks.slack_api import SlackApiMock
from tests.mocks.twilio_api import TwilioApiMock
from tocsin.configfile import ApplyReport, ConfigError, apply_config, export_config, load_config
from tocsin.notify.base import OutgoingMessage
from tocsin.notify.registry import ChannelRegistry
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import ChannelSettingsRow, ContactMethodRow

# The `channels:` part of issue 5's example, verbatim.
ISSUE_EXAMPLE = """
channels:
  email: {host: 127.0.0.1, port: 2525, from: "Tocsin <tocsin@example.test>", tls: none}
  slack: {token: xoxb-example-token, api_url: "http://127.0.0.1:9913/api/", signing_secret: example-signing-secret}
  twilio: {account_sid: ACexample, auth_token: example-token, from: "+15005550006", api_url: "http://127.0.0.1:9914"}
"""  # noqa: E501

EVERY_CHANNEL = """
channels:
  email: {host: smtp.example.test, port: 587, from: tocsin@example.test, tls: starttls,
          username: tocsin, password: s3cret, throttle: 10/m}
  slack: {webhook_url: "https://hooks.slack.com/services/T0/B0/x", timeout: 5}
  teams: {timeout: 3}
  mattermost: {timeout: 4, username: Tocsin}
  webhook: {timeout: 2, throttle: 100/s}
  twilio: {account_sid: AC0123, auth_token: t0k3n, from: "+15005550006"}
  sms: {throttle: 1/minute}
  voice: {throttle: off}
  ntfy: {url: "https://ntfy.example.test", token: tk_abc, throttle: 5/m}
"""

PEOPLE = """
users:
  - id: bob
    name: Bob Example
    email: bob@example.test
    contact_methods:
      - {id: bob-sms, type: sms, number: "+14155550100"}
      - {id: bob-call, type: voice, number: "+14155550100", name: Mobile}
      - {id: bob-slack, type: slack, member: U024BE7LH}
      - {id: bob-push, type: ntfy, topic: oncall-bob}
      - {id: bob-push-own, type: ntfy, topic: "https://ntfy.example.test/bob"}
    notification_rules:
      high: [{after: 0m, via: bob-slack}, {after: 2m, via: bob-sms}, {after: 5m, via: bob-call}]
      low: [{after: 0m, via: bob-push}]
"""


@pytest.fixture
def db(core_config: Database) -> Database:
    apply(core_config, (EXAMPLES / "alerting.yaml").read_text())
    apply(core_config, (EXAMPLES / "oncall.yaml").read_text())
    return core_config


def apply(db: Database, text: str, *, prune: bool = False) -> ApplyReport:
    with db.write() as session:
        report = apply_config(session, load_config(text, "test.yaml"), prune=prune)
        session.commit()
    return report


def stored(db: Database) -> dict[str, dict[str, object]]:
    with db.read() as session:
        rows = session.scalars(select(ChannelSettingsRow).where(~ChannelSettingsRow.archived))
        return {row.name: dict(row.settings) for row in rows}


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(text, "test.yaml")
    return [str(issue) for issue in caught.value.errors]


def round_trips(db: Database) -> str:
    with db.read() as session:
        exported = export_config(session)
    report = apply(db, exported, prune=True)
    assert not report.changed, report.render()
    return exported


def test_the_issue_example_applies_verbatim_and_round_trips(db: Database) -> None:
    assert apply(db, ISSUE_EXAMPLE).changed
    settings = stored(db)
    assert settings["email"] == {
        "host": "127.0.0.1",
        "port": 2525,
        "from": "Tocsin <tocsin@example.test>",
    }
    assert settings["slack"] == {
        "token": "xoxb-example-token",
        "api_url": "http://127.0.0.1:9913/api/",
        "signing_secret": "example-signing-secret",
    }
    assert settings["twilio"] == {
        "account_sid": "ACexample",
        "auth_token": "example-token",
        "from": "+15005550006",
        "api_url": "http://127.0.0.1:9914",
    }
    assert not apply(db, ISSUE_EXAMPLE).changed
    exported = round_trips(db)
    assert "twilio:" in exported


def test_every_channel_applies_and_round_trips(db: Database) -> None:
    apply(db, EVERY_CHANNEL)
    settings = stored(db)
    assert set(settings) == {
        "email", "slack", "teams", "mattermost", "webhook", "twilio", "sms", "voice", "ntfy",
    }  # fmt: skip
    assert settings["sms"] == {"throttle": "1/minute"}
    assert settings["voice"] == {"throttle": "off"}
    assert settings["email"]["throttle"] == "10/m"
    assert settings["mattermost"] == {"timeout": 4.0, "username": "Tocsin"}
    round_trips(db)
    # Channels left out of a later file stay; --prune does not touch other sections' entries.
    apply(db, ISSUE_EXAMPLE)
    assert stored(db)["sms"] == {"throttle": "1/minute"}


def test_bad_channel_settings_name_the_path() -> None:
    found = errors("""
channels:
  slack: {tokn: xoxb-1}
  twilio: {account_sid: SKnot-an-account, auth_token: t, from: "0800 123"}
  sms: {throttle: once a minute}
  teams: {timeout: 0}
  ntfy: {url: ntfy.sh}
  pager: {}
""")
    assert found == [
        "channels.slack.tokn: unknown key 'tokn' (did you mean 'token'?) (line 3)",
        "channels.twilio.account_sid: 'SKnot-an-account' is not a Twilio account SID (AC, then "
        "letters and digits) (line 4)",
        "channels.twilio.from: '0800 123' is not a phone number in E.164 form, such as "
        "+14155550100 (line 4)",
        "channels.sms.throttle: invalid throttle 'once a minute': use N/s, N/m or N/h (or "
        "N/minute …), such as 1/minute, or off (line 5)",
        "channels.teams.timeout: input should be greater than 0 (line 6)",
        "channels.ntfy.url: 'ntfy.sh' is not an http(s) URL (line 7)",
        "channels.pager: unknown key 'pager'; valid: email, slack, teams, mattermost, webhook, "
        "twilio, sms, voice, ntfy (line 8)",
    ]
    (slack,) = errors("channels:\n  slack: {signing_secret: s}\n")
    assert slack.startswith("channels.slack: set `token` (a bot token, for the Web API) or")
    (sender,) = errors("channels:\n  email: {host: h, from: Tocsin}\n")
    assert "channels.email.from: 'Tocsin' is not a sender address" in sender


def test_new_contact_method_types_apply_and_round_trip(db: Database) -> None:
    apply(db, PEOPLE)
    with db.read() as session:
        methods = {
            m.id: (m.type, m.target, m.verified_at is not None)
            for m in session.scalars(select(ContactMethodRow).where(~ContactMethodRow.archived))
            if m.user_id == "bob"
        }
    assert methods == {
        "bob-sms": ("sms", "+14155550100", True),
        "bob-call": ("voice", "+14155550100", True),
        "bob-slack": ("slack", "U024BE7LH", True),
        "bob-push": ("ntfy", "oncall-bob", True),
        "bob-push-own": ("ntfy", "https://ntfy.example.test/bob", True),
    }
    exported = round_trips(db)
    for field in ("number: '+14155550100'", "member: U024BE7LH", "topic: oncall-bob"):
        assert field in exported, exported


def test_bad_contact_methods_name_the_path() -> None:
    found = errors("""
users:
  - id: bob
    name: Bob
    email: bob@example.test
    contact_methods:
      - {id: a, type: sms, number: "4155550100"}
      - {id: b, type: voice, url: "https://x.example.test"}
      - {id: c, type: slack, member: "@bob"}
      - {id: d, type: ntfy, topic: "two words"}
      - {id: e, type: slack, member: U024BE7LH, number: "+14155550100"}
      - {id: f, type: pager, number: "+14155550100"}
""")
    assert found[:5] == [
        "users[0].contact_methods[0].number: '4155550100' is not a phone number in E.164 form, "
        "such as +14155550100 (line 7)",
        "users[0].contact_methods[1]: a voice contact method needs `number` (line 8)",
        "users[0].contact_methods[2].member: '@bob' is not a Slack member id (such as "
        "U024BE7LH) (line 9)",
        "users[0].contact_methods[3].topic: 'two words' is not an ntfy topic (letters, digits, "
        "- and _) or topic URL (line 10)",
        "users[0].contact_methods[4]: a slack contact method takes `member`, not `number` "
        "(line 11)",
    ]
    assert found[5].startswith("users[0].contact_methods[5].type:")


def test_channels_are_built_from_the_applied_config(db: Database) -> None:
    with SlackApiMock() as slack, TwilioApiMock() as twilio:
        slack.add_channel("ops")
        apply(
            db,
            f"""
channels:
  slack: {{token: {slack.token}, api_url: "{slack.url}"}}
  twilio: {{account_sid: {twilio.account_sid}, auth_token: {twilio.auth_token},
           from: "+15005550006", api_url: "{twilio.url}"}}
  sms: {{throttle: 1/m}}
""",
        )
        channels = ChannelRegistry()
        try:
            built = channels(db)
            for name, destination in [("slack", "#ops"), ("sms", "+14155550100"),
                                      ("voice", "+14155550100")]:  # fmt: skip
                message = OutgoingMessage(
                    key=f"k-{name}", channel=name, destination=destination, title="T", body="B"
                )
                assert built[name].send(message)
        finally:
            channels.close()
        assert len(slack.messages) == 1
        assert len(twilio.messages) == len(twilio.calls_made) == 1
