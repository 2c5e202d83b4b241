"""monthly_reports: the months whose 工作简报 was sent (once per month across workers)

Revision ID: 0500
Revises: 0310
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0500"
down_revision: str | None = "0310"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monthly_reports",
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_monthly_reports")),
    )


def downgrade() -> None:
    op.drop_table("monthly_reports")
