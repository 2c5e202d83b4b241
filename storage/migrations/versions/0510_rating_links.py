"""rating_links: one-time links that open a case's 好差评 without the chat identity

Revision ID: 0510
Revises: 0500
Create Date: 2026-12-07 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0510"
down_revision: str | None = "0500"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rating_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_links")),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_rating_links_case_id_cases")
        ),
        sa.UniqueConstraint("token_hash", name=op.f("uq_rating_links_token_hash")),
    )
    op.create_index(op.f("ix_rating_links_case_id"), "rating_links", ["case_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rating_links_case_id"), table_name="rating_links")
    op.drop_table("rating_links")
