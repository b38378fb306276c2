"""Stakeholder message templates: the sandboxed Jinja2 environment, the shipped defaults, the
fields a template may use, and the checks `tocsin apply` runs before accepting a template.

Templates are written by admins in the config but rendered with incident text typed by anyone,
so they run in Jinja2's sandbox; StrictUndefined turns a misspelt field into an error instead
of an empty string. Apply renders every template against a sample incident (once complete,
once with nothing optional set) so a template that cannot render is refused there, with its
line, rather than failing when an incident needs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from tocsin.core.communications import INITIAL, RESOLUTION, UPDATE

_TEMPLATE_NAME = "<template>"


def _moment(value: datetime | None, fmt: str) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime(fmt)


def format_datetime(value: datetime | None) -> str:
    """Format an instant as '2026-03-14 09:26 UTC' (empty for none)."""
    return _moment(value, "%Y-%m-%d %H:%M UTC")


def format_time(value: datetime | None) -> str:
    """Format an instant as '09:26 UTC' (empty for none)."""
    return _moment(value, "%H:%M UTC")


def format_date(value: datetime | None) -> str:
    """Format an instant's UTC date as '2026-03-14' (empty for none)."""
    return _moment(value, "%Y-%m-%d")


def strftime(value: datetime | None, fmt: str) -> str:
    """Format an instant in UTC with a strftime pattern (empty for none)."""
    return _moment(value, fmt)


def bullets(text: str | None, mark: str = "- ") -> str:
    """Turn each non-empty line into a list item, keeping lines that already are one."""
    lines = []
    for line in (text or "").splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        lines.append(stripped if stripped[0] in "-*•" else f"{mark}{stripped}")
    return "\n".join(lines)


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters.update(
        datetime=format_datetime,
        time=format_time,
        date=format_date,
        strftime=strftime,
        bullets=bullets,
    )
    return env


ENV = _environment()

# What a template may use, with what it holds: the reference shown by docs and the UI.
FIELDS: dict[str, str] = {
    "id": "incident number (42)",
    "ref": "incident reference (INC-42)",
    "title": "incident title",
    "description": "incident description",
    "slug": "incident-YYYY-MM-DD-NNN",
    "url": "link to the incident in Tocsin",
    "severity": "severity name (P1)",
    "severity_label": "severity label (Critical)",
    "severity_description": "severity description",
    "status": "lifecycle status (triggered, investigating, … resolved)",
    "status_label": "public status word (Investigating, Identified, Monitoring, Resolved)",
    "impact": "customer impact text",
    "commander": "incident commander's name (none before one is assigned)",
    "commander_id": "incident commander's user id (none before one is assigned)",
    "roles": "role name → holder's name",
    "responders": "names of the people working it (role holders and those paged)",
    "services": "names of the affected services",
    "service_ids": "ids of the affected services",
    "started_at": "when it started (detected, else declared)",
    "declared_at": "when it was declared",
    "resolved_at": "when it was resolved (none while open)",
    "now": "when the message is sent",
    "duration": "time since it started, or its total length once resolved ('1h 5m')",
    "update_every": "the severity's update cadence in words ('30 minutes'; empty without one)",
    "next_update_at": "when the next update is due (none without a cadence or once resolved)",
    "resolution": "how it was resolved",
    "root_cause": "the root cause as recorded (the resolution text)",
    "channel": "the incident channel ('#incident-2026-03-14-001')",
    "kind": "initial, update or resolution",
    "message": "the commander's update text (empty in automatic messages)",
    "next_steps": "what the responders do next (update field; may be empty)",
    "eta": "expected resolution time as the commander wrote it (may be empty)",
    "audience": "id of the audience this rendering is for",
    "audience_type": "type of that audience (email, slack, …)",
}
FILTERS = ("datetime", "time", "date", "strftime", "bullets")


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """A title and body pair, as Jinja2 source."""

    title: str
    body: str


# The shipped wording: seed 000's notices, with everything the other runbooks ask for
# (commander, next update time, duration, root cause, channel) and sensible words where an
# incident does not have something yet.
DEFAULTS: dict[str, MessageTemplate] = {
    INITIAL: MessageTemplate(
        "🚨 INCIDENT ALERT - {{ severity }}: {{ title }}",
        """\
Status: {{ status_label|upper }}
Started: {{ started_at|datetime }}
Severity: {{ severity }} - {{ severity_label }}
Impact: {{ impact or "Being assessed" }}
Services Affected: {{ services|join(", ") or "None named yet" }}

Incident Commander: {{ "@" ~ commander_id if commander_id else "not assigned yet" }}
{% if next_update_at %}
Next Update: {{ next_update_at|datetime }}
{% endif %}

Channel: {{ channel }}
Details: {{ url }}""",
    ),
    UPDATE: MessageTemplate(
        "📊 INCIDENT UPDATE - {{ severity }}: {{ title }}",
        """\
Time: {{ now|datetime }}
Status: {{ status_label|upper }}
Duration: {{ duration }}
Impact: {{ impact or "Being assessed" }}
Incident Commander: {{ "@" ~ commander_id if commander_id else "not assigned yet" }}
{% if message %}

Progress:
{{ message|bullets }}
{% endif %}
{% if next_steps %}

Next steps:
{{ next_steps|bullets }}
{% endif %}
{% if eta %}
ETA: {{ eta }}
{% endif %}
{% if next_update_at %}

Next Update: {{ next_update_at|datetime }}
{% endif %}

Channel: {{ channel }}""",
    ),
    RESOLUTION: MessageTemplate(
        "✅ INCIDENT RESOLVED - {{ severity }}: {{ title }}",
        """\
Resolved: {{ (resolved_at or now)|datetime }}
Duration: {{ duration }}
Root Cause: {{ root_cause or "Under investigation" }}

Summary:
- Issue: {{ title }}
- Impact: {{ impact or "Not recorded" }}
- Resolution: {{ resolution or message or "See the incident timeline" }}
{% if message and message != resolution %}

{{ message }}
{% endif %}

Details: {{ url }}""",
    ),
}

