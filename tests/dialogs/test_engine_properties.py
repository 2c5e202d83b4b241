"""Property tests: validators, and any sequence of input leaves a dialog consistent."""

from __future__ import annotations

import phonenumbers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.events import Reply
from dialogs.application import APPLICATION, catalog_options
from dialogs.engine import DialogEngine, Draft, Expired
from dialogs.fields import Invalid, Phone, Text

OPTIONS = {"catalog": catalog_options([("a", "甲事项"), ("b", "乙事项"), ("c", "丙事项")])}
ENGINE = DialogEngine({"application": APPLICATION}, OPTIONS)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=1200)


def check(draft: Draft) -> None:
    """The dialog is somewhere it can be: an applicable field, or the review page."""
    applicable = [f.name for f in APPLICATION.applicable(draft.answers)]
    assert draft.current is None or draft.current in applicable
    for name, value in draft.answers.items():
        assert name in APPLICATION.field_by_name
        assert value is None or isinstance(value, str | list)


@given(
    st.lists(
        st.one_of(TEXT.map(lambda t: ("say", t)), st.integers(0, 40).map(lambda i: ("press", i))),
        max_size=40,
    )
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_any_input_leaves_the_dialog_consistent(actions: list[tuple[str, object]]) -> None:
    draft, step = ENGINE.start("application")
    replies: list[Reply] = step.replies
    for kind, value in actions:
        if kind == "say":
            step = ENGINE.on_text(draft, str(value))
        else:
            buttons = [b for r in replies for b in r.all_buttons()]
            if not buttons:
                break
            try:
                step = ENGINE.on_button(draft, buttons[int(str(value)) % len(buttons)].data)
            except Expired:
                continue
        if step.finished or step.submit is not None:
            return
        replies = step.replies
        assert replies and all(r.text for r in replies)
        check(draft)


@given(TEXT)
@settings(max_examples=300, deadline=None)
def test_text_field_accepts_only_what_fits(value: str) -> None:
    field = Text("company", "application/company.j2", min_length=2, max_length=100)
    try:
        cleaned = field.parse(value, OPTIONS)
    except Invalid:
        return
    assert isinstance(cleaned, str) and 2 <= len(cleaned) <= 100
    assert cleaned == cleaned.strip()


@given(st.text(alphabet="0123456789-+ ()", max_size=20))
@settings(max_examples=300, deadline=None)
def test_phone_field_stores_only_valid_chinese_numbers(value: str) -> None:
    try:
        stored = Phone("contact_phone", "application/contact_phone.j2").parse(value, OPTIONS)
    except Invalid:
        return
    assert isinstance(stored, str)
    number = phonenumbers.parse(stored)
    assert number.country_code == 86 and phonenumbers.is_valid_number(number)
