"""The callback's XML once decrypted: a member's message, a menu click or a card press."""

from __future__ import annotations

from dataclasses import dataclass

from bot.channels.wechat.messages import BadMessage, fields

__all__ = ["BadMessage", "WeComMessage", "fields"]
CARD_EVENT = "template_card_event"


@dataclass(frozen=True)
class WeComMessage:
    to_user: str  # the CorpID
    from_user: str  # the member's UserID
    create_time: int
    msg_type: str
    agent_id: str = ""
    content: str = ""
    msg_id: str = ""
    event: str = ""
    event_key: str = ""
    task_id: str = ""  # a card press: which card
    response_code: str = ""  # a card press: updates that card once

    @classmethod
    def parse(cls, values: dict[str, str]) -> WeComMessage:
        try:
            return cls(
                to_user=values["ToUserName"],
                from_user=values["FromUserName"],
                create_time=int(values["CreateTime"]),
                msg_type=values["MsgType"].lower(),
                agent_id=values.get("AgentID", ""),
                content=values.get("Content", ""),
                msg_id=values.get("MsgId", ""),
                event=values.get("Event", "").lower(),
                event_key=values.get("EventKey", ""),
                task_id=values.get("TaskId", ""),
                response_code=values.get("ResponseCode", ""),
            )
        except (KeyError, ValueError) as exc:
            raise BadMessage(f"field {exc}") from exc

    @property
    def dedupe_key(self) -> str:
        """MsgId for messages; events have none, so their sender, time and what they say."""
        if self.msg_id:
            return f"wecom:msg:{self.msg_id}"
        return f"wecom:event:{self.from_user}:{self.create_time}:{self.event}:{self.task_id}"

    @property
    def is_card_press(self) -> bool:
        return self.msg_type == "event" and self.event == CARD_EVENT
