"""Seeding the real roster retires the people and units it no longer lists."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from bot.app import App
from storage.models import Department, Staff
from storage.seed import DATA, seed_all
from support import Chat


def roster_folder(folder: Path, change: Any) -> Path:
    """A data folder like data/ whose roster.yaml went through `change`."""
    folder.mkdir()
    shutil.copy(DATA / "items.yaml", folder / "items.yaml")
    roster = yaml.safe_load((DATA / "roster.yaml").read_text(encoding="utf-8"))
    change(roster)
    (folder / "roster.yaml").write_text(yaml.safe_dump(roster, allow_unicode=True), "utf-8")
    return folder


def _with_pilot_unit(roster: dict[str, Any]) -> None:
    roster["departments"].append(
        {
            "code": "pilot",
            "name": "试点办",
            "staff": [{"name": "测试员", "role": "specialist", "phone": "0731-99990000"}],
        }
    )


def _without_wang_lei(roster: dict[str, Any]) -> None:
    unit = roster["departments"][0]
    unit["staff"] = [p for p in unit["staff"] if p["name"] != "王磊"]


async def test_seed_deactivates_people_and_units_no_longer_listed(
    app: App, chat: Chat, tmp_path: Path
) -> None:
    db = app.services.db
    async with db.transaction() as session:
        await seed_all(session, roster_folder(tmp_path / "v1", _with_pilot_unit))
    await chat.say("/contact")
    assert "试点办" in chat.text and "测试员" in chat.text and "王磊" in chat.text

    async with db.transaction() as session:
        report = await seed_all(session, roster_folder(tmp_path / "v2", _without_wang_lei))
    assert report.retired_units == ("试点办",)
    assert sorted(report.retired_staff) == sorted(["王磊", "测试员"])
    async with db.sessions() as session:
        inactive = set((await session.scalars(select(Staff.name).where(~Staff.active))).all())
        pilot = await session.scalar(select(Department).where(Department.code == "pilot"))
    assert inactive == {"王磊", "测试员"} and pilot is not None and not pilot.active
    await chat.say("/contact")
    assert "试点办" not in chat.text and "测试员" not in chat.text and "王磊" not in chat.text
    assert "李娜" in chat.text

    async with db.transaction() as session:  # listed again: active again, nothing retired
        report = await seed_all(session)
    assert report.retired_units == () and report.retired_staff == ()
    await chat.say("/contact")
    assert "王磊" in chat.text
