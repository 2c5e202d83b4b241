"""Command line: console, run, db, seed … (`bangdaiban --help`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from bot.config import Settings, SettingsError, load_settings
from storage.db import Database, DatabaseUnavailable
from storage.state import StateUnavailable

T = TypeVar("T")
app = typer.Typer(help="帮代办助手 — chat front end of the 帮代办 service.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
err = Console(stderr=True, highlight=False)
# Loggers of libraries that log statements or payloads (with personal data) below WARNING.
LIBRARY_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "alembic", "aiogram", "aiohttp", "redis")
MAX_INVITE_HOURS = 24 * 30


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        err.print(f"Configuration error — {exc}", markup=False)
        raise typer.Exit(2) from None


def _run(main: Callable[[Settings], Coroutine[object, object, T]]) -> T:
    from bot import logs

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    quiet_libraries(settings.log_libraries, settings.log_level)
    try:
        return asyncio.run(main(settings))
    except DatabaseUnavailable as exc:
        err.print(f"DATABASE_URL: cannot connect to the database ({exc})", markup=False)
        raise typer.Exit(2) from None
    except StateUnavailable as exc:
        if settings.redis_url:
            err.print(f"REDIS_URL: cannot connect to Redis ({exc})", markup=False)
        else:
            where = settings.state_file
            err.print(f"STATE_PATH: cannot keep conversations in {where} ({exc})", markup=False)
        raise typer.Exit(2) from None
    except SettingsError as exc:
        err.print(f"Configuration error — {exc}", markup=False)
        raise typer.Exit(2) from None


def quiet_libraries(asked: str, level: str) -> None:
    """Library loggers at WARNING; those named in LOG_LIBRARIES (comma-separated) at `level`."""
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in filter(None, (part.strip() for part in asked.split(","))):
        logging.getLogger(name).setLevel(level)


@app.command()
def console(
    as_: Annotated[
        str, typer.Option("--as", help="enterprise (default) or staff:<name> from the roster")
    ] = "enterprise",
    user: Annotated[str, typer.Option(help="chat id of the enterprise user")] = "local",
) -> None:
    """Chat with the bot in this terminal (one line per message; EOF ends)."""
    from bot.app import build_app
    from bot.channels.console import CHANNEL, ConsoleChat
    from chat.events import ChatUser
    from storage import roster

    async def main(settings: Settings) -> None:
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
        bot = await build_app(settings)
        try:
            chat_user = ChatUser(CHANNEL, user)
            if as_.startswith("staff:"):
                name = as_.removeprefix("staff:")
                async with bot.services.db.transaction() as session:
                    staff = await roster.staff_by_name(session, name)
                    if staff is None:
                        err.print(f"No staff member named {name!r} in the roster.", markup=False)
                        raise typer.Exit(2)
                    chat_user = ChatUser(CHANNEL, f"staff-{staff.id}")
                    if staff.chat_id is None:  # nobody to take away: their notices show here
                        await roster.bind_chat(session, staff, CHANNEL, chat_user.chat_id)
                # Act as them for this session only; a real (e.g. Telegram) binding stays.
                bot.router.act_as(chat_user, staff.id)
            elif as_ != "enterprise":
                err.print("--as takes 'enterprise' or 'staff:<name>'.", markup=False)
                raise typer.Exit(2)
            interactive = sys.stdin.isatty()
            out = Console(highlight=False, soft_wrap=True)
            chat = ConsoleChat(bot.router, bot.services.db, chat_user, Path("var/downloads"), out)
            if interactive:
                out.print("帮代办助手（输入 /quit 退出）", markup=False, style="bold")
                await chat.send("/start")
            await chat.run(prompt=(lambda: out.print("> ", end="")) if interactive else None)
        finally:
            await bot.close()

    _run(main)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            await db.ping()
            await db.upgrade(revision)
        finally:
            await db.dispose()
        err.print(f"Database upgraded to {revision}.", markup=False)

    _run(main)


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (`base` empties the schema)."""

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            await db.downgrade(revision)
        finally:
            await db.dispose()

    _run(main)


