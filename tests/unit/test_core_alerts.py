"""Pure alert decisions: matchers, routing, suppression, grouping, group status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tocsin.core.alerts import (
    Action,
    AlertStatus,
    DeclareRule,
    GroupingRule,
    InhibitRule,
    MaintenanceWindow,
    Route,
    Signal,
    Silence,
    Suppression,
    Urgency,
    default_group_key,
    group_key_by,
    group_status,
    incident_severity_for,
    joins_group,
    label_set_key,
    match_view,
    matches_all,
    parse_matchers,
    route,
    suppression,
)

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def signal(**labels: str) -> Signal:
    return Signal(
        Action.TRIGGER,
        dedup_key=label_set_key(labels),
        title=labels.get("alertname", "x"),
        severity=labels.get("severity"),
        labels=labels,
        starts_at=NOW - timedelta(minutes=7),
    )


def view(**labels: str) -> dict[str, object]:
    return match_view(signal(**labels), service="api", integration="am", now=NOW)


@pytest.mark.parametrize(
    ("spec", "labels", "expected"),
    [
        ({"severity": "critical"}, {"severity": "critical"}, True),
        ({"severity": "critical"}, {"severity": "warning"}, False),
        ({"severity": ["critical", "error"]}, {"severity": "error"}, True),
        ({"alertname": {"regex": "Disk.*"}}, {"alertname": "DiskFull"}, True),
        ({"alertname": {"regex": "Disk"}}, {"alertname": "DiskFull"}, False),  # anchored
        ({"alertname": {"not_regex": "Disk.*"}}, {"alertname": "CPU"}, True),
        ({"env": {"ne": "staging"}}, {}, True),
        ({"env": {"exists": False}}, {}, True),
        ({"error_rate": {"gt": 5}}, {"error_rate": "7.5%"}, True),
        ({"error_rate": {"gt": 5}}, {"error_rate": "4"}, False),
        ({"error_rate": {"gt": 5}}, {"error_rate": "n/a"}, False),
        ({"latency": {"gt": 5}}, {"latency": "5200ms"}, True),
        ({"duration": {"gt": "5m"}}, {}, True),  # firing for 7 minutes by startsAt
        ({"duration": {"gt": "10m"}}, {}, False),
        ({"for": {"gte": "5m"}}, {"for": "5m"}, True),  # a carried duration label
    ],
)
def test_matchers(spec: dict[str, object], labels: dict[str, str], expected: bool) -> None:
    assert matches_all(parse_matchers(spec), view(**labels)) is expected


def test_parse_matchers_rejects_unknown_operators_and_bad_regexes() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        parse_matchers({"a": {"like": "x"}})
    with pytest.raises(ValueError, match="regular expression"):
        parse_matchers({"a": {"regex": "("}})
    with pytest.raises(ValueError, match="duration"):
        parse_matchers({"a": {"gt": "soon"}})


def test_huge_numbers_compare_as_nothing() -> None:
    assert matches_all(parse_matchers({"n": {"gt": 5}}), {"n": 10**400}) is False


def test_first_match_wins_unless_continue() -> None:
    routes = [
        Route(parse_matchers({"severity": "critical"}), continue_=True, urgency=Urgency.HIGH),
        Route(parse_matchers({"team": "db"}), service="database", urgency=Urgency.LOW),
        Route(parse_matchers({}), incident_severity="P3"),
    ]
    decided = route(view(severity="critical", team="db"), routes)
    assert (decided.urgency, decided.service, decided.matched) == (Urgency.HIGH, "database", (0, 1))
    assert decided.incident_severity is None  # route 1 did not continue
    assert route(view(), routes).incident_severity == "P3"


def test_suppression_by_window_silence_and_inhibition() -> None:
    target = view(alertname="Slow", severity="warning", cluster="eu")
    window = MaintenanceWindow(1, "api", NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert suppression(target, now=NOW, silences=[], windows=[window], inhibit_rules=[],
                       firing=[]) == Suppression("maintenance", "1")  # fmt: skip
    past = MaintenanceWindow(2, "api", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    silence = Silence(3, parse_matchers({"alertname": "Slow"}), NOW, NOW + timedelta(hours=1))
    found = suppression(target, now=NOW, silences=[silence], windows=[past], inhibit_rules=[],
                        firing=[])  # fmt: skip
    assert found is not None
    assert found.kind == "silence"
    rule = InhibitRule(parse_matchers({"alertname": "ClusterDown"}),
                       parse_matchers({"severity": "warning"}), ("cluster",))  # fmt: skip
    down_eu = view(alertname="ClusterDown", cluster="eu")
    down_us = view(alertname="ClusterDown", cluster="us")
    assert suppression(target, now=NOW, silences=[], windows=[], inhibit_rules=[rule],
                       firing=[down_us]) is None  # fmt: skip
    hit = suppression(target, now=NOW, silences=[], windows=[], inhibit_rules=[rule],
                      firing=[down_eu])  # fmt: skip
    assert hit is not None
    assert hit.kind == "inhibited"


def test_grouping_keys_and_sliding_window() -> None:
    a = view(alertname="Latency", cluster="eu", instance="1")
    b = view(alertname="Latency", cluster="eu", instance="2")
    c = view(alertname="Latency", cluster="us", instance="1")
    by = GroupingRule("api", ("alertname", "cluster")).by
    assert group_key_by(a, by) == group_key_by(b, by) != group_key_by(c, by)
    assert default_group_key(signal(alertname="x")).startswith("alert:")
    assert joins_group(NOW - timedelta(minutes=4), timedelta(minutes=5), NOW)
    assert not joins_group(NOW - timedelta(minutes=6), timedelta(minutes=5), NOW)
    assert joins_group(NOW - timedelta(days=6), None, NOW)


def test_group_status() -> None:
    assert group_status({"firing": 1, "suppressed": 2}, acknowledged=False) == AlertStatus.FIRING
    assert group_status({"firing": 1}, acknowledged=True) == AlertStatus.ACKNOWLEDGED
    assert group_status({"acknowledged": 2}, acknowledged=False) == AlertStatus.ACKNOWLEDGED
    assert group_status({"suppressed": 2}, acknowledged=False) == AlertStatus.SUPPRESSED
    assert group_status({}, acknowledged=True) == AlertStatus.RESOLVED


def test_declare_rule_counts_alerts_within_the_window() -> None:
    rule = DeclareRule(min_alerts=3, within=timedelta(minutes=10))
    times = [NOW - timedelta(minutes=m) for m in (1, 5, 12)]
    assert not rule.holds(times, NOW)
    assert rule.holds([*times, NOW], NOW)
    assert DeclareRule().holds([NOW], NOW)


def test_incident_severity_mapping() -> None:
    scheme = ("P0", "P1", "P2")
    assert incident_severity_for("critical", scheme) == "P0"
    assert incident_severity_for("info", scheme) == "P2"
    assert incident_severity_for(None, scheme) == "P1"
    assert incident_severity_for("critical", ()) is None
