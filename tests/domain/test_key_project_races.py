"""The key-project ladder under concurrency: two team members acting on one problem at the
same moment (two conversations, two connections) leave it in a state one order explains."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.app import App
from storage import key_projects
from storage.models import Problem, Staff, utcnow
from support import bind_staff

RESOLVED, ALREADY = "已标记为解决", "已经解决"


async def problems(app: App, count: int) -> list[int]:
    async with app.services.db.transaction() as session:
        project = await key_projects.create(
            session, "并发项目", "并发企业", key_projects.Stage.SIGNED
        )
        zhou = await session.scalar(select(Staff).where(Staff.name == "周静"))
        assert zhou is not None
        return [
            (await key_projects.raise_problem(session, project, f"问题{i}", zhou.id, utcnow())).id
            for i in range(count)
        ]


async def problem(app: App, problem_id: int) -> Problem:
    async with app.services.db.sessions() as session:
        found = await session.get(Problem, problem_id)
    assert found is not None
    return found


async def test_resolve_twice_and_escalate_versus_resolve(app: App, backend: str) -> None:
    trials = 20 if backend == "production" else 5
    zhou, zhao = await bind_staff(app, "周静"), await bind_staff(app, "赵刚")  # the team
    for pid in await problems(app, trials):
        await asyncio.gather(zhou.press_data(f"k:solve:{pid}"), zhao.press_data(f"k:solve:{pid}"))
        outcomes = sorted(RESOLVED in c.text for c in (zhou, zhao))
        assert outcomes == [False, True] and ALREADY in zhou.text + zhao.text
    for pid in await problems(app, trials):
        await asyncio.gather(zhou.press_data(f"k:up:{pid}"), zhao.press_data(f"k:solve:{pid}"))
        assert RESOLVED in zhao.text
        found = await problem(app, pid)
        assert found.status == "resolved"
        assert found.level == (1 if ALREADY in zhou.text else 2)
