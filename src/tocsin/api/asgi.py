"""ASGI entry point for multi-worker serving: `uvicorn tocsin.api.asgi:app` (settings from env)."""

from __future__ import annotations

from tocsin.api.app import create_app
from tocsin.config import Settings

_settings = Settings()
app = create_app(_settings, run_engine=_settings.engine)
