"""Every text shown to people comes from a template under dialogs/templates/."""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,  # templates ship with the code; no stat() per render
    )
    env.globals["label"] = label
    env.globals["label_group"] = labels
    env.filters["local_time"] = _local_time
    env.filters["no_blank_lines"] = no_blank_lines
    return env


def render(template: str, /, **context: Any) -> str:
    """Render a template to Telegram-HTML text."""
    return environment().get_template(template).render(**context).strip()


def render_string(source: str, /, **context: Any) -> str:
    """Render a template written in code, compiled once. Never pass data (FAQ answers,
    anything typed): data goes in as a variable of a template, where it is escaped."""
    return _compiled(source).render(**context).strip()


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return environment().from_string(source)


@cache
def _labels() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = yaml.safe_load(
        (TEMPLATES / "labels.yaml").read_text(encoding="utf-8")
    )
    return loaded


def label(group: str, key: str) -> str:
    """A short label (field name, button, status) by group and key."""
    return _labels()[group][key]


def labels(group: str) -> dict[str, str]:
    """Every label of a group, key → label."""
    return dict(_labels()[group])


def no_blank_lines(value: str) -> str:
    """The text without its empty lines (imported FAQ answers carry them)."""
    return "\n".join(line.rstrip() for line in str(value).splitlines() if line.strip())


def _local_time(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    import datetime as dt

    if not isinstance(value, dt.datetime):
        return str(value)
    china = dt.timezone(dt.timedelta(hours=8))
    return value.astimezone(china).strftime(fmt)
