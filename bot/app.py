"""Composition root: settings in, the services and router out."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings, SettingsError
from dialogs.announcement import ANNOUNCEMENT
from dialogs.application import APPLICATION, catalog_options
from dialogs.booking import BOOKING, WINDOW_BOOKING
from dialogs.engine import DialogEngine
from dialogs.fields import Option
from dialogs.printable import find_cjk_font
from domain.bad_ratings import BadRatingLimits
from domain.bookings import BookingLimits
from domain.meetings import MeetingLimits
from domain.monthly_report import ReportSchedule
from domain.ratings import RatingLinks
from domain.visits import VisitLimits
from handlers.context import ApplicantLimits, Services
from handlers.routing import Router
from services.uploads import UploadCaps, UploadChecker
from storage import roster
from storage.cases import CodeGuard
from storage.db import Database
from storage.seed import is_empty, seed_all
from storage.state import MemoryStateStore, RedisStateStore, StateStore, connect
from storage.state_sqlite import SqliteStateStore

if TYPE_CHECKING:
    from handlers.consult import Consultation


@dataclass
class App:
    settings: Settings
    services: Services
    router: Router

    async def close(self) -> None:
        await self.services.state.close()
        await self.services.db.dispose()


def build_state(settings: Settings) -> StateStore:
    if settings.redis_url:
        return RedisStateStore(  # the one Redis client; flood guards and limiters share it
            redis=connect(settings.redis_url, settings.redis_max_connections),
            ttl_seconds=settings.state_ttl_seconds,
        )
    if (path := settings.state_file) is not None:  # the embedded default: resumes after a restart
        return SqliteStateStore(path, ttl_seconds=settings.state_ttl_seconds)
    return MemoryStateStore(ttl_seconds=settings.state_ttl_seconds)


def check_files_dir(path: Path) -> None:
    """FILES_DIR must exist (it is created) and take a file, or nothing can be kept."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise SettingsError(f"FILES_DIR: cannot write to {path} ({exc.strerror})") from None


def upload_caps(settings: Settings) -> UploadCaps:
    return UploadCaps(
        max_bytes=settings.upload_max_bytes,
        office_max_unpacked_bytes=settings.office_max_unpacked_bytes,
        office_max_entries=settings.office_max_entries,
        office_max_ratio=settings.office_max_ratio,
    )


async def load_options(db: Database) -> dict[str, list[Option]]:
    async with db.sessions() as session:
        items = await roster.catalog(session)
    return {"catalog": catalog_options([(item.code, item.name) for item in items])}


async def load_consultation(db: Database) -> Consultation:
    from handlers.consult import Consultation  # the FAQ index and jieba: only where asked

    return await Consultation.load(db)


async def build_app(
    settings: Settings,
    *,
    prepare_embedded: bool = True,
    state: StateStore | None = None,
    answering: bool = True,
) -> App:
    """Wire every service once; an embedded SQLite database is migrated and seeded here.

    `answering=False` (the outbox worker) leaves out the FAQ index: nothing is asked there."""
    check_files_dir(settings.files_dir)
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    await db.ping()
    state = state or build_state(settings)
    try:
        await state.ping()
    except BaseException:
        await state.close()
        await db.dispose()
        raise
    if prepare_embedded and db.is_sqlite:
        await db.upgrade()
        async with db.transaction() as session:
            if await is_empty(session):
                await seed_all(session)
    options = await load_options(db)
    services = Services(
        db=db,
        state=state,
        engine=DialogEngine(
            {f.name: f for f in (APPLICATION, ANNOUNCEMENT, BOOKING, WINDOW_BOOKING)}, options
        ),
        files_dir=settings.files_dir,
        form_font=find_cjk_font(settings.form_font_path),
        consultation=await load_consultation(db) if answering else None,
        web_url=settings.web_url,
        limits=ApplicantLimits(
            settings.open_questions_limit,
            settings.daily_applications_limit,
            CodeGuard(
                settings.query_code_limit, dt.timedelta(minutes=settings.query_code_window_minutes)
            ),
        ),
        uploads=UploadChecker(upload_caps(settings), settings.upload_checks_at_once),
        bad_ratings=BadRatingLimits(
            verify_workdays=settings.bad_rating_verify_days,
            fix_workdays=settings.bad_rating_fix_days,
        ),
        rating_links=RatingLinks(
            settings.web_url, settings.rating_link_days, settings.rating_links_per_case
        ),
        reports=ReportSchedule(settings.monthly_report_hour, settings.monthly_report_format),
        bookings=BookingLimits(
            change_hours=settings.booking_change_hours,
            days_ahead=settings.booking_days_ahead,
            lead_minutes=settings.booking_lead_minutes,
            open_per_applicant=settings.booking_open_limit,
            offers=settings.booking_offers,
        ),
        meetings=MeetingLimits(
            max_slots=settings.meeting_max_slots, agenda_choices=settings.meeting_agenda_choices
        ),
        visits=VisitLimits(minutes=settings.visit_minutes, days_ahead=settings.visit_days_ahead),
    )
    return App(settings=settings, services=services, router=Router(services))
