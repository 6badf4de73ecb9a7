"""After hours: urgency rules, each ticket's triage, pages and their attempts,
automatic replies (for the per-sender cap) and templates switched to automatic.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "template_automations",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("when", sa.String(length=16), nullable=False),
        sa.Column("match_kind", sa.String(length=10), nullable=False),
        sa.Column("match_pattern", sa.String(length=320), nullable=False),
        sa.Column("enabled_by", sa.String(length=32), nullable=False),
        sa.Column("enabled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "urgency_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("pattern", sa.String(length=320), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "auto_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("template_name", sa.String(length=120), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("auto_replies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auto_replies_address"), ["address"], unique=False)
        batch_op.create_index(batch_op.f("ix_auto_replies_sent_at"), ["sent_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_auto_replies_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=14), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("next_step_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=32), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id"),
    )
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pages_next_step_at"), ["next_step_at"], unique=False)

    op.create_table(
        "ticket_triage",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("after_hours", sa.Boolean(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=400), nullable=False),
        sa.Column("auto_reply", sa.String(length=120), nullable=True),
        sa.Column("triaged_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.create_table(
        "page_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("dnd", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["page_id"],
            ["pages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("page_id", "step", "user_id", name="uq_page_attempts_step_user"),
    )
    with op.batch_alter_table("page_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_page_attempts_page_id"), ["page_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("page_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_page_attempts_page_id"))

    op.drop_table("page_attempts")
    op.drop_table("ticket_triage")
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pages_next_step_at"))

    op.drop_table("pages")
    with op.batch_alter_table("auto_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auto_replies_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_auto_replies_sent_at"))
        batch_op.drop_index(batch_op.f("ix_auto_replies_address"))

    op.drop_table("auto_replies")
    op.drop_table("urgency_rules")
    op.drop_table("template_automations")
