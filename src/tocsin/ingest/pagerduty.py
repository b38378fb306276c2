"""PagerDuty Events API v2: alert events (/v2/enqueue) and change events (/v2/change/enqueue).

Errors mirror PagerDuty's own 400 body ("Event object is invalid" plus one line per problem),
so clients written against PagerDuty show their users something familiar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from tocsin.core.alerts import SOURCE_SEVERITIES, Action, ChangeEvent, Image, Link, Signal
from tocsin.ingest.errors import PayloadError
from tocsin.ingest.fields import (
    MAX_DEDUP_KEY,
    MAX_NAME,
    MAX_TITLE,
    Problems,
    clean,
    clip,
    finite_number,
    parse_time,
    safe_href,
)

INVALID = "Event object is invalid"
_ACTIONS = {action.value: action for action in Action}


def parse_event(body: object, *, new_key: Callable[[], str]) -> Signal:
    """Parse an Events API v2 event; a trigger without a dedup_key gets `new_key()`."""
    problems = Problems()
    root = _root(body)
    _text(root, "routing_key", problems, required=True)
    action = _action(root, problems)
    dedup_key = _text(root, "dedup_key", problems, limit=MAX_DEDUP_KEY)
    if action in (Action.ACKNOWLEDGE, Action.RESOLVE) and dedup_key is None:
        problems.add("", f"'dedup_key' is missing or blank (required to {action.value})")
    signal = Signal(action=action or Action.TRIGGER, dedup_key=dedup_key or "", title="")
    if action is Action.TRIGGER:
        # PagerDuty ignores the payload of acknowledge and resolve events; so do we.
        signal = _trigger(root, dedup_key, problems)
    problems.raise_if_any(INVALID)
    if not signal.dedup_key:
        signal = dataclasses.replace(signal, dedup_key=new_key())
    return signal


def parse_change(body: object) -> ChangeEvent:
    """Parse a change event: a deploy or config change, shown on the service, never paging."""
    problems = Problems()
    root = _root(body)
    _text(root, "routing_key", problems, required=True)
    payload, members = _payload(root, problems)
    summary = _text(payload, "summary", members, required=True, limit=MAX_TITLE, at="payload")
    source = _text(payload, "source", members, limit=MAX_NAME, at="payload")
    timestamp = _timestamp(payload, members)
    details = payload.get("custom_details")
    if details is not None and not isinstance(details, Mapping):
        members.add("", "'payload.custom_details' is invalid (must be an object)")
        details = None
    links = _links(root, problems)
    problems.raise_if_any(INVALID)
    return ChangeEvent(
        summary=summary or "",
        source=source,
        timestamp=timestamp,
        links=links,
        custom_details=dict(details or {}),
    )


def _trigger(root: Mapping[str, Any], dedup_key: str | None, problems: Problems) -> Signal:
    payload, members = _payload(root, problems)
    summary = _text(payload, "summary", members, required=True, limit=MAX_TITLE, at="payload")
    source = _text(payload, "source", members, required=True, limit=MAX_NAME, at="payload")
    severity = _text(payload, "severity", members, required=True, at="payload")
    if severity is not None and severity not in SOURCE_SEVERITIES:
        members.add(
            "",
            "'payload.severity' is invalid (must be one of " + ", ".join(SOURCE_SEVERITIES) + ")",
        )
    client_url = safe_href(_text(root, "client_url", problems))
    client = _text(root, "client", problems)
    links = _links(root, problems)
    if client_url:
        links = (Link(client_url, client or ""), *links)
    return Signal(
        action=Action.TRIGGER,
        dedup_key=dedup_key or "",
        title=summary or "",
        severity=severity,
        source=source,
        details=_details(payload.get("custom_details")),
        links=links,
        images=_images(root, problems),
        component=clip(_text(payload, "component", members, at="payload"), MAX_NAME),
        group=clip(_text(payload, "group", members, at="payload"), MAX_NAME),
        class_=clip(_text(payload, "class", members, at="payload"), MAX_NAME),
        starts_at=_timestamp(payload, members),
    )


def _root(body: object) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    raise PayloadError(INVALID, ["Event must be a JSON object"])


def _action(root: Mapping[str, Any], problems: Problems) -> Action | None:
    value = root.get("event_action")
    if value is None or value == "":
        problems.add("", "'event_action' is missing or blank")
        return None
    action = _ACTIONS.get(value) if isinstance(value, str) else None
    if action is None:
        problems.add("", "'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    return action


def _payload(root: Mapping[str, Any], problems: Problems) -> tuple[Mapping[str, Any], Problems]:
    """Return the payload and where its members' problems go.

    A missing payload is one problem, not one more for each member it lacks, so then the
    members are read from nothing into a list nobody reads.
    """
    value = root.get("payload")
    if isinstance(value, Mapping):
        return value, problems
    if value is None:
        problems.add("", "'payload' is missing or blank")
    else:
        problems.add("", "'payload' is invalid (must be an object)")
    return {}, Problems()


def _text(
    obj: Mapping[str, Any],
    key: str,
    problems: Problems,
    *,
    required: bool = False,
    limit: int | None = None,
    at: str = "",
) -> str | None:
    """Read a string member the way PagerDuty does: blank counts as missing."""
    name = f"{at}.{key}" if at else key
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.add("", f"'{name}' is missing or blank")
        return None
    if not isinstance(value, str):
        problems.add("", f"'{name}' is invalid (must be a string)")
        return None
    if limit is not None and len(value) > limit:
        problems.add("", f"'{name}' is too long (max {limit} characters)")
        return None
    return clean(value)


def _timestamp(payload: Mapping[str, Any], problems: Problems) -> datetime | None:
    text = _text(payload, "timestamp", problems, at="payload")
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        problems.add("", "'payload.timestamp' is invalid (must be an ISO 8601 timestamp)")
        return None


def _details(custom: object) -> dict[str, Any]:
    """Keep custom_details whole, and copy its top-level scalars up so routes can match them."""
    if custom is None:
        return {}
    details: dict[str, Any] = {}
    if isinstance(custom, Mapping):
        for key, value in custom.items():
            if isinstance(key, str) and _is_matchable(value):
                details[clean(key)] = clean(value) if isinstance(value, str) else value
    details["custom_details"] = custom
    return details


def _is_matchable(value: object) -> bool:
    # Integers too large for a float would break numeric route comparisons, so stay nested.
    if isinstance(value, str | bool):
        return True
    return finite_number(value) is not None


def _links(root: Mapping[str, Any], problems: Problems) -> tuple[Link, ...]:
    links = []
    for index, item in enumerate(_list(root, "links", problems)):
        at = f"links[{index}]"
        if not isinstance(item, Mapping):
            problems.add("", f"'{at}' is invalid (must be an object)")
            continue
        href = safe_href(_text(item, "href", problems, required=True, at=at))
        text = _text(item, "text", problems, at=at)
        if href:
            links.append(Link(href, text or ""))
    return tuple(links)


def _images(root: Mapping[str, Any], problems: Problems) -> tuple[Image, ...]:
    images = []
    for index, item in enumerate(_list(root, "images", problems)):
        at = f"images[{index}]"
        if not isinstance(item, Mapping):
            problems.add("", f"'{at}' is invalid (must be an object)")
            continue
        src = safe_href(_text(item, "src", problems, required=True, at=at))
        href = safe_href(_text(item, "href", problems, at=at))
        alt = _text(item, "alt", problems, at=at)
        if src:
            images.append(Image(src, href or "", alt or ""))
    return tuple(images)


def _list(root: Mapping[str, Any], key: str, problems: Problems) -> list[Any]:
    value = root.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    problems.add("", f"'{key}' is invalid (must be a list)")
    return []