@app.command()
def seed(
    data: Annotated[
        Path | None, typer.Option(help="folder with roster.yaml, items.yaml, faq.yaml")
    ] = None,
) -> None:
    """Load the roster, the item catalog and the FAQ from YAML (idempotent)."""
    from storage.seed import DATA, SeedError, seed_all

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            await db.ping()
            if db.is_sqlite:
                await db.upgrade()
            async with db.transaction() as session:
                report = await seed_all(session, data or DATA)
        except SeedError as exc:
            err.print(f"Seed error — {exc}", markup=False)
            raise typer.Exit(2) from None
        finally:
            await db.dispose()
        err.print(
            f"Seeded {report.departments} units, {report.staff} staff, {report.items} items, "
            f"{report.faq} FAQ entries, {report.rooms} meeting rooms, {report.agencies} agencies.",
            markup=False,
        )
        for kind, names in (("units", report.retired_units), ("staff", report.retired_staff)):
            if names:
                err.print(
                    f"Deactivated {len(names)} {kind} no longer in roster.yaml: {', '.join(names)}",
                    markup=False,
                )

    _run(main)


@app.command()
def run() -> None:
    """Serve Telegram: long polling, or a webhook when WEBHOOK_URL is set."""
    from bot.channels.telegram import serve

    async def main(settings: Settings) -> None:
        if not settings.telegram_bot_token:
            err.print("TELEGRAM_BOT_TOKEN: not set (get one from @BotFather)", markup=False)
            raise typer.Exit(2)
        await serve(settings)

    _run(main)


@app.command()
def worker() -> None:
    """Deliver the outbox (notifications) and run the scheduler until stopped."""
    from bot.worker import work

    async def main(settings: Settings) -> None:
        await work(settings)

    _run(main)


@app.command("web")
def web_chat() -> None:
    """Serve the web chat on WEB_HOST:WEB_PORT (and its notices) until stopped."""
    from bot.channels.web.server import serve
    from bot.worker import background_delivery

    async def main(settings: Settings) -> None:
        beside = []
        if settings.wecom_corp_id:
            from bot.channels.wecom import setup_wecom

            beside.append(setup_wecom)
        announce = lambda line: err.print(line, markup=False)  # noqa: E731
        await serve(settings, background_delivery, announce, beside)

    _run(main)


@app.command()
def qr(
    out: Annotated[Path, typer.Option("--out", help="FILE.png or FILE.svg")],
    source: Annotated[
        str | None, typer.Option(help="where it hangs: a name under `sources` in labels.yaml")
    ] = None,
) -> None:
    """A QR code opening the web chat, tagged with where it hangs (window, poster, website)."""
    from bot.channels.web.qr import save_chat_qr, source_tags

    tags = source_tags()
    source = source or next(iter(tags))
    if source not in tags:
        err.print(f"--source is one of {', '.join(tags)}", markup=False)
        raise typer.Exit(2)
    if out.suffix.lower() not in {".png", ".svg"}:
        err.print("--out must end with .png or .svg", markup=False)
        raise typer.Exit(2)
    url = save_chat_qr(_settings(), out, tags[source])
    err.print(f"Wrote {out} → {url}", markup=False)


