"""Personal-data retention (PIPL): purge what is past its period, on schedule or by command."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from storage import files
from storage import retention as store
from storage.db import Database
from storage.retention import Cutoffs, Purged

log = logging.getLogger(__name__)
AUDIT_MINIMUM_DAYS = 180


@dataclass(frozen=True)
class Retention:
    """Days each kind of personal data is kept (defaults and reasons: docs/operations.md)."""

    closed_cases_days: int = 3 * 365
    answered_questions_days: int = 365
    files_days: int = 365
    outbox_text_days: int = 30
    audit_days: int = 730  # 等级保护 2.0 / 网络安全法 Art. 21 ask for at least 180

    def cutoffs(self, now: dt.datetime) -> Cutoffs:
        def ago(days: int) -> dt.datetime:
            return now - dt.timedelta(days=days)

        return Cutoffs(
            closed_cases=ago(self.closed_cases_days),
            answered_questions=ago(self.answered_questions_days),
            files=ago(self.files_days),
            outbox_text=ago(self.outbox_text_days),
            audit=ago(max(self.audit_days, AUDIT_MINIMUM_DAYS)),
        )


async def purge(
    db: Database, files_dir: Path, retention: Retention, now: dt.datetime, dry_run: bool = False
) -> Purged:
    """Delete (or, with `dry_run`, only count) everything past its retention period."""
    async with db.sessions() as session:
        transaction = await session.begin()
        try:
            purged, blobs = await store.purge(session, retention.cutoffs(now))
        except BaseException:
            await transaction.rollback()
            raise
        if dry_run:
            await transaction.rollback()
            return purged
        await transaction.commit()
    for sha256 in blobs:  # after the commit: a failed purge leaves every file in place
        await asyncio.to_thread(files.remove_blob, files_dir, sha256)
    log.info(
        "retention purge cases=%s questions=%s applicants=%s files=%s outbox_texts=%s audit=%s",
        purged.cases,
        purged.questions,
        purged.applicants,
        purged.files,
        purged.outbox_texts,
        purged.audit_records,
    )
    return purged
