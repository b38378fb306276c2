"""Which events a subscription pattern selects."""

from __future__ import annotations

import pytest

from tocsin.core.lifecycle import KINDS, PATTERNS, kind_matches, subject_path


@pytest.mark.parametrize(
    ("pattern", "chosen"),
    [
        ("*", set(KINDS)),
        ("incident.*", {k for k in KINDS if k.startswith("incident.")}),
        ("alert_group.*", {"alert_group.triggered", "alert_group.acknowledged",
                           "alert_group.resolved"}),
        ("status_page.*", {"status_page.updated"}),
        ("incident.resolved", {"incident.resolved"}),
    ],
)  # fmt: skip
def test_patterns_choose_kinds(pattern: str, chosen: set[str]) -> None:
    assert pattern in PATTERNS
    assert {k for k in KINDS if kind_matches(pattern, k)} == chosen


def test_a_prefix_is_not_a_pattern() -> None:
    assert not kind_matches("incident", "incident.declared")
    assert not kind_matches("incident.*", "incidents.declared")


def test_subject_paths() -> None:
    assert subject_path("incident", 42) == "/incidents/42"
    assert subject_path("alert_group", 7) == "/alerts/7"
