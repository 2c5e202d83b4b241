"""The custom menu (自定义菜单) from data/wechat_menu.yaml, checked against WeChat's limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MENU_FILE = Path(__file__).resolve().parents[3] / "data" / "wechat_menu.yaml"
TOP_ENTRIES, SUB_ENTRIES = 3, 5
TOP_NAME_BYTES, SUB_NAME_BYTES, KEY_BYTES = 16, 60, 128


class MenuError(Exception):
    """The menu file breaks one of WeChat's limits; the message says which."""


def load_menu(path: Path = MENU_FILE) -> dict[str, Any]:
    """The menu as the menu/create API takes it."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("button") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not 1 <= len(entries) <= TOP_ENTRIES:
        raise MenuError(f"`button` must list 1 to {TOP_ENTRIES} entries")
    for entry in entries:
        _check(entry, TOP_NAME_BYTES)
        subs = entry.get("sub_button")
        if subs is None:
            _check_action(entry)
            continue
        if not isinstance(subs, list) or not 1 <= len(subs) <= SUB_ENTRIES:
            raise MenuError(f"{entry['name']}: 1 to {SUB_ENTRIES} sub-entries")
        for sub in subs:
            _check(sub, SUB_NAME_BYTES)
            _check_action(sub)
    return {"button": entries}


def _check(entry: Any, name_bytes: int) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise MenuError("every entry needs a name")
    if len(entry["name"].encode()) > name_bytes:
        raise MenuError(f"{entry['name']}: longer than {name_bytes} bytes")


def _check_action(entry: dict[str, Any]) -> None:
    kind = entry.get("type")
    if kind == "click" and isinstance(entry.get("key"), str):
        if len(entry["key"].encode()) > KEY_BYTES:
            raise MenuError(f"{entry['name']}: key longer than {KEY_BYTES} bytes")
        return
    if kind == "view" and str(entry.get("url", "")).startswith(("http://", "https://")):
        return
    raise MenuError(f"{entry['name']}: use type click with a key, or view with a url")
