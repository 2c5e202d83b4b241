"""What an attacker or a careless user types gets a clear answer; nothing unsafe runs."""

from __future__ import annotations

import io
import logging
import re
import zipfile

import pytest
from docx import Document as Docx
from sqlalchemy import select

from bot.app import App
from dialogs.texts import _compiled, environment, render_string
from handlers.consult import Consultation
from storage.models import Case, CaseFile, FaqEntry, Question
from support import GOOD_ANSWERS, Chat, bind_staff, fill_application

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 100


async def add_faq(app: App, key: str, answer: str) -> None:
    async with app.services.db.transaction() as session:
        session.add(FaqEntry(key=key, question=f"问题{key}", phrasings=[], answer=answer, tags=[]))
    app.services.consultation = await Consultation.load(app.services.db)


async def test_faq_answers_are_shown_as_text_never_run(app: App, chat: Chat) -> None:
    await add_faq(app, "evil", "{{ cycler.__init__.__globals__.os }} <b>粗</b>")
    await add_faq(app, "stray", "请带上{{ 营业执照 和 {% 身份证")
    await chat.press_data("q:faq:evil")
    assert "{{ cycler.__init__.__globals__.os }}" in chat.text
    assert "module" not in chat.text  # the os module was not reached
    assert "&lt;b&gt;粗&lt;/b&gt;" in chat.text  # escaped like every text
    await chat.press_data("q:faq:stray")
    assert "请带上{{ 营业执照 和 {% 身份证" in chat.text
    assert "系统繁忙" not in chat.text


def test_template_strings_are_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    original = type(environment()).compile

    def counting(self: object, source: object, *args: object, **kwargs: object) -> object:
        compiled.append(str(source))
        return original(self, source, *args, **kwargs)  # type: ignore[arg-type]

    _compiled.cache_clear()
    monkeypatch.setattr(type(environment()), "compile", counting)
    for _ in range(3):
        assert render_string("<b>{{ n }}</b>", n=1) == "<b>1</b>"
    assert len(compiled) == 1


async def test_typed_button_labels_work_like_presses(app: App, chat: Chat) -> None:
    await chat.say("/apply")
    await chat.say("1")  # the first option, as the console numbers it
    await chat.say("是，已在新区立项或投资备案")
    await chat.say("不是房地产开发项目")
    await chat.say(GOOD_ANSWERS["company"])
    await chat.say("跳过")  # 统一社会信用代码 is optional
    assert "项目名称" in chat.text and "统一社会信用代码不正确" not in chat.text
    for name in ("project_name", "project_code", "contact_name", "contact_phone"):
        await chat.say(GOOD_ANSWERS[name])
    await chat.say(GOOD_ANSWERS["project_summary"])
    await chat.press("施工许可")
    await chat.say("完成")
    assert "请核对" in chat.text
    await chat.say("提交")
    assert "已提交" in chat.text
    async with app.services.db.sessions() as session:
        (case,) = (await session.scalars(select(Case))).all()
    assert case.project_kind == "general" and case.credit_code is None


async def test_a_number_beyond_the_buttons_is_plain_text(chat: Chat) -> None:
    await chat.say("/apply")
    await chat.say("99")
    assert "请点击下方按钮选择" in chat.text or "请选择" in chat.text


async def test_nul_and_invisible_characters_never_reach_staff(app: App, chat: Chat) -> None:
    await chat.say("施工许可\x00证\u202e怎么\u200b办理？附加一些说明文字")
    assert "施工许可证怎么办理" in chat.text  # the FAQ reads the cleaned question…
    await chat.press("转人工")  # …and 转人工 hands that text to staff: one question row
    async with app.services.db.sessions() as session:
        (question,) = (await session.scalars(select(Question))).all()
    assert question.text == "施工许可证怎么办理？附加一些说明文字"
    assert "系统繁忙" not in chat.text


async def _waiting_for_supplement(app: App, chat: Chat) -> None:
    window = await bind_staff(app, "李娜")
    await fill_application(chat)
    await chat.press("提交")
    number = re.search(r"BDB-\d{4}-\d{6}", chat.text)
    assert number
    await window.press_data(f"w:view:{number.group(0)}")
    await window.press("受理")
    await window.say("材料齐全")
    await window.press("材料交接完成")
    await window.press("要求补正")
    await window.say("请补充规划许可证")
    await chat.press_data(f"u:start:{number.group(0)}")
    assert "上传完成" in [b.label for b in chat.buttons]


def _docx() -> bytes:
    buffer = io.BytesIO()
    Docx().save(buffer)
    return buffer.getvalue()


def _zip(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def test_uploads_are_checked_by_their_content(app: App, chat: Chat) -> None:
    await _waiting_for_supplement(app, chat)
    refused = {
        "renamed.docx": _zip(**{"a.txt": b"hello"}),
        "fake.docx": _zip(**{"word/document.xml": b"<x/>", "readme.txt": b"x"}),
        "claims.pdf": b"MZ\x90\x00 not a pdf",
        "photo.png": b"<html>" + b"0" * 100,
    }
    for name, content in refused.items():
        await chat.upload(name, content, DOCX_MIME if name.endswith(".docx") else "image/png")
        assert "未接收" in chat.text, name
    await chat.upload("规划许可证.docx", _docx(), DOCX_MIME)
    assert "已收到“规划许可证.docx”" in chat.text
    await chat.upload("扫描件", PNG, "application/octet-stream")  # no extension: the bytes say
    assert "已收到“扫描件.png”" in chat.text
    async with app.services.db.sessions() as session:
        names = sorted((await session.scalars(select(CaseFile.name))).all())
    assert "规划许可证.docx" in names and "扫描件.png" in names and len(names) >= 2
    assert not any(n.startswith(("renamed", "fake", "claims", "photo")) for n in names)


async def test_a_file_sent_when_none_is_expected_is_refused(app: App, chat: Chat) -> None:
    assert not await app.router.expects_file(chat.user)
    await chat.upload("营业执照.pdf", b"%PDF-1.4", "application/pdf")
    assert "当前没有需要上传材料的申请" in chat.text


async def test_wrong_invite_codes_are_logged_without_the_code(
    app: App, chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="handlers.staff")
    await chat.say("/bind ABCD1234")
    assert "邀请码无效" in chat.text
    await chat.say("/bind " + "A" * 300)
    assert "邀请码无效" in chat.text
    refusals = [r for r in caplog.records if "bind refused" in r.getMessage()]
    assert len(refusals) == 2
    assert all("ABCD1234" not in r.getMessage() for r in refusals)