faq_app = typer.Typer(help="The FAQ knowledge base.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
app.add_typer(faq_app, name="faq")
app.add_typer(staff_app, name="staff")


@faq_app.command("import")
def faq_import(path: Path) -> None:
    """Add or update FAQ entries from a YAML file (same format as data/faq.yaml)."""
    from storage.seed import SeedError, read_yaml, seed_faq

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            await db.ping()
            async with db.transaction() as session:
                count = await seed_faq(session, read_yaml(path))
        except (SeedError, KeyError) as exc:
            err.print(f"FAQ import error — {exc}", markup=False)
            raise typer.Exit(2) from None
        finally:
            await db.dispose()
        err.print(f"Imported {count} FAQ entries; running bots reload them within seconds.")

    _run(main)


@faq_app.command("report")
def faq_report(
    splits: Annotated[
        Path, typer.Option(help="folder with the labelled train/dev/test.yaml")
    ] = Path("tests/data/faq_questions"),
    calibration: Annotated[Path, typer.Option(help="where the bot reads the thresholds")] = Path(
        "data/faq_calibration.yaml"
    ),
    write: Annotated[bool, typer.Option(help="store the thresholds")] = True,
) -> None:
    """Calibrate the FAQ thresholds on train + dev, store them, report the test split."""
    from handlers.consult import Consultation
    from services.faq_report import report, write_calibration

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            consultation = await Consultation.load(db)
        finally:
            await db.dispose()
        result = report(consultation.index, splits)
        Console(highlight=False, soft_wrap=True).print(result.format(), markup=False)
        if write:
            write_calibration(result, calibration)
            err.print(f"Thresholds written to {calibration}.", markup=False)

    _run(main)


@faq_app.command("suggest")
def faq_suggest(
    days: Annotated[int, typer.Option(help="look at questions of the last N days")] = 90,
) -> None:
    """Staff-answered routed questions the FAQ misses, grouped, as draft entries to import."""
    import datetime as dt

    from handlers.consult import Consultation
    from services.faq_suggest import Answered, format_suggestions, suggest
    from storage import questions
    from storage.models import utcnow

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            consultation = await Consultation.load(db)
            async with db.sessions() as session:
                rows = await questions.staff_answers(session, utcnow() - dt.timedelta(days=days))
        finally:
            await db.dispose()
        groups = suggest(consultation.index, [Answered(*row) for row in rows])
        Console(highlight=False).print(format_suggestions(groups), markup=False)
        err.print(f"{len(groups)} group(s) from {len(rows)} answered question(s).")

    _run(main)


@staff_app.command("invite")
def staff_invite(
    name: str,
    hours: Annotated[int, typer.Option(help="how long the code stays valid (1 to 720)")] = 72,
) -> None:
    """Print a one-time code the staff member sends as /bind CODE from their chat."""
    import datetime as dt

    from storage import questions, roster

    if not 1 <= hours <= MAX_INVITE_HOURS:
        err.print(f"--hours: use 1 to {MAX_INVITE_HOURS} (got {hours})", markup=False)
        raise typer.Exit(2)

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            async with db.transaction() as session:
                staff = await roster.staff_by_name(session, name)
                if staff is None:
                    err.print(f"No staff member named {name!r} in the roster.", markup=False)
                    raise typer.Exit(2)
                code = await questions.create_invite(session, staff.id, dt.timedelta(hours=hours))
        finally:
            await db.dispose()
        Console(highlight=False).print(f"/bind {code}  (valid {hours} h)", markup=False)

    _run(main)


@staff_app.command("devices")
def staff_devices_command(
    name: str,
    revoke: Annotated[
        int | None, typer.Option(help="sign this browser (device id) out for good")
    ] = None,
) -> None:
    """List the browsers NAME bound with /bind in the web chat; --revoke ID signs one out."""
    from storage import roster, staff_devices

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        out = Console(highlight=False)
        try:
            async with db.transaction() as session:
                staff = await roster.staff_by_name(session, name)
                if staff is None:
                    err.print(f"No staff member named {name!r} in the roster.", markup=False)
                    raise typer.Exit(2)
                if revoke is not None:
                    if not await staff_devices.revoke(session, staff.id, revoke):
                        err.print(f"No live browser #{revoke} of {name}.", markup=False)
                        raise typer.Exit(1)
                    out.print(f"Browser #{revoke} of {name} signed out.", markup=False)
                    return
                devices = await staff_devices.listing(session, staff.id)
        finally:
            await db.dispose()
        for d in devices:
            out.print(
                f"#{d.id}  bound {d.created_at:%Y-%m-%d %H:%M}Z  last used "
                f"{d.last_seen_at:%Y-%m-%d %H:%M}Z  expires {d.expires_at:%Y-%m-%d %H:%M}Z  "
                f"{d.label or ''}",
                markup=False,
            )
        err.print(f"{len(devices)} browser(s) signed in.", markup=False)

    _run(main)


@app.command()
def broadcast(
    file: Annotated[Path, typer.Option("--file", help="Markdown/text: first line is the title")],
    sender: Annotated[str, typer.Option("--as", help="an administrator's name in the roster")],
    segment: Annotated[str, typer.Option(help="subscribers | key_projects | open_cases")] = (
        "subscribers"
    ),
    topic: Annotated[list[str] | None, typer.Option(help="topic code; repeat for more")] = None,
    wait: Annotated[bool, typer.Option(help="show delivery progress until done")] = True,
) -> None:
    """Queue a policy announcement from a file and follow its delivery with a progress bar."""
    from rich.progress import Progress

    from dialogs.announcement import BODY_LIMIT, SEGMENTS, TOPICS
    from dialogs.cleaning import clean
    from handlers.announcements import queue
    from storage import announcements, roster
    from storage.models import Role

    title, _, body = clean(file.read_text(encoding="utf-8")).partition("\n")
    title, body = title.lstrip("# ").strip(), body.strip()
    problems = []
    if not 2 <= len(title) <= 60:
        problems.append("the first line (title) must have 2 to 60 characters")
    if not body or len(body) > BODY_LIMIT:
        problems.append(f"the body must have 1 to {BODY_LIMIT} characters (has {len(body)})")
    if segment not in SEGMENTS or any(t not in TOPICS for t in topic or []):
        problems.append(f"segment is one of {SEGMENTS}; topics are among {TOPICS}")
    if problems:
        err.print("Nothing was sent — " + "; ".join(problems), markup=False)
        raise typer.Exit(2)

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            async with db.sessions() as session:
                staff = await roster.staff_by_name(session, sender)
            if staff is None or staff.role != Role.ADMIN:
                err.print(f"{sender!r} is not an administrator in the roster.", markup=False)
                raise typer.Exit(2)
            queued = await queue(db.transaction, title, body, segment, list(topic or []), staff.id)
            if queued is None:
                err.print("No recipient matches; nothing was sent.", markup=False)
                return
            announcement_id, total = queued
            err.print(f"Announcement {announcement_id} queued for {total} recipients.")
            if not wait:
                return
            with Progress(console=err) as progress:
                task = progress.add_task("delivering", total=total)
                while True:
                    async with db.sessions() as session:
                        counts = await announcements.counts(session, announcement_id)
                    progress.update(task, completed=counts.sent + counts.failed)
                    if counts.done:
                        break
                    await asyncio.sleep(0.5)
            err.print(f"Sent {counts.sent}, failed {counts.failed}.")
        finally:
            await db.dispose()

    _run(main)


@app.command()
def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only count what would go")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="delete it")] = False,
) -> None:
    """Delete personal data past its retention period (RETENTION_*; see docs/operations.md)."""
    from bot.delivery import retention
    from domain.retention import purge as run_purge
    from storage.models import utcnow

    if dry_run == yes:
        err.print("Say --dry-run to count what would be deleted, or --yes to delete it.")
        raise typer.Exit(2)

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            await db.ping()
            if db.is_sqlite:
                await db.upgrade()
            policy = retention(settings)
            purged = await run_purge(db, settings.files_dir, policy, utcnow(), dry_run=dry_run)
        finally:
            await db.dispose()
        verb = "Would delete" if dry_run else "Deleted"
        Console(highlight=False).print(
            f"{verb}: {purged.cases} finished cases (older than {policy.closed_cases_days} d), "
            f"{purged.questions} answered questions ({policy.answered_questions_days} d), "
            f"{purged.applicants} applicants with nothing left, "
            f"{purged.files} stored files ({policy.files_days} d); "
            f"{'would blank' if dry_run else 'blanked'} the text of {purged.outbox_texts} "
            f"delivered notices ({policy.outbox_text_days} d); {purged.audit_records} "
            f"audit records ({policy.audit_days} d).",
            markup=False,
        )

    _run(main)


