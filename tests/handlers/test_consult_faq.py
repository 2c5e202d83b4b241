"""FAQ in the chat: unit questions answered from the roster, imports picked up while running."""

from __future__ import annotations

import pytest

from bot.app import App
from handlers.consult import Consultation
from storage import questions, roster
from storage.seed import seed_faq
from support import Chat, bind_staff, notices_to


async def test_which_unit_question_names_the_unit_and_its_people(chat: Chat) -> None:
    await chat.say("施工證找哪個部門辦？")
    assert "建筑工程施工许可证" in chat.text and "住建环保局" in chat.text
    assert "何军" in chat.text and "0731-88880501" in chat.text
    assert "许芳" in chat.text
    assert chat.text.index("何军") < chat.text.index("许芳")  # the 首席责任人 first
    assert chat.button("转人工")


async def test_unit_answer_lists_the_chief_first_and_only_active_people(
    app: App, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Consultation, "CONTACTS_SECONDS", 0.0)
    async with app.services.db.transaction() as session:
        specialist = await roster.staff_by_name(session, "许芳")
        assert specialist is not None
        specialist.active = False
    await chat.say("施工證找哪個部門辦？")
    assert "住建环保局" in chat.text and "何军" in chat.text
    assert "许芳" not in chat.text
    async with app.services.db.transaction() as session:
        chief = await roster.staff_by_name(session, "何军")
        assert chief is not None
        chief.active = False
    await chat.say("施工證找哪個部門辦？")
    assert "住建环保局" in chat.text and "何军" not in chat.text


async def test_unit_people_are_read_again_once_the_roster_may_have_changed(
    app: App, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await chat.say("施工證找哪個部門辦？")
    assert "许芳" in chat.text
    async with app.services.db.transaction() as session:
        specialist = await roster.staff_by_name(session, "许芳")
        assert specialist is not None
        specialist.active = False
    await chat.say("施工证归哪个单位管")
    assert "许芳" in chat.text  # within CONTACTS_SECONDS the roster is not read again
    monkeypatch.setattr(Consultation, "CONTACTS_SECONDS", 0.0)
    await chat.say("施工證找哪個部門辦？")
    assert "住建环保局" in chat.text and "许芳" not in chat.text


async def test_phone_question_about_an_item_gives_the_phone(chat: Chat) -> None:
    await chat.say("环评有没有对接人电话")
    assert "住建环保局" in chat.text and "0731-88880502" in chat.text


def _consultation(app: App) -> Consultation:
    consultation = app.services.consultation
    assert consultation is not None
    return consultation


async def test_faq_import_is_answered_by_the_running_bot(
    app: App, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Consultation, "RELOAD_CHECK_SECONDS", 0.0)
    entry = {
        "key": "canteen",
        "question": "政务大厅有职工食堂吗？",
        "phrasings": ["大厅食堂在哪", "办事能在大厅吃饭吗", "食堂开放吗"],
        "similar": ["政务中心能吃午饭吗"],
        "answer": "政务大厅一楼设有食堂，对办事群众开放。",
        "department": "government_services",
    }
    async with app.services.db.transaction() as session:
        await seed_faq(session, {"entries": [entry]})
    await chat.say("政务中心能吃午饭吗")
    assert "一楼设有食堂" in chat.text
    assert "canteen" in _consultation(app).entries
    entry["answer"] = "政务大厅食堂已迁至二楼，对办事群众开放。"  # an edited answer, imported again
    async with app.services.db.transaction() as session:
        await seed_faq(session, {"entries": [entry]})
    await chat.say("政务中心能吃午饭吗")
    assert "已迁至二楼" in chat.text and "一楼" not in chat.text


async def test_without_changes_the_index_is_not_rebuilt(
    app: App, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Consultation, "RELOAD_CHECK_SECONDS", 0.0)
    before = _consultation(app).index
    await chat.say("帮代办收费吗")
    assert _consultation(app).index is before


async def test_staff_answers_of_routed_questions_are_listed_for_suggestions(app: App) -> None:
    li = await bind_staff(app, "李娜", "li")
    enterprise = Chat(app.router, "ent")
    await enterprise.say("/ask 厂区门口的路灯坏了怎么报修")
    (notice,) = await notices_to(app, li)
    await li.press_data(notice.buttons[0][0]["data"])
    await li.say("已转市政部门处理。")
    async with app.services.db.sessions() as session:
        pairs = await questions.staff_answers(session)
    assert [(q, a) for _, q, a in pairs] == [("厂区门口的路灯坏了怎么报修", "已转市政部门处理。")]
