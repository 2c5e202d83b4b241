"""The callback's XML: incoming messages and events in, passive replies out."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

# Characters per field, beyond which the message is not WeChat's: openids are 28, the
# database keeps 64; menu keys are at most 128 bytes; a MediaId is 64 or so.
FIELD_LIMITS = {
    "to_user": 64,
    "from_user": 64,
    "msg_type": 32,
    "msg_id": 64,
    "media_id": 256,
    "event": 64,
    "event_key": 256,
}
REQUIRED = frozenset({"to_user", "from_user", "msg_type"})
SCENE_LIMIT = 64  # characters: WeChat's scene_str, and the column that keeps it
TIME_DIGITS = 12


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


def _time(value: str) -> int:
    """CreateTime: seconds since 1970 in ASCII digits."""
    if not (value.isascii() and value.isdigit() and len(value) <= TIME_DIGITS):
        raise BadMessage("field CreateTime: not a time")
    return int(value)


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
            message = cls(
                to_user=values["ToUserName"],
                from_user=values["FromUserName"],
                create_time=_time(values["CreateTime"]),
                msg_type=values["MsgType"].lower(),
                content=values.get("Content", ""),
                msg_id=values.get("MsgId", ""),
                media_id=values.get("MediaId", ""),
                event=values.get("Event", "").lower(),
                event_key=values.get("EventKey", ""),
            )
        except KeyError as exc:
            raise BadMessage(f"field {exc} missing") from exc
        for name, limit in FIELD_LIMITS.items():
            length = len(getattr(message, name))
            if length > limit or (length == 0 and name in REQUIRED):
                raise BadMessage(f"field {name}: empty or over {limit} characters")
        return message

    @property
    def dedupe_key(self) -> str:
        """MsgId for messages; events have none, so their sender and time."""
        if self.msg_id:
            return f"msg:{self.msg_id}"
        return f"event:{self.from_user}:{self.create_time}:{self.event}"

    @property
    def scene(self) -> str | None:
        """The parametric QR code's scene of a subscribe or SCAN event."""
        scene = None
        if self.event == "subscribe" and self.event_key.startswith("qrscene_"):
            scene = self.event_key.removeprefix("qrscene_")
        elif self.event == "scan":
            scene = self.event_key
        return scene if scene and len(scene) <= SCENE_LIMIT else None  # ours are short


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
