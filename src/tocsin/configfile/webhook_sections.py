"""Applier of the `webhooks` section: one webhook_subscriptions row per entry.

Removal archives the row (its messages already queued still go out); the secret is stored
as written, because the sender signs with it.
"""

from __future__ import annotations

from tocsin.configfile.sections import Fields, Ref, _RowSection
from tocsin.storage.lifecycle_tables import WebhookSubscriptionRow


class WebhookSection(_RowSection):
    name = "webhooks"
    row_type = WebhookSubscriptionRow

    def to_fields(self, row: WebhookSubscriptionRow) -> Fields:
        return {
            "url": row.url,
            "secret": row.secret,
            "events": list(row.events or []),
            "services": list(row.services or []),
            "enabled": row.enabled,
        }

    def assign(self, row: WebhookSubscriptionRow, fields: Fields) -> None:
        row.url = fields["url"]
        row.secret = fields["secret"]
        row.events = list(fields["events"])
        row.services = list(fields["services"])
        row.enabled = bool(fields["enabled"])

    def refs(self, fields: Fields) -> list[Ref]:
        return [Ref(f"services[{i}]", "services", s) for i, s in enumerate(fields["services"])]

    def without_dangling(self, fields: Fields, live: dict[str, set[str]]) -> Fields | None:
        services = [s for s in fields["services"] if s in live["services"]]
        if fields["services"] and not services:
            # Every service it watched is gone: exporting it unfiltered would widen it.
            return None
        return {**fields, "services": services}
