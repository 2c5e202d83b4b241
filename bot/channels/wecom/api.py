"""The WeCom server API (qyapi.weixin.qq.com, or a 政务微信 deployment's host): the access
token shared by every process (the WeChat client's cache and lock, WeCom's gettoken), app
messages, template-card updates, member look-ups, the app menu."""

from __future__ import annotations

import logging
from typing import Any

from bot.channels.wechat.api import TOKEN_MARGIN, RateLimited, WeChatApi, WeChatApiError
from storage.wechat import TokenCache

log = logging.getLogger(__name__)

NOT_VISIBLE = 81013  # no recipient is visible to the app (left, or outside its range)
UNKNOWN_USER = frozenset({60111, 46004})  # UserID / mobile not found

__all__ = ["NOT_VISIBLE", "RateLimited", "WeChatApiError", "WeComApi"]


class WeComApi(WeChatApi):
    """One client per process for one self-built app (CorpID, AgentId, Secret)."""

    def __init__(
        self,
        base_url: str,
        corp_id: str,
        agent_id: int,
        secret: str,
        tokens: TokenCache,
        duplicate_check_seconds: int = 1800,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(base_url, corp_id, secret, tokens, timeout)
        self.agent_id = agent_id
        self.duplicate_check_seconds = duplicate_check_seconds

    async def _fetch_token(self, force: bool) -> str:
        # WeCom returns the same token while it is valid: fetching again cuts nobody off.
        params = {"corpid": self.app_id, "corpsecret": self.app_secret}
        answer = await self._request("GET", "/cgi-bin/gettoken", params=params)
        token = str(answer["access_token"])
        lifetime = float(answer.get("expires_in", 7200))
        await self.tokens.put(token, max(60.0, lifetime - TOKEN_MARGIN))
        log.info("wecom access token fetched expires_in=%s force=%s", lifetime, force)
        return token

    async def send(
        self, userid: str, msgtype: str, content: dict[str, Any], once: bool
    ) -> dict[str, Any]:
        """An app message to one member. `once` (notices): WeCom drops an identical one sent
        again within the duplicate-check interval, so a retried send is never seen twice;
        replies go without it (the same answer to the same question twice is expected)."""
        body: dict[str, Any] = {
            "touser": userid,
            "msgtype": msgtype,
            "agentid": self.agent_id,
            msgtype: content,
        }
        if once:
            body["enable_duplicate_check"] = 1
            body["duplicate_check_interval"] = self.duplicate_check_seconds
        answer = await self.call("POST", "/cgi-bin/message/send", body)
        if userid in str(answer.get("invaliduser", "")).split("|"):
            raise WeChatApiError(NOT_VISIBLE, "invaliduser")
        return answer

    async def send_text(self, openid: str, text: str, once: bool = True) -> None:
        await self.send(openid, "text", {"content": text}, once)

    async def send_card(self, userid: str, card: dict[str, Any], once: bool) -> str | None:
        """A template card; the code that may update it later (once, within 72 h)."""
        answer = await self.send(userid, "template_card", card, once)
        code = answer.get("response_code")
        return str(code) if code else None

    async def update_card(self, userids: list[str], response_code: str, replace_name: str) -> None:
        """Turn the card's buttons into one greyed-out button saying `replace_name`."""
        body = {
            "userids": userids,
            "agentid": self.agent_id,
            "response_code": response_code,
            "button": {"replace_name": replace_name},
        }
        await self.call("POST", "/cgi-bin/message/update_template_card", body)

    async def userid_by_mobile(self, mobile: str) -> str | None:
        try:
            answer = await self.call("POST", "/cgi-bin/user/getuserid", {"mobile": mobile})
        except WeChatApiError as exc:
            if exc.code in UNKNOWN_USER:
                return None
            raise
        return str(answer.get("userid") or "") or None

    async def userid_by_code(self, code: str) -> str | None:
        """The member a web OAuth code (snsapi_base) names; None for a non-member."""
        answer = await self.call("GET", "/cgi-bin/auth/getuserinfo", params={"code": code})
        userid = answer.get("userid") or answer.get("UserId")
        return str(userid) if userid else None

    async def create_menu(self, menu: dict[str, Any]) -> None:
        await self.call("POST", "/cgi-bin/menu/create", menu, {"agentid": str(self.agent_id)})
