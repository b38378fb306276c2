"""What Tocsin puts into Slack and reads back from it: the payload["slack"] contract, message
blocks with acknowledge / resolve buttons, button values, and channel names.

Shared by the channel (notify/slack.py) and the interactivity endpoint (api/slack.py), so the
buttons one writes are the buttons the other understands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tocsin.notify.base import DeliveryError

ACTIONS = ("acknowledge", "resolve")
SUBJECT_TYPES = ("incident", "alert_group")
ACTION_PREFIX = "tocsin:"
# Slack's limits: section text 3,000 characters, header 150, message text 40,000.
SECTION_CHARS = 3000
HEADER_CHARS = 150
TEXT_CHARS = 40000
CHANNEL_NAME_CHARS = 80
# Channel, group, DM and member ids are upper case; channel names never are.
SLACK_ID = re.compile(r"[CGDUW][A-Z0-9]{2,}")
MEMBER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_NOT_IN_NAME = re.compile(r"[^a-z0-9_-]+")
_LABELS = {"acknowledge": "Acknowledge", "resolve": "Resolve"}


@dataclass(frozen=True, slots=True)
class SlackAction:
    """One button: an action on one incident or alert group."""

    action: str
    subject_type: str
    subject_id: int

    @property
    def action_id(self) -> str:
        return f"{ACTION_PREFIX}{self.action}"

    @property
    def value(self) -> str:
        return f"{self.subject_type}:{self.subject_id}"


@dataclass(frozen=True, slots=True)
class SlackOptions:
    """payload["slack"] of one message (every key optional)."""

    ensure_channel: bool = False
    topic: str | None = None
    invite_ids: tuple[str, ...] = ()
    invite_emails: tuple[str, ...] = ()
    pin: bool = False
    actions: tuple[SlackAction, ...] = ()

    @property
    def needs_channel_id(self) -> bool:
        """Whether a step before posting needs the channel's id, not only its name."""
        return self.ensure_channel or self.topic is not None or self.invites

    @property
    def invites(self) -> bool:
        return bool(self.invite_ids or self.invite_emails)


def _bad(detail: str) -> DeliveryError:
    # A malformed payload is a bug in whoever queued it; retrying cannot fix it.
    return DeliveryError(f"bad payload['slack']: {detail}", retryable=False)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _bad(f"{where} must be a list of strings")
    if not all(isinstance(item, str) for item in value):
        raise _bad(f"{where} must be a list of strings")
    return tuple(item.strip() for item in value if item.strip())


def read_action(raw: Any) -> SlackAction:
    """Return one entry of payload["slack"]["actions"]; DeliveryError if it is malformed."""
    if not isinstance(raw, Mapping):
        raise _bad("each action must be {action, subject_type, subject_id}")
    action, kind, subject_id = raw.get("action"), raw.get("subject_type"), raw.get("subject_id")
    if action not in ACTIONS:
        raise _bad(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if kind not in SUBJECT_TYPES:
        raise _bad(f"subject_type must be one of {', '.join(SUBJECT_TYPES)}, not {kind!r}")
    if not isinstance(subject_id, int) or isinstance(subject_id, bool) or subject_id < 1:
        raise _bad(f"subject_id must be a positive integer, not {subject_id!r}")
    return SlackAction(str(action), str(kind), subject_id)


def read_options(payload: Mapping[str, Any]) -> SlackOptions:
    """Return the Slack options of a message's payload; DeliveryError when malformed."""
    raw = payload.get("slack")
    if raw is None:
        return SlackOptions()
    if not isinstance(raw, Mapping):
        raise _bad("must be an object")
    topic = raw.get("topic")
    if topic is not None and not isinstance(topic, str):
        raise _bad("topic must be text")
    invite = raw.get("invite") or {}
    if not isinstance(invite, Mapping):
        raise _bad("invite must be {user_ids: [...], emails: [...]}")
    actions = raw.get("actions") or []
    if not isinstance(actions, Sequence) or isinstance(actions, str):
        raise _bad("actions must be a list")
    return SlackOptions(
        ensure_channel=bool(raw.get("ensure_channel", False)),
        topic=topic,
        invite_ids=_strings(invite.get("user_ids"), "invite.user_ids"),
        invite_emails=_strings(invite.get("emails"), "invite.emails"),
        pin=bool(raw.get("pin", False)),
        actions=tuple(read_action(item) for item in actions),
    )


def parse_button(action_id: str, value: str) -> SlackAction | None:
    """Return the action a Tocsin button stands for, None for anything else."""
    if not action_id.startswith(ACTION_PREFIX):
        return None
    kind, _, number = value.partition(":")
    if not number.isascii() or not number.isdigit():
        return None
    try:
        return read_action(
            {"action": action_id[len(ACTION_PREFIX) :], "subject_type": kind,
             "subject_id": int(number)}
        )  # fmt: skip
    except DeliveryError:
        return None


def escape(text: str) -> str:
    """Escape the three characters Slack reads as markup (<!channel>, <url|label>, &…)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def channel_name(destination: str) -> str:
    """Return a Slack channel name for "#Incident 2026-11-22 001": lower case, `a-z0-9_-`."""
    name = _NOT_IN_NAME.sub("-", destination.strip().lstrip("#").lower()).strip("-")
    return name[:CHANNEL_NAME_CHARS]


def message_text(title: str, body: str) -> str:
    """Return the notification text (also what clients without blocks show)."""
    title, body = escape(title.strip()), escape(body.strip())
    text = f"*{title}*\n{body}" if title and body else f"*{title}*" if title else body
    return text[:TEXT_CHARS]


def blocks(title: str, body: str, actions: Sequence[SlackAction]) -> list[dict[str, Any]]:
    """Return the message's blocks: a header, the text, and one row of buttons per subject."""
    out: list[dict[str, Any]] = []
    if title.strip():
        header = title.strip()[:HEADER_CHARS]
        out.append({"type": "header", "text": {"type": "plain_text", "text": header}})
    if body.strip():
        section = escape(body.strip())[:SECTION_CHARS]
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": section}})
    # action_id must be unique within a block, so each subject gets its own row.
    subjects: dict[tuple[str, int], list[SlackAction]] = {}
    for action in actions:
        subjects.setdefault((action.subject_type, action.subject_id), []).append(action)
    for (kind, subject_id), row in subjects.items():
        elements = [_button(action) for action in dict.fromkeys(row)]
        out.append(
            {"type": "actions", "block_id": f"tocsin:{kind}:{subject_id}", "elements": elements}
        )
    return out


def _button(action: SlackAction) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": _LABELS[action.action]},
        "action_id": action.action_id,
        "value": action.value,
    }
    if action.action == "acknowledge":
        button["style"] = "primary"
    else:
        # Resolving cannot be undone: Slack asks before sending the click.
        button["style"] = "danger"
        button["confirm"] = {
            "title": {"type": "plain_text", "text": "Resolve?"},
            "text": {"type": "plain_text", "text": "This stops all paging and ends it."},
            "confirm": {"type": "plain_text", "text": "Resolve"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return button
