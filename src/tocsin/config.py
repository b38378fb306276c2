"""Process settings, read from TOCSIN_* environment variables and CLI flags.

One Settings object is built at the edge (CLI or test) and passed in; nothing imports a global.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("data")


class Settings(BaseSettings):
    """Everything a Tocsin process needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore")

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR, description="Where the default SQLite file lives."
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means sqlite:///<data_dir>/tocsin.db.",
    )
    admin_token: str | None = Field(
        default=None, description="Bootstrap API token with admin scope, for automation."
    )
    secret_key: str = Field(
        default="",
        description="Signs session cookies and CSRF tokens; generated into data_dir when empty.",
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    host: str = "127.0.0.1"
    port: int = 8080
    config_file: Path | None = Field(default=None, description="YAML applied at start-up.")
    max_body_bytes: int = 1024 * 1024
    public_url: str = Field(
        default="", description="Base URL used in links; defaults to host:port."
    )
    secure_cookies: bool = Field(default=False, description="Mark session cookies Secure (HTTPS).")
    session_max_age: int = 14 * 24 * 3600
    ingest_rate_limit: str = Field(
        default="1000/s",
        description="Per-integration request limit when the integration sets none (N/s, N/m, N/h).",
    )
    payload_retention: str = Field(
        default="30d", description="How long raw alert payloads are kept (e.g. 7d, 90d)."
    )
    enable_null_ingest: bool = Field(
        default=False,
        description="Serve POST /bench/null/enqueue (parses, answers 202, stores nothing).",
    )
    engine: bool = Field(
        default=True, description="Run the engine inside `tocsin serve` (heartbeats, cleanup)."
    )
    ingest_process: bool = Field(
        default=True,
        description="Write ingested alerts from a child process of the server, so that "
        "parsing and committing use two cores (false: a thread of the server).",
    )

    def resolved_database_url(self) -> str:
        """Return the configured URL, or the default SQLite file under data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'tocsin.db'}"

    def resolved_secret_key(self) -> str:
        """Return the secret key, creating and keeping one in data_dir when none is set.

        A generated key survives restarts so sessions stay valid; a multi-instance deployment
        must set TOCSIN_SECRET_KEY so every instance signs alike.
        """
        if self.secret_key:
            return self.secret_key
        import secrets

        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key
