"""The 政策公告 composing dialog for administrators, declared as data."""

from __future__ import annotations

from dialogs.fields import Answers, Choice, Form, MultiChoice, Option, Text
from dialogs.texts import label

TOPICS = ("industry_policy", "approval_reform", "service_guide")
SEGMENTS = ("subscribers", "key_projects", "open_cases")
BODY_LIMIT = 3800  # with the title and frame it stays under Telegram's 4,096 characters


def topic_options() -> tuple[Option, ...]:
    return tuple(Option(code, label("topics", code)) for code in TOPICS)


def _to_subscribers(answers: Answers) -> bool:
    return answers.get("segment") == "subscribers"


ANNOUNCEMENT = Form(
    "announcement",
    review="announcements/review.j2",
    fields=(
        Text("title", "announcements/ask_title.j2", min_length=2, max_length=60, single_line=True),
        Text("body", "announcements/ask_body.j2", min_length=2, max_length=BODY_LIMIT),
        Choice(
            "segment",
            "announcements/ask_segment.j2",
            options=tuple(Option(code, label("options", code)) for code in SEGMENTS),
        ),
        MultiChoice(
            "topics", "announcements/ask_topics.j2", when=_to_subscribers, options=topic_options()
        ),
    ),
)
