"""audiences, message templates, communication rules, stakeholder updates

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tocsin.storage.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audiences",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audiences")),
    )
    op.create_table(
        "communication_rules",
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("severities", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_communication_rules")),
    )
    op.create_table(
        "message_templates",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=True),
        sa.Column("service", sa.String(length=64), nullable=True),
        sa.Column("audience_type", sa.String(length=16), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_message_templates")),
    )
    op.create_table(
        "stakeholder_updates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("next_steps", sa.Text(), nullable=False),
        sa.Column("eta", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_stakeholder_updates_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stakeholder_updates")),
        sa.UniqueConstraint("event_id", name=op.f("uq_stakeholder_updates_event_id")),
    )
    with op.batch_alter_table("stakeholder_updates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stakeholder_updates_incident", ["incident_id", "id"], unique=False
        )

    op.create_table(
        "update_reminders",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("notified", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_update_reminders_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("incident_id", "due_at", "stage", name=op.f("pk_update_reminders")),
    )


def downgrade() -> None:
    op.drop_table("update_reminders")
    with op.batch_alter_table("stakeholder_updates", schema=None) as batch_op:
        batch_op.drop_index("ix_stakeholder_updates_incident")

    op.drop_table("stakeholder_updates")
    op.drop_table("message_templates")
    op.drop_table("communication_rules")
    op.drop_table("audiences")
