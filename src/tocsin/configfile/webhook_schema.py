"""The `webhooks` section: outgoing webhooks of lifecycle events.

An entry (left out, events and services mean all of them; enabled means true):

    webhooks:
      - id: ops-feed
        url: https://hooks.example.test/tocsin
        secret: change-me            # HMAC-SHA256 key; the receiver verifies with it
        events: [incident.*, alert_group.resolved]   # default: every event
        services: [api]              # default: every service
        enabled: true
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import Field

from tocsin.configfile.oncall_schema import Url
from tocsin.configfile.types import Id, Spec
from tocsin.core.lifecycle import PATTERNS

Secret = Annotated[str, Field(min_length=1, max_length=500)]


class WebhookSpec(Spec):
    noun = "webhook"

    id: Id
    url: Url
    secret: Secret | None = None
    events: list[str] = Field(default_factory=list)
    services: list[Id] = Field(default_factory=list)
    enabled: bool = True

    @classmethod
    def problems(cls, entry: dict[str, Any]) -> list[tuple[str, str]]:
        """Name each unknown event kind or pattern at its own path."""
        events = entry.get("events")
        if not isinstance(events, list):
            return []
        out = []
        for index, pattern in enumerate(events):
            if not isinstance(pattern, str) or pattern in PATTERNS:
                continue
            close = difflib.get_close_matches(pattern, PATTERNS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            out.append(
                (
                    f"events[{index}]",
                    f"unknown event '{pattern}'{hint}; use an event kind such as "
                    "incident.resolved, a subject pattern such as incident.* or alert_group.*, "
                    "or *",
                )
            )
        return out
