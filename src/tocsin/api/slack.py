"""POST /api/v1/slack/interactions: Slack's interactivity request URL (the app's buttons).

Slack signs each request with the app's signing secret (`channels.slack.signing_secret`):
HMAC-SHA256 over "v0:{timestamp}:{body}". A request older than five minutes is refused (a
replayed click), so is one whose signature does not match (401, JSON, saying which).

A click on Acknowledge or Resolve acts as the Tocsin user linked to the Slack member (see
slack_actions.py). The answer is always 200 with an ephemeral-style message, also posted to the
request's `response_url`, which is how Slack shows it to the person who clicked.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, Response
from slack_sdk.errors import SlackClientError
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.concurrency import run_in_threadpool

from tocsin.api.context import AppContext
from tocsin.api.slack_actions import Answer, act, user_by_email, user_by_member
from tocsin.core.errors import DomainError, NotFound
from tocsin.notify.registry import channel_settings
from tocsin.notify.settings import is_http_url
from tocsin.notify.slack import SlackSettings, web_client
from tocsin.notify.slack_format import MEMBER_ID, SlackAction, parse_button

log = logging.getLogger("tocsin.api.slack")

router = APIRouter(prefix="/api/v1/slack", tags=["slack"])

MAX_AGE = 5 * 60  # seconds a signed request stays acceptable
NOT_LINKED = (
    "Your Slack account is not linked to a Tocsin user. Add your Slack member id as a "
    "`slack` contact method on your Tocsin profile, or use the same email address in both."
)


class _At(Clock):
    """The verifier's clock, set to the app's (tests run on a fake one)."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _answer(text: str) -> JSONResponse:
    return JSONResponse({"response_type": "ephemeral", "replace_original": False, "text": text})


def signature_problem(secret: str, body: bytes, headers: Any, now: float) -> str | None:
    """Return why a request's Slack signature is not acceptable, or None when it is."""
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature header"
    if not timestamp.isascii() or not timestamp.isdigit():
        return "X-Slack-Request-Timestamp is not a Unix time"
    if abs(now - int(timestamp)) > MAX_AGE:
        return "stale request: its timestamp is more than 5 minutes from this server's clock"
    if not SignatureVerifier(secret, clock=_At(now)).is_valid(body, timestamp, signature):
        return "bad signature: the request was not signed with channels.slack.signing_secret"
    return None


def _settings(ctx: AppContext) -> SlackSettings | None:
    raw = channel_settings(ctx.db).get("slack")
    if raw is None:
        return None
    try:
        return SlackSettings.from_config(raw)
    except ValueError:
        return None


def _payload(body: bytes) -> dict[str, Any] | None:
    try:
        form = parse_qs(body.decode(), strict_parsing=False)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, KeyError, IndexError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def _button(payload: dict[str, Any]) -> SlackAction | None:
    for item in payload.get("actions") or []:
        if isinstance(item, dict):
            found = parse_button(str(item.get("action_id") or ""), str(item.get("value") or ""))
            if found is not None:
                return found
    return None


def _user_id(ctx: AppContext, settings: SlackSettings, member: str) -> str | None:
    """Return the Tocsin user behind a Slack member: contact method first, then email."""
    with ctx.db.read() as session:
        user = user_by_member(session, member)
        if user is not None:
            return user.id
    if not settings.token:
        return None
    try:
        info = web_client(settings).users_info(user=member)
    except (SlackClientError, OSError) as exc:
        log.warning("cannot look up Slack member %s: %s", member, exc)
        return None
    email = ((info.get("user") or {}).get("profile") or {}).get("email")
    if not isinstance(email, str) or "@" not in email:
        return None
    with ctx.db.read() as session:
        user = user_by_email(session, email)
        return user.id if user is not None else None


def _tell(url: str, text: str) -> None:
    """Post the answer to Slack's response_url (shown to the clicker only)."""
    body = {"response_type": "ephemeral", "replace_original": False, "text": text}
    try:
        httpx.post(url, json=body, timeout=5.0, follow_redirects=False)
    except httpx.HTTPError as exc:
        log.warning("cannot answer Slack at its response_url: %s", exc)


@router.post("/interactions", summary="Slack interactivity: acknowledge / resolve buttons")
async def interactions(request: Request, background: BackgroundTasks) -> Response:
    """Verify Slack's signature, then act on a Tocsin button as the linked Tocsin user."""
    ctx: AppContext = request.app.state.ctx
    body = await request.body()
    settings = await run_in_threadpool(_settings, ctx)
    if settings is None or not settings.signing_secret:
        # 404, not 503: nothing will change until someone configures it.
        return _error(404, "Slack interactivity is not set up: set channels.slack.signing_secret")
    now = ctx.clock()
    problem = signature_problem(settings.signing_secret, body, request.headers, now.timestamp())
    if problem:
        return _error(401, problem)
    payload = _payload(body)
    if payload is None:
        return _error(400, "expected a form field `payload` holding Slack's JSON")
    if payload.get("type") != "block_actions":
        return Response(status_code=200)  # other interactions are not Tocsin's
    action = _button(payload)
    if action is None:
        return Response(status_code=200)  # a button of another app in the same message
    member = str((payload.get("user") or {}).get("id") or "")
    user_id = None
    if MEMBER_ID.fullmatch(member):
        user_id = await run_in_threadpool(_user_id, ctx, settings, member)
    if user_id is None:
        answer = Answer(NOT_LINKED)
    else:
        linked: str = user_id
        try:
            answer = await ctx.db.run_write(lambda s: act(s, linked, action, now))
        except NotFound as exc:
            answer = Answer(f"Tocsin cannot find it: {exc.message}")
        except DomainError as exc:
            answer = Answer(f"Not possible: {exc.message}")
    if answer.changed:
        ctx.wake()
    response_url = payload.get("response_url")
    if isinstance(response_url, str) and is_http_url(response_url):
        background.add_task(_tell, response_url, answer.text)
    return _answer(answer.text)
