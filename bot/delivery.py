"""Delivery and the scheduler: one delivery loop per channel and one scheduler per database.

Any number of processes may run `Delivery` (`bangdaiban worker`, or `bangdaiban run` with
RUN_WORKER=true); the database decides who does what:
- the scheduler ticks only in the process holding the "scheduler" lease;
- on PostgreSQL with Redis, every process delivers: rows are shared by SKIP LOCKED and the
  send limiter lives in Redis;
- otherwise (SQLite has no row locks; an in-process limiter cannot pace two processes) a
  channel is delivered only by the process holding its "delivery:<channel>" lease; another
  waits, and takes over when the holder stops or dies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping

from bot import scheduler
from bot.config import Settings
from bot.outbox import OutboxWorker, Sender, WorkerConfig, build_send_limiter
from chat.events import Document
from domain.agencies import ContractLimits, watch_contracts
from domain.retention import Retention, purge
from handlers.context import Services
from services import documents
from storage import leases
from storage.db import Database
from storage.models import WECOM_CHANNEL, utcnow
from storage.ratelimit import MemorySendLimiter, RedisSendLimiter, SendLimiter
from storage.state import StateStore

log = logging.getLogger(__name__)
DELIVERY_LEASE_SECONDS = 15.0
SCHEDULER = "scheduler"
PURGE_EVERY = 3600.0  # the retention purge runs hourly on the scheduler's leader


def holder_id() -> str:
    """Names this process in the lease table: host, pid and a random part."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """A lease in the database held by this process while it keeps renewing it.

    `hold()` is asked before each unit of work; it renews once a third of the lease has
    passed, so the work that follows has at least two thirds of it left. Locally the lease
    counts from before the renewal was sent, so this process gives it up no later than the
    database does."""

    def __init__(self, db: Database, name: str, seconds: float, holder: str) -> None:
        self.db, self.name, self.seconds, self.holder = db, name, seconds, holder
        self._valid_until = 0.0  # monotonic
        self._waiting_logged = False

    async def hold(self) -> bool:
        now = time.monotonic()
        if self._valid_until - now > self.seconds * 2 / 3:
            return True
        try:
            async with self.db.transaction() as session:
                held = await leases.acquire(
                    session, self.name, self.holder, dt.timedelta(seconds=self.seconds)
                )
        except Exception as exc:  # the database is away: keep what is still valid
            log.warning("lease renewal failed lease=%s error=%s", self.name, type(exc).__name__)
            return self._valid_until > time.monotonic()
        was_held = self._valid_until > now
        self._valid_until = now + self.seconds if held else 0.0
        self._report(held, was_held)
        return held

    def _report(self, held: bool, was_held: bool) -> None:
        if held and not was_held:
            log.info("lease taken lease=%s", self.name)
            self._waiting_logged = False
        elif not held and was_held:
            log.warning("lease lost lease=%s", self.name)
        elif not held and not self._waiting_logged:
            log.info("another process holds the lease; waiting lease=%s", self.name)
            self._waiting_logged = True

    async def release(self) -> None:
        """Give the lease up now (a clean stop), so another process takes over at once."""
        if self._valid_until <= 0:
            return
        self._valid_until = 0.0
        try:
            async with self.db.transaction() as session:
                await leases.release(session, self.name, self.holder)
        except Exception as exc:  # it expires by itself
            log.warning("lease release failed lease=%s error=%s", self.name, type(exc).__name__)


def shared_outbox(services: Services) -> bool:
    """Whether several processes may deliver the same channel at once."""
    return not services.db.is_sqlite and services.state.redis is not None


class Delivery:
    """The delivery loops of the given channels and the scheduler, for one process."""

    def __init__(
        self,
        services: Services,
        senders: Mapping[str, Sender],
        limiters: Mapping[str, SendLimiter] | None = None,
        *,
        config: WorkerConfig | None = None,
        scheduler_interval: float = 60.0,
        delivery_lease: float = DELIVERY_LEASE_SECONDS,
        holder: str | None = None,
        jobs: tuple[scheduler.Job, ...] = (),
    ) -> None:
        self.services = services
        self.jobs = jobs
        self.holder = holder or holder_id()
        self.scheduler_interval = scheduler_interval
        db = services.db
        self.scheduler_lease = Lease(db, SCHEDULER, max(3 * scheduler_interval, 10.0), self.holder)
        self.leases = [self.scheduler_lease]
        self.workers: dict[str, OutboxWorker] = {}
        for channel, sender in senders.items():
            gate = None
            if not shared_outbox(services):
                lease = Lease(db, f"delivery:{channel}", delivery_lease, self.holder)
                self.leases.append(lease)
                gate = lease.hold
            limiter = (limiters or {}).get(channel)
            self.workers[channel] = OutboxWorker(
                db, sender, channel, self._document, config, limiter, gate
            )

    async def _document(self, spec: dict[str, object]) -> Document | None:
        return await documents.resolve(self.services, spec)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver and tick until `stop` is set; leases are released on the way out."""
        log.info("delivery started channels=%s", ",".join(self.workers) or "none")
        try:
            await asyncio.gather(
                *(worker.run(stop) for worker in self.workers.values()),
                scheduler.run(
                    self.services,
                    stop,
                    self.scheduler_interval,
                    self.jobs,
                    leader=self.scheduler_lease.hold,
                ),
            )
        finally:
            for lease in self.leases:
                await lease.release()
            log.info("delivery stopped")


def retention(settings: Settings) -> Retention:
    return Retention(
        closed_cases_days=settings.retention_closed_cases_days,
        answered_questions_days=settings.retention_answered_questions_days,
        files_days=settings.retention_files_days,
        outbox_text_days=settings.retention_outbox_text_days,
        audit_days=settings.audit_retention_days,
    )


def scheduled_jobs(settings: Settings, every: float = PURGE_EVERY) -> tuple[scheduler.Job, ...]:
    """The scheduler's jobs beyond its own: the retention purge, at most once per `every`, and
    the agencies' contract watch (its warning horizon is a setting)."""
    policy = retention(settings)
    last_run = -every

    async def purge_job(services: Services) -> int:
        nonlocal last_run
        if time.monotonic() - last_run < every:
            return 0
        last_run = time.monotonic()
        await purge(services.db, services.files_dir, policy, utcnow())
        return 0

    limits = ContractLimits(warn_workdays=settings.agency_warning_workdays)

    async def contracts_job(services: Services) -> int:
        return await watch_contracts(services, utcnow(), limits)

    return (purge_job, contracts_job)


def send_limiters(
    settings: Settings, state: StateStore, channels: list[str]
) -> dict[str, SendLimiter]:
    """Each channel's pacing: Telegram's, and WeCom's per member (see wecom_send_limiter)."""
    limiters = {c: build_send_limiter(settings, state) for c in channels if c == "telegram"}
    if WECOM_CHANNEL in channels:
        limiters[WECOM_CHANNEL] = wecom_send_limiter(settings, state)
    return limiters


def wecom_send_limiter(settings: Settings, state: StateStore) -> SendLimiter:
    """WeCom drops messages beyond 30 a minute or 1,000 an hour to one member: sends to a
    member are spaced to stay within both, across every worker (keys apart from Telegram's)."""
    rate, spacing = settings.wecom_send_rate_per_second, settings.wecom_member_spacing
    if state.redis is not None:
        prefix = f"{state.prefix}{WECOM_CHANNEL}:"
        return RedisSendLimiter(state.redis, rate, chat_spacing=spacing, prefix=prefix)
    return MemorySendLimiter(rate, chat_spacing=spacing)
