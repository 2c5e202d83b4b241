"""好差评 and service statistics: five-level ratings, 差评 items, figures kept as cases move

Revision ID: 0200
Revises: 0150
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0200"
down_revision: str | None = "0150"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The old 1–5 回访 score → the five levels (a migration keeps its own copy: models change).
LEVELS = {
    5: "very_satisfied",
    4: "satisfied",
    3: "basic",
    2: "dissatisfied",
    1: "very_dissatisfied",
}


def upgrade() -> None:
    with op.batch_alter_table("case_ratings") as batch:
        batch.add_column(sa.Column("level", sa.String(20), nullable=True))
        batch.add_column(sa.Column("points", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("channel", sa.String(20), nullable=True))
    level = sa.case(
        *((sa.column("score") == score, sa.literal(name)) for score, name in LEVELS.items()),
        else_=sa.literal(LEVELS[3]),
    )
    ratings = sa.table("case_ratings", sa.column("score"), sa.column("level"), sa.column("points"))
    # SQLite keeps JSON as text (a CAST to JSON there would make it the number 0).
    empty = "CAST('[]' AS JSON)" if op.get_bind().dialect.name == "postgresql" else "'[]'"
    op.execute(ratings.update().values(level=level, points=sa.text(empty)))
    with op.batch_alter_table("case_ratings") as batch:
        batch.alter_column("level", existing_type=sa.String(20), nullable=False)
        batch.alter_column("points", existing_type=sa.JSON(), nullable=False)
        batch.create_index("ix_case_ratings_at", ["at"])

    # Plain ADD COLUMN: SQLite's batch mode would copy `cases`, which other tables reference.
    op.add_column("cases", sa.Column("accepted_workdays", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("completed_workdays", sa.Integer(), nullable=True))
    op.add_column(
        "cases", sa.Column("late", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("questions", sa.Column("answer_hours", sa.Integer(), nullable=True))
    op.add_column("questions", sa.Column("answered_on_time", sa.Boolean(), nullable=True))
    op.create_index("ix_case_events_status_at", "case_events", ["to_status", "at"])
    op.create_index("ix_cases_created", "cases", ["created_at"])

    op.create_table(
        "consultations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultations")),
    )
    op.create_index("ix_consultations_at", "consultations", ["at"])

    op.create_table(
        "bad_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rating_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verify_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fix_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_by", sa.Integer(), nullable=True),
        sa.Column("verify_note", sa.Text(), nullable=True),
        sa.Column("fixed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fixed_by", sa.Integer(), nullable=True),
        sa.Column("fix_note", sa.Text(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.Integer(), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fix_level", sa.String(20), nullable=True),
        sa.Column("fix_rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["rating_id"], ["case_ratings.id"], name=op.f("fk_bad_ratings_rating_id_case_ratings")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_bad_ratings_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_bad_ratings_department_id_departments"),
        ),
        sa.ForeignKeyConstraint(
            ["verified_by"], ["staff.id"], name=op.f("fk_bad_ratings_verified_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["fixed_by"], ["staff.id"], name=op.f("fk_bad_ratings_fixed_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"], ["staff.id"], name=op.f("fk_bad_ratings_reviewed_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bad_ratings")),
        sa.UniqueConstraint("rating_id", name=op.f("uq_bad_ratings_rating_id")),
    )
    op.create_index("ix_bad_ratings_case_id", "bad_ratings", ["case_id"])
    op.create_index("ix_bad_ratings_status", "bad_ratings", ["status", "id"])
    op.create_index("ix_bad_ratings_opened", "bad_ratings", ["opened_at"])


def downgrade() -> None:
    op.drop_table("bad_ratings")
    op.drop_table("consultations")
    op.drop_index("ix_case_events_status_at", table_name="case_events")
    op.drop_index("ix_cases_created", table_name="cases")
    for table, column in (
        ("questions", "answered_on_time"),
        ("questions", "answer_hours"),
        ("cases", "late"),
        ("cases", "completed_workdays"),
        ("cases", "accepted_workdays"),
    ):
        op.drop_column(table, column)  # SQLite ≥ 3.35 drops a plain column in place
    with op.batch_alter_table("case_ratings") as batch:
        batch.drop_index("ix_case_ratings_at")
        batch.drop_column("channel")
        batch.drop_column("points")
        batch.drop_column("level")
