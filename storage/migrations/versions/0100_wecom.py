"""wecom: staff UserIDs in WeCom (企业微信 / 政务微信) and the template cards sent there

Revision ID: 0100
Revises: 0011
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0100"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("wecom_userid", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("wecom_unreachable", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_unique_constraint(op.f("uq_staff_wecom_userid"), ["wecom_userid"])
    op.create_table(
        "wecom_cards",
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("notice", sa.String(length=200), nullable=False),
        sa.Column("buttons", sa.JSON(), nullable=False),
        sa.Column("response_code", sa.String(length=200), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.Integer(), nullable=True),
        sa.Column("done_label", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_wecom_cards_staff_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["done_by"], ["staff.id"], name=op.f("fk_wecom_cards_done_by_staff")
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_wecom_cards")),
    )
    op.create_index(op.f("ix_wecom_cards_notice"), "wecom_cards", ["notice"])


def downgrade() -> None:
    op.drop_index(op.f("ix_wecom_cards_notice"), table_name="wecom_cards")
    op.drop_table("wecom_cards")
    with op.batch_alter_table("staff") as batch:
        batch.drop_constraint(op.f("uq_staff_wecom_userid"), type_="unique")
        batch.drop_column("wecom_unreachable")
        batch.drop_column("wecom_userid")
