"""The live configuration as a file that applies back to the same state."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.orm import Session

from tocsin.configfile.registry import SECTIONS
from tocsin.configfile.sections import Fields

HEADER = "# Tocsin configuration, written by `tocsin export`; apply with `tocsin apply -f FILE`.\n"


def export_config(session: Session) -> str:
    """Return every live (non-archived) object as YAML; every section is written, even empty."""
    loaded = {section.name: section.load(session) for section in SECTIONS}
    live = {
        name: {key for key, current in objects.items() if not current.archived}
        for name, objects in loaded.items()
    }
    severity_rank = {
        key: current.fields["position"] for key, current in loaded["severities"].items()
    }
    document: dict[str, Any] = {}
    for section in SECTIONS:
        entries: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for key, current in loaded[section.name].items():
            if current.archived:
                continue
            # An object written by other means may point at something archived since; drop
            # that reference so the export always applies cleanly.
            fields: Fields | None = section.without_dangling(current.fields, live)
            if fields is None:
                continue
            # Severities and roles in rank order, checklists in their severity's rank order.
            rank = fields.get(
                "position", severity_rank.get(key, 0) if section.name == "checklists" else 0
            )
            entries.append(((rank, key), section.export_entry(key, fields)))
        document[section.name] = section.export_document(
            [entry for _, entry in sorted(entries, key=lambda e: e[0])]
        )
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body


class _Dumper(yaml.SafeDumper):
    """Indent list items under their key, as people write them by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)
