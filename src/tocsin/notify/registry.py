"""Find channels (entry-point group `tocsin.notifiers`) and build them from their settings.

An entry point names a factory `(settings or None) -> Channel`; the settings are the JSON of
the channel's ChannelSettingsRow (written from the config file), None when there is none.
SMS and voice share one Twilio account: their factories get `channels.twilio` merged with
their own entry (which holds only the delivery throttle).

A channel that is not set up, or set up wrongly, still exists: its send() fails permanently
with a sentence saying what to fix, so the message is marked failed (and the person's next
notification rule goes out) instead of waiting for a server nobody configured.

The group of the first on-call release, `tocsin.channels`, is still read, so plug-ins built
for it keep working; `tocsin.notifiers` wins when both name a channel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

import orjson
from sqlalchemy import select

from tocsin.notify.base import Channel
from tocsin.notify.email import TLS_MODES, EmailChannel, SmtpSettings
from tocsin.notify.mattermost import MattermostChannel
from tocsin.notify.ntfy import NtfyChannel, NtfySettings
from tocsin.notify.settings import Unconfigured, flag, number, text
from tocsin.notify.slack import SlackChannel, SlackSettings
from tocsin.notify.teams import TeamsChannel
from tocsin.notify.twilio import SmsChannel, TwilioGateway, TwilioSettings, VoiceChannel
from tocsin.notify.webhook import TIMEOUT, WebhookChannel
from tocsin.storage.db import Database
from tocsin.storage.oncall_tables import ChannelSettingsRow

log = logging.getLogger("tocsin.notify")

ENTRY_POINT_GROUP = "tocsin.notifiers"
LEGACY_ENTRY_POINT_GROUP = "tocsin.channels"
ChannelFactory = Callable[[Mapping[str, Any] | None], Channel]
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
# Channels whose account settings live under another name.
SHARED_SETTINGS = {"sms": "twilio", "voice": "twilio"}

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "ChannelFactory",
    "ChannelRegistry",
    "Unconfigured",
    "email_channel",
    "factories",
    "mattermost_channel",
    "ntfy_channel",
    "slack_channel",
    "sms_channel",
    "smtp_settings",
    "teams_channel",
    "voice_channel",
    "webhook_channel",
]


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
        host=text(raw, "host") or "",
        port=number(raw, "port", int, DEFAULT_PORTS[tls]),
        from_address=str(from_address),
        tls=tls,
        username=text(raw, "username"),
        password=text(raw, "password"),
        timeout=number(raw, "timeout", float, 10.0),
        verify=flag(raw, "verify", default=True),
        ca_file=text(raw, "ca_file"),
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
        timeout = number(raw or {}, "timeout", float, TIMEOUT)
    except ValueError as exc:
        return Unconfigured("webhook", f"bad settings in channels.webhook: {exc}")
    return WebhookChannel(timeout=timeout)


def slack_channel(raw: Mapping[str, Any] | None) -> Channel:
    """Build the Slack channel: Web API with a token, or an incoming webhook."""
    try:
        settings = SlackSettings.from_config(dict(raw or {}))
    except ValueError as exc:
        return Unconfigured("slack", f"bad settings in channels.slack: {exc}")
    # Even without a token or webhook URL it posts to webhook URLs given as destinations;
    # other messages fail, saying what is missing.
    return SlackChannel(settings)


def teams_channel(raw: Mapping[str, Any] | None) -> Channel:
    """Build the Microsoft Teams channel (incoming webhooks; `timeout` is optional)."""
    try:
        return TeamsChannel(timeout=number(raw or {}, "timeout", float, TIMEOUT))
    except ValueError as exc:
        return Unconfigured("teams", f"bad settings in channels.teams: {exc}")


def mattermost_channel(raw: Mapping[str, Any] | None) -> Channel:
    """Build the Mattermost channel (incoming webhooks; `timeout`, `username` optional)."""
    raw = raw or {}
    try:
        timeout = number(raw, "timeout", float, TIMEOUT)
    except ValueError as exc:
        return Unconfigured("mattermost", f"bad settings in channels.mattermost: {exc}")
    return MattermostChannel(timeout=timeout, username=text(raw, "username"))


def ntfy_channel(raw: Mapping[str, Any] | None) -> Channel:
    """Build the ntfy channel (ntfy.sh unless `url` names another server)."""
    try:
        return NtfyChannel(NtfySettings.from_config(raw or {}))
    except ValueError as exc:
        return Unconfigured("ntfy", f"bad settings in channels.ntfy: {exc}")


def _twilio(name: str, raw: Mapping[str, Any] | None) -> TwilioGateway | Unconfigured:
    if not raw or not raw.get("account_sid"):
        return Unconfigured(name, "no Twilio account is set up (config section channels.twilio)")
    try:
        return TwilioGateway(TwilioSettings.from_config(raw))
    except ValueError as exc:
        return Unconfigured(name, f"bad settings in channels.twilio: {exc}")


def sms_channel(raw: Mapping[str, Any] | None) -> Channel:
    """Build the SMS channel from the Twilio account settings."""
    gateway = _twilio("sms", raw)
    return gateway if isinstance(gateway, Unconfigured) else SmsChannel(gateway)


def voice_channel(raw: Mapping[str, Any] | None) -> Channel:
    """Build the voice-call channel from the Twilio account settings."""
    gateway = _twilio("voice", raw)
    return gateway if isinstance(gateway, Unconfigured) else VoiceChannel(gateway)


# The channels Tocsin ships; also used when the installed metadata lacks the entry points
# (a stale editable install must not turn every page into a failure).
BUILTIN: dict[str, ChannelFactory] = {
    "email": email_channel,
    "slack": slack_channel,
    "teams": teams_channel,
    "mattermost": mattermost_channel,
    "webhook": webhook_channel,
    "sms": sms_channel,
    "voice": voice_channel,
    "ntfy": ntfy_channel,
}


def factories() -> dict[str, ChannelFactory]:
    """Return the channel factories by name: entry points (new group last) over built-ins."""
    found = dict(BUILTIN)
    for group in (LEGACY_ENTRY_POINT_GROUP, ENTRY_POINT_GROUP):
        for point in entry_points(group=group):
            try:
                found[point.name] = point.load()
            except Exception:
                log.exception("channel %s (%s) cannot be loaded", point.name, point.value)
    return found


def settings_for(name: str, stored: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """Return what a channel's factory gets: its own settings, over shared account ones."""
    shared = SHARED_SETTINGS.get(name)
    own = stored.get(name)
    if shared is None:
        return dict(own) if own is not None else None
    if shared not in stored and own is None:
        return None
    return {**stored.get(shared, {}), **(own or {})}


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
                raw = settings_for(name, stored)
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
