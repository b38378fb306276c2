"""Diff a ConfigDocument against the database, check references, then write it (or not).

Decisions, so they are written down once:

- Only sections present in the file are touched. `prune` archives the objects of a present
  section that the file no longer declares; a section left out of the file is never pruned, so
  a file holding only `services` cannot archive every user.
- Removal archives the row (incidents keep pointing at it); checklist template items are plain
  rows and are deleted. Both are reported as "archived".
- Re-declaring an archived object restores it and is reported as "updated", with the diff
  `archived: true → false` next to any other change.
- References resolve against the state after the apply: what the file declares plus what stays
  live in the database. Pointing at an archived object is an error, and so is a prune that
  would archive something a live object outside the file still uses.
- Order in the file is the `position` of severities and incident roles; a section that lists
  only some of them leaves the others at their old positions (declare the whole scheme).
- Keyless lists (routes, silences, maintenance windows, inhibit rules) are identified by
  position (#1, #2 …) and the file's list replaces the stored one whole: entries past its end
  are deleted, prune or not, and reported as "archived". Silences and windows made through
  the API have no position and are never touched.
- Severity names are referenced case-insensitively from routes (as alerts and people name
  them); checklists name them exactly, as before.
- Nothing here commits: the caller commits, or rolls back after a dry run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from tocsin.configfile.errors import ConfigError, ConfigIssue
from tocsin.configfile.registry import SECTIONS
from tocsin.configfile.report import ApplyReport, Change
from tocsin.configfile.schema import ConfigDocument
from tocsin.configfile.sections import Current, Fields, Section
from tocsin.services import catalog

# Serialises concurrent applies across instances on PostgreSQL (arbitrary constant: "TOCS").
_APPLY_LOCK_KEY = 0x544F4353


@dataclass(slots=True)
class _Plan:
    """One section's view: what the file declares, what the database has, what goes."""

    section: Section
    current: dict[str, Current]
    declared: dict[str, tuple[int, Fields]] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    present: bool = False

    def final(self) -> dict[str, Fields]:
        """Return the live objects after the apply, declared ones with their new fields."""
        out = {
            key: cur.fields
            for key, cur in self.current.items()
            if not cur.archived and key not in self.pruned
        }
        out.update({key: fields for key, (_, fields) in self.declared.items()})
        return out


def apply_config(
    session: Session, doc: ConfigDocument, *, prune: bool = False, dry_run: bool = False
) -> ApplyReport:
    """Apply `doc` in the caller's transaction; raise ConfigError (writing nothing) if invalid."""
    if not dry_run and session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPLY_LOCK_KEY})
    plans = {section.name: _plan(section, doc, session, prune=prune) for section in SECTIONS}
    issues = _check_keys(plans, doc) + _check_refs(plans, doc)
    if issues:
        raise ConfigError(issues, doc.source)

    report = ApplyReport(dry_run=dry_run)
    for plan in plans.values():
        if not plan.present:
            continue
        for key, (_, fields) in plan.declared.items():
            change = _compare(plan, key, fields)
            report.changes.append(change)
            if not dry_run and change.action != "unchanged":
                plan.section.write(session, key, fields)
        for key in plan.pruned:
            report.changes.append(Change(plan.section.name, key, "archived"))
            if not dry_run:
                plan.section.remove(session, key)
        if not dry_run:
            # Flush per section so rows exist before the next section's foreign keys name them.
            session.flush()
    if not dry_run and report.changed:
        # Drop cached catalogs once the change is committed (not before: a reader in between
        # would cache the old catalog again).
        event.listen(session, "after_commit", lambda _s: catalog.invalidate(), once=True)
    return report


def _plan(section: Section, doc: ConfigDocument, session: Session, *, prune: bool) -> _Plan:
    plan = _Plan(section, section.load(session))
    entries = section.entries(doc)
    if entries is None:
        return plan
    plan.present = True
    for index, spec in enumerate(entries):
        plan.declared[section.key_of(spec, index)] = (index, section.desired(spec, index))
    if prune or section.positional:
        plan.pruned = sorted(
            (k for k, cur in plan.current.items() if not cur.archived and k not in plan.declared),
            key=lambda k: (plan.current[k].fields.get("position", 0), k),
        )
    return plan


def _compare(plan: _Plan, key: str, fields: Fields) -> Change:
    current = plan.current.get(key)
    if current is None:
        return Change(plan.section.name, key, "created")
    diffs = {
        name: (current.fields.get(name), value)
        for name, value in fields.items()
        if current.fields.get(name) != value
    }
    if current.archived:
        diffs["archived"] = (True, False)
    return Change(plan.section.name, key, "updated" if diffs else "unchanged", diffs)


def _check_keys(plans: dict[str, _Plan], doc: ConfigDocument) -> list[ConfigIssue]:
    """Reject a new key that differs only in case from an existing one where case is ignored."""
    issues = []
    for plan in plans.values():
        spec = plan.section.spec
        if not spec.keys_ignore_case:
            continue
        existing = {key.casefold(): key for key in plan.current}
        for key, (index, _) in plan.declared.items():
            other = existing.get(key.casefold())
            if other is not None and other != key:
                path = f"{plan.section.name}[{index}].{spec.key_field}"
                message = f"{spec.noun} '{key}' differs only in case from existing '{other}'"
                issues.append(ConfigIssue(path, message, doc.line_of(path)))
    return issues


def _check_refs(plans: dict[str, _Plan], doc: ConfigDocument) -> list[ConfigIssue]:
    """Check every reference of every object that will be live after the apply."""
    final = {name: plan.final() for name, plan in plans.items()}
    issues = []
    folded = {name: {key.casefold() for key in objects} for name, objects in final.items()}
    for plan in plans.values():
        for key, fields in final[plan.section.name].items():
            declared = plan.declared.get(key)
            for ref in plan.section.refs(fields):
                if ref.key in final[ref.section] or (
                    ref.ignore_case and ref.key.casefold() in folded[ref.section]
                ):
                    continue
                target = plans[ref.section]
                noun = target.section.noun
                if declared is not None:
                    path = f"{plan.section.name}[{declared[0]}].{ref.path}"
                    issues.append(ConfigIssue(path, _missing(target, ref.key), doc.line_of(path)))
                elif ref.key in target.pruned:
                    # An object outside the file still uses what prune would take away.
                    path = ref.section
                    message = (
                        f"prune would archive {noun} '{ref.key}', still used by "
                        f"{plan.section.noun} '{key}' which this file does not declare"
                    )
                    issues.append(ConfigIssue(path, message, doc.line_of(path)))
    return issues


def _missing(target: _Plan, key: str) -> str:
    noun = target.section.noun
    if key in target.pruned:
        return f"{noun} '{key}' is not declared in {target.section.name} and prune archives it"
    current = target.current.get(key)
    if current is not None and current.archived:
        return f"{noun} '{key}' is archived (declare it in {target.section.name} to restore it)"
    return f"unknown {noun} '{key}'"
