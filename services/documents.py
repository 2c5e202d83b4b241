"""Documents sent to people: rendered when delivered, off the conversation's hot path."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from chat.events import Document
from dialogs.fields import format_phone
from dialogs.printable import ApplicationPrint, file_name, render_docx, render_pdf
from services import report
from storage import cases, files
from storage.db import Database
from storage.models import Case, CaseStatus, utcnow

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF = "application/pdf"
FORM = "application_form"


class Services(Protocol):
    """What rendering a document needs of the app's services (bot/app.py wires them)."""

    @property
    def db(self) -> Database: ...
    @property
    def files_dir(self) -> Path: ...
    @property
    def form_font(self) -> Path | None: ...
    @property
    def web_url(self) -> str: ...
    @property
    def rating_links(self) -> LinkIssuer: ...


class LinkIssuer(Protocol):
    """domain/ratings.py's RatingLinks, as far as printing needs it."""

    async def issue(self, session: AsyncSession, case_id: int, now: dt.datetime) -> str | None: ...


def form_spec(number: str, fmt: str = "docx") -> dict[str, Any]:
    """What an outbox row carries to say 'attach this case's 申请表'."""
    return {"render": FORM, "case": number, "format": fmt}


def status_url(web_url: str, number: str) -> str | None:
    """The web chat with 查询进度 opened on this case (the 查询码 is still asked for)."""
    return f"{web_url}?{urlencode({'case': number})}" if web_url else None


def print_data(case: Case, web_url: str = "", rating_url: str | None = None) -> ApplicationPrint:
    """The case as printed: the form's fields copied by Case's names, a few made for paper."""
    made: dict[str, Any] = {
        "contact_phone": format_phone(case.contact_phone),
        "requested_items": tuple(item.name for item in case.items),
        "submitted_on": case.created_at.astimezone(cases.CHINA).date(),
        "status_url": status_url(web_url, case.number),
        "rating_url": rating_url,
    }
    copied: dict[str, Any] = {
        f.name: getattr(case, f.name) for f in fields(ApplicationPrint) if f.name not in made
    }
    return ApplicationPrint(**copied, **made)


async def application_form(services: Services, case: Case, fmt: str) -> Document | None:
    """Render the case's 申请表 in a thread and keep a copy with the case. A delivered case
    (not rated yet: rating closes it) gets a fresh one-time 好差评 link, printed as a QR code
    with the result; it is issued first, in its own transaction, so no write lock is held
    while the form renders (a form that then fails leaves an unused link that expires)."""
    rating_url = None
    if case.status == CaseStatus.DELIVERED:
        async with services.db.transaction() as session:
            rating_url = await services.rating_links.issue(session, case.id, utcnow())
    form = print_data(case, services.web_url, rating_url)
    if fmt == "pdf":
        if services.form_font is None:
            return None
        content = await asyncio.to_thread(render_pdf, form, services.form_font)
        mime = PDF
    else:
        content = await asyncio.to_thread(render_docx, form)
        mime, fmt = DOCX, "docx"
    name = file_name(form, fmt)
    async with services.db.transaction() as session:
        await files.attach(
            session, services.files_dir, case.id, name, content, mime, "form", "system"
        )
    return Document(name, content, mime, case.number)


async def resolve(services: Services, spec: dict[str, Any]) -> Document | None:
    """The document an outbox row refers to, or None if it can no longer be made."""
    if spec.get("render") == report.REPORT:
        try:
            return await report.report_document(
                services.db, str(spec.get("month", "")), str(spec.get("format", "docx"))
            )
        except report.BadMonth:
            return None
    if spec.get("render") != FORM:
        return None
    async with services.db.sessions() as session:
        case = await cases.by_number(session, str(spec.get("case", "")))
    if case is None:
        return None
    return await application_form(services, case, str(spec.get("format", "docx")))
