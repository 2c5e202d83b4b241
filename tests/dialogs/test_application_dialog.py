"""The application dialog through the core, on both backends."""

from __future__ import annotations

import io

from docx import Document as Docx
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.app import App
from services import documents
from storage.models import Case, CaseFile, OutboxMessage
from support import GOOD_ANSWERS, Chat, fill_application


async def cases_in(app: App) -> list[Case]:
    async with app.services.db.sessions() as session:
        query = select(Case).options(selectinload(Case.items), selectinload(Case.events))
        return list((await session.scalars(query)).all())


async def test_full_application_creates_one_case_with_items_event_and_form(
    app: App, chat: Chat
) -> None:
    await fill_application(chat, items=("施工许可", "消防设计"))
    assert "请核对" in chat.text
    assert GOOD_ANSWERS["company"] in chat.text
    assert "138 0013 8000" in chat.text
    await chat.press("提交")
    assert "您的申请已提交" in chat.text
    (case,) = await cases_in(app)
    assert chat.text.count(case.number) >= 1
    assert case.number.startswith("BDB-2026-") or case.number.startswith("BDB-")
    assert case.status == "submitted"
    assert case.contact_phone == "+8613800138000"
    assert case.credit_code == GOOD_ANSWERS["credit_code"]
    assert [item.name for item in case.items] == ["消防设计审查", "建筑工程施工许可证"]
    assert [e.to_status for e in case.events] == ["submitted"]
    async with app.services.db.sessions() as session:
        notices = list(await session.scalars(select(OutboxMessage)))
    # The printable form follows through the outbox, rendered when delivered.
    (form_notice,) = notices  # no window staff has bound a chat in this roster yet
    assert form_notice.chat_id == chat.user.chat_id
    assert form_notice.document is not None
    document = await documents.resolve(app.services, form_notice.document)
    assert document is not None and document.name.endswith(".docx")
    text = "\n".join(p.text for p in Docx(io.BytesIO(document.content)).paragraphs)
    assert GOOD_ANSWERS["company"] in text and case.number in text
    async with app.services.db.sessions() as session:
        stored = list(await session.scalars(select(CaseFile).where(CaseFile.case_id == case.id)))
    assert [f.kind for f in stored] == ["form"]
    assert (app.services.files_dir / stored[0].sha256[:2] / stored[0].sha256).exists()


async def test_wrong_phone_is_refused_and_earlier_answers_kept(chat: Chat) -> None:
    await chat.say("/apply")
    await chat.press("一般项目")
    await chat.press("是，已在新区立项")
    await chat.press("不是房地产")
    await chat.say(GOOD_ANSWERS["company"])
    await chat.press("跳过")
    await chat.say(GOOD_ANSWERS["project_name"])
    await chat.press("跳过")
    await chat.say("张伟")
    await chat.say("12345")
    assert "联系电话格式不正确" in chat.text
    assert "第 9/" in chat.text
    await chat.say("0731-88886666")
    assert "项目简介" in chat.text or "简要介绍" in chat.text
    await chat.say(GOOD_ANSWERS["project_summary"])
    await chat.press("施工许可")
    await chat.press("完成")
    assert GOOD_ANSWERS["company"] in chat.text
    assert "0731 8888 6666" in chat.text


async def test_real_estate_project_is_not_submitted(app: App, chat: Chat) -> None:
    await chat.say("/apply")
    await chat.press("一般项目")
    await chat.press("是，已在新区立项")
    await chat.press("是房地产开发项目")
    assert "不在一般项目" in chat.text
    assert "政务服务中心" in chat.text  # the window's contact is shown
    assert await cases_in(app) == []
    await chat.say("某某公司")  # the dialog is over: this is free text now
    assert "第 " not in chat.text


async def test_edit_from_review_returns_to_review(app: App, chat: Chat) -> None:
    await fill_application(chat)
    await chat.press("修改·项目名称")
    assert "当前填写：" + GOOD_ANSWERS["project_name"] in chat.text
    await chat.say("星城智造产业园二期")
    assert "请核对" in chat.text
    assert "星城智造产业园二期" in chat.text
    await chat.press("提交")
    (case,) = await cases_in(app)
    assert case.project_name == "星城智造产业园二期"


