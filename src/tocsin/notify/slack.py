"""Slack through the Web API (the official slack_sdk client, any base URL), or an incoming webhook.

For a message to "#incident-2026-11-22-001" with payload["slack"] (see slack_format.py) the
channel: creates the Slack channel when asked (a name already taken is looked up and reused),
invites people by member id or email, sets the topic, posts the text with buttons, and pins it.
Channel and member ids are cached by name and email; creation is serialised per name, so two
messages racing to open one incident channel create it once.

Steps before the post are safe to repeat on a retry (an invite or topic that already holds is
no change); the post is not, Slack has no idempotency key. So nothing after the post may fail
the message: a pin that fails is logged, not retried, to avoid posting the update twice.

Slack's answers decide retries: HTTP 429 / `ratelimited` waits for Retry-After; 5xx and
Slack's own transient errors retry; anything else (a bad token, a missing scope, an unknown
channel) fails for good with a sentence saying what to fix.
"""

from __future__ import annotations

import http.client
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from tocsin.notify import settings as read
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.notify.http import HttpPoster, parse_retry_after
from tocsin.notify.slack_format import (
    SLACK_ID,
    SlackOptions,
    blocks,
    channel_name,
    message_text,
    read_options,
)

log = logging.getLogger("tocsin.notify.slack")

DEFAULT_API_URL = "https://slack.com/api/"
TIMEOUT = 10.0
# Slack's transient failures: worth another try.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
BAD_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
# Invite answers that still leave everyone who can be in the channel in it.
HARMLESS_INVITE = frozenset({"already_in_channel", "cant_invite_self"})
SKIPPED_INVITE = frozenset(
    {"user_not_found", "cant_invite", "user_is_restricted", "user_is_ultra_restricted"}
)
LIST_PAGES = 50


@dataclass(frozen=True, kw_only=True)
class SlackSettings:
    """How to reach Slack (config section `channels.slack`)."""

    token: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL
    webhook_url: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    timeout: float = TIMEOUT

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> SlackSettings:
        """Read `channels.slack`; ValueError names the bad key."""
        api_url = read.url(raw, "api_url", DEFAULT_API_URL) or DEFAULT_API_URL
        return cls(
            token=read.text(raw, "token"),
            # WebClient appends the method name to the base URL as it is.
            api_url=api_url if api_url.endswith("/") else api_url + "/",
            webhook_url=read.url(raw, "webhook_url"),
            signing_secret=read.text(raw, "signing_secret"),
            timeout=read.number(raw, "timeout", float, TIMEOUT),
        )


def web_client(settings: SlackSettings) -> WebClient:
    """Return a Web API client for the settings, with no retries of its own (the outbox retries)."""
    return WebClient(
        token=settings.token,
        base_url=settings.api_url,
        timeout=max(1, math.ceil(settings.timeout)),
        retry_handlers=[],
    )


