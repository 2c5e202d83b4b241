"""重点项目"一对一": the team's commands and chat screens, 回访 and 台账; the ladder's rules
and jobs are in domain/key_projects.py."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import ClassVar, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from chat.callbacks import CallbackData, Prompt, variants
from chat.events import Button, Reply
from dialogs.texts import label, render
from domain import audit, policy
from domain.buttons import ContactChoose, ProblemSolve, ProblemUp, ProjectRef, ProjectView
from domain.key_projects import (
    escalate,
    may_handle,
    notify_new_project,
    notify_staff,
    on_team,
    problem_buttons,
)
from domain.policy import Actor, Right, is_admin
from handlers.context import Context
from handlers.pages import Cursor, PageRef
from handlers.routes import Routes, staff_of
from services.export import ledger_document
from services.workdays import add_workdays
from storage import agencies, key_projects, roster
from storage.key_projects import TOP_LEVEL, ProblemStatus, Stage
from storage.models import KeyProject, Problem, Role, Staff, utcnow

log = logging.getLogger(__name__)
routes = Routes("key_projects", refusal="key_projects/not_allowed.j2")
Step = Literal["plan", "ms", "prob"]  # 代办方案 / 添加节点 / 反映问题: each asks for a text
NAME_LIMIT = 100
TITLE_LIMIT = 200
PLAN_LIMIT = 2000
PROBLEM_LIMIT = 1000
CONTACT_CHOICES = (5, 10, 20)  # working days until the next 回访

Handler = Callable[[Context, str], Awaitable[list[Reply]]]


class ProjectAsk(CallbackData, prefix="k"):
    step: Step
    project_id: int


class MilestoneDone(CallbackData, prefix="k:msdone"):
    milestone_id: int


class ContactIn(CallbackData, prefix="k:contactn"):
    project_id: int
    days: int

    def __post_init__(self) -> None:
        if self.days not in CONTACT_CHOICES:
            raise ValueError(self.days)


class StageChoose(ProjectRef, prefix="k:stage"): ...


class StageTo(CallbackData, prefix="k:stageto"):
    project_id: int
    stage: Stage


class ProjectsPage(PageRef, prefix="k:page"): ...


class ProjectText(Prompt):
    """The text typed after 代办方案 / 添加节点 / 反映问题, kept as `kp_<step>:<id>`."""

    project_id: int
    step: ClassVar[Step]


TEXTS = variants(ProjectText, "step", {"plan": "kp_plan", "ms": "kp_ms", "prob": "kp_problem"})


# -- helpers ------------------------------------------------------------------------------


def _reply(template: str, /, buttons: list[list[Button]] | None = None, **context: object) -> Reply:
    return Reply(render(template, **context), buttons or [])


def _button(key: str, data: CallbackData) -> Button:
    return data.button(label("key_projects", key))


async def _staff(ctx: Context) -> Staff | None:
    """The staff member behind this chat (the routes below ask the router to look it up)."""
    return ctx.staff


async def _team_project(session: AsyncSession, staff: Staff, project_id: int) -> KeyProject | None:
    """The project, locked, if this staff member is on its team (or an administrator)."""
    project = await key_projects.get(session, project_id, lock=True)
    if project is None or not await on_team(session, staff, project_id):
        return None
    return project


# -- commands -----------------------------------------------------------------------------


@routes.on(ProjectsPage, actor=True)
async def list_projects(ctx: Context, page_text: str = "") -> list[Reply]:
    """`/kp`: the key projects this staff member is on (administrators: all), a page at a
    time."""
    staff = await _staff(ctx)
    if staff is None:
        return [_reply("key_projects/not_allowed.j2")]
    member = None if is_admin(staff) else staff.id
    cursor = Cursor.parse(page_text)
    async with ctx.services.db.sessions() as session:
        # An agent's projects are those assigned to their agency, not teams they joined.
        only = agencies.agent_project_ids(staff.id) if staff.role == Role.AGENT else None
        total = await key_projects.count_listing(session, member, only)
        found = await key_projects.listing_page(session, member, cursor.keyset, only)
        if not found and cursor != Cursor():  # the page's anchor is gone: start over
            cursor = Cursor()
            found = await key_projects.listing_page(session, member, cursor.keyset, only)
    projects, page, pager = cursor.window(found, lambda p: p.id, total, ProjectsPage)
    rows = [[ProjectView(p.id).button(f"#{p.id} {p.name}")] for p in projects]
    if pager:
        rows.append(pager)
    return [_reply("key_projects/list.j2", rows, projects=projects, page=page)]


def _parse_new(argument: str) -> tuple[str, str] | None:
    name, sep, company = argument.replace("｜", "|").partition("|")
    name, company = name.strip(), company.strip()
    if not sep or not all(2 <= len(v) <= NAME_LIMIT for v in (name, company)):
        return None
    return name, company


async def new_project(ctx: Context, argument: str) -> list[Reply]:
    """`/kp_new 项目名称 | 企业名称`: 产业促进局 records a project still in negotiation."""
    staff = await _staff(ctx)
    if staff is None or not (
        is_admin(staff)
        or (staff.department.code == key_projects.INDUSTRY_PROMOTION and staff.role != Role.AGENT)
    ):
        return [_reply("key_projects/new_not_allowed.j2")]
    parsed = _parse_new(argument)
    if parsed is None:
        return [_reply("key_projects/new_usage.j2")]
    name, company = parsed
    async with ctx.transaction(immediate=True) as session:
        project = await key_projects.create(
            session,
            name,
            company,
            Stage.NEGOTIATING,
            created_by=staff.id,
            extra_members=() if is_admin(staff) else (staff.id,),
        )
        await notify_new_project(session, project, by=staff)
    log.info("key project created id=%s by=%s", project.id, staff.id)
    return [_reply("key_projects/created.j2", project=project), *await view(ctx, staff, project.id)]


async def add_member(ctx: Context, argument: str) -> list[Reply]:
    """`/kp_add 项目编号 姓名`: a team member (or admin) adds someone to the team."""
    staff = await _staff(ctx)
    if staff is None or staff.role == Role.AGENT:  # agencies are assigned, not team members
        return [_reply("key_projects/not_allowed.j2")]
    target, _, name = argument.partition(" ")
    name = name.strip()
    if not target.isdigit() or not name:
        return [_reply("key_projects/add_usage.j2")]
    async with ctx.transaction(immediate=True) as session:
        project = await key_projects.get(session, int(target), lock=True)
        if project is None or not await on_team(session, staff, project.id):
            return [_reply("key_projects/not_found.j2")]
        person = await roster.staff_by_name(session, name)
        if person is None or person.role == Role.AGENT:
            return [_reply("key_projects/staff_not_found.j2", name=name)]
        added = await key_projects.add_member(session, project, person.id)
        if added:
            text = render("key_projects/joined_notice.j2", project=project, by=staff)
            view_button = [[_button("view", ProjectView(project.id))]]
            key = f"key_project:{project.id}:joined"
            notify_staff(session, [person], text, key, view_button, skip=staff.id)
    log.info("key project member project=%s staff=%s added=%s", project.id, person.id, added)
    reply = _reply("key_projects/member_added.j2", project=project, person=person, added=added)
    return [reply, *await view(ctx, staff, project.id)]


async def ledger(ctx: Context, _: str = "") -> list[Reply]:
    """`/ledger`: the 重点项目台账 as an xlsx file, for the lead units and administrators."""
    staff = await _staff(ctx)
    if staff is None or not policy.can(Actor.of_staff(staff), Right.EXPORT_LEDGER):
        log.info("refused ledger staff=%s", staff.id if staff else None)
        return [_reply("key_projects/not_allowed.j2")]
    document, count = await ledger_document(ctx.services.db)
    audit.note(ctx.extra, "export.ledger")
    log.info("ledger sent staff=%s rows=%s", staff.id, count)
    caption = render("key_projects/ledger_caption.j2", now=utcnow(), count=count)
    return [Reply.doc(document, caption)]


# -- the project screen -------------------------------------------------------------------


@routes.on(ProjectView, staff=True)
async def view(ctx: Context, staff: Staff, project_id: int) -> list[Reply]:
    """Stage, team, plan, milestones and open problems, with the buttons this person may use."""
    async with ctx.services.db.sessions() as session:
        project = await key_projects.get(session, project_id)
        if project is None:
            return [_reply("key_projects/not_found.j2")]
        member = await on_team(session, staff, project.id)
        problems = [p for p in project.problems if p.status == ProblemStatus.OPEN]
        handles = [p for p in problems if member or await may_handle(session, staff, p)]
        if not member and not handles:
            return [_reply("key_projects/not_found.j2")]
        team = await key_projects.team(session, project.id)
        number = await key_projects.case_number(session, project.case_id)
    audit.note(ctx.extra, "key_project.view", key_project_id=project.id, case_number=number)
    rows: list[list[Button]] = []
    if member:
        rows += [
            [
                _button("plan", ProjectAsk("plan", project.id)),
                _button("milestone", ProjectAsk("ms", project.id)),
            ],
            [
                _button("problem", ProjectAsk("prob", project.id)),
                _button("contact", ContactChoose(project.id)),
            ],
            [_button("stage", StageChoose(project.id))],
        ]
        done = label("key_projects", "done")
        rows += [
            [MilestoneDone(m.id).button(f"{done}：{m.title[:20]}")]
            for m in project.milestones
            if m.done_at is None
        ]
    for problem in sorted(handles, key=lambda p: (-p.level, p.id)):
        rows += problem_buttons(problem)
    text = render(
        "key_projects/view.j2",
        project=project,
        team=team,
        case_number=number,
        milestones=project.milestones,
        problems=sorted(problems, key=lambda p: (-p.level, p.id)),
    )
    return [Reply(text, rows)]


# -- buttons and typed answers ------------------------------------------------------------


@routes.on(ProjectAsk, staff=True)
async def _ask(ctx: Context, staff: Staff, action: Step, project_id: int) -> list[Reply]:
    async with ctx.services.db.sessions() as session:
        project = await key_projects.get(session, project_id)
        if project is None or not await on_team(session, staff, project_id):
            return [_reply("key_projects/not_found.j2")]
    ctx.state["mode"] = TEXTS[action](project_id).pack()
    template, limit = {
        "plan": ("key_projects/plan_prompt.j2", PLAN_LIMIT),
        "ms": ("key_projects/milestone_prompt.j2", TITLE_LIMIT),
        "prob": ("key_projects/problem_prompt.j2", PROBLEM_LIMIT),
    }[action]
    return [_reply(template, project=project, limit=limit)]


async def on_text(ctx: Context, data: ProjectText, text: str) -> list[Reply]:
    """The text typed after 代办方案 / 添加节点 / 反映问题."""
    staff, project_id = staff_of(ctx), data.project_id
    limit = {"plan": PLAN_LIMIT, "ms": TITLE_LIMIT + 20, "prob": PROBLEM_LIMIT}[data.step]
    if len(text) > limit:
        ctx.state["mode"] = data.pack()  # stay in the step; nothing is saved yet
        return [_reply("key_projects/too_long.j2", length=len(text), limit=limit)]
    if data.step == "plan":
        return await set_plan(ctx, staff, project_id, text)
    if data.step == "ms":
        return await add_milestone(ctx, staff, project_id, text)
    return await raise_problem(ctx, staff, project_id, text)


async def set_plan(ctx: Context, staff: Staff, project_id: int, text: str) -> list[Reply]:
    async with ctx.transaction(immediate=True) as session:
        project = await _team_project(session, staff, project_id)
        if project is None:
            return [_reply("key_projects/not_found.j2")]
        project.service_plan = text
    log.info("key project plan set id=%s by=%s", project_id, staff.id)
    return [_reply("key_projects/plan_saved.j2"), *await view(ctx, staff, project_id)]


def _parse_milestone(text: str) -> tuple[str, dt.date | None] | None:
    title, sep, when = text.replace("｜", "|").partition("|")
    title = title.strip()
    if not 1 <= len(title) <= TITLE_LIMIT:
        return None
    if not sep:
        return title, None
    try:
        return title, dt.date.fromisoformat(when.strip())
    except ValueError:
        return None


async def add_milestone(ctx: Context, staff: Staff, project_id: int, text: str) -> list[Reply]:
    parsed = _parse_milestone(text)
    if parsed is None:
        ctx.state["mode"] = TEXTS["ms"](project_id).pack()
        return [_reply("key_projects/milestone_bad.j2", limit=TITLE_LIMIT)]
    async with ctx.transaction(immediate=True) as session:
        project = await _team_project(session, staff, project_id)
        if project is None:
            return [_reply("key_projects/not_found.j2")]
        milestone = await key_projects.add_milestone(session, project, *parsed)
    log.info("milestone added id=%s project=%s", milestone.id, project_id)
    reply = _reply("key_projects/milestone_added.j2", milestone=milestone)
    return [reply, *await view(ctx, staff, project_id)]


@routes.on(MilestoneDone, staff=True)
async def milestone_done(ctx: Context, staff: Staff, milestone_id: int) -> list[Reply]:
    async with ctx.transaction(immediate=True) as session:
        milestone = await key_projects.milestone(session, milestone_id)
        if milestone is None or not await on_team(session, staff, milestone.key_project_id):
            return [_reply("key_projects/not_found.j2")]
        if milestone.done_at is None:
            milestone.done_at = utcnow()
    log.info("milestone done id=%s by=%s", milestone_id, staff.id)
    reply = _reply("key_projects/milestone_done.j2", milestone=milestone)
    return [reply, *await view(ctx, staff, milestone.key_project_id)]


async def raise_problem(ctx: Context, staff: Staff, project_id: int, text: str) -> list[Reply]:
    """A problem the enterprise raised starts at level 1: the team is told."""
    async with ctx.transaction(immediate=True) as session:
        project = await _team_project(session, staff, project_id)
        if project is None:
            return [_reply("key_projects/not_found.j2")]
        problem = await key_projects.raise_problem(session, project, text, staff.id, utcnow())
        notice = render(
            "key_projects/problem_notice.j2", project=project, problem=problem, author=staff
        )
        people = await key_projects.level_people(session, project_id, 1)
        key = f"problem:{problem.id}:level:1"
        notify_staff(session, people, notice, key, problem_buttons(problem), skip=staff.id)
    log.info("problem raised id=%s project=%s", problem.id, project_id)
    reply = _reply("key_projects/problem_raised.j2", problem=problem)
    return [reply, *await view(ctx, staff, project_id)]


async def _open_problem(session: AsyncSession, staff: Staff, problem_id: int) -> Problem | Reply:
    """The open problem, locked, if this staff member may act on it; else the refusal."""
    problem = await key_projects.problem(session, problem_id, lock=True)
    if problem is None or not await may_handle(session, staff, problem):
        return _reply("key_projects/problem_not_found.j2")
    if problem.status != ProblemStatus.OPEN:
        return _reply("key_projects/problem_already_resolved.j2", problem=problem)
    return problem


@routes.on(ProblemUp, staff=True)
async def escalate_by_hand(ctx: Context, staff: Staff, problem_id: int) -> list[Reply]:
    async with ctx.transaction(immediate=True) as session:
        problem = await _open_problem(session, staff, problem_id)
        if isinstance(problem, Reply):
            return [problem]
        if problem.level >= TOP_LEVEL:
            return [_reply("key_projects/at_top.j2", problem=problem)]
        people = await escalate(session, problem, utcnow(), staff, 0)
    return [_reply("key_projects/escalated.j2", problem=problem, people=people)]


@routes.on(ProblemSolve, staff=True)
async def resolve(ctx: Context, staff: Staff, problem_id: int) -> list[Reply]:
    async with ctx.transaction(immediate=True) as session:
        problem = await _open_problem(session, staff, problem_id)
        if isinstance(problem, Reply):
            return [problem]
        problem.status = ProblemStatus.RESOLVED
        problem.resolved_at = utcnow()
        project = await key_projects.get(session, problem.key_project_id)
        assert project is not None
        people = []
        for level in range(1, problem.level + 1):
            people += await key_projects.level_people(session, project.id, level)
        unique = list({p.id: p for p in people}.values())
        text = render(
            "key_projects/problem_resolved_notice.j2", project=project, problem=problem, actor=staff
        )
        notify_staff(session, unique, text, f"problem:{problem.id}:resolved", skip=staff.id)
    log.info("problem resolved id=%s by=%s", problem_id, staff.id)
    return [_reply("key_projects/problem_resolved.j2", problem=problem)]


@routes.on(ContactChoose, staff=True)
async def choose_follow_up(ctx: Context, staff: Staff, project_id: int) -> list[Reply]:
    async with ctx.services.db.sessions() as session:
        if not await on_team(session, staff, project_id):
            return [_reply("key_projects/not_found.j2")]
    after = label("key_projects", "follow_up_in")
    rows = [[ContactIn(project_id, days).button(f"{days}{after}")] for days in CONTACT_CHOICES]
    return [_reply("key_projects/contact_choose.j2", rows)]


@routes.on(ContactIn, staff=True)
async def record_contact(ctx: Context, staff: Staff, project_id: int, days: int) -> list[Reply]:
    """记录联系: last contact now; the next 回访 `days` working days later."""
    now = utcnow()
    async with ctx.transaction(immediate=True) as session:
        project = await _team_project(session, staff, project_id)
        if project is None:
            return [_reply("key_projects/not_found.j2")]
        key_projects.record_contact(project, now, add_workdays(now, days))
    log.info("key project contact id=%s by=%s", project_id, staff.id)
    reply = _reply("key_projects/contact_saved.j2", project=project)
    return [reply, *await view(ctx, staff, project_id)]


@routes.on(StageChoose, staff=True)
async def choose_stage(ctx: Context, staff: Staff, project_id: int) -> list[Reply]:
    async with ctx.services.db.sessions() as session:
        project = await key_projects.get(session, project_id)
        if project is None or not await on_team(session, staff, project_id):
            return [_reply("key_projects/not_found.j2")]
    rows = [
        [_button(f"stage_{stage}", StageTo(project_id, stage))]
        for stage in Stage
        if stage != project.stage
    ]
    return [_reply("key_projects/stage_choose.j2", rows, project=project)]


@routes.on(StageTo, staff=True)
async def set_stage(ctx: Context, staff: Staff, project_id: int, stage: Stage) -> list[Reply]:
    async with ctx.transaction(immediate=True) as session:
        project = await _team_project(session, staff, project_id)
        if project is None:
            return [_reply("key_projects/not_found.j2")]
        project.stage = stage
    log.info("key project stage id=%s stage=%s by=%s", project_id, stage, staff.id)
    reply = _reply("key_projects/stage_saved.j2", project=project)
    return [reply, *await view(ctx, staff, project_id)]


# -- routes -------------------------------------------------------------------------------

routes.command("kp", actor=True)(list_projects)
routes.command("kp_new", actor=True)(new_project)
routes.command("kp_add", actor=True)(add_member)
routes.command("ledger", actor=True)(ledger)


for _kind in TEXTS.values():
    routes.prompt(_kind, staff=True)(on_text)
