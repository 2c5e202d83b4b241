"""leases: one scheduler and one delivery loop per database

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-29 11:00:00

A lease row names a job (the scheduler; a channel's delivery loop where rows cannot be
locked) and the process holding it until `expires_at`; the holder renews it, another process
takes it over once it has expired.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
