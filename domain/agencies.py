"""第三方专业机构: assigning an agency to a case or key project (lead-unit administrators), its
mark on the case's timeline, the agents' notices, and the contract's end: the admins are warned
`warn_workdays` working days before, the agents are told once it has ended. Access itself ends
by the policy (Actor.in_contract), not by this job: the next request after the last day is
refused even if the scheduler is down."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.texts import render
from domain import policy
from domain.notices import Notice, enqueue
from domain.policy import Actor, Right
from domain.reminders import Services
from services.workdays import add_workdays, today_in_china
from storage import agencies, cases, key_projects
from storage.models import ActorKind, Agency, Case, CaseStatus, KeyProject, Staff

log = logging.getLogger(__name__)
JOB_BATCH = 100


class AssignRefused(Exception):
    """Not allowed, or the target, agency or agent is unknown; `template` says which."""

    def __init__(self, template: str, **context: object) -> None:
        super().__init__(template)
        self.template, self.context = template, context


@dataclass
class Assigned:
    """What an assignment (or its end) changed, for the reply, the audit and the outbox."""

    agency: Agency
    agent: Staff | None
    case: Case | None
    project: KeyProject | None
    changed: bool
    notices: list[Notice] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.case is not None:
            return self.case.number
        assert self.project is not None
        return f"#{self.project.id} {self.project.name}"


async def _resolve(
    session: AsyncSession, target: str, agency_name: str, agent_name: str | None
) -> tuple[Case | None, KeyProject | None, Agency, Staff | None]:
    """The case (BDB-…) or key project (its number) and the agency (and agent) named."""
    case, project = None, None
    if target.isdigit():
        project = await key_projects.get(session, int(target))
    else:
        case = await cases.lock(session, target)
    if case is None and project is None:
        raise AssignRefused("agencies/target_not_found.j2", target=target)
    agency = await agencies.by_name(session, agency_name)
    if agency is None:
        raise AssignRefused("agencies/agency_not_found.j2", name=agency_name)
    agent = None
    if agent_name:
        agent = await agencies.agent(session, agency.id, agent_name)
        if agent is None:
            raise AssignRefused("agencies/agent_not_found.j2", agency=agency, name=agent_name)
    return case, project, agency, agent


async def change(
    session: AsyncSession,
    actor: Actor,
    target: str,
    agency_name: str,
    agent_name: str | None = None,
    end: bool = False,
) -> Assigned:
    """Assign (or with `end`, unassign at once) an agency on a case or key project; the case's
    timeline gets a staff-only event and the agents reached are told."""
    if not policy.can(actor, Right.ASSIGN_AGENCY):
        raise AssignRefused("staff/not_allowed.j2")
    case, project, agency, agent = await _resolve(session, target, agency_name, agent_name)
    assert actor.id is not None
    where = {"case_id": case.id} if case else {"project_id": project.id if project else None}
    row = None
    if end:
        changed = await agencies.unassign(session, agency, actor.id, **where) > 0
    else:
        row = await agencies.assign(session, agency, agent, actor.id, **where)
        changed = row is not None
    result = Assigned(agency, agent, case, project, changed)
    if not changed:
        return result
    template = "agencies/unassigned_note.j2" if end else "agencies/assigned_note.j2"
    note = render(template, agency=agency, agent=agent)
    timeline = case or await _project_case(session, project)
    if timeline is not None:  # a staff-only line on the case's timeline; the status stays
        status = CaseStatus(timeline.status)
        event = cases.record(timeline, status, ActorKind(actor.kind), actor.id, note, visible=False)
        event.from_status = timeline.status
    if row is not None:
        reached = [agent] if agent else await agencies.agents(session, agency.id)
        text = render("agencies/assigned_notice.j2", agency=agency, what=result.label)
        key = f"agency_assignment:{row.id}"
        result.notices = [Notice(person, text, key) for person in reached if person.chats()]
    log.info(
        "agency %s agency=%s agent=%s case=%s project=%s by=%s",
        "unassigned" if end else "assigned",
        agency.id,
        agent.id if agent else None,
        case.id if case else None,
        project.id if project else None,
        actor,
    )
    return result


async def _project_case(session: AsyncSession, project: KeyProject | None) -> Case | None:
    if project is None or project.case_id is None:
        return None
    return await cases.lock(session, project.case_id)


@dataclass(frozen=True)
class ContractLimits:
    warn_workdays: int = 10  # the lead-unit admins are warned this many working days before


async def watch_contracts(
    services: Services, now: dt.datetime, limits: ContractLimits = ContractLimits()
) -> int:
    """Warn the lead-unit admins of contracts ending within `warn_workdays` working days
    (once per end date) and tell the agents of an ended contract (once); how many queued."""
    sent = 0
    today = today_in_china(now)
    horizon = today_in_china(add_workdays(now, limits.warn_workdays))
    async with services.db.transaction() as session:
        admins = [a for a in await agencies.lead_admins(session) if a.chats()]
        for agency in await agencies.contracts_ending(session, horizon, JOB_BATCH):
            agency.warned_for = agency.contract_end
            if agency.contract_end < today:
                continue  # already over: the end notice below says so
            text = render("agencies/contract_ending.j2", agency=agency)
            key = f"agency:{agency.id}:ending:{agency.contract_end}"
            sent += _queue(session, admins, text, key)
        for agency in await agencies.contracts_ended(session, today, JOB_BATCH):
            agency.ended_for = agency.contract_end
            people = [a for a in await agencies.agents(session, agency.id) if a.chats()]
            key = f"agency:{agency.id}:ended:{agency.contract_end}"
            text = render("agencies/contract_ended_notice.j2", agency=agency)
            sent += _queue(session, people, text, key)
            notice = render("agencies/contract_ended_admin.j2", agency=agency)
            sent += _queue(session, admins, notice, f"{key}:admin")
            log.info("agency contract ended agency=%s agents=%s", agency.id, len(people))
    return sent


def _queue(session: AsyncSession, people: list[Staff], text: str, key: str) -> int:
    enqueue(session, [Notice(person, text, key) for person in people])
    return len(people)
