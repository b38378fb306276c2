"""Fast-forward harness for on-call behaviour: load a config, declare or alert, move a fake
clock from deadline to deadline, and read back who was sent what, and when (goalert's smoke
tests are the model)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry

from tests.conftest import FakeClock
from tocsin.engine.loop import Engine
from tocsin.engine.oncall import EscalationModule, NotificationRuleModule
from tocsin.engine.outbox_sender import OutboxSender
from tocsin.notify.base import DeliveryError, OutgoingMessage
from tocsin.services.page_messages import LinkSettings
from tocsin.storage.db import Database

LINKS = LinkSettings(base_url="http://tocsin.test", secret="test-secret-key")


@dataclass(frozen=True)
class Sent:
    at: datetime
    channel: str
    destination: str
    key: str
    kind: str
    payload: dict[str, object]


@dataclass
class RecordingChannel:
    """A channel that records what it sends, stamped with the fake clock."""

    name: str
    clock: FakeClock
    sent: list[Sent] = field(default_factory=list)
    # Destinations that refuse for good (a 4xx webhook, a 5xx SMTP reply).
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: OutgoingMessage) -> str | None:
        if message.destination in self.refuse:
            raise DeliveryError("refused by the test", retryable=False)
        with self.lock:
            self.sent.append(
                Sent(
                    self.clock(),
                    self.name,
                    message.destination,
                    message.key,
                    message.kind,
                    dict(message.payload),
                )
            )
        return None


class Harness:
    def __init__(self, database: Database, clock: FakeClock) -> None:
        self.db = database
        self.clock = clock
        self.webhook = RecordingChannel("webhook", clock)
        self.email = RecordingChannel("email", clock)
        self.sender = OutboxSender(
            {"webhook": self.webhook, "email": self.email}, owner="test", workers=2, clock=clock
        )
        self.engine = Engine(
            database,
            clock,
            [EscalationModule(), NotificationRuleModule(LINKS), self.sender],
            registry=CollectorRegistry(),
        )

    def settle(self) -> datetime | None:
        """Run the engine until nothing more is due at the current fake time."""
        deadline = None
        for _ in range(50):
            deadline = self.engine.run_once(woken=True)
            if deadline is None or deadline > self.clock():
                return deadline
        raise AssertionError("the engine keeps finding work at one instant")

    def run_until(self, target: datetime) -> None:
        """Jump the clock from deadline to deadline up to `target`, running the engine."""
        deadline = self.settle()
        while deadline is not None and deadline <= target:
            self.clock.now = max(deadline, self.clock.now)
            deadline = self.settle()
        self.clock.now = target
        self.settle()

    def forward(self, **delta: float) -> None:
        self.run_until(self.clock() + timedelta(**delta))

    def sent(self) -> list[Sent]:
        return sorted(self.webhook.sent + self.email.sent, key=lambda s: (s.at, s.destination))

    def timeline(self, start: datetime) -> list[tuple[int, str]]:
        """Return (minutes after start, destination) of every page sent."""
        return [
            (int((s.at - start).total_seconds() // 60), s.destination)
            for s in self.sent()
            if s.kind == "page"
        ]

    def close(self) -> None:
        self.sender.close()


def minutes(items: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    return list(items)
