"""查询码 guard: 8-character codes, wrong guesses counted per case

Revision ID: 0150
Revises: 0100
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0150"
down_revision: str | None = "0100"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.alter_column(
            "query_code", existing_type=sa.String(length=6), type_=sa.String(length=8)
        )
        batch_op.add_column(
            sa.Column("code_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("code_failed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("code_failed_at")
        batch_op.drop_column("code_failures")
        # Codes issued since upgrade are 8 characters: they would not fit a String(6).
        batch_op.alter_column(
            "query_code", existing_type=sa.String(length=8), type_=sa.String(length=8)
        )
