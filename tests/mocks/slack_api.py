"""A local Slack Web API: the methods Tocsin calls, with Slack's answers and errors.

    with SlackApiMock() as slack:
        slack.add_user("U0ALICE", "alice@example.test")
        channel = slack_channel(slack.settings())
        slack.fail("chat.postMessage", 429, {"ok": False, "error": "ratelimited"},
                   headers={"Retry-After": "30"})

Like Slack it answers HTTP 200 with {"ok": false, "error": …} for refusals and 429 for rate
limits; requests without the right bot token get `invalid_auth`. Channels, members, messages
and pins are kept, so tests can look at what a workspace would show.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from tests.mocks.server import MockServer, Request

TOKEN = "xoxb-test-token"
_NAME = re.compile(r"[a-z0-9_-]{1,80}")


@dataclass
class Channel:
    id: str
    name: str
    is_member: bool = True
    is_archived: bool = False
    is_private: bool = False
    topic: str = ""
    members: set[str] = field(default_factory=set)

    def listed(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": True,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_member": self.is_member,
            "topic": {"value": self.topic},
        }


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    pinned: bool = False


def _ok(**fields: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    return 200, {"ok": True, **fields}, {}


def _no(error: str, **fields: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    return 200, {"ok": False, "error": error, **fields}, {}


class SlackApiMock(MockServer):
    """Serve /api/<method> as Slack does, for one bot token."""

    thread_name = "slack-api-mock"

    def __init__(self, token: str = TOKEN, *, page_size: int = 100) -> None:
        super().__init__()
        self.token = token
        self.page_size = page_size
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.messages: list[Message] = []
        self._ids = itertools.count(1)
        self._ts = itertools.count(1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Return `channels.slack` settings that reach this mock."""
        return {"token": self.token, "api_url": self.url, "timeout": 5, **overrides}

    # --- the workspace ---

    def add_user(self, member: str, email: str, name: str = "") -> None:
        with self.lock:
            self.users[member] = {"id": member, "name": name or member.lower(),
                                  "profile": {"email": email}}  # fmt: skip

    def add_channel(self, name: str, **flags: Any) -> str:
        with self.lock:
            channel = Channel(f"C{next(self._ids):08d}", name, **flags)
            self.channels[channel.id] = channel
            return channel.id

    def channel_named(self, name: str) -> Channel | None:
        with self.lock:
            return next((c for c in self.channels.values() if c.name == name), None)

    def messages_in(self, channel_id: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.channel == channel_id]

    # --- serving ---

    def method_of(self, request: Request) -> str:
        return request.path.rsplit("/", 1)[-1]

    def route(self, method: str, request: Request) -> tuple[int, Any, dict[str, str]]:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _no("invalid_auth")
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return _no("unknown_method")
        result: tuple[int, Any, dict[str, str]] = handler(request.args)
        return result

    def _channel(self, ref: str) -> Channel | None:
        if ref in self.channels:
            return self.channels[ref]
        name = ref.lstrip("#")
        return next((c for c in self.channels.values() if c.name == name), None)

    def _auth_test(self, args: dict[str, Any]) -> Any:
        return _ok(user_id="UTOCSINBOT", team="Tocsin Test", url="https://tocsin.slack.test/")

    def _conversations_create(self, args: dict[str, Any]) -> Any:
        name = str(args.get("name") or "")
        if not _NAME.fullmatch(name):
            return _no("invalid_name_specials")
        if any(c.name == name for c in self.channels.values()):
            return _no("name_taken")
        private = str(args.get("is_private", "")).lower() in ("1", "true")
        channel = Channel(f"C{next(self._ids):08d}", name, is_private=private)
        self.channels[channel.id] = channel
        return _ok(channel=channel.listed())

    def _conversations_list(self, args: dict[str, Any]) -> Any:
        skip_archived = str(args.get("exclude_archived", "")).lower() in ("1", "true")
        listed = [
            c.listed()
            for c in self.channels.values()
            if not (skip_archived and c.is_archived) and (not c.is_private or c.is_member)
        ]
        start = int(args.get("cursor") or 0)
        end = start + min(int(args.get("limit") or 100), self.page_size)
        cursor = str(end) if end < len(listed) else ""
        return _ok(channels=listed[start:end], response_metadata={"next_cursor": cursor})

    def _conversations_join(self, args: dict[str, Any]) -> Any:
        channel = self._channel(str(args.get("channel") or ""))
        if channel is None:
            return _no("channel_not_found")
        if channel.is_archived:
            return _no("is_archived")
        if channel.is_private and not channel.is_member:
            return _no("method_not_supported_for_channel_type")
        channel.is_member = True
        return _ok(channel=channel.listed())

    def _conversations_invite(self, args: dict[str, Any]) -> Any:
        channel = self._channel(str(args.get("channel") or ""))
        if channel is None:
            return _no("channel_not_found")
        if not channel.is_member:
            return _no("not_in_channel")
        users = [u for u in str(args.get("users") or "").split(",") if u]
        unknown = [u for u in users if u not in self.users]
        force = str(args.get("force", "")).lower() in ("1", "true")
        if unknown and not force:
            return _no("user_not_found")
        known = [u for u in users if u in self.users]
        if known and all(u in channel.members for u in known):
            return _no("already_in_channel")
        if not known:
            return _no("user_not_found")
        channel.members.update(known)
        return _ok(channel=channel.listed())

    def _conversations_setTopic(self, args: dict[str, Any]) -> Any:  # noqa: N802
        channel = self._channel(str(args.get("channel") or ""))
        if channel is None:
            return _no("channel_not_found")
        if not channel.is_member:
            return _no("not_in_channel")
        channel.topic = str(args.get("topic") or "")
        return _ok(channel=channel.listed())

    def _chat_postMessage(self, args: dict[str, Any]) -> Any:  # noqa: N802
        ref = str(args.get("channel") or "")
        if ref in self.users:
            channel_id = "D" + ref[1:]  # a direct message with the member
        else:
            channel = self._channel(ref)
            if channel is None:
                return _no("channel_not_found")
            if channel.is_archived:
                return _no("is_archived")
            if not channel.is_member:
                return _no("not_in_channel")
            channel_id = channel.id
        text = str(args.get("text") or "")
        if len(text) > 40000:
            return _no("msg_too_long")
        ts = f"1700000000.{next(self._ts):06d}"
        blocks = args.get("blocks") or []
        self.messages.append(Message(channel_id, ts, text, list(blocks)))
        return _ok(channel=channel_id, ts=ts, message={"text": text, "ts": ts})

    def _pins_add(self, args: dict[str, Any]) -> Any:
        ref, ts = str(args.get("channel") or ""), str(args.get("timestamp") or "")
        found = next((m for m in self.messages if m.channel == ref and m.ts == ts), None)
        if found is None:
            return _no("message_not_found")
        if found.pinned:
            return _no("already_pinned")
        found.pinned = True
        return _ok()

    def _users_lookupByEmail(self, args: dict[str, Any]) -> Any:  # noqa: N802
        email = str(args.get("email") or "").lower()
        user = next((u for u in self.users.values() if u["profile"]["email"] == email), None)
        return _ok(user=user) if user else _no("users_not_found")

    def _users_info(self, args: dict[str, Any]) -> Any:
        user = self.users.get(str(args.get("user") or ""))
        return _ok(user=user) if user else _no("user_not_found")
