"""Scale benchmark (issue 19): cost that grows with open work, not with history.

For each size (1k / 10k / 100k cases by default) it creates a throwaway PostgreSQL database
(migrated and seeded), bulk-loads two years of synthetic but realistic history with COPY —
2,000 applicants (one of them busy: 1 case in 30), 2 items and 5 events per case, half as
many questions as cases (most answered; the open ones forgotten and long escalated), 10 sent
outbox rows per case, a few reported announcements — then times the project's own code
paths warm — each operation on every size in turn, round after round, so that the sizes share
whatever else the machine is doing (median / p95 wall time, median CPU time of this process,
SQL statements per call) — and drops the databases at the end:

- the scheduler tick in the steady state (nothing due: `bot.scheduler.tick`);
- admin `/open`, `/cases` of the busiest applicant (first and a next page), staff `/inbox`,
  through the router as any channel calls it;
- the staff surfaces of issue 27 over one key project per 20 cases (the two lead-unit chiefs
  and a specialist on each team, two problems each, 3 in 8 of them open at every level of the
  ladder): the web work list `/desk` of a specialist on few teams and of a lead-unit chief on
  every team (the page as the browser gets it), the chief's `/kp` and a specialist's `/inbox`
  (the cases with an item of the unit), first page and 下一页;
- `bangdaiban export cases --format xlsx` and `export ledger` as subprocesses: wall time and
  peak RSS;
- `outbox.claim_due(20)` over the whole outbox.

    .venv/bin/python bench/scale_bench.py [--sizes 1000 10000 100000] [--repeat 30]
    .venv/bin/python bench/scale_bench.py --export-only --exports 3 --sizes 10000 100000
    .venv/bin/python bench/scale_bench.py --only desk kp inbox_unit --sizes 100000

`--export-only` loads the data and runs only the export, `--exports N` times per size (sizes
in turn, round after round), printing every run and the machine's load average beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import asyncpg  # noqa: E402
from sqlalchemy import event, select, text  # noqa: E402

from bench_common import drop_database, fresh_database  # noqa: E402
from bot import scheduler  # noqa: E402
from bot.app import App, build_app  # noqa: E402
from bot.channels.web import desk as web_desk  # noqa: E402
from bot.channels.web.stats import default_range  # noqa: E402
from bot.config import load_settings  # noqa: E402
from chat.events import ChatUser, Incoming  # noqa: E402
from dialogs.texts import labels  # noqa: E402
from dialogs.texts import render as render_text  # noqa: E402
from domain import desk as domain_desk  # noqa: E402
from domain import stats  # noqa: E402
from domain.policy import Actor  # noqa: E402
from services.workdays import today_in_china  # noqa: E402
from storage import outbox  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Staff  # noqa: E402
from storage.state import MemoryStateStore  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"
APPLICANTS = 2_000
BUSY_EVERY = 30  # one case in 30 is the busiest applicant's
KEY_EVERY = 20  # one case in 20 is a key project's
OPEN_PROBLEMS = 3  # of every 8 problems
YEARS = 2
CHANNEL = "telegram"
NOW = dt.datetime.now(dt.UTC)


@dataclass
class Timing:
    wall_ms: list[float]
    cpu_ms: list[float]
    statements: int

    def cell(self) -> str:
        wall = sorted(self.wall_ms)
        p95 = wall[min(len(wall) - 1, int(len(wall) * 0.95))]
        cpu = statistics.median(self.cpu_ms)
        return (
            f"{statistics.median(wall):,.1f} / {p95:,.1f} ms "
            f"(CPU {cpu:,.1f} ms, {self.statements} SQL)"
        )


# -- bulk load ----------------------------------------------------------------------------


def _ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def _case_rows(count: int, catalog: list[tuple[int, str, int]]) -> Iterator[tuple[Any, ...]]:
    """Cases oldest first; the newest tenth still open, in every state of the clock."""
    active = ["submitted", "accepted", "in_progress", "in_progress", "needs_supplement"]
    active += ["completed", "delivered"]
    for i in range(1, count + 1):
        created = _ago(365 * YEARS * (1 - i / (count + 1)))
        applicant = 1 if i % BUSY_EVERY == 0 else 2 + i % (APPLICANTS - 1)
        due = reminded = asked = paused = None
        if i > count * 0.9:
            status = active[i % len(active)]
            if status in ("submitted", "accepted", "in_progress"):
                if i % 3 == 0:  # overdue, its handler reminded long ago
                    due, reminded = created + dt.timedelta(days=5), created + dt.timedelta(days=4)
                else:
                    due = NOW + dt.timedelta(days=3 + i % 17)
            elif status == "needs_supplement":
                paused = 86_400 * 3
            elif status == "delivered":
                asked = _ago(1)  # the 回访 wait has just begun
        else:
            status = ("closed",) * 14 + ("withdrawn", "rejected")
            status = status[i % 16]
            if status == "withdrawn" and i % 2:  # from before the clock stopped on withdrawal
                due = created + dt.timedelta(days=3)
        updated = max(created + dt.timedelta(hours=6), asked or created)
        handler = 1 + i % 10
        kind = "key" if i % KEY_EVERY == 0 else "general"
        yield (
            i, f"BDB-{created.year}-{i:06d}", f"k{i}", "ABCDEF", applicant, status, kind,
            f"湖南规模测试{i % 500}有限公司", None, f"规模测试项目{i}", None, "王五",
            "+8613900002222", "项目位于湘江新区，规模测试数据。", None, "材料齐全", None,
            handler, None, due, paused, reminded, asked, created, updated,
            i % 4 if status == "closed" else None, 3 + i % 15 if status == "closed" else None,
            i % 7 == 0,
        )  # fmt: skip


APPLICANT_COLUMNS = ["id", "channel", "chat_id", "unreachable", "subscribed", "topics"]
APPLICANT_COLUMNS += ["created_at"]
CASE_COLUMNS = [
    "id", "number", "submission_key", "query_code", "applicant_id", "status", "project_kind",
    "company", "credit_code", "project_name", "project_code", "contact_name", "contact_phone",
    "project_summary", "other_items", "handler_opinion", "leader_instruction", "handler_id",
    "leader_id", "due_at", "paused_seconds", "reminded_at", "follow_up_asked_at", "created_at",
    "updated_at", "accepted_workdays", "completed_workdays", "late",
]  # fmt: skip
LEVELS = ["very_satisfied"] * 12 + ["satisfied"] * 5 + ["basic"]
LEVELS += ["dissatisfied", "very_dissatisfied"]  # 1 in 10 a 差评
SCORES = {"very_satisfied": 5, "satisfied": 4, "basic": 3, "dissatisfied": 2}


async def bulk_load(url: str, count: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        staff = [r["id"] for r in await conn.fetch("SELECT id FROM staff ORDER BY id")]
        catalog = [
            (r["id"], r["name"], r["department_id"])
            for r in await conn.fetch("SELECT id, name, department_id FROM catalog_items")
        ]
        window = await conn.fetchval("SELECT id FROM staff WHERE name = '李娜'")
        await conn.execute(
            "UPDATE staff SET channel = 'test', chat_id = 'admin' WHERE name = '陈晨';"
            "UPDATE staff SET channel = 'test', chat_id = 'window' WHERE name = '李娜';"
            "UPDATE staff SET channel = 'test', chat_id = 'chief' WHERE name = '周静';"
            "UPDATE staff SET channel = 'test', chat_id = 'specialist' WHERE name = '许芳'"
        )
        await conn.copy_records_to_table(
            "applicants",
            columns=APPLICANT_COLUMNS,
            records=(
                (
                    a,
                    "test" if a == 1 else CHANNEL,
                    "busy" if a == 1 else f"a{a}",
                    False,
                    a % 3 == 0,
                    "[]",
                    _ago(365 * YEARS),
                )
                for a in range(1, APPLICANTS + 1)
            ),
        )
        await conn.copy_records_to_table(
            "cases",
            columns=CASE_COLUMNS,
            records=(
                (*row[:17], staff[row[17] % len(staff)], *row[18:])
                for row in _case_rows(count, catalog)
            ),
        )
        await conn.copy_records_to_table(
            "case_items",
            columns=["case_id", "catalog_item_id", "name", "department_id", "status"],
            records=(
                (i, *catalog[(i + k) % len(catalog)][:2], catalog[(i + k) % len(catalog)][2],
                 "done")
                for i in range(1, count + 1)
                for k in range(2)
            ),
        )  # fmt: skip
        steps = ["submitted", "accepted", "in_progress", "completed", "delivered"]
        await conn.copy_records_to_table(
            "case_events",
            columns=["case_id", "at", "actor_kind", "to_status", "visible_to_applicant"],
            records=(
                (i, _ago(365 * YEARS * (1 - i / (count + 1))) + dt.timedelta(hours=k), "staff",
                 steps[k], True)
                for i in range(1, count + 1)
                for k in range(5)
            ),
        )  # fmt: skip
        # 好差评: every closed case rated an hour after its delivered event; 1 in 10 a 差评.
        closed = [i for i in range(1, count + 1) if i <= count * 0.9 and i % 16 < 14]
        await conn.copy_records_to_table(
            "case_ratings",
            columns=["id", "case_id", "level", "score", "points", "channel", "at"],
            records=(
                (n, i, LEVELS[i % 20], SCORES.get(LEVELS[i % 20], 1), "[]", CHANNEL,
                 _ago(365 * YEARS * (1 - i / (count + 1))) + dt.timedelta(hours=5))
                for n, i in enumerate(closed, start=1)
            ),
        )  # fmt: skip
        await conn.copy_records_to_table(
            "bad_ratings",
            columns=["rating_id", "case_id", "department_id", "status", "opened_at",
                     "verify_due_at", "fix_due_at", "verified_at", "fixed_at", "reviewed_at",
                     "escalation_level"],
            records=(
                (n, i, catalog[i % len(catalog)][2], "closed", at, at + dt.timedelta(days=1),
                 at + dt.timedelta(days=21), at + dt.timedelta(hours=20),
                 at + dt.timedelta(days=10 + i % 15), at + dt.timedelta(days=26), 0)
                for n, i in enumerate(closed, start=1)
                if LEVELS[i % 20] in ("dissatisfied", "very_dissatisfied")
                for at in [_ago(365 * YEARS * (1 - i / (count + 1))) + dt.timedelta(hours=5)]
            ),
        )  # fmt: skip
        await conn.copy_records_to_table(  # one FAQ consultation per case
            "consultations",
            columns=["at", "channel", "outcome"],
            records=((_ago(365 * YEARS * (1 - i / (count + 1))), CHANNEL,
                      ("answer", "answer", "choose", "route")[i % 4])
                     for i in range(1, count + 1)),
        )  # fmt: skip
        questions = count // 2
        open_every = max(2, questions // max(1, int(questions * 0.0075)))
        await conn.copy_records_to_table(
            "questions",
            columns=["applicant_id", "text", "status", "owner_id", "escalation_level",
                     "created_at", "updated_at", "answered_at", "answer_hours",
                     "answered_on_time"],
            records=(
                (2 + q % (APPLICANTS - 1), "园区有没有人才公寓可以申请入住？",
                 "open" if q % open_every == 0 else "closed", window,
                 2 if q % open_every == 0 else 0, created, created,
                 None if q % open_every == 0 else created + dt.timedelta(hours=3),
                 None if q % open_every == 0 else 3, q % open_every != 0)
                for q in range(1, questions + 1)
                for created in [_ago(365 * YEARS * (1 - q / (questions + 1)))]
            ),
        )  # fmt: skip
        await conn.copy_records_to_table(
            "announcements",
            columns=["id", "title", "body", "topics", "segment", "created_at", "reported_at"],
            records=((a, "政策公告", "正文", "[]", "subscribers", _ago(30 * a), _ago(30 * a))
                     for a in range(1, 11)),
        )  # fmt: skip
        await conn.copy_records_to_table(
            "outbox",
            columns=["idempotency_key", "channel", "chat_id", "text", "buttons", "status",
                     "attempts", "next_attempt_at", "created_at", "sent_at"],
            records=(
                (f"case:{i}:event:{k}", CHANNEL, f"a{2 + i % (APPLICANTS - 1)}", "通知", "[]",
                 "sent", 1, at, at, at)
                for i in range(1, count + 1)
                for k in range(10)
                for at in [_ago(365 * YEARS * (1 - i / (count + 1)))]
            ),
        )  # fmt: skip
        await conn.copy_records_to_table(  # a little pending work for claim_due
            "outbox",
            columns=["idempotency_key", "channel", "chat_id", "text", "buttons", "status",
                     "attempts", "next_attempt_at", "created_at"],
            records=((f"pending:{n}", CHANNEL, f"p{n}", "通知", "[]", "pending", 0, NOW, NOW)
                     for n in range(50)),
        )  # fmt: skip
        await _key_projects(conn, count)
        for table in (
            "applicants",
            "cases",
            "announcements",
            "case_ratings",
            "key_projects",
            "problems",
        ):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    finally:
        await conn.close()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _key_projects(conn: asyncpg.Connection, count: int) -> None:
    """One key project per KEY_EVERY cases (linked to its case), its team the two lead-unit
    chiefs (the default team) and one specialist in turn, its next 回访 ahead; two problems
    each, OPEN_PROBLEMS in 8 open at every level of the ladder, the rest resolved. As in the
    steady state, an open problem below the top reached its level within the working days
    before it moves up (the scheduler would move it otherwise); at the top it may be old."""
    chiefs = [
        r["id"]
        for r in await conn.fetch(
            "SELECT s.id FROM staff s JOIN departments d ON d.id = s.department_id "
            "WHERE s.role = 'chief' AND d.code IN ('government_services', "
            "'industry_promotion') ORDER BY s.id"
        )
    ]
    specialists = [
        r["id"] for r in await conn.fetch("SELECT id FROM staff WHERE role = 'specialist'")
    ]
    projects = count // KEY_EVERY
    stages = ["negotiating", "signed", "applied", "building", "done"]
    n = projects + 1
    await conn.copy_records_to_table(
        "key_projects",
        columns=["id", "case_id", "name", "company", "stage", "service_plan", "created_at",
                 "last_contact_at", "next_follow_up_at"],
        records=(
            (k, k * KEY_EVERY, f"重点规模项目{k}", f"湖南重点测试{k % 300}有限公司",
             stages[k % len(stages)], "一对一代办，按节点推进。", _ago(365 * YEARS * (1 - k / n)),
             _ago(1 + k % 5), NOW + dt.timedelta(days=1 + k % 20))
            for k in range(1, projects + 1)
        ),
    )  # fmt: skip
    await conn.copy_records_to_table(
        "key_project_members",
        columns=["key_project_id", "staff_id"],
        records=(
            (k, staff)
            for k in range(1, projects + 1)
            for staff in [*chiefs, specialists[k % len(specialists)]]
        ),
    )
    await conn.copy_records_to_table(
        "problems",
        columns=["id", "key_project_id", "text", "level", "status", "raised_by", "raised_at",
                 "level_since", "resolved_at"],
        records=(
            (p, 1 + (p - 1) // 2, "用地指标尚未落实，需协调。", 1 + p // 8 % 4,
             "open" if p % 8 < OPEN_PROBLEMS else "resolved", chiefs[0], since, since,
             None if p % 8 < OPEN_PROBLEMS else since + dt.timedelta(days=2))
            for p in range(1, 2 * projects + 1)
            for since in [_problem_since(p)]
        ),
    )  # fmt: skip


def _problem_since(p: int) -> dt.datetime:
    """When problem `p` reached its level: open below the top, within the last 20 hours."""
    below_top = p % 8 < OPEN_PROBLEMS and 1 + p // 8 % 4 < 4
    return NOW - dt.timedelta(hours=p % 20) if below_top else _ago(1 + p % 90)


# -- timing -------------------------------------------------------------------------------


Call = Callable[[], Awaitable[object]]


async def statements_of(app: App, call: Call) -> int:
    count = 0

    def seen(*_: object) -> None:
        nonlocal count
        count += 1

    engine = app.services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        await call()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return count


async def interleaved(calls: dict[int, tuple[App, Call]], repeat: int) -> dict[int, Timing]:
    """Time the same operation on every size in turn, round after round, so that the
    sizes share whatever else the machine is doing; three warm-up calls each first."""
    timings = {}
    for size, (app, call) in calls.items():
        for _ in range(3):
            await call()
        timings[size] = Timing([], [], await statements_of(app, call))
    for _ in range(repeat):
        for size, (_, call) in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            await call()
            timings[size].wall_ms.append((time.perf_counter() - wall) * 1000)
            timings[size].cpu_ms.append((time.process_time() - cpu) * 1000)
    return timings


# Runs the CLI and, at exit, writes the process's own peak RSS (VmHWM, KiB) to the file named
# first. wait4's ru_maxrss cannot tell it: a child spawned by vfork (as subprocess does) starts
# its high-water mark from this process's, which is bigger than the export at 100k cases.
_PEAK_LAUNCHER = """
import atexit, re, runpy, sys
from pathlib import Path

