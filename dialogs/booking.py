"""预约洽谈: the enterprise's booking dialog and the window's booking for a caller, as data.

Topics, days and slots are looked up for each draft (handlers/bookings.py, `prepare`): the
options named here are the draft's own."""

from __future__ import annotations

from dialogs.fields import Answers, Choice, Form, Phone, Text

TOPIC, DAY, SLOT = "booking_topic", "booking_day", "booking_slot"
NEW_TOPIC = "new"


def _new_topic(answers: Answers) -> bool:
    return answers.get("topic", NEW_TOPIC) == NEW_TOPIC


def _text(name: str, prompt: str, low: int = 2, high: int = 100) -> Text:
    return Text(name, prompt, min_length=low, max_length=high, fold=True, single_line=True)


_WHEN_AND_WHO = (
    Choice("day", "bookings/ask_day.j2", options=DAY),
    Choice("slot", "bookings/ask_slot.j2", options=SLOT),
    _text("company", "bookings/ask_company.j2"),
    _text("contact_name", "application/contact_name.j2", high=40),
    Phone("contact_phone", "application/contact_phone.j2"),
)

BOOKING = Form(
    "booking",
    fields=(
        Choice("topic", "bookings/ask_topic.j2", options=TOPIC),
        Text(
            "subject",
            "bookings/ask_subject.j2",
            when=_new_topic,
            min_length=2,
            max_length=100,
            fold=True,
            single_line=True,
        ),
        *_WHEN_AND_WHO,
    ),
)

# The window books for a caller on the phone: no topic of theirs, the subject typed.
WINDOW_BOOKING = Form(
    "window_booking",
    fields=(_text("subject", "bookings/ask_subject.j2"), *_WHEN_AND_WHO),
)
