"""`/devices NAME`: an administrator lists the browsers bound to a staff member and signs
any of them out (注销)."""

from __future__ import annotations

import logging

from chat.callbacks import CallbackData
from chat.events import Reply
from dialogs.texts import label, render
from domain.policy import is_admin
from handlers.context import Context
from handlers.routes import Routes
from storage import roster, staff_devices

log = logging.getLogger(__name__)
routes = Routes("devices")


class RevokeDevice(CallbackData, prefix="v:revoke"):
    """注销: sign one browser of one staff member out."""

    staff_id: int
    device_id: int


@routes.command("devices", actor=True)
async def listing(ctx: Context, name: str) -> list[Reply]:
    """The person's signed-in browsers, each with a 注销 button."""
    if not is_admin(ctx.staff):
        return [Reply(render("staff/not_allowed.j2"))]
    if not name:
        return [Reply(render("staff/devices_usage.j2"))]
    async with ctx.services.db.sessions() as session:
        person = await roster.staff_by_name(session, name)
        if person is None:
            return [Reply(render("staff/devices_usage.j2"))]
        devices = await staff_devices.listing(session, person.id)
    revoke = label("buttons", "revoke_device")
    rows = [[RevokeDevice(person.id, d.id).button(f"{revoke} #{d.id}")] for d in devices]
    return [Reply(render("staff/devices.j2", person=person, devices=devices), rows)]


@routes.button(RevokeDevice, actor=True)
async def revoke(ctx: Context, data: RevokeDevice) -> list[Reply]:
    """注销 pressed: the browser is signed out at its next request (checked server-side)."""
    if ctx.staff is None or not is_admin(ctx.staff):
        return [Reply(render("staff/not_allowed.j2"))]
    async with ctx.transaction() as session:
        done = await staff_devices.revoke(session, data.staff_id, data.device_id)
        person = await roster.active_staff(session, data.staff_id)
    log.info(
        "device revoked device=%s staff=%s by=%s ok=%s",
        data.device_id,
        data.staff_id,
        ctx.staff.id,
        done,
    )
    if not done or person is None:
        return [Reply(render("staff/device_not_found.j2"))]
    return [Reply(render("staff/device_revoked.j2", person=person, device_id=data.device_id))]
