"""The buttons the domain's notices carry, as typed data (chat/callbacks.py).

Their handlers declare routes for them: case work (handlers/casework.py), uploads
(handlers/supplement.py), 回访 (handlers/followup.py) and questions (handlers/staff.py).
"""

from __future__ import annotations

from chat.callbacks import CallbackData


class CaseView(CallbackData, prefix="w:view"):
    """Staff: open a case (办理)."""

    number: str


class CaseInstruct(CallbackData, prefix="w:instruct"):
    """A leader: write the 领导批示 on a case."""

    number: str


class UploadStart(CallbackData, prefix="u:start"):
    """An applicant: upload the 补正 materials of a case."""

    number: str


class Rate(CallbackData, prefix="r"):
    """An applicant: rate a closed case 1-5, or `skip` the comment after rating."""

    number: str
    choice: str


class QuestionReply(CallbackData, prefix="s:reply"):
    question_id: int


class QuestionForward(CallbackData, prefix="s:fwd"):
    question_id: int


class QuestionDone(CallbackData, prefix="s:done"):
    question_id: int
