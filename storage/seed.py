"""Load domain data (roster, item catalog, FAQ) from YAML into the database; idempotent."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Agency,
    CatalogItem,
    Department,
    FaqEntry,
    FaqSynonyms,
    Role,
    Room,
    Staff,
    utcnow,
)
from storage.roster import bind_wecom

DATA = Path(__file__).resolve().parent.parent / "data"


class SeedError(Exception):
    """The YAML does not describe valid domain data; the message says where."""


@dataclass(frozen=True)
class SeedReport:
    departments: int
    staff: int
    items: int
    faq: int
    retired_units: tuple[str, ...] = ()  # deactivated: no longer in roster.yaml
    retired_staff: tuple[str, ...] = ()
    rooms: int = 0
    agencies: int = 0


@dataclass(frozen=True)
class RosterReport:
    departments: int
    staff: int
    retired_units: tuple[str, ...]
    retired_staff: tuple[str, ...]
    agencies: int = 0


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SeedError(f"{path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise SeedError(f"{path}: expected a mapping at the top")
    return loaded


async def seed_roster(session: AsyncSession, roster: dict[str, Any]) -> RosterReport:
    """Upsert departments by code and staff by (department, name); keeps chat bindings.

    Units and people no longer in the YAML are deactivated (kept for the history)."""
    kept: set[int] = set()
    for sort, unit in enumerate(roster.get("departments", [])):
        department = await session.scalar(select(Department).where(Department.code == unit["code"]))
        if department is None:
            department = Department(code=unit["code"])
            session.add(department)
        department.name, department.leading, department.sort = (
            unit["name"],
            bool(unit.get("leading")),
            sort,
        )
        department.active = True
        await session.flush()
        for person in unit.get("staff", []):
            role = person.get("role")
            if role not in set(Role) or role == Role.AGENT:  # agents: under agencies
                raise SeedError(f"roster: {person.get('name')}: unknown role {role!r}")
            staff = await session.scalar(
                select(Staff).where(
                    Staff.department_id == department.id, Staff.name == person["name"]
                )
            )
            if staff is None:
                staff = Staff(department_id=department.id, name=person["name"])
                staff.on_duty = bool(person.get("on_duty", False))
                session.add(staff)
            staff.role, staff.phone, staff.email = role, person.get("phone"), person.get("email")
            staff.active = True
            await session.flush()
            userid = person.get("wecom_userid")  # in the roster; else kept from /bind or sync
            if userid and staff.wecom_userid != str(userid):
                await bind_wecom(session, staff, str(userid))
            kept.add(staff.id)
    agencies = await seed_agencies(session, roster.get("agencies") or [], kept)
    units = {unit["code"] for unit in roster.get("departments", [])}
    retired_units, retired_staff = [], []
    for department in await session.scalars(select(Department).where(Department.active)):
        if department.code not in units:
            department.active = False
            retired_units.append(department.name)
    for person in await session.scalars(select(Staff).where(Staff.active).order_by(Staff.id)):
        if person.id not in kept:
            person.active, person.on_duty = False, False
            retired_staff.append(person.name)
    await session.flush()
    report = RosterReport(len(units), len(kept), tuple(retired_units), tuple(retired_staff))
    return dataclasses.replace(report, agencies=agencies)


def _contract(entry: dict[str, Any]) -> tuple[dt.date, dt.date]:
    start, end = entry.get("contract_start"), entry.get("contract_end")
    if not isinstance(start, dt.date) or not isinstance(end, dt.date) or end < start:
        raise SeedError(f"roster: agency {entry.get('code')}: contract_start/end (YYYY-MM-DD)")
    return start, end


async def seed_agencies(session: AsyncSession, entries: list[Any], kept: set[int]) -> int:
    """Upsert agencies by code and their agents (role agent, in the hiring unit) by
    (agency, name), adding the agents' ids to `kept`; agencies no longer listed end."""
    listed: set[str] = set()
    for entry in entries:
        code, unit_code = entry.get("code"), entry.get("unit")
        unit = await session.scalar(select(Department).where(Department.code == unit_code))
        if not code or not entry.get("name") or not entry.get("contract_number"):
            raise SeedError(f"roster: agency {code!r}: code, name and contract_number")
        if unit is None or not unit.leading:
            raise SeedError(f"roster: agency {code}: unit {unit_code!r} is not a lead unit")
        start, end = _contract(entry)
        agency = await session.scalar(select(Agency).where(Agency.code == code))
        if agency is None:
            agency = Agency(code=code)
            session.add(agency)
        agency.name, agency.contract_number = entry["name"], str(entry["contract_number"])
        agency.contract_start, agency.contract_end = start, end
        agency.department_id, agency.active = unit.id, True
        await session.flush()
        listed.add(code)
        for person in entry.get("agents") or []:
            agent = await session.scalar(
                select(Staff).where(Staff.agency_id == agency.id, Staff.name == person["name"])
            )
            if agent is None:
                agent = Staff(department_id=unit.id, agency_id=agency.id, name=person["name"])
                session.add(agent)
            agent.role, agent.phone = Role.AGENT, person.get("phone")
            agent.email, agent.department_id, agent.active = person.get("email"), unit.id, True
            await session.flush()
            kept.add(agent.id)
    for agency in await session.scalars(select(Agency).where(Agency.active)):
        if agency.code not in listed:
            agency.active = False
    return len(listed)


