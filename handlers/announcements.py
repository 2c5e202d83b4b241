"""政策公告: subscriptions for enterprises, composing and queueing broadcasts for admins."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession

from chat.callbacks import CallbackData
from chat.events import Reply
from dialogs.announcement import TOPICS
from dialogs.engine import Draft
from dialogs.fields import Value
from dialogs.texts import label, render
from domain.policy import is_admin
from handlers.context import Context
from handlers.menu import menu_button, with_menu
from handlers.routes import FormRoute, Routes
from storage import announcements, outbox
from storage.outbox import Recipient

log = logging.getLogger(__name__)
routes = Routes("announcements")
Begin = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class Topic(CallbackData, prefix="a:topic"):
    code: str


# -- enterprises ------------------------------------------------------------------------


async def topics(ctx: Context) -> list[Reply]:
    """Subscribe (all topics at first) and show the topics to narrow down."""
    async with ctx.transaction() as session:
        applicant = await ctx.enrol(session)
        if not applicant.subscribed:
            await announcements.set_topics(session, applicant, list(TOPICS))
        chosen = set(applicant.topics or TOPICS)
    return [_topics_screen(chosen)]


def _topics_screen(chosen: set[str]) -> Reply:
    rows = []
    for code in TOPICS:
        mark = label("marks", "checked" if code in chosen else "unchecked")
        rows.append([Topic(code).button(f"{mark} {label('topics', code)}")])
    rows.append([menu_button("unsubscribe"), menu_button("menu")])
    return Reply(render("common/subscribed.j2") + "\n" + render("announcements/topics.j2"), rows)


@routes.button(Topic)
async def toggle_topic(ctx: Context, data: Topic) -> list[Reply]:
    if data.code not in TOPICS:
        return [with_menu("dialog/expired.j2")]
    async with ctx.transaction() as session:
        applicant = await ctx.enrol(session)
        chosen = set(applicant.topics or [])
        chosen ^= {data.code}
        await announcements.set_topics(session, applicant, [t for t in TOPICS if t in chosen])
    return [_topics_screen(chosen)]


async def recent(ctx: Context) -> list[Reply]:
    async with ctx.services.db.sessions() as session:
        items = await announcements.recent(session)
    return [with_menu("announcements/recent.j2", items=items)]


# -- administrators ---------------------------------------------------------------------


async def compose(ctx: Context) -> list[Reply]:
    if not is_admin(ctx.staff):
        return [Reply(render("staff/not_allowed.j2"))]
    draft, step = ctx.services.engine.start("announcement")
    ctx.state["draft"] = draft.dump()
    return step.replies


async def preview_count(ctx: Context, draft: Draft) -> Reply:
    """How many people the announcement would reach, shown under the preview."""
    segment = str(draft.answers.get("segment") or "")
    chosen = draft.answers.get("topics")
    async with ctx.services.db.sessions() as session:
        people = await announcements.audience(session, segment, list(chosen or []))
    return Reply(render("announcements/recipients.j2", count=len(people)))


async def submit(ctx: Context, token: str, answers: dict[str, Value]) -> list[Reply]:
    """Queue the composed announcement; the role is checked again here, not only at /broadcast."""
    if not is_admin(ctx.staff):
        return [Reply(render("staff/not_allowed.j2"))]
    assert ctx.staff is not None
    queued = await queue(
        ctx.transaction,
        str(answers["title"]),
        str(answers["body"]),
        str(answers["segment"]),
        list(answers.get("topics") or []),
        ctx.staff.id,
    )
    if queued is None:
        return [Reply(render("announcements/no_recipients.j2"))]
    return [Reply(render("announcements/queued.j2", count=queued[1]))]


async def queue(
    begin: Begin, title: str, body: str, segment: str, topics: list[str], staff_id: int
) -> tuple[int, int] | None:
    """Store the announcement and one outbox row per recipient in one transaction (`begin`:
    the chat's, which holds the 操作日志 record too, or the database's for the CLI).

    Returns (announcement id, recipients), or None when nobody is in the audience."""
    async with begin() as session:
        people = await announcements.audience(session, segment, topics)
        if not people:
            return None
        announcement = await announcements.create(session, title, body, segment, topics, staff_id)
        text = render("announcements/message.j2", announcement=announcement)
        for person in people:
            outbox.enqueue(
                session,
                Recipient(person.channel, person.chat_id),
                text,
                key=announcements.recipient_key(announcement.id, person.id),
                announcement_id=announcement.id,
            )
    log.info("announcement queued id=%s recipients=%s", announcement.id, len(people))
    return announcement.id, len(people)


routes.form("announcement", FormRoute(submit, actor=True, review=preview_count))

routes.command("subscribe", bare=True)(topics)
routes.menu_action("subscribe")(topics)
routes.command("news", bare=True)(recent)
routes.menu_action("news")(recent)
routes.command("broadcast", actor=True, bare=True)(compose)
