"""Departments (附件1 units), staff and the approval-item catalog."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models import (
    WEB_CHANNEL,
    WECOM_CHANNEL,
    CatalogItem,
    Department,
    Role,
    Staff,
    staff_web_chat,
    utcnow,
)

LEAD_UNIT = "government_services"  # 政务服务中心 runs the window


async def departments(session: AsyncSession) -> list[Department]:
    query = (
        select(Department)
        .options(selectinload(Department.staff))
        .where(Department.active.is_(True))
        .order_by(Department.sort)
    )
    return list((await session.scalars(query)).all())


@dataclass(frozen=True)
class Contact:
    """A staff member as the contact list shows them."""

    name: str
    role: str
    phone: str | None
    email: str | None
    active: bool = True


@dataclass(frozen=True)
class Unit:
    """A department as the contact list shows it, with its active staff in id order."""

    name: str
    leading: bool
    staff: list[Contact] = field(default_factory=list)


# Built once: SQLAlchemy reuses its cache key instead of rebuilding it per /contact.
_CONTACTS = (
    select(
        Department.id,
        Department.name,
        Department.leading,
        Staff.name,
        Staff.role,
        Staff.phone,
        Staff.email,
    )
    .outerjoin(
        Staff,
        (Staff.department_id == Department.id)
        & Staff.active.is_(True)
        & (Staff.role != Role.AGENT),  # an agency's people are not the unit's contacts
    )
    .where(Department.active.is_(True))
    .order_by(Department.sort, Department.id, Staff.id)
)


async def contact_list(session: AsyncSession) -> list[Unit]:
    """What `departments()` gives the contact list, read as plain rows in one query (no
    ORM objects: the list is shown on every /contact)."""
    units: dict[int, Unit] = {}
    for unit_id, unit_name, leading, name, role, phone, email in await session.execute(_CONTACTS):
        unit = units.setdefault(unit_id, Unit(unit_name, leading))
        if name is not None:
            unit.staff.append(Contact(name, role, phone, email))
    return list(units.values())


_DEPARTMENT_BY_CODE = select(Department).where(
    Department.code == bindparam("code"), Department.active.is_(True)
)  # built once: routed questions ask it


async def department_by_code(session: AsyncSession, code: str) -> Department | None:
    return await session.scalar(_DEPARTMENT_BY_CODE, {"code": code})


async def catalog(session: AsyncSession) -> list[CatalogItem]:
    query = select(CatalogItem).order_by(CatalogItem.sort, CatalogItem.id)
    return list((await session.scalars(query)).all())


# Built once (asked on /start, /help and staff actions): SQLAlchemy reuses its cache key.
_STAFF_BY_CHAT = (
    select(Staff)
    .options(selectinload(Staff.department))
    .where(
        or_(
            and_(Staff.channel == bindparam("channel"), Staff.chat_id == bindparam("chat_id")),
            and_(Staff.id == bindparam("web_staff"), Staff.web_until > bindparam("now")),
            Staff.wecom_userid == bindparam("wecom_user"),
        ),
        Staff.active.is_(True),
    )
    .limit(1)
)


def _web_staff_id(channel: str, chat_id: str) -> int | None:
    """The staff id a web chat id names (`staff-12`); the web channel issues those only to
    a browser with a live staff session."""
    prefix = staff_web_chat(0)[:-1]
    if channel != WEB_CHANNEL or not chat_id.startswith(prefix):
        return None
    number = chat_id.removeprefix(prefix)
    return int(number) if number.isdigit() else None


async def staff_by_chat(session: AsyncSession, channel: str, chat_id: str) -> Staff | None:
    """The active staff member bound to this chat (in the web: signed in there)."""
    params = {
        "channel": channel,
        "chat_id": chat_id,
        "web_staff": _web_staff_id(channel, chat_id),
        "now": utcnow(),
        "wecom_user": chat_id if channel == WECOM_CHANNEL else None,  # NULL matches nobody
    }
    return await session.scalar(_STAFF_BY_CHAT, params)


def reachable_staff(now: ColumnElement[dt.datetime] | None = None) -> ColumnElement[bool]:
    """Staff with a bound chat, a browser signed in now or a reachable WeCom UserID (`now` may
    be a bound parameter, for a statement built once)."""
    return or_(
        Staff.chat_id.is_not(None),
        Staff.web_until > (utcnow() if now is None else now),
        and_(Staff.wecom_userid.is_not(None), Staff.wecom_unreachable.is_(False)),
    )


async def active_staff(session: AsyncSession, staff_id: int) -> Staff | None:
    return await session.scalar(
        select(Staff)
        .options(selectinload(Staff.department))
        .where(Staff.id == staff_id, Staff.active.is_(True))
    )


async def staff_by_name(session: AsyncSession, name: str) -> Staff | None:
    return await session.scalar(select(Staff).where(Staff.name == name, Staff.active.is_(True)))


async def bind_chat(session: AsyncSession, staff: Staff, channel: str, chat_id: str) -> None:
    """Attach a chat to a staff member, detaching it from anyone else first. A WeCom UserID
    is a channel of its own: binding it keeps the person's other chat."""
    if channel == WECOM_CHANNEL:
        await bind_wecom(session, staff, chat_id)
        return
    previous = await staff_by_chat(session, channel, chat_id)
    if previous is not None and previous.id != staff.id:
        previous.channel = previous.chat_id = None
        await session.flush()
    staff.channel, staff.chat_id = channel, chat_id


