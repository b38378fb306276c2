"""Each reference runbook's communication templates, as configured in examples/seeds/, render
the runbook's own wording: the runbook's block with its placeholders filled in.

The blocks below are copied from the runbooks as they are stored, including their emoji as
mis-decoded text (UTF-8 read as Windows-1252: "ðŸš¨" is 🚨); `runbook()` undoes that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tocsin.configfile import load_config
from tocsin.configfile.comm_schema import MessageTemplateSpec
from tocsin.core import communications as core
from tocsin.services.comm_context import (
    Audience,
    CommConfig,
    IncidentFacts,
    Person,
    UpdateText,
    incident_channel,
    render_context,
)
from tocsin.services.stakeholder_templates import MessageTemplate, render_message
from tocsin.storage.tables import IncidentRow

SEEDS = Path(__file__).parents[2] / "examples" / "seeds"
DECLARED = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
NOW = DECLARED + timedelta(minutes=47)


def runbook(block: str, replacements: Sequence[tuple[str, str]]) -> str:
    """Return a runbook block, emoji repaired, placeholders replaced in order."""
    text = block.encode("cp1252").decode("utf-8")
    for placeholder, value in replacements:
        assert placeholder in text, placeholder
        text = text.replace(placeholder, value)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


@dataclass
class Seed:
    config: CommConfig
    severity: str
    label: str
    update_every: timedelta | None


def seed(name: str) -> Seed:
    path = next(SEEDS.glob(f"{name}_*.yaml"))
    doc = load_config(path.read_text(), path.name)
    specs: list[MessageTemplateSpec] = doc.message_templates or []
    templates = [
        (
            core.TemplateChoice(s.selector(), s.kind, s.severity, s.service, s.audience_type),
            MessageTemplate(s.title, s.body),
        )
        for s in specs
    ]
    audiences = {a.id: Audience(a.id, a.type, a.name, a.settings()) for a in doc.audiences or []}
    top = (doc.severities or [])[0]
    return Seed(CommConfig(audiences, [], templates), top.name, top.label, top.update_every)


def render(
    s: Seed,
    kind: str,
    *,
    audience_type: str = "slack",
    status: str = "investigating",
    title: str = "Image optimization down",
    impact: str = "",
    description: str = "",
    services: Sequence[str] = (),
    commander: str | None = None,
    resolution: str = "",
    text: UpdateText | None = None,
) -> str:
    incident = IncidentRow(
        id=42, slug="incident-2026-03-14-001", title=title, description=description,
        severity=s.severity, status=status, customer_impact=impact, resolution=resolution,
        declared_at=DECLARED, detected_at=DECLARED,
        resolved_at=NOW if status == "resolved" else None,
    )  # fmt: skip
    people = {commander: Person(commander, commander.title(), "")} if commander else {}
    facts = IncidentFacts(
        incident=incident, severity_label=s.label, severity_description="",
        update_every=s.update_every, services=[(x, x) for x in services],
        roles={"commander": commander} if commander else {}, people=people, paged=[],
        last_update_at=None, base_url="https://tocsin.example",
    )  # fmt: skip
    facts.channel = incident_channel(facts, s.config)
    template, _ = s.config.template(kind, s.severity, [], audience_type)
    audience = Audience("a", audience_type, "", {})
    context = render_context(facts, kind=kind, now=NOW, text=text, audience=audience)
    rendered_title, body = render_message(template, context)
    return f"{rendered_title}\n{body}" if not body.startswith("\n") else rendered_title + body


def same(rendered: str, expected: str) -> None:
    # The runbooks put a blank line between the heading and the text, or none (seed 001).
    title, _, body = expected.partition("\n")
    assert rendered == f"{title}\n{body.lstrip(chr(10))}"


# --- seed 000: image optimization (P1–P4) ---

S000_INITIAL = """
ðŸš¨ INCIDENT ALERT - P[SEVERITY] ðŸš¨

Status: INVESTIGATING
Started: [TIME]
Severity: P[X] - [DESCRIPTION]
Impact: [USER IMPACT DESCRIPTION]
Services Affected: [LIST]

Incident Commander: @[NAME]
Next Update: [TIME + 30min]

Channel: #incident-YYYY-MM-DD-NNN
"""
S000_UPDATE = """
ðŸ“Š INCIDENT UPDATE - P[SEVERITY]

Time: [CURRENT TIME]
Status: [INVESTIGATING/MITIGATING/RESOLVED]
Duration: [TIME SINCE START]

Progress:
- [ACTION TAKEN 1]
- [ACTION TAKEN 2]
- [CURRENT ACTION]

Next Update: [TIME + 30min]
"""
S000_RESOLUTION = """
âœ… INCIDENT RESOLVED - P[SEVERITY]

Resolved: [TIME]
Duration: [TOTAL TIME]
Root Cause: [BRIEF DESCRIPTION]

Summary:
- Issue: [WHAT HAPPENED]
- Impact: [USER IMPACT]
- Resolution: [HOW FIXED]