wechat_app = typer.Typer(help="WeChat Official Account (服务号).", no_args_is_help=True)
app.add_typer(wechat_app, name="wechat")


@app.command()
def calendar() -> None:
    """The years the holiday calendar covers, where each comes from, and the coverage ahead."""
    from services.workdays import CalendarError, load_calendar, today_in_china

    try:
        official = load_calendar()
    except CalendarError as exc:
        err.print(f"Calendar error — {exc}", markup=False)
        raise typer.Exit(2) from None
    out = Console(highlight=False)
    for year, spec in official.years.items():
        out.print(
            f"{year}  {len(spec.holidays):2} days off, {len(spec.workdays)} working weekend "
            f"days  — {spec.source}",
            markup=False,
        )
    today = today_in_china()
    warning = official.coverage_warning(today)
    out.print(warning or f"Covered {official.days_covered(today)} days ahead.", markup=False)


@wechat_app.command("menu")
def wechat_menu(
    file: Annotated[Path | None, typer.Option(help="menu YAML")] = None,
) -> None:
    """Publish the custom menu (我要咨询 · 办事预约 · 我的) from data/wechat_menu.yaml."""
    from bot.channels.wechat import command_api
    from bot.channels.wechat.api import WeChatApiError
    from bot.channels.wechat.menu import MENU_FILE, MenuError, load_menu

    try:
        menu = load_menu(file or MENU_FILE)
    except (MenuError, OSError) as exc:
        err.print(f"Menu error — {exc}", markup=False)
        raise typer.Exit(2) from None

    async def main(settings: Settings) -> None:
        async with command_api(settings) as api:
            try:
                await api.create_menu(menu)
            except WeChatApiError as exc:
                err.print(f"WeChat refused the menu — {exc}", markup=False)
                raise typer.Exit(1) from None
        names = " · ".join(entry["name"] for entry in menu["button"])
        err.print(f"Menu published: {names}", markup=False)

    _run(main)


