"""Never double-booked: fifty enterprises press 提交 for one slot at once, through the real
router (fifty conversations, fifty database connections); the unique index over holding
bookings decides. Exactly one is booked, the other 49 are offered the nearest free slots,
and one press on an offer books it. The same for two bookings moved into one slot."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select

from bot.app import App
from services.workdays import CHINA
from storage.models import Booking
from support import Chat, walk_to_booking_review

NOW = dt.datetime(2026, 12, 7, 8, 0, tzinfo=CHINA)
TAKEN = "刚刚已被其他企业预约"


def contenders(backend: str) -> int:
    return 50 if backend == "production" else 10


async def held(app: App) -> list[tuple[int, dt.datetime]]:
    async with app.services.db.sessions() as session:
        rows = await session.execute(
            select(Booking.room_id, Booking.starts_at).where(Booking.status == "booked")
        )
        return [(room, starts.astimezone(dt.UTC)) for room, starts in rows.tuples()]


async def test_fifty_press_one_slot_one_booking_and_offers(app: App, backend: str) -> None:
    app.services.clock = lambda: NOW.astimezone(dt.UTC)
    chats = [Chat(app.router, f"race-{i}") for i in range(contenders(backend))]
    for chat in chats:
        await walk_to_booking_review(chat, "12月8日", "09:00", contact="李雷")
    await asyncio.gather(*(chat.press("提交") for chat in chats))
    won = [chat for chat in chats if "预约成功" in chat.text]
    lost = [chat for chat in chats if TAKEN in chat.text]
    assert len(won) == 1 and len(lost) == len(chats) - 1
    async with app.services.db.sessions() as session:
        assert await session.scalar(select(func.count(Booking.id))) == 1
    ((_room, starts),) = await held(app)
    assert starts == dt.datetime(2026, 12, 8, 9, 0, tzinfo=CHINA).astimezone(dt.UTC)
    for chat in lost:
        labels = [b.label for b in chat.buttons]
        # The nearest free slot is the same hour in the other room, then the hours around it.
        assert labels[0] == "12月8日 09:00–10:00 对接洽谈室2", labels
        assert labels[1:3] == ["12月8日 10:00–11:00 对接洽谈室1", "12月8日 11:00–12:00 对接洽谈室1"]
    await lost[0].press("对接洽谈室2")
    assert "预约成功" in lost[0].text and "对接洽谈室2" in lost[0].text
    assert len(await held(app)) == 2
    await lost[1].press("对接洽谈室2")  # the offer was just taken: new offers, nothing typed lost
    assert TAKEN in lost[1].text
    await lost[1].press("10:00")
    assert "预约成功" in lost[1].text and "李雷" in lost[1].text
    assert len(set(await held(app))) == len(await held(app)) == 3


async def test_two_bookings_moved_into_one_slot_one_moves(app: App, backend: str) -> None:
    app.services.clock = lambda: NOW.astimezone(dt.UTC)
    rounds = 12 if backend == "production" else 3  # days from 12-10 on; weekends skipped
    first, second = Chat(app.router, "m1"), Chat(app.router, "m2")
    await walk_to_booking_review(first, "12月9日", "09:00")
    await first.press("提交")
    await walk_to_booking_review(second, "12月9日", "10:00")
    await second.press("提交")
    async with app.services.db.sessions() as session:
        numbers = list(await session.scalars(select(Booking.number).order_by(Booking.id)))
    room1 = (await held(app))[0][0]
    for day in range(10, 10 + rounds):
        date = dt.date(2026, 12, day)
        if date.weekday() >= 5:
            continue
        at = f"202612{day:02d}0900"
        await asyncio.gather(
            first.press_data(f"b:mto:{numbers[0]}:{at}:{room1}"),
            second.press_data(f"b:mto:{numbers[1]}:{at}:{room1}"),
        )
        moved = ["已改到" in chat.text for chat in (first, second)]
        refused = [TAKEN in chat.text for chat in (first, second)]
        assert sorted(moved) == [False, True] and sorted(refused) == [False, True]
        slots = await held(app)
        assert len(set(slots)) == 2
        wanted = dt.datetime(2026, 12, day, 9, 0, tzinfo=CHINA).astimezone(dt.UTC)
        assert slots.count((room1, wanted)) == 1
