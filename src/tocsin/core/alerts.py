"""Alerts: what every source format is normalised into, and the pure decisions made on them.

A *signal* is one alert event as a source said it (Alertmanager, Grafana, PagerDuty, a generic
webhook). Signals with the same dedup key on one integration are one *alert*; alerts are
collected into *alert groups* per service; a group may become an incident.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tocsin.core.durations import parse_duration
from tocsin.core.wire import fast_pickle


class Action(StrEnum):
    """What a signal asks for."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


class AlertStatus(StrEnum):
    """Where an alert (or an alert group) stands."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    SUPPRESSED = "suppressed"


class Urgency(StrEnum):
    """High urgency pages; low urgency is recorded without paging anyone."""

    HIGH = "high"
    LOW = "low"


# PagerDuty's severities, which most sources can be mapped onto.
SOURCE_SEVERITIES = ("critical", "error", "warning", "info")


@fast_pickle
@dataclass(frozen=True, slots=True)
class Link:
    href: str
    text: str = ""


@fast_pickle
@dataclass(frozen=True, slots=True)
class Image:
    src: str
    href: str = ""
    alt: str = ""


@fast_pickle
@dataclass(frozen=True, slots=True)
class Signal:
    """One alert event from any source, normalised.

    `dedup_key` is always set: parsers derive one when the source gives none (Alertmanager:
    the label set; PagerDuty trigger: a fresh key returned to the caller).
    """

    action: Action
    dedup_key: str
    title: str
    severity: str | None = None
    source: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    images: tuple[Image, ...] = ()
    component: str | None = None
    group: str | None = None
    class_: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    # The source's own grouping (Alertmanager and Grafana groupKey); used when no rule groups.
    group_key: str | None = None


@fast_pickle
@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A PagerDuty change event: a deploy or config change shown on the service, never paging."""

    summary: str
    source: str | None
    timestamp: datetime | None
    links: tuple[Link, ...] = ()
    custom_details: Mapping[str, Any] = field(default_factory=dict)


def label_set_key(labels: Mapping[str, str]) -> str:
    """Return a stable dedup key for an alert that carries only its labels (like a fingerprint)."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --- matching: routes, silences, inhibition and maintenance all speak the same matchers ---

_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*(%|ms|s)?\s*")
OPERATORS = ("eq", "ne", "regex", "not_regex", "in", "not_in", "gt", "gte", "lt", "lte", "exists")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One condition on one field: equality, regex, membership, numeric or duration compare."""

    op: str
    value: Any
    # The wanted value as text, worked out once: matching runs for every alert and route.
    want: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in ("eq", "ne"):
            object.__setattr__(self, "want", _text(self.value))
        elif self.op in ("in", "not_in"):
            object.__setattr__(self, "want", frozenset(_text(v) for v in self.value))

    def matches(self, actual: Any) -> bool:
        """Return whether a field's value satisfies this condition (missing fields are None)."""
        op = self.op
        if op in ("eq", "ne"):
            if actual is None:
                equal = False
            elif type(actual) is str:
                equal = actual == self.want
            else:
                equal = _text(actual) == self.want
            return equal if op == "eq" else not equal
        if op == "exists":
            return (actual is not None) == bool(self.value)
        if op in ("in", "not_in"):
            inside = actual is not None and _text(actual) in self.want
            return inside if op == "in" else not inside
        if op in ("regex", "not_regex"):
            # Anchored like Alertmanager's =~ matchers.
            hit = actual is not None and re.fullmatch(self.value, _text(actual)) is not None
            return hit if op == "regex" else not hit
        return _compare(op, actual, self.value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _compare(op: str, actual: Any, want: Any) -> bool:
    if actual is None:
        return False
    if isinstance(want, str) and not _NUMBER.fullmatch(want):
        # A duration bound such as 5m: compare seconds (actual may be a timedelta or "7m").
        bound = parse_duration(want).total_seconds()
        value = _seconds(actual)
    else:
        bound = _number(want)
        value = _number(actual)
    if value is None or math.isnan(value):
        return False
    return {
        "gt": value > bound,
        "gte": value >= bound,
        "lt": value < bound,
        "lte": value <= bound,
    }[op]


def _number(value: Any) -> float:
    try:
        return _to_number(value)
    except OverflowError:
        # An integer too large for a float compares as nothing rather than failing ingest.
        return math.nan


def _to_number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    hit = _NUMBER.fullmatch(str(value))
    if not hit:
        return math.nan
    number = float(hit.group(1))
    return number / 1000 if hit.group(2) == "ms" else number


def _seconds(value: Any) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number(value)
    try:
        return parse_duration(str(value)).total_seconds()
    except ValueError:
        return _number(value)


def parse_matchers(spec: Mapping[str, Any]) -> dict[str, tuple[Matcher, ...]]:
    """Turn config matchers into Matchers: `{name: value}` or `{name: {op: value, ...}}`."""
    out: dict[str, tuple[Matcher, ...]] = {}
    for name, condition in spec.items():
        if isinstance(condition, Mapping):
            unknown = [op for op in condition if op not in OPERATORS]
            if unknown:
                raise ValueError(
                    f"unknown operator {unknown[0]!r} for {name!r}; use one of "
                    + ", ".join(OPERATORS)
                )
            for op, value in condition.items():
                _check_operand(name, op, value)
            out[name] = tuple(Matcher(op, value) for op, value in condition.items())
        elif isinstance(condition, list):
            out[name] = (Matcher("in", tuple(condition)),)
        else:
            out[name] = (Matcher("eq", condition),)
    return out


def _check_operand(name: str, op: str, value: Any) -> None:
    if op in ("regex", "not_regex"):
        try:
            re.compile(str(value))
        except re.error as exc:
            raise ValueError(f"{name}.{op}: invalid regular expression: {exc}") from None
    elif op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, str) and not _NUMBER.fullmatch(value):
            parse_duration(value)  # raises ValueError naming the accepted forms
        elif not isinstance(value, int | float | str) or isinstance(value, bool):
            raise ValueError(f"{name}.{op}: expected a number or a duration such as 5m")
    elif op in ("in", "not_in") and not isinstance(value, list | tuple):
        raise ValueError(f"{name}.{op}: expected a list")


