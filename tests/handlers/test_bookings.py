"""预约洽谈 through the core on both backends: book → move → cancel, the .ics, the change
deadline, staff confirm and 已到 with a record, and reminders across a holiday."""

from __future__ import annotations

import asyncio
import datetime as dt

from icalendar import Calendar
from sqlalchemy import select

from bot.app import App
from domain.bookings import day_before_moment, remind_bookings
from services.workdays import CHINA, official
from storage.models import AuditRecord, Booking, OutboxMessage
from support import Chat, bind_staff, notices_to, walk_to_booking_review

NOW = dt.datetime(2026, 12, 7, 8, 0, tzinfo=CHINA)  # a Monday morning


def at(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)


def set_clock(app: App, moment: dt.datetime) -> None:
    app.services.clock = lambda: at(moment)


async def all_bookings(app: App) -> list[Booking]:
    async with app.services.db.sessions() as session:
        return list((await session.scalars(select(Booking).order_by(Booking.id))).all())


async def booked_with_window(app: App, chat: Chat) -> tuple[Booking, Chat]:
    """The enterprise's booking for Tuesday 09:00, and the window's chat (told of it)."""
    set_clock(app, NOW)
    window = await bind_staff(app, "李娜")
    await walk_to_booking_review(chat)
    await chat.press("提交")
    (booking,) = await all_bookings(app)
    return booking, window


async def test_book_move_cancel_with_calendar_file_and_unit_notices(app: App, chat: Chat) -> None:
    set_clock(app, NOW)
    window = await bind_staff(app, "李娜")
    await walk_to_booking_review(chat)
    await chat.press("提交")
    assert "预约成功" in chat.text and "2026-12-08 09:00" in chat.text
    (booking,) = await all_bookings(app)
    assert booking.number in chat.text and booking.status == "booked"
    assert booking.contact_phone == "+8613800138000"
    document = chat.replies[-1].document
    assert document is not None and document.name == f"{booking.number}.ics"
    (event,) = Calendar.from_ical(document.content).walk("VEVENT")
    start = event.decoded("dtstart")
    assert str(start.tzinfo) == "Asia/Shanghai"
    assert start.replace(tzinfo=None) == dt.datetime(2026, 12, 8, 9, 0)
    assert event.decoded("dtend") - start == dt.timedelta(hours=1)

    await chat.say("/bookings")
    assert booking.number in chat.text
    await chat.press("改期")
    await chat.press("12月9日")
    await chat.press("14:30")
    assert "已改到 2026-12-09 14:30" in chat.text
    (moved,) = await all_bookings(app)
    assert at(moved.starts_at) == at(dt.datetime(2026, 12, 9, 14, 30, tzinfo=CHINA))

    await chat.say("/bookings")
    await chat.press("取消预约")
    assert "已取消" in chat.text
    (cancelled,) = await all_bookings(app)
    assert cancelled.status == "cancelled"
    texts = [n.text for n in await notices_to(app, window)]
    assert [("新的预约洽谈" in t, "已改期" in t, "已取消" in t) for t in texts] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    # The cancelled slot is free again: someone else books it.
    other = Chat(app.router, "u2")
    await walk_to_booking_review(other, day="12月9日", slot="14:30")
    await other.press("提交")
    assert "预约成功" in other.text


async def test_slot_typed_by_label_and_bad_phone_keep_the_dialog(app: App, chat: Chat) -> None:
    set_clock(app, NOW)
    await chat.say("/book")
    await chat.press("新的洽谈事项")
    await chat.say("前期咨询")
    await chat.press("12月8日")
    await chat.say("08:00")  # not an offered slot
    assert "请点击" in chat.text or "选项" in chat.text or "按钮" in chat.text
    await chat.press("10:00")
    await chat.say("湖南星城智造科技有限公司")
    await chat.say("张伟")
    await chat.say("12345")
    assert "联系电话格式不正确" in chat.text
    await chat.say("13800138000")
    assert "请核对" in chat.text and "10:00" in chat.text


async def test_no_change_within_the_change_hours(app: App, chat: Chat) -> None:
    set_clock(app, NOW)
    await walk_to_booking_review(chat)
    await chat.press("提交")
    set_clock(app, dt.datetime(2026, 12, 8, 7, 30, tzinfo=CHINA))  # 1.5 h before 09:00
    await chat.say("/bookings")
    await chat.press("取消预约")
    assert "不足 2 小时" in chat.text
    (booking,) = await all_bookings(app)
    assert booking.status == "booked"


