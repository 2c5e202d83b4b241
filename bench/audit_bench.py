"""What the 操作日志 costs a staff action: actions per second and latency with and without the
audit append, for 1, 8 and 32 staff acting at once on PostgreSQL (each on their own case, so
only the audit chain's lock is shared).

    PYTHONPATH=. python bench/audit_bench.py [--actions 200]

Each action is one transaction as handlers run it (Context.transaction): lock the case row,
change it, then — with the audit on — append the record (advisory lock, last hash, insert)
just before the commit. Prints one line per (writers, audit) pair.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from sqlalchemy import insert, select, text, update

from bench_common import SERVER, drop_database, fresh_database
from storage import audit
from storage.db import Database
from storage.models import Applicant, Case, utcnow

URL = f"{SERVER}/bdb_audit_bench_{os.getpid()}"


async def make_cases(db: Database, count: int) -> list[int]:
    async with db.transaction() as session:
        applicant = Applicant(channel="bench", chat_id="bench")
        session.add(applicant)
        await session.flush()
        rows = [
            {
                "number": f"BDB-2026-{i:06d}",
                "submission_key": f"bench-{i}",
                "applicant_id": applicant.id,
                "status": "in_progress",
                "project_kind": "general",
                "company": "湖南基准测试有限公司",
                "project_name": "基准测试项目",
                "contact_name": "王五",
                "contact_phone": "+8613900002222",
                "project_summary": "基准测试。",
            }
            for i in range(1, count + 1)
        ]
        await session.execute(insert(Case), rows)
        ids = await session.scalars(select(Case.id).order_by(Case.id))
        return list(ids)


async def act(db: Database, case_id: int, writer: int, audited: bool) -> float:
    started = time.perf_counter()
    async with db.transaction() as session:
        await session.execute(select(Case.id).where(Case.id == case_id).with_for_update())
        await session.execute(update(Case).where(Case.id == case_id).values(updated_at=utcnow()))
        if audited:
            entry = audit.Entry("case.item", "staff", writer, "window", 1, case_id=case_id)
            await audit.append(session, entry)
    return time.perf_counter() - started


async def run(db: Database, cases: list[int], writers: int, actions: int, audited: bool) -> str:
    latencies: list[float] = []

    async def staff(writer: int) -> None:
        for _ in range(actions // writers):
            latencies.append(await act(db, cases[writer], writer, audited))

    started = time.perf_counter()
    await asyncio.gather(*(staff(w) for w in range(writers)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return (
        f"writers={writers:>2} audit={'on ' if audited else 'off'} "
        f"actions/s={len(latencies) / elapsed:7.1f} "
        f"p50={statistics.median(latencies) * 1000:6.1f} ms p95={p95 * 1000:6.1f} ms"
    )


async def main(actions: int) -> None:
    await fresh_database(URL)
    db = Database(URL, pool_size=32)
    try:
        cases = await make_cases(db, 32)
        for writers in (1, 8, 32):
            for audited in (False, True):
                await run(db, cases, writers, max(writers, actions // 10), audited)  # warm
                print(await run(db, cases, writers, actions, audited), flush=True)
        async with db.sessions() as session:
            checked, broken = await audit.verify(session)
        print(f"chain verified: {checked} records, {len(broken)} broken")
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await db.dispose()
        await drop_database(URL)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=320)
    asyncio.run(main(parser.parse_args().actions))