Post-mortem scheduled for: [DATE/TIME]
"""


def test_seed_000_templates() -> None:
    s = seed("000")
    people = {"commander": "engineer-a", "impact": "Website completely inaccessible",
                  "services": ["portfolio-web", "image-optimizer"]}  # fmt: skip
    same(
        render(s, "initial", **people),
        runbook(S000_INITIAL, [
            ("P[SEVERITY]", "P1"), ("P[X]", "P1"), ("[TIME + 30min]", "2026-03-14 09:56 UTC"),
            ("[TIME]", "2026-03-14 09:26 UTC"), ("[DESCRIPTION]", "Critical (Service Down)"),
            ("[USER IMPACT DESCRIPTION]", "Website completely inaccessible"),
            ("[LIST]", "portfolio-web, image-optimizer"), ("[NAME]", "engineer-a"),
            ("YYYY-MM-DD-NNN", "2026-03-14-001"),
        ]),
    )  # fmt: skip
    text = UpdateText("Rolled back the deploy\nRestarted the image workers",
                      "Watching the queue drain")  # fmt: skip
    same(
        render(s, "update", status="identified", text=text, **people),
        runbook(S000_UPDATE, [
            ("P[SEVERITY]", "P1"), ("[CURRENT TIME]", "2026-03-14 10:13 UTC"),
            ("[INVESTIGATING/MITIGATING/RESOLVED]", "IDENTIFIED"), ("[TIME SINCE START]", "47m"),
            ("[ACTION TAKEN 1]", "Rolled back the deploy"),
            ("[ACTION TAKEN 2]", "Restarted the image workers"),
            ("[CURRENT ACTION]", "Watching the queue drain"),
            ("[TIME + 30min]", "2026-03-14 10:43 UTC"),
        ]),
    )  # fmt: skip
    same(
        render(s, "resolution", status="resolved", resolution="Redis ran out of memory",
               text=UpdateText("Flushed the cache and capped key TTLs"), **people),
        runbook(S000_RESOLUTION, [
            ("P[SEVERITY]", "P1"), ("[TIME]", "2026-03-14 10:13 UTC"), ("[TOTAL TIME]", "47m"),
            ("[BRIEF DESCRIPTION]", "Redis ran out of memory"),
            ("[WHAT HAPPENED]", "Image optimization down"),
            ("[USER IMPACT]", "Website completely inaccessible"),
            ("[HOW FIXED]", "Flushed the cache and capped key TTLs"),
            ("[DATE/TIME]", "within one week of 2026-03-14"),
        ]),
    )  # fmt: skip


# --- seed 001: monitoring (P0–P3), one template for every status update ---

S001 = """
INCIDENT UPDATE - [TIMESTAMP]
Incident: [TITLE]
Status: [Investigating/Identified/Monitoring/Resolved]
Impact: [Description of user impact]
Actions: [What we're doing to fix it]
ETA: [Expected resolution time]
Next Update: [When we'll provide next update]
"""


@pytest.mark.parametrize(
    ("kind", "status", "word", "next_update"),
    [
        ("initial", "triggered", "Investigating", "2026-03-14 09:56 UTC"),
        ("update", "identified", "Identified", "2026-03-14 10:43 UTC"),
        ("resolution", "resolved", "Resolved", "none (resolved)"),
    ],
)
def test_seed_001_template(kind: str, status: str, word: str, next_update: str) -> None:
    s = seed("001")
    text = UpdateText("Increased the connection pool", eta="30 minutes")
    rendered = render(s, kind, status=status, title="Database Connection Failures",
                      impact="Pages load slowly for all users", text=text)  # fmt: skip
    same(
        rendered,
        runbook(S001, [
            ("[TIMESTAMP]", "2026-03-14 10:13 UTC"), ("[TITLE]", "Database Connection Failures"),
            ("[Investigating/Identified/Monitoring/Resolved]", word),
            ("[Description of user impact]", "Pages load slowly for all users"),
            ("[What we're doing to fix it]", "Increased the connection pool"),
            ("[Expected resolution time]", "30 minutes"),
            ("[When we'll provide next update]", next_update),
        ]),
    )  # fmt: skip


# --- seed 002: watermark lab, the status page's four sentences ---

S002 = {
    "investigating": """**Investigating**: We are investigating reports of [issue description]. 
We will provide updates as we learn more.""",  # noqa: W291 - the runbook's own trailing space
    "identified": "**Identified**: We have identified the cause of [issue] and are implementing"
    " a fix.",
    "monitoring": "**Monitoring**: A fix has been implemented and we are monitoring the results.",
    "resolved": "**Resolved**: This incident has been resolved.",
}


@pytest.mark.parametrize("status", list(S002))
def test_seed_002_status_page(status: str) -> None:
    s = seed("002")
    kind = {"investigating": "initial", "resolved": "resolution"}.get(status, "update")
    rendered = render(s, kind, audience_type="statuspage", status=status,
                      title="Watermarking API down", impact="failed watermark uploads")  # fmt: skip
    expected = runbook(
        S002[status],
        [(p, "failed watermark uploads") for p in ("[issue description]", "[issue]")
         if p in S002[status]],
    )  # fmt: skip
    assert rendered == f"Watermarking API down\n{expected}"


def test_seed_002_and_004_name_their_incident_channels() -> None:
    # "#incident-YYYY-MM-DD-HHMMSS" and "#incident-YYYYMMDD-HHMM"; seed 002's Slack audiences
    # use the shipped default wording.
    assert "Channel: #incident-20260314-0926" in render(seed("004"), "initial")
    assert "Channel: #incident-2026-03-14-092653" in render(seed("002"), "initial")


# --- seed 003: clustering insights, Slack update and status page ---

S003_SLACK = """
**Incident Update - [Incident ID]**

**Status**: Investigating/Mitigating/Resolved
**Impact**: Brief description of customer impact
**Next Update**: In 30 minutes

**Actions Taken**:
- List of actions performed

**Next Steps**:
- Planned actions
"""
S003_PAGE = """
**Service Degradation - Clustering Analysis**

We are currently experiencing [brief description]. 
Our team is actively working to resolve this issue.

**Impact**: Users may experience...
**ETA**: We expect resolution within...

Next update in 30 minutes.
"""  # noqa: W291 - the runbook's own trailing space


def test_seed_003_templates() -> None:
    s = seed("003")
    text = UpdateText("Restarted the app\nRaised the memory limit", "Profile the memory use",
                      eta="1 hour")  # fmt: skip
    common = {"status": "identified", "title": "Clustering is slow",
                  "impact": "Users may experience delays of several minutes",
                  "description": "slow clustering analysis", "text": text}  # fmt: skip
    same(
        render(s, "update", **common),
        runbook(S003_SLACK, [
            ("[Incident ID]", "INC-42"), ("Investigating/Mitigating/Resolved", "Identified"),
            ("Brief description of customer impact",
             "Users may experience delays of several minutes"),
            ("- List of actions performed", "- Restarted the app\n- Raised the memory limit"),
            ("- Planned actions", "- Profile the memory use"),
        ]),
    )  # fmt: skip
    s.config = CommConfig(s.config.audiences, [], s.config.templates)
    page = render(
        s,
        "update",
        audience_type="statuspage",
        services=["Observer Coordinator Insights"],
        **common,
    )
    same(
        page,
        runbook(S003_PAGE, [
            ("Clustering Analysis", "Observer Coordinator Insights"),
            ("[brief description]", "slow clustering analysis"),
            ("Users may experience...", "Users may experience delays of several minutes"),
            ("We expect resolution within...", "We expect resolution within 1 hour"),
        ]),
    )  # fmt: skip


# --- seed 004: screenshot service (SEV1–SEV4) ---

S004_INITIAL = """
ðŸš¨ INCIDENT: [Brief description]
Severity: SEV[X]
Status: Investigating
Impact: [Describe user impact]
Incident Commander: @[name]
Channel: #incident-YYYYMMDD-HHMM
"""
S004_UPDATE = """
ðŸ“¢ UPDATE: [Incident title]
Status: [Investigating/Identified/Monitoring/Resolved]
Current state: [What's happening now]
Next steps: [What we're doing]
ETA: [If known]
"""
S004_RESOLUTION = """
âœ… RESOLVED: [Incident title]
Duration: [Total time]
Impact: [Number of users/requests affected]
Root cause: [Brief description]
Post-mortem: [Link to document]
"""


def test_seed_004_templates() -> None:
    s = seed("004")
    common = {"title": "Screenshots time out", "impact": "12,000 requests failed",
                  "commander": "oncall-a"}  # fmt: skip
    title = "Screenshots time out"
    same(
        render(s, "initial", **common),
        runbook(S004_INITIAL, [
            ("[Brief description]", title), ("SEV[X]", "SEV1"),
            ("[Describe user impact]", "12,000 requests failed"), ("[name]", "oncall-a"),
            ("YYYYMMDD-HHMM", "20260314-0926"),
        ]),
    )  # fmt: skip
    text = UpdateText("Browser pool exhausted", "Raising the pool size", "20 minutes")
    same(
        render(s, "update", status="monitoring", text=text, **common),
        runbook(S004_UPDATE, [
            ("[Incident title]", title), ("[Investigating/Identified/Monitoring/Resolved]",
                                          "Monitoring"),
            ("[What's happening now]", "Browser pool exhausted"),
            ("[What we're doing]", "Raising the pool size"), ("[If known]", "20 minutes"),
        ]),
    )  # fmt: skip
    same(
        render(s, "resolution", status="resolved", resolution="A leak in the browser pool",
               **common),
        runbook(S004_RESOLUTION, [
            ("[Incident title]", title), ("[Total time]", "47m"),
            ("[Number of users/requests affected]", "12,000 requests failed"),
            ("[Brief description]", "A leak in the browser pool"),
            ("[Link to document]", "https://tocsin.example/incidents/42"),
        ]),
    )  # fmt: skip
