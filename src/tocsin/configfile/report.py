"""What an apply did (or, on a dry run, would do), for people and for JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, cast

Action = Literal["created", "updated", "unchanged", "archived"]
ACTIONS: tuple[Action, ...] = ("created", "updated", "unchanged", "archived")
_MARK = {"created": "+", "updated": "~", "unchanged": "=", "archived": "-"}


@dataclass(frozen=True, slots=True)
class Change:
    """The outcome for one object: its section, key, action and, when updated, old → new."""

    section: str
    key: str
    action: Action
    diffs: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape: diffs as {field: {old, new}}."""
        return {
            "section": self.section,
            "key": self.key,
            "action": self.action,
            "diffs": {name: {"old": old, "new": new} for name, (old, new) in self.diffs.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        """Rebuild a change from its JSON shape (the CLI reads the server's answer)."""
        action = data["action"]
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        diffs = {name: (d["old"], d["new"]) for name, d in (data.get("diffs") or {}).items()}
        return cls(str(data["section"]), str(data["key"]), cast(Action, action), diffs)


@dataclass(slots=True)
class ApplyReport:
    """Every change of one apply, in section order then file order."""

    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        """Return True when the apply wrote (or would write) anything."""
        return any(change.action != "unchanged" for change in self.changes)

    def counts(self) -> dict[str, int]:
        """Return how many objects got each action."""
        tally = Counter(change.action for change in self.changes)
        return {action: tally[action] for action in ACTIONS}

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON body of POST /api/v1/config/apply."""
        return {
            "changes": [change.to_dict() for change in self.changes],
            "changed": self.changed,
            "dry_run": self.dry_run,
            "counts": self.counts(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApplyReport:
        """Rebuild a report from its JSON body."""
        changes = [Change.from_dict(item) for item in data.get("changes", [])]
        return cls(changes, dry_run=bool(data.get("dry_run", False)))

    def render(self) -> str:
        """Return a plain-text summary: changed objects with their diffs, then the counts."""
        lines: list[str] = []
        sections: dict[str, list[Change]] = {}
        for change in self.changes:
            sections.setdefault(change.section, []).append(change)
        for section, changes in sections.items():
            unchanged = sum(1 for change in changes if change.action == "unchanged")
            lines.append(f"{section}:" + (f" {unchanged} unchanged" if unchanged else ""))
            for change in changes:
                if change.action == "unchanged":
                    continue
                lines.append(f"  {_MARK[change.action]} {change.key} {change.action}")
                for name, (old, new) in change.diffs.items():
                    lines.append(f"      {name}: {show_value(old)} → {show_value(new)}")
        counts = self.counts()
        summary = ", ".join(f"{counts[action]} {action}" for action in ACTIONS)
        if self.dry_run:
            summary += " (dry run: nothing was written)"
        lines.append(summary)
        return "\n".join(lines)


def show_value(value: Any) -> str:
    """Format one side of a diff the way the file would spell it."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(show_value(item) for item in value) + "]"
    if isinstance(value, str) and value == "":
        return '""'
    return str(value)