class SlackChannel:
    """Post to Slack; thread-safe (the client keeps no per-request state, caches are locked)."""

    name = "slack"

    def __init__(self, settings: SlackSettings) -> None:
        self.settings = settings
        self.client = web_client(settings)
        self.hooks = HttpPoster("Slack webhook", timeout=settings.timeout)
        self._ids: dict[str, str] = {}  # channel name → id
        self._members: dict[str, str] = {}  # email → member id
        self._lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}

    def send(self, message: OutgoingMessage) -> str | None:
        """Post the message; return "channel-id/timestamp" (or None through a webhook)."""
        destination = message.destination.strip()
        if read.is_http_url(destination):
            return self._webhook(destination, message)
        if not self.settings.token:
            if self.settings.webhook_url:
                return self._webhook(self.settings.webhook_url, message)
            raise DeliveryError(
                "slack channel is not usable: no bot token is set up (channels.slack.token) "
                f"to post to {destination or 'Slack'}",
                retryable=False,
            )
        if not channel_name(destination) and not SLACK_ID.fullmatch(destination):
            raise DeliveryError(f"{destination!r} names no Slack channel", retryable=False)
        options = read_options(message.payload)
        target = self._target(destination, options)
        if options.invites:
            self._invite(target, options)
        if options.topic is not None:
            with self._calling("conversations.setTopic", destination):
                self.client.conversations_setTopic(channel=target, topic=options.topic[:250])
        with self._calling("chat.postMessage", destination):
            posted = self.client.chat_postMessage(
                channel=target,
                text=message_text(message.title, message.body),
                blocks=blocks(message.title, message.body, options.actions),
                unfurl_links=False,
            )
        channel_id, ts = str(posted.get("channel") or target), str(posted.get("ts") or "")
        if not SLACK_ID.fullmatch(destination) and SLACK_ID.fullmatch(channel_id):
            with self._lock:
                self._ids[channel_name(destination)] = channel_id
        if options.pin and ts:
            self._pin(channel_id, ts, destination)
        return f"{channel_id}/{ts}"

    def close(self) -> None:
        """Close the webhook connection pool (the Web API client holds none)."""
        self.hooks.close()

    # --- steps ---

    def _webhook(self, url: str, message: OutgoingMessage) -> str | None:
        self.hooks.post(url, json={"text": message_text(message.title, message.body)})
        return None

    def _target(self, destination: str, options: SlackOptions) -> str:
        """Return the channel id, or the "#name" chat.postMessage resolves itself."""
        if SLACK_ID.fullmatch(destination):
            return destination
        name = channel_name(destination)
        with self._lock:
            cached = self._ids.get(name)
        if cached:
            return cached
        if options.ensure_channel:
            return self._ensure(name, destination)
        if options.needs_channel_id:
            with self._calling("conversations.list", destination):
                found = self._find(name)
            if found is None:
                raise DeliveryError(
                    f"Slack channel #{name} not found (or the Slack app cannot see it)",
                    retryable=False,
                )
            return self._remember(name, found[0])
        return f"#{name}"

    def _ensure(self, name: str, destination: str) -> str:
        with self._lock:
            lock = self._name_locks.setdefault(name, threading.Lock())
        with lock:
            with self._lock:
                cached = self._ids.get(name)
            if cached:
                return cached
            try:
                with self._calling("conversations.create", destination, expected={"name_taken"}):
                    created = self.client.conversations_create(name=name)
                return self._remember(name, str(created["channel"]["id"]))
            except _Expected:
                pass
            # Taken: another Tocsin instance, a retry, or a person made it first. Reuse it.
            with self._calling("conversations.list", destination):
                found = self._find(name)
            if found is None:
                raise DeliveryError(
                    f"Slack channel #{name} exists but is archived or private to the app; "
                    "unarchive it or invite the app",
                    retryable=False,
                )
            channel_id, member = found
            if not member:
                with self._calling("conversations.join", destination):
                    self.client.conversations_join(channel=channel_id)
            return self._remember(name, channel_id)

    def _find(self, name: str) -> tuple[str, bool] | None:
        """Return (id, whether the app is a member) of the open channel called `name`."""
        cursor: str | None = None
        for _ in range(LIST_PAGES):
            page = self.client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for channel in page.get("channels") or []:
                if channel.get("name") == name:
                    return str(channel["id"]), bool(channel.get("is_member", False))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    def _remember(self, name: str, channel_id: str) -> str:
        with self._lock:
            self._ids[name] = channel_id
        return channel_id

    def _invite(self, channel_id: str, options: SlackOptions) -> None:
        members = list(options.invite_ids)
        for email in options.invite_emails:
            member = self._member(email, channel_id)
            if member:
                members.append(member)
        members = list(dict.fromkeys(members))
        if not members:
            return
        try:
            with self._calling(
                "conversations.invite", channel_id, expected=SKIPPED_INVITE | HARMLESS_INVITE
            ):
                self.client.conversations_invite(
                    channel=channel_id, users=",".join(members), force=True
                )
        except _Expected as skipped:
            # Someone who cannot join must not keep the update from everybody else.
            if str(skipped) not in HARMLESS_INVITE:
                log.warning("Slack did not invite %s to %s: %s", members, channel_id, skipped)

    def _member(self, email: str, destination: str) -> str | None:
        with self._lock:
            cached = self._members.get(email.lower())
        if cached:
            return cached
        try:
            with self._calling("users.lookupByEmail", destination, expected={"users_not_found"}):
                found = self.client.users_lookupByEmail(email=email)
        except _Expected:
            log.warning("no Slack member has the email %s; not invited", email)
            return None
        member = str((found.get("user") or {}).get("id") or "")
        if member:
            with self._lock:
                self._members[email.lower()] = member
        return member or None

    def _pin(self, channel_id: str, ts: str, destination: str) -> None:
        try:
            with self._calling("pins.add", destination, expected={"already_pinned"}):
                self.client.pins_add(channel=channel_id, timestamp=ts)
        except _Expected:
            pass
        except DeliveryError as exc:
            log.warning("message %s in %s posted but not pinned: %s", ts, destination, exc)

    @contextmanager
    def _calling(
        self, method: str, destination: str, *, expected: frozenset[str] | set[str] = frozenset()
    ) -> Iterator[None]:
        """Turn what the client raises into DeliveryError (or _Expected for `expected`)."""
        try:
            yield
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in expected:
                raise _Expected(error) from exc
            raise api_error(method, destination, exc) from exc
        except (SlackClientError, OSError, http.client.HTTPException) as exc:
            detail = str(exc) or type(exc).__name__
            raise DeliveryError(
                f"Slack API at {self.settings.api_url} unreachable ({method}): {detail}",
                retryable=True,
            ) from exc


