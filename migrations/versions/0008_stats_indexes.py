"""Indexes for the stats: tickets by creation and resolution time, events by action and
time, messages by direction and time, and each ticket's events and messages by kind and time.

Every stats figure reads one period's rows; without these, each one scans the whole
table. The per-ticket ones let a ticket's first reply, or its resolution after a template's
reply, be found among its own few rows: with only the (kind, time) indexes to choose from,
SQLite walked every reply or resolution since for every ticket (see benchmarks/bench_stats.py).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index("ix_tickets_resolved_at", "tickets", ["resolved_at"])
    op.create_index("ix_events_action_at", "events", ["action", "at"])
    op.create_index("ix_events_ticket_action_at", "events", ["ticket_id", "action", "at"])
    op.create_index("ix_messages_direction_created", "messages", ["direction", "created_at"])
    op.create_index(
        "ix_messages_ticket_direction_created", "messages", ["ticket_id", "direction", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_messages_ticket_direction_created", table_name="messages")
    op.drop_index("ix_messages_direction_created", table_name="messages")
    op.drop_index("ix_events_ticket_action_at", table_name="events")
    op.drop_index("ix_events_action_at", table_name="events")
    op.drop_index("ix_tickets_resolved_at", table_name="tickets")
    op.drop_index("ix_tickets_created_at", table_name="tickets")
