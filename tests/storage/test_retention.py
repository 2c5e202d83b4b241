"""Retention: what is past its period goes, everything else stays (both backends)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from bot import delivery
from bot.app import App
from bot.cli import app as cli
from domain.retention import Retention, purge
from storage import applicants, cases, files, outbox
from storage.cases import ApplicationData
from storage.models import (
    Applicant,
    Case,
    CaseEvent,
    CaseFile,
    CaseStatus,
    OutboxMessage,
    OutboxStatus,
    Question,
    QuestionMessage,
    QuestionStatus,
    StoredFile,
    utcnow,
)
from storage.outbox import Recipient
from storage.retention import Purged

DATA = ApplicationData(
    project_kind="general",
    company="湖南某某科技有限公司",
    credit_code=None,
    project_name="某某项目",
    project_code=None,
    contact_name="李雷",
    contact_phone="+8613900001111",
    project_summary="用于测试的项目简介。",
    item_codes=("construction_permit",),
    other_items=None,
)
NOW = utcnow()
YEARS_AGO = NOW - dt.timedelta(days=4 * 365)
WEEKS_AGO = NOW - dt.timedelta(days=40)


async def make_case(app: App, chat_id: str, key: str, upload: bytes) -> tuple[str, str]:
    """A case with an uploaded file; returns its number and the file's hash."""
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", chat_id)
        case = await cases.create(session, applicant.id, DATA, key)
        link = await files.attach(
            session, app.services.files_dir, case.id, "a.pdf", upload, "application/pdf",
            "supplement", "applicant",
        )  # fmt: skip
        return case.number, link.sha256


async def age(app: App, number: str, status: CaseStatus, when: dt.datetime) -> None:
    async with app.services.db.transaction() as session:
        await session.execute(
            update(Case).where(Case.number == number).values(status=status, updated_at=when)
        )
        await session.execute(update(StoredFile).values(created_at=when))


async def make_question(app: App, chat_id: str, status: QuestionStatus, when: dt.datetime) -> int:
    async with app.services.db.transaction() as session:
        applicant = await applicants.get_or_create(session, "test", chat_id)
        question = Question(applicant_id=applicant.id, text="问题", status=status, updated_at=when)
        session.add(question)
        await session.flush()
        session.add(QuestionMessage(question_id=question.id, author_kind="applicant", text="问题"))
        return question.id


async def count(app: App, model: type, *where: object) -> int:
    async with app.services.db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def test_purge_removes_only_what_is_past_its_period(app: App) -> None:
    old_number, old_file = await make_case(app, "old", "k-old", b"old upload")
    await age(app, old_number, CaseStatus.CLOSED, YEARS_AGO)
    new_number, new_file = await make_case(app, "new", "k-new", b"new upload")
    old_question = await make_question(app, "old", QuestionStatus.ANSWERED, YEARS_AGO)
    open_question = await make_question(app, "new", QuestionStatus.OPEN, YEARS_AGO)
    async with app.services.db.transaction() as session:
        for n, when in enumerate((WEEKS_AGO, NOW)):
            row = outbox.enqueue(session, Recipient("test", "new"), f"您好 {n}", key=f"n{n}")
            row.created_at, row.status = when, OutboxStatus.SENT
    old_path = files.path_for(app.services.files_dir, old_file)
    assert old_path.exists()

    counted = await purge(app.services.db, app.services.files_dir, Retention(), NOW, dry_run=True)
    assert (counted.cases, counted.questions, counted.files, counted.outbox_texts) == (1, 1, 1, 1)
    assert await count(app, Case) == 2 and old_path.exists()  # a dry run changes nothing

    purged = await purge(app.services.db, app.services.files_dir, Retention(), NOW)
    assert purged == counted
    async with app.services.db.sessions() as session:
        assert await cases.by_number(session, old_number) is None
        assert await cases.by_number(session, new_number) is not None
        assert await session.get(Question, old_question) is None
        assert await session.get(Question, open_question) is not None
        notices = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert await count(app, CaseEvent) == 1 and await count(app, CaseFile) == 1
    assert await count(app, StoredFile, StoredFile.sha256 == old_file) == 0
    assert not old_path.exists()
    assert files.path_for(app.services.files_dir, new_file).exists()
    assert [(n.text, n.status) for n in notices] == [("", "sent"), ("您好 1", "sent")]
    assert notices[0].idempotency_key == "n0"  # the row stays, without its text
    again = await purge(app.services.db, app.services.files_dir, Retention(), NOW)
    assert (again.cases, again.questions, again.files, again.outbox_texts) == (0, 0, 0, 0)