@wechat_app.command("qr")
def wechat_qr(
    scene: Annotated[str, typer.Option(help="where the code is shown, e.g. 窗口")],
    days: Annotated[int | None, typer.Option(help="temporary code valid N days")] = None,
) -> None:
    """Create a parametric QR code; followers who scan it are recorded with SCENE."""
    from bot.channels.wechat import command_api
    from bot.channels.wechat.api import WeChatApiError

    if not 1 <= len(scene) <= 64:
        err.print("--scene takes 1 to 64 characters", markup=False)
        raise typer.Exit(2)

    async def main(settings: Settings) -> None:
        async with command_api(settings) as api:
            try:
                code = await api.create_qrcode(scene, days * 86400 if days else None)
            except WeChatApiError as exc:
                err.print(f"WeChat refused the QR code — {exc}", markup=False)
                raise typer.Exit(1) from None
        out = Console(highlight=False)
        out.print(f"scene: {scene}", markup=False)
        out.print(f"url: {code.get('url', '')}", markup=False)
        out.print(f"ticket: {code.get('ticket', '')}", markup=False)

    _run(main)


@wechat_app.command("status")
def wechat_status() -> None:
    """Followers, how many can be reached now, and notices undeliverable on WeChat."""
    from bot.channels.wechat.sender import WINDOW
    from storage import wechat

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            async with db.sessions() as session:
                figures = await wechat.stats(session, WINDOW)
        finally:
            await db.dispose()
        out = Console(highlight=False)
        out.print(
            f"followers {figures.followers} (subscribed {figures.subscribed}, "
            f"wrote within 48 h {figures.in_window}); "
            f"undeliverable notices {figures.undeliverable}",
            markup=False,
        )
        for scene, count in sorted(figures.scenes.items()):
            out.print(f"  scene {scene}: {count}", markup=False)

    _run(main)


