"""case work: submission keys per applicant, the leader asked to instruct, 其他事项 length

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 11:20:00

Hand-written. A draft token now names a submission of one applicant only (two applicants
whose tokens collide no longer lose a draft), and a case may name the leader whom the window
asked for a 领导批示 (leaders see those cases). An item typed as 其他事项 may be as long as
the dialog allows (500); at 200 a long one failed the whole submission on PostgreSQL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("case_items", schema=None) as batch_op:
        batch_op.alter_column(
            "name", existing_type=sa.String(length=200), type_=sa.String(length=500)
        )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("uq_cases_submission_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_cases_applicant_id", ["applicant_id", "submission_key"]
        )
        batch_op.add_column(sa.Column("leader_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_cases_leader_id_staff", "staff", ["leader_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("fk_cases_leader_id_staff", type_="foreignkey")
        batch_op.drop_column("leader_id")
        batch_op.drop_constraint("uq_cases_applicant_id", type_="unique")
        batch_op.create_unique_constraint("uq_cases_submission_key", ["submission_key"])
    with op.batch_alter_table("case_items", schema=None) as batch_op:
        batch_op.alter_column(
            "name", existing_type=sa.String(length=500), type_=sa.String(length=200)
        )
