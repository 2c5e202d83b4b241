"""Typed button data: each kind of button is a small frozen dataclass that packs itself.

A kind names its wire prefix and its fields; `pack()` writes `prefix:field:field`, checks the
64-byte limit of Telegram's callback data at once (where the button is built, not when it is
sent), and `unpack()` answers None for data of another kind, malformed or out of range, so a
foreign or stale press never reaches a handler. The prefixes are the strings already stored
under buttons in people's chats, so old buttons keep working.

    class CaseView(CallbackData, prefix="w:view"):  # a frozen dataclass, made so here
        number: str

    CaseView("2025-0001").button("办理")  # Button("办理", "w:view:2025-0001")
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

from chat.events import Button

MAX_BYTES = 64  # Telegram's limit on callback_data; the other channels accept it too
SEPARATOR = ":"


class CallbackTooLong(ValueError):
    """A button's data would not fit; a programming error, raised where the button is built."""


@dataclass_transform()
class CallbackData:
    """Base of every button kind; each subclass with `prefix=` becomes a frozen dataclass."""

    prefix: ClassVar[str]
    kinds: ClassVar[dict[str, list[type[CallbackData]]]] = {}
    _types: ClassVar[tuple[tuple[str, Any], ...]]

    def __init_subclass__(
        cls, prefix: str | None = None, family: bool = False, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True)(cls)
        if family:  # a family of its own (Prompt): its kinds are parsed apart
            cls.kinds = {}
        elif prefix is not None:  # without one: a base several kinds share
            cls.prefix = prefix
            cls.kinds.setdefault(prefix, []).append(cls)

    @classmethod
    def _fields(cls) -> tuple[tuple[str, Any], ...]:
        cached = cls.__dict__.get("_types")
        if cached is None:
            hints = typing.get_type_hints(cls)
            cached = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))  # type: ignore[arg-type]
            cls._types = cached
        return cached

    def pack(self) -> str:
        values = [_dump(getattr(self, name)) for name, _ in self._fields()]
        for value in values[:-1]:
            if SEPARATOR in value:
                raise ValueError(f"{type(self).__name__}: {SEPARATOR!r} inside {value!r}")
        data = SEPARATOR.join([self.prefix, *values])
        if len(data.encode()) > MAX_BYTES:
            raise CallbackTooLong(f"{type(self).__name__}: {len(data.encode())} bytes: {data!r}")
        return data

    @classmethod
    def unpack(cls, data: str) -> Self | None:
        """This kind's value from button data, or None for anything else."""
        fields = cls._fields()
        if data == cls.prefix and not fields:
            return cls()
        head = cls.prefix + SEPARATOR
        if not fields or not data.startswith(head):
            return None
        parts = data[len(head) :].split(SEPARATOR, len(fields) - 1)
        if len(parts) != len(fields):
            return None
        values: dict[str, Any] = {}
        for (name, kind), part in zip(fields, parts, strict=True):
            value = _load(kind, part)
            if value is _INVALID:
                return None
            values[name] = value
        try:
            return cls(**values)
        except ValueError:  # a kind's own __post_init__ check
            return None

    def button(self, label: str) -> Button:
        return Button(label, self.pack())

    @classmethod
    def parse(cls, data: str) -> Self | None:
        """The value of whichever kind of this family the data is, longest prefix first."""
        head = data
        while True:
            for kind in cls.kinds.get(head, ()):
                value = kind.unpack(data)
                if isinstance(value, cls):
                    return value
            if SEPARATOR not in head:
                return None
            head = head.rpartition(SEPARATOR)[0]


class Prompt(CallbackData, family=True):
    """What a typed text answers ("waiting for text"), kept in the conversation's state."""


_INVALID = object()


def _dump(value: object) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _load(kind: Any, text: str) -> Any:
    if kind is int:
        return int(text) if text.isdecimal() and len(text) <= 18 else _INVALID
    if kind is str:
        return text
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(text)
        except ValueError:
            return _INVALID
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return text if text in typing.get_args(kind) else _INVALID
    raise TypeError(f"unsupported callback field type {kind!r}")


K = TypeVar("K", bound=CallbackData)


def variants(base: type[K], attribute: str, prefixes: dict[str, str]) -> dict[str, type[K]]:
    """One kind of `base` per value of its class-level `attribute`, each under its own prefix:
    for wire formats that carry a value in the prefix, such as `case_accept:<number>`."""
    return {
        value: type(f"{base.__name__}_{value}", (base,), {attribute: value}, prefix=prefix)
        for value, prefix in prefixes.items()
    }
