"""Who may see and do what with a case: one answer, asked by every handler and job.

Window staff (政务服务中心) and the chiefs see every case; a specialist sees the cases with an
item of their unit or whose key project has them on the team; a leader sees the cases they are
asked to instruct and the key projects. 领导批示 is shown to the chiefs, the leaders and the
window staff member who owns the case. An applicant acts on their own cases only. An agent
(第三方专业机构) sees and works only the cases and key projects assigned to their agency (or to
them), only while the agency's contract runs, and never 领导批示, exports or other agencies' work.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from enum import StrEnum

from storage.cases import CHINA, Scope
from storage.key_projects import JOINT_MEETING_UNITS
from storage.models import ActorKind, Case, CaseItem, ProjectKind, Role, Staff
from storage.roster import LEAD_UNIT

log = logging.getLogger(__name__)


class Right(StrEnum):
    """What an actor asks to do; the life-cycle verbs map onto MOVE, OWN or SYSTEM."""

    VIEW = "view"
    MOVE = "move"  # staff steps of the life cycle (受理, 办结 …)
    OWN = "own"  # the applicant's steps (撤回, 补正完成, 回访)
    SYSTEM = "system"  # the scheduler's steps
    UPDATE_ITEM = "update_item"
    INSTRUCT = "instruct"  # write the 领导批示
    SEE_INSTRUCTION = "see_instruction"
    ASK_LEADER = "ask_leader"  # ask a leader for a 领导批示
    EXPORT_LEDGER = "export_ledger"
    DRAFT_OPINION = "draft_opinion"  # an agent's 经办人意见 draft, for staff to confirm
    CONFIRM_OPINION = "confirm_opinion"
    REPLY = "reply"  # a message to the enterprise on its case
    UPLOAD = "upload"  # materials added to the case by its workers
    ASSIGN_AGENCY = "assign_agency"  # put an agency on a case or key project, or take it off
    READ_AUDIT = "read_audit"  # the 操作日志


def china_today(now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(CHINA).date()


def in_contract(staff: Staff, today: dt.date | None = None) -> bool:
    """Whether this person may work today: always, unless an agent whose agency's contract
    has not begun, has ended, or was retired from the roster."""
    if staff.role != Role.AGENT:
        return True
    agency = staff.agency
    if agency is None or not agency.active:
        return False
    return agency.contract_start <= (today or china_today()) <= agency.contract_end


@dataclass(frozen=True)
class Actor:
    """Whoever acts: a staff member (with role and unit), an applicant, or the system."""

    kind: ActorKind
    id: int | None = None
    role: Role | None = None
    unit_id: int | None = None
    unit_code: str | None = None
    agency_id: int | None = None
    in_contract: bool = True  # false for an agent whose agency's contract does not run today

    @classmethod
    def of_staff(cls, staff: Staff, today: dt.date | None = None) -> Actor:
        """The staff member as of today (an agent's contract is read once per update)."""
        return cls(
            ActorKind.STAFF,
            staff.id,
            Role(staff.role),
            staff.department_id,
            staff.department.code,
            staff.agency_id,
            in_contract(staff, today),
        )

    @classmethod
    def of_applicant(cls, applicant_id: int) -> Actor:
        return cls(ActorKind.APPLICANT, applicant_id)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}" if self.id is not None else str(self.kind)


SYSTEM = Actor(ActorKind.SYSTEM)


def is_admin(staff: Staff | None) -> bool:
    """An administrator: duty rota, question lists, announcements, every key project."""
    return staff is not None and staff.role == Role.ADMIN


@dataclass(frozen=True)
class CaseTarget:
    """A case and the facts about it the policy needs; `item` for item updates."""

    case: Case
    team: frozenset[int] = frozenset()
    item: CaseItem | None = None
    units: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        units = frozenset(i.department_id for i in self.case.items if i.department_id)
        object.__setattr__(self, "units", units)


class NotAllowed(Exception):
    """The actor may not do this (or may not know the case exists)."""

    def __init__(self, hidden: bool = False) -> None:
        super().__init__("hidden" if hidden else "not allowed")
        self.hidden = hidden  # the actor may not even see the case: say 未找到


def is_window(actor: Actor) -> bool:
    """Window staff and the chief of 政务服务中心 (and admins) move a case as a whole."""
    return actor.role == Role.ADMIN or (
        actor.role in (Role.WINDOW, Role.CHIEF) and actor.unit_code == LEAD_UNIT
    )


def is_agent(actor: Actor) -> bool:
    return actor.role == Role.AGENT


def is_lead_admin(actor: Actor) -> bool:
    """An administrator of a lead unit: assigns agencies, reads the 操作日志."""
    return actor.role == Role.ADMIN and actor.unit_code in JOINT_MEETING_UNITS


