"""stats_daily: 服务统计's daily rollup, backfilled from the cases, events and ratings

Revision ID: 0600
Revises: 0510
Create Date: 2026-12-06 07:10:00
"""

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0600"
down_revision: str | None = "0510"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of storage/rollup.py's names: a migration must not change when the code does.
CHINA = ZoneInfo("Asia/Shanghai")
COUNTED = ("accepted", "rejected", "completed", "delivered")
BATCH = 5000


def _day(moment: dt.datetime) -> dt.date:
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(CHINA).date()


def upgrade() -> None:
    op.create_table(
        "stats_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("unit_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("value", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "unit_id", "channel", "kind", "value", name=op.f("pk_stats_daily")
        ),
    )
    _backfill()


def _backfill() -> None:
    """Count the history once, in Python (one pass over each table, the same on PostgreSQL
    and SQLite, and no time-zone arithmetic in SQL); the days are China-local."""
    bind = op.get_bind()
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer()),
        sa.column("applicant_id", sa.Integer()),
        sa.column("created_at", sa.DateTime()),
        sa.column("accepted_workdays", sa.Integer()),
        sa.column("completed_workdays", sa.Integer()),
        sa.column("late", sa.Boolean()),
    )
    applicants = sa.table(
        "applicants",
        sa.column("id", sa.Integer()),
        sa.column("channel", sa.String()),
        sa.column("source", sa.String()),
    )
    items = sa.table(
        "case_items", sa.column("case_id", sa.Integer()), sa.column("department_id", sa.Integer())
    )
    events = sa.table(
        "case_events",
        sa.column("case_id", sa.Integer()),
        sa.column("to_status", sa.String()),
        sa.column("at", sa.DateTime()),
    )
    ratings = sa.table(
        "case_ratings",
        sa.column("case_id", sa.Integer()),
        sa.column("level", sa.String()),
        sa.column("at", sa.DateTime()),
    )
    channel_of = {
        i: ("qr" if source is not None else str(channel))
        for i, channel, source in bind.execute(
            sa.select(applicants.c.id, applicants.c.channel, applicants.c.source)
        )
    }
    units: dict[int, set[int]] = {}
    for case_id, unit in bind.execute(
        sa.select(items.c.case_id, items.c.department_id)
        .where(items.c.department_id.is_not(None))
        .distinct()
    ):
        units.setdefault(case_id, set()).add(unit)
    facts: dict[int, tuple[str, int | None, int | None, bool]] = {}
    counted: Counter[tuple[dt.date, int, str, str, int]] = Counter()

    def add(case_id: int, at: dt.datetime, kinds: list[tuple[str, int]]) -> None:
        channel = facts[case_id][0]
        for unit in {0, *units.get(case_id, ())}:
            for kind, value in kinds:
                counted[(_day(at), unit, channel, kind, value)] += 1

    for case_id, applicant, created, accepted, completed, late in bind.execute(sa.select(cases)):
        facts[case_id] = (channel_of.get(applicant, "web"), accepted, completed, late)
        add(case_id, created, [("received", 0)])
    for case_id, status, at in bind.execute(
        sa.select(events.c.case_id, events.c.to_status, events.c.at).where(
            events.c.to_status.in_(COUNTED)
        )
    ):
        _, accepted, completed, late = facts[case_id]
        kinds = [(str(status), 0)]
        if status == "accepted" and accepted is not None:
            kinds.append(("accepted_workdays", accepted))
        if status == "completed":
            if completed is not None:
                kinds.append(("completed_workdays", completed))
            if not late:
                kinds.append(("completed_on_time", 0))
        add(case_id, at, kinds)
    for case_id, level, at in bind.execute(sa.select(ratings)):
        add(case_id, at, [("rating:" + str(level), 0)])

    table = sa.table(
        "stats_daily",
        *(sa.column(name) for name in ("day", "unit_id", "channel", "kind", "value", "count")),
    )
    rows = [
        {"day": d, "unit_id": u, "channel": c, "kind": k, "value": v, "count": n}
        for (d, u, c, k, v), n in counted.items()
    ]
    for start in range(0, len(rows), BATCH):
        bind.execute(table.insert(), rows[start : start + BATCH])


def downgrade() -> None:
    op.drop_table("stats_daily")
