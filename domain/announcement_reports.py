"""The delivery report of a broadcast: once every row of an announcement is done, its
author is told how many were reached."""

from __future__ import annotations

from dialogs.texts import render
from domain.reminders import Services
from storage import announcements, outbox, questions
from storage.models import utcnow
from storage.outbox import Recipient

REPORT_BATCH = 50


async def report_finished(services: Services) -> int:
    """Write the delivery report of each announcement whose rows are all done; only the
    announcements not yet reported are looked at, a batch at a time."""
    reported, after = 0, 0
    while True:
        async with services.db.transaction() as session:
            batch = await announcements.unreported(session, after, REPORT_BATCH)
            if not batch:
                break
            after = batch[-1].id
            all_counts = await announcements.counts_of(session, [a.id for a in batch])
            finished = [a for a in batch if all_counts[a.id].done]
            senders = await questions.staff_by_ids(
                session, {a.created_by for a in finished if a.created_by is not None}
            )
            now = utcnow()
            for announcement in finished:
                announcement.reported_at = now  # also when nobody can be told: never again
                sender = senders.get(announcement.created_by or 0)
                if sender is None or not sender.chats():
                    continue
                seconds = int((now - announcement.created_at).total_seconds())
                report = render(
                    "announcements/report.j2",
                    announcement=announcement,
                    counts=all_counts[announcement.id],
                    seconds=seconds,
                )
                key = announcements.report_key(announcement.id)
                for index, (channel, chat_id) in enumerate(sender.chats()):
                    outbox.enqueue(
                        session,
                        Recipient(channel, chat_id),
                        report,
                        key=key if index == 0 else f"{key}:{channel}",
                    )
                reported += 1
        if len(batch) < REPORT_BATCH:
            break
    return reported
