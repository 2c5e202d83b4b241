"""Browsers bound to staff members (the web chat's staff sessions): bind, check, renew, revoke.

`Staff.web_until` mirrors the latest expiry of the person's live devices, so a notice knows
without a query whether the web chat is one of their channels.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import signals
from storage.models import Staff, StaffDevice, utcnow

LABEL_LIMIT = 120


async def bind(
    session: AsyncSession, staff: Staff, lifetime: dt.timedelta, label: str | None
) -> StaffDevice:
    """A new signed-in browser for this staff member; their other channels stay bound."""
    now = utcnow()
    device = StaffDevice(
        staff_id=staff.id,
        nonce=secrets.token_urlsafe(24),
        label=(label or "")[:LABEL_LIMIT] or None,
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
    )
    session.add(device)
    await session.flush()
    _extend(staff, device.expires_at)
    return device


def _extend(staff: Staff, until: dt.datetime) -> None:
    if staff.web_until is None or staff.web_until < until:
        staff.web_until = until


async def signed_in(
    session: AsyncSession, device_id: int, nonce: str, now: dt.datetime | None = None
) -> tuple[StaffDevice, Staff] | None:
    """The live device and its active staff member, or None (revoked, expired, unknown)."""
    now = now or utcnow()
    row = (
        await session.execute(
            select(StaffDevice, Staff)
            .join(Staff, Staff.id == StaffDevice.staff_id)
            .where(
                StaffDevice.id == device_id,
                StaffDevice.revoked_at.is_(None),
                StaffDevice.expires_at > now,
                Staff.active.is_(True),
            )
        )
    ).first()
    if row is None or not hmac.compare_digest(row[0].nonce.encode(), nonce.encode()):
        return None
    return row[0], row[1]


async def live(
    session: AsyncSession, device_ids: set[int], now: dt.datetime | None = None
) -> set[int]:
    """Which of these devices are still signed in (not revoked, not expired, staff active)."""
    if not device_ids:
        return set()
    now = now or utcnow()
    found = await session.scalars(
        select(StaffDevice.id)
        .join(Staff, Staff.id == StaffDevice.staff_id)
        .where(
            StaffDevice.id.in_(device_ids),
            StaffDevice.revoked_at.is_(None),
            StaffDevice.expires_at > now,
            Staff.active.is_(True),
        )
    )
    return set(found.all())


async def renew(
    session: AsyncSession, device_id: int, lifetime: dt.timedelta, now: dt.datetime | None = None
) -> bool:
    """Push a live device's expiry to now + lifetime (the session renews on use)."""
    now = now or utcnow()
    device = await session.get(StaffDevice, device_id, with_for_update=True)
    if device is None or device.revoked_at is not None or device.expires_at <= now:
        return False
    device.last_seen_at = now
    device.expires_at = now + lifetime
    staff = await session.get(Staff, device.staff_id)
    if staff is not None:
        _extend(staff, device.expires_at)
    return True


async def listing(session: AsyncSession, staff_id: int) -> list[StaffDevice]:
    """The staff member's devices not revoked and not expired, newest first."""
    query = (
        select(StaffDevice)
        .where(
            StaffDevice.staff_id == staff_id,
            StaffDevice.revoked_at.is_(None),
            StaffDevice.expires_at > utcnow(),
        )
        .order_by(StaffDevice.id.desc())
    )
    return list((await session.scalars(query)).all())


async def revoke(session: AsyncSession, staff_id: int, device_id: int) -> bool:
    """Sign this browser out for good; False if it is not a live device of this person."""
    device = await session.get(StaffDevice, device_id, with_for_update=True)
    if device is None or device.staff_id != staff_id or device.revoked_at is not None:
        return False
    device.revoked_at = utcnow()
    await session.flush()
    await signals.notify(session, signals.STAFF_SIGNED_OUT, str(device_id))  # every web process
    staff = await session.get(Staff, staff_id)
    if staff is not None:
        latest = await session.scalar(
            select(func.max(StaffDevice.expires_at)).where(
                StaffDevice.staff_id == staff_id, StaffDevice.revoked_at.is_(None)
            )
        )
        staff.web_until = latest
    return True
