"""staff on the web: bound browsers (staff_devices) and staff.web_until

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("web_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "staff_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_staff_devices_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_devices")),
    )
    op.create_index(op.f("ix_staff_devices_staff_id"), "staff_devices", ["staff_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_devices_staff_id"), table_name="staff_devices")
    op.drop_table("staff_devices")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("web_until")
