"""Reading a channel's stored settings (the JSON of its `channels.<name>` config entry).

The config file is validated at apply time; these readers still check every value, because
settings may come from an older release or a plug-in, and a channel built from bad settings
must fail with a sentence naming the key rather than with a traceback on the first page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tocsin.notify.base import DeliveryError, OutgoingMessage

N = TypeVar("N", int, float)
E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class Unconfigured:
    """A channel that cannot send: every attempt fails permanently, saying why."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def send(self, message: OutgoingMessage) -> str | None:
        """Fail for good: nothing will change until someone fixes the settings."""
        raise DeliveryError(f"{self.name} channel is not usable: {self.reason}", retryable=False)


def text(raw: Mapping[str, Any], key: str) -> str | None:
    """Return a setting as text, None when absent or empty."""
    value = raw.get(key)
    return None if value is None or value == "" else str(value)


def number(raw: Mapping[str, Any], key: str, kind: type[N], default: N) -> N:
    """Return a positive number setting, or `default` when absent; ValueError names the key."""
    value = raw.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, not {value!r}")
    try:
        parsed = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, not {value!r}") from None
    if parsed <= 0:
        raise ValueError(f"{key} must be positive, not {value!r}")
    return parsed


def flag(raw: Mapping[str, Any], key: str, *, default: bool) -> bool:
    """Return a true/false setting (YAML booleans or yes/no/on/off text)."""
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in {"true", "yes", "on", "1"}:
        return True
    if word in {"false", "no", "off", "0"}:
        return False
    raise ValueError(f"{key} must be true or false, not {value!r}")


def url(raw: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    """Return an http(s) URL setting, or `default`; ValueError when it is not one."""
    value = text(raw, key)
    if value is None:
        return default
    if not is_http_url(value):
        raise ValueError(f"{key} must be an http(s) URL, not {value!r}")
    return value


def is_http_url(value: str) -> bool:
    """Whether `value` is an absolute http(s) URL."""
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def is_e164(value: str) -> bool:
    """Whether `value` is a phone number in E.164 form (+ country code and number)."""
    return E164.fullmatch(value) is not None