def test_purge_needs_dry_run_or_yes() -> None:
    result = CliRunner().invoke(cli, ["purge"])
    assert result.exit_code == 2 and "--dry-run" in result.output


async def test_files_of_a_case_handed_over_a_year_ago_go_the_case_stays(app: App) -> None:
    """A delivered (交接/送达) case keeps its record; its uploads go a year after delivery."""
    old_number, old_file = await make_case(app, "a", "k-a", b"handed over long ago")
    recent_number, recent_file = await make_case(app, "b", "k-b", b"handed over lately")
    open_number, open_file = await make_case(app, "c", "k-c", b"still being worked on")
    year_and_a_day = NOW - dt.timedelta(days=366)
    async with app.services.db.transaction() as session:
        for number, status, when in (
            (old_number, CaseStatus.DELIVERED, year_and_a_day),
            (recent_number, CaseStatus.DELIVERED, NOW - dt.timedelta(days=300)),
            (open_number, CaseStatus.IN_PROGRESS, year_and_a_day),
        ):
            await session.execute(
                update(Case).where(Case.number == number).values(status=status, updated_at=when)
            )
        await session.execute(update(StoredFile).values(created_at=year_and_a_day))

    purged = await purge(app.services.db, app.services.files_dir, Retention(), NOW)

    assert (purged.cases, purged.files) == (0, 1)
    async with app.services.db.sessions() as session:
        for number in (old_number, recent_number, open_number):
            assert await cases.by_number(session, number) is not None
        linked = set((await session.scalars(select(CaseFile.sha256))).all())
    assert linked == {recent_file, open_file}
    assert not files.path_for(app.services.files_dir, old_file).exists()
    for kept in (recent_file, open_file):
        assert files.path_for(app.services.files_dir, kept).exists()


async def test_applicants_left_with_nothing_are_deleted(app: App) -> None:
    """Deleted with the oldest kind of data (cases, 3 years): first seen before that, with no
    case, no question and no subscription."""
    long_ago, two_years = YEARS_AGO, NOW - dt.timedelta(days=2 * 365)
    async with app.services.db.transaction() as session:
        for chat_id in ("nothing", "subscribed", "asked", "new"):
            await applicants.get_or_create(session, "test", chat_id)
        await session.execute(
            update(Applicant).where(Applicant.chat_id != "new").values(created_at=long_ago)
        )
        await session.execute(
            update(Applicant).where(Applicant.chat_id == "new").values(created_at=two_years)
        )
        await session.execute(
            update(Applicant).where(Applicant.chat_id == "subscribed").values(subscribed=True)
        )
    await make_question(app, "asked", QuestionStatus.OPEN, long_ago)

    purged = await purge(app.services.db, app.services.files_dir, Retention(), NOW)

    async with app.services.db.sessions() as session:
        left = set((await session.scalars(select(Applicant.chat_id))).all())
    assert left == {"subscribed", "asked", "new"}
    assert purged.applicants == 1


async def test_the_scheduler_purges_hourly(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The purge is one of the scheduler's jobs, run at most once an hour however often the
    scheduler ticks."""
    clock = [5000.0]
    monkeypatch.setattr(delivery, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    runs: list[dt.datetime] = []

    async def counted(*args: object, **kwargs: object) -> Purged:
        runs.append(NOW)
        return Purged()

    monkeypatch.setattr(delivery, "purge", counted)
    job, _contracts = delivery.scheduled_jobs(app.settings)  # as `worker` and `run` build them
    await job(app.services)
    assert len(runs) == 1  # the first tick purges at once
    for _ in range(3):  # the scheduler ticks every minute or so: no purge within the hour
        clock[0] += 1199.0
        await job(app.services)
    assert len(runs) == 1
    clock[0] += 3.0  # an hour after the last purge
    await job(app.services)
    assert len(runs) == 2