def scope(actor: Actor) -> Scope:
    """The cases this actor may list (the SQL form of `sees`)."""
    if is_agent(actor):
        return Scope(agent_id=actor.id) if actor.in_contract else Scope()
    if actor.role in (Role.ADMIN, Role.WINDOW, Role.CHIEF):
        return Scope(everything=True)
    if actor.role == Role.SPECIALIST:
        return Scope(unit_id=actor.unit_id, member_id=actor.id)
    if actor.role == Role.LEADER:
        return Scope(leader_id=actor.id, key_projects=True)
    return Scope()


def sees(actor: Actor, target: CaseTarget) -> bool:
    case = target.case
    if actor.kind == ActorKind.APPLICANT:
        return actor.id == case.applicant_id
    if actor.kind == ActorKind.SYSTEM:
        return True
    if actor.role in (Role.ADMIN, Role.WINDOW, Role.CHIEF):
        return True
    if actor.role == Role.SPECIALIST:
        return actor.unit_id in target.units or actor.id in target.team
    if actor.role == Role.LEADER:
        return case.leader_id == actor.id or case.project_kind == ProjectKind.KEY
    if is_agent(actor):  # the team of a case holds the agents assigned to it (cases.team_of)
        return actor.in_contract and actor.id in target.team
    return False


def _may_update_item(actor: Actor, target: CaseTarget) -> bool:
    item = target.item
    return item is not None and (
        actor.role == Role.ADMIN
        or actor.id == target.case.handler_id
        or (item.department_id is not None and item.department_id == actor.unit_id)
    )


def _sees_instruction(actor: Actor, target: CaseTarget) -> bool:
    if actor.role in (Role.ADMIN, Role.CHIEF, Role.LEADER):
        return True
    return actor.role == Role.WINDOW and actor.id == target.case.handler_id


def can(actor: Actor, right: Right, target: CaseTarget | None = None) -> bool:
    """Whether `actor` may do `right` to `target` (a case; None for EXPORT_LEDGER,
    ASSIGN_AGENCY and READ_AUDIT)."""
    if right in (Right.ASSIGN_AGENCY, Right.READ_AUDIT):
        return is_lead_admin(actor)
    if is_agent(actor):
        return _agent_may(actor, right, target)
    if right == Right.EXPORT_LEDGER:
        return actor.role in (Role.ADMIN, Role.LEADER) or (
            actor.kind == ActorKind.STAFF and actor.unit_code in JOINT_MEETING_UNITS
        )
    if target is None or not sees(actor, target):
        return False
    if right == Right.VIEW:
        return True
    if right == Right.OWN:
        return actor.kind == ActorKind.APPLICANT
    if right == Right.SYSTEM:
        return actor.kind == ActorKind.SYSTEM
    if actor.kind != ActorKind.STAFF:
        return False
    rules = {
        Right.MOVE: is_window,
        Right.ASK_LEADER: is_window,
        Right.CONFIRM_OPINION: is_window,
        Right.REPLY: is_window,
        Right.UPLOAD: is_window,
        Right.INSTRUCT: lambda a: a.role in (Role.LEADER, Role.ADMIN),
    }
    if right in rules:
        return rules[right](actor)
    if right == Right.UPDATE_ITEM:
        return _may_update_item(actor, target)
    return right == Right.SEE_INSTRUCTION and _sees_instruction(actor, target)


# What an agent may do on an assigned case: see it, move its approval items, draft 经办人意见
# (staff confirm it), reply to the enterprise, upload materials.
AGENT_RIGHTS = frozenset(
    {Right.VIEW, Right.UPDATE_ITEM, Right.DRAFT_OPINION, Right.REPLY, Right.UPLOAD}
)


def _agent_may(actor: Actor, right: Right, target: CaseTarget | None) -> bool:
    if target is None or right not in AGENT_RIGHTS or not sees(actor, target):
        return False
    return right != Right.UPDATE_ITEM or target.item is not None


def check(actor: Actor, right: Right, target: CaseTarget) -> None:
    """Raise NotAllowed (logged with ids) unless `actor` may do `right` to `target`."""
    if can(actor, right, target):
        return
    hidden = not sees(actor, target)
    log.info("refused actor=%s right=%s case=%s hidden=%s", actor, right, target.case.id, hidden)
    raise NotAllowed(hidden)


# -- 预约洽谈 -------------------------------------------------------------------------------


def books_for_callers(actor: Actor) -> bool:
    """Window staff (and admins) book the 对接洽谈室 on behalf of a caller."""
    return is_window(actor)


def attends(actor: Actor, unit_ids: frozenset[int]) -> bool:
    """Staff who see a booking and may mark it: the window, or a unit asked to attend."""
    return actor.kind == ActorKind.STAFF and (is_window(actor) or actor.unit_id in unit_ids)
