"""咨询: FAQ answers at once, or a named first responder who owns the question (首问责任制)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncSession

from chat.callbacks import CallbackData, Prompt
from chat.events import Button, Reply
from dialogs.texts import label, render
from domain.buttons import QuestionRef
from domain.notices import notify_question_staff
from handlers.context import Context
from handlers.menu import menu_button, with_menu
from handlers.routes import Routes
from services import metrics
from services.faq_domain import CatalogItem, item_code
from services.workdays import next_office_opening
from storage import faq, questions, roster, stats
from storage.db import Database
from storage.models import Department, Question, QuestionStatus, Staff, utcnow

if TYPE_CHECKING:  # the index (jieba, numpy) is imported where questions are answered
    from services.faq_index import FaqIndex

log = logging.getLogger(__name__)
routes = Routes("consult")


class FaqAnswer(CallbackData, prefix="q:faq"):
    key: str


class ToHuman(CallbackData, prefix="q:human"):
    """转人工: the last question goes to staff."""


class FollowQuestion(QuestionRef, prefix="q:follow"):
    """追问: the applicant writes more about an answered question."""


class FollowText(Prompt, prefix="follow"):
    question_id: int


def _human() -> Button:
    return ToHuman().button(label("buttons", "human"))


@dataclass(frozen=True)
class Entry:
    key: str
    question: str
    answer: str
    department: str | None


class Consultation:
    """The FAQ index over the database's entries, and the routing of what it can't answer."""

    # How often a running bot asks the database whether `faq import` changed the FAQ.
    RELOAD_CHECK_SECONDS = 5.0
    # How long a unit's people, read from the roster for a "which unit" answer, are reused: a
    # person deactivated in the roster leaves the answers within this time.
    CONTACTS_SECONDS = 30.0

    def __init__(
        self,
        index: FaqIndex,
        entries: dict[str, Entry],
        items: dict[str, CatalogItem] | None = None,
        version: object = None,
    ) -> None:
        self.index = index
        self.entries = entries
        self.items = items or {}
        self.version = version
        self._checked_at = time.monotonic()
        self._contacts: dict[str, tuple[float, Department | None, list[Staff]]] = {}
        self._answers: dict[str, str] = {}  # an entry's answer as sent, rendered once

    @classmethod
    async def load(cls, db: Database) -> Consultation:
        from services.faq_index import FaqDoc, FaqIndex

        async with db.sessions() as session:
            rows = await faq.entries(session)
            groups = await faq.synonyms(session)
            catalog = await roster.catalog_units(session)
            version = await faq.version(session)
        docs = [
            FaqDoc(r.key, r.question, tuple(r.phrasings), r.department_code, tuple(r.tags))
            for r in rows
        ]
        entries = {r.key: Entry(r.key, r.question, r.answer, r.department_code) for r in rows}
        items = {code: CatalogItem(code, name, unit) for code, name, unit in catalog}
        index = await asyncio.to_thread(FaqIndex.build, docs, groups, items=items.values())
        return cls(index, entries, items, version)

    async def refresh(self, db: Database) -> None:
        """Pick up a `faq import` made while running: a cheap version check every few seconds."""
        now = time.monotonic()
        if now - self._checked_at < self.RELOAD_CHECK_SECONDS:
            return
        self._checked_at = now
        async with db.sessions() as session:
            version = await faq.version(session)
        if version == self.version:
            return
        fresh = await Consultation.load(db)
        self.index, self.entries, self.items = fresh.index, fresh.entries, fresh.items
        self.version, self._answers = fresh.version, {}
        log.info("FAQ reloaded entries=%s", len(self.entries))

    # -- enterprise side -------------------------------------------------------------------

    async def ask(self, ctx: Context, text: str) -> list[Reply]:
        from services.faq_index import Verdict

        ctx.state["last_question"] = text
        await self.refresh(ctx.services.db)
        decision = self.index.decide(text) if self.entries else None
        verdict = Verdict.ROUTE if decision is None else decision.verdict
        stats.record_consultation(ctx.services.db, ctx.event.user.channel, verdict)  # 服务统计
        if decision is None or decision.verdict == Verdict.ROUTE:
            metrics.FAQ_VERDICTS.labels("routed").inc()
            hint = decision.hits[0].key if decision and decision.hits else None
            return await self.route(ctx, text, hint)
        if decision.verdict == Verdict.ANSWER:
            metrics.FAQ_VERDICTS.labels("answered").inc()
            code = item_code(decision.hits[0].key)
            if code is not None:
                return [await self.unit_answer(ctx, code)]
            return [self.answer(decision.hits[0].key)]
        metrics.FAQ_VERDICTS.labels("choice").inc()
        rows = [
            [FaqAnswer(hit.key).button(self.entries[hit.key].question)] for hit in decision.hits
        ]
        rows.append([ToHuman().button(label("buttons", "none_of_these"))])
        return [Reply(render("consult/choose.j2"), rows)]

    def answer(self, key: str) -> Reply:
        text = self._answers.get(key)
        if text is None:
            entry = self.entries[key]
            body = render("consult/answer.j2", answer=entry.answer)  # data, escaped, never run
            text = self._answers[key] = f"<b>{_escape(entry.question)}</b>\n{body}"
        return Reply(text, [[_human()], [menu_button("menu")]])

    async def unit_answer(self, ctx: Context, code: str) -> Reply:
        """Which unit handles a catalog item, and its 首席责任人 and 服务专员 from the roster."""
        item = self.items[code]
        department: Department | None = None
        people: list[Staff] = []
        if item.unit:
            department, people = await self._unit_contacts(ctx.services.db, item.unit)
        text = render("consult/unit_contacts.j2", item=item, unit=department, people=people)
        buttons = [[_human()], [menu_button("menu")]]
        return Reply(text, buttons)

    async def _unit_contacts(
        self, db: Database, unit: str
    ) -> tuple[Department | None, list[Staff]]:
        now = time.monotonic()
        cached = self._contacts.get(unit)
        if cached is not None and now - cached[0] < self.CONTACTS_SECONDS:
            return cached[1], cached[2]
        async with db.sessions() as session:
            department, people = await roster.unit_contacts(session, unit)
        self._contacts[unit] = (now, department, people)
        return department, people

    async def to_human(self, ctx: Context) -> list[Reply]:
        text = ctx.state.get("last_question")
        if not text:
            return [with_menu("consult/nothing_to_route.j2")]
        return await self.route(ctx, text, None)

    async def route(self, ctx: Context, text: str, hint_key: str | None) -> list[Reply]:
        """Store the question and give it to the first responder on duty (or queue it)."""
        unit_code = self.entries[hint_key].department if hint_key in self.entries else None
        limit = ctx.services.limits.open_questions
        async with ctx.transaction(immediate=True) as session:
            applicant = await ctx.enrol(session, lock=True)  # counted one question at a time
            # The limit, the hinted unit and the owner in one statement; the owner chosen
            # first, so the question is inserted with it (no UPDATE).
            found = await questions.routing(session, applicant.id, unit_code)
            if found.open_questions >= limit:
                ctx.state["last_question"] = text  # kept: 转人工 sends it later
                log.info("open question limit applicant=%s", applicant.id)
                again = [_human()]
                return [Reply(render("consult/open_limit.j2", limit=limit), [again])]
            owner = found.owner
            question = await questions.create(
                session, applicant.id, text, found.department_id, owner.id if owner else None
            )
            if owner is not None:
                await assign(session, question, owner, found.department_name)
        ctx.state.pop("last_question", None)
        log.info("question routed id=%s owner=%s", question.id, owner.id if owner else None)
        if owner is None:
            when = next_office_opening(utcnow())
            return [with_menu("consult/queued.j2", when=when)]
        return [with_menu("consult/routed.j2", owner=owner)]

    async def start_followup(self, ctx: Context, question_id: int) -> list[Reply]:
        question = await self._own_question(ctx, question_id)
        if question is None:
            return [with_menu("dialog/expired.j2")]
        ctx.state["mode"] = FollowText(question_id).pack()
        return [Reply(render("consult/followup_prompt.j2"))]

    async def followup(self, ctx: Context, question_id: int, text: str) -> list[Reply]:
        applicant = ctx.sender()
        async with ctx.transaction() as session:
            question = await questions.get(session, question_id)
            if applicant is None or question is None or question.applicant_id != applicant.id:
                return [with_menu("dialog/expired.j2")]
            message = await questions.add_message(
                session, question, "applicant", applicant.id, text
            )
            question.status = (
                QuestionStatus.FORWARDED if question.assignee_id else QuestionStatus.OPEN
            )
            owner = await questions.staff(session, question.owner_id)
            notice = render("staff/question_followup.j2", question=question, text=text)
            for person in {question.owner_id, question.assignee_id} - {None}:
                target = await questions.staff(session, person)
                if target is not None:
                    notify_question_staff(
                        session, target, notice, question, f"message:{message.id}"
                    )
        if owner is None:
            return [with_menu("consult/queued.j2", when=next_office_opening(utcnow()))]
        return [with_menu("consult/followup_sent.j2", owner=owner)]

    async def _own_question(self, ctx: Context, question_id: int) -> Question | None:
        applicant = ctx.sender()
        async with ctx.services.db.sessions() as session:
            question = await questions.get(session, question_id)
        if applicant is None or question is None or question.applicant_id != applicant.id:
            return None
        return question


def _escape(text: str) -> str:
    return str(escape(text))


async def assign(
    session: AsyncSession, question: Question, owner: Staff, unit_name: str | None
) -> None:
    """Make `owner` the first responder and tell them, in the caller's transaction."""
    question.owner_id = owner.id
    text = render("staff/question_new.j2", question=question, unit=unit_name)
    notify_question_staff(session, owner, text, question, f"assigned:{owner.id}", owner_view=True)


