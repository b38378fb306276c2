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
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tocsin.storage.oncall_tables import NotificationLogRow, OutboxRow, PageRow

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
# last_error keeps the start of an error; receivers can answer with whole HTML pages.
ERROR_CHARS = 1000
CHANNEL_NAMES = {"email": "Email", "webhook": "Webhook"}


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


def enqueue_many(session: Session, messages: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Queue several messages in one statement; return the ids of the new ones by key.

    Each mapping has enqueue()'s keyword arguments; keys queued before are skipped.
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
    out: dict[str, int] = {}
    # 17 columns a row: 500 rows stay well under SQLite's 32,766 bound parameters.
    for start in range(0, len(rows), 500):
        statement = (
            dialect.insert(OutboxRow)
            .values(rows[start : start + 500])
            .on_conflict_do_nothing(index_elements=[OutboxRow.idempotency_key])
            .returning(OutboxRow.idempotency_key, OutboxRow.id)
        )
        out.update((key, row_id) for key, row_id in session.execute(statement).all())
    return out


def claim(
    session: Session, now: datetime, *, owner: str, limit: int, lease: timedelta
) -> list[OutboxRow]:
    """Take up to `limit` due messages for `lease`, oldest due first, and count the attempt.

    On PostgreSQL the rows are locked with SKIP LOCKED, so concurrent claimers split the due
    messages between them instead of queueing or taking the same ones. On SQLite the write
    transaction (BEGIN IMMEDIATE) already serialises claimers.

    The attempt is counted here, not after sending: a message that kills its sender every
    time still runs out of attempts.
    """
    statement = (
        select(OutboxRow)
        .where(
            OutboxRow.status == PENDING,
            OutboxRow.next_attempt_at <= now,
            or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until <= now),
        )
        .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
        .limit(limit)
    )
    if _is_postgres(session):
        statement = statement.with_for_update(skip_locked=True)
    rows = list(session.scalars(statement))
    for row in rows:
        row.claimed_until = now + lease
        row.claimed_by = owner
        row.attempts += 1
    session.flush()
    return rows


def next_due(session: Session) -> datetime | None:
    """Return when the next pending message falls due (a claimed one: when its lease ends)."""
    due = case(
        (
            OutboxRow.claimed_until.is_not(None)
            & (OutboxRow.claimed_until > OutboxRow.next_attempt_at),
            OutboxRow.claimed_until,
        ),
        else_=OutboxRow.next_attempt_at,
    )
    value = session.scalar(select(func.min(due)).where(OutboxRow.status == PENDING))
    return _aware(value)


def mark_sent(
    session: Session, outbox_id: int, now: datetime, *, provider_id: str | None = None
) -> bool:
    """Record that a message went out; False if it was already finished (nothing written)."""
    row = _pending(session, outbox_id)
    if row is None:
        return False
    row.status = SENT
    row.sent_at = now
    row.claimed_until = None
    row.last_error = None
    detail = {"provider_id": provider_id} if provider_id else {}
    _log(session, row, now, "message_sent", f"{_what(row)} sent.", detail)
    return True


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
    return row


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
    if row.subject_type is None or row.subject_id is None:
        return
    detail = {
        "channel": row.channel,
        "destination": row.destination,
        "attempt": row.attempts,
        "message_kind": row.kind,
        **extra,
    }
    session.add(
        NotificationLogRow(
            at=now,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            escalation_id=row.escalation_id,
            kind=kind,
            user_id=row.user_id,
            outbox_id=row.id,
            text=text,
            detail=detail,
        )
    )


def _what(row: OutboxRow) -> str:
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
