"""Form parsing and the configured choices (severities, services, roles, users) forms offer."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from tocsin.core.incidents import Status
from tocsin.services import catalog
from tocsin.services.incidents import Declaration
from tocsin.storage.tables import IncidentRoleRow, ServiceRow, UserRow

# The same limits as the REST API (and the columns behind them), checked here so a long value
# is a message on the form rather than a database error.
TITLE_MAX = 300
TEXT_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Choice:
    """One option of a select: the value sent and the label shown."""

    value: str
    label: str


@dataclass(frozen=True, slots=True)
class Choices:
    """Everything the configuration offers to choose from."""

    severities: list[Choice]
    services: list[Choice]
    roles: list[Choice]
    users: list[Choice]

    def label_of(self, kind: str, value: str) -> str:
        """Return the label of `value` among severities/services/roles/users, or the value."""
        options: list[Choice] = getattr(self, kind)
        return next((c.label for c in options if c.value == value), value)

    def severity_rank(self, name: str) -> int:
        """Return 0 for the most severe level, up to 3 (colours stop at four shades)."""
        names = [c.value for c in self.severities]
        return min(names.index(name), 3) if name in names else 3


def load_choices(session: Session) -> Choices:
    """Read the active configuration objects forms offer."""
    services = session.scalars(
        select(ServiceRow).where(ServiceRow.archived.is_(False)).order_by(ServiceRow.name)
    )
    roles = session.scalars(
        select(IncidentRoleRow)
        .where(IncidentRoleRow.archived.is_(False))
        .order_by(IncidentRoleRow.position)
    )
    users = session.scalars(
        select(UserRow).where(UserRow.archived.is_(False)).order_by(UserRow.name)
    )
    return Choices(
        severities=[Choice(s.name, s.label or s.name) for s in catalog.severities(session)],
        services=[Choice(s.id, s.name) for s in services],
        roles=[Choice(r.name, r.label or r.name) for r in roles],
        users=[Choice(u.id, u.name) for u in users],
    )


@dataclass(slots=True)
class DeclareForm:
    """The declare form as typed, kept so a rejected form comes back filled in."""

    title: str = ""
    severity: str = ""
    services: list[str] = field(default_factory=list)
    description: str = ""
    customer_impact: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def validate(self, choices: Choices) -> bool:
        """Check what the services will check too, but phrase it for a person at a form."""
        self.title = self.title.strip()
        if not self.title:
            self.errors["title"] = "Give the incident a title."
        elif len(self.title) > TITLE_MAX:
            self.errors["title"] = f"Keep the title under {TITLE_MAX} characters."
        if self.severity not in {c.value for c in choices.severities}:
            self.errors["severity"] = "Choose a severity from the list."
        known = {c.value for c in choices.services}
        unknown = [s for s in self.services if s not in known]
        if unknown:
            self.errors["services"] = f"Unknown service: {', '.join(unknown)}."
        for name in ("description", "customer_impact"):
            if len(getattr(self, name)) > TEXT_MAX:
                self.errors[name] = f"Keep this under {TEXT_MAX} characters."
        return not self.errors

    def declaration(self) -> Declaration:
        """Return what the incidents service declares."""
        return Declaration(
            title=self.title,
            severity=self.severity,
            services=list(self.services),
            description=self.description.strip(),
            customer_impact=self.customer_impact.strip(),
        )


@dataclass(frozen=True, slots=True)
class ListFilter:
    """The incident list's filters, as they appear in the query string."""

    status: str = ""
    severity: str = ""
    service: str = ""
    q: str = ""

    def statuses(self) -> list[str]:
        """Return the statuses to show; 'open' and 'ended' are shorthands."""
        if self.status == "open":
            return [s.value for s in Status if s not in (Status.RESOLVED, Status.CLOSED)]
        if self.status == "ended":
            return [Status.RESOLVED.value, Status.CLOSED.value]
        return [self.status] if self.status in {s.value for s in Status} else []

    def query(self, **extra: str) -> str:
        """Return these filters (plus `extra`) as a query string for links."""
        from urllib.parse import urlencode

        values = {
            "status": self.status,
            "severity": self.severity,
            "service": self.service,
            "q": self.q,
        }
        values.update(extra)
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def active(self) -> bool:
        """Return True when any filter narrows the list."""
        return bool(self.status or self.severity or self.service or self.q)


STATUS_FILTERS = [
    Choice("", "Any status"),
    Choice("open", "Open"),
    Choice("ended", "Resolved or closed"),
    *[Choice(s.value, s.value.capitalize()) for s in Status],
]
