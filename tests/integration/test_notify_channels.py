"""The email and webhook channels against real receivers: an SMTP server and an HTTP server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.receivers import SmtpReceiver, WebhookReceiver, free_port
from tocsin import __version__
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.notify.email import EmailChannel, message_id, thread_id
from tocsin.notify.registry import (
    ENTRY_POINT_GROUP,
    Unconfigured,
    email_channel,
    factories,
    smtp_settings,
    webhook_channel,
)
from tocsin.notify.webhook import WebhookChannel, parse_retry_after

KEY = "page:42:rule:0:attempt"


def mail(**kw: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "key": KEY,
        "channel": "email",
        "destination": "ann@example.com",
        "title": "[P1] Checkout is down",
        "body": "Checkout returns 500 for every request.\nAcknowledge: https://tocsin/a/1",
    }
    values.update(kw)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def hook(url: str, **kw: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "key": KEY,
        "channel": "webhook",
        "destination": url,
        "title": "Checkout is down",
        "body": "",
        "payload": {"event": "page", "incident": {"id": 42, "title": "Checkout is down"}},
        "kind": "page",
    }
    values.update(kw)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def channel_for(receiver: SmtpReceiver, **overrides: object) -> EmailChannel:
    return EmailChannel(smtp_settings(receiver.settings(**overrides)))


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def webhook() -> Iterator[WebhookChannel]:
    channel = WebhookChannel()
    yield channel
    channel.close()


# --- email ---


def test_email_arrives_with_its_key_as_message_id(smtp: SmtpReceiver) -> None:
    provider_id = channel_for(smtp).send(mail())
    (received,) = smtp.wait_for(1)
    message = received.message
    assert received.mail_from == "tocsin@example.com"
    assert received.rcpt_tos == ["ann@example.com"]
    assert not received.tls
    assert message["Subject"] == "[P1] Checkout is down"
    assert message["From"] == "Tocsin <tocsin@example.com>"
    assert message["To"] == "ann@example.com"
    assert message["Message-ID"] == provider_id == message_id(KEY)
    assert message["X-Tocsin-Idempotency-Key"] == KEY
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "text/plain"
    content = message.get_content()  # type: ignore[attr-defined]
    assert content.splitlines() == [
        "Checkout returns 500 for every request.",
        "Acknowledge: https://tocsin/a/1",
    ]


def test_the_same_message_sent_twice_has_the_same_message_id(smtp: SmtpReceiver) -> None:
    channel = channel_for(smtp)
    channel.send(mail())
    channel.send(mail())
    first, second = smtp.wait_for(2)
    assert first.message["Message-ID"] == second.message["Message-ID"]


def test_email_carries_an_html_alternative_from_the_payload(smtp: SmtpReceiver) -> None:
    channel_for(smtp).send(mail(payload={"html": "<p><b>Checkout</b> is down</p>"}))
    (received,) = smtp.wait_for(1)
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part for part in message.iter_parts()}  # type: ignore[attr-defined]
    assert "Acknowledge" in parts["text/plain"].get_content()
    assert "<b>Checkout</b>" in parts["text/html"].get_content()


def test_email_html_and_thread_from_the_email_payload(smtp: SmtpReceiver) -> None:
    channel = channel_for(smtp)
    options = {"html": "<h1>INCIDENT ALERT</h1><p>Checkout is down</p>", "thread": "incident-42"}
    channel.send(mail(key="comm:42:1:stakeholders:ann", payload={"email": options}))
    channel.send(
        mail(key="comm:42:2:stakeholders:ann", payload={"email": {"thread": "incident-42"}})
    )
    channel.send(
        mail(key="comm:43:1:stakeholders:ann", payload={"email": {"thread": "incident-43"}})
    )
    first, second, other = smtp.wait_for(3)
    assert first.message.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p for p in first.message.iter_parts()}  # type: ignore[attr-defined]
    assert "<h1>INCIDENT ALERT</h1>" in parts["text/html"].get_content()
    assert "Checkout returns 500" in parts["text/plain"].get_content()
    assert second.message.get_content_type() == "text/plain"
    # One thread: both answer the same root, which no message of the thread claims to be.
    root = thread_id("incident-42")
    assert root == "<thread=3Aincident-42@tocsin>"
    for received in (first, second):
        assert received.message["In-Reply-To"] == root
        assert received.message["References"] == root
        assert received.message["Message-ID"] != root
    assert first.message["Message-ID"] != second.message["Message-ID"]
    assert other.message["References"] == thread_id("incident-43") != root


def test_email_without_a_thread_has_no_references(smtp: SmtpReceiver) -> None:
    channel_for(smtp).send(mail(payload={"email": {"html": None, "thread": None}}))
    (received,) = smtp.wait_for(1)
    assert received.message["In-Reply-To"] is None
    assert received.message["References"] is None
    assert received.message.get_content_type() == "text/plain"


def test_line_breaks_in_the_title_cannot_add_headers(smtp: SmtpReceiver) -> None:
    channel_for(smtp).send(mail(title="Disk full\r\nBcc: mallory@example.com"))
    (received,) = smtp.wait_for(1)
    assert received.message["Subject"] == "Disk full Bcc: mallory@example.com"
    assert received.message["Bcc"] is None
    assert received.rcpt_tos == ["ann@example.com"]


def test_starttls_with_the_servers_ca() -> None:
    with SmtpReceiver(tls="starttls") as smtp:
        channel_for(smtp).send(mail())
        (received,) = smtp.wait_for(1)
    assert received.tls


def test_starttls_refuses_a_certificate_it_cannot_verify_unless_told_not_to() -> None:
    with SmtpReceiver(tls="starttls") as smtp:
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            channel_for(smtp, ca_file=None).send(mail())
        assert caught.value.retryable
        assert smtp.messages == []
        channel_for(smtp, ca_file=None, verify=False).send(mail())
        (received,) = smtp.wait_for(1)
    assert received.tls


def test_implicit_tls() -> None:
    with SmtpReceiver(tls="ssl") as smtp:
        channel_for(smtp).send(mail())
        (received,) = smtp.wait_for(1)
    assert received.tls


def test_starttls_against_a_server_without_it_fails_for_good(smtp: SmtpReceiver) -> None:
    with pytest.raises(DeliveryError, match="STARTTLS") as caught:
        channel_for(smtp, tls="starttls").send(mail())
    assert not caught.value.retryable


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("tls", ["none", "starttls"])
def test_login(tls: str) -> None:
    with SmtpReceiver(tls=tls, users={"pager": "s3cret"}) as smtp:
        channel_for(smtp, username="pager", password="s3cret").send(mail())
        (received,) = smtp.wait_for(1)
    assert received.login == "pager"


def test_a_wrong_password_fails_for_good_and_an_unauthenticated_sender_too() -> None:
    with SmtpReceiver(tls="starttls", users={"pager": "s3cret"}) as smtp:
        with pytest.raises(DeliveryError, match="535") as wrong:
            channel_for(smtp, username="pager", password="nope").send(mail())
        with pytest.raises(DeliveryError, match="530") as anonymous:
            channel_for(smtp).send(mail())
        assert smtp.messages == []
    assert not wrong.value.retryable
    assert not anonymous.value.retryable


def test_a_5xx_reply_is_permanent_and_a_4xx_reply_is_retried(smtp: SmtpReceiver) -> None:
    channel = channel_for(smtp)
    smtp.reject("550 5.1.1 mailbox unavailable")
    with pytest.raises(DeliveryError, match=r"550 5\.1\.1 mailbox unavailable") as permanent:
        channel.send(mail())
    assert not permanent.value.retryable
    smtp.reject("451 4.3.0 try again later")
    with pytest.raises(DeliveryError, match="451") as transient:
        channel.send(mail())
    assert transient.value.retryable
    channel.send(mail())  # the server recovered
    assert len(smtp.wait_for(1)) == 1


def test_a_server_that_is_down_is_retried() -> None:
    channel = EmailChannel(
        smtp_settings({"host": "127.0.0.1", "port": free_port(), "from": "t@example.com"})
    )
    with pytest.raises(DeliveryError, match="Connection refused") as caught:
        channel.send(mail())
    assert caught.value.retryable


def test_a_destination_that_is_no_address_fails_for_good(smtp: SmtpReceiver) -> None:
    with pytest.raises(DeliveryError, match="not an email address") as caught:
        channel_for(smtp).send(mail(destination="ann"))
    assert not caught.value.retryable


DOT_ATOM = re.compile(
    r"^<[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@tocsin>$"
)


@pytest.mark.parametrize(
    "key",
    ["page:1:rule:0", "a.b", ".a", "a..b", "a.", "with space", "ünïcode", '<>@[]"\\', "x=y", ""],
)
def test_message_ids_are_dot_atoms(key: str) -> None:
    assert DOT_ATOM.match(message_id(key)), message_id(key)
    assert message_id(key) == message_id(key)


def test_message_ids_keep_distinct_keys_distinct() -> None:
    keys = ["a:b", "a.b", "a=3Ab", "a=b", "a b", "a..b", "a=2E=2Eb", ".a", "=2Ea", "a_b"]
    assert len({message_id(key) for key in keys}) == len(keys)
    assert message_id("page.12.rule.0") == "<page.12.rule.0@tocsin>"
    assert message_id("page:12") == "<page=3A12@tocsin>"


def test_smtp_settings_from_the_config_section() -> None:
    settings = smtp_settings(
        {
            "host": "smtp.example.com",
            "from": "pager@example.com",
            "tls": "starttls",
            "username": "u",
            "password": "hunter2",
        }
    )
    assert (settings.host, settings.port, settings.from_address) == (
        "smtp.example.com",
        587,
        "pager@example.com",
    )
    assert (settings.username, settings.password, settings.verify) == ("u", "hunter2", True)
    assert "hunter2" not in repr(settings)
    assert smtp_settings({"host": "h", "from": "a@b.c", "tls": "ssl"}).port == 465
    assert smtp_settings({"host": "h", "from": "a@b.c"}).port == 25
    assert smtp_settings({"host": "h", "from": "a@b.c", "port": "2525"}).port == 2525
    with pytest.raises(ValueError, match="tls must be one of"):
        smtp_settings({"host": "h", "from": "a@b.c", "tls": "yes"})
    with pytest.raises(ValueError, match="from is required"):
        smtp_settings({"host": "h"})
    with pytest.raises(ValueError, match="port must be a number"):
        smtp_settings({"host": "h", "from": "a@b.c", "port": "smtp"})


def test_email_that_is_not_set_up_fails_for_good_saying_so() -> None:
    for raw in (None, {}, {"from": "a@b.c"}):
        channel = email_channel(raw)
        assert isinstance(channel, Unconfigured)
        with pytest.raises(DeliveryError, match="no SMTP server is set up") as caught:
            channel.send(mail())
        assert not caught.value.retryable
    broken = email_channel({"host": "h", "from": "nobody"})
    with pytest.raises(DeliveryError, match=r"bad settings in channels\.email"):
        broken.send(mail())


def test_channels_are_found_through_entry_points() -> None:
    from importlib.metadata import entry_points

    builtin = {"email", "slack", "teams", "mattermost", "webhook", "sms", "voice", "ntfy"}
    assert ENTRY_POINT_GROUP == "tocsin.notifiers"
    names = {point.name for point in entry_points(group=ENTRY_POINT_GROUP)}
    assert builtin <= names
    found = factories()
    assert builtin <= set(found)
    assert found["email"] is email_channel
    assert found["webhook"] is webhook_channel


# --- webhooks ---


def test_webhook_posts_the_payload_with_its_idempotency_key(
    hooks: WebhookReceiver, webhook: WebhookChannel
) -> None:
    webhook.send(hook(hooks.url("/pager?team=web")))
    (request,) = hooks.wait_for(1)
    assert (request.method, request.path) == ("POST", "/pager?team=web")
    assert request.headers["idempotency-key"] == KEY
    assert request.headers["user-agent"] == f"Tocsin/{__version__}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"event": "page", "incident": {"id": 42, "title": "Checkout is down"}}


def test_webhook_without_a_payload_sends_title_and_body(
    hooks: WebhookReceiver, webhook: WebhookChannel
) -> None:
    webhook.send(hook(hooks.url(), payload={}, body="Checkout returns 500"))
    (request,) = hooks.wait_for(1)
    assert request.json == {
        "kind": "page",
        "title": "Checkout is down",
        "body": "Checkout returns 500",
    }


def test_webhook_returns_the_receivers_request_id(
    hooks: WebhookReceiver, webhook: WebhookChannel
) -> None:
    hooks.respond(202, headers={"X-Request-Id": "req-7"})
    assert webhook.send(hook(hooks.url())) == "req-7"
    assert webhook.send(hook(hooks.url())) is None


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_webhook_2xx_is_delivered(
    status: int, hooks: WebhookReceiver, webhook: WebhookChannel
) -> None:
    hooks.respond(status)
    webhook.send(hook(hooks.url()))
    assert hooks.wait_for(1)[0].status == status


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (425, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
        (422, False),
        (301, False),
        (302, False),
    ],
)
def test_webhook_status_decides_whether_to_retry(
    status: int, retryable: bool, hooks: WebhookReceiver, webhook: WebhookChannel
) -> None:
    hooks.respond(status, body="<html>nope</html>", headers={"Location": hooks.url("/moved")})
    with pytest.raises(DeliveryError, match=f"HTTP {status}: <html>nope</html>") as caught:
        webhook.send(hook(hooks.url()))
    assert caught.value.retryable is retryable
    assert caught.value.retry_after is None
    assert len(hooks.requests) == 1  # redirects are not followed


def test_webhook_honours_retry_after_in_seconds_and_as_a_date(
    hooks: WebhookReceiver, webhook: WebhookChannel
) -> None:
    hooks.respond(429, headers={"Retry-After": "17"})
    with pytest.raises(DeliveryError) as limited:
        webhook.send(hook(hooks.url()))
    assert (limited.value.retryable, limited.value.retry_after) == (True, 17.0)
    later = datetime.now(UTC) + timedelta(seconds=120)
    hooks.respond(503, headers={"Retry-After": format_datetime(later, usegmt=True)})
    with pytest.raises(DeliveryError) as unavailable:
        webhook.send(hook(hooks.url()))
    assert unavailable.value.retry_after is not None
    assert 100 <= unavailable.value.retry_after <= 121
    hooks.respond(500, headers={"Retry-After": "17"})  # only 429 and 503 carry it
    with pytest.raises(DeliveryError) as failed:
        webhook.send(hook(hooks.url()))
    assert failed.value.retry_after is None


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 30 ") == 30.0
    assert parse_retry_after("Sat, 14 Mar 2026 09:01:00 GMT", now) == 60.0
    assert parse_retry_after("Sat, 14 Mar 2026 08:00:00 GMT", now) == 0.0  # in the past
    for unusable in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(unusable, now) is None


def test_webhook_timeout_is_retried_and_the_request_did_arrive(hooks: WebhookReceiver) -> None:
    channel = WebhookChannel(timeout=0.3)
    hooks.delay(2.0)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="timed out") as caught:
        channel.send(hook(hooks.url()))
    assert time.monotonic() - started < 1.5
    assert caught.value.retryable
    assert len(hooks.wait_for(1)) == 1  # so receivers must use the key to drop the repeat
    channel.close()


def test_webhook_to_nobody_is_retried_and_a_bad_url_is_not(webhook: WebhookChannel) -> None:
    with pytest.raises(DeliveryError, match="unreachable") as refused:
        webhook.send(hook(f"http://127.0.0.1:{free_port()}/hook"))
    assert refused.value.retryable
    with pytest.raises(DeliveryError, match="bad webhook URL") as bad:
        webhook.send(hook("ftp://example.com/hook"))
    assert not bad.value.retryable


def test_webhook_channel_settings() -> None:
    assert isinstance(webhook_channel(None), WebhookChannel)
    configured = webhook_channel({"timeout": 3})
    assert isinstance(configured, WebhookChannel)
    assert configured.poster.client.timeout.read == 3.0
    assert isinstance(webhook_channel({"timeout": "never"}), Unconfigured)
