"""People's own contact methods (added unverified, verified by a code sent to them) and their
notification rules.

A method a person adds is used for pages only once verified: whoever types an address could
otherwise page a stranger, or think they are reachable when a typo says otherwise. The code
goes out through the outbox like any message; only an HMAC of it is kept, for 15 minutes and
5 tries. Methods declared in the configuration are trusted as they are and removed only there.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tocsin.core.actors import Actor, Scope
from tocsin.core.durations import parse_duration
from tocsin.core.errors import DomainError, Forbidden, InvalidInput, NotFound
from tocsin.services import outbox
from tocsin.storage.oncall_tables import ContactMethodRow, NotificationRuleRow, OutboxRow
from tocsin.storage.tables import UserRow

TYPES = ("email", "webhook", "sms", "voice", "slack", "ntfy")
# The field that holds a method's target, per type, in the config file, API and CLI.
TARGET_FIELDS = {
    "email": "address",
    "webhook": "url",
    "sms": "number",
    "voice": "number",
    "slack": "member",
    "ntfy": "topic",
}
URGENCIES = ("high", "low")
CODE_TTL = timedelta(minutes=15)
MAX_ATTEMPTS = 5
RESEND_EVERY = timedelta(minutes=1)
MAX_RULES = 20
MAX_RULE_DELAY = timedelta(days=1)
MAX_METHODS = 20
VERIFICATION = "verification"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_SLACK_MEMBER = re.compile(r"[UW][A-Z0-9]{2,}")
_NTFY_TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")
# Types whose target only has to match a pattern: (pattern, what it must be, field name).
_PATTERNS: dict[str, tuple[re.Pattern[str], str, str]] = {
    "slack": (
        _SLACK_MEMBER,
        "a Slack member id (such as U024BE7LH; in Slack: your profile, ⋮, Copy member ID)",
        "member",
    ),
    "ntfy": (
        _NTFY_TOPIC,
        "an ntfy topic (letters, digits, - and _, at most 64) or topic URL",
        "topic",
    ),
}


class Conflict(DomainError):
    """The request clashes with how the object is kept (declared in the configuration …)."""


class TooManyAttempts(DomainError):
    """Too many tries or codes in a short time; `retry_after` seconds until the next may."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Rule:
    after: timedelta
    via: str


def owner(session: Session, actor: Actor, user_id: str) -> UserRow:
    """Return the user whose methods are asked for: oneself, or anyone for an admin.

    "me" names the actor's own user (tokens bound to a user, web sessions).
    """
    if user_id == "me":
        if actor.user_id is None:
            raise InvalidInput(
                "this token is not bound to a user; name the user instead of 'me'", field="user"
            )
        user_id = actor.user_id
    if actor.user_id != user_id and not actor.can(Scope.ADMIN):
        raise Forbidden("only the user themselves or an admin may see or change this")
    user = session.get(UserRow, user_id)
    if user is None or user.archived:
        raise NotFound(f"user {user_id!r} not found")
    return user


def methods(session: Session, user_id: str) -> list[ContactMethodRow]:
    return list(
        session.scalars(
            select(ContactMethodRow)
            .where(ContactMethodRow.user_id == user_id, ContactMethodRow.archived.is_(False))
            .order_by(ContactMethodRow.created_at, ContactMethodRow.id)
        )
    )


def method(session: Session, user_id: str, method_id: str) -> ContactMethodRow:
    row = session.get(ContactMethodRow, method_id)
    if row is None or row.archived or row.user_id != user_id:
        raise NotFound(f"contact method {method_id!r} not found")
    return row


def check_target(kind: str, target: str) -> str:
    """Return a cleaned target (address, URL, number, member id, topic) or raise InvalidInput."""
    target = target.strip()
    if kind == "email":
        if not _EMAIL.fullmatch(target) or len(target) > 320:
            raise InvalidInput(f"{target!r} is not an email address", field="address")
        return target
    if kind == "webhook" or (kind == "ntfy" and "/" in target):
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(target) > 2048:
            raise InvalidInput(f"{target!r} is not an http(s) URL", field=TARGET_FIELDS[kind])
        return target
    if kind in ("sms", "voice"):
        number = "".join(target.split()).replace("-", "")
        if not _E164.fullmatch(number):
            raise InvalidInput(
                f"{target!r} is not a phone number in E.164 form: + country code and number, "
                "such as +14155550100",
                field="number",
            )
        return number
    if kind in _PATTERNS:
        pattern, what, name = _PATTERNS[kind]
        if not pattern.fullmatch(target):
            raise InvalidInput(f"{target!r} is not {what}", field=name)
        return target
    raise InvalidInput(f"unknown contact method type {kind!r}", field="type", valid=TYPES)