# The JSON scalars a matcher can compare (a tuple: `str | int | …` is rebuilt at every use).
SCALARS = (str, int, float, bool)


def matches_all(matchers: Mapping[str, Sequence[Matcher]], view: Mapping[str, Any]) -> bool:
    """Return whether every condition holds on the view (an empty matcher set matches all)."""
    return all(m.matches(view.get(name)) for name, ms in matchers.items() for m in ms)


def match_view(signal: Signal, *, service: str, integration: str, now: datetime) -> dict[str, Any]:
    """Return the fields that matchers see: details, then fields, then labels (labels win).

    `duration` is how long the alert has been firing by its own start time, so a rule such as
    "unavailable for more than 5 minutes" holds once a re-sent alert is old enough.
    """
    view: dict[str, Any] = {k: v for k, v in signal.details.items() if isinstance(v, SCALARS)}
    view.update(
        {
            "title": signal.title,
            "severity": signal.severity,
            "source": signal.source,
            "component": signal.component,
            "group": signal.group,
            "class": signal.class_,
            "dedup_key": signal.dedup_key,
            "service": service,
            "integration": integration,
            "groupKey": signal.group_key,
            "duration": (now - signal.starts_at) if signal.starts_at else None,
        }
    )
    view.update(signal.labels)
    return view


# --- routing ---


@fast_pickle
@dataclass(frozen=True, slots=True)
class DeclareRule:
    """When an alert group becomes an incident: at once, or at N alerts within a window."""

    min_alerts: int = 1
    within: timedelta | None = None

    def holds(self, arrivals: Sequence[datetime], now: datetime) -> bool:
        """Return whether enough alerts arrived (at the given times) within the window."""
        if self.within is None:
            return len(arrivals) >= self.min_alerts
        return sum(1 for at in arrivals if at > now - self.within) >= self.min_alerts


@dataclass(frozen=True, slots=True)
class Route:
    """One routing rule, in file order."""

    matchers: Mapping[str, Sequence[Matcher]]
    continue_: bool = False
    service: str | None = None
    urgency: Urgency | None = None
    incident_severity: str | None = None
    declare: DeclareRule | None = None


@fast_pickle
@dataclass(frozen=True, slots=True)
class Routing:
    """What the routes decided for one signal (None: not set by any matching route)."""

    service: str | None = None
    urgency: Urgency | None = None
    incident_severity: str | None = None
    declare: DeclareRule | None = None
    matched: tuple[int, ...] = ()


def route(view: Mapping[str, Any], routes: Sequence[Route]) -> Routing:
    """Apply routes in order; the first match wins unless it says `continue`.

    With `continue`, later matching routes fill only what earlier ones left unset, so the
    first route to say something keeps its word.
    """
    service = urgency = severity = None
    declare: DeclareRule | None = None
    matched: list[int] = []
    for index, rule in enumerate(routes):
        if not matches_all(rule.matchers, view):
            continue
        matched.append(index)
        service = service or rule.service
        urgency = urgency or rule.urgency
        severity = severity or rule.incident_severity
        declare = declare or rule.declare
        if not rule.continue_:
            break
    return Routing(service, urgency, severity, declare, tuple(matched))


def default_urgency(signal: Signal) -> Urgency:
    """Page unless a route says otherwise: a missed page costs more than a needless one."""
    return Urgency.HIGH


