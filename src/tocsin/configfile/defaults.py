"""The built-in starting configuration for a database that has none."""

from __future__ import annotations

from importlib import resources

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tocsin.configfile.apply import apply_config
from tocsin.configfile.loader import load_config
from tocsin.configfile.report import ApplyReport
from tocsin.storage.tables import SeverityRow


def default_config_text() -> str:
    return resources.files("tocsin.configfile").joinpath("defaults.yaml").read_text("utf-8")


def apply_defaults_if_unconfigured(session: Session) -> ApplyReport | None:
    """Apply the default P0–P4 scheme and roles when no severity was ever configured.

    Archived severities count as configured: a team that pruned the defaults away must not get
    them back on the next start.
    """
    if session.scalar(select(func.count()).select_from(SeverityRow)):
        return None
    return apply_config(session, load_config(default_config_text(), "<built-in defaults>"))
