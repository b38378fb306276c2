"""A local Twilio REST API: Messages.json and Calls.json of one account, with basic auth.

    with TwilioApiMock() as twilio:
        channel = sms_channel(twilio.settings())
        twilio.fail("Messages", 429, twilio.error(20429, "Too Many Requests", 429),
                    headers={"Retry-After": "12"})

Answers are shaped like Twilio's (201 with the new resource's sid; errors as
{code, message, more_info, status}), so the official client parses them as it would Twilio's.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.mocks.server import MockServer, Request

ACCOUNT_SID = "ACtest0123456789"
AUTH_TOKEN = "test-auth-token"
FROM = "+15005550006"
_PATH = re.compile(r"/2010-04-01/Accounts/(?P<sid>[^/]+)/(?P<resource>Messages|Calls)\.json")
# Twilio knows real numbering plans; a few digits are never a number.
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


class TwilioApiMock(MockServer):
    """Serve one account's Messages and Calls; `messages` and `calls` keep what was created."""

    thread_name = "twilio-api-mock"

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[dict[str, Any]] = []
        self.calls_made: list[dict[str, Any]] = []
        self._sids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Return `channels.twilio` settings that reach this mock."""
        return {
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from": FROM,
            "api_url": self.url,
            "timeout": 5,
            **overrides,
        }

    @staticmethod
    def error(code: int, message: str, status: int) -> dict[str, Any]:
        """Return Twilio's error document."""
        return {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }

    def method_of(self, request: Request) -> str:
        hit = _PATH.fullmatch(request.path)
        return hit.group("resource") if hit else request.path

    def route(  # noqa: PLR0911 - one early answer per refusal, as Twilio checks them
        self, method: str, request: Request
    ) -> tuple[int, Any, dict[str, str]]:
        hit = _PATH.fullmatch(request.path)
        if request.verb != "POST" or hit is None:
            return 404, self.error(20404, "The requested resource was not found", 404), {}
        if not self._authorised(request) or hit.group("sid") != self.account_sid:
            return 401, self.error(20003, "Authenticate", 401), {}
        args = request.args
        to, sender = str(args.get("To") or ""), str(args.get("From") or "")
        if not _E164.fullmatch(to):
            message = f"The 'To' number {to} is not a valid phone number."
            return 400, self.error(21211, message, 400), {}
        if sender != FROM:
            message = f"The From phone number {sender} is not a valid, SMS-capable number."
            return 400, self.error(21606, message, 400), {}
        if method == "Messages":
            body = str(args.get("Body") or "")
            if not body or len(body) > 1600:
                return 400, self.error(21617, "The concatenated message body is too long", 400), {}
            created = self._created("SM", to, sender, body=body, status="queued")
            self.messages.append(created)
        else:
            if not args.get("Twiml") and not args.get("Url"):
                return 400, self.error(21205, "Url parameter is required.", 400), {}
            created = self._created("CA", to, sender, twiml=args.get("Twiml"), status="queued")
            self.calls_made.append(created)
        return 201, created, {}

    def _authorised(self, request: Request) -> bool:
        import base64

        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def _created(self, prefix: str, to: str, sender: str, **fields: Any) -> dict[str, Any]:
        sid = f"{prefix}{next(self._sids):032x}"
        return {"sid": sid, "account_sid": self.account_sid, "to": to, "from": sender, **fields}
