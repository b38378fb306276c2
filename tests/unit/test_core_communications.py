"""Pure decisions of stakeholder communication: audiences per severity, the most specific
template, and the update cadence with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tocsin.core.communications import (
    Rule,
    TemplateChoice,
    audiences_for,
    cadence,
    cadence_step,
    humanize,
    kinds_for,
    next_step_index,
    pick_template,
    selector_key,
    short_span,
)

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
RULES = [
    Rule(("P0", "P1"), ("room", "mail", "feed"), ("initial", "update", "resolution")),
    Rule(("P0",), ("pager", "room"), ("initial",)),
    Rule(("P2",), ("feed",), ("initial", "resolution")),
    Rule(("P1",), ("db-team",), ("initial",), services=("database",)),
]


def test_audiences_follow_severity_kind_and_service() -> None:
    assert audiences_for(RULES, "P0", ["api"], "initial") == ["room", "mail", "feed", "pager"]
    assert audiences_for(RULES, "p0", [], "update") == ["room", "mail", "feed"]
    assert audiences_for(RULES, "P2", [], "update") == []
    assert audiences_for(RULES, "P1", ["api"], "initial") == ["room", "mail", "feed"]
    assert audiences_for(RULES, "P1", ["database"], "initial")[-1] == "db-team"
    assert audiences_for(RULES, "P3", [], "initial") == []
    assert kinds_for(RULES, "P0", [], "pager") == ["initial"]
    assert kinds_for(RULES, "P2", [], "feed") == ["initial", "resolution"]


def test_the_most_specific_template_wins() -> None:
    choices = [
        TemplateChoice("update", "update"),
        TemplateChoice("u-p1", "update", severity="P1"),
        TemplateChoice("u-api", "update", service="api"),
        TemplateChoice("u-slack", "update", audience_type="slack"),
        TemplateChoice("u-p1-slack", "update", severity="P1", audience_type="slack"),
        TemplateChoice("initial", "initial"),
    ]

    def key(severity: str, services: list[str], audience: str) -> str | None:
        found = pick_template(choices, "update", severity, services, audience)
        return found.key if found else None

    assert key("P1", [], "slack") == "u-p1-slack"
    assert key("P1", ["api"], "email") == "u-p1"  # severity before service
    assert key("P2", ["api"], "slack") == "u-api"  # service before audience type
    assert key("P2", [], "slack") == "u-slack"
    assert key("P2", [], "email") == "update"
    assert pick_template(choices, "resolution", "P1", [], "email") is None
    assert selector_key("update", "P1", None, "slack") == "update severity=P1 audience=slack"


def test_cadence_counts_from_the_last_update_or_the_declaration() -> None:
    every = timedelta(minutes=30)
    assert cadence(None, T0, None) is None
    first = cadence(every, T0, None)
    assert first is not None
    assert (first.due_at, first.overdue_at) == (T0 + every, T0 + timedelta(minutes=45))
    later = cadence(every, T0, T0 + timedelta(minutes=20))
    assert later is not None
    assert later.due_at == T0 + timedelta(minutes=50)


def test_cadence_steps_happen_once_each_in_time() -> None:
    deadlines = cadence(timedelta(hours=1), T0, None)
    assert deadlines is not None
    clock = T0 + timedelta(minutes=59)
    step = cadence_step(deadlines, clock, reminded=False, escalated=False)
    assert (step.remind, step.escalate, step.next_at) == (False, False, T0 + timedelta(hours=1))
    clock = T0 + timedelta(hours=1)
    step = cadence_step(deadlines, clock, reminded=False, escalated=False)
    assert (step.remind, step.escalate, step.next_at) == (True, False, T0 + timedelta(hours=1.5))
    step = cadence_step(deadlines, clock, reminded=True, escalated=False)
    assert (step.remind, step.next_at) == (False, T0 + timedelta(hours=1.5))
    clock = T0 + timedelta(hours=2)  # a late engine does both at once
    step = cadence_step(deadlines, clock, reminded=False, escalated=False)
    assert (step.remind, step.escalate, step.next_at) == (True, True, None)
    step = cadence_step(deadlines, clock, reminded=True, escalated=True)
    assert (step.remind, step.escalate, step.next_at) == (False, False, None)


def test_the_next_escalation_step() -> None:
    assert next_step_index(1, 0, 0, 3) == 1  # step 1 fired: tell step 2
    assert next_step_index(0, 0, 0, 3) == 0  # nothing fired yet
    assert next_step_index(0, 1, 0, 3) == 2  # wrapped around: the last, highest level
    assert next_step_index(5, 0, 0, 3) == 2
    assert next_step_index(0, 0, 0, 0) is None


def test_spans_in_words() -> None:
    assert humanize(timedelta(minutes=30)) == "30 minutes"
    assert humanize(timedelta(hours=1)) == "1 hour"
    assert humanize(timedelta(hours=4, minutes=30)) == "4 hours 30 minutes"
    assert humanize(timedelta(days=1, hours=2, minutes=3)) == "1 day 2 hours"
    assert humanize(None) == ""
    assert short_span(timedelta(minutes=47, seconds=59)) == "47m"
    assert short_span(timedelta(hours=1, minutes=5)) == "1h 5m"
    assert short_span(timedelta(days=2, hours=3, minutes=4)) == "2d 3h"
