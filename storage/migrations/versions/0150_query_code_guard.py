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
    # Plain ADD COLUMN, no batch copy: on SQLite, copying `cases` would drop the table that
    # other rows reference (foreign keys on). SQLite does not enforce VARCHAR lengths, so the
    # wider code needs no change there.
    op.add_column(
        "cases", sa.Column("code_failures", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("cases", sa.Column("code_failed_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "cases", "query_code", existing_type=sa.String(length=6), type_=sa.String(length=8)
        )


def downgrade() -> None:
    # Codes issued since the upgrade are 8 characters: the column stays wide enough for them.
    # Plain DROP COLUMN (SQLite 3.35+), for the same reason as above.
    op.drop_column("cases", "code_failed_at")
    op.drop_column("cases", "code_failures")
