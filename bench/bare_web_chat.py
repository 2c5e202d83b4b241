"""The bare web chat bench/web_bench.py measures the project against: aiohttp's websocket idiom
with nothing added.

Per message: the chat's state read from and written back to Redis (GET, SET with a TTL: two
round trips, as the project's lock+load and save+unlock), one INSERT of the visitor's and the
answer's history rows into PostgreSQL, and one websocket frame back (the text echoed). The
page is a few bytes and a cookie; a socket gets the chat's last 200 history rows first.

    python bench/bare_web_chat.py --port 8766 --database-url postgresql://… --redis-url redis://…
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from typing import Any

import asyncpg
from aiohttp import WSMsgType, web
from redis.asyncio import BlockingConnectionPool, Redis

COOKIE = "bare"
TTL = 7 * 24 * 3600
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
SCHEMA = """
CREATE TABLE IF NOT EXISTS bare_history (
    id bigserial PRIMARY KEY,
    chat_id text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bare_history_chat ON bare_history (chat_id, id);
"""


async def index(request: web.Request) -> web.Response:
    response = web.Response(text="<!doctype html><title>bare</title>", content_type="text/html")
    if COOKIE not in request.cookies:
        response.set_cookie(COOKIE, secrets.token_hex(16), httponly=True, samesite="Lax")
    return response


async def websocket(request: web.Request) -> web.WebSocketResponse:
    chat_id = request.cookies.get(COOKIE)
    if not chat_id:
        raise web.HTTPForbidden()
    pool, redis = request.app[POOL], request.app[REDIS]
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
    await ws.prepare(request)
    rows = await pool.fetch(
        "SELECT payload FROM bare_history WHERE chat_id = $1 ORDER BY id DESC LIMIT 200", chat_id
    )
    await ws.send_json({"type": "history", "messages": [json.loads(r[0]) for r in rows[::-1]]})
    key = f"bare:state:{chat_id}"
    async for message in ws:
        if message.type != WSMsgType.TEXT:
            continue
        data = json.loads(message.data)
        text = str(data.get("text", ""))
        raw = await redis.get(key)
        state: dict[str, Any] = json.loads(raw) if raw else {}
        state["last"] = text
        state["count"] = int(state.get("count", 0)) + 1
        at = int(time.time() * 1000)
        mine = {"from": "me", "text": [text], "buttons": [], "links": [], "at": at}
        reply = {"from": "bot", "text": [text], "buttons": [], "links": [], "at": at}
        await pool.execute(
            "INSERT INTO bare_history (chat_id, payload) VALUES ($1, $2), ($1, $3)",
            chat_id,
            json.dumps(mine),
            json.dumps(reply),
        )
        await redis.set(key, json.dumps(state), ex=TTL)
        await ws.send_json({"type": "answer", "messages": [reply]})
    return ws


async def serve(args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(args.database_url, min_size=2, max_size=20)
    async with pool.acquire() as conn:
        await conn.execute(SCHEMA)
    blocking = BlockingConnectionPool.from_url(args.redis_url, max_connections=50, timeout=30)
    redis = Redis(connection_pool=blocking)
    app = web.Application()
    app[POOL], app[REDIS] = pool, redis
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    try:
        await asyncio.Event().wait()  # until terminated
    finally:
        await runner.cleanup()
        await pool.close()
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--database-url", required=True, help="postgresql://user@host/db")
    parser.add_argument("--redis-url", required=True)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
