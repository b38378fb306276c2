"""notifier channels (Slack, Twilio, ntfy, Teams, Mattermost): no schema change

The channels keep their settings in the existing channel_settings table and their contact
methods in contact_methods (the type is a string), so this revision changes nothing. It stays
because databases were already stamped with it when it was reserved for the channels' work.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 16:00:00
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