def add(
    session: Session,
    user: UserRow,
    *,
    kind: str,
    target: str,
    name: str,
    secret: str,
    now: datetime,
) -> ContactMethodRow:
    """Add an unverified method and send it a verification code."""
    target = check_target(kind, target)
    existing = methods(session, user.id)
    for other in existing:
        if other.type == kind and other.target == target:
            field = TARGET_FIELDS[kind]
            raise InvalidInput(f"{target!r} is already contact method {other.id!r}", field=field)
    if len(existing) >= MAX_METHODS:
        raise InvalidInput(f"a user may have at most {MAX_METHODS} contact methods", field="type")
    row = ContactMethodRow(
        id=_new_id(session, user.id, kind),
        user_id=user.id,
        type=kind,
        target=target,
        name=name.strip(),
        source="user",
        verified_at=None,
        verify_attempts=0,
        created_at=now,
        archived=False,
    )
    session.add(row)
    session.flush()
    _send_code(session, row, secret, now)
    return row


def send_code(session: Session, row: ContactMethodRow, *, secret: str, now: datetime) -> None:
    """Send a fresh code (at most one a minute); earlier codes stop working."""
    if row.verified_at is not None:
        raise Conflict(f"contact method {row.id!r} is already verified")
    last = session.scalar(
        select(OutboxRow.created_at)
        .where(OutboxRow.contact_method_id == row.id, OutboxRow.kind == VERIFICATION)
        .order_by(OutboxRow.id.desc())
        .limit(1)
    )
    if last is not None and last + RESEND_EVERY > now:
        seconds = max(1, math.ceil((last + RESEND_EVERY - now).total_seconds()))
        raise TooManyAttempts(
            f"a code was sent less than a minute ago; try again in {seconds} s", seconds
        )
    _send_code(session, row, secret, now)


def verify(
    session: Session, row: ContactMethodRow, code: str, *, secret: str, now: datetime
) -> str | None:
    """Mark the method verified if `code` is the one last sent, unexpired and within 5 tries.

    A wrong code returns why instead of raising: the attempt it used up must be committed.
    """
    if row.verified_at is not None:
        return None
    if row.verify_code_hash is None or row.verify_expires_at is None:
        raise InvalidInput("no code was sent; request one with send-code", field="code")
    if row.verify_attempts >= MAX_ATTEMPTS:
        raise TooManyAttempts("too many wrong codes; request a new one with send-code")
    if now >= row.verify_expires_at:
        raise InvalidInput("the code has expired; request a new one with send-code", field="code")
    row.verify_attempts += 1
    if not hmac.compare_digest(_hash(secret, row.id, code.strip()), row.verify_code_hash):
        left = MAX_ATTEMPTS - row.verify_attempts
        return f"wrong code; {left} attempt(s) left" if left else "wrong code; no attempts left"
    row.verified_at = now
    row.verify_code_hash = None
    row.verify_expires_at = None
    row.verify_attempts = 0
    return None


def remove(session: Session, row: ContactMethodRow) -> None:
    """Remove a method the user added, and the notification rules that used it."""
    if row.source != "user":
        raise Conflict(
            f"contact method {row.id!r} is declared in the configuration; remove it there"
        )
    session.execute(
        delete(NotificationRuleRow).where(NotificationRuleRow.contact_method_id == row.id)
    )
    # Archived, not deleted: messages already sent keep naming it.
    row.archived = True
    row.verify_code_hash = None
    row.verify_expires_at = None


def _new_id(session: Session, user_id: str, kind: str) -> str:
    while True:
        candidate = f"{user_id[:48]}-{kind}-{secrets.token_hex(3)}"
        if session.get(ContactMethodRow, candidate) is None:
            return candidate


