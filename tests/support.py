"""A chat driven in-process through the same Incoming → Reply path every channel uses."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

from sqlalchemy import select, update

from bot.app import App
from chat.events import Button, ChatUser, Incoming, Kind, Reply, UploadedFile
from handlers.routing import Router
from storage import questions
from storage.models import Case, OutboxMessage, Staff


class Chat:
    def __init__(self, router: Router, chat_id: str = "u1", channel: str = "test") -> None:
        self.router = router
        self.user = ChatUser(channel, chat_id)
        self.replies: list[Reply] = []

    @property
    def text(self) -> str:
        """All text of the last answer."""
        return "\n".join(reply.text for reply in self.replies)

    @property
    def buttons(self) -> list[Button]:
        return [button for reply in self.replies for button in reply.all_buttons()]

    def button(self, label: str) -> Button:
        exact = [b for b in self.buttons if b.label == label]
        matches = exact or [b for b in self.buttons if label in b.label]
        assert matches, f"no button {label!r} among {[b.label for b in self.buttons]}"
        return matches[0]

    async def say(self, text: str) -> list[Reply]:
        self.replies = await self.router.handle(Incoming.say(self.user, text))
        return self.replies

    async def press(self, label: str) -> list[Reply]:
        return await self.press_data(self.button(label).data)

    async def press_data(self, data: str) -> list[Reply]:
        self.replies = await self.router.handle(Incoming.press(self.user, data))
        return self.replies

    async def send_other(self) -> list[Reply]:
        self.replies = await self.router.handle(Incoming(self.user, Kind.UNSUPPORTED))
        return self.replies

    async def upload(self, name: str, content: bytes, mime: str) -> list[Reply]:
        file = UploadedFile(name=name, mime=mime, size=len(content), content=content)
        self.replies = await self.router.handle(Incoming(self.user, Kind.FILE, file=file))
        return self.replies


GOOD_ANSWERS = {
    "company": "湖南星城智造科技有限公司",
    "credit_code": "91430100MA4L16JQ9D",
    "project_name": "星城智造产业园一期",
    "project_code": "2021-430100-47-03-012345",
    "contact_name": "张伟",
    "contact_phone": "13800138000",
    "project_summary": "项目位于湘江新区，总投资约5亿元，建设智能装备厂房，已完成备案。",
}


async def fill_application(
    chat: Chat, kind: str = "一般项目", items: tuple[str, ...] = ("施工许可",)
) -> None:
    """Walk the dialog from /apply to the review page with valid answers."""
    await chat.say("/apply")
    await chat.press(kind)
    if kind.startswith("一般"):
        await chat.press("是，已在新区立项")
        await chat.press("不是房地产")
    await chat.say(GOOD_ANSWERS["company"])
    await chat.say(GOOD_ANSWERS["credit_code"])
    await chat.say(GOOD_ANSWERS["project_name"])
    await chat.say(GOOD_ANSWERS["project_code"])
    await chat.say(GOOD_ANSWERS["contact_name"])
    await chat.say(GOOD_ANSWERS["contact_phone"])
    await chat.say(GOOD_ANSWERS["project_summary"])
    for item in items:
        await chat.press(item)
    await chat.press("完成")


async def walk_to_booking_review(
    chat: Chat, day: str = "12月8日", slot: str = "09:00", contact: str = "张伟"
) -> None:
    """An enterprise books a new subject (政务服务中心 attends) up to the 请核对 screen."""
    await chat.say("/book")
    await chat.press("新的洽谈事项")
    await chat.say("新建厂房项目前期审批咨询")
    await chat.press(day)
    await chat.press(slot)
    await chat.say("湖南星城智造科技有限公司")
    await chat.say(contact)
    await chat.say("13800138000")
    assert "请核对" in chat.text, chat.text


async def bind_staff(app: App, name: str, chat_id: str | None = None) -> Chat:
    """A staff member's chat, bound the real way: an invite code sent as /bind."""
    async with app.services.db.transaction() as session:
        staff = await session.scalar(select(Staff).where(Staff.name == name))
        assert staff is not None, name
        code = await questions.create_invite(session, staff.id, dt.timedelta(hours=1))
    chat = Chat(app.router, chat_id or f"staff-{name}")
    await chat.say(f"/bind {code}")
    assert "绑定成功" in chat.text and name in chat.text
    return chat


async def notices_to(app: App, chat: Chat) -> list[OutboxMessage]:
    """The outbox rows addressed to this chat, oldest first."""
    async with app.services.db.sessions() as session:
        query = select(OutboxMessage).where(OutboxMessage.chat_id == chat.user.chat_id)
        return list((await session.scalars(query.order_by(OutboxMessage.id))).all())


def case_values(number: str, applicant_id: int, **columns: object) -> dict[str, object]:
    """A case row for a bulk insert (pagination, export and scheduler tests), `columns`
    overriding the defaults."""
    return {
        "number": number,
        "submission_key": f"bulk-{number}",
        "applicant_id": applicant_id,
        "status": "submitted",
        "project_kind": "general",
        "company": "湖南批量测试有限公司",
        "project_name": "批量测试项目",
        "contact_name": "王五",
        "contact_phone": "+8613900002222",
        "project_summary": "批量测试。",
        **columns,
    }


async def waiting_for_supplement(app: App, chat: Chat) -> str:
    """Submit an application from `chat`, have 李娜 ask for 补正, and open the upload step;
    returns the case number."""
    window = await bind_staff(app, "李娜")
    await fill_application(chat)
    await chat.press("提交")
    found = re.search(r"BDB-\d{4}-\d{6}", chat.text)
    assert found, chat.text
    number = found.group(0)
    await window.press_data(f"w:view:{number}")
    await window.press("受理")
    await window.say("材料齐全")
    await window.press("材料交接完成")
    await window.press("要求补正")
    await window.say("请补充规划许可证")
    await chat.press_data(f"u:start:{number}")
    assert "上传完成" in [b.label for b in chat.buttons]
    assert await app.router.expects_file(chat.user)
    return number


async def delivered_case(app: App, chat: Chat) -> str:
    """A case with one item of 住建环保局 (施工许可), accepted by the window and delivered."""
    window = await bind_staff(app, "李娜")
    await fill_application(chat, items=("施工许可",))
    await chat.press("提交")
    found = re.search(r"BDB-\d{4}-\d{6}", chat.text)
    assert found
    number = found.group(0)
    await window.press_data(f"w:view:{number}")
    await window.press("受理")
    await window.say("同意")
    async with app.services.db.transaction() as session:
        await session.execute(update(Case).values(status="completed"))
    await window.press_data(f"w:view:{number}")
    await window.press("送达")
    await window.press("现场领取")
    return number


def scan(image: Path) -> list[str]:
    """Every QR code's text in an image, as a phone would read it."""
    from conftest import require_tool  # conftest imports this module

    zbarimg = require_tool("zbarimg", "zbar-tools")
    result = subprocess.run(
        [zbarimg, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        text=True,
    )
    assert result.returncode in (0, 4), result.stderr  # 4: no code found
    return result.stdout.splitlines()
