"""`bangdaiban wecom sync|status`: match the roster to WeCom members by mobile, and show
who is reached there."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.channels.wecom.api import WeComApi
from storage import roster, wecom
from storage.db import Database

MOBILE = re.compile(r"1[3-9]\d{9}")


@dataclass
class Synced:
    matched: list[tuple[str, str]] = field(default_factory=list)  # (name, UserID)
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # (name, why)


def mobile_of(phone: str | None) -> str | None:
    """The mainland mobile number in a roster phone field (landlines have none)."""
    digits = re.sub(r"[\s-]", "", phone or "").removeprefix("+86")
    return digits if MOBILE.fullmatch(digits) else None


async def sync(db: Database, api: WeComApi) -> Synced:
    """Give each active staff member without a UserID the one WeCom has for their mobile."""
    result = Synced()
    async with db.sessions() as session:
        people = [(p.id, p.name, p.phone) for p in await wecom.without_userid(session)]
    for staff_id, name, phone in people:
        mobile = mobile_of(phone)
        if mobile is None:
            result.unmatched.append((name, "no mobile number in the roster"))
            continue
        userid = await api.userid_by_mobile(mobile)
        if userid is None:
            result.unmatched.append((name, "no WeCom member with this mobile"))
            continue
        async with db.transaction() as session:
            holder = await wecom.staff_by_userid(session, userid)
            if holder is not None and holder.id != staff_id:
                result.unmatched.append((name, f"UserID {userid} belongs to {holder.name}"))
                continue
            staff = await roster.active_staff(session, staff_id)
            assert staff is not None
            await roster.bind_wecom(session, staff, userid)
        result.matched.append((name, userid))
    return result


async def status_lines(db: Database) -> list[str]:
    """One line per active staff member: UserID, reached or not, sends in the last day."""
    async with db.sessions() as session:
        members = await wecom.status(session)
    bound = [m for m in members if m.userid]
    unreachable = [m for m in bound if m.unreachable]
    lines = [
        f"bound {len(bound)} of {len(members)} staff; reachable {len(bound) - len(unreachable)}, "
        f"unreachable (81013) {len(unreachable)}; "
        f"sent in the last day {sum(m.sent_last_day for m in members)}"
    ]
    for member in members:
        state = "not bound"
        if member.userid:
            state = "UNREACHABLE" if member.unreachable else "reachable"
        lines.append(
            f"  {member.name}\t{member.userid or '-'}\t{state}\tsent 24h: {member.sent_last_day}"
        )
    return lines