async def bind_wecom(session: AsyncSession, staff: Staff, userid: str) -> None:
    """Give a staff member this WeCom UserID (taken from anyone who had it) and let notices
    reach them there again."""
    holder = await session.scalar(select(Staff).where(Staff.wecom_userid == userid))
    if holder is not None and holder.id != staff.id:
        holder.wecom_userid = None
        await session.flush()
    staff.wecom_userid, staff.wecom_unreachable = userid, False


def lead_window_staff(now: ColumnElement[dt.datetime] | None = None) -> Select[tuple[Staff]]:
    """Active window staff of the lead unit who can be reached now (see reachable_staff)."""
    return (
        select(Staff)
        .join(Department)
        .where(
            Department.code == LEAD_UNIT,
            Staff.role == Role.WINDOW,
            Staff.active.is_(True),
            reachable_staff(now),
        )
    )


async def window_recipients(session: AsyncSession) -> list[Staff]:
    """Window staff of the lead unit who can be reached in chat; those on duty if any."""
    query = lead_window_staff().order_by(Staff.id)
    reachable = list((await session.scalars(query)).all())
    on_duty = [s for s in reachable if s.on_duty]
    return on_duty or reachable


async def staff_names(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(select(Staff.id, Staff.name).where(Staff.id.in_(wanted)))
    return {staff_id: name for staff_id, name in rows.tuples()}


async def catalog_units(session: AsyncSession) -> list[tuple[str, str, str]]:
    """(item code, item name, responsible unit code) of the approval-item catalog."""
    query = (
        select(CatalogItem.code, CatalogItem.name, Department.code)
        .join(Department, CatalogItem.department_id == Department.id)
        .order_by(CatalogItem.sort, CatalogItem.id)
    )
    return [(row[0], row[1], row[2]) for row in await session.execute(query)]


async def contacts(session: AsyncSession, department_id: int) -> list[Staff]:
    """The unit's 首席责任人 and 服务专员 that enterprises may call, chief first."""
    query = (
        select(Staff)
        .where(
            Staff.department_id == department_id,
            Staff.active.is_(True),
            Staff.role.in_([Role.CHIEF, Role.SPECIALIST, Role.WINDOW]),
        )
        .order_by(Staff.role != Role.CHIEF, Staff.id)
    )
    return list((await session.scalars(query)).all())


# Built once: a catalog item's FAQ answer asks it (the unit and its contacts in one query).
_UNIT_CONTACTS = (
    select(Department, Staff)
    .outerjoin(
        Staff,
        and_(
            Staff.department_id == Department.id,
            Staff.active.is_(True),
            Staff.role.in_([Role.CHIEF, Role.SPECIALIST, Role.WINDOW]),
        ),
    )
    .where(Department.code == bindparam("code"), Department.active.is_(True))
    .order_by(Staff.role != Role.CHIEF, Staff.id)
)


async def unit_contacts(session: AsyncSession, code: str) -> tuple[Department | None, list[Staff]]:
    """The active unit with this code and its `contacts`, chief first, in one query."""
    rows = (await session.execute(_UNIT_CONTACTS, {"code": code})).tuples().all()
    if not rows:
        return None, []
    return rows[0][0], [person for _, person in rows if person is not None]


async def by_role(session: AsyncSession, role: Role) -> list[Staff]:
    """Active staff with this role, in roster order."""
    query = select(Staff).where(Staff.role == role, Staff.active.is_(True)).order_by(Staff.id)
    return list((await session.scalars(query)).all())
