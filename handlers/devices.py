"""`/devices NAME`: an administrator lists the browsers bound to a staff member and signs
any of them out (`v:revoke:<staff id>:<device id>`)."""

from __future__ import annotations

import logging

from dialogs.texts import label, render
from handlers.context import Context
from handlers.events import Button, Reply
from storage import roster, staff_devices
from storage.models import Role

log = logging.getLogger(__name__)
PREFIX = "v"


def _is_admin(ctx: Context) -> bool:
    return ctx.staff is not None and ctx.staff.role == Role.ADMIN


async def listing(ctx: Context, name: str) -> list[Reply]:
    """The person's signed-in browsers, each with a 注销 button."""
    if not _is_admin(ctx):
        return [Reply(render("staff/not_allowed.j2"))]
    if not name:
        return [Reply(render("staff/devices_usage.j2"))]
    async with ctx.services.db.sessions() as session:
        person = await roster.staff_by_name(session, name)
        if person is None:
            return [Reply(render("staff/devices_usage.j2"))]
        devices = await staff_devices.listing(session, person.id)
    revoke = label("buttons", "revoke_device")
    rows = [[Button(f"{revoke} #{d.id}", f"{PREFIX}:revoke:{person.id}:{d.id}")] for d in devices]
    return [Reply(render("staff/devices.j2", person=person, devices=devices), rows)]


async def button(ctx: Context, rest: str) -> list[Reply]:
    """注销 pressed: the browser is signed out at its next request (checked server-side)."""
    if not _is_admin(ctx):
        return [Reply(render("staff/not_allowed.j2"))]
    action, _, argument = rest.partition(":")
    staff_id, _, device_id = argument.partition(":")
    if action != "revoke" or not staff_id.isdigit() or not device_id.isdigit():
        return [Reply(render("dialog/expired.j2"))]
    async with ctx.services.db.transaction() as session:
        done = await staff_devices.revoke(session, int(staff_id), int(device_id))
        person = await roster.active_staff(session, int(staff_id))
    assert ctx.staff is not None
    log.info(
        "device revoked device=%s staff=%s by=%s ok=%s",
        device_id,
        staff_id,
        ctx.staff.id,
        done,
    )
    if not done or person is None:
        return [Reply(render("staff/device_not_found.j2"))]
    return [Reply(render("staff/device_revoked.j2", person=person, device_id=device_id))]
