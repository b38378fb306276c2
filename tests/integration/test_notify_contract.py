"""The contract every channel keeps, checked for each built-in against its real local peer.

A channel delivers, is safe to call from many threads at once, says whether a failure is worth
retrying (and when, if the peer said), reads an unreachable peer as "try again", and an
unconfigured channel as a permanent failure that names what to set up. The outbox sender
counts on exactly this; a plug-in channel can run the same suite by adding a peer here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from tests.mocks.slack_api import SlackApiMock
from tests.mocks.twilio_api import TwilioApiMock
from tests.receivers import SmtpReceiver, WebhookReceiver, free_port
from tocsin.notify import registry
from tocsin.notify.base import Channel, DeliveryError, OutgoingMessage
from tocsin.notify.mattermost import MattermostChannel
from tocsin.notify.ntfy import NtfyChannel
from tocsin.notify.registry import (
    BUILTIN,
    ChannelRegistry,
    email_channel,
    factories,
    mattermost_channel,
    ntfy_channel,
    slack_channel,
    sms_channel,
    teams_channel,
    voice_channel,
    webhook_channel,
)
from tocsin.notify.slack import SlackChannel
from tocsin.notify.twilio import SmsChannel, VoiceChannel
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import ChannelSettingsRow

Script = Callable[[], None]
Case = tuple[Channel, OutgoingMessage]


@dataclass
class Peer:
    """A channel wired to its local peer, and how to make that peer misbehave."""

    channel: Channel
    message: Callable[[int], OutgoingMessage]  # the i-th distinct message
    delivered: Callable[[int], list[str]]  # wait for n deliveries; the title of each
    rate_limited: Script  # the next delivery is refused "later" (429 + Retry-After 7)
    retry_after: float | None  # what rate_limited's error says (None: the peer cannot say)
    server_error: Script  # the next delivery fails on the peer's side (5xx, SMTP 421)
    permanent: Callable[[], Case]  # a delivery the peer refuses for good (4xx, bad login)
    permanent_says: str
    unreachable: Callable[[], Case]
    unconfigured: Case
    unconfigured_says: str


def outgoing(channel: str, destination: str, i: int, **kw: Any) -> OutgoingMessage:
    return OutgoingMessage(
        key=f"contract:{channel}:{i}",
        channel=channel,
        destination=destination,
        title=f"Message {i}",
        body=f"Body of message {i}",
        **kw,
    )


def dead_url(path: str = "/") -> str:
    return f"http://127.0.0.1:{free_port()}{path}"


def retry_later(hooks: WebhookReceiver) -> Script:
    return lambda: hooks.respond(429, headers={"Retry-After": "7"}, body="slow down")


@contextmanager
def email_peer() -> Iterator[Peer]:
    with SmtpReceiver() as smtp:
        channel = email_channel(smtp.settings())

        def message(i: int) -> OutgoingMessage:
            return outgoing("email", "ann@example.test", i)

        def permanent() -> Case:
            smtp.reject("550 5.1.1 mailbox unavailable")
            return channel, message(0)

        def unreachable() -> Case:
            return email_channel(smtp.settings(port=free_port())), message(0)

        yield Peer(
            channel=channel,
            message=message,
            delivered=lambda n: [str(m.message["Subject"]) for m in smtp.wait_for(n)],
            rate_limited=lambda: smtp.reject("451 4.7.1 greylisted, try again later"),
            retry_after=None,
            server_error=lambda: smtp.reject("421 4.3.2 service shutting down"),
            permanent=permanent,
            permanent_says=r"550 5\.1\.1 mailbox unavailable",
            unreachable=unreachable,
            unconfigured=(email_channel(None), message(0)),
            unconfigured_says="no SMTP server is set up",
        )


@contextmanager
def webhook_peer() -> Iterator[Peer]:
    with WebhookReceiver() as hooks:
        channel = webhook_channel({"timeout": 5})

        def message(i: int, url: str | None = None) -> OutgoingMessage:
            return outgoing("webhook", hooks.url("/ops") if url is None else url, i)

        def permanent() -> Case:
            hooks.respond(404, body="no such hook")
            return channel, message(0)

        yield Peer(
            channel=channel,
            message=message,
            delivered=lambda n: [r.json["title"] for r in hooks.wait_for(n)],
            rate_limited=retry_later(hooks),
            retry_after=7.0,
            server_error=lambda: hooks.respond(502),
            permanent=permanent,
            permanent_says="HTTP 404: no such hook",
            unreachable=lambda: (channel, message(0, dead_url("/ops"))),
            unconfigured=(webhook_channel(None), message(0, "")),
            unconfigured_says="bad webhook URL",
        )


@contextmanager
def chat_webhook_peer(name: str) -> Iterator[Peer]:
    """Teams or Mattermost: an incoming-webhook URL as destination."""
    with WebhookReceiver() as hooks:
        factory = teams_channel if name == "teams" else mattermost_channel
        channel = factory({"timeout": 5})

        def message(i: int, url: str | None = None) -> OutgoingMessage:
            return outgoing(name, hooks.url(f"/{name}") if url is None else url, i)

        def title(body: Any) -> str:
            if name == "teams":
                return str(body["attachments"][0]["content"]["body"][0]["text"])
            return str(body["text"]).splitlines()[0].removeprefix("#### ")

        def permanent() -> Case:
            hooks.respond(400, body="Bad payload received by generic incoming webhook.")
            return channel, message(0)

        yield Peer(
            channel=channel,
            message=message,
            delivered=lambda n: [title(r.json) for r in hooks.wait_for(n)],
            rate_limited=retry_later(hooks),
            retry_after=7.0,
            server_error=lambda: hooks.respond(500, body="oops"),
            permanent=permanent,
            permanent_says="HTTP 400: Bad payload",
            unreachable=lambda: (channel, message(0, dead_url(f"/{name}"))),
            unconfigured=(factory(None), message(0, "")),
            unconfigured_says="not set up for this message: no incoming-webhook URL",
        )


@contextmanager
def ntfy_peer() -> Iterator[Peer]:
    with WebhookReceiver() as server:
        channel = ntfy_channel({"url": server.url(""), "timeout": 5})

        def message(i: int) -> OutgoingMessage:
            return outgoing("ntfy", "tocsin-alerts", i)

        def permanent() -> Case:
            server.respond(403, body='{"code":40301,"http":403,"error":"forbidden"}')
            return channel, message(0)

        yield Peer(
            channel=channel,
            message=message,
            delivered=lambda n: [r.headers["title"] for r in server.wait_for(n)],
            rate_limited=retry_later(server),
            retry_after=7.0,
            server_error=lambda: server.respond(503),
            permanent=permanent,
            permanent_says="HTTP 403",
            unreachable=lambda: (ntfy_channel({"url": dead_url("")}), message(0)),
            unconfigured=(ntfy_channel(None), outgoing("ntfy", "", 0)),
            unconfigured_says="not set up for this message: no topic",
        )


@contextmanager
def slack_peer() -> Iterator[Peer]:
    with SlackApiMock() as slack:
        slack.add_channel("ops")
        channel = slack_channel(slack.settings())

        def message(i: int) -> OutgoingMessage:
            return outgoing("slack", "#ops", i)

        def delivered(n: int) -> list[str]:
            slack.wait_for(n)
            return [m.blocks[0]["text"]["text"] for m in slack.messages]

        def rate_limited() -> None:
            body = {"ok": False, "error": "ratelimited"}
            slack.fail("chat.postMessage", 429, body, headers={"Retry-After": "7"})

        yield Peer(
            channel=channel,
            message=message,
            delivered=delivered,
            rate_limited=rate_limited,
            retry_after=7.0,
            server_error=lambda: slack.fail("chat.postMessage", 503, "<html>unavailable</html>"),
            permanent=lambda: (slack_channel(slack.settings(token="xoxb-revoked")), message(0)),
            permanent_says=r"Slack refused the bot token \(invalid_auth\)",
            unreachable=lambda: (
                slack_channel(slack.settings(api_url=dead_url("/api/"))),
                message(0),
            ),
            unconfigured=(slack_channel(None), message(0)),
            unconfigured_says="no bot token is set up",
        )


@contextmanager
def twilio_peer(name: str) -> Iterator[Peer]:
    with TwilioApiMock() as twilio:
        factory = sms_channel if name == "sms" else voice_channel
        resource = "Messages" if name == "sms" else "Calls"
        channel = factory(twilio.settings())

        def message(i: int) -> OutgoingMessage:
            return outgoing(name, "+14155550100", i)

        def delivered(n: int) -> list[str]:
            twilio.wait_for(n)
            if name == "sms":
                return [m["body"].splitlines()[0] for m in twilio.messages]
            return [c["twiml"].split(">", 2)[2].split(".")[0] for c in twilio.calls_made]

        def rate_limited() -> None:
            error = twilio.error(20429, "Too Many Requests", 429)
            twilio.fail(resource, 429, error, headers={"Retry-After": "7"})

        yield Peer(
            channel=channel,
            message=message,
            delivered=delivered,
            rate_limited=rate_limited,
            retry_after=7.0,
            server_error=lambda: twilio.fail(resource, 500, twilio.error(20500, "Internal", 500)),
            permanent=lambda: (factory(twilio.settings(auth_token="wrong")), message(0)),
            permanent_says=r"Authenticate: check channels\.twilio.* \(error 20003\)",
            unreachable=lambda: (factory(twilio.settings(api_url=dead_url())), message(0)),
            unconfigured=(factory(None), message(0)),
            unconfigured_says="no Twilio account is set up",
        )


PEERS: dict[str, Callable[[], Any]] = {
    "email": email_peer,
    "slack": slack_peer,
    "teams": lambda: chat_webhook_peer("teams"),
    "mattermost": lambda: chat_webhook_peer("mattermost"),
    "webhook": webhook_peer,
    "sms": lambda: twilio_peer("sms"),
    "voice": lambda: twilio_peer("voice"),
    "ntfy": ntfy_peer,
}


@pytest.fixture(params=sorted(PEERS))
def peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    with ExitStack() as stack:
        found = stack.enter_context(PEERS[request.param]())
        yield found
        for channel in (found.channel, found.unconfigured[0]):
            close = getattr(channel, "close", None)
            if callable(close):
                close()


def failure(case: Case) -> DeliveryError:
    channel, message = case
    with pytest.raises(DeliveryError) as caught:
        channel.send(message)
    return caught.value


def test_every_builtin_channel_has_a_peer_here() -> None:
    assert set(PEERS) == set(BUILTIN) == {
        "email", "slack", "teams", "mattermost", "webhook", "sms", "voice", "ntfy",
    }  # fmt: skip


def test_delivers(peer: Peer) -> None:
    peer.channel.send(peer.message(1))
    assert peer.delivered(1) == ["Message 1"]


def test_is_thread_safe_under_concurrent_sends(peer: Peer) -> None:
    count = 24
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: peer.channel.send(peer.message(i)), range(count)))
    assert sorted(peer.delivered(count)) == sorted(f"Message {i}" for i in range(count))


def test_a_rate_limit_is_retried_when_the_peer_says(peer: Peer) -> None:
    peer.rate_limited()
    error = failure((peer.channel, peer.message(1)))
    assert error.retryable, error
    assert error.retry_after == peer.retry_after
    peer.channel.send(peer.message(2))  # the peer recovered; the channel still works
    assert peer.delivered(1)[-1] == "Message 2"


def test_a_server_error_is_retried(peer: Peer) -> None:
    peer.server_error()
    error = failure((peer.channel, peer.message(1)))
    assert error.retryable, error
    assert str(error)


def test_a_refusal_is_permanent_and_says_why(peer: Peer) -> None:
    error = failure(peer.permanent())
    assert not error.retryable, error
    assert error.retry_after is None
    assert re.search(peer.permanent_says, str(error)), str(error)


def test_an_unreachable_peer_is_retried(peer: Peer) -> None:
    error = failure(peer.unreachable())
    assert error.retryable, error
    assert "unreachable" in str(error) or "Connection refused" in str(error), str(error)


def test_an_unconfigured_channel_fails_for_good_saying_what_to_set_up(peer: Peer) -> None:
    error = failure(peer.unconfigured)
    assert not error.retryable
    assert peer.unconfigured_says in str(error), str(error)


# --- the registry: built from stored settings, found through entry points ---


def store(db: Database, **settings: dict[str, Any]) -> None:
    with db.write() as session:
        for name, raw in settings.items():
            session.merge(ChannelSettingsRow(name=name, settings=raw, archived=False))
        session.commit()


def test_channels_are_built_from_stored_settings(database: Database) -> None:
    channels = ChannelRegistry()
    try:
        built = channels(database)
        assert set(built) >= set(BUILTIN)
        for name, channel in built.items():
            assert channel.name == name
        with pytest.raises(DeliveryError, match="no Twilio account is set up"):
            built["sms"].send(outgoing("sms", "+14155550100", 0))
        twilio = {"account_sid": "ACabc", "auth_token": "t", "from": "+15005550006",
                  "api_url": "http://127.0.0.1:9914"}  # fmt: skip
        store(
            database,
            twilio=twilio,
            sms={"throttle": "1/m"},
            slack={"token": "xoxb-1", "api_url": "http://127.0.0.1:9913/api/"},
            ntfy={"url": "https://ntfy.example.test", "token": "tk_x"},
            mattermost={"username": "Tocsin", "timeout": 3},
        )
        rebuilt = channels(database)
        sms, voice = rebuilt["sms"], rebuilt["voice"]
        assert isinstance(sms, SmsChannel)
        assert isinstance(voice, VoiceChannel)
        # Both share channels.twilio; sms's own entry adds only its throttle.
        assert sms.gateway.settings.api_url == voice.gateway.settings.api_url
        assert sms.gateway.settings.from_number == "+15005550006"
        assert isinstance(rebuilt["slack"], SlackChannel)
        assert rebuilt["slack"].settings.api_url == "http://127.0.0.1:9913/api/"
        assert isinstance(rebuilt["ntfy"], NtfyChannel)
        assert rebuilt["ntfy"].settings.token == "tk_x"
        assert isinstance(rebuilt["mattermost"], MattermostChannel)
        assert rebuilt["mattermost"].username == "Tocsin"
        assert rebuilt["email"] is built["email"]  # unchanged settings: the same channel
    finally:
        channels.close()


def test_bad_stored_settings_make_a_channel_that_says_so() -> None:
    cases = {
        "slack": (slack_channel, {"token": "x", "api_url": "ftp://slack"}, "api_url"),
        "sms": (sms_channel, {"account_sid": "AC1", "auth_token": "t", "from": "555"}, "from"),
        "ntfy": (ntfy_channel, {"timeout": "soon"}, "timeout"),
        "teams": (teams_channel, {"timeout": -1}, "timeout"),
        "mattermost": (mattermost_channel, {"timeout": "x"}, "timeout"),
    }
    for name, (factory, raw, key) in cases.items():
        with pytest.raises(DeliveryError, match=f"bad settings in channels.*{key}") as caught:
            factory(raw).send(outgoing(name, "x", 0))
        assert not caught.value.retryable


def test_plugins_of_the_old_group_are_still_found(monkeypatch: pytest.MonkeyPatch) -> None:
    points = {
        "tocsin.channels": [
            EntryPoint("pager", "tests.integration.test_notify_contract:plugin", "tocsin.channels"),
            EntryPoint("email", "tests.integration.test_notify_contract:plugin", "tocsin.channels"),
        ],
        "tocsin.notifiers": [
            EntryPoint("email", "tocsin.notify.registry:email_channel", "tocsin.notifiers"),
            EntryPoint("broken", "tests.integration.nowhere:nothing", "tocsin.notifiers"),
        ],
    }
    monkeypatch.setattr(registry, "entry_points", lambda group: points.get(group, []))
    found = factories()
    assert found["pager"] is plugin
    assert found["email"] is email_channel  # the new group wins
    assert "broken" not in found  # logged, not fatal
    assert found["ntfy"] is ntfy_channel


def plugin(raw: Any) -> Channel:
    return registry.Unconfigured("pager", "a test plug-in")
