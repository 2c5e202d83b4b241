"""Signals between processes on PostgreSQL: NOTIFY inside the transaction that causes them
(sent at its commit, never for one rolled back), LISTEN in every web process. They only wake
work that polling would also find, a moment later: nothing depends on a signal arriving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.models import OutboxMessage

log = logging.getLogger(__name__)

WEB_PENDING = "bdb_web_pending"  # payload: a web chat id that has new notices
WEB_SENT = "bdb_web_sent"  # payload: "<instance> <chat id> <row id>,<row id>…" delivered there
STAFF_SIGNED_OUT = "bdb_staff_signed_out"  # payload: a staff browser's device id
WEB_CHANNEL = "web"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
RETRY_SECONDS = 2.0


class SignallingSession(Session):
    """A session that, on PostgreSQL, announces new web notices at commit (storage/db.py)."""


@event.listens_for(SignallingSession, "after_flush")
def _announce_web_notices(session: Session, _context: Any) -> None:
    chats = sorted(
        {
            o.chat_id
            for o in session.new
            if isinstance(o, OutboxMessage) and o.channel == WEB_CHANNEL
        }
    )
    for chat_id in chats:
        session.connection().execute(_NOTIFY, {"channel": WEB_PENDING, "payload": chat_id})


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """Send `payload` on `channel` when the session's transaction commits (PostgreSQL only)."""
    if is_postgres(session):
        await session.execute(_NOTIFY, {"channel": channel, "payload": payload})


async def listen(
    url: str, handlers: Mapping[str, Callable[[str], None]], stop: asyncio.Event
) -> None:
    """Call each handler with the payloads on its channel until `stop`; reconnects after the
    database went away (meanwhile the pollers carry the work)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    while not stop.is_set():
        lost = asyncio.Event()
        try:
            connection = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("signal listener cannot connect error=%s", type(exc).__name__)
        else:
            try:
                connection.add_termination_listener(_setter(lost))
                for channel, handler in handlers.items():
                    await connection.add_listener(channel, _adapt(handler))
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 5)
            if stop.is_set():
                return
            log.warning("signal listener lost its connection")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RETRY_SECONDS)


def _setter(flag: asyncio.Event) -> Callable[[object], None]:
    return lambda _connection: flag.set()


def _adapt(handler: Callable[[str], None]) -> Callable[[object, int, str, str], None]:
    def on_notification(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            handler(payload)
        except Exception:  # a bad payload must not stop the listener
            log.exception("signal handler failed")

    return on_notification
