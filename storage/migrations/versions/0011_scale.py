"""scale: indexes that serve the lists and the scheduler; looked-up markers as columns

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same predicates as storage/models.py (a migration keeps its own copy: models change).
CASES_ACTIVE = (
    "status IN ('submitted', 'accepted', 'in_progress', 'needs_supplement', 'completed', "
    "'delivered')"
)
QUESTIONS_OPEN = "status IN ('open', 'forwarded')"
QUESTIONS_CHASED = f"{QUESTIONS_OPEN} AND escalation_level < 2"
CASES_REMINDABLE = (
    "reminded_at IS NULL AND due_at IS NOT NULL "
    "AND status IN ('submitted', 'accepted', 'in_progress')"
)


def _partial(name: str, table: str, columns: list[str], where: str) -> None:
    op.create_index(
        name,
        table,
        columns,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    with op.batch_alter_table("announcements") as batch:
        batch.add_column(sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("announcement_id", sa.Integer(), nullable=True))

    # Markers that used to be prefix searches over the outbox.
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE announcements SET reported_at = (SELECT o.created_at FROM outbox o "
            "WHERE o.idempotency_key = :head || announcements.id || :tail)"
        ),
        {"head": "announcement:", "tail": ":report"},
    )
    unreported = bind.execute(sa.text("SELECT id FROM announcements WHERE reported_at IS NULL"))
    for (announcement_id,) in unreported.all():
        bind.execute(
            sa.text("UPDATE outbox SET announcement_id = :id WHERE idempotency_key LIKE :prefix"),
            {"id": announcement_id, "prefix": f"announcement:{announcement_id}:applicant:%"},
        )
    op.execute(
        "UPDATE cases SET follow_up_asked_at = (SELECT max(e.at) FROM case_events e "
        "WHERE e.case_id = cases.id AND e.to_status = 'delivered') "
        "WHERE status = 'delivered' AND follow_up_asked_at IS NULL"
    )

    op.drop_index("ix_cases_applicant_id", table_name="cases")
    op.create_index("ix_cases_applicant_created", "cases", ["applicant_id", "created_at", "id"])
    _partial("ix_cases_active", "cases", ["updated_at", "id"], CASES_ACTIVE)
    _partial("ix_cases_due", "cases", ["due_at", "id"], CASES_REMINDABLE)
    op.create_index("ix_cases_follow_up", "cases", ["status", "follow_up_asked_at"])
    op.create_index("ix_case_items_department", "case_items", ["department_id", "case_id"])
    _partial("ix_questions_open", "questions", ["id"], QUESTIONS_OPEN)
    _partial("ix_questions_chased", "questions", ["created_at", "id"], QUESTIONS_CHASED)
    _partial("ix_announcements_unreported", "announcements", ["id"], "reported_at IS NULL")
    _partial(
        "ix_outbox_announcement",
        "outbox",
        ["announcement_id", "status"],
        "announcement_id IS NOT NULL",
    )
    op.create_index("ix_key_projects_follow_up", "key_projects", ["next_follow_up_at"])
    op.create_index("ix_problems_open", "problems", ["status", "level_since"])


def downgrade() -> None:
    op.drop_index("ix_problems_open", table_name="problems")
    op.drop_index("ix_key_projects_follow_up", table_name="key_projects")
    op.drop_index("ix_outbox_announcement", table_name="outbox")
    op.drop_index("ix_announcements_unreported", table_name="announcements")
    op.drop_index("ix_questions_chased", table_name="questions")
    op.drop_index("ix_questions_open", table_name="questions")
    op.drop_index("ix_case_items_department", table_name="case_items")
    op.drop_index("ix_cases_follow_up", table_name="cases")
    op.drop_index("ix_cases_due", table_name="cases")
    op.drop_index("ix_cases_active", table_name="cases")
    op.drop_index("ix_cases_applicant_created", table_name="cases")
    op.create_index("ix_cases_applicant_id", "cases", ["applicant_id"])
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("announcement_id")
    with op.batch_alter_table("announcements") as batch:
        batch.drop_column("reported_at")
