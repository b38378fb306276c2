"""The generic JSON webhook: an integration's mapping says where each Signal field comes from.

Every field is a Jinja2 template (rendered in a sandbox with `body`, and `root` when `items`
splits the body) or `{jmespath: expression}`. `labels` and `details` may also map names to such
specs (a mapping whose only key is `jmespath` is an expression, not a label named jmespath).
Mappings are compiled once, when the configuration is applied, so a typo is reported
there and not when the first alert arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tocsin.core.alerts import Action, Link, Signal, label_set_key
from tocsin.ingest.expressions import (
    Expression,
    JMESPathExpression,
    compile_expression,
    compile_jmespath,
    compile_template,
    is_jmespath_spec,
)
from tocsin.ingest.fields import (
    MAX_NAME,
    MAX_SEVERITY,
    MAX_TITLE,
    Problems,
    clean,
    clip,
    clip_dedup_key,
    safe_href,
    scalar_text,
    string_map,
    type_name,
)

FIELDS = ("title", "dedup_key", "status", "severity", "source", "labels", "links", "details")
_KNOWN = (*FIELDS, "items")
_RESOLVE = frozenset({"resolved", "ok", "up", "resolve"})
_ACKNOWLEDGE = frozenset({"acknowledged", "acknowledge"})
# A label or detail spec: one expression giving an object, or one expression per name.
Group = Expression | dict[str, Expression]


@dataclass(frozen=True, slots=True)
class GenericMapping:
    """A compiled mapping from any JSON body to Signals."""

    title: Expression
    dedup_key: Expression | None = None
    status: Expression | None = None
    severity: Expression | None = None
    source: Expression | None = None
    labels: Group | None = None
    links: Expression | None = None
    details: Group | None = None
    items: JMESPathExpression | None = None

    def parse(self, body: object) -> list[Signal]:
        """Map a body to Signals: one, or one per element of `items`."""
        problems = Problems()
        if self.items is None:
            scopes: list[tuple[str, object]] = [("", body)]
        else:
            elements = _evaluate(self.items, "items", body, body, problems)
            if not isinstance(elements, list):
                problems.add("items", f"expected a list, got {type_name(elements)}")
                elements = []
            scopes = [(f"items[{index}].", element) for index, element in enumerate(elements)]
        signals = [
            _Reader(self, prefix, element, body, problems).signal() for prefix, element in scopes
        ]
        problems.raise_if_any("the body does not fit this integration's mapping")
        return signals


def compile_mapping(mapping: Mapping[str, Any]) -> GenericMapping:
    """Compile a mapping from configuration, raising ValueError naming every bad field."""
    if not isinstance(mapping, Mapping):
        raise ValueError(f"mapping: expected an object, got {type_name(mapping)}")
    errors: list[str] = []
    unknown = [str(name) for name in mapping if name not in _KNOWN]
    if unknown:
        errors.append(f"{unknown[0]}: unknown field; use " + ", ".join(_KNOWN))
    if mapping.get("title") is None:
        errors.append("title: required")
    compiled: dict[str, Any] = {}
    for name, spec in mapping.items():
        if spec is None or name not in _KNOWN:
            continue
        try:
            compiled[name] = _compile_field(name, spec)
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ValueError("; ".join(errors))
    return GenericMapping(**compiled)


def _compile_field(name: str, spec: object) -> Any:
    if name == "items":
        if not is_jmespath_spec(spec):
            raise ValueError("items: expected {jmespath: expression}")
        return compile_jmespath(spec["jmespath"], "items.jmespath")
    if name in ("labels", "details") and isinstance(spec, Mapping) and not is_jmespath_spec(spec):
        return {str(key): compile_expression(value, f"{name}.{key}") for key, value in spec.items()}
    if name == "labels" and isinstance(spec, str):
        raise ValueError("labels: expected {jmespath: expression} or a mapping of names to specs")
    if name == "details" and isinstance(spec, str):
        return compile_template(spec, name)
    return compile_expression(spec, name)


def _evaluate(
    expression: Expression, path: str, body: object, root: object, problems: Problems
) -> Any:
    try:
        return expression.evaluate(body, root)
    # Templates and expressions are user code run on sender data: whatever they raise
    # (SecurityError, TypeError, UndefinedError, JMESPathTypeError, RecursionError …) is a
    # problem with this body for this mapping, reported to the sender, never a server error.
    except Exception as exc:  # noqa: BLE001
        problems.add(path, f"cannot evaluate: {type(exc).__name__}: {str(exc)[:300]}")
        return None


@dataclass(slots=True)
class _Reader:
    """Reads one Signal from one body (an element of `items`, or the whole body)."""

    mapping: GenericMapping
    prefix: str
    body: object
    root: object
    problems: Problems

    def signal(self) -> Signal:
        mapping = self.mapping
        title = self.text("title", mapping.title) or "Alert"
        labels = self.labels()
        status = self.text("status", mapping.status).lower()
        key = self.text("dedup_key", mapping.dedup_key)
        if not key:
            key = label_set_key({**labels, "__title__": title})
        return Signal(
            action=(
                Action.RESOLVE
                if status in _RESOLVE
                else Action.ACKNOWLEDGE
                if status in _ACKNOWLEDGE
                else Action.TRIGGER
            ),
            dedup_key=clip_dedup_key(key),
            title=title[:MAX_TITLE],
            severity=clip(self.text("severity", mapping.severity).lower(), MAX_SEVERITY),
            source=clip(self.text("source", mapping.source), MAX_NAME),
            labels=labels,
            details=self.details(),
            links=self.links(),
        )

    def value(self, name: str, expression: Expression | None) -> Any:
        if expression is None:
            return None
        return _evaluate(expression, self.prefix + name, self.body, self.root, self.problems)

    def text(self, name: str, expression: Expression | None) -> str:
        value = self.value(name, expression)
        if value is None:
            return ""
        try:
            return scalar_text(value).strip()
        except ValueError as exc:
            self.problems.add(self.prefix + name, str(exc))
            return ""

    def labels(self) -> dict[str, str]:
        spec = self.mapping.labels
        if not isinstance(spec, dict):
            return string_map(self.value("labels", spec), self.prefix + "labels", self.problems)
        # Empty values are dropped: Prometheus treats an empty label as an absent one.
        texts = {name: self.text(f"labels.{name}", expression) for name, expression in spec.items()}
        return {clean(name): text for name, text in texts.items() if text}

    def details(self) -> dict[str, Any]:
        spec = self.mapping.details
        if isinstance(spec, dict):
            return {
                clean(name): self.value(f"details.{name}", expression)
                for name, expression in spec.items()
            }
        value = self.value("details", spec)
        if isinstance(value, Mapping):
            return {str(key): item for key, item in value.items()}
        return {} if value in (None, "") else {"details": value}

    def links(self) -> tuple[Link, ...]:
        value = self.value("links", self.mapping.links)
        if isinstance(value, str):
            # A template gives text; several URLs may be separated by whitespace.
            value = value.split()
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problems.add(
                self.prefix + "links", f"expected a list or a URL, got {type_name(value)}"
            )
            return ()
        links = []
        for index, item in enumerate(value):
            link = self.link(item, f"{self.prefix}links[{index}]")
            if link is not None:
                links.append(link)
        return tuple(links)

    def link(self, item: object, path: str) -> Link | None:
        if isinstance(item, str):
            href = safe_href(clean(item))
            return Link(href) if href else None
        if isinstance(item, Mapping) and isinstance(item.get("href"), str):
            href = safe_href(clean(item["href"]))
            text = item.get("text")
            return Link(href, clean(text) if isinstance(text, str) else "") if href else None
        self.problems.add(path, f"expected a URL or an object with href, got {type_name(item)}")
        return None
