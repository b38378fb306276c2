"""Who is acting: every write is attributed to an actor."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Scope(StrEnum):
    """What a credential may do: read < respond < admin."""

    READ = "read"
    RESPOND = "respond"
    ADMIN = "admin"


ROLE_SCOPES: dict[str, frozenset[Scope]] = {
    "viewer": frozenset({Scope.READ}),
    "responder": frozenset({Scope.READ, Scope.RESPOND}),
    "admin": frozenset({Scope.READ, Scope.RESPOND, Scope.ADMIN}),
}

USER_ROLES = tuple(ROLE_SCOPES)


def expand_scopes(scopes: set[Scope] | frozenset[Scope]) -> frozenset[Scope]:
    """A higher scope implies the lower ones (admin can respond, respond can read)."""
    out = set(scopes)
    if Scope.ADMIN in out:
        out |= {Scope.RESPOND, Scope.READ}
    if Scope.RESPOND in out:
        out.add(Scope.READ)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Actor:
    """An authenticated caller: a user (web or token bound to a user) or an automation token."""

    id: str
    scopes: frozenset[Scope]
    user_id: str | None = None
    source: str = "api"
    display: str = field(default="")

    def can(self, scope: Scope) -> bool:
        return scope in self.scopes

    def with_source(self, source: str) -> Actor:
        return Actor(self.id, self.scopes, self.user_id, source, self.display)


SYSTEM = Actor(id="system", scopes=frozenset(Scope), source="system", display="Tocsin")
