"""engine: index the outbox's leased messages

The outbox sender asks when the next message falls due on every run; a leased message is due
when its lease ends, and this index finds the earliest lease without reading every pending
message (10,000 of them during a burst of outgoing webhooks).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 18:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.create_index("ix_outbox_leased", ["status", "claimed_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_leased")
