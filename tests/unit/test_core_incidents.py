"""The lifecycle rules, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tocsin.core.durations import format_duration, parse_duration
from tocsin.core.errors import IllegalTransition, InvalidInput
from tocsin.core.incidents import (
    Milestones,
    Status,
    allowed_next,
    check_transition,
    incident_reference,
    incident_slug,
    milestones_after_transition,
    parse_reference,
)
from tocsin.core.severity import Severity, map_legacy_severity, resolve_severity

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_forward_path_is_allowed() -> None:
    path = [Status.TRIGGERED, Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING]
    for current, nxt in zip(path, [*path[1:], Status.RESOLVED], strict=True):
        check_transition(current, nxt)
    check_transition(Status.RESOLVED, Status.CLOSED)


def test_illegal_transition_names_allowed_states() -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition(Status.CLOSED, Status.INVESTIGATING)
    assert info.value.allowed == []
    with pytest.raises(IllegalTransition) as info:
        check_transition(Status.TRIGGERED, Status.CLOSED)
    assert "investigating" in info.value.allowed
    assert "closed" not in info.value.allowed


def test_same_status_is_a_no_op() -> None:
    check_transition(Status.MONITORING, Status.MONITORING)


def test_reopen_and_regression_are_allowed() -> None:
    assert Status.INVESTIGATING in allowed_next(Status.RESOLVED)
    assert Status.INVESTIGATING in allowed_next(Status.MONITORING)


def test_milestones_follow_the_lifecycle() -> None:
    m = Milestones(detected=T0, declared=T0)
    m = milestones_after_transition(m, Status.INVESTIGATING, T0 + timedelta(minutes=3))
    assert m.acknowledged == T0 + timedelta(minutes=3)
    m = milestones_after_transition(m, Status.MONITORING, T0 + timedelta(minutes=20))
    assert m.mitigated == T0 + timedelta(minutes=20)
    m = milestones_after_transition(m, Status.RESOLVED, T0 + timedelta(minutes=50))
    assert (m.acknowledged, m.mitigated) == (T0 + timedelta(minutes=3), T0 + timedelta(minutes=20))
    assert m.resolved == T0 + timedelta(minutes=50)
    m = milestones_after_transition(m, Status.CLOSED, T0 + timedelta(days=2))
    assert m.closed == T0 + timedelta(days=2)
    assert m.resolved == T0 + timedelta(minutes=50)


def test_resolving_directly_acknowledges_and_mitigates() -> None:
    m = milestones_after_transition(Milestones(declared=T0), Status.RESOLVED, T0)
    assert m.acknowledged == m.mitigated == m.resolved == T0


def test_reopen_clears_resolution() -> None:
    m = milestones_after_transition(Milestones(declared=T0), Status.RESOLVED, T0)
    m = milestones_after_transition(m, Status.INVESTIGATING, T0 + timedelta(hours=1))
    assert m.resolved is None
    assert m.acknowledged == T0


def test_reference_and_slug() -> None:
    assert incident_reference(42) == "INC-42"
    assert parse_reference("inc-42") == 42
    assert parse_reference("42") == 42
    assert parse_reference("INC-x") is None
    assert incident_slug(date(2026, 3, 4), 7) == "incident-2026-03-04-007"


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("1h", 3600), ("1d", 86400), ("1h30m", 5400), ("90s", 90)]
)
def test_durations_round_trip(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize("bad", ["", "15x", "m", "1.5h", "-1h"])
def test_bad_durations_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


def _scheme(*names: str) -> list[Severity]:
    return [Severity(n, n, "", None, None, i < 2, i) for i, n in enumerate(names)]


def test_unknown_severity_lists_valid_names() -> None:
    with pytest.raises(InvalidInput) as info:
        resolve_severity("P9", _scheme("P0", "P1"))
    assert info.value.valid == ["P0", "P1"]
    assert resolve_severity("p1", _scheme("P0", "P1")).name == "P1"


def test_legacy_words_map_by_rank() -> None:
    five = _scheme("P0", "P1", "P2", "P3", "P4")
    assert [map_legacy_severity(w, five).name for w in ("critical", "high", "medium", "low")] == [
        "P0", "P1", "P2", "P3",
    ]  # fmt: skip
    three = _scheme("P1", "P2", "P3")
    assert map_legacy_severity("low", three).name == "P3"
    assert map_legacy_severity("P2", three).name == "P2"
    with pytest.raises(InvalidInput):
        map_legacy_severity("apocalyptic", three)
