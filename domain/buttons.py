"""The buttons the domain's notices carry, as typed data (chat/callbacks.py).

Their handlers declare routes for them: case work (handlers/casework.py), uploads
(handlers/supplement.py), 回访 (handlers/followup.py), questions (handlers/staff.py) and key
projects (handlers/key_projects.py).
"""

from __future__ import annotations

from chat.callbacks import CallbackData


class CaseRef(CallbackData):
    """A button about one case, by its number; each kind of it below is one prefix."""

    number: str


class CaseReply(CaseRef, prefix="w:reply"): ...  # 给企业留言


class CaseDraft(CaseRef, prefix="w:draft"): ...  # 起草经办人意见


class CaseUpload(CaseRef, prefix="w:upload"): ...  # 上传材料


class CaseConfirm(CallbackData, prefix="w:confirm"):
    """确认意见草稿: one agent's draft becomes the case's 经办人意见."""

    number: str
    draft_id: int


class CaseView(CaseRef, prefix="w:view"): ...  # staff: open a case (办理)


class CaseInstruct(CaseRef, prefix="w:instruct"): ...  # a leader: write the 领导批示


class UploadStart(CaseRef, prefix="u:start"): ...  # an applicant: upload the 补正 materials


class Rate(CallbackData, prefix="r"):
    """An applicant: rate a delivered case on a 好差评 level (or an old button's 1-5), or
    `skip` the comment after rating."""

    number: str
    choice: str


class RatePoint(CallbackData, prefix="rp"):
    """An applicant: tick or untick a second-level point (or reason) of their rating."""

    number: str
    point: str


class RateDone(CaseRef, prefix="rd"): ...  # the points are chosen


class QuestionRef(CallbackData):
    """A button about one question, by its id."""

    question_id: int


class QuestionReply(QuestionRef, prefix="s:reply"): ...


class QuestionForward(QuestionRef, prefix="s:fwd"): ...


class QuestionDone(QuestionRef, prefix="s:done"): ...


class QuestionShow(QuestionRef, prefix="s:show"): ...  # staff: a question from the work list


class ProjectRef(CallbackData):
    """A button about one key project, by its id; each kind of it is one prefix."""

    project_id: int


class ProblemRef(CallbackData):
    """A button about one problem on the ladder, by its id."""

    problem_id: int


class ProjectView(ProjectRef, prefix="k:view"): ...


class ContactChoose(ProjectRef, prefix="k:contact"): ...  # 记录联系: when is the next 回访


class ProblemUp(ProblemRef, prefix="k:up"): ...  # one level up the ladder by hand


class ProblemSolve(ProblemRef, prefix="k:solve"): ...


class BadRatingView(CallbackData, prefix="br:view"):
    """Staff: open a 差评 item."""

    item_id: int


class FixRate(CallbackData, prefix="rf"):
    """An applicant: rate the fix of their 差评, once."""

    item_id: int
    level: str


class BookingRef(CallbackData):
    """A button about one booking, by its 预约号."""

    number: str


class BookingConfirm(BookingRef, prefix="b:confirm"): ...  # a unit's staff: 确认参加


class VisitRef(CallbackData):
    """A button about one 上门服务, by its number."""

    number: str


class VisitAgree(VisitRef, prefix="sv:ok"): ...  # the enterprise: 确认上门时间


class VisitOther(VisitRef, prefix="sv:other"): ...  # the enterprise: 另约时间


class VisitAccept(VisitRef, prefix="sv:accept"): ...  # the team: take the enterprise's time


class VisitUnitConfirm(VisitRef, prefix="sv:unit"): ...  # a unit that goes: 确认参加


class MeetingRef(CallbackData):
    """A button about one 联席会议, by its number."""

    number: str


class MeetingConfirm(MeetingRef, prefix="jm:ok"): ...  # a unit's chief: 确认参会 (who attends)
