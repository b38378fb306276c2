"""A configuration file is rejected whole, with every problem listed by path and line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration file: where it is and what is wrong."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path}: {self.message}{where}"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape the HTTP API answers with."""
        return {"path": self.path, "message": self.message, "line": self.line}


class ConfigError(Exception):
    """The file was rejected; `.errors` lists every problem, in file order."""

    def __init__(self, errors: Iterable[ConfigIssue], source: str = "<config>") -> None:
        # Sorting by line reads like the file; the sort is stable, so issues on one line keep
        # the order they were found in (field order), and whole-file issues go first.
        self.errors = sorted(errors, key=lambda e: e.line or 0)
        self.source = source
        super().__init__("\n".join(str(e) for e in self.errors))

    def to_dict(self) -> dict[str, Any]:
        """Return the 422 body: a one-line detail plus the structured list."""
        count = len(self.errors)
        return {
            "detail": f"{self.source}: {count} error{'s' if count != 1 else ''}, nothing applied",
            "errors": [e.to_dict() for e in self.errors],
        }