class _Expected(Exception):
    """A Slack error the step handles itself (name_taken, already_pinned …)."""


def api_error(method: str, destination: str, exc: SlackApiError) -> DeliveryError:
    """Return the DeliveryError for a Slack Web API refusal, in a sentence saying what to do."""
    response = exc.response
    status = int(response.status_code or 0)
    error = str(response.get("error") or f"HTTP {status}")
    if status == 429 or error == "ratelimited":
        headers = {str(k).lower(): str(v) for k, v in (response.headers or {}).items()}
        retry_after = parse_retry_after(headers.get("retry-after"))
        return DeliveryError(
            f"Slack rate-limited {method}; retrying after {retry_after or 'a while'} s",
            retryable=True,
            retry_after=retry_after,
        )
    if status >= 500 or error in RETRYABLE_ERRORS:
        return DeliveryError(f"Slack failed {method} ({error}); retrying", retryable=True)
    return DeliveryError(_sentence(method, destination, error, response), retryable=False)


# What to say for Slack's common refusals ({method}, {destination}, {error}, {needed}).
_SENTENCES = {
    "missing_scope": "the Slack app lacks {needed} for {method} ({error}): add the scope "
    "and reinstall the app",
    "channel_not_found": "Slack channel {destination} not found, or the Slack app cannot see "
    "it ({error})",
    "not_in_channel": "the Slack app is not in {destination} ({error}): invite it there",
    "is_archived": "Slack channel {destination} is archived ({error})",
    "restricted_action": "the Slack workspace does not let the app call {method} ({error})",
    "msg_too_long": "the message is too long for Slack ({error})",
    "invalid_blocks": "Slack refused the message layout ({error})",
}


def _sentence(method: str, destination: str, error: str, response: Any) -> str:
    if error in BAD_TOKEN:
        return f"Slack refused the bot token ({error}) on {method}: check channels.slack.token"
    if error.startswith("invalid_name"):
        return f"{destination!r} is not a valid Slack channel name ({error})"
    template = _SENTENCES.get(error, "Slack refused {method} for {destination}: {error}")
    needed = response.get("needed") or "a scope"
    return template.format(method=method, destination=destination, error=error, needed=needed)