async def test_switching_to_key_project_drops_general_questions(app: App, chat: Chat) -> None:
    await fill_application(chat)
    await chat.press("修改·项目类型")
    await chat.press("重点产业项目")
    assert "请核对" in chat.text
    assert "房地产开发" not in chat.text
    await chat.press("提交")
    (case,) = await cases_in(app)
    assert case.project_kind == "key"


async def test_double_submit_creates_exactly_one_case(app: App, chat: Chat) -> None:
    await fill_application(chat)
    submit = chat.button("提交").data
    await chat.press_data(submit)
    first = chat.text
    await chat.press_data(submit)
    assert "无需重复提交" in chat.text
    cases = await cases_in(app)
    assert len(cases) == 1
    assert cases[0].number in first and cases[0].number in chat.text


async def test_back_and_cancel(app: App, chat: Chat) -> None:
    await chat.say("/apply")
    await chat.press("重点产业项目")
    await chat.say(GOOD_ANSWERS["company"])
    assert "第 3/" in chat.text
    await chat.press("上一步")
    assert "第 2/" in chat.text
    await chat.press("上一步")
    assert "第 1/" in chat.text
    await chat.press("取消")
    assert "已取消" in chat.text
    await chat.say("/apply")
    assert "第 1/" in chat.text
    assert await cases_in(app) == []


async def test_long_summary_is_refused_with_the_count(chat: Chat) -> None:
    await chat.say("/apply")
    await chat.press("重点产业项目")
    for answer in ("湖南某某科技有限公司", None, "某某项目", None, "李雷", "13900001111"):
        if answer is None:
            await chat.press("跳过")
        else:
            await chat.say(answer)
    await chat.say("字" * 1001)
    assert "1001" in chat.text and "1000" in chat.text
    assert "第 8/" in chat.text


async def test_bad_credit_code_is_refused(chat: Chat) -> None:
    await chat.say("/apply")
    await chat.press("重点产业项目")
    await chat.say("湖南某某科技有限公司")
    await chat.say("91430100MA4L16JQ9B")
    assert "统一社会信用代码的校验位（最后一位）不正确" in chat.text
    assert "第 3/" in chat.text


async def test_other_item_asks_for_details(app: App, chat: Chat) -> None:
    await fill_application(chat, items=("其他事项",))
    assert "其他事项" in chat.text and "具体内容" in chat.text
    await chat.say("帮忙办理临时用电报装")
    await chat.press("提交")
    (case,) = await cases_in(app)
    assert [item.name for item in case.items] == ["帮忙办理临时用电报装"]


async def test_stale_button_after_cancel_says_expired(chat: Chat) -> None:
    await chat.say("/apply")
    stale = chat.button("一般项目").data
    await chat.say("/cancel")
    await chat.press_data(stale)
    assert "该操作已过期" in chat.text
    assert chat.button("申请帮代办")


async def test_forged_button_is_expired(chat: Chat) -> None:
    await chat.say("/apply")
    token = chat.button("一般项目").data.split(":")[1]
    await chat.press_data("f:zzzzzz:pick:project_kind:0")
    assert "该操作已过期" in chat.text
    await chat.press_data(f"f:{token}:pick:project_kind:9")
    assert "该操作已过期" in chat.text
    await chat.press_data(f"f:{token}:pick:company:0")
    assert "该操作已过期" in chat.text
    await chat.press_data(f"f:{token}:submit")
    assert "该操作已过期" in chat.text
    await chat.say("/apply")
    await chat.press("继续填写")
    assert "第 1/" in chat.text


async def test_markup_in_answers_is_shown_literally(chat: Chat) -> None:
    await chat.say("/apply")
    await chat.press("重点产业项目")
    await chat.say("<b>恶意</b>&公司")
    await chat.press("跳过")
    await chat.say("项目<script>")
    await chat.press("跳过")
    await chat.say("王五")
    await chat.say("13900001111")
    await chat.say("这是一个用于测试的项目简介内容。")
    await chat.press("施工许可")
    await chat.press("完成")
    assert "&lt;b&gt;恶意&lt;/b&gt;&amp;公司" in chat.text
    assert "项目&lt;script&gt;" in chat.text
