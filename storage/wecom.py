"""WeCom (企业微信 / 政务微信): staff by UserID, the template cards sent to them and who acted
on a card first, and the figures of `bangdaiban wecom status`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models import (
    WECOM_CHANNEL,
    OutboxMessage,
    OutboxStatus,
    Role,
    Staff,
    WeComCard,
    utcnow,
)

CHANNEL = WECOM_CHANNEL
STAFF_KEY = ":staff:"  # notify.to_staff's keys: "<notice>:staff:<id>[:<channel>]"


def notice_of(idempotency_key: str) -> str:
    """The notice an outbox row carries, the same for every person it was sent to."""
    return idempotency_key.split(STAFF_KEY, 1)[0][:200]


async def staff_by_userid(session: AsyncSession, userid: str) -> Staff | None:
    """The active staff member with this WeCom UserID."""
    query = (
        select(Staff)
        .options(selectinload(Staff.department))
        .where(Staff.wecom_userid == userid, Staff.active.is_(True))
    )
    return await session.scalar(query)


async def set_reachable(session: AsyncSession, userid: str) -> None:
    """They wrote to the app: WeCom shows it to them again."""
    await session.execute(
        update(Staff)
        .where(Staff.wecom_userid == userid, Staff.wecom_unreachable.is_(True))
        .values(wecom_unreachable=False)
        .execution_options(synchronize_session=False)
    )


async def set_unreachable(session: AsyncSession, userid: str) -> Staff | None:
    """Flag the staff member with this UserID unreachable on WeCom; the person if newly so
    (the conditional update lets one of two workers seeing 81013 at once tell the admins)."""
    result = await session.execute(
        update(Staff)
        .where(Staff.wecom_userid == userid, Staff.wecom_unreachable.is_(False))
        .values(wecom_unreachable=True)
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return None
    query = (
        select(Staff)
        .options(selectinload(Staff.department))
        .where(Staff.wecom_userid == userid)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(query)


async def unreachable(session: AsyncSession, userid: str) -> bool:
    flagged = await session.scalar(
        select(Staff.wecom_unreachable).where(Staff.wecom_userid == userid)
    )
    return bool(flagged)


async def admins(session: AsyncSession) -> list[Staff]:
    query = select(Staff).where(Staff.role == Role.ADMIN, Staff.active.is_(True)).order_by(Staff.id)
    return list((await session.scalars(query)).all())


# -- template cards -----------------------------------------------------------------------


async def record_card(
    session: AsyncSession,
    task_id: str,
    userid: str,
    notice: str,
    buttons: list[dict[str, str]],
) -> WeComCard:
    """The card about to be sent (again, on a retry: the same task id)."""
    card = await session.get(WeComCard, task_id)
    if card is None:
        staff = await staff_by_userid(session, userid)
        card = WeComCard(
            task_id=task_id,
            userid=userid,
            staff_id=staff.id if staff else None,
            notice=notice,
            buttons=buttons,
        )
        session.add(card)
    card.buttons = buttons
    return card


async def card_sent(session: AsyncSession, task_id: str, response_code: str | None) -> None:
    values: dict[str, Any] = {"sent_at": utcnow()}
    if response_code:
        values["response_code"] = response_code
    await session.execute(
        update(WeComCard)
        .where(WeComCard.task_id == task_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def card(session: AsyncSession, task_id: str) -> WeComCard | None:
    return await session.get(WeComCard, task_id)


@dataclass(frozen=True)
class Done:
    """Who acted first on a notice's cards, and with which button."""

    staff_id: int
    name: str
    label: str


async def done(session: AsyncSession, notice: str) -> Done | None:
    row = (
        await session.execute(
            select(WeComCard.done_by, Staff.name, WeComCard.done_label)
            .join(Staff, Staff.id == WeComCard.done_by)
            .where(WeComCard.notice == notice)
            .limit(1)
        )
    ).first()
    return Done(int(row[0]), str(row[1]), str(row[2] or "")) if row else None


async def claim(session: AsyncSession, notice: str, staff_id: int, label: str) -> bool:
    """Record that this staff member acted on the notice; False if someone did first (the
    conditional update makes two presses at once take one winner)."""
    result = await session.execute(
        update(WeComCard)
        .where(WeComCard.notice == notice, WeComCard.done_by.is_(None))
        .values(done_by=staff_id, done_label=label[:64])
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def to_update(session: AsyncSession, notice: str) -> list[WeComCard]:
    """The notice's cards not yet changed to say who acted."""
    query = (
        select(WeComCard)
        .where(WeComCard.notice == notice, WeComCard.updated_at.is_(None))
        .order_by(WeComCard.created_at)
    )
    return list((await session.scalars(query)).all())


async def mark_updated(session: AsyncSession, task_ids: list[str]) -> None:
    if task_ids:
        await session.execute(
            update(WeComCard)
            .where(WeComCard.task_id.in_(task_ids))
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


# -- sync and status ----------------------------------------------------------------------


async def without_userid(session: AsyncSession) -> list[Staff]:
    """Active staff WeCom does not know yet, in roster order."""
    query = (
        select(Staff).where(Staff.active.is_(True), Staff.wecom_userid.is_(None)).order_by(Staff.id)
    )
    return list((await session.scalars(query)).all())


@dataclass(frozen=True)
class Member:
    name: str
    userid: str | None
    unreachable: bool
    sent_last_day: int


async def status(session: AsyncSession, since: dt.timedelta = dt.timedelta(days=1)) -> list[Member]:
    """Every active staff member: their UserID, whether WeCom reaches them, sends lately."""
    sent = (
        select(OutboxMessage.chat_id, func.count(OutboxMessage.id).label("sent"))
        .where(
            OutboxMessage.channel == CHANNEL,
            OutboxMessage.status == OutboxStatus.SENT,
            OutboxMessage.sent_at >= utcnow() - since,
        )
        .group_by(OutboxMessage.chat_id)
        .subquery()
    )
    rows = await session.execute(
        select(Staff.name, Staff.wecom_userid, Staff.wecom_unreachable, sent.c.sent)
        .outerjoin(sent, sent.c.chat_id == Staff.wecom_userid)
        .where(Staff.active.is_(True))
        .order_by(Staff.id)
    )
    return [Member(name, userid, bool(flag), int(count or 0)) for name, userid, flag, count in rows]
