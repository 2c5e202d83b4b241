"""visits and meetings: 上门服务 of key projects, 联席会议 with agenda, units and decisions;
a meeting holds its room's slots with booking rows; a problem's owner and due date

Revision ID: 0310
Revises: 0400
Create Date: 2026-12-08 09:00:00
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0310"
down_revision: str | None = "0400"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _times(*names: str) -> list[sa.Column[dt.datetime]]:
    return [sa.Column(name, sa.DateTime(timezone=True), nullable=True) for name in names]


def upgrade() -> None:
    op.create_table(
        "visits",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(24), nullable=False),
        sa.Column("key_project_id", sa.Integer(), sa.ForeignKey("key_projects.id"), nullable=False),
        sa.Column("applicant_id", sa.Integer(), sa.ForeignKey("applicants.id"), nullable=True),
        sa.Column("proposed_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("marked_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        *_times("wanted_at", "confirmed_at", "reminded_day_at", "reminded_hour_at"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("number", name=op.f("uq_visits_number")),
    )
    op.create_index("ix_visits_key_project_id", "visits", ["key_project_id"])
    op.create_index("ix_visits_starts", "visits", ["starts_at", "status"])
    op.create_table(
        "visit_units",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("visit_id", sa.Integer(), sa.ForeignKey("visits.id"), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("departments.id"), nullable=False),
        sa.Column("confirmed_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("visit_id", "department_id", name=op.f("uq_visit_units_visit_id")),
    )
    op.create_index("ix_visit_units_visit_id", "visit_units", ["visit_id"])
    op.create_table(
        "meetings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(24), nullable=False),
        sa.Column("called_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=False),
        sa.Column("room_id", sa.Integer(), sa.ForeignKey("rooms.id"), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("minutes", sa.Text(), nullable=True),
        sa.Column("minutes_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        *_times("minutes_at", "reminded_day_at", "reminded_hour_at"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("number", name=op.f("uq_meetings_number")),
    )
    op.create_table(
        "meeting_units",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("meeting_id", sa.Integer(), sa.ForeignKey("meetings.id"), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("departments.id"), nullable=False),
        sa.Column("confirmed_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attendees", sa.String(200), nullable=True),
        sa.UniqueConstraint(
            "meeting_id", "department_id", name=op.f("uq_meeting_units_meeting_id")
        ),
    )
    op.create_index("ix_meeting_units_meeting_id", "meeting_units", ["meeting_id"])
    op.create_table(
        "meeting_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("meeting_id", sa.Integer(), sa.ForeignKey("meetings.id"), nullable=False),
        sa.Column("problem_id", sa.Integer(), sa.ForeignKey("problems.id"), nullable=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("decision", sa.String(20), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("new_problem_id", sa.Integer(), sa.ForeignKey("problems.id"), nullable=True),
        sa.Column("decided_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("meeting_id", "problem_id", name=op.f("uq_meeting_items_meeting_id")),
        sa.UniqueConstraint("meeting_id", "case_id", name="uq_meeting_items_case"),
    )
    op.create_index("ix_meeting_items_meeting_id", "meeting_items", ["meeting_id"])
    # Plain ADD COLUMN … REFERENCES on both backends: a batch copy of bookings could lose the
    # partial unique index over holding slots on SQLite (which alembic cannot ALTER otherwise).
    _add_reference("bookings", "meeting_id", "meetings")
    op.create_index("ix_bookings_meeting_id", "bookings", ["meeting_id"])
    _add_reference("problems", "owner_id", "staff")
    op.add_column("problems", sa.Column("due_on", sa.Date(), nullable=True))


def _add_reference(table: str, column: str, target: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER REFERENCES {target} (id)")
        return
    op.add_column(table, sa.Column(column, sa.Integer(), nullable=True))
    op.create_foreign_key(op.f(f"fk_{table}_{column}_{target}"), table, target, [column], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("problems") as batch:
        batch.drop_column("due_on")
        batch.drop_column("owner_id")
    op.drop_index("ix_bookings_meeting_id", "bookings")
    op.drop_column("bookings", "meeting_id")
    op.drop_table("meeting_items")
    op.drop_table("meeting_units")
    op.drop_table("meetings")
    op.drop_table("visit_units")
    op.drop_table("visits")
