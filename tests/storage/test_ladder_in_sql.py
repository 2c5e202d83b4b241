"""The ladder's rule written as SQL for the work list (`handled_by`) names exactly the people
`level_people` names — the rule the notices follow — for every staff member and level."""

from __future__ import annotations

from sqlalchemy import select

from bot.app import App
from storage import key_projects
from storage.key_projects import Stage, handled_by
from storage.models import Problem, Staff, utcnow


async def test_handled_by_agrees_with_level_people(app: App) -> None:
    async with app.services.db.transaction() as session:
        people = {s.name: s for s in (await session.scalars(select(Staff))).unique()}
        teams = ([], ["许芳"], ["吴婷", "冯雪"], ["孙悦"])
        for n, extra in enumerate(teams):
            project = await key_projects.create(
                session,
                f"项目{n}",
                f"企业{n}",
                Stage.SIGNED,
                extra_members=[people[x].id for x in extra],
            )
            for level in range(1, 5):
                problem = await key_projects.raise_problem(
                    session, project, "问题", people["周静"].id, utcnow()
                )
                problem.level = level
        people["冯雪"].active = False  # an inactive member's unit is not on the ladder for her
        people["钱峰"].active = False  # nor is an inactive chief
    async with app.services.db.sessions() as session:
        problems = list(await session.scalars(select(Problem)))
        staff = list((await session.scalars(select(Staff))).unique())
        checked = 0
        for problem in problems:
            expected = {
                s.id
                for s in await key_projects.level_people(
                    session, problem.key_project_id, problem.level
                )
            }
            for person in staff:
                found = await session.scalar(
                    select(Problem.id).where(Problem.id == problem.id, handled_by(person.id))
                )
                assert (found is not None) == (person.id in expected), (person.name, problem.level)
                checked += found is not None
        assert checked > len(problems)  # every problem has someone, some several