async def test_booking_of_a_case_is_confirmed_and_recorded_on_its_timeline(
    app: App, chat: Chat
) -> None:
    from support import fill_application

    set_clock(app, NOW)
    await fill_application(chat)
    await chat.press("提交")
    window = await bind_staff(app, "李娜")
    await chat.say("/book")
    await chat.press("申请 · 星城智造")
    await chat.press("12月8日")
    await chat.press("09:00")
    assert "湖南星城智造科技有限公司" in chat.text and "138 0013 8000" in chat.text  # prefilled
    await chat.press("提交")
    (booking,) = await all_bookings(app)
    assert booking.case_id is not None and booking.subject == "星城智造产业园一期"
    (notice,) = [n for n in await notices_to(app, window) if "新的预约洽谈" in n.text]
    await window.press_data(notice.buttons[0][0]["data"])
    assert "已确认贵单位参加" in window.text
    await window.press_data(notice.buttons[0][0]["data"])
    assert "无需重复确认" in window.text
    set_clock(app, dt.datetime(2026, 12, 8, 10, 0, tzinfo=CHINA))
    await window.say("/appointments")
    assert booking.number in window.text
    await window.press(f"已到 {booking.number}")
    await window.say("企业介绍了用地需求，约定下周提交方案")
    assert "已到" in window.text and "已写入" in window.text
    from storage.models import CaseEvent

    async with app.services.db.sessions() as session:
        query = select(CaseEvent.note).where(CaseEvent.case_id == booking.case_id)
        notes = list(await session.scalars(query))
    assert any(n and "约定下周提交方案" in n for n in notes)


async def test_a_stranger_cannot_confirm_or_mark(app: App, chat: Chat) -> None:
    set_clock(app, NOW)
    await walk_to_booking_review(chat)
    await chat.press("提交")
    (booking,) = await all_bookings(app)
    await chat.press_data(f"b:confirm:{booking.number}")
    assert "没有执行该操作的权限" in chat.text
    specialist = await bind_staff(app, "孙悦")  # 产业促进局: not asked to attend
    await specialist.press_data(f"b:mark:{booking.number}:attended")
    assert "无权" in specialist.text
    stranger = Chat(app.router, "u9")
    await stranger.press_data(f"b:cancel:{booking.number}")
    assert "未找到该预约" in stranger.text
    assert (await all_bookings(app))[0].status == "booked"


async def test_reminders_the_working_day_before_a_holiday_and_one_hour_before(
    app: App, chat: Chat
) -> None:
    calendar = official()
    after = dt.date(2026, 10, 1)
    while not calendar.is_workday(after):
        after += dt.timedelta(days=1)
    assert after > dt.date(2026, 10, 5)  # the National Day holiday lies between
    set_clock(app, dt.datetime(2026, 9, 28, 10, 0, tzinfo=CHINA))
    await chat.say("/book")
    await chat.press("新的洽谈事项")
    await chat.say("国庆后洽谈")
    await chat.press(f"{after.month}月{after.day}日")
    await chat.press("09:00")
    await chat.say("湖南星城智造科技有限公司")
    await chat.say("张伟")
    await chat.say("13800138000")
    await chat.press("提交")
    (booking,) = await all_bookings(app)
    assert day_before_moment(booking.starts_at) == at(dt.datetime(2026, 9, 30, 16, 0, tzinfo=CHINA))

    async def tick(moment: dt.datetime) -> int:
        return await remind_bookings(app.services, at(moment))

    assert await tick(dt.datetime(2026, 9, 30, 15, 59, tzinfo=CHINA)) == 0
    assert await tick(dt.datetime(2026, 9, 30, 16, 0, tzinfo=CHINA)) == 1
    assert await tick(dt.datetime(2026, 10, 2, 16, 0, tzinfo=CHINA)) == 0  # not again
    start = dt.datetime.combine(after, dt.time(9, 0), CHINA)
    assert await tick(start - dt.timedelta(hours=1, minutes=1)) == 0
    assert await tick(start - dt.timedelta(hours=1)) == 1
    assert await tick(start - dt.timedelta(minutes=5)) == 0
    async with app.services.db.sessions() as session:
        rows = list(
            await session.scalars(
                select(OutboxMessage.text)
                .where(OutboxMessage.chat_id == chat.user.chat_id)
                .order_by(OutboxMessage.id)
            )
        )
    assert len(rows) == 2 and "温馨提醒" in rows[0] and "一小时后" in rows[1]


