"""The apply report: what people read and what the HTTP API answers."""

from __future__ import annotations

from tocsin.configfile import ApplyReport, Change, ConfigDocument
from tocsin.configfile.registry import SECTIONS
from tocsin.configfile.schema import section_spec


def sample() -> ApplyReport:
    return ApplyReport(
        [
            Change("severities", "P0", "updated", {"respond_within": ("15m", "10m")}),
            Change("severities", "P1", "unchanged"),
            Change("severities", "P9", "created"),
            Change("services", "database", "archived"),
            Change("teams", "ops", "updated", {"archived": (True, False), "members": ([], ["a"])}),
        ],
        dry_run=True,
    )


def test_render_lists_changes_with_diffs_and_counts() -> None:
    assert sample().render() == "\n".join(
        [
            "severities: 1 unchanged",
            "  ~ P0 updated",
            "      respond_within: 15m → 10m",
            "  + P9 created",
            "services:",
            "  - database archived",
            "teams:",
            "  ~ ops updated",
            "      archived: true → false",
            "      members: [] → [a]",
            "1 created, 2 updated, 1 unchanged, 1 archived (dry run: nothing was written)",
        ]
    )


def test_json_round_trip() -> None:
    report = sample()
    data = report.to_dict()
    assert data["changed"] is True
    assert data["counts"] == {"created": 1, "updated": 2, "unchanged": 1, "archived": 1}
    assert data["changes"][0] == {
        "section": "severities",
        "key": "P0",
        "action": "updated",
        "diffs": {"respond_within": {"old": "15m", "new": "10m"}},
    }
    again = ApplyReport.from_dict(data)
    assert again.changes == report.changes
    assert again.dry_run is True


def test_nothing_changed() -> None:
    report = ApplyReport([Change("users", "a", "unchanged")])
    assert report.changed is False
    assert report.render().endswith("0 created, 0 updated, 1 unchanged, 0 archived")


def test_every_section_has_one_applier_in_schema_order() -> None:
    # Adding a section means a model, a ConfigDocument field and an applier: keep them in step.
    assert [section.name for section in SECTIONS] == list(ConfigDocument.model_fields)
    for section in SECTIONS:
        assert section.spec is section_spec(section.name)
