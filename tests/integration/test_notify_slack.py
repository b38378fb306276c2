"""The Slack channel through the real slack_sdk client against a local Slack Web API, and the
incoming-webhook mode against a local HTTP receiver."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.mocks.slack_api import SlackApiMock
from tests.receivers import WebhookReceiver
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.notify.registry import slack_channel
from tocsin.notify.slack import SlackChannel, SlackSettings
from tocsin.notify.slack_format import channel_name, parse_button, read_options
from tocsin.services.page_messages import LinkSettings, page_message
from tocsin.storage.oncall_tables import EscalationRow, PageRow

INCIDENT_CHANNEL = "#incident-2026-11-22-001"
OPENING = {
    "ensure_channel": True,
    "topic": "P1 | Checkout is down | IC: Alice",
    "invite": {"user_ids": ["U0BOB"], "emails": ["alice@example.test"]},
    "pin": True,
    "actions": [
        {"action": "acknowledge", "subject_type": "incident", "subject_id": 42},
        {"action": "resolve", "subject_type": "incident", "subject_id": 42},
    ],
}


@pytest.fixture
def slack() -> Iterator[SlackApiMock]:
    with SlackApiMock() as mock:
        mock.add_user("U0ALICE", "alice@example.test", "alice")
        mock.add_user("U0BOB", "bob@example.test", "bob")
        yield mock


@pytest.fixture
def channel(slack: SlackApiMock) -> Iterator[SlackChannel]:
    built = slack_channel(slack.settings())
    assert isinstance(built, SlackChannel)
    yield built
    built.close()


def message(destination: str = INCIDENT_CHANNEL, **kw: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "key": "comm:42:1:incident-room:slack",
        "channel": "slack",
        "destination": destination,
        "title": "INCIDENT ALERT: Checkout is down",
        "body": "Severity: P1\nStatus: investigating\nCommander: Alice",
    }
    values.update(kw)
    return OutgoingMessage(**values)


def methods(slack: SlackApiMock) -> list[str]:
    return [call.method for call in slack.calls]


def raised(channel: SlackChannel, outgoing: OutgoingMessage) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        channel.send(outgoing)
    return caught.value


# --- the incident channel ---


def test_opening_an_incident_channel(slack: SlackApiMock, channel: SlackChannel) -> None:
    provider_id = channel.send(message(payload={"slack": OPENING}))
    created = slack.channel_named("incident-2026-11-22-001")
    assert created is not None
    assert methods(slack) == [
        "conversations.create",
        "users.lookupByEmail",
        "conversations.invite",
        "conversations.setTopic",
        "chat.postMessage",
        "pins.add",
    ]
    assert created.members == {"U0ALICE", "U0BOB"}
    assert created.topic == "P1 | Checkout is down | IC: Alice"
    (posted,) = slack.messages_in(created.id)
    assert provider_id == f"{created.id}/{posted.ts}"
    assert posted.pinned
    assert posted.text == (
        "*INCIDENT ALERT: Checkout is down*\nSeverity: P1\nStatus: investigating\nCommander: Alice"
    )
    header, section, actions = posted.blocks
    assert header["text"]["text"] == "INCIDENT ALERT: Checkout is down"
    assert section["text"]["type"] == "mrkdwn"
    buttons = actions["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("tocsin:acknowledge", "incident:42"),
        ("tocsin:resolve", "incident:42"),
    ]
    assert "confirm" in buttons[1]  # resolving asks first
    invite = slack.calls_to("conversations.invite")[0]
    assert invite.headers["authorization"] == "Bearer xoxb-test-token"
    assert sorted(invite.args["users"].split(",")) == ["U0ALICE", "U0BOB"]


def test_updates_go_to_the_same_channel_without_creating_it_again(
    slack: SlackApiMock, channel: SlackChannel
) -> None:
    channel.send(message(payload={"slack": OPENING}))
    slack.calls_recorder.clear()
    channel.send(message(key="comm:42:2", title="INCIDENT UPDATE", body="Mitigated."))
    created = slack.channel_named("incident-2026-11-22-001")
    assert created is not None
    assert methods(slack) == ["chat.postMessage"]
    assert slack.calls[0].args["channel"] == created.id  # the id, cached by name
    assert [m.text for m in slack.messages_in(created.id)][-1] == "*INCIDENT UPDATE*\nMitigated."


def test_a_name_already_taken_is_reused_and_joined(slack: SlackApiMock) -> None:
    slack.page_size = 2  # the channel is on the third page of conversations.list
    for i in range(5):
        slack.add_channel(f"other-{i}")
    existing = slack.add_channel("incident-2026-11-22-001", is_member=False)
    channel = slack_channel(slack.settings())
    channel.send(message(payload={"slack": {"ensure_channel": True, "topic": "P1"}}))
    assert methods(slack)[:1] == ["conversations.create"]
    assert len(slack.calls_to("conversations.list")) == 3
    assert slack.calls_to("conversations.join")[0].args["channel"] == existing
    assert [m.channel for m in slack.messages] == [existing]
    assert slack.channels[existing].topic == "P1"


def test_an_archived_channel_with_the_name_fails_for_good(slack: SlackApiMock) -> None:
    slack.add_channel("incident-2026-11-22-001", is_archived=True)
    error = raised(slack_channel(slack.settings()), message(payload={"slack": OPENING}))
    assert not error.retryable
    assert "exists but is archived or private to the app" in str(error)
    assert slack.messages == []


def test_racing_messages_create_the_channel_once(
    slack: SlackApiMock, channel: SlackChannel
) -> None:
    options = {"ensure_channel": True, "invite": {"user_ids": ["U0BOB"]}}
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(
            pool.map(
                lambda i: channel.send(message(key=f"k{i}", payload={"slack": options})),
                range(16),
            )
        )
    assert len(slack.calls_to("conversations.create")) == 1
    assert len({provider.split("/")[0] for provider in ids if provider}) == 1
    assert len(slack.messages) == 16


def test_another_tocsin_instance_created_it_first(slack: SlackApiMock) -> None:
    first, second = slack_channel(slack.settings()), slack_channel(slack.settings())
    first.send(message(payload={"slack": {"ensure_channel": True}}))
    second.send(message(payload={"slack": {"ensure_channel": True}}))
    assert len(slack.channels) == 1
    assert [call.answer.get("error") for call in slack.calls_to("conversations.create")] == [
        None,
        "name_taken",
    ]
    assert len({m.channel for m in slack.messages}) == 1


def test_inviting_people_already_there_or_unknown_is_no_failure(
    slack: SlackApiMock, channel: SlackChannel
) -> None:
    channel.send(message(payload={"slack": OPENING}))
    # Everyone is in already; the stranger's email is unknown to Slack.
    again = {**OPENING, "invite": {"user_ids": ["U0BOB"], "emails": ["stranger@example.test"]}}
    channel.send(message(key="again", payload={"slack": again}))
    invites = [call.answer.get("error") for call in slack.calls_to("conversations.invite")]
    assert invites == [None, "already_in_channel"]
    assert len(slack.messages) == 2


# --- plain channels and direct messages ---


def test_posting_to_a_channel_by_name_and_to_a_member(
    slack: SlackApiMock, channel: SlackChannel
) -> None:
    ops = slack.add_channel("ops")
    assert channel.send(message("#ops")) == f"{ops}/{slack.messages[0].ts}"
    assert slack.calls[0].args["channel"] == "#ops"
    provider_id = channel.send(
        message("U0ALICE", payload={"slack": {"actions": OPENING["actions"]}})
    )
    assert provider_id is not None
    assert provider_id.startswith("D0ALICE/")
    assert methods(slack) == ["chat.postMessage", "chat.postMessage"]


def test_mrkdwn_control_characters_are_escaped(slack: SlackApiMock, channel: SlackChannel) -> None:
    slack.add_channel("ops")
    channel.send(message("#ops", title="<!channel> disk > 90% & rising", body="<https://x|y>"))
    posted = slack.messages[0]
    assert posted.text == "*&lt;!channel&gt; disk &gt; 90% &amp; rising*\n&lt;https://x|y&gt;"
    assert posted.blocks[0]["text"]["text"] == "<!channel> disk > 90% & rising"  # plain text


def test_a_failed_pin_does_not_post_the_update_twice(
    slack: SlackApiMock, channel: SlackChannel
) -> None:
    slack.add_channel("ops")
    slack.fail("pins.add", 429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "3"})
    provider_id = channel.send(message("#ops", payload={"slack": {"pin": True}}))
    assert provider_id is not None
    assert len(slack.messages) == 1
    assert not slack.messages[0].pinned


# --- errors ---


@pytest.mark.parametrize(
    ("method", "answer", "says"),
    [
        ("chat.postMessage", {"error": "channel_not_found"}, "Slack channel #ops not found"),
        ("chat.postMessage", {"error": "not_in_channel"}, "invite it there"),
        ("chat.postMessage", {"error": "is_archived"}, "#ops is archived"),
        ("chat.postMessage", {"error": "missing_scope", "needed": "chat:write"},
         "the Slack app lacks chat:write for chat.postMessage"),
        ("chat.postMessage", {"error": "token_revoked"}, "check channels.slack.token"),
        ("chat.postMessage", {"error": "msg_too_long"}, "too long for Slack"),
        ("chat.postMessage", {"error": "something_new"}, "Slack refused chat.postMessage for "
         "#ops: something_new"),
    ],
)  # fmt: skip
def test_refusals_are_permanent_and_say_what_to_fix(
    slack: SlackApiMock, channel: SlackChannel, method: str, answer: dict[str, Any], says: str
) -> None:
    slack.add_channel("ops")
    slack.fail(method, 200, {"ok": False, **answer})
    error = raised(channel, message("#ops"))
    assert not error.retryable
    assert says in str(error)


@pytest.mark.parametrize(
    ("status", "body", "retry_after"),
    [
        (429, {"ok": False, "error": "ratelimited"}, 30.0),
        (200, {"ok": False, "error": "internal_error"}, None),
        (200, {"ok": False, "error": "service_unavailable"}, None),
        (500, "<html>Internal Server Error</html>", None),
        (503, {"ok": False, "error": "fatal_error"}, None),
    ],
)
def test_transient_failures_are_retried(
    slack: SlackApiMock, channel: SlackChannel, status: int, body: Any, retry_after: float | None
) -> None:
    slack.add_channel("ops")
    headers = {"Retry-After": "30"} if status == 429 else {}
    slack.fail("chat.postMessage", status, body, headers=headers)
    error = raised(channel, message("#ops"))
    assert error.retryable
    assert error.retry_after == retry_after


def test_a_rate_limit_on_creating_the_channel_is_retried_and_then_succeeds(
    slack: SlackApiMock, channel: SlackChannel
) -> None:
    body = {"ok": False, "error": "ratelimited"}
    slack.fail("conversations.create", 429, body, headers={"Retry-After": "2"})
    error = raised(channel, message(payload={"slack": OPENING}))
    assert (error.retryable, error.retry_after) == (True, 2.0)
    assert "Slack rate-limited conversations.create" in str(error)
    channel.send(message(payload={"slack": OPENING}))  # the outbox's retry
    assert len(slack.channels) == 1
    assert len(slack.messages) == 1


def test_a_slow_slack_times_out_and_is_retried(slack: SlackApiMock) -> None:
    slack.add_channel("ops")
    slack.fail("chat.postMessage", 200, {"ok": True}, delay=2.5)
    slow = slack_channel(slack.settings(timeout=1))
    error = raised(slow, message("#ops"))
    assert error.retryable
    assert "unreachable" in str(error)


def test_a_malformed_payload_fails_for_good(channel: SlackChannel) -> None:
    for bad, says in [
        ("yes", "must be an object"),
        ({"invite": ["U1"]}, "invite must be"),
        ({"actions": [{"action": "escalate", "subject_type": "incident", "subject_id": 1}]},
         "action must be one of"),
        ({"actions": [{"action": "resolve", "subject_type": "incident", "subject_id": "1"}]},
         "subject_id must be a positive integer"),
    ]:  # fmt: skip
        error = raised(channel, message(payload={"slack": bad}))
        assert not error.retryable
        assert says in str(error)
    assert not raised(channel, message(destination="#")).retryable


# --- incoming webhooks ---


def test_webhook_mode_posts_text(slack: SlackApiMock) -> None:
    with WebhookReceiver() as hooks:
        channel = slack_channel({"webhook_url": hooks.url("/services/T0/B0/xyz")})
        assert channel.send(message("#ignored")) is None
        # A destination that is a webhook URL works whatever the settings.
        assert slack_channel(slack.settings()).send(message(hooks.url("/other"))) is None
        first, second = hooks.wait_for(2)
    assert first.path == "/services/T0/B0/xyz"
    assert first.json == {"text": "*INCIDENT ALERT: Checkout is down*\n" + message().body}
    assert second.path == "/other"
    assert slack.calls == []


def test_webhook_mode_errors(slack: SlackApiMock) -> None:
    with WebhookReceiver() as hooks:
        channel = slack_channel({"webhook_url": hooks.url()})
        hooks.respond(404, body="no_service")
        gone = raised(channel, message())
        hooks.respond(429, headers={"Retry-After": "9"})
        limited = raised(channel, message())
    assert not gone.retryable
    assert "Slack webhook answered HTTP 404: no_service" in str(gone)
    assert (limited.retryable, limited.retry_after) == (True, 9.0)


def test_without_token_or_webhook_it_says_what_is_missing() -> None:
    error = raised(slack_channel({}), message("#ops"))
    assert not error.retryable
    assert "no bot token is set up (channels.slack.token)" in str(error)


# --- settings and formats ---


def test_settings() -> None:
    settings = SlackSettings.from_config({"token": "xoxb-1", "api_url": "http://127.0.0.1:9/api"})
    assert settings.api_url == "http://127.0.0.1:9/api/"
    assert "xoxb-1" not in repr(settings)
    assert SlackSettings.from_config({}).api_url == "https://slack.com/api/"
    with pytest.raises(ValueError, match="api_url must be an http"):
        SlackSettings.from_config({"api_url": "slack.com"})


def test_channel_names_and_buttons() -> None:
    assert channel_name("#Incident 2026-11-22 001") == "incident-2026-11-22-001"
    assert channel_name("#incident.db/primary") == "incident-db-primary"
    assert len(channel_name("#" + "x" * 200)) == 80
    assert parse_button("tocsin:resolve", "alert_group:7") is not None
    for action_id, value in [
        ("other:resolve", "incident:1"),
        ("tocsin:escalate", "incident:1"),
        ("tocsin:resolve", "incident:x"),
        ("tocsin:resolve", "postmortem:1"),
        ("tocsin:resolve", "incident:٣"),
    ]:
        assert parse_button(action_id, value) is None
    assert read_options({}).needs_channel_id is False


def test_page_messages_to_slack_carry_buttons() -> None:
    links = LinkSettings(base_url="https://tocsin.example.test", secret="s")
    escalation = EscalationRow(
        id=3, subject_type="alert_group", subject_id=7, policy_id="p", title="Disk full",
        severity=None, urgency="high", service_id="api",
    )  # fmt: skip
    page = PageRow(id=1, escalation_id=3, user_id="alice", step=0, cycle=0, run=0)
    now = datetime(2026, 3, 14, tzinfo=UTC)
    _, _, slack_payload = page_message(links, escalation, page, key="k", channel="slack", now=now)
    options = read_options(slack_payload)
    assert [(a.action_id, a.value) for a in options.actions] == [
        ("tocsin:acknowledge", "alert_group:7"),
        ("tocsin:resolve", "alert_group:7"),
    ]
    _, _, mail_payload = page_message(links, escalation, page, key="k", channel="email", now=now)
    assert "slack" not in mail_payload
