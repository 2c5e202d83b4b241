"""wechat: followers (source scene, last message)

Revision ID: 0009
Revises: 0004
Create Date: 2026-11-29 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wechat_followers",
        sa.Column("openid", sa.String(length=64), nullable=False),
        sa.Column("scene", sa.String(length=64), nullable=True),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("openid", name=op.f("pk_wechat_followers")),
    )


def downgrade() -> None:
    op.drop_table("wechat_followers")
