"""The callback's XML: incoming messages and events in, passive replies out."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

BODY_LIMIT = 64 * 1024  # bytes; a text message is at most a few KB


class BadMessage(Exception):
    """The body is not a WeChat message (malformed, entity tricks, fields missing)."""


def fields(body: bytes) -> dict[str, str]:
    """The top-level fields of a WeChat XML document (entities and DTDs refused)."""
    try:
        root: Element = ElementTree.fromstring(body, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise BadMessage(type(exc).__name__) from exc
    if root.tag != "xml":
        raise BadMessage("root is not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}


@dataclass(frozen=True)
class WeChatMessage:
    """One callback: a user's message (text, image …) or an event (subscribe, CLICK …)."""

    to_user: str  # the Official Account's original id (gh_…)
    from_user: str  # the user's openid
    create_time: int
    msg_type: str
    content: str = ""
    msg_id: str = ""
    media_id: str = ""
    event: str = ""
    event_key: str = ""

    @classmethod
    def parse(cls, values: dict[str, str]) -> WeChatMessage:
        try:
            return cls(
                to_user=values["ToUserName"],
                from_user=values["FromUserName"],
                create_time=int(values["CreateTime"]),
                msg_type=values["MsgType"].lower(),
                content=values.get("Content", ""),
                msg_id=values.get("MsgId", ""),
                media_id=values.get("MediaId", ""),
                event=values.get("Event", "").lower(),
                event_key=values.get("EventKey", ""),
            )
        except (KeyError, ValueError) as exc:
            raise BadMessage(f"field {exc}") from exc

    @property
    def dedupe_key(self) -> str:
        """MsgId for messages; events have none, so their sender and time."""
        if self.msg_id:
            return f"msg:{self.msg_id}"
        return f"event:{self.from_user}:{self.create_time}:{self.event}"

    @property
    def scene(self) -> str | None:
        """The parametric QR code's scene of a subscribe or SCAN event."""
        if self.event == "subscribe" and self.event_key.startswith("qrscene_"):
            return self.event_key.removeprefix("qrscene_") or None
        if self.event == "scan":
            return self.event_key or None
        return None


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(message: WeChatMessage, text: str, now: int) -> str:
    """A passive text reply to `message`."""
    return (
        f"<xml><ToUserName>{_cdata(message.from_user)}</ToUserName>"
        f"<FromUserName>{_cdata(message.to_user)}</FromUserName>"
        f"<CreateTime>{now}</CreateTime><MsgType>{_cdata('text')}</MsgType>"
        f"<Content>{_cdata(text)}</Content></xml>"
    )


def encrypted_reply(encrypted: str, msg_signature: str, timestamp: str, nonce: str) -> str:
    """The envelope of an encrypted passive reply (安全模式)."""
    return (
        f"<xml><Encrypt>{_cdata(encrypted)}</Encrypt>"
        f"<MsgSignature>{_cdata(msg_signature)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>"
    )