report = Path(sys.argv.pop(1))

def peak():
    status = Path("/proc/self/status").read_text()
    report.write_text(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))

atexit.register(peak)
sys.argv[0] = "bot"
runpy.run_module("bot", run_name="__main__")
"""


def export_run(url: str, what: str = "cases") -> tuple[float, float, float, int]:
    """`bangdaiban export <what> --format xlsx` in its own process: wall seconds, CPU seconds
    (wait4) and peak RSS (MB, the process's own VmHWM), and the file's size in bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        out, peak = Path(tmp) / f"{what}.xlsx", Path(tmp) / "peak"
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": ""}
        command = [sys.executable, "-c", _PEAK_LAUNCHER, str(peak), "export", what]
        start = time.perf_counter()
        child = subprocess.Popen(
            [*command, "--format", "xlsx", "--out", str(out)],
            cwd=ROOT,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"export failed with {child.returncode}")
        cpu = usage.ru_utime + usage.ru_stime
        return seconds, cpu, int(peak.read_text()) / 1024, out.stat().st_size


def export_cell(runs: list[tuple[float, float, float, int]]) -> str:
    """The median run's wall time, CPU and peak RSS, and the spread when there are several."""
    seconds, cpu, rss, size_bytes = sorted(runs)[len(runs) // 2]
    cell = f"{seconds:.1f} s (CPU {cpu:.1f} s), {rss:.0f} MB; file {size_bytes / 1e6:.1f} MB"
    if len(runs) > 1:
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        cell += (
            f"; {len(runs)} runs {min(walls):.1f}–{max(walls):.1f} s wall, "
            f"CPU {min(cpus):.1f}–{max(cpus):.1f} s"
        )
    return cell


@dataclass
class Loaded:
    url: str
    app: App | None
    calls: dict[str, Call]
    notes: dict[str, str]


async def backfill_rollup(url: str) -> None:
    """The rows were copied in bypassing the domain, so the daily rollup is counted by its
    migration's backfill (0600), as on an upgraded production database."""
    db = Database(url)
    try:
        await db.downgrade("0510")
        await db.upgrade()
    finally:
        await db.dispose()


async def load(size: int, files: Path, export_only: bool = False) -> Loaded:
    name = f"bdb_scale_bench_{os.getpid()}_{size}"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await fresh_database(url)
    start = time.perf_counter()
    await bulk_load(f"{SERVER}/{name}", size)
    print(f"  {size:,} cases loaded in {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    await backfill_rollup(url)
    print(f"  stats_daily backfilled in {time.perf_counter() - start:.1f} s", flush=True)
    if export_only:
        return Loaded(url, None, {}, {})
    settings = load_settings(database_url=url, redis_url="", files_dir=files)
    app = await build_app(settings, state=MemoryStateStore(), answering=False)
    calls, notes = await _operations(app)
    return Loaded(url, app, calls, notes)


async def _operations(app: App) -> tuple[dict[str, Call], dict[str, str]]:
    router = app.router

    def say(chat_id: str, words: str) -> Call:
        user = ChatUser("test", chat_id)
        return lambda: router.handle(Incoming.say(user, words))

    def press(chat_id: str, data: str) -> Call:
        user = ChatUser("test", chat_id)
        return lambda: router.handle(Incoming.press(user, data))

    async def tick() -> None:
        await scheduler.tick(app.services)

    async def claim() -> None:
        async with app.services.db.sessions() as session:
            await outbox.claim_due(session, CHANNEL, 20)
            await session.rollback()

    async def service_stats() -> None:  # /desk/stats' figures: the last twelve months
        today = today_in_china()
        first, last = default_range(today)
        async with app.services.db.sessions() as session:
            await stats.gather(session, stats.day_span(first, last), stats.StatsScope(), today)

    async def next_of(chat_id: str, words: str, prefix: str) -> Call | None:
        """下一页 of the list `words` shows, if it has one."""
        replies = await router.handle(Incoming.say(ChatUser("test", chat_id), words))
        buttons = (b.data for r in replies for b in r.all_buttons())
        data = next((d for d in buttons if d.startswith(prefix)), None)
        return None if data is None else press(chat_id, data)

    async def desk_of(name: str) -> Call:
        async with app.services.db.sessions() as session:
            staff = await session.scalar(select(Staff).where(Staff.name == name))
        assert staff is not None
        return lambda: desk_page(app, staff)

    async with app.services.db.sessions() as session:
        open_now = await session.scalar(
            text("SELECT count(*) FROM questions WHERE status IN ('open', 'forwarded')")
        )
        busy = await session.scalar(text("SELECT count(*) FROM cases WHERE applicant_id = 1"))
        outbox_rows = await session.scalar(text("SELECT count(*) FROM outbox"))
        problems = await session.scalar(text("SELECT count(*) FROM problems WHERE status = 'open'"))
        projects = await session.scalar(text("SELECT count(*) FROM key_projects"))
        unit = await session.scalar(
            text(
                "SELECT count(DISTINCT i.case_id) FROM case_items i JOIN staff s "
                "ON s.department_id = i.department_id WHERE s.name = '许芳'"
            )
        )
    calls: dict[str, Call | None] = {
        "tick": tick,
        "open": say("admin", "/open"),
        "cases": say("busy", "/cases"),
        "cases_next": await next_of("busy", "/cases", "c:page:"),
        "inbox": say("window", "/inbox"),
        "desk": await desk_of("许芳"),
        "desk_chief": await desk_of("周静"),
        "kp": say("chief", "/kp"),
        "inbox_unit": say("specialist", "/inbox"),
        "inbox_unit_next": await next_of("specialist", "/inbox", "w:inbox:"),
        "kp_next": await next_of("chief", "/kp", "k:page:"),  # none before issue 27
        "claim": claim,
        "stats": service_stats,
    }
    notes = {
        "open": f"{open_now} open",
        "cases": f"{busy} cases",
        "claim": f"{outbox_rows:,} rows",
        "desk": f"{problems:,} open problems",
        "kp": f"{projects:,} projects",
        "inbox_unit": f"{unit:,} cases of the unit",
    }
    return {k: c for k, c in calls.items() if c is not None}, notes


async def desk_page(app: App, staff: Staff) -> str:
    """The /desk page as the browser gets it (without the HTTP round trip)."""
    render_page = getattr(web_desk, "desk_text", None)
    if render_page is not None:
        filters = domain_desk.Filters()
        found = await render_page(app.services.db, staff, filters, app.settings.desk_page_size)
        return str(found[0] if isinstance(found, tuple) else found)
    # the code before issue 27: the handler's body
    actor = Actor.of_staff(staff)
    async with app.services.db.sessions() as session:
        rows = await domain_desk.work_list(session, actor, domain_desk.Filters())
    return render_text(
        "web/desk.html.j2",
        staff=staff,
        rows=rows,
        filters=domain_desk.Filters(),
        kinds=labels("desk_kinds"),
        statuses=web_desk._status_options(),
        status_label=web_desk.status_label,
        exports=web_desk._exports(actor),
    )


OPERATIONS = {
    "tick": "scheduler tick (steady state, nothing to send)",
    "open": "admin `/open`",
    "cases": "`/cases` of the busiest applicant",
    "cases_next": "the same, 下一页",
    "inbox": "staff `/inbox` (window: every active case)",
    "desk": "web `/desk` of a specialist on few teams",
    "desk_chief": "web `/desk` of a lead-unit chief on every team",
    "kp": "chief's `/kp`",
    "kp_next": "the same, 下一页",
    "inbox_unit": "specialist's `/inbox` (cases with an item of the unit)",
    "inbox_unit_next": "the same, 下一页",
    "export": "`export cases --format xlsx`: time, peak RSS",
    "export_ledger": "`export ledger --format xlsx`: time, peak RSS",
    "claim": "`outbox.claim_due(20)`",
    "stats": "`/desk/stats` figures, last 12 months, whole service",
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--export-only", action="store_true", help="time only the export")
    parser.add_argument("--exports", type=int, default=1, help="export runs per size")
    parser.add_argument("--only", nargs="+", choices=list(OPERATIONS), help="these operations")
    args = parser.parse_args()
    wanted = set(args.only or OPERATIONS)
    if args.export_only:
        wanted &= {"export", "export_ledger"}
    loaded: dict[int, Loaded] = {}
    cells: dict[int, dict[str, str]] = {size: {} for size in args.sizes}
    try:
        with tempfile.TemporaryDirectory() as files:
            for size in args.sizes:
                print(f"{size:,} cases …", flush=True)
                loaded[size] = await load(size, Path(files), args.export_only)
            for key in loaded[args.sizes[0]].calls:
                if key not in wanted:
                    continue
                calls = {
                    s: (r.app, r.calls[key])
                    for s, r in loaded.items()
                    if r.app is not None and key in r.calls
                }
                for size, timing in (await interleaved(calls, args.repeat)).items():
                    note = loaded[size].notes.get(key)
                    cells[size][key] = timing.cell() + (f"; {note}" if note else "")
            for run in loaded.values():
                if run.app is not None:
                    await run.app.close()
            for key, what in (("export", "cases"), ("export_ledger", "ledger")):
                if key not in wanted:
                    continue
                runs: dict[int, list[tuple[float, float, float, int]]] = {s: [] for s in loaded}
                for round_ in range(1, args.exports + 1):
                    for size, run in loaded.items():
                        before = os.getloadavg()[0]
                        runs[size].append(export_run(run.url, what))
                        seconds, cpu, rss, _ = runs[size][-1]
                        print(
                            f"  export {what} {size:,} #{round_}: {seconds:.1f} s "
                            f"(CPU {cpu:.1f} s), {rss:.0f} MB; load average {before:.1f} → "
                            f"{os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
                for size in loaded:
                    cells[size][key] = export_cell(runs[size])
    finally:
        for run in loaded.values():
            await drop_database(run.url)
    print()
    print("| operation | " + " | ".join(f"{s:,} cases" for s in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for key, title in OPERATIONS.items():
        if key not in wanted or not any(key in cells[s] for s in args.sizes):
            continue
        row = " | ".join(cells[s].get(key, "—") for s in args.sizes)
        print(f"| {title} | {row} |")


if __name__ == "__main__":
    asyncio.run(main())
