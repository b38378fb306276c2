"""What a page says: the title, text and webhook JSON of a notification, with signed links
that acknowledge or resolve from the message itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from tocsin.storage.oncall_tables import EscalationRow, PageRow

ACTIONS = ("acknowledge", "resolve")
_SALT = "tocsin-action-link"


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Where links point and how they are signed."""

    base_url: str
    secret: str
    ttl: timedelta = timedelta(hours=24)

    def signer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt=_SALT)


@dataclass(frozen=True, slots=True)
class ActionClaim:
    """What a signed link allows: one action on one subject, on behalf of one person."""

    subject_type: str
    subject_id: int
    action: str
    user_id: str


class BadLink(Exception):
    """The link is forged, damaged or expired (message says which)."""


def action_url(links: LinkSettings, claim: ActionClaim) -> str:
    token = links.signer().dumps(
        [claim.subject_type, claim.subject_id, claim.action, claim.user_id]
    )
    return f"{links.base_url.rstrip('/')}/a/{token}"


def read_action(links: LinkSettings, token: str) -> ActionClaim:
    """Return what a link's token allows; BadLink if it is not valid now."""
    try:
        kind, subject_id, action, user_id = links.signer().loads(
            token, max_age=int(links.ttl.total_seconds())
        )
    except SignatureExpired:
        raise BadLink("this link has expired; open Tocsin to act on the page") from None
    except (BadSignature, ValueError, TypeError):
        raise BadLink("this link is not valid") from None
    if action not in ACTIONS or not isinstance(subject_id, int):
        raise BadLink("this link is not valid")
    return ActionClaim(str(kind), subject_id, str(action), str(user_id))


def subject_url(base_url: str, subject_type: str, subject_id: int) -> str:
    path = "incidents" if subject_type == "incident" else "alerts"
    return f"{base_url.rstrip('/')}/{path}/{subject_id}"


def subject_label(subject_type: str, subject_id: int) -> str:
    return f"Incident #{subject_id}" if subject_type == "incident" else f"Alert group #{subject_id}"


def page_message(
    links: LinkSettings,
    escalation: EscalationRow,
    page: PageRow,
    *,
    key: str,
    channel: str,
    now: datetime,
) -> tuple[str, str, dict[str, Any]]:
    """Return (title, text, webhook payload) of one notification of a page."""
    kind, subject_id = escalation.subject_type, escalation.subject_id
    label = subject_label(kind, subject_id)
    severity = f"[{escalation.severity}] " if escalation.severity else ""
    reason = "SLA breached: " if page.step < 0 else ""
    title = f"{severity}{reason}{escalation.title or label}"[:300]
    url = subject_url(links.base_url, kind, subject_id)
    actions = {
        action: action_url(links, ActionClaim(kind, subject_id, action, page.user_id))
        for action in ACTIONS
    }
    lines = [
        f"{label} needs you ({escalation.urgency} urgency).",
        f"{title}",
        "",
        f"Service: {escalation.service_id or '-'}",
        f"Open: {url}",
        f"Acknowledge: {actions['acknowledge']}",
        f"Resolve: {actions['resolve']}",
        "",
        f"Escalation step {page.step + 1 if page.step >= 0 else 'SLA'}, pass {page.cycle + 1}.",
    ]
    payload: dict[str, Any] = {
        "type": "page",
        "idempotency_key": key,
        "subject": {"type": kind, "id": subject_id, "title": escalation.title, "url": url},
        "severity": escalation.severity,
        "urgency": escalation.urgency,
        "service": escalation.service_id,
        "user": page.user_id,
        "escalation": {
            "id": escalation.id,
            "policy": escalation.policy_id,
            "step": page.step,
            "cycle": page.cycle,
            "run": page.run,
            "sla_breach": page.step < 0,
        },
        "actions": actions,
        "channel": channel,
        "created_at": now.isoformat(),
    }
    if channel == "slack":
        # Buttons instead of links: Slack signs the click, and the clicker is mapped to a user.
        payload["slack"] = {
            "actions": [
                {"action": action, "subject_type": kind, "subject_id": subject_id}
                for action in ACTIONS
            ]
        }
    return title, "\n".join(lines), payload
