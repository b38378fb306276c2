"""The shipped stakeholder templates (snapshots) and the checks `tocsin apply` runs on
templates from the config: syntax, unknown fields, and rendering with nothing optional set.

Snapshots live in tests/snapshots/; after an intended wording change, regenerate them with
TOCSIN_UPDATE_SNAPSHOTS=1 and review the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tocsin.services.stakeholder_templates import (
    DEFAULTS,
    FIELDS,
    bullets,
    check_template,
    format_datetime,
    render_message,
    render_text,
    sample_context,
)

SNAPSHOTS = Path(__file__).parents[1] / "snapshots"
UPDATE = os.environ.get("TOCSIN_UPDATE_SNAPSHOTS") == "1"


@pytest.mark.parametrize("sparse", [False, True], ids=["complete", "sparse"])
@pytest.mark.parametrize("kind", list(DEFAULTS))
def test_default_template_snapshot(kind: str, sparse: bool) -> None:
    context = sample_context(sparse=sparse)
    context["kind"] = kind
    title, body = render_message(DEFAULTS[kind], context)
    rendered = f"{title}\n\n{body}\n"
    path = SNAPSHOTS / f"default_{kind}_{'sparse' if sparse else 'complete'}.txt"
    if UPDATE:
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with TOCSIN_UPDATE_SNAPSHOTS=1"
    assert rendered == path.read_text(encoding="utf-8")


def test_defaults_use_the_seeds_headings_and_facts() -> None:
    headings = {kind: t.title.split(" - ")[0] for kind, t in DEFAULTS.items()}
    assert headings == {
        "initial": "🚨 INCIDENT ALERT",
        "update": "📊 INCIDENT UPDATE",
        "resolution": "✅ INCIDENT RESOLVED",
    }
    initial, update, resolution = (
        render_message(DEFAULTS[k], sample_context())[1] for k in DEFAULTS
    )
    for fact in ("Status:", "Impact:", "Incident Commander:", "Next Update:", "Channel:"):
        assert fact in initial
    assert "Duration: 47m" in update
    assert "Root Cause: Rolled back the payment client" in resolution


def test_every_default_passes_the_apply_checks() -> None:
    for template in DEFAULTS.values():
        assert check_template(template.title) is None
        assert check_template(template.body) is None


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Status: {{ status }", "template syntax error: unexpected '}' (template line 1)"),
        (
            "one\ntwo\n{% if impact %}\nnever closed",
            "template syntax error: Unexpected end of template. Jinja was looking for the "
            "following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be "
            "closed is 'if'. (template line 4)",
        ),
        ("a\n{{ titel }}", "unknown field 'titel' (did you mean 'title'?) (template line 2)"),
        ("{{ roles.lead.name }}", "unknown field 'lead' of dict object (template line 1)"),
        (
            "{{ now.__class__ }}",
            "template fails: access to attribute '__class__' of 'datetime' "
            "object is unsafe. (template line 1)",
        ),
    ],
)
def test_check_template_names_the_problem_and_the_line(source: str, message: str) -> None:
    problem = check_template(source)
    assert problem is not None
    assert str(problem) == message


def test_a_template_that_breaks_without_optional_data_is_refused() -> None:
    problem = check_template("Commander: {{ commander.upper() }}")
    assert problem is not None
    assert problem.message.startswith("fails while optional fields are empty")
    assert check_template('Commander: {{ (commander or "nobody")|upper }}') is None


def test_unknown_fields_list_the_valid_ones_when_nothing_is_close() -> None:
    problem = check_template("{{ zzzz }}")
    assert problem is not None
    assert problem.message.startswith("unknown field 'zzzz'; fields: id, ref, title")
    assert set(FIELDS) == set(sample_context())


def test_filters() -> None:
    assert bullets("Rolled back\n\n- already a bullet\n  Watching") == (
        "- Rolled back\n- already a bullet\n- Watching"
    )
    assert format_datetime(None) == ""
    assert format_datetime(datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)) == "2026-03-14 09:26 UTC"
    assert render_text("{{ now|time }} {{ now|date }} {{ now|strftime('%H%M') }}",
                       {"now": datetime(2026, 3, 14, 9, 26, tzinfo=UTC)}) == (
        "09:26 UTC 2026-03-14 0926"
    )  # fmt: skip


def test_rendering_keeps_at_most_one_blank_line_and_no_trailing_spaces() -> None:
    assert render_text("a   \n\n\n\nb\n\n", {}) == "a\n\nb"
    # Text typed by responders is data, never template code.
    assert render_text("{{ message }}", {"message": "{{ 7 * 7 }}"}) == "{{ 7 * 7 }}"
