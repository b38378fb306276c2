"""Find channels (entry-point group `tocsin.channels`) and build them from their settings.

An entry point names a factory `(settings or None) -> Channel`; the settings are the JSON of
the channel's ChannelSettingsRow (written from the config file), None when there is none.
A channel that is not set up, or set up wrongly, still exists: its send() fails permanently
with a sentence saying what to fix, so the message is marked failed (and the person's next
notification rule goes out) instead of waiting for a server nobody configured.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, TypeVar

import orjson
from sqlalchemy import select

from tocsin.notify.base import Channel, DeliveryError, OutgoingMessage
from tocsin.notify.email import TLS_MODES, EmailChannel, SmtpSettings
from tocsin.notify.webhook import TIMEOUT, WebhookChannel
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import ChannelSettingsRow

log = logging.getLogger("tocsin.notify")

ENTRY_POINT_GROUP = "tocsin.channels"
N = TypeVar("N", int, float)
ChannelFactory = Callable[[Mapping[str, Any] | None], Channel]
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


class Unconfigured:
    """A channel that cannot send: every attempt fails permanently, saying why."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def send(self, message: OutgoingMessage) -> str | None:
        raise DeliveryError(f"{self.name} channel is not usable: {self.reason}", retryable=False)


def smtp_settings(raw: Mapping[str, Any]) -> SmtpSettings:
    """Return SMTP settings from the `channels.email` config keys (`from` → from_address).

    The port defaults by TLS mode (25, 587 for STARTTLS, 465 for SSL). Raises ValueError
    naming the bad key.
    """
    tls = str(raw.get("tls") or "none").lower()
    if tls not in TLS_MODES:
        raise ValueError(f"channels.email.tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
    from_address = raw.get("from", raw.get("from_address"))
    if not from_address:
        raise ValueError("channels.email.from is required (the sender address)")
    return SmtpSettings(
        host=_text(raw, "host") or "",
        port=_number(raw, "port", int, DEFAULT_PORTS[tls]),
        from_address=str(from_address),
        tls=tls,
        username=_text(raw, "username"),
        password=_text(raw, "password"),
        timeout=_number(raw, "timeout", float, 10.0),
        verify=_flag(raw, "verify", default=True),
        ca_file=_text(raw, "ca_file"),
    )


def email_channel(raw: Mapping[str, Any] | None) -> Channel:
    """Build the email channel, or one that explains why email cannot be sent."""
    if not raw or not raw.get("host"):
        return Unconfigured("email", "no SMTP server is set up (config section channels.email)")
    try:
        return EmailChannel(smtp_settings(raw))
    except ValueError as exc:
        return Unconfigured("email", f"bad settings in channels.email: {exc}")


def webhook_channel(raw: Mapping[str, Any] | None) -> Channel:
    """Build the webhook channel (it needs no settings; `timeout` is optional)."""
    try:
        timeout = _number(raw or {}, "timeout", float, TIMEOUT)
    except ValueError as exc:
        return Unconfigured("webhook", f"bad settings in channels.webhook: {exc}")
    return WebhookChannel(timeout=timeout)


# The channels Tocsin ships; also used when the installed metadata lacks the entry points
# (a stale editable install must not turn every page into a failure).
BUILTIN: dict[str, ChannelFactory] = {"email": email_channel, "webhook": webhook_channel}


def factories() -> dict[str, ChannelFactory]:
    """Return the channel factories by name: the entry points over the built-in ones."""
    found = dict(BUILTIN)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[point.name] = point.load()
        except Exception:
            log.exception("channel %s (%s) cannot be loaded", point.name, point.value)
    return found


def channel_settings(db: Database) -> dict[str, dict[str, Any]]:
    """Return every channel's stored settings by name."""
    with db.read() as session:
        rows = session.execute(
            select(ChannelSettingsRow.name, ChannelSettingsRow.settings).where(
                ChannelSettingsRow.archived.is_(False)
            )
        ).all()
    return {name: dict(settings or {}) for name, settings in rows}


def build(factory: ChannelFactory, name: str, raw: Mapping[str, Any] | None) -> Channel:
    """Build one channel; a factory that raises gives an Unconfigured channel."""
    try:
        return factory(raw)
    except Exception as exc:
        log.exception("channel %s cannot be built", name)
        return Unconfigured(name, f"{type(exc).__name__}: {exc}")


class ChannelRegistry:
    """The outbox sender's channel loader: channels built from the stored settings.

    Called once per sender run; a channel is rebuilt only when its settings changed, so
    connection pools (webhook) survive between runs and a config change applies at once.
    """

    def __init__(self, available: Mapping[str, ChannelFactory] | None = None) -> None:
        self._factories = dict(available) if available is not None else factories()
        self._built: dict[str, tuple[bytes, Channel]] = {}
        self._lock = threading.Lock()

    def __call__(self, db: Database) -> Mapping[str, Channel]:
        stored = channel_settings(db)
        with self._lock:
            for name, factory in self._factories.items():
                raw = stored.get(name)
                fingerprint = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
                current = self._built.get(name)
                if current is not None and current[0] == fingerprint:
                    continue
                if current is not None:
                    _close(current[1])
                self._built[name] = (fingerprint, build(factory, name, raw))
            return {name: channel for name, (_, channel) in self._built.items()}

    def close(self) -> None:
        """Close the channels that hold connections."""
        with self._lock:
            for _, channel in self._built.values():
                _close(channel)
            self._built.clear()


def _close(channel: Channel) -> None:
    close = getattr(channel, "close", None)
    if callable(close):
        close()


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return None if value is None or value == "" else str(value)


def _number(raw: Mapping[str, Any], key: str, kind: type[N], default: N) -> N:
    value = raw.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, not {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, not {value!r}") from None
    if number <= 0:
        raise ValueError(f"{key} must be positive, not {value!r}")
    return number


def _flag(raw: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "on", "1"}:
        return True
    if text in {"false", "no", "off", "0"}:
        return False
    raise ValueError(f"{key} must be true or false, not {value!r}")
