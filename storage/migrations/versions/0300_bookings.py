"""bookings: 对接洽谈室 rooms, 预约洽谈 bookings (one holding booking per slot), attending units

Revision ID: 0300
Revises: 0200
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0300"
down_revision: str | None = "0200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same predicate as storage/models.py (a migration keeps its own copy: models change).
HOLDING = "status <> 'cancelled'"


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("sort", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rooms")),
        sa.UniqueConstraint("code", name=op.f("uq_rooms_code")),
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(24), nullable=False),
        sa.Column("submission_key", sa.String(64), nullable=False),
        sa.Column("applicant_id", sa.Integer(), sa.ForeignKey("applicants.id"), nullable=True),
        sa.Column("booked_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("room_id", sa.Integer(), sa.ForeignKey("rooms.id"), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=True),
        sa.Column("key_project_id", sa.Integer(), sa.ForeignKey("key_projects.id"), nullable=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("company", sa.String(100), nullable=True),
        sa.Column("contact_name", sa.String(40), nullable=False),
        sa.Column("contact_phone", sa.String(32), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("marked_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("reminded_day_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_hour_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("number", name=op.f("uq_bookings_number")),
        sa.UniqueConstraint(
            "applicant_id", "submission_key", name=op.f("uq_bookings_applicant_id")
        ),
    )
    op.create_index("ix_bookings_applicant_id", "bookings", ["applicant_id"])
    op.create_index("ix_bookings_starts", "bookings", ["starts_at", "status"])
    op.create_index(
        "uq_bookings_slot",
        "bookings",
        ["room_id", "starts_at"],
        unique=True,
        postgresql_where=sa.text(HOLDING),
        sqlite_where=sa.text(HOLDING),
    )
    op.create_table(
        "booking_units",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("booking_id", sa.Integer(), sa.ForeignKey("bookings.id"), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("departments.id"), nullable=False),
        sa.Column("confirmed_by", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint(
            "booking_id", "department_id", name=op.f("uq_booking_units_booking_id")
        ),
    )
    op.create_index("ix_booking_units_booking_id", "booking_units", ["booking_id"])


def downgrade() -> None:
    op.drop_table("booking_units")
    op.drop_table("bookings")
    op.drop_table("rooms")