_BLANK_RUNS = re.compile(r"\n{3,}")


@lru_cache(maxsize=512)
def compile_template(source: str) -> Template:
    """Return the compiled template for `source` (cached: configs repeat a few sources)."""
    return ENV.from_string(source)


def render_text(source: str, context: Mapping[str, Any]) -> str:
    """Render one template: no trailing spaces, at most one blank line in a row."""
    text = compile_template(source).render(dict(context))
    lines = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
    return _BLANK_RUNS.sub("\n\n", lines)


def render_message(template: MessageTemplate, context: Mapping[str, Any]) -> tuple[str, str]:
    """Return the rendered (title, body); the title is one line."""
    title = " ".join(render_text(template.title, context).split())
    return title, render_text(template.body, context)


# --- the checks apply runs ---

_SAMPLE_START = datetime(2026, 3, 14, 9, 26, tzinfo=UTC)


def sample_context(*, sparse: bool = False) -> dict[str, Any]:
    """Return a made-up incident to check templates against (sparse: nothing optional set)."""
    now = _SAMPLE_START + timedelta(minutes=47)
    full: dict[str, Any] = {
        "id": 42,
        "ref": "INC-42",
        "title": "Checkout fails for some customers",
        "description": "Payments time out at the provider.",
        "slug": "incident-2026-03-14-001",
        "url": "https://tocsin.example/incidents/42",
        "severity": "P1",
        "severity_label": "High",
        "severity_description": "Significant degradation affecting most users",
        "status": "identified",
        "status_label": "Identified",
        "impact": "About 5 % of checkouts fail",
        "commander": "Alice Example",
        "commander_id": "alice",
        "roles": {"commander": "Alice Example"},
        "responders": ["Alice Example", "Bob Example"],
        "services": ["Public API"],
        "service_ids": ["api"],
        "started_at": _SAMPLE_START,
        "declared_at": _SAMPLE_START,
        "resolved_at": now,
        "now": now,
        "duration": "47m",
        "update_every": "30 minutes",
        "next_update_at": now + timedelta(minutes=30),
        "resolution": "Rolled back the payment client",
        "root_cause": "Rolled back the payment client",
        "channel": "#incident-2026-03-14-001",
        "kind": UPDATE,
        "message": "Rolled back the payment client\nWatching error rates",
        "next_steps": "Confirm with the provider",
        "eta": "30 minutes",
        "audience": "stakeholders",
        "audience_type": "email",
    }
    if sparse:
        full.update(
            description="", status="triggered", status_label="Investigating", impact="",
            commander=None, commander_id=None, roles={}, responders=[], services=[],
            service_ids=[], resolved_at=None, update_every="", next_update_at=None,
            resolution="", root_cause="", kind=INITIAL, message="", next_steps="", eta="",
            duration="0m",
        )  # fmt: skip
    return full


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """Why a template cannot be used; `line` is the template's own line (1-based)."""

    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (template line {self.line})" if self.line else ""
        return f"{self.message}{where}"


def check_template(source: str) -> TemplateProblem | None:
    """Return the first reason `source` cannot be rendered for any incident, or None."""
    try:
        parsed = ENV.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(f"template syntax error: {exc.message or exc}", exc.lineno)
    unknown = sorted(meta.find_undeclared_variables(parsed) - set(FIELDS) - set(ENV.globals))
    if unknown:
        name = unknown[0]
        return TemplateProblem(_unknown_field(name), _line_of_name(parsed, name))
    for sparse in (False, True):
        try:
            render_text(source, sample_context(sparse=sparse))
        except (UndefinedError, SecurityError, TypeError, ValueError, ArithmeticError) as exc:
            reason = _undefined_reason(exc)
            if sparse:
                reason = (
                    "fails while optional fields are empty (no commander, impact, next update "
                    f"…): {exc}; guard them with {{% if … %}} or `or`"
                )
            return TemplateProblem(reason, _template_line(exc.__traceback__))
        except Exception as exc:  # noqa: BLE001 - any failure of a user template is its problem
            return TemplateProblem(f"template fails: {exc}", _template_line(exc.__traceback__))
    return None


def _unknown_field(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(FIELDS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f"; fields: {', '.join(FIELDS)}"
    return f"unknown field '{name}'{hint}"


def _undefined_reason(exc: Exception) -> str:
    text = str(exc)
    found = re.match(r"'(?P<what>[^']+)' has no attribute '(?P<attr>[^']+)'", text)
    if found:
        return f"unknown field '{found['attr']}' of {found['what']}"
    return f"template fails: {text}"


def _line_of_name(parsed: nodes.Template, name: str) -> int | None:
    for node in parsed.find_all(nodes.Name):
        if node.name == name and node.ctx == "load":
            return int(node.lineno)
    return None


def _template_line(tb: TracebackType | None) -> int | None:
    """Return the template line of the innermost template frame of a traceback."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _TEMPLATE_NAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