def incident_severity_for(signal_severity: str | None, scheme: Sequence[str]) -> str | None:
    """Map critical/error/warning/info onto the configured scheme (most severe first)."""
    if not scheme:
        return None
    word = (signal_severity or "").lower()
    index = SOURCE_SEVERITIES.index(word) if word in SOURCE_SEVERITIES else 1
    return scheme[min(index, len(scheme) - 1)]


# --- noise control ---


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: Mapping[str, Sequence[Matcher]]
    starts_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: int
    service: str
    starts_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: Mapping[str, Sequence[Matcher]]
    target: Mapping[str, Sequence[Matcher]]
    equal: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why an alert does not page: kind is silence, maintenance or inhibited."""

    kind: str
    ref: str


def suppression(
    view: Mapping[str, Any],
    *,
    now: datetime,
    silences: Sequence[Silence],
    windows: Sequence[MaintenanceWindow],
    inhibit_rules: Sequence[InhibitRule],
    firing: Sequence[Mapping[str, Any]],
) -> Suppression | None:
    """Decide whether a firing alert is suppressed; `firing` holds views of other firing alerts."""
    service = view.get("service")
    for window in windows:
        if window.service == service and window.active(now):
            return Suppression("maintenance", str(window.id))
    for silence in silences:
        if silence.active(now) and matches_all(silence.matchers, view):
            return Suppression("silence", str(silence.id))
    for index, rule in enumerate(inhibit_rules):
        if not matches_all(rule.target, view):
            continue
        for other in firing:
            if other is view or other.get("dedup_key") == view.get("dedup_key"):
                continue
            if matches_all(rule.source, other) and all(
                other.get(name) == view.get(name) for name in rule.equal
            ):
                return Suppression("inhibited", f"{index}:{other.get('dedup_key')}")
    return None


# --- grouping ---


@dataclass(frozen=True, slots=True)
class GroupingRule:
    """How a service's alerts are collected into groups: by labels, or by a template."""

    service: str
    by: tuple[str, ...] = ()
    template: str | None = None
    window: timedelta | None = None


def group_key_by(view: Mapping[str, Any], by: Sequence[str]) -> str:
    """Return the group key for grouping by the given labels or fields."""
    values = [[name, _text(view[name]) if view.get(name) is not None else None] for name in by]
    return "by:" + json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def default_group_key(signal: Signal) -> str:
    """Without a rule, keep the source's grouping (groupKey), else one group per alert."""
    if signal.group_key:
        return "source:" + signal.group_key
    return "alert:" + signal.dedup_key


def joins_group(last_alert_at: datetime, window: timedelta | None, now: datetime) -> bool:
    """Return whether an alert arriving now joins an open group last fed at `last_alert_at`.

    The window slides: a group keeps collecting while alerts keep arriving within it.
    """
    return window is None or now - last_alert_at <= window


def group_status(counts: Mapping[str, int], *, acknowledged: bool) -> AlertStatus:
    """Return a group's status from how many of its alerts are in each status."""
    live = counts.get(AlertStatus.FIRING, 0) + counts.get(AlertStatus.ACKNOWLEDGED, 0)
    if live:
        if acknowledged or counts.get(AlertStatus.FIRING, 0) == 0:
            return AlertStatus.ACKNOWLEDGED
        return AlertStatus.FIRING
    if counts.get(AlertStatus.SUPPRESSED, 0):
        return AlertStatus.SUPPRESSED
    return AlertStatus.RESOLVED


# Alertmanager's matcher syntax for people typing silences: name=value, !=, =~, !~ (longest
# operator first, so "!=" is not read as "=").
TERM_OPERATORS = (("=~", "regex"), ("!~", "not_regex"), ("!=", "ne"), ("=", "eq"))


def parse_matcher_term(text: str) -> tuple[str, str, str] | None:
    """Split `name=value` (or !=, =~, !~) into name, operator and value; None if not one."""
    hits = [(text.find(sym), -len(sym), op) for sym, op in TERM_OPERATORS if text.find(sym) > 0]
    if not hits:
        return None
    at, neg_len, op = min(hits)
    return text[:at].strip(), op, text[at - neg_len :].strip()


def matchers_from_terms(terms: Sequence[str]) -> dict[str, Any]:
    """Return config-shaped matchers from terms: a plain value for equality, else {op: value}.

    Raises ValueError naming the term that is not a matcher or repeats a condition.
    """
    ops: dict[str, dict[str, str]] = {}
    for term in terms:
        parsed = parse_matcher_term(term)
        if parsed is None:
            raise ValueError(f"{term!r} must look like name=value (or !=, =~, !~)")
        name, op, value = parsed
        if op in ops.setdefault(name, {}):
            raise ValueError(f"{name} has two conditions of the same kind")
        ops[name][op] = value
    return {name: o["eq"] if list(o) == ["eq"] else o for name, o in ops.items()}
