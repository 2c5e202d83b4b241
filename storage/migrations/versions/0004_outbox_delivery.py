"""outbox delivery: indexes for claiming due rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:00:00

Hand-written. The worker's claim (storage/outbox.py claim_due) walks a channel's pending rows
in id order and probes, for each, the oldest pending row of its chat. Both are index range
scans with these indexes, whatever the number of sent rows. Plain rather than partial indexes
(WHERE status = 'pending'): the status is a bind parameter, and PostgreSQL's generic plans
for prepared statements (asyncpg prepares every query) cannot use a partial index then.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_due", "outbox", ["channel", "status", "id"])
    op.create_index("ix_outbox_chat_queue", "outbox", ["channel", "chat_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_chat_queue", table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox")
