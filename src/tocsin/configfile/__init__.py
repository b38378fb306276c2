"""Configuration as code: `tocsin apply -f FILE` and `tocsin export`."""

from tocsin.configfile.apply import apply_config
from tocsin.configfile.errors import ConfigError, ConfigIssue
from tocsin.configfile.export import export_config
from tocsin.configfile.loader import load_config
from tocsin.configfile.report import ApplyReport, Change
from tocsin.configfile.schema import ConfigDocument

__all__ = [
    "ApplyReport",
    "Change",
    "ConfigDocument",
    "ConfigError",
    "ConfigIssue",
    "apply_config",
    "export_config",
    "load_config",
]
