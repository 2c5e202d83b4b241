"""web chat: 查询码 on cases, applicant source tag, case viewers, web chat history

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-29 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("query_code", sa.String(length=6), nullable=True))
    with op.batch_alter_table("applicants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=20), nullable=True))
    op.create_table(
        "case_viewers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("applicant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["applicant_id"],
            ["applicants.id"],
            name=op.f("fk_case_viewers_applicant_id_applicants"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_viewers_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_viewers")),
        sa.UniqueConstraint("case_id", "applicant_id", name=op.f("uq_case_viewers_case_id")),
    )
    op.create_index(
        op.f("ix_case_viewers_applicant_id"), "case_viewers", ["applicant_id"], unique=False
    )
    op.create_table(
        "web_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_messages")),
    )
    op.create_index("ix_web_messages_chat", "web_messages", ["chat_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_web_messages_chat", table_name="web_messages")
    op.drop_table("web_messages")
    op.drop_index(op.f("ix_case_viewers_applicant_id"), table_name="case_viewers")
    op.drop_table("case_viewers")
    with op.batch_alter_table("applicants", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("query_code")
