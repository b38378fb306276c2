"""The severity scheme is configuration: an ordered list of levels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from tocsin.core.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Severity:
    """One level of a severity matrix, most severe first."""

    name: str
    label: str
    description: str
    respond_within: timedelta | None
    update_every: timedelta | None
    pages: bool
    rank: int


def resolve_severity(name: str, scheme: Sequence[Severity], *, field: str = "severity") -> Severity:
    """Find a level by name (case-insensitive), or fail listing the valid names."""
    for level in scheme:
        if level.name.lower() == name.lower():
            return level
    valid = [level.name for level in scheme]
    raise InvalidInput(
        f"unknown severity {name!r}; valid: {', '.join(valid) or '(none configured)'}",
        field=field,
        valid=valid,
    )


# seed 001's monitoring API speaks critical/high/medium/low; map them onto the configured order.
LEGACY_SEVERITY_WORDS = ("critical", "high", "medium", "low")


def map_legacy_severity(word: str, scheme: Sequence[Severity]) -> Severity:
    """Map critical/high/medium/low onto the scheme by rank; also accept a configured name."""
    ordered = sorted(scheme, key=lambda s: s.rank)
    for level in ordered:
        if level.name.lower() == word.lower() or level.label.lower() == word.lower():
            return level
    lowered = word.lower()
    if lowered not in LEGACY_SEVERITY_WORDS:
        valid = list(LEGACY_SEVERITY_WORDS) + [s.name for s in ordered]
        raise InvalidInput(
            f"unknown severity {word!r}; valid: {', '.join(valid)}", field="severity", valid=valid
        )
    if not ordered:
        raise InvalidInput("no severities are configured", field="severity", valid=[])
    index = min(LEGACY_SEVERITY_WORDS.index(lowered), len(ordered) - 1)
    return ordered[index]
