"""Night work on pages can earn compensation: ledger entries may name the page.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch_op:
        batch_op.add_column(sa.Column("page_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_ledger_entries_page_id_pages", "pages", ["page_id"], ["id"])
        batch_op.create_unique_constraint("uq_ledger_page_user_kind", ["page_id", "user_id", "kind"])


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch_op:
        batch_op.drop_constraint("uq_ledger_page_user_kind", type_="unique")
        batch_op.drop_constraint("fk_ledger_entries_page_id_pages", type_="foreignkey")
        batch_op.drop_column("page_id")
