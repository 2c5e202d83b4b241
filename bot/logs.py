"""Structured logs (structlog): JSON lines in production, readable lines in a terminal.

Every log record — structlog's and the standard library's (`logging.getLogger(...)` as used
across the code, and the libraries') — goes through the same processors: the ids bound for
the update being handled (handlers/routing.py binds update, channel and chat through
contextvars), a timestamp, and `redact`, which drops what looks like personal data before
anything is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

REDACTED = "[redacted]"
TEXT = "[text]"
# Mainland mobile numbers (optionally +86), landlines with an area code, and resident ID
# numbers (18 characters, the last a digit or X; the old 15-digit form).
PHONE = re.compile(r"(?<![\dA-Za-z])(?:\+?86[- ]?)?1[3-9]\d{9}(?![\dA-Za-z])")
LANDLINE = re.compile(r"(?<!\d)0\d{2,3}-\d{7,8}(?!\d)")
ID_NUMBER = re.compile(r"(?<![\dA-Za-z])(?:\d{17}[\dXx]|\d{15})(?![\dA-Za-z])")
# The code logs in English: Chinese characters in a log line are someone's words.
CHINESE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff01-\uff5e]+")
# Keys whose value is a message, a name or contact data, whatever it looks like.
PRIVATE_KEYS = frozenset(
    {
        "text",
        "message_text",
        "body",
        "caption",
        "content",
        "answer",
        "question",
        "note",
        "comment",
        "phone",
        "contact_phone",
        "contact_name",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "display_name",
        "username",
        "company",
        "email",
    }
)


def scrub(value: str) -> str:
    """The string with phone numbers, ID numbers and Chinese text replaced."""
    value = ID_NUMBER.sub(REDACTED, value)
    value = PHONE.sub(REDACTED, value)
    value = LANDLINE.sub(REDACTED, value)
    return CHINESE.sub(TEXT, value)


def redact(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop private keys, scrub every string value."""
    for key in list(event_dict):
        if key.lower() in PRIVATE_KEYS:
            del event_dict[key]
            continue
        value = event_dict[key]
        if isinstance(value, str):
            event_dict[key] = scrub(value)
        elif not isinstance(value, bool | int | float | type(None)):
            event_dict[key] = scrub(str(value))
    return event_dict


def use_json(log_format: str, stream: TextIO) -> bool:
    if log_format == "auto":
        return not stream.isatty()
    return log_format == "json"


def configure(level: str, log_format: str = "auto", stream: TextIO | None = None) -> None:
    """Route every log record through structlog's processors to `stream` (stderr)."""
    stream = stream or sys.stderr
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json(log_format, stream)
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
