"""Where links in messages and feeds point, and how action links are signed, from the settings."""

from __future__ import annotations

from tocsin.api.context import AppContext
from tocsin.config import Settings
from tocsin.services.page_messages import LinkSettings

_EXTRA_KEY = "link_settings"


def public_base_url(settings: Settings) -> str:
    """Return the base URL people reach this server at (TOCSIN_PUBLIC_URL, else host:port)."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def link_settings(settings: Settings) -> LinkSettings:
    """Return the link settings of action links and calendar URLs for these settings."""
    return LinkSettings(base_url=public_base_url(settings), secret=settings.resolved_secret_key())


def links_of(ctx: AppContext) -> LinkSettings:
    """Return the process's link settings, built once (the secret key may live in a file)."""
    links = ctx.extras.get(_EXTRA_KEY)
    if not isinstance(links, LinkSettings):
        links = link_settings(ctx.settings)
        ctx.extras[_EXTRA_KEY] = links
    return links
