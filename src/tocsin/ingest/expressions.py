"""The two ways a generic mapping reads a body: Jinja2 templates and JMESPath expressions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import jmespath  # type: ignore[import-untyped]
import jmespath.exceptions  # type: ignore[import-untyped]
import jmespath.functions  # type: ignore[import-untyped]
from jinja2 import ChainableUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment


class Expression(Protocol):
    """Something that reads a value out of a body (and, with `items`, the whole body)."""

    def evaluate(self, body: object, root: object) -> Any:
        """Return the value for this body; may raise anything (callers report it)."""
        ...


class _JsonEnvironment(SandboxedEnvironment):
    """A sandbox where `body.values` means the JSON member, not the dict method."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Jinja tries Python attributes before items, so a webhook member named items, keys or
        # values (Grafana sends `values`) would otherwise render as a bound method.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def _finalize(value: Any) -> Any:
    """Print JSON values as JSON does: null as nothing, true/false, objects as JSON."""
    if value is None or callable(value):
        # A method reached by accident (`body.title` on a string body) prints as nothing, like
        # any other member the body does not have.
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


_ENV = _JsonEnvironment(undefined=ChainableUndefined, autoescape=False, finalize=_finalize)


@dataclass(frozen=True, slots=True)
class TemplateExpression:
    """A Jinja2 template rendered with `body` (and `root`); the result is stripped text."""

    template: Template

    def evaluate(self, body: object, root: object) -> str:
        """Render the template for this body."""
        return self.template.render(body=body, root=root).strip()


@dataclass(frozen=True, slots=True)
class JMESPathExpression:
    """A JMESPath expression searched against `body`; the result is any JSON value."""

    parsed: Any

    def evaluate(self, body: object, root: object) -> Any:
        """Search the body (JMESPath has no variables, so `root` is not reachable)."""
        return self.parsed.search(body)


def compile_template(source: str, field: str) -> TemplateExpression:
    """Compile a template, raising ValueError that names the field and the line."""
    try:
        return TemplateExpression(_ENV.from_string(source))
    except TemplateSyntaxError as exc:
        raise ValueError(
            f"{field}: template syntax error: {exc.message or exc} (line {exc.lineno})"
        ) from None
    except RecursionError:
        raise ValueError(f"{field}: template syntax error: nested too deeply") from None


def compile_jmespath(source: object, field: str) -> JMESPathExpression:
    """Compile a JMESPath expression, raising ValueError that names the field."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{field}: expected a non-empty JMESPath expression")
    try:
        parsed = jmespath.compile(source)
    except jmespath.exceptions.JMESPathError as exc:
        first = str(exc).split("\n", 1)[0].removesuffix(", for expression:").removesuffix(":")
        raise ValueError(f"{field}: invalid JMESPath expression: {first}") from None
    except RecursionError:
        raise ValueError(f"{field}: invalid JMESPath expression: nested too deeply") from None
    unknown = _unknown_functions(parsed.parsed)
    if unknown:
        raise ValueError(f"{field}: invalid JMESPath expression: unknown function {unknown}()")
    return JMESPathExpression(parsed)


def compile_expression(spec: object, field: str) -> Expression:
    """Compile a field's spec: a template string or `{jmespath: expression}`."""
    if isinstance(spec, str):
        return compile_template(spec, field)
    if is_jmespath_spec(spec):
        return compile_jmespath(spec["jmespath"], f"{field}.jmespath")
    raise ValueError(f"{field}: expected a template string or {{jmespath: expression}}")


def is_jmespath_spec(spec: object) -> TypeGuard[Mapping[str, Any]]:
    """Return whether a spec is exactly `{jmespath: ...}` (so no label may be named jmespath)."""
    return isinstance(spec, Mapping) and list(spec) == ["jmespath"]


_FUNCTIONS = frozenset(jmespath.functions.Functions.FUNCTION_TABLE)


def _unknown_functions(tree: Any) -> str | None:
    """Find a call to a function JMESPath does not have; it would only fail at search time."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "function_expression" and node.get("value") not in _FUNCTIONS:
            return str(node.get("value"))
        stack.extend(node.get("children", ()))
    return None
