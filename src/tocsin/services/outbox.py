"""The outbox: every outgoing message is a row first, sent later by the engine's sender.

Writing the row in the same transaction as the decision to send (a page, a step) means a
message is never lost and never decided twice: the idempotency key makes enqueue a no-op the
second time. Senders claim due rows for a lease; a sender killed mid-send leaves its rows
claimed until the lease runs out, and then any sender takes them again with the same key.
Messages are therefore sent at least once, and the key lets receivers drop the repeats.

The caller owns the transaction, as everywhere: nothing here commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, func, insert, or_, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tocsin.core.actors import SYSTEM
from tocsin.services import timeline
from tocsin.storage.oncall_tables import NotificationLogRow, OutboxRow, PageRow
from tocsin.storage.tables import IncidentRow

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
PAGE = "page"
# last_error keeps the start of an error; receivers can answer with whole HTML pages.
ERROR_CHARS = 1000
CHANNEL_NAMES = {
    "email": "Email", "webhook": "Webhook", "slack": "Slack", "teams": "Microsoft Teams",
    "mattermost": "Mattermost", "sms": "SMS", "voice": "Voice call", "ntfy": "ntfy",
}  # fmt: skip


def enqueue(
    session: Session,
    *,
    key: str,
    kind: str,
    channel: str,
    destination: str,
    title: str,
    body: str,
    payload: Mapping[str, Any],
    now: datetime,
    user_id: str | None = None,
    contact_method_id: str | None = None,
    subject_type: str | None = None,
    subject_id: int | None = None,
    escalation_id: int | None = None,
    page_id: int | None = None,
) -> int | None:
    """Queue a message, due now; return its id, or None when the key was queued before.

    INSERT … ON CONFLICT DO NOTHING: concurrent writers of one key on PostgreSQL neither fail
    nor insert twice, and the transaction stays usable (no IntegrityError to recover from).
    """
    values = {
        "idempotency_key": key,
        "kind": kind,
        "channel": channel,
        "destination": destination,
        "contact_method_id": contact_method_id,
        "user_id": user_id,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "escalation_id": escalation_id,
        "page_id": page_id,
        "title": title[:1024],
        "body": body,
        "payload": dict(payload),
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    dialect = postgresql if _is_postgres(session) else sqlite
    statement = (
        dialect.insert(OutboxRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[OutboxRow.idempotency_key])
        .returning(OutboxRow.id)
    )
    return session.execute(statement).scalar_one_or_none()


def enqueue_many(
    session: Session, messages: Sequence[Mapping[str, Any]], *, ids: bool = True
) -> dict[str, int]:
    """Queue several messages in one statement; return the ids of the new ones by key.

    Each mapping has enqueue()'s keyword arguments; keys queued before are skipped. With
    ids=False nothing is returned ({}), and thousands of messages go in much faster: a plain
    executemany, which psycopg pipelines, instead of multi-row INSERT … RETURNING statements
    too long for its statement cache.
    """
    if not messages:
        return {}
    rows = [
        {
            "idempotency_key": m["key"],
            "kind": m["kind"],
            "channel": m["channel"],
            "destination": m["destination"],
            "contact_method_id": m.get("contact_method_id"),
            "user_id": m.get("user_id"),
            "subject_type": m.get("subject_type"),
            "subject_id": m.get("subject_id"),
            "escalation_id": m.get("escalation_id"),
            "page_id": m.get("page_id"),
            "title": m["title"][:1024],
            "body": m["body"],
            "payload": dict(m["payload"]),
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": m["now"],
            "created_at": m["now"],
        }
        for m in messages
    ]
    dialect = postgresql if _is_postgres(session) else sqlite
    if not ids:
        insert_new = dialect.insert(OutboxRow).on_conflict_do_nothing(
            index_elements=[OutboxRow.idempotency_key]
        )
        session.execute(insert_new, rows)
        return {}
    # One statement with the rows as executemany parameters: SQLAlchemy sends them as
    # multi-row INSERTs ("insertmanyvalues", in batches under the drivers' limits) and
    # compiles the statement once, where .values(rows) would compile thousands of
    # parameters anew for every batch size.
    statement = (
        dialect.insert(OutboxRow)
        .on_conflict_do_nothing(index_elements=[OutboxRow.idempotency_key])
        .returning(OutboxRow.idempotency_key, OutboxRow.id)
    )
    return dict(session.execute(statement, rows).all())


def claim(
    session: Session, now: datetime, *, owner: str, limit: int, lease: timedelta
) -> list[OutboxRow]:
    """Take up to `limit` due messages for `lease`, pages first, oldest due first, and count
    the attempt.

    Pages go first: a person being paged must not wait behind a burst of outgoing webhooks
    or stakeholder updates queued before it (10,000 of them take seconds to send).

    On PostgreSQL the rows are locked with SKIP LOCKED, so concurrent claimers split the due
    messages between them instead of queueing or taking the same ones. On SQLite the write
    transaction (BEGIN IMMEDIATE) already serialises claimers.

    The attempt is counted here, not after sending: a message that kills its sender every
    time still runs out of attempts.
    """
    rows = _due(session, now, limit, OutboxRow.kind == PAGE)
    if len(rows) < limit:
        rows += _due(session, now, limit - len(rows), OutboxRow.kind != PAGE)
    for row in rows:
        row.claimed_until = now + lease
        row.claimed_by = owner
        row.attempts += 1
    session.flush()
    return rows


def _due(session: Session, now: datetime, limit: int, which: Any) -> list[OutboxRow]:
    statement = (
        select(OutboxRow)
        .where(
            OutboxRow.status == PENDING,
            which,
            OutboxRow.next_attempt_at <= now,
            or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until <= now),
        )
        .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
        .limit(limit)
    )
    if _is_postgres(session):
        statement = statement.with_for_update(skip_locked=True)
    return list(session.scalars(statement))


def _next_due_statement() -> Select[Any]:
    claimed_later = OutboxRow.claimed_until > OutboxRow.next_attempt_at
    free = select(func.min(OutboxRow.next_attempt_at).label("due")).where(
        OutboxRow.status == PENDING,
        or_(OutboxRow.claimed_until.is_(None), ~claimed_later),
    )
    leased = select(func.min(OutboxRow.claimed_until).label("due")).where(
        OutboxRow.status == PENDING, OutboxRow.claimed_until.is_not(None), claimed_later
    )
    each = union_all(free, leased).subquery()
    return select(func.min(each.c.due))


# Built once: the sender asks on every run (dozens a second under load), and building the
# union and its subquery cost more than running it.
_NEXT_DUE = _next_due_statement()


def next_due(session: Session) -> datetime | None:
    """Return when the next pending message falls due (a claimed one: when its lease ends).

    Two index walks instead of one min() over an expression of every pending row: during a
    burst of 10,000 queued webhooks the sender asks this twice a run.
    """
    return _aware(session.scalar(_NEXT_DUE))


def mark_sent(
    session: Session, outbox_id: int, now: datetime, *, provider_id: str | None = None
) -> bool:
    """Record that a message went out; False if it was already finished (nothing written)."""
    return mark_sent_many(session, [Sent(outbox_id, provider_id)], now) == 1


# What a log line needs of a message (RETURNING these, not the payload, is cheaper).
_LOGGED = (
    OutboxRow.id,
    OutboxRow.kind,
    OutboxRow.channel,
    OutboxRow.destination,
    OutboxRow.user_id,
    OutboxRow.subject_type,
    OutboxRow.subject_id,
    OutboxRow.escalation_id,
    OutboxRow.attempts,
)


@dataclass(frozen=True, slots=True)
class Sent:
    """A message that went out: its id, the provider's id, the messages bundled into it."""

    outbox_id: int
    provider_id: str | None = None
    bundled: Sequence[int] = ()


