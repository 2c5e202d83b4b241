"""The services handlers receive, wired once by bot/app.py, and the per-update context."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chat.events import Incoming, Reply
from dialogs.engine import DialogEngine
from domain.policy import Actor
from storage.db import Database
from storage.models import Staff
from storage.state import StateStore

if TYPE_CHECKING:
    from services.faq_index import FaqIndex


@dataclass(frozen=True)
class ApplicantLimits:
    """Per-applicant limits against floods, counted in the database."""

    open_questions: int = 5
    daily_applications: int = 3


class Consultation(Protocol):
    """The FAQ consultation (handlers/consult.py), wired only where enabled."""

    @property
    def index(self) -> FaqIndex: ...
    async def ask(self, ctx: Context, text: str) -> list[Reply]: ...


@dataclass
class Services:
    db: Database
    state: StateStore
    engine: DialogEngine
    files_dir: Path
    form_font: Path | None = None
    consultation: Consultation | None = None
    web_url: str = ""  # the web chat's address, for links and QR codes on printed forms
    limits: ApplicantLimits = field(default_factory=ApplicantLimits)


@dataclass
class Context:
    """One update being handled: who, what they sent, and their conversation state."""

    event: Incoming
    services: Services
    state: dict[str, Any]
    staff: Staff | None = None  # set with actor when the route asks who the sender is
    actor: Actor | None = None
    identified: bool = False  # the sender was looked up (once per update, by the router)
    extra: dict[str, Any] = field(default_factory=dict)
