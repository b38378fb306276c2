"""Jinja2 templates that config authors write for alerts (grouping keys), sandboxed."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def render_group_key(source: str, view: Mapping[str, Any]) -> str:
    """Render a grouping template with the alert's fields and labels; errors group apart."""
    try:
        return _compiled(source).render(labels=view, **view).strip()
    except Exception as exc:  # noqa: BLE001 - a template error must not lose the alert
        return f"template-error:{type(exc).__name__}"
