"""SMS and voice calls through Twilio's REST API, with the official twilio client.

Both channels share `channels.twilio` (account SID, auth token, sender number, API base URL).
The client always builds https://api.twilio.com/... URLs; a small HttpClient rewrites that
base to the configured one (a regional endpoint, a proxy, or a local mock in tests) and keeps
the Retry-After of the last answer, which TwilioRestException does not carry.

A client, its HTTP client and its connection pool are kept per thread: the twilio client keeps
the last request and response on itself, so one shared instance would mix up threads.

Twilio's answers decide retries: 429 and 5xx (and unreachable or slow servers) are retried,
honouring Retry-After; any other 4xx (bad number, unverified sender, wrong credentials) fails
for good with Twilio's own message and error code.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import requests
from twilio.base.exceptions import (  # type: ignore[import-untyped]
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]
from twilio.http.response import Response  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from tocsin.notify import settings as read
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.notify.http import parse_retry_after

DEFAULT_API_URL = "https://api.twilio.com"
TWILIO_BASE = "https://api.twilio.com"
TIMEOUT = 10.0
SMS_CHARS = 1600  # Twilio refuses longer message bodies
SPOKEN_CHARS = 3000  # TwiML may be 4,000 characters; leave room for the markup
_URL_WORDS = ("http://", "https://")
_CODE = re.compile(r"\d{4,}")
# Twilio logs every request at INFO with the phone numbers in it; keep them out of the log.
_http_log = logging.getLogger("tocsin.notify.twilio.http")
_http_log.setLevel(logging.WARNING)


@dataclass(frozen=True, kw_only=True)
class TwilioSettings:
    """The Twilio account (config section `channels.twilio`)."""

    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str
    api_url: str = DEFAULT_API_URL
    timeout: float = TIMEOUT

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> TwilioSettings:
        """Read `channels.twilio` (`from` → from_number); ValueError names the bad key."""
        account_sid, auth_token = read.text(raw, "account_sid"), read.text(raw, "auth_token")
        from_number = read.text(raw, "from") or read.text(raw, "from_number")
        if not account_sid:
            raise ValueError("account_sid is required")
        if not auth_token:
            raise ValueError("auth_token is required")
        if not from_number or not read.is_e164(from_number):
            raise ValueError(
                f"from must be a phone number such as +15005550006, not {from_number!r}"
            )
        return cls(
            account_sid=account_sid,
            auth_token=auth_token,
            from_number=from_number,
            api_url=(read.url(raw, "api_url", DEFAULT_API_URL) or DEFAULT_API_URL).rstrip("/"),
            timeout=read.number(raw, "timeout", float, TIMEOUT),
        )


class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The twilio HTTP client, sending to another base URL and remembering Retry-After."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_http_log)
        self.base_url = base_url.rstrip("/")
        self.retry_after: str | None = None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        """Send the request to the configured base instead of api.twilio.com."""
        if url.startswith(TWILIO_BASE):
            url = self.base_url + url[len(TWILIO_BASE) :]
        self.retry_after = None
        response: Response = super().request(method, url, *args, **kwargs)
        self.retry_after = (response.headers or {}).get("Retry-After")
        return response


class TwilioGateway:
    """One Twilio account, a client per thread."""

    def __init__(self, settings: TwilioSettings) -> None:
        self.settings = settings
        self._local = threading.local()

    def client(self) -> tuple[Any, BaseUrlHttpClient]:
        """Return this thread's client and its HTTP client."""
        found = getattr(self._local, "pair", None)
        if found is None:
            http = BaseUrlHttpClient(self.settings.api_url, self.settings.timeout)
            client = Client(self.settings.account_sid, self.settings.auth_token, http_client=http)
            found = self._local.pair = (client, http)
        return found

    def create(self, what: str, destination: str, **fields: Any) -> str:
        """Create a message ("SMS") or call ("call"); return its SID."""
        destination = destination.strip()
        if not read.is_e164(destination):
            raise DeliveryError(
                f"{destination!r} is not a phone number in E.164 form (such as +14155550100)",
                retryable=False,
            )
        client, http = self.client()
        resource = client.messages if what == "SMS" else client.calls
        try:
            created = resource.create(to=destination, from_=self.settings.from_number, **fields)
        except TwilioRestException as exc:
            raise rest_error(what, exc.status, exc.msg, exc.code, http.retry_after) from exc
        except TwilioServiceException as exc:
            said = exc.detail or exc.title
            raise rest_error(what, exc.status, said, exc.code, http.retry_after) from exc
        except requests.Timeout as exc:
            raise DeliveryError(f"Twilio timed out sending the {what}", retryable=True) from exc
        except (requests.RequestException, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise DeliveryError(
                f"Twilio API at {self.settings.api_url} unreachable: {detail}", retryable=True
            ) from exc
        except TwilioException as exc:
            raise DeliveryError(f"Twilio client failed: {exc}", retryable=True) from exc
        return str(created.sid)


def rest_error(
    what: str, status: int, said: object, code: object, retry_after: str | None
) -> DeliveryError:
    """Return the DeliveryError for a Twilio refusal: 429 and 5xx retried, 4xx not."""
    text = " ".join(str(said or "").split()) or f"HTTP {status}"
    where = f" (error {code})" if code and code != status else f" (HTTP {status})"
    if status == 429 or status >= 500:
        wait = parse_retry_after(retry_after)
        return DeliveryError(
            f"Twilio could not take the {what} now: {text}{where}",
            retryable=True,
            retry_after=wait,
        )
    if status == 401:
        text = f"{text}: check channels.twilio.account_sid and auth_token"
    return DeliveryError(f"Twilio refused the {what}: {text}{where}", retryable=False)


def sms_text(message: OutgoingMessage) -> str:
    """Return the SMS body: title and text, cut to what Twilio accepts."""
    title, body = message.title.strip(), message.body.strip()
    text = f"{title}\n{body}" if title and body and not body.startswith(title) else body or title
    return text if len(text) <= SMS_CHARS else text[: SMS_CHARS - 1] + "…"


def spoken(message: OutgoingMessage) -> str:
    """Return what the call says: the title and text, without links nobody can type."""
    words = f"{message.title.strip()}. {message.body.strip()}".split()
    text = " ".join(word for word in words if not word.startswith(_URL_WORDS))
    # "123456" is read as a number in the hundred thousands; a code must be read digit by digit.
    text = _CODE.sub(lambda hit: " ".join(hit.group()), text)
    return text[:SPOKEN_CHARS] or "Tocsin notification."


def twiml(message: OutgoingMessage) -> str:
    """Return the call's TwiML: the message read twice, escaped."""
    return f'<Response><Say loop="2">{escape(spoken(message))}</Say></Response>'


class SmsChannel:
    """Text messages through Twilio."""

    name = "sms"

    def __init__(self, gateway: TwilioGateway) -> None:
        self.gateway = gateway

    def send(self, message: OutgoingMessage) -> str | None:
        """Send the SMS; return Twilio's message SID."""
        return self.gateway.create("SMS", message.destination, body=sms_text(message))


class VoiceChannel:
    """Phone calls through Twilio that read the message out."""

    name = "voice"

    def __init__(self, gateway: TwilioGateway) -> None:
        self.gateway = gateway

    def send(self, message: OutgoingMessage) -> str | None:
        """Place the call; return Twilio's call SID."""
        return self.gateway.create("call", message.destination, twiml=twiml(message))