def age_label(question: Question, now: dt.datetime) -> str:
    hours = int((now - question.created_at).total_seconds() // 3600)
    return f"{hours // 24}d{hours % 24}h" if hours >= 24 else f"{hours}h"


# -- routes: only where the FAQ consultation is wired (bot/app.py) ------------------------


def _consultation(ctx: Context) -> Consultation | None:
    consultation = ctx.services.consultation
    return consultation if isinstance(consultation, Consultation) else None


@routes.button(FaqAnswer)
async def _faq(ctx: Context, data: FaqAnswer) -> list[Reply]:
    consultation = _consultation(ctx)
    if consultation is None or data.key not in consultation.entries:
        return [with_menu("dialog/expired.j2")]
    return [consultation.answer(data.key)]


@routes.button(ToHuman)
async def _to_human(ctx: Context, _: ToHuman) -> list[Reply]:
    consultation = _consultation(ctx)
    return await consultation.to_human(ctx) if consultation else [with_menu("dialog/expired.j2")]


@routes.button(FollowQuestion, applicant=True)
async def _follow(ctx: Context, data: FollowQuestion) -> list[Reply]:
    consultation = _consultation(ctx)
    if consultation is None:
        return [with_menu("dialog/expired.j2")]
    return await consultation.start_followup(ctx, data.question_id)


@routes.prompt(FollowText, applicant=True)
async def _follow_text(ctx: Context, data: FollowText, text: str) -> list[Reply]:
    consultation = _consultation(ctx)
    if consultation is None:
        return [with_menu("common/free_text.j2")]
    return await consultation.followup(ctx, data.question_id, text)


class AskPrompt(Prompt, prefix="ask"):
    """The question typed after /ask (or 咨询) without one."""


@routes.any_text
async def free_text(ctx: Context, text: str) -> list[Reply]:
    """Any text no dialog or prompt is waiting for: a question for the FAQ (where wired)."""
    consultation = ctx.services.consultation
    if consultation is None:
        return [with_menu("common/free_text.j2")]
    return await consultation.ask(ctx, text)


@routes.command("ask")
@routes.menu_action("ask")
async def ask(ctx: Context, question: str = "") -> list[Reply]:
    if question:
        return await free_text(ctx, question)
    ctx.state["mode"] = AskPrompt().pack()
    return [Reply(render("common/ask_prompt.j2"))]


routes.on_text(AskPrompt, free_text)
