"""wechat: followers (source scene, last message) and callbacks already taken

Revision ID: 0009
Revises: 0004
Create Date: 2026-11-29 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0004"
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
    op.create_table(
        "wechat_seen",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_wechat_seen")),
    )
    with op.batch_alter_table("wechat_seen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wechat_seen_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wechat_seen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wechat_seen_seen_at"))
    op.drop_table("wechat_seen")
    op.drop_table("wechat_followers")
