"""agencies: 第三方专业机构, their agents and assignments, 经办人意见 drafts, the audit log

Revision ID: 0400
Revises: 0300
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0400"
down_revision: str | None = "0300"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit log is append-only for everyone but a superuser: UPDATE and TRUNCATE are refused,
# DELETE only of records older than the legal minimum (网络安全法 Art. 21: six months), which
# the retention purge removes once AUDIT_RETENTION_DAYS (≥ 180) have passed.
MINIMUM_DAYS = 180
PG_FUNCTION = f"""
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.at < now() - interval '{MINIMUM_DAYS} days' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""
PG_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    f"WHEN OLD.at >= datetime('now', '-{MINIMUM_DAYS} days') "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("contract_number", sa.String(length=60), nullable=False),
        sa.Column("contract_start", sa.Date(), nullable=False),
        sa.Column("contract_end", sa.Date(), nullable=False),
        sa.Column("department_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("warned_for", sa.Date(), nullable=True),
        sa.Column("ended_for", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["departments.id"],
            name=op.f("fk_agencies_department_id_departments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agencies")),
        sa.UniqueConstraint("code", name=op.f("uq_agencies_code")),
    )
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agency_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_staff_agency_id_agencies"), "agencies", ["agency_id"], ["id"]
        )
    op.create_table(
        "agency_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("key_project_id", sa.Integer(), nullable=True),
        sa.Column("assigned_by", sa.Integer(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_by", sa.Integer(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agencies.id"], name=op.f("fk_agency_assignments_agency_id_agencies")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["staff.id"], name=op.f("fk_agency_assignments_agent_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_agency_assignments_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["key_project_id"],
            ["key_projects.id"],
            name=op.f("fk_agency_assignments_key_project_id_key_projects"),
        ),
        sa.ForeignKeyConstraint(
            ["assigned_by"], ["staff.id"], name=op.f("fk_agency_assignments_assigned_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["ended_by"], ["staff.id"], name=op.f("fk_agency_assignments_ended_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_assignments")),
    )
    for column in ("agency_id", "case_id", "key_project_id"):
        op.create_index(
            op.f(f"ix_agency_assignments_{column}"), "agency_assignments", [column], unique=False
        )
    op.create_table(
        "opinion_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_by", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_opinion_drafts_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["staff.id"], name=op.f("fk_opinion_drafts_author_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["confirmed_by"], ["staff.id"], name=op.f("fk_opinion_drafts_confirmed_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opinion_drafts")),
    )
    op.create_index(op.f("ix_opinion_drafts_case_id"), "opinion_drafts", ["case_id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("actor_kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("case_number", sa.String(length=20), nullable=True),
        sa.Column("key_project_id", sa.Integer(), nullable=True),
        sa.Column("applicant_id", sa.Integer(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_case", "audit_log", ["case_id", "id"], unique=False)
    op.create_index("ix_audit_log_actor", "audit_log", ["actor_id", "id"], unique=False)
    op.create_index("ix_audit_log_day", "audit_log", ["day", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_index("ix_audit_log_day", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_case", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_opinion_drafts_case_id"), table_name="opinion_drafts")
    op.drop_table("opinion_drafts")
    for column in ("key_project_id", "case_id", "agency_id"):
        op.drop_index(op.f(f"ix_agency_assignments_{column}"), table_name="agency_assignments")
    op.drop_table("agency_assignments")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_staff_agency_id_agencies"), type_="foreignkey")
        batch_op.drop_column("agency_id")
    op.drop_table("agencies")
