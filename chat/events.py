"""What channels hand to the core and what the core hands back."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO


class Kind(StrEnum):
    TEXT = "text"
    BUTTON = "button"
    FILE = "file"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class ChatUser:
    """A person in one channel: (channel, chat_id) is the identity."""

    channel: str
    chat_id: str
    display_name: str | None = None

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.chat_id}"


@dataclass(frozen=True)
class UploadedFile:
    """A file someone sent: in memory (a few MB fetched from Telegram or WeChat), or spooled to
    `path` by the channel that received it (the web), which removes it after the update."""

    name: str
    mime: str
    size: int  # bytes received; over the upload cap, the content was not kept
    content: bytes = b""
    path: Path | None = None

    def open(self) -> BinaryIO:
        """The content to read (blocking: call it in a worker thread for a spooled file)."""
        return self.path.open("rb") if self.path is not None else io.BytesIO(self.content)


@dataclass(frozen=True)
class Incoming:
    user: ChatUser
    kind: Kind
    text: str = ""
    data: str = ""  # button payload; untrusted, checked against server state
    file: UploadedFile | None = None
    message_id: str | None = None  # the message a pressed button sits on
    client: str | None = None  # the sender's network address, where the channel knows it (web)

    @classmethod
    def say(cls, user: ChatUser, text: str) -> Incoming:
        return cls(user=user, kind=Kind.TEXT, text=text)

    @classmethod
    def press(cls, user: ChatUser, data: str, message_id: str | None = None) -> Incoming:
        return cls(user=user, kind=Kind.BUTTON, data=data, message_id=message_id)


@dataclass(frozen=True)
class Button:
    label: str
    data: str


@dataclass(frozen=True)
class Document:
    name: str
    content: bytes
    mime: str
    case_number: str | None = None  # the case whose data it holds: its downloads are audited


@dataclass
class Reply:
    """A message to show: text is Telegram-HTML (escaped), buttons are rows."""

    text: str
    buttons: list[list[Button]] = field(default_factory=list)
    document: Document | None = None
    replace: bool = False  # a channel may edit the previous message in place
    expects_text: bool = False  # the screen asks for typed text: a page puts the cursor there

    @classmethod
    def doc(cls, document: Document, caption: str = "") -> Reply:
        return cls(text=caption, document=document)

    def all_buttons(self) -> list[Button]:
        return [button for row in self.buttons for button in row]