wecom_app = typer.Typer(help="WeCom (企业微信) / 政务微信 app for staff.", no_args_is_help=True)
app.add_typer(wecom_app, name="wecom")


@wecom_app.command("sync")
def wecom_sync() -> None:
    """Find the WeCom UserID of staff without one by their mobile; list whom it could not."""
    from bot.channels.wecom import command_api
    from bot.channels.wecom.api import WeChatApiError
    from bot.channels.wecom.commands import sync

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            async with command_api(settings) as api:
                result = await sync(db, api)
        except WeChatApiError as exc:
            err.print(f"WeCom refused the look-up — {exc}", markup=False)
            raise typer.Exit(1) from None
        finally:
            await db.dispose()
        out = Console(highlight=False)
        out.print(f"matched {len(result.matched)}:", markup=False)
        for name, userid in result.matched:
            out.print(f"  {name} → {userid}", markup=False)
        out.print(f"not matched {len(result.unmatched)}:", markup=False)
        for name, why in result.unmatched:
            out.print(f"  {name}: {why}", markup=False)

    _run(main)


@wecom_app.command("menu")
def wecom_menu() -> None:
    """Publish the app's menu: 待办事项 opens /desk signed in through WeCom."""
    from bot.channels.wecom import command_api
    from bot.channels.wecom.api import WeChatApiError
    from bot.channels.wecom.menu import app_menu

    async def main(settings: Settings) -> None:
        async with command_api(settings) as api:
            menu = app_menu(settings)
            try:
                await api.create_menu(menu)
            except WeChatApiError as exc:
                err.print(f"WeCom refused the menu — {exc}", markup=False)
                raise typer.Exit(1) from None
        err.print(f"Menu published: {menu['button'][0]['url']}", markup=False)

    _run(main)


@wecom_app.command("status")
def wecom_status() -> None:
    """Who is bound in WeCom, reachable or not (81013), and sends in the last day."""
    from bot.channels.wecom.commands import status_lines

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            lines = await status_lines(db)
        finally:
            await db.dispose()
        out = Console(highlight=False)
        for line in lines:
            out.print(line, markup=False)

    _run(main)


export_app = typer.Typer(help="台账 exports: key-project ledger and cases (xlsx or csv).")
app.add_typer(export_app, name="export")
EXPORT_FORMATS = ("xlsx", "csv")
PROGRESS_FROM = 1000  # rows; smaller exports finish before a bar would help


def _operator() -> str:
    """The operating-system account and host running the command (the 操作日志's who/where)."""
    try:
        account = getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        account = f"uid:{os.getuid()}"
    return f"{account}@{socket.gethostname()}"[:64]


def _export(kind: str, fmt: str, out: Path) -> None:
    """Run one export with a progress bar for long ones; prints the row count."""
    from rich.progress import Progress, TaskID

    from domain import audit
    from services import export

    if fmt not in EXPORT_FORMATS:
        err.print(f"--format is one of {', '.join(EXPORT_FORMATS)}", markup=False)
        raise typer.Exit(2)

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        bar = Progress(console=err, transient=True)
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if total < PROGRESS_FROM:
                return
            if phase not in tasks:
                bar.start()
                description = "reading" if phase == "load" else "writing"
                tasks[phase] = bar.add_task(description, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        try:
            await db.ping()
            run = export.export_ledger if kind == "ledger" else export.export_cases
            rows = await run(db, out, fmt, progress)
            bar.stop()
            fields = audit.CASES_EXPORT_FIELDS if kind == "cases" else ()
            try:  # no record, no file: the export is only done once it is on the log
                await audit.record(db, audit.operator(f"export.{kind}", fields, _operator()))
            except Exception:
                await asyncio.to_thread(out.unlink, missing_ok=True)
                raise
        finally:
            bar.stop()
            await db.dispose()
        err.print(f"Exported {rows} rows to {out}.", markup=False)

    _run(main)


@export_app.command("ledger")
def export_ledger(
    out: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="xlsx or csv")] = "xlsx",
) -> None:
    """重点项目动态管理台账: one row per key project (no personal data)."""
    _export("ledger", fmt, out)


