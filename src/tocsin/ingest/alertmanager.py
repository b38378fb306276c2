"""Prometheus Alertmanager webhook payloads (version 4), also the base of Grafana's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tocsin.core.alerts import Action, Link, Signal, label_set_key
from tocsin.ingest.fields import (
    MAX_NAME,
    MAX_SEVERITY,
    MAX_TITLE,
    Problems,
    clip,
    clip_dedup_key,
    get_object,
    join,
    optional_text,
    optional_time,
    safe_href,
    string_map,
    type_name,
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """What a webhook says once for all of its alerts."""

    status: str | None = None
    receiver: str | None = None
    group_key: str | None = None
    links: tuple[Link, ...] = ()


def parse(body: object) -> list[Signal]:
    """Parse an Alertmanager webhook body into one Signal per alert."""
    problems = Problems()
    envelope, alerts = read_envelope(body, problems, external_text="Alertmanager")
    signals = [
        read_alert(alert, f"alerts[{index}]", envelope, problems)
        for index, alert in enumerate(alerts)
    ]
    problems.raise_if_any("invalid Alertmanager payload")
    return [signal for signal in signals if signal is not None]


def read_envelope(
    body: object, problems: Problems, *, external_text: str
) -> tuple[Envelope, Sequence[Any]]:
    """Read the members shared by all alerts, and the alerts list itself."""
    root = get_object(body, "body", problems)
    if root is None:
        return Envelope(), []
    alerts = root.get("alerts")
    if not isinstance(alerts, list):
        problems.add("alerts", f"expected a list, got {type_name(alerts)}")
        alerts = []
    external = safe_href(optional_text(root, "externalURL", "", problems))
    return (
        Envelope(
            status=optional_text(root, "status", "", problems),
            receiver=optional_text(root, "receiver", "", problems),
            group_key=optional_text(root, "groupKey", "", problems) or None,
            links=(Link(external, external_text),) if external else (),
        ),
        alerts,
    )


def read_alert(alert: object, path: str, envelope: Envelope, problems: Problems) -> Signal | None:
    """Read one alert; None (with problems recorded) when it is not an object."""
    obj = get_object(alert, path, problems)
    if obj is None:
        return None
    labels = string_map(obj.get("labels"), join(path, "labels"), problems)
    annotations = string_map(obj.get("annotations"), join(path, "annotations"), problems)
    # An alert without its own status takes the group's, as sparse hand-written senders expect.
    status = optional_text(obj, "status", path, problems) or envelope.status or ""
    fingerprint = optional_text(obj, "fingerprint", path, problems)
    source_url = safe_href(optional_text(obj, "generatorURL", path, problems))
    title = (
        annotations.get("summary") or annotations.get("title") or labels.get("alertname") or "Alert"
    )
    return Signal(
        action=Action.RESOLVE if status.lower() == "resolved" else Action.TRIGGER,
        dedup_key=clip_dedup_key(fingerprint or label_set_key(labels)),
        title=title[:MAX_TITLE],
        severity=clip(labels.get("severity"), MAX_SEVERITY),
        source=clip(labels.get("instance") or labels.get("job") or envelope.receiver, MAX_NAME),
        labels=labels,
        details=annotations,
        links=((Link(source_url, "Source"),) if source_url else ()) + envelope.links,
        starts_at=optional_time(obj, "startsAt", path, problems),
        ends_at=optional_time(obj, "endsAt", path, problems),
        group_key=envelope.group_key,
    )