async def test_a_unit_that_confirmed_is_told_of_the_move_and_asked_again_then_of_the_cancel(
    app: App, chat: Chat
) -> None:
    from storage.models import BookingUnit

    set_clock(app, NOW)
    window = await bind_staff(app, "李娜")
    await walk_to_booking_review(chat)
    await chat.press("提交")
    (booked,) = [n for n in await notices_to(app, window) if "新的预约洽谈" in n.text]
    await window.press_data(booked.buttons[0][0]["data"])
    assert "已确认贵单位参加" in window.text
    await chat.say("/bookings")
    await chat.press("改期")
    await chat.press("12月9日")
    await chat.press("14:30")
    (moved,) = [n for n in await notices_to(app, window) if "已改期" in n.text]
    assert "您此前已确认参加，时间已变，请重新确认" in moved.text
    assert moved.buttons and moved.buttons[0][0]["label"] == "确认参加"
    async with app.services.db.sessions() as session:
        (unit,) = list(await session.scalars(select(BookingUnit)))
    assert unit.confirmed_at is None  # the new time is confirmed anew
    await window.press_data(moved.buttons[0][0]["data"])
    assert "已确认贵单位参加" in window.text
    await chat.say("/bookings")
    await chat.press("取消预约")
    (cancelled,) = [n for n in await notices_to(app, window) if "已取消" in n.text]
    assert "您此前已确认参加，该预约已取消" in cancelled.text and not cancelled.buttons


async def test_an_attending_unit_cancels_with_a_reason_the_enterprise_is_told(
    app: App, chat: Chat
) -> None:
    booking, window = await booked_with_window(app, chat)
    (new,) = [n for n in await notices_to(app, window) if "新的预约洽谈" in n.text]
    await window.press_data(new.buttons[0][0]["data"])  # 确认参加
    told_before = len(await notices_to(app, chat))

    await window.say("/appointments week")
    await window.press(f"取消 {booking.number}")
    assert "原因" in window.text and "企业会收到" in window.text
    await window.say("因" * 201)  # too long: asked again, nothing cancelled
    assert "超过 200 字" in window.text
    assert (await all_bookings(app))[0].status == "booked"
    await window.say("主办单位临时有会，无法参加，请改约其他时间")
    assert "已取消预约" in window.text

    (cancelled,) = await all_bookings(app)
    assert (
        cancelled.status == "cancelled"
        and cancelled.record == "主办单位临时有会，无法参加，请改约其他时间"
    )
    (notice,) = (await notices_to(app, chat))[told_before:]
    assert (
        "因故取消" in notice.text and "主办单位临时有会" in notice.text and "/book" in notice.text
    )
    unit_told = [n.text for n in await notices_to(app, window) if "已取消" in n.text]
    assert len(unit_told) == 1 and "您此前已确认参加" in unit_told[0]
    async with app.services.db.sessions() as session:
        logged = await session.execute(select(AuditRecord.action, AuditRecord.actor_kind))
        assert ("button:BookingCancelReason", "staff") in [tuple(row) for row in logged]
    # The slot is free again.
    other = Chat(app.router, "u2")
    await walk_to_booking_review(other)
    await other.press("提交")
    assert "预约成功" in other.text


async def test_staff_cancel_is_for_attending_units_and_can_be_dropped(app: App, chat: Chat) -> None:
    set_clock(app, NOW)
    await walk_to_booking_review(chat)
    await chat.press("提交")
    (booking,) = await all_bookings(app)
    specialist = await bind_staff(app, "孙悦")  # 产业促进局: not asked to attend
    await specialist.press_data(f"b:scancel:{booking.number}")
    assert "无权" in specialist.text
    await chat.press_data(f"b:scancel:{booking.number}")  # an enterprise: not a staff route
    assert (await all_bookings(app))[0].status == "booked"

    window = await bind_staff(app, "李娜")
    await window.press_data(f"b:scancel:{booking.number}")
    await window.press("不取消")
    assert "保持不变" in window.text
    await window.say("随便说一句")  # no longer taken as a reason
    assert (await all_bookings(app))[0].status == "booked"


async def test_the_enterprise_and_a_unit_cancel_at_once_and_it_is_cancelled_once(
    app: App, chat: Chat
) -> None:
    booking, window = await booked_with_window(app, chat)
    told_before = len(await notices_to(app, chat))
    await window.press_data(f"b:scancel:{booking.number}")
    await chat.say("/bookings")
    await asyncio.gather(chat.press("取消预约"), window.say("企业所在园区停电，改期再谈"))
    (cancelled,) = await all_bookings(app)
    assert cancelled.status == "cancelled"
    staff_won = "已取消预约" in window.text
    assert staff_won != ("已取消" in chat.text)  # exactly one of the two did it
    assert len((await notices_to(app, chat))[told_before:]) == (1 if staff_won else 0)
    assert len([n for n in await notices_to(app, window) if "已取消" in n.text]) == 1
