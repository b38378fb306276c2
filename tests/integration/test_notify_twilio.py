"""SMS and voice through the official twilio client, pointed at a local Twilio REST API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.mocks.twilio_api import ACCOUNT_SID, FROM, TwilioApiMock
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.notify.registry import sms_channel, voice_channel
from tocsin.notify.twilio import SmsChannel, TwilioSettings, VoiceChannel, sms_text, spoken

PAGE_BODY = (
    "Incident #42 needs you (high urgency).\n[P1] Checkout is down\n\n"
    "Open: https://tocsin.example.test/incidents/42\n"
    "Acknowledge: https://tocsin.example.test/a/eyJhbGciOi.abc"
)


@pytest.fixture
def twilio() -> Iterator[TwilioApiMock]:
    with TwilioApiMock() as mock:
        yield mock


def message(channel: str = "sms", **kw: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "key": "page:42:0:0",
        "channel": channel,
        "destination": "+14155550100",
        "title": "[P1] Checkout is down",
        "body": PAGE_BODY,
    }
    values.update(kw)
    return OutgoingMessage(**values)


def raised(channel: Any, outgoing: OutgoingMessage) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        channel.send(outgoing)
    return caught.value


def test_sms_through_the_twilio_client(twilio: TwilioApiMock) -> None:
    channel = sms_channel(twilio.settings())
    assert isinstance(channel, SmsChannel)
    sid = channel.send(message())
    (call,) = twilio.calls
    assert call.method == "Messages"
    assert call.headers["user-agent"].startswith("twilio-python/")  # the official client
    assert call.args["To"] == "+14155550100"
    assert call.args["From"] == FROM
    assert call.args["Body"] == "[P1] Checkout is down\n" + PAGE_BODY
    assert sid == twilio.messages[0]["sid"]
    assert sid is not None
    assert sid.startswith("SM")


def test_voice_reads_the_message_twice_without_links(twilio: TwilioApiMock) -> None:
    channel = voice_channel(twilio.settings())
    assert isinstance(channel, VoiceChannel)
    sid = channel.send(message("voice", title="Disk <full> & rising", body="Code 482913 now"))
    (call,) = twilio.calls_made
    assert sid == call["sid"]
    assert call["twiml"] == (
        '<Response><Say loop="2">Disk &lt;full&gt; &amp; rising. Code 4 8 2 9 1 3 now'
        "</Say></Response>"
    )
    page = spoken(message("voice"))
    assert "https://" not in page
    assert page.startswith("[P1] Checkout is down. Incident #42 needs you")


def test_sms_is_cut_to_what_twilio_takes(twilio: TwilioApiMock) -> None:
    long = message(body="x" * 5000)
    sms_channel(twilio.settings()).send(long)
    body = twilio.messages[0]["body"]
    assert len(body) == 1600
    assert body.endswith("…")
    assert sms_text(message(title="Code", body="Code")) == "Code"


def test_a_rate_limit_is_retried_after_what_twilio_said(twilio: TwilioApiMock) -> None:
    channel = sms_channel(twilio.settings())
    error = twilio.error(20429, "Too Many Requests", 429)
    twilio.fail("Messages", 429, error, headers={"Retry-After": "12"})
    limited = raised(channel, message())
    assert (limited.retryable, limited.retry_after) == (True, 12.0)
    assert "Too Many Requests (error 20429)" in str(limited)
    # The Retry-After of one answer is not carried into the next request's error.
    twilio.fail("Messages", 503, twilio.error(20503, "Service Unavailable", 503))
    unavailable = raised(channel, message())
    assert (unavailable.retryable, unavailable.retry_after) == (True, None)
    assert channel.send(message()) is not None


@pytest.mark.parametrize(
    ("overrides", "destination", "says"),
    [
        ({}, "+1415", "The 'To' number +1415 is not a valid phone number. (error 21211)"),
        ({"from": "+15005550001"}, "+14155550100", "not a valid, SMS-capable number"),
        ({"auth_token": "wrong"}, "+14155550100",
         "Authenticate: check channels.twilio.account_sid and auth_token (error 20003)"),
        ({"account_sid": "ACother"}, "+14155550100", "(error 20003)"),
    ],
)  # fmt: skip
def test_refusals_are_permanent_with_twilios_message(
    twilio: TwilioApiMock, overrides: dict[str, Any], destination: str, says: str
) -> None:
    error = raised(sms_channel(twilio.settings(**overrides)), message(destination=destination))
    assert not error.retryable
    assert says in str(error)
    assert error.retry_after is None


def test_a_destination_that_is_no_phone_number_is_refused_before_twilio(
    twilio: TwilioApiMock,
) -> None:
    for destination in ("", "4155550100", "+0155", "tel:+14155550100"):
        error = raised(sms_channel(twilio.settings()), message(destination=destination))
        assert not error.retryable
        assert "E.164" in str(error)
    assert twilio.calls == []


def test_a_slow_twilio_is_retried(twilio: TwilioApiMock) -> None:
    twilio.fail("Calls", 201, {"sid": "CA1"}, delay=2.5)
    error = raised(voice_channel(twilio.settings(timeout=1)), message("voice"))
    assert error.retryable
    assert "timed out" in str(error)


def test_settings() -> None:
    settings = TwilioSettings.from_config(
        {"account_sid": ACCOUNT_SID, "auth_token": "t0k3n", "from": "+15005550006",
         "api_url": "https://api.eu.example.test/"}
    )  # fmt: skip
    assert settings.api_url == "https://api.eu.example.test"
    assert "t0k3n" not in repr(settings)
    assert (
        TwilioSettings.from_config(
            {"account_sid": "AC1", "auth_token": "t", "from": "+15005550006"}
        ).api_url
        == "https://api.twilio.com"
    )
    for raw, says in [
        ({"auth_token": "t", "from": "+15005550006"}, "account_sid is required"),
        ({"account_sid": "AC1", "from": "+15005550006"}, "auth_token is required"),
        ({"account_sid": "AC1", "auth_token": "t", "from": "555"}, "from must be a phone"),
        ({"account_sid": "AC1", "auth_token": "t", "from": "+15005550006", "timeout": 0},
         "timeout must be positive"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=says):
            TwilioSettings.from_config(raw)