def mark_sent_many(session: Session, sent: Sequence[Sent], now: datetime) -> int:
    """Record many sent messages (and those bundled into them) with a few statements.

    The same records as mark_sent() and mark_bundled(), for the sender's hot path: one
    UPDATE … RETURNING for the messages, one INSERT for their log lines. Messages already
    finished are left alone; returns how many were recorded.
    """
    into = {member: s.outbox_id for s in sent for member in s.bundled}
    ids = [s.outbox_id for s in sent] + list(into)
    if not ids:
        return 0
    by_id = {s.outbox_id: s for s in sent}
    statement = (
        update(OutboxRow)
        .where(OutboxRow.id.in_(ids), OutboxRow.status == PENDING)
        .values(status=SENT, sent_at=now, claimed_until=None, last_error=None)
        .returning(*_LOGGED)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(statement).all()
    logs = []
    for row in rows:
        if row.id in into:
            kind, text = "message_bundled", f"{_what(row)} sent, bundled into #{into[row.id]}."
            detail: dict[str, Any] = {"bundled_into": into[row.id]}
        else:
            done = by_id[row.id]
            kind, text, detail = "message_sent", f"{_what(row)} sent.", {}
            if done.provider_id:
                detail["provider_id"] = done.provider_id
            if done.bundled:
                detail["bundled"] = list(done.bundled)
                text = (
                    f"{_what(row)} sent, with {len(done.bundled)} more message(s) bundled into it."
                )
        entry = _log_entry(row, now, kind, text, detail)
        if entry is not None:
            logs.append(entry)
    if logs:
        session.execute(insert(NotificationLogRow), logs)
    return len(rows)


def hold(session: Session, row: OutboxRow, now: datetime, *, until: datetime, why: str) -> None:
    """Hand a claimed message back until `until` (a throttle); the attempt does not count."""
    row.next_attempt_at = until
    row.claimed_until = None
    row.claimed_by = None
    row.attempts = max(0, row.attempts - 1)
    wait = max(0, round((until - now).total_seconds()))
    text = f"{_what(row)} held back by the {row.channel} throttle ({why}) for {wait} s."
    _log(session, row, now, "message_throttled", text, {"until": until.isoformat()})


def mark_retry(
    session: Session, outbox_id: int, now: datetime, *, error: str, next_attempt_at: datetime
) -> bool:
    """Record a failed attempt to be tried again at `next_attempt_at`."""
    row = _pending(session, outbox_id)
    if row is None:
        return False
    row.next_attempt_at = next_attempt_at
    row.claimed_until = None
    row.last_error = error[:ERROR_CHARS]
    wait = max(0, round((next_attempt_at - now).total_seconds()))
    text = f"{_what(row)} failed (attempt {row.attempts}); trying again in {wait} s: {error}"
    detail = {"error": row.last_error, "next_attempt_at": next_attempt_at.isoformat()}
    _log(session, row, now, "message_retry", text, detail)
    return True


def mark_failed(session: Session, outbox_id: int, now: datetime, *, error: str) -> OutboxRow | None:
    """Record that a message will never be sent; return it (None if already finished)."""
    row = _pending(session, outbox_id)
    if row is None:
        return None
    row.status = FAILED
    row.claimed_until = None
    row.last_error = error[:ERROR_CHARS]
    text = f"{_what(row)} could not be sent after {row.attempts} attempt(s): {error}"
    _log(session, row, now, "message_failed", text, {"error": row.last_error})
    _on_the_incident(session, row, now)
    return row


def _on_the_incident(session: Session, row: OutboxRow, now: datetime) -> None:
    """Put a message that failed for good on its incident's timeline, where people look."""
    if row.subject_type != "incident" or row.subject_id is None:
        return
    if session.get(IncidentRow, row.subject_id) is None:
        return
    # Imported here: oncall_queries reads the outbox through this module.
    from tocsin.services.oncall_queries import mask_destination

    # The timeline is for every reader: addresses are masked as in the paging panel.
    shown = mask_destination(row.channel, row.destination)
    error = (row.last_error or "").replace(row.destination, shown)
    channel = CHANNEL_NAMES.get(row.channel, row.channel.capitalize())
    who = f" for {row.user_id}" if row.user_id else ""
    text = (
        f"{channel} {row.kind} to {shown}{who} could not be delivered "
        f"after {row.attempts} attempt(s): {error}"
    )
    data = {
        "outbox_id": row.id,
        "channel": row.channel,
        "destination": shown,
        "kind": row.kind,
        "user": row.user_id,
        "attempts": row.attempts,
        "error": error,
    }
    timeline.record(session, row.subject_id, SYSTEM, now, "delivery_failed", text, data)


def hurry_page(session: Session, page_id: int, now: datetime) -> bool:
    """Make an active page's next notification rule due now (a message to it failed).

    A person whose webhook is broken then gets the email of their next rule at once instead
    of after the rule's delay. Returns whether the page moved.
    """
    result = session.execute(
        update(PageRow)
        .where(PageRow.id == page_id, PageRow.status == "active", PageRow.next_at > now)
        .values(next_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def message_log(session: Session, subject_type: str, subject_id: int) -> list[OutboxRow]:
    """Return the messages sent (or being sent) about a subject, oldest first."""
    return list(
        session.scalars(
            select(OutboxRow)
            .where(OutboxRow.subject_type == subject_type, OutboxRow.subject_id == subject_id)
            .order_by(OutboxRow.id)
        )
    )


def _pending(session: Session, outbox_id: int) -> OutboxRow | None:
    statement = select(OutboxRow).where(OutboxRow.id == outbox_id, OutboxRow.status == PENDING)
    if _is_postgres(session):
        statement = statement.with_for_update()
    return session.scalars(statement).one_or_none()


def _log(
    session: Session,
    row: OutboxRow,
    now: datetime,
    kind: str,
    text: str,
    extra: Mapping[str, Any],
) -> None:
    entry = _log_entry(row, now, kind, text, extra)
    if entry is not None:
        session.add(NotificationLogRow(**entry))


def _log_entry(
    row: Any, now: datetime, kind: str, text: str, extra: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Return the notification log line of a message (None: it has no subject to log on)."""
    if row.subject_type is None or row.subject_id is None:
        return None
    detail = {
        "channel": row.channel,
        "destination": row.destination,
        "attempt": row.attempts,
        "message_kind": row.kind,
        **extra,
    }
    return {
        "at": now,
        "subject_type": row.subject_type,
        "subject_id": row.subject_id,
        "escalation_id": row.escalation_id,
        "kind": kind,
        "user_id": row.user_id,
        "outbox_id": row.id,
        "text": text,
        "detail": detail,
    }


def _what(row: Any) -> str:
    """Return "Email to ann@example.com" / "Webhook to hooks.example.com" for log lines."""
    channel = CHANNEL_NAMES.get(row.channel, row.channel.capitalize())
    destination = row.destination
    if row.channel == "webhook":
        # Webhook URLs often carry a secret in the path or query; the sentence shows the host.
        destination = urlsplit(destination).hostname or "?"
    who = f" ({row.user_id})" if row.user_id else ""
    return f"{channel} to {destination}{who}"


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _aware(value: Any) -> datetime | None:
    # min() over a TypeDecorator column comes back raw on some backends (a string on SQLite).
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
