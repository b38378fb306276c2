"""Jinja2 environment, display helpers and the one function every page is rendered through."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from tocsin import __version__
from tocsin.core.durations import format_duration

WEB_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

# Pages are same-origin only: no inline script, no framing. htmx runs with eval disabled and
# without its injected <style>, so neither 'unsafe-eval' nor 'unsafe-inline' is needed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Incident pages are private and change by the second: never serve them from a cache.
    "Cache-Control": "no-store",
}


@cache
def static_url(name: str) -> str:
    """Return /static/<name> with a content hash, so a new release is never served stale."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


@dataclass(frozen=True, slots=True)
class Clockface:
    """Formats times for one viewer: in their time zone, and relative to the server's now."""

    tz: ZoneInfo
    now: datetime

    @classmethod
    def for_zone(cls, name: str | None, now: datetime) -> Clockface:
        """Build a formatter for an IANA zone name, falling back to UTC."""
        try:
            tz = ZoneInfo(name or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            tz = ZoneInfo("UTC")
        return cls(tz=tz, now=now)

    def time(self, value: datetime | None) -> str:
        """Format an instant as 'YYYY-MM-DD HH:MM TZ'."""
        if value is None:
            return ""
        return value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M %Z")

    def clock(self, value: datetime) -> str:
        """Format an instant as 'HH:MM:SS' (timeline rows; the date is in the tooltip)."""
        return value.astimezone(self.tz).strftime("%H:%M:%S")

    def ago(self, value: datetime | None) -> str:
        """Format how long ago an instant was, e.g. '5m ago'."""
        if value is None:
            return ""
        seconds = int((self.now - value).total_seconds())
        if seconds < 60:
            return "just now"
        return f"{format_duration(_coarse(timedelta(seconds=seconds)))} ago"

    def after(self, start: datetime | None, end: datetime | None) -> str:
        """Format the span between two instants, e.g. '+4m'."""
        if start is None or end is None:
            return ""
        return "+" + format_duration(_coarse(max(end - start, timedelta(0))))


def _coarse(delta: timedelta) -> timedelta:
    """Keep the two largest units: '2d3h' reads better than '2d3h14m9s'."""
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        seconds -= seconds % 3600
    elif seconds >= 3600:
        seconds -= seconds % 60
    return timedelta(seconds=seconds)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.globals["version"] = __version__
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a template with the security headers every page carries."""
    response = templates.TemplateResponse(
        request,
        name,
        context,
        status_code=status_code,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )
    assert isinstance(response, HTMLResponse)
    return response
