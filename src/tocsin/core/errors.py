"""Domain errors; the API maps each to one HTTP status."""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The named object does not exist."""


class InvalidInput(DomainError):
    """A value is well-formed but not acceptable (unknown severity, service, user …)."""

    def __init__(self, message: str, *, field: str, valid: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.valid = list(valid) if valid is not None else None


class IllegalTransition(DomainError):
    """A status change the lifecycle does not allow."""

    def __init__(self, current: str, requested: str, allowed: Sequence[str]) -> None:
        super().__init__(
            f"cannot move from {current!r} to {requested!r}; allowed next states: "
            + (", ".join(allowed) if allowed else "none")
        )
        self.current = current
        self.requested = requested
        self.allowed = list(allowed)


class VersionConflict(DomainError):
    """The caller's expected version is stale."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"incident was changed: expected version {expected}, it is at {actual}")
        self.expected = expected
        self.actual = actual


class Forbidden(DomainError):
    """The actor may not do this."""
