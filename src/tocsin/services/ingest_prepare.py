"""What a trigger signal means before the database is asked: keys, view, routing, group key.

None of this depends on stored alerts, only on the signal and the alerting configuration, so
`tocsin serve` works it out in the API process, beside the parsing, and the ingest writer
process (the bottleneck of an alert storm: one transaction at a time) receives it ready.
A delivery that arrives unprepared (the in-process writer, tests) is prepared by the writer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from tocsin.core.alerts import (
    Action,
    Image,
    Link,
    Routing,
    Signal,
    default_group_key,
    group_key_by,
    match_view,
    route,
)
from tocsin.core.wire import fast_pickle
from tocsin.services import alert_templates
from tocsin.services.alerting_config import AlertingConfig, IntegrationConfig
from tocsin.services.ingest_model import Delivery, open_key
from tocsin.storage.bulk import encode_json

# The JSON columns of a new alert, sent already encoded (see Prepared.content).
ENCODED_COLUMNS = frozenset({"labels", "details", "links", "images"})


@fast_pickle
@dataclass(frozen=True, slots=True)
class Prepared:
    """One trigger signal, worked out without the database."""

    open_key: str  # the alert's key on its integration
    # What matchers see, with the routed service; None when sent to the writer process, which
    # rebuilds it (prepared_view()) only if a silence, window or inhibit rule is there to read it.
    view: dict[str, Any] | None
    decided: Routing
    service: str
    group_key: str
    group_open_key: str
    # The columns a new alert takes from the signal; the JSON ones (ENCODED_COLUMNS) as text.
    content: dict[str, Any]
    # Sent without its signal's labels, details, links and images (prepare with wire): they are in
    # the content already; full_signal() brings them back where needed.
    stripped: bool = False


class Assessor:
    """Routes signals and works out group keys, once per distinct value of the fields read.

    The alerts of one Alertmanager notification differ mostly in labels no route or grouping
    rule reads (instance), so a notification of 100 usually routes once instead of 100 times.
    """

    def __init__(self, config: AlertingConfig) -> None:
        self.config = config
        self._route_fields = tuple(sorted({n for rule in config.routes for n in rule.matchers}))
        self._routed: dict[tuple[Any, ...], Routing] = {}
        self._group_keys: dict[tuple[str, tuple[Any, ...]], str] = {}

    def routing(self, view: Mapping[str, Any]) -> Routing:
        memo = projection(view, self._route_fields)
        if memo is None:
            return route(view, self.config.routes)
        found = self._routed.get(memo)
        if found is None:
            found = self._routed[memo] = route(view, self.config.routes)
        return found

    def group_key(self, service: str, view: Mapping[str, Any], signal: Signal) -> str:
        rule = self.config.grouping.get(service)
        if rule is None:
            return default_group_key(signal)
        if rule.template:
            return "tpl:" + alert_templates.render_group_key(rule.template, view)
        memo = projection(view, rule.by)
        if memo is None:
            return group_key_by(view, rule.by)
        found = self._group_keys.get((service, memo))
        if found is None:
            found = self._group_keys[(service, memo)] = group_key_by(view, rule.by)
        return found

    def prepare(
        self, integration: IntegrationConfig, signal: Signal, now: datetime, *, stripped: bool
    ) -> Prepared:
        view = match_view(signal, service=integration.service, integration=integration.key, now=now)
        decided = self.routing(view)
        service = decided.service or integration.service
        view["service"] = service
        gkey = self.group_key(service, view, signal)
        return Prepared(
            open_key(integration.key, signal.dedup_key),
            # Most of what would go over the wire: the writer rarely needs it (see prepared_view()).
            None if stripped else view,
            decided,
            service,
            gkey,
            open_key(service, gkey),
            encoded_content(signal),
            stripped,
        )


def prepare(
    delivery: Delivery,
    config: AlertingConfig,
    assessor: Assessor | None = None,
    *,
    wire: bool = False,
) -> Delivery:
    """Return the delivery with each trigger signal prepared (other signals: None).

    With `wire`, for sending to the writer process: a prepared signal goes without its view
    and without its labels, details, links and images, which the content holds already
    (prepared_view() and full_signal() bring them back where needed).
    """
    if delivery.prepared or not delivery.signals:
        return delivery
    assessor = assessor or Assessor(config)
    integration, now = delivery.integration, delivery.received_at
    signals: list[Signal] = []
    prepared: list[Prepared | None] = []
    for signal in delivery.signals:
        if signal.action != Action.TRIGGER:
            signals.append(signal)
            prepared.append(None)
            continue
        prepared.append(assessor.prepare(integration, signal, now, stripped=wire))
        signals.append(_stripped(signal) if wire else signal)
    return dataclasses.replace(delivery, signals=tuple(signals), prepared=tuple(prepared))


def _stripped(s: Signal, labels: Any = None, details: Any = None) -> Signal:
    """Return the signal without links and images, and with these labels and details."""
    # Positional, not dataclasses.replace: at storm rates replace's fields() walk shows.
    return Signal(
        s.action, s.dedup_key, s.title, s.severity, s.source, labels or {}, details or {},
        (), (), s.component, s.group, s.class_, s.starts_at, s.ends_at, s.group_key,
    )  # fmt: skip


def full_signal(signal: Signal, prep: Prepared) -> Signal:
    """Return the signal as parsed, given what prepare(wire=True) left of it."""
    if not prep.stripped:
        return signal
    columns = prep.content
    return dataclasses.replace(
        signal,
        labels=orjson.loads(columns["labels"]),
        details=orjson.loads(columns["details"]),
        links=tuple(Link(**link) for link in orjson.loads(columns["links"])),
        images=tuple(Image(**image) for image in orjson.loads(columns["images"])),
    )


def prepared_view(delivery: Delivery, signal: Signal, prep: Prepared) -> dict[str, Any]:
    """Return the prepared signal's view (what matchers see), as the API process saw it."""
    if prep.view is not None:
        return prep.view
    if prep.stripped:
        # Matchers read labels and details, never links or images: only those are decoded
        # (in an alert storm with a silence in force this runs for every new alert).
        columns = prep.content
        signal = _stripped(
            signal, orjson.loads(columns["labels"]), orjson.loads(columns["details"])
        )
    return match_view(
        signal,
        service=prep.service,
        integration=delivery.integration.key,
        now=delivery.received_at,
    )


def content(signal: Signal) -> dict[str, Any]:
    """Return the columns a signal sets on its alert (the latest word of the source wins)."""
    return {
        "title": signal.title[:1024],
        "severity": signal.severity,
        "source": signal.source,
        "component": signal.component,
        "group_name": signal.group,
        "class_name": signal.class_,
        "labels": dict(signal.labels),
        "details": dict(signal.details),
        "links": [{"href": link.href, "text": link.text} for link in signal.links],
        "images": [{"src": i.src, "href": i.href, "alt": i.alt} for i in signal.images],
    }


def encoded_content(signal: Signal) -> dict[str, Any]:
    """content(), with the JSON columns encoded as the database stores them."""
    columns = content(signal)
    for name in ENCODED_COLUMNS:
        columns[name] = encode_json(columns[name])
    return columns


def projection(view: Mapping[str, Any], fields: Sequence[str]) -> tuple[Any, ...] | None:
    """Return the view's values of `fields` as a dictionary key, None if one is unhashable.

    Types are part of the key: 1, 1.0 and True are equal in Python but not to a matcher.
    """
    values = tuple(map(view.get, fields))
    key = (values, tuple(map(type, values)))
    try:
        hash(key)
    except TypeError:
        return None
    return key
