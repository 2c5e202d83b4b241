"""Routes whose requests prove their origin by a signature (the WeChat callback).

All their traffic comes from the sender's few addresses, so the web server's per-IP limit
skips a request once its signature checks, and still counts every request that fails it.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

SignedCheck = Callable[[web.Request], bool]  # cheap and synchronous: runs before any limit
SIGNED_ROUTES = web.AppKey[dict[str, SignedCheck]]("signed_routes")


def add_signed_route(web_app: web.Application, path: str, check: SignedCheck) -> None:
    """Let requests to `path` that pass `check` skip the per-IP limit."""
    web_app.setdefault(SIGNED_ROUTES, {})[path] = check


def is_signed(request: web.Request) -> bool:
    """The request's route takes a signature and this request carries a valid one."""
    check = request.app.get(SIGNED_ROUTES, {}).get(request.path)
    return check is not None and check(request)
