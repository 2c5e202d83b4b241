"""Typed button data and the route tables: wire formats, limits, foreign data, coverage."""

from __future__ import annotations

import pytest

from chat.callbacks import CallbackData, CallbackTooLong, Prompt
from dialogs.engine import DIALOG_BUTTONS, DialogOption
from domain.buttons import CaseView, Rate
from domain.cases import CaseVerb
from handlers.announcements import Topic
from handlers.casework import NOTES, CaseAskLeader, CaseStep
from handlers.key_projects import StageTo
from handlers.menu import MenuPress
from handlers.routing import route_table
from storage.key_projects import Stage


def test_buttons_keep_the_wire_formats_stored_in_chats() -> None:
    assert CaseView("BDB-2025-000001").pack() == "w:view:BDB-2025-000001"
    assert CaseStep(CaseVerb.SUPPLEMENT, "N1").pack() == "w:supp:N1"
    assert Rate("N1", "5").pack() == "r:N1:5"
    assert StageTo(3, Stage.SIGNED).pack() == "k:stageto:3:signed"
    assert DialogOption("tok", "pick", "company", "0").pack() == "f:tok:pick:company:0"
    assert NOTES["instruct"]("N1").pack() == "case_instruct:N1"
    assert CallbackData.parse("w:askto:N1:7") == CaseAskLeader("N1", 7)
    assert Prompt.parse("case_accept:N1") == NOTES["accept"]("N1")


@pytest.mark.parametrize(
    "data",
    [
        "zz:1",  # nobody's prefix
        "w:askto:N1:seven",  # a number that is not one
        "w:view",  # a field missing
        "w:expire:N1",  # a verb staff may not press
        "k:stageto:3:bogus",  # not a stage
        "k:contactn:3:999",  # not an offered choice
        "f:tok:explode",  # not a dialog action
        "",
    ],
)
def test_foreign_or_malformed_data_is_no_kind(data: str) -> None:
    assert CallbackData.parse(data) is None


def test_data_over_64_bytes_is_refused_where_the_button_is_built() -> None:
    with pytest.raises(CallbackTooLong):
        Topic("政策" * 20).button("x")


def test_every_button_kind_has_exactly_one_route() -> None:
    table = route_table()
    kinds = {kind for kinds in CallbackData.kinds.values() for kind in kinds}
    special = {MenuPress, *DIALOG_BUTTONS}  # the router's own: the menu and the dialogs
    assert kinds - special == set(table.buttons)
    prompts = {kind for kinds in Prompt.kinds.values() for kind in kinds}
    assert prompts == set(table.prompts) | set(table.files)