@export_app.command("cases")
def export_cases(
    out: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="xlsx or csv")] = "xlsx",
) -> None:
    """Every 帮代办 application, with contacts and 经办人意见 (staff only; no 领导批示)."""
    _export("cases", fmt, out)


@app.command()
def report(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    out: Annotated[Path, typer.Option("--out", help="file to write")],
    fmt: Annotated[str, typer.Option("--format", help="xlsx or docx")] = "xlsx",
) -> None:
    """工作简报: one month's service statistics (xlsx with charts, or docx)."""
    from services import report as monthly

    if fmt not in monthly.FORMATS:
        err.print(f"--format is one of {', '.join(monthly.FORMATS)}", markup=False)
        raise typer.Exit(2)
    try:
        monthly.parse_month(month)
    except monthly.BadMonth:
        err.print("--month is YYYY-MM, for example 2026-11", markup=False)
        raise typer.Exit(2) from None

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            await db.ping()
            await monthly.write_report(db, month, fmt, out)
        finally:
            await db.dispose()
        err.print(f"Wrote the {month} report to {out}.", markup=False)

    _run(main)


audit_app = typer.Typer(help="操作日志: who saw or did what with enterprises' data.")
app.add_typer(audit_app, name="audit")
AUDIT_FORMATS = ("text", "csv")


def _since(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        err.print(f"--since: a date as YYYY-MM-DD (got {value!r})", markup=False)
        raise typer.Exit(2) from None


@audit_app.callback(invoke_without_command=True)
def audit_list(
    ctx: typer.Context,
    case: Annotated[str | None, typer.Option("--case", help="a case number, BDB-…")] = None,
    person: Annotated[str | None, typer.Option("--person", help="a staff member's name")] = None,
    since: Annotated[str | None, typer.Option("--since", help="from this date, YYYY-MM-DD")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text or csv")] = "text",
) -> None:
    """The audit records matching the filters, oldest first (csv: to standard output)."""
    from services import audit_report
    from storage import audit

    if ctx.invoked_subcommand is not None:
        return
    if fmt not in AUDIT_FORMATS:
        err.print(f"--format is one of {', '.join(AUDIT_FORMATS)}", markup=False)
        raise typer.Exit(2)
    filters = audit.Filters(case_number=case, person=person, since=_since(since))

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        out = sys.stdout
        try:
            await db.ping()
            async with db.sessions() as session:
                lines = audit.stream(session, filters)
                if fmt == "csv":
                    async for chunk in audit_report.csv_chunks(lines):
                        out.write(chunk)
                    return
                count = 0
                async for line in lines:
                    out.write("  ".join(v for v in audit_report.row(line) if v) + "\n")
                    count += 1
                err.print(f"{count} record(s).", markup=False)
        finally:
            await db.dispose()

    _run(main)


@audit_app.command("verify")
def audit_verify(
    since: Annotated[str | None, typer.Option("--since", help="from this date, YYYY-MM-DD")] = None,
) -> None:
    """Recompute each day's hash chain; exit 1 naming every record changed or removed."""
    from storage import audit

    async def main(settings: Settings) -> None:
        db = Database(settings.database_url)
        try:
            await db.ping()
            async with db.sessions() as session:
                checked, broken = await audit.verify(session, _since(since))
        finally:
            await db.dispose()
        for bad in broken:
            what = "content changed" if bad.reason == "content" else "chain broken before it"
            err.print(f"record #{bad.id} ({bad.day}): {what}", markup=False)
        if broken:
            err.print(f"{len(broken)} problem(s) in {checked} record(s).", markup=False)
            raise typer.Exit(1)
        Console(highlight=False).print(f"{checked} record(s) verified: intact.", markup=False)

    _run(main)


def main() -> None:
    app()
