"""Working tickets from Slack: reply delivery state and template use on messages,
versioned reply templates, and the unclaimed-ticket nudge time.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "template_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_template_versions_name_version"),
    )
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("delivery_status", sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column("template_name", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("template_version", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_messages_template_name"), ["template_name"], unique=False)
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("nudged_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_column("nudged_at")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_template_name"))
        batch_op.drop_column("template_version")
        batch_op.drop_column("template_name")
        batch_op.drop_column("delivery_status")
    op.drop_table("template_versions")
