"""Grafana webhooks: unified alerting (version 1) and the legacy dashboard-alert body."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from tocsin.core.alerts import Action, Image, Link, Signal, label_set_key
from tocsin.ingest.alertmanager import read_alert, read_envelope
from tocsin.ingest.fields import (
    MAX_NAME,
    MAX_SEVERITY,
    MAX_TITLE,
    Problems,
    clip,
    clip_dedup_key,
    finite_number,
    get_object,
    join,
    number_problem,
    numeric_details,
    optional_text,
    safe_href,
    string_map,
    type_name,
)

_LINKS = (("dashboardURL", "Dashboard"), ("panelURL", "Panel"), ("silenceURL", "Silence"))
# Members that only the legacy body has; unified alerting always sends `alerts`.
_LEGACY_MARKERS = ("ruleName", "ruleId", "evalMatches")
# A ruleId as a number: Grafana's are 64-bit; beyond that it is not an id.
MAX_RULE_ID_BITS = 64


def parse(body: object) -> list[Signal]:
    """Parse a Grafana webhook body into one Signal per alert."""
    problems = Problems()
    if (
        isinstance(body, Mapping)
        and "alerts" not in body
        and any(marker in body for marker in _LEGACY_MARKERS)
    ):
        legacy = _parse_legacy(body, problems)
        problems.raise_if_any("invalid Grafana payload")
        return [legacy]
    envelope, alerts = read_envelope(body, problems, external_text="Grafana")
    signals = []
    for index, alert in enumerate(alerts):
        path = f"alerts[{index}]"
        signal = read_alert(alert, path, envelope, problems)
        if signal is not None and isinstance(alert, Mapping):
            signals.append(_with_grafana_members(signal, alert, path, problems))
    problems.raise_if_any("invalid Grafana payload")
    return signals


def _with_grafana_members(
    signal: Signal, alert: Mapping[str, Any], path: str, problems: Problems
) -> Signal:
    details: dict[str, Any] = dict(signal.details)
    values = _read_values(alert.get("values"), join(path, "values"), problems)
    value_string = optional_text(alert, "valueString", path, problems)
    if values is not None:
        details["values"] = values
    if value_string:
        details["valueString"] = value_string
    details.update(numeric_details(values or {}))
    links = []
    for key, text in _LINKS:
        href = safe_href(optional_text(alert, key, path, problems))
        if href:
            links.append(Link(href, text))
    image = safe_href(optional_text(alert, "imageURL", path, problems))
    return dataclasses.replace(
        signal,
        details=details,
        links=signal.links + tuple(links),
        images=(Image(image, alt=signal.title),) if image else (),
    )


def _read_values(value: object, path: str, problems: Problems) -> dict[str, float] | None:
    """Read `values`: query results by ref ID (Grafana sends null when there are none)."""
    if value is None:
        return None
    obj = get_object(value, path, problems)
    if obj is None:
        return None
    out: dict[str, float] = {}
    for name, item in obj.items():
        number = finite_number(item)
        if number is None:
            problems.add(join(path, name), number_problem(item))
        else:
            out[str(name)] = number
    return out


def _parse_legacy(root: Mapping[str, Any], problems: Problems) -> Signal:
    """Parse the pre-8.0 body: one rule, its state and the series that matched."""
    state = optional_text(root, "state", "", problems) or ""
    rule_name = optional_text(root, "ruleName", "", problems)
    rule_id = root.get("ruleId")
    if rule_id is not None and (isinstance(rule_id, bool) or not isinstance(rule_id, int | str)):
        problems.add("ruleId", f"expected a number or a string, got {type_name(rule_id)}")
        rule_id = None
    elif isinstance(rule_id, int) and rule_id.bit_length() > MAX_RULE_ID_BITS:
        # str() of an integer of thousands of digits raises (Python's 4,300-digit limit); no
        # dedup key needs one.
        problems.add("ruleId", "a number too large to be an id")
        rule_id = None
    tags = string_map(root.get("tags"), "tags", problems)
    details: dict[str, Any] = {}
    message = optional_text(root, "message", "", problems)
    if message:
        details["message"] = message
    matches = _read_eval_matches(root.get("evalMatches"), problems)
    if matches:
        details["evalMatches"] = matches
        details.update(
            numeric_details(
                {
                    str(match["metric"]): number
                    for match in matches
                    if (number := finite_number(match.get("value"))) is not None
                }
            )
        )
    rule_url = safe_href(optional_text(root, "ruleUrl", "", problems))
    image = safe_href(optional_text(root, "imageUrl", "", problems))
    title = optional_text(root, "title", "", problems) or rule_name or "Alert"
    key = str(rule_id) if rule_id not in (None, "") else rule_name or label_set_key(tags)
    return Signal(
        action=Action.RESOLVE if state.lower() == "ok" else Action.TRIGGER,
        dedup_key=clip_dedup_key(key),
        title=title[:MAX_TITLE],
        severity=clip(tags.get("severity"), MAX_SEVERITY),
        source=clip(tags.get("instance") or tags.get("job"), MAX_NAME),
        labels=tags,
        details=details,
        links=(Link(rule_url, "Grafana"),) if rule_url else (),
        images=(Image(image, alt=title[:MAX_TITLE]),) if image else (),
    )


def _read_eval_matches(value: object, problems: Problems) -> list[dict[str, Any]]:
    """Read evalMatches: [{metric, value, tags}], keeping only well-formed entries' members."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add("evalMatches", f"expected a list, got {type_name(value)}")
        return []
    out = []
    for index, item in enumerate(value):
        path = f"evalMatches[{index}]"
        obj = get_object(item, path, problems)
        if obj is None:
            continue
        number = obj.get("value")
        if number is not None and finite_number(number) is None:
            problems.add(join(path, "value"), number_problem(number))
        out.append(
            {
                "metric": optional_text(obj, "metric", path, problems) or "",
                "value": number,
                "tags": string_map(obj.get("tags"), join(path, "tags"), problems),
            }
        )
    return out
