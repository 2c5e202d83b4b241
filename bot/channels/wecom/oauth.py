"""待办事项 from the WeCom app: its menu opens WeCom's web OAuth (snsapi_base), which sends the
member back here with a one-time code; the code names the UserID, the UserID the staff
member, and the browser gets that person's staff session for /desk — no /bind needed."""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode

from aiohttp import web

from bot.channels.web.channel import channel_of
from bot.channels.wecom.api import WeChatApiError, WeComApi
from bot.config import Settings
from dialogs.texts import render
from storage import staff_devices, wecom

log = logging.getLogger(__name__)
ROUTE = "/wecom/oauth"
CODE_LIMIT = 512  # characters; WeCom's codes are far shorter
DEVICE_LABEL = "WeCom"
API_KEY = web.AppKey("wecom_oauth_api", WeComApi)


def redirect_uri(settings: Settings) -> str:
    return f"{settings.web_url.rstrip('/')}{ROUTE}"


def authorize_url(settings: Settings) -> str:
    """The link the app's menu opens: WeCom signs the member in and comes back with a code."""
    query = urlencode(
        {
            "appid": settings.wecom_corp_id or "",
            "redirect_uri": redirect_uri(settings),
            "response_type": "code",
            "scope": "snsapi_base",
            "state": "desk",
            "agentid": str(settings.wecom_agent_id or ""),
        },
        quote_via=quote,
    )
    return f"{settings.wecom_oauth_url}?{query}#wechat_redirect"


def _failed(not_staff: bool, status: int) -> web.Response:
    text = render("wecom/oauth_failed.html.j2", not_staff=not_staff)
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    """GET /wecom/oauth?code=…: a staff session for the member, then /desk."""
    code = request.query.get("code", "")
    if not code or len(code) > CODE_LIMIT:
        return _failed(False, 400)
    api = request.app[API_KEY]
    try:
        userid = await api.userid_by_code(code)
    except WeChatApiError as exc:  # used, expired (5 min) or forged
        log.info("wecom oauth refused code=%s", exc.code)
        return _failed(False, 403)
    channel = channel_of(request)
    async with channel.app.services.db.transaction() as session:
        staff = await wecom.staff_by_userid(session, userid) if userid else None
        if staff is None:
            log.info("wecom oauth refused: not staff")
            return _failed(True, 403)
        device = await staff_devices.bind(session, staff, channel.staff.lifetime, DEVICE_LABEL)
    log.info("wecom oauth signed in staff=%s device=%s", staff.id, device.id)
    base = channel.settings.web_base_path
    response = web.Response(status=302, headers={"Location": f"{base}/desk"})
    value = channel.staff.cookie_value(device.id, device.nonce)
    channel.staff.set_cookie(response, value, base or "/", channel.is_https(request))
    response.headers["Cache-Control"] = "no-store"
    return response