async def seed_items(session: AsyncSession, catalog: dict[str, Any]) -> int:
    units = {
        d.code: d.id for d in await session.scalars(select(Department).where(Department.active))
    }
    items = catalog.get("items", [])
    for sort, entry in enumerate(items):
        if entry["unit"] not in units:
            raise SeedError(f"items: {entry['code']}: unknown unit {entry['unit']!r}")
        item = await session.scalar(select(CatalogItem).where(CatalogItem.code == entry["code"]))
        if item is None:
            item = CatalogItem(code=entry["code"])
            session.add(item)
        item.name, item.department_id, item.sort = entry["name"], units[entry["unit"]], sort
    await session.flush()
    return len(items)


async def seed_faq(session: AsyncSession, faq: dict[str, Any]) -> int:
    """Replace synonyms; upsert entries by key (staff edits arrive as a new YAML import)."""
    await session.execute(delete(FaqSynonyms))
    for group in faq.get("synonyms", []):
        session.add(FaqSynonyms(terms=list(group)))
    entries = faq.get("entries", [])
    for entry in entries:
        row = await session.scalar(select(FaqEntry).where(FaqEntry.key == entry["key"]))
        if row is None:
            row = FaqEntry(key=entry["key"])
            session.add(row)
        row.question = entry["question"]
        row.phrasings = [*(entry.get("phrasings") or ()), *(entry.get("similar") or ())]
        row.answer = entry["answer"]
        row.department_code = entry.get("department")
        row.tags = list(entry.get("tags", []))
        row.updated_at = utcnow()
    await session.flush()
    return len(entries)


HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def _hours(code: str, spec: Any) -> list[list[str]]:
    """A room's [start, end] pairs, each "HH:MM", start before end, in order."""
    if not isinstance(spec, list) or not spec:
        raise SeedError(f"rooms: {code}: hours must be a list of [start, end] pairs")
    pairs = []
    for pair in spec:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(t, str) and HHMM.fullmatch(t) for t in pair)
            or pair[0] >= pair[1]
        ):
            raise SeedError(f'rooms: {code}: {pair!r} is not a ["HH:MM", "HH:MM"] span')
        pairs.append([pair[0], pair[1]])
    return pairs


async def seed_rooms(session: AsyncSession, rooms: dict[str, Any]) -> int:
    """Upsert rooms by code; rooms no longer listed are deactivated (bookings keep them)."""
    listed = rooms.get("rooms") or []
    codes = set()
    for sort, entry in enumerate(listed):
        code = str(entry.get("code") or "")
        slot = entry.get("slot_minutes", 60)
        if not code or not entry.get("name"):
            raise SeedError(f"rooms: entry {sort + 1} needs a code and a name")
        if not isinstance(slot, int) or not 15 <= slot <= 240:
            raise SeedError(f"rooms: {code}: slot_minutes must be 15 to 240")
        room = await session.scalar(select(Room).where(Room.code == code))
        if room is None:
            room = Room(code=code)
            session.add(room)
        room.name, room.capacity = str(entry["name"]), int(entry.get("capacity", 6))
        room.slot_minutes, room.hours, room.sort = slot, _hours(code, entry.get("hours")), sort
        room.active = True
        codes.add(code)
    for room in await session.scalars(select(Room).where(Room.active)):
        if room.code not in codes:
            room.active = False
    await session.flush()
    return len(codes)


async def seed_all(session: AsyncSession, data: Path = DATA) -> SeedReport:
    roster = await seed_roster(session, read_yaml(data / "roster.yaml"))
    items = await seed_items(session, read_yaml(data / "items.yaml"))
    faq_path = data / "faq.yaml"
    faq = await seed_faq(session, read_yaml(faq_path)) if faq_path.exists() else 0
    rooms_path = data / "rooms.yaml"
    rooms = await seed_rooms(session, read_yaml(rooms_path)) if rooms_path.exists() else 0
    return SeedReport(
        roster.departments,
        roster.staff,
        items,
        faq,
        roster.retired_units,
        roster.retired_staff,
        rooms,
        roster.agencies,
    )


async def is_empty(session: AsyncSession) -> bool:
    return await session.scalar(select(Department.id).limit(1)) is None