def _hash(secret: str, method_id: str, code: str) -> str:
    message = f"{method_id}:{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _send_code(session: Session, row: ContactMethodRow, secret: str, now: datetime) -> None:
    code = f"{secrets.randbelow(1_000_000):06d}"
    sent = session.scalar(
        select(func.count()).where(
            OutboxRow.contact_method_id == row.id, OutboxRow.kind == VERIFICATION
        )
    )
    row.verify_code_hash = _hash(secret, row.id, code)
    row.verify_expires_at = now + CODE_TTL
    row.verify_attempts = 0
    minutes = int(CODE_TTL.total_seconds() // 60)
    body = (
        f"Your Tocsin verification code is {code}.\n\n"
        f"Enter it within {minutes} minutes to start receiving pages at this address "
        f"(contact method {row.id}). If you did not ask for it, ignore this message."
    )
    outbox.enqueue(
        session,
        key=f"verify-{row.id}-{(sent or 0) + 1}",
        kind=VERIFICATION,
        channel=row.type,
        destination=row.target,
        title="Your Tocsin verification code",
        body=body,
        payload={
            "type": "verification",
            "code": code,
            "contact_method": row.id,
            "user": row.user_id,
            "expires_at": row.verify_expires_at.isoformat(),
        },
        now=now,
        user_id=row.user_id,
        contact_method_id=row.id,
    )


# --- notification rules ---


def rules(session: Session, user_id: str) -> dict[str, list[NotificationRuleRow]]:
    """Return a user's notification rules per urgency, in order."""
    out: dict[str, list[NotificationRuleRow]] = {u: [] for u in URGENCIES}
    for rule in session.scalars(
        select(NotificationRuleRow)
        .where(NotificationRuleRow.user_id == user_id)
        .order_by(NotificationRuleRow.urgency, NotificationRuleRow.position)
    ):
        out.setdefault(rule.urgency, []).append(rule)
    return out


def parse_rules(raw: Mapping[str, Sequence[tuple[str, str]]]) -> dict[str, list[Rule]]:
    """Read {urgency: [(after, via)]} with after like 5m or 0m; InvalidInput names the rule."""
    out: dict[str, list[Rule]] = {}
    for urgency in URGENCIES:
        items = raw.get(urgency, [])
        if len(items) > MAX_RULES:
            raise InvalidInput(f"at most {MAX_RULES} rules per urgency", field=urgency)
        parsed = []
        for i, (after, via) in enumerate(items):
            try:
                delay = parse_duration(after)
            except ValueError as error:
                raise InvalidInput(str(error), field=f"{urgency}[{i}].after") from None
            if delay > MAX_RULE_DELAY:
                raise InvalidInput("a rule waits at most 1d", field=f"{urgency}[{i}].after")
            parsed.append(Rule(delay, via))
        # Rules fire in order of their delay whatever order they were written in.
        out[urgency] = sorted(parsed, key=lambda r: r.after)
    return out


def set_rules(session: Session, user_id: str, wanted: Mapping[str, Sequence[Rule]]) -> None:
    """Replace a user's rules; each must go through one of the user's own contact methods."""
    own = {m.id for m in methods(session, user_id)}
    for urgency, items in wanted.items():
        for i, rule in enumerate(items):
            if rule.via not in own:
                raise InvalidInput(
                    f"{rule.via!r} is not one of {user_id}'s contact methods",
                    field=f"{urgency}[{i}].via",
                    valid=sorted(own),
                )
    session.execute(delete(NotificationRuleRow).where(NotificationRuleRow.user_id == user_id))
    session.flush()
    for urgency, items in wanted.items():
        for position, rule in enumerate(items):
            session.add(
                NotificationRuleRow(
                    user_id=user_id,
                    urgency=urgency,
                    position=position,
                    after_s=int(rule.after.total_seconds()),
                    contact_method_id=rule.via,
                )
            )
    session.flush()


def verified_ids(session: Session, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    return set(
        session.scalars(
            select(ContactMethodRow.id).where(
                ContactMethodRow.id.in_(ids), ContactMethodRow.verified_at.is_not(None)
            )
        )
    )
