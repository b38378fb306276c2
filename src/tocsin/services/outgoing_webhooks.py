"""Outgoing webhooks: every lifecycle event, as signed JSON, to the subscribed URLs.

The lifecycle module calls WebhookReactor for each event; each enabled subscription (config
section `webhooks`) whose events and services match gets one outbox message on the webhook
channel, keyed evt:{event id}:{subscription id}. The webhook channel signs the body with the
subscription's secret at send time (notify/webhook.py, notify/signing.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.lifecycle import LifecycleEvent, kind_matches
from tocsin.storage.lifecycle_tables import WebhookSubscriptionRow

KIND = "event"
_CACHE = "tocsin_webhook_subscriptions"


@dataclass(frozen=True, slots=True)
class Subscription:
    """One enabled outgoing webhook."""

    id: str
    url: str
    secret: str | None
    events: tuple[str, ...]
    services: tuple[str, ...]

    def wants(self, event: LifecycleEvent) -> bool:
        """Return whether this subscription receives the event."""
        if self.events and not any(kind_matches(p, event.kind) for p in self.events):
            return False
        if not self.services:
            return True
        named = event.data.get("services") or []
        return any(service in self.services for service in named)


def subscriptions(session: Session) -> list[Subscription]:
    """Return the enabled subscriptions, read once per transaction (a batch of events)."""
    transaction = session.get_transaction()
    found = session.info.get(_CACHE)
    cached: list[Subscription] | None = (
        found[1] if found is not None and found[0] is transaction else None
    )
    if cached is None:
        rows = session.scalars(
            select(WebhookSubscriptionRow)
            .where(
                WebhookSubscriptionRow.enabled.is_(True),
                WebhookSubscriptionRow.archived.is_(False),
            )
            .order_by(WebhookSubscriptionRow.id)
        )
        cached = [
            Subscription(r.id, r.url, r.secret, tuple(r.events or ()), tuple(r.services or ()))
            for r in rows
        ]
        session.info[_CACHE] = (transaction, cached)
    return cached


def event_body(event: LifecycleEvent, base_url: str | None = None) -> dict[str, Any]:
    """Return the JSON document a receiver gets for an event."""
    path = event.data.get("path")
    subject: dict[str, Any] = {"type": event.subject_type, "id": event.subject_id}
    if isinstance(path, str) and base_url:
        subject["url"] = base_url.rstrip("/") + path
    return {
        "id": event.id,
        "kind": event.kind,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "subject": subject,
        "data": dict(event.data),
    }


def _summary(event: LifecycleEvent) -> tuple[str, str]:
    title = str(event.data.get("title") or f"{event.subject_type} {event.subject_id}")
    status = event.data.get("status")
    text = f"{event.kind} of {event.subject_type} {event.subject_id}" + (
        f" ({status})" if status else ""
    )
    return f"{event.kind}: {title}"[:1024], text


class WebhookReactor:
    """The lifecycle reactor of outgoing webhooks: one message per matching subscription."""

    def __init__(self, base_url: str | None = None) -> None:
        # Where subject links point (TOCSIN_PUBLIC_URL); data carries the path either way.
        self.base_url = base_url

    def __call__(
        self, session: Session, event: LifecycleEvent, now: datetime
    ) -> list[dict[str, Any]]:
        """Return the outbox messages of one event."""
        wanted: Sequence[Subscription] = [s for s in subscriptions(session) if s.wants(event)]
        if not wanted:
            return []
        body = event_body(event, self.base_url)
        title, text = _summary(event)
        return [
            {
                "key": f"evt:{event.id}:{sub.id}",
                "kind": KIND,
                "channel": "webhook",
                "destination": sub.url,
                "title": title,
                "body": text,
                "payload": {"webhook": {"body": {**body, "webhook": sub.id}, "secret": sub.secret}},
                "now": now,
                "subject_type": event.subject_type,
                "subject_id": event.subject_id,
            }
            for sub in wanted
        ]
