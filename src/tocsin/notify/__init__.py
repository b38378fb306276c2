"""Outgoing channels: one module per channel behind the small `Channel` protocol.

Channels are found through the `tocsin.notifiers` entry-point group (see registry.py), so a
plug-in package can add one without touching Tocsin. Built in: email, slack, teams, mattermost,
webhook, sms, voice (both through Twilio) and ntfy.
"""

from tocsin.notify.base import Channel, DeliveryError, OutgoingMessage

__all__ = ["Channel", "DeliveryError", "OutgoingMessage"]
